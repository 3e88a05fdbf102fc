"""Audit of the cell index: a damaged or swapped index.faiss, an index grown after its folder was rebuilt,
search parameters that are not whole numbers, and the order of tied cells. Small random indexes built
with the public API, as in test_index_safety.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_index_safety import DIM, N, build, copy, vectors

from mmgene.errors import IntegrityError, MetadataError, ParameterError


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pristine36")
    kinds = {"flat": {}, "ivf": {"nlist": 4}, "hnsw": {}}
    return {kind: build(kind, **extra).save(root / kind) for kind, extra in kinds.items()}


def _crc_message(path: Path, found: str, recorded: str) -> str:
    return (
        f"index.faiss has crc32 {found} but meta.json field 'index_checksum.crc32' records {recorded}: its bytes were "
        "replaced or damaged since the index was written, so searches would return wrong cells. "
        f"Where: {path / 'index.faiss'}. What to do: rebuild the index with `mmgene index build` (or CellIndex.save); "
        "do not edit the files of an index folder."
    )


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_a_saved_folder_records_the_crc_of_its_index_file(saved, kind):
    from mmgene.index import CellIndex
    from mmgene.index.folder import file_crc32

    meta = json.loads((saved[kind] / "meta.json").read_text())
    assert meta["index_checksum"] == {
        "algorithm": "crc32 (zlib) of index.faiss's bytes", "crc32": file_crc32(saved[kind] / "index.faiss"),
    }
    assert CellIndex.load(saved[kind]).ntotal == N


def test_a_damaged_vector_in_index_faiss_is_refused_not_searched(saved, tmp_path):
    """One float of a flat index's vectors made NaN: FAISS reads the file and answers with a wrong cell."""
    from mmgene.index import CellIndex
    from mmgene.index.folder import file_crc32

    path = copy(saved, tmp_path)
    data = bytearray((path / "index.faiss").read_bytes())
    data[len(data) // 10 : len(data) // 10 + 4] = b"\xff\xff\xff\x7f"
    (path / "index.faiss").write_bytes(bytes(data))
    recorded = json.loads((path / "meta.json").read_text())["index_checksum"]["crc32"]
    for mmap in (True, False):
        with pytest.raises(IntegrityError) as info:
            CellIndex.load(path, mmap=mmap)
        assert str(info.value) == _crc_message(path, file_crc32(path / "index.faiss"), recorded)
    opened = CellIndex.load(path, verify=False)  # unverified, the damage shows as a wrong answer
    assert opened.search(vectors()[:30], 1)[1].ravel().tolist() != list(range(30))


def test_an_index_of_other_vectors_of_the_same_shape_is_refused(saved, tmp_path):
    """Same number of cells, dimension and kind: only the bytes tell the two apart."""
    from mmgene.index import CellIndex, IndexShards

    path = copy(saved, tmp_path)
    other = CellIndex.from_vectors(vectors(seed=1), [f"cell{i:03d}" for i in range(N)]).save(tmp_path / "other")
    shutil.copyfile(other / "index.faiss", path / "index.faiss")
    for open_folder in (CellIndex.load, lambda p: IndexShards.load([p])):
        with pytest.raises(IntegrityError, match="index.faiss has crc32 .* 'index_checksum.crc32' records"):
            open_folder(path)


def test_a_folder_without_index_checksum_opens_and_a_malformed_one_is_refused(saved, tmp_path):
    from mmgene.index import CellIndex

    path = copy(saved, tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    recorded = meta.pop("index_checksum")
    (path / "meta.json").write_text(json.dumps(meta))
    assert CellIndex.load(path).ntotal == N  # written before the checksum: opens as before
    meta["index_checksum"] = {**recorded, "crc32": "XYZ"}
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(MetadataError, match="meta.json field 'index_checksum.crc32' must be a string matching"):
        CellIndex.load(path)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_an_index_grows_from_its_own_vectors_after_its_folder_was_rebuilt(saved, tmp_path, kind):
    """A memory-mapped index is copied into memory before it grows; read again from its folder, rebuilt
    from other vectors in the meantime, it took those vectors beside its own cell table."""
    from mmgene.index import CellIndex

    path = copy(saved, tmp_path, kind)
    extra = {"nlist": 4} if kind == "ivf" else {}
    loaded = CellIndex.load(path)
    rebuilt = CellIndex.from_vectors(vectors(seed=1), [f"cell{i:03d}" for i in range(N)], kind=kind, **extra)
    rebuilt.save(path, overwrite=True)
    new = vectors(1, seed=2)
    loaded.add(new, ["new"])
    loaded.set_search(**({"nprobe": 4} if kind == "ivf" else {"ef_search": 256} if kind == "hnsw" else {}))
    assert loaded.ntotal == N + 1 and loaded.cell_ids[-1] == "new"
    assert loaded.search(vectors()[:20], 1)[1].ravel().tolist() == list(range(20))
    assert loaded.hits(new, 1)["cell_id"].tolist() == ["new"]


def test_a_loaded_ivf_index_saved_elsewhere_keeps_its_lists(saved, tmp_path):
    """FAISS wrote the lists of a memory-mapped IVF index as a reference to the mapped file: the copy
    held no lists, and searching it crashed the process (a subprocess here)."""
    import subprocess
    import sys

    from mmgene.index import CellIndex

    loaded = CellIndex.load(saved["ivf"])
    out = loaded.save(tmp_path / "copy")
    assert loaded.search(vectors()[:20], 1)[1].ravel().tolist() == list(range(20))
    script = (
        "import numpy as np, sys; from mmgene.index import CellIndex; "
        f"q = np.random.default_rng(0).normal(size=({N}, {DIM})).astype(np.float32)[:20]; "
        "print([CellIndex.load(sys.argv[1], mmap=m).search(q, 1)[1].ravel().tolist() for m in (True, False)])"
    )
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == str([list(range(20))] * 2)


def test_search_parameters_must_be_whole_numbers():
    ivf, hnsw = build("ivf", nlist=4), build("hnsw")
    before = (ivf.params.nprobe, hnsw.params.ef_search)
    for value in (2.7, True, "2"):
        with pytest.raises(ParameterError, match=r"nprobe=.* must be a whole number between 1 and nlist=4"):
            ivf.set_search(nprobe=value)
        with pytest.raises(ParameterError, match="ef_search must be a whole number >= 1"):
            hnsw.set_search(ef_search=value)
    assert (ivf.params.nprobe, hnsw.params.ef_search) == before  # untouched by the refusals
    ivf.set_search(nprobe=np.int64(3))
    assert ivf.params.nprobe == 3


def test_tied_cells_come_by_position_as_in_shards(tmp_path):
    """Identical vectors (e.g. cells whose gene sentences are the same) tie exactly; one index and the
    same folder searched as shards order them alike, by position."""
    from mmgene.index import CellIndex, IndexShards

    rng = np.random.default_rng(0)
    same = np.repeat(rng.normal(size=(1, DIM)).astype(np.float32), 30, axis=0)
    x = np.vstack([rng.normal(size=(10, DIM)).astype(np.float32), same])
    index = CellIndex.from_vectors(x)
    scores, found = index.search(x[15:16], 8)
    assert found.tolist() == [list(range(10, 18))]
    path = index.save(tmp_path / "ties")
    s2, f2 = IndexShards.load([path]).search(x[15:16], 8)
    assert f2.tolist() == found.tolist() and np.array_equal(s2, scores)
