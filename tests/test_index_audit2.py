"""Index audit: a model of another dimension than the vectors is refused at build time, and inverted lists
on disk replaced by other bytes of the same size are refused when the folder is opened."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hostile import assert_refused, snapshot

from mmgene.errors import IntegrityError, MetadataError, ParameterError

DIM = 16
FIX = (
    "What to do: name the model that made these vectors (an aligned model folder for its cell vectors, genept-s / "
    "genept-w with the text encoder that embedded them), or leave the model out for cell -> cell queries only."
)
REBUILD = (
    "What to do: rebuild the index with `mmgene index build` (or CellIndex.save); do not edit the files of an index folder."
)
ALGORITHM = "crc32 (zlib) of the lists file's bytes"


class Space:
    """A joint space of a given dimension (what :func:`mmgene.query.space.load_space` accepts as is)."""

    def __init__(self, dim: int) -> None:
        self.dim, self.name = dim, f"stub-{dim}"

    def encode_text(self, texts):
        return np.full((len(texts), self.dim), self.dim**-0.5, np.float32)

    def encode_cells(self, adata):
        return np.full((adata.n_obs, self.dim), self.dim**-0.5, np.float32)

    def describe(self):
        return {"model": self.name, "inputs": []}


def vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = np.random.default_rng(99).normal(size=(8, DIM)).astype(np.float32)
    return (middle[rng.integers(0, 8, n)] + 0.5 * rng.normal(size=(n, DIM))).astype(np.float32)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("vectors")
    paths = [root / "a.npy", root / "b.npy"]
    np.save(paths[0], vectors(200, 1))
    np.save(paths[1], vectors(160, 2))
    return paths


def streamed(paths, out, **kw):
    from mmgene.index import NpyShards, StreamBuild, build_streamed

    return build_streamed(NpyShards(paths), out, kind="ivf", nlist=4, nprobe=4, config=StreamBuild(rerank=False), **kw)


@pytest.fixture(scope="module")
def folder(shards, tmp_path_factory) -> Path:
    return streamed(shards, tmp_path_factory.mktemp("idx") / "streamed")._path


def copy(folder: Path, to: Path) -> Path:
    return Path(shutil.copytree(folder, to))


def crc(path: Path) -> str:
    return f"{zlib.crc32(path.read_bytes()):08x}"


def lists_mismatch(path: Path, recorded: str) -> str:
    return (
        f"index.ivfdata has crc32 {crc(path)} but meta.json field 'lists_checksum.crc32' records {recorded}: its bytes "
        "were replaced or damaged since the index was written, so searches would return wrong cells. "
        f"Where: {path}. {REBUILD}"
    )


# ---------------------------------------------------------------------- 1. the model's dimension
def test_build_refuses_a_model_of_another_dimension():
    from mmgene.index import CellIndex, build

    adata = ad.AnnData(obs=pd.DataFrame({"cell_type": ["a", "b"] * 10}, index=[f"c{i}" for i in range(20)]))
    adata.obsm["X_short"] = vectors(20, 3)
    for make in (CellIndex.build, build):
        with pytest.raises(ParameterError) as info:
            make(adata, "X_short", model="genept-s")
        assert str(info.value) == (
            "the vectors have dimension 16 but model 'genept-s' encodes text into dimension 384, so they are not in its "
            f"joint space. Where: CellIndex.build(model='genept-s'): obsm['X_short']. {FIX}"
        )
    assert CellIndex.build(adata, "X_short", model=Space(DIM)).model.dim == DIM
    assert CellIndex.build(adata, "X_short").model is None  # no model: cell -> cell queries only, nothing to check


def test_from_vectors_refuses_a_model_of_another_dimension():
    from mmgene.index import CellIndex

    with pytest.raises(ParameterError) as info:
        CellIndex.from_vectors(vectors(20, 4), kind="flat", embedding_key="X_emb", model=Space(8))
    assert str(info.value) == (
        "the vectors have dimension 16 but model 'stub-8' encodes text into dimension 8, so they are not in its joint "
        f"space. Where: CellIndex.from_vectors(model='stub-8'): obsm['X_emb']. {FIX}"
    )
    with pytest.raises(ParameterError, match=r"Where: CellIndex.from_vectors\(model='genept-s'\): the vectors\."):
        CellIndex.from_vectors(vectors(20, 4), kind="flat", model="genept-s")
    assert CellIndex.from_vectors(vectors(20, 4), kind="flat", model=Space(DIM)).dim == DIM


def test_a_model_folder_written_after_the_index_is_recorded_unchecked(tmp_path):
    """A folder moved into place after the index is built (as `mmgene demo` does) cannot be loaded yet."""
    from mmgene.index import CellIndex

    later = str(tmp_path / "result" / "model")
    assert CellIndex.from_vectors(vectors(20, 4), kind="flat", model=later).model == later


def test_streamed_build_refuses_a_model_of_another_dimension_and_writes_nothing(shards, tmp_path):
    out = tmp_path / "out" / "idx"
    (tmp_path / "out").mkdir()
    before = snapshot([tmp_path, *shards])
    with pytest.raises(ParameterError) as info:
        streamed(shards, out, embedding_key="X_emb", model="genept-s")
    assert str(info.value) == (
        "the vectors have dimension 16 but model 'genept-s' encodes text into dimension 384, so they are not in its "
        f"joint space. Where: build_streamed(model='genept-s'): obsm['X_emb']. {FIX}"
    )
    assert snapshot([tmp_path, *shards]) == before and not out.exists()


# ---------------------------------------------------------------------- 2. the lists file on disk
def test_lists_checksum_is_recorded_and_kept_when_saved_elsewhere(folder, tmp_path):
    from mmgene.index import CellIndex

    meta = json.loads((folder / "meta.json").read_text())
    assert meta["lists_checksum"] == {"algorithm": ALGORITHM, "crc32": crc(folder / "index.ivfdata")}
    assert meta["format_version"] == 3
    moved = CellIndex.load(folder).save(tmp_path / "moved")
    assert json.loads((moved / "meta.json").read_text())["lists_checksum"] == meta["lists_checksum"]
    assert CellIndex.load(moved).ntotal == 360


def test_lists_of_another_index_of_the_same_size_are_refused(shards, folder, tmp_path):
    """Lists of an index built with another seed have the same size, and their ids are all valid cells:
    without a checksum, searches answered with the wrong cells and no error."""
    from mmgene.index import CellIndex

    other = streamed(shards, tmp_path / "other", seed=7)._path
    swapped = copy(folder, tmp_path / "swapped")
    assert (other / "index.ivfdata").stat().st_size == (swapped / "index.ivfdata").stat().st_size
    assert crc(other / "index.ivfdata") != crc(swapped / "index.ivfdata")
    shutil.copyfile(other / "index.ivfdata", swapped / "index.ivfdata")
    with pytest.raises(IntegrityError) as info:
        CellIndex.load(swapped)
    recorded = json.loads((swapped / "meta.json").read_text())["lists_checksum"]["crc32"]
    assert str(info.value) == lists_mismatch(swapped / "index.ivfdata", recorded)


def test_lists_whose_ids_were_reordered_are_refused_not_answered_with_wrong_cells(folder, tmp_path):
    """The ids of one inverted list reversed in place: same size, same layout, every id a valid cell, so
    nothing but a checksum of the bytes can tell; opened unverified, searches name other cells."""
    import faiss

    from mmgene.index import CellIndex

    moved = copy(folder, tmp_path / "moved")
    right_index = CellIndex.load(folder)  # kept alive: FAISS objects below point into it
    ivf = faiss.extract_index_ivf(right_index.faiss_index)
    invlists = faiss.downcast_InvertedLists(ivf.invlists)
    sizes = [invlists.list_size(i) for i in range(invlists.nlist)]
    big = int(np.argmax(sizes))
    entry = invlists.lists.at(big)
    start = entry.offset + entry.capacity * invlists.code_size  # a list holds its codes, then its int64 ids
    data = bytearray((moved / "index.ivfdata").read_bytes())
    ids = np.frombuffer(bytes(data[start : start + 8 * sizes[big]]), dtype="<i8")
    data[start : start + 8 * sizes[big]] = ids[::-1].tobytes()
    (moved / "index.ivfdata").write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        CellIndex.load(moved)
    recorded = json.loads((moved / "meta.json").read_text())["lists_checksum"]["crc32"]
    assert str(info.value) == lists_mismatch(moved / "index.ivfdata", recorded)
    q = vectors(20, 11)
    wrong, right = CellIndex.load(moved, verify=False).search(q, 5)[1], right_index.search(q, 5)[1]
    assert wrong.min() >= 0 and wrong.max() < 360 and (wrong != right).any()


def test_one_changed_byte_of_the_lists_is_refused_by_every_loader(folder, tmp_path):
    from mmgene.index import CellIndex, IndexShards, load

    damaged = copy(folder, tmp_path / "damaged")
    data = bytearray((damaged / "index.ivfdata").read_bytes())
    data[5] ^= 0x40  # a bit of a stored vector: sizes, layout and ids stay valid
    (damaged / "index.ivfdata").write_bytes(bytes(data))
    for open_folder in (CellIndex.load, load, lambda p: IndexShards.load([p])):
        with pytest.raises(IntegrityError) as info:
            open_folder(damaged)
        recorded = json.loads((damaged / "meta.json").read_text())["lists_checksum"]["crc32"]
        assert str(info.value) == lists_mismatch(damaged / "index.ivfdata", recorded)
    line = assert_refused(["query", damaged, "--cell", "0"], [damaged])
    assert line == "mmgene: error: " + lists_mismatch(damaged / "index.ivfdata", recorded)


def test_verify_false_skips_the_crc_pass_but_save_still_refuses_changed_lists(folder, tmp_path):
    from mmgene.index import CellIndex, IndexShards

    damaged = copy(folder, tmp_path / "damaged")
    data = bytearray((damaged / "index.ivfdata").read_bytes())
    data[5] ^= 0x40
    (damaged / "index.ivfdata").write_bytes(bytes(data))
    opened = CellIndex.load(damaged, verify=False)  # size and layout still checked; the bytes are not read
    assert opened.ntotal == 360 and IndexShards.load([damaged], verify=False).ntotal == 360
    recorded = json.loads((damaged / "meta.json").read_text())["lists_checksum"]["crc32"]
    with pytest.raises(IntegrityError) as info:
        opened.save(tmp_path / "copy")
    assert str(info.value) == lists_mismatch(damaged / "index.ivfdata", recorded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged"]  # nothing written


def test_folder_without_lists_checksum_opens_and_gets_one_when_saved(folder, tmp_path):
    from mmgene.index import CellIndex

    older = copy(folder, tmp_path / "older")
    meta = json.loads((older / "meta.json").read_text())
    meta.pop("lists_checksum", None)
    (older / "meta.json").write_text(json.dumps(meta))
    index = CellIndex.load(older)
    q = vectors(3, 9)
    for a, b in zip(index.search(q, 4), CellIndex.load(folder).search(q, 4)):
        np.testing.assert_array_equal(a, b)
    saved = json.loads((index.save(tmp_path / "new") / "meta.json").read_text())
    assert saved["lists_checksum"]["crc32"] == crc(older / "index.ivfdata")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"crc32": "XYZ"}, "meta.json field 'lists_checksum.crc32' must be a string matching"),
        ({"sha1": "0"}, "meta.json field 'lists_checksum.sha1' is not a known field"),
        ({"algorithm": "md5"}, "meta.json field 'lists_checksum.algorithm' must be one of"),
    ],
)
def test_a_malformed_lists_checksum_is_refused(folder, tmp_path, change, expected):
    from mmgene.index import CellIndex

    bad = copy(folder, tmp_path / "bad")
    meta = json.loads((bad / "meta.json").read_text())
    meta["lists_checksum"] = {**meta.get("lists_checksum", {"algorithm": ALGORITHM}), **change}
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(MetadataError, match=expected.replace("(", r"\(")):
        CellIndex.load(bad)


def test_a_lists_checksum_without_lists_on_disk_is_refused(tmp_path):
    from mmgene.index import CellIndex

    path = CellIndex.from_vectors(vectors(30, 5), kind="flat").save(tmp_path / "flat")
    meta = json.loads((path / "meta.json").read_text())
    meta["lists_checksum"] = {"algorithm": ALGORITHM, "crc32": "00000000"}
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(MetadataError, match="'lists_checksum' describes inverted lists on disk, but there is no field 'storage'"):
        CellIndex.load(path)
