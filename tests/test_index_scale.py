"""Atlas-scale index: vectors streamed from disk in chunks, inverted lists on disk, exact re-ranking,
and several index shards searched as one. Small random data, so every test runs in seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmgene.errors import InputFileError, IntegrityError, MetadataError, MissingColumnError, ParameterError

DIM = 16


def clustered(n: int, seed: int, centers: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = np.random.default_rng(99).normal(size=(centers, DIM)).astype(np.float32)
    return (middle[rng.integers(0, centers, n)] + 0.5 * rng.normal(size=(n, DIM))).astype(np.float32)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[Path]:
    """Three .npy files of 300, 250 and 350 vectors."""
    root = tmp_path_factory.mktemp("vectors")
    paths = []
    for i, n in enumerate((300, 250, 350)):
        np.save(root / f"part{i}.npy", clustered(n, i))
        paths.append(root / f"part{i}.npy")
    return paths


def all_vectors(paths) -> np.ndarray:
    return np.concatenate([np.load(p) for p in paths])


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(paths, out, **kw):
    from mmgene.index import NpyShards, StreamBuild, build_streamed

    config = StreamBuild(**{k: kw.pop(k) for k in ("chunk_size", "block_size", "rerank", "rerank_candidates") if k in kw})
    kw.setdefault("kind", "ivf")
    kw.setdefault("nlist", 4)
    return build_streamed(NpyShards(paths), out, config=config, **kw)


@pytest.fixture(scope="module")
def streamed(shards, tmp_path_factory):
    """An IVF index searched with every list (exact), built in chunks of 128 into blocks of 200 vectors."""
    out = tmp_path_factory.mktemp("idx") / "streamed"
    return build(shards, out, chunk_size=128, block_size=200, nprobe=4)


# ---------------------------------------------------------------------- sources
def test_npy_shards_read_in_bounded_chunks_and_take_rows(shards):
    from mmgene.index import NpyShards

    source = NpyShards(shards)
    assert (source.n, source.dim, len(source.parts)) == (900, DIM, 3)
    reads = []
    starts = []
    for start, x, ids in source.chunks(128):
        reads.append(len(x))
        starts.append(start)
        assert ids[0] == str(start) and len(ids) == len(x) and x.dtype == np.float32
    assert max(reads) == 128 and sum(reads) == 900
    assert starts[:4] == [0, 128, 256, 300]  # a chunk never spans two files
    x = all_vectors(shards)
    rows = [899, 0, 301, 301, 550]
    np.testing.assert_array_equal(source.take(rows), x[rows])
    with pytest.raises(ParameterError, match=r"rows must lie in \[0, 900\)"):
        source.take([900])
    with pytest.raises(ParameterError, match="chunk_size must be at least 1"):
        next(source.chunks(0))


def test_npy_shards_refuse_bad_files(shards, tmp_path):
    from mmgene.index import NpyShards

    np.save(tmp_path / "wide.npy", np.zeros((3, DIM + 1), np.float32))
    np.save(tmp_path / "flat.npy", np.zeros(5, np.float32))
    (tmp_path / "ids.txt").write_text("a\nb\n")
    with pytest.raises(ParameterError, match=r"different dimensions \[16, 17\]"):
        NpyShards([shards[0], tmp_path / "wide.npy"])
    with pytest.raises(InputFileError, match=r"expected a non-empty 2-D numeric array, got shape \(5,\)"):
        NpyShards([tmp_path / "flat.npy"])
    with pytest.raises(InputFileError, match="file not found"):
        NpyShards([tmp_path / "missing.npy"])
    with pytest.raises(ParameterError, match="2 ids for 300 vectors of part0.npy"):
        NpyShards([shards[0]], ids=[tmp_path / "ids.txt"])


@pytest.mark.filterwarnings("ignore:Writing zarr v2 data")
@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_anndata_obsm_is_read_from_disk_in_chunks(tmp_path, suffix):
    import anndata as ad

    from mmgene.index import AnnDataObsm

    x = clustered(120, 5)
    obs = pd.DataFrame({"cell_type": pd.Categorical(["T", "B", "NK"] * 40)}, index=[f"cell{i}" for i in range(120)])
    adata = ad.AnnData(obs=obs, obsm={"X_emb": x})
    path = tmp_path / f"a{suffix}"
    adata.write_h5ad(path) if suffix == ".h5ad" else adata.write_zarr(path)
    source = AnnDataObsm([path], "X_emb", obs_columns=["cell_type"])
    chunks = list(source.chunks(50))
    assert [len(c[1]) for c in chunks] == [50, 50, 20] and chunks[1][2][0] == "cell50"
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), x)
    np.testing.assert_array_equal(source.take([7, 3, 7]), x[[7, 3, 7]])
    assert source.obs()["cell_type"].tolist() == ["T", "B", "NK"] * 40
    with pytest.raises(MissingColumnError):
        AnnDataObsm([path], "X_other")
    with pytest.raises(MissingColumnError):
        AnnDataObsm([path], "X_emb", obs_columns=["donor"]).obs()


# ---------------------------------------------------------------------- streamed build
def test_streamed_ivf_with_every_list_equals_exact_search(shards, streamed):
    from mmgene.index import CellIndex

    x = all_vectors(shards)
    exact = CellIndex.from_vectors(x, kind="flat")
    queries = clustered(40, 77)
    s_exact, p_exact = exact.search(queries, 10)
    for rerank in (None, False):
        s, p = streamed.search(queries, 10, rerank=rerank)
        np.testing.assert_array_equal(p, p_exact)
        np.testing.assert_allclose(s, s_exact, atol=1e-5)
    assert streamed.on_disk and streamed.kind == "ivf" and streamed.ntotal == 900
    assert streamed.cell_ids[:3].tolist() == ["0", "1", "2"]
    np.testing.assert_allclose(streamed.vectors(positions=[5, 899]), unit(x[[5, 899]]), atol=1e-6)


def test_streamed_folder_layout_and_metadata(shards, streamed):
    folder = streamed._path
    assert sorted(p.name for p in folder.iterdir()) == [".mmgene-output", "cells.parquet", "index.faiss", "index.ivfdata", "meta.json"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["format_version"] == 3 and meta["factory"] == "IVF4,Flat"
    assert meta["storage"] == {"lists": "ondisk", "file": "index.ivfdata", "bytes": (folder / "index.ivfdata").stat().st_size}
    files = meta["rerank"]["source"]["files"]
    assert [f["rows"] for f in files] == [300, 250, 350] and [Path(f["path"]).name for f in files] == ["part0.npy", "part1.npy", "part2.npy"]
    assert meta["rerank"]["candidates"] == 10 and meta["params"]["calibrated"]["given_by_user"] is True
    # lists hold 4-byte floats and an 8-byte id per vector: nothing else grows with the cells
    assert meta["storage"]["bytes"] == 900 * (DIM * 4 + 8)


def test_chunk_and_block_sizes_do_not_change_the_index(shards, streamed, tmp_path):
    other = build(shards, tmp_path / "other", chunk_size=1000, block_size=10_000, nprobe=4)
    queries = clustered(30, 78)
    for a, b in zip(other.search(queries, 7, rerank=False), streamed.search(queries, 7, rerank=False)):
        np.testing.assert_array_equal(a, b)


def test_chunks_read_are_never_larger_than_asked(shards, tmp_path, monkeypatch):
    from mmgene.index import NpyShards, StreamBuild, build_streamed

    source = NpyShards(shards)
    reads: list[int] = []
    block, read_rows = source._block, source._read_rows

    def record(read):
        def wrapped(*args):
            out = read(*args)
            reads.append(len(out))
            return out

        return wrapped

    monkeypatch.setattr(source, "_block", record(block))
    monkeypatch.setattr(source, "_read_rows", record(read_rows))
    build_streamed(source, tmp_path / "i", kind="ivf", nlist=4, train_size=64, calibration_queries=20, config=StreamBuild(chunk_size=50, rerank=False))
    assert max(reads) <= 64  # chunks of 50; the training sample (64 rows) and calibration queries (20) are read as chosen
    assert reads.count(50) == 18 and sum(reads) == 900 + 64 + 20  # 18 chunks, then the sample and the queries, by file


def test_ivfpq_with_reranking_recovers_exact_neighbours(shards, tmp_path):
    x = all_vectors(shards)
    idx = build(shards, tmp_path / "pq", kind="ivfpq", nlist=4, pq_m=8, pq_nbits=4, nprobe=4, rerank_candidates=20)
    queries = clustered(50, 79)
    truth = np.argsort(-(unit(queries) @ unit(x).T), axis=1, kind="stable")[:, :5]
    _, coarse = idx.search(queries, 5, rerank=False)
    scores, fine = idx.search(queries, 5)
    from mmgene.index.faiss_index import recall_at_k

    assert recall_at_k(fine, truth) >= 0.98 > recall_at_k(coarse, truth)
    np.testing.assert_allclose(scores, np.take_along_axis(unit(queries) @ unit(x).T, fine, axis=1), atol=1e-5)
    meta = json.loads((tmp_path / "pq" / "meta.json").read_text())
    assert meta["storage"]["bytes"] == 900 * (4 + 8)  # 8 sub-quantisers x 4 bits = 4 bytes a vector, plus its id


def test_calibration_uses_exact_neighbours_found_while_adding(shards, tmp_path):
    idx = build(shards, tmp_path / "cal", nlist=8, target_recall=0.99, calibration_queries=60, rerank=False)
    cal = idx.params.calibrated
    assert cal["given_by_user"] is False and cal["queries"] == 60 and cal["recall"] >= 0.99
    assert cal["curve"][-1] == [cal["value"], cal["recall"]] and idx.params.nprobe == cal["value"]


def test_duplicate_ids_and_bad_arguments_are_refused(shards, tmp_path):
    from mmgene.index import NpyShards, build_streamed

    id_files = []
    for i, path in enumerate(shards):
        n = np.load(path, mmap_mode="r").shape[0]
        ids = [f"c{j}" for j in range(n)] if i != 1 else [f"d{j}" for j in range(n)]
        id_files.append(tmp_path / f"ids{i}.txt")
        id_files[-1].write_text("\n".join(ids) + "\n")
    with pytest.raises(ParameterError, match=r"cell ids are not unique \(e.g. 'c0', rows 0 and 550\)"):
        build_streamed(NpyShards(shards, ids=id_files), tmp_path / "dup", kind="ivf", nlist=4)
    assert not (tmp_path / "dup").exists()
    with pytest.raises(ParameterError, match="a streamed build makes an IVF index, got kind='flat'"):
        build_streamed(NpyShards(shards), tmp_path / "flat", kind="flat")
    with pytest.raises(ParameterError, match="unknown index parameters: nprobes"):
        build_streamed(NpyShards(shards), tmp_path / "x", nprobes=3)
    with pytest.raises(ParameterError, match="obs has 2 rows for 900 vectors"):
        build_streamed(NpyShards(shards), tmp_path / "x", obs=pd.DataFrame({"a": [1, 2]}))


def test_obs_columns_and_save_elsewhere(shards, tmp_path):
    from mmgene.index import CellIndex

    obs = pd.DataFrame({"cell_type": pd.Categorical([f"t{i % 3}" for i in range(900)]), "n": np.arange(900)})
    model = str(tmp_path / "model")  # a model folder not written yet: recorded unchecked
    idx = build(shards, tmp_path / "a", obs=obs, nprobe=4, embedding_key="X_emb", model=model)
    table = idx.hits(clustered(2, 80), k=3)
    assert list(table.columns) == ["query", "rank", "cell_id", "score", "cell_type", "n", "position"]
    assert (table["n"].astype(int) == table["position"]).all()
    assert (table["cell_type"] == [f"t{p % 3}" for p in table["position"]]).all()
    moved = idx.save(tmp_path / "b")
    again = CellIndex.load(moved)
    assert (moved / "index.ivfdata").is_file() and again.model == model
    for a, b in zip(again.search(clustered(5, 81), 4), idx.search(clustered(5, 81), 4)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ParameterError, match="cannot grow in place"):
        again.add(clustered(1, 82), ["new"])


def test_load_refuses_changed_lists_or_vectors(shards, streamed, tmp_path):
    from mmgene.index import CellIndex

    folder = Path(shutil.copytree(streamed._path, tmp_path / "copy"))
    with open(folder / "index.ivfdata", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(IntegrityError, match="index.ivfdata has .* bytes but meta.json field 'storage.bytes' records"):
        CellIndex.load(folder)
    (folder / "index.ivfdata").unlink()
    with pytest.raises(InputFileError, match="the inverted lists file index.ivfdata is missing"):
        CellIndex.load(folder)

    vectors = [Path(shutil.copy(p, tmp_path / p.name)) for p in shards]
    idx = build(vectors, tmp_path / "own", nprobe=4)
    changed = np.load(vectors[1])
    changed[0] += 1.0
    np.save(vectors[1], changed)
    with pytest.raises(IntegrityError, match="part1.npy changed since the index was built"):
        CellIndex.load(idx._path)
    vectors[2].unlink()
    with pytest.raises(InputFileError, match="the vectors used for exact re-ranking are missing"):
        CellIndex.load(idx._path)
    plain = CellIndex.load(idx._path, rerank=False)
    assert plain.rerank_source is None and plain.search(clustered(2, 83), 3)[1].shape == (2, 3)
    with pytest.raises(ParameterError, match="this index has no vectors to re-rank from"):
        plain.search(clustered(2, 83), 3, rerank=True)


def test_meta_fields_of_the_on_disk_format_are_checked(streamed, tmp_path):
    from mmgene.index import CellIndex

    cases = {
        "storage file": (("storage", "file"), "../evil.ivfdata", "'storage.file' must be a string matching"),
        "rerank rows": (("rerank", "source", "files"), [], "'rerank.source.files' must list at least one file"),
        "rerank dim": (("rerank", "source", "dim"), 3, "'rerank.source.dim' is 3 but field 'dim' is 16"),
        "version": (("format_version",), 2, "'format_version' must be 3 with 'storage' or 'rerank', got 2"),
    }
    for name, (keys, value, expected) in cases.items():
        folder = Path(shutil.copytree(streamed._path, tmp_path / name.replace(" ", "_")))
        meta = json.loads((folder / "meta.json").read_text())
        target = meta
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        (folder / "meta.json").write_text(json.dumps(meta))
        with pytest.raises(MetadataError) as info:
            CellIndex.load(folder)
        assert expected in str(info.value), name


# ---------------------------------------------------------------------- shards
def test_exact_shards_give_the_single_index_results(shards, tmp_path):
    from mmgene.index import CellIndex, IndexShards

    x = all_vectors(shards)
    ids = [f"cell{i}" for i in range(900)]
    obs = pd.DataFrame({"group": [f"g{i % 5}" for i in range(900)]})
    single = CellIndex.from_vectors(x, ids, obs, kind="flat")
    bounds = [0, 300, 550, 900]
    folders = []
    for i in range(3):
        part = CellIndex.from_vectors(x[bounds[i] : bounds[i + 1]], ids[bounds[i] : bounds[i + 1]], obs.iloc[bounds[i] : bounds[i + 1]], kind="flat")
        folders.append(part.save(tmp_path / f"s{i}"))
    sharded = IndexShards.load(folders)
    assert sharded.ntotal == 900 and sharded.locate([0, 300, 899]) == [(0, 0), (1, 0), (2, 349)]
    queries = clustered(60, 84)
    s1, p1 = single.search(queries, 12)
    s2, p2 = sharded.search(queries, 12)
    np.testing.assert_array_equal(p2, p1)
    np.testing.assert_array_equal(s2, s1)
    a, b = single.hits(queries[:3], 4), sharded.hits(queries[:3], 4)
    assert a["cell_id"].tolist() == b["cell_id"].tolist() and a["group"].tolist() == b["group"].tolist()
    np.testing.assert_array_equal(a["score"], b["score"])
    assert sharded.search(queries[:2], 5000)[1].shape == (2, 900)


def test_streamed_shards_merge_like_one_streamed_index(shards, streamed, tmp_path):
    from mmgene.index import IndexShards, NpyShards, build_streamed

    first = build_streamed(NpyShards(shards[:2]), tmp_path / "a", kind="ivf", nlist=4, nprobe=4)
    second = build_streamed(NpyShards(shards[2:], ids=[_ids_file(tmp_path, range(550, 900))]), tmp_path / "b", kind="ivf", nlist=4, nprobe=4)
    sharded = IndexShards([first, second])
    queries = clustered(30, 85)
    s1, p1 = streamed.search(queries, 10)
    s2, p2 = sharded.search(queries, 10)
    np.testing.assert_array_equal(p2, p1)
    np.testing.assert_allclose(s2, s1, atol=1e-6)


def _ids_file(tmp_path, numbers) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(map(str, numbers)) + "\n")
    return path


def test_shards_must_agree_and_not_share_cells(tmp_path):
    from mmgene.index import CellIndex, IndexShards

    a = CellIndex.from_vectors(clustered(20, 1), [f"a{i}" for i in range(20)], kind="flat")
    b = CellIndex.from_vectors(clustered(20, 2), [f"a{i}" for i in range(19)] + ["b"], kind="flat")
    with pytest.raises(ParameterError, match=r"cell id 'a0' is in two shards \(shard 0 and shard 1\)"):
        IndexShards([a, b])
    wide = CellIndex.from_vectors(np.random.default_rng(0).normal(size=(20, DIM + 2)), [f"w{i}" for i in range(20)], kind="flat")
    with pytest.raises(ParameterError, match="the shards disagree on their dimension: 16 in shard 0, 18 in shard 1"):
        IndexShards([a, wide])
    other = CellIndex.from_vectors(clustered(20, 3), [f"o{i}" for i in range(20)], kind="flat", model="model-not-written-yet")
    with pytest.raises(ParameterError, match="disagree on their model"):
        IndexShards([a, other])
    with pytest.raises(ParameterError, match="no index shard given"):
        IndexShards([])
    with pytest.raises(ParameterError, match="query vectors have dimension 3, the shards have 16"):
        IndexShards([a]).search(np.ones((1, 3)), 2)


def test_arrow_checksum_equals_the_text_checksum():
    import pyarrow as pa

    from mmgene.index.folder import cell_ids_sha256

    ids = ["a", "bc", "", "zellé", "细胞", "x" * 300]
    expected = cell_ids_sha256(list(ids))
    assert cell_ids_sha256(pa.chunked_array([pa.array(ids[:2]), pa.array(ids[2:])])) == expected
    assert cell_ids_sha256(pa.array(ids).slice(0)) == expected
    assert cell_ids_sha256(pa.chunked_array([pa.array(ids, pa.large_string())])) == expected
    assert cell_ids_sha256(pd.Series(ids, dtype=object)) == expected
    assert cell_ids_sha256(pd.Series(ids, dtype="string[pyarrow]")) == expected
    assert cell_ids_sha256(pa.array(["ab", "cd"]).slice(1)) == cell_ids_sha256(["cd"])
    assert cell_ids_sha256(pd.Series([1, "a"], dtype=object)) == cell_ids_sha256(["1", "a"])


# ---------------------------------------------------------------------- command line
def test_cli_builds_a_streamed_index_and_refuses_what_it_cannot_do(tmp_path):
    import anndata as ad
    from hostile import assert_refused, run_cli

    obs = pd.DataFrame({"cell_type": [f"t{i % 3}" for i in range(400)]}, index=[f"cell{i}" for i in range(400)])
    ad.AnnData(obs=obs, obsm={"X_emb": clustered(400, 7)}).write_h5ad(tmp_path / "a.h5ad")
    out = tmp_path / "idx"
    res = run_cli("index", "build", str(tmp_path / "a.h5ad"), "-e", "X_emb", "--out", str(out), "--stream", "--kind", "ivf",
                  "--nlist", "4", "--nprobe", "4", "--chunk-size", "64", "--json")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["cells"] == 400 and result["factory"] == "IVF4,Flat" and result["obs_columns"] == ["cell_type"]
    from mmgene.index import CellIndex

    idx = CellIndex.load(out)
    assert idx.on_disk and idx.rerank_source is not None and idx.cells["cell_id"].tolist()[:2] == ["cell0", "cell1"]
    table = json.loads(run_cli("query", str(out), "--cell", "cell5", "-k", "3", "--json").stdout)["hits"]
    assert [h["cell_id"] for h in table][0] != "cell5" and len(table) == 3
    assert_refused(["index", "build", tmp_path / "a.h5ad", "-e", "X_emb", "--out", tmp_path / "flat", "--stream", "--kind", "flat"],
                   [tmp_path], contains="--stream builds an IVF index, not --kind flat")
    assert_refused(["index", "build", tmp_path / "a.h5ad", "-e", "X_emb", "--out", tmp_path / "skip", "--stream", "--skip-missing"],
                   [tmp_path], contains="--skip-missing cannot apply")
    assert_refused(["query", out, "--cell", "cell5", "--shard", out], [tmp_path], contains="--shard searches text queries only")


@pytest.mark.parametrize("seed", [0, 3])
def test_a_streamed_build_names_the_cell_of_a_bad_vector_in_its_samples(tmp_path, seed):
    import anndata as ad

    from mmgene.errors import NonFiniteError
    from mmgene.index import AnnDataObsm, build_streamed

    x = clustered(700, 7)
    x[[600, 601, 602]] = np.nan
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(700)])
    ad.AnnData(obs=obs, obsm={"X_emb": x}).write_h5ad(tmp_path / "a.h5ad")
    with pytest.raises(NonFiniteError, match=r"first at cell 'cell60[0-2]'"):
        build_streamed(AnnDataObsm([tmp_path / "a.h5ad"], "X_emb"), tmp_path / "idx", kind="ivf", nlist=4, seed=seed)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.h5ad"]


def test_first_repeat_finds_the_earliest_repeat_and_confirms_hash_matches_on_the_text(monkeypatch):
    import pyarrow as pa

    from mmgene.index.folder import first_repeat

    assert first_repeat([]) is None and first_repeat(["a"]) is None and first_repeat(["a", "b", "c"]) is None
    assert first_repeat(["x", "b", "c", "b", "x"]) == (1, 3)  # 'b' repeats first (row 3), before 'x' (row 4)
    assert first_repeat(pa.chunked_array([["a", "b"], ["c", "d", "b"]])) == (1, 4)  # across Arrow chunks
    ids = [f"c{i}" for i in range(1000)]
    ids[700], ids[900] = "c3", "c5"
    assert first_repeat(ids) == (3, 700)
    # every id given the same hash: only the text decides, so distinct ids are never called repeats
    monkeypatch.setattr(pd.util, "hash_array", lambda values, categorize=False: np.zeros(len(values), np.uint64))
    assert first_repeat(["a", "b", "c"]) is None
    assert first_repeat(["a", "b", "c", "b", "a"]) == (1, 3)


def test_a_streamed_index_whose_vectors_moved_is_searched_with_no_rerank(tmp_path):
    import anndata as ad
    from hostile import assert_refused, run_cli_here

    from mmgene.index import AnnDataObsm, CellIndex, build_streamed

    obs = pd.DataFrame({"cell_type": [f"t{i % 3}" for i in range(400)]}, index=[f"cell{i}" for i in range(400)])
    ad.AnnData(obs=obs, obsm={"X_emb": clustered(400, 7)}).write_h5ad(tmp_path / "a.h5ad")
    counts = np.random.default_rng(8).poisson(2.0, (20, 5)).astype(np.float32)  # transfer reads an AnnData with expression
    ad.AnnData(counts, obs=obs.iloc[:20].rename(index=lambda c: f"q{c}"), var=pd.DataFrame(index=["CD3E", "MS4A1", "NKG7", "LYZ", "GNLY"]),
               obsm={"X_emb": clustered(20, 8)}).write_h5ad(tmp_path / "q.h5ad")
    out = tmp_path / "idx"
    build_streamed(AnnDataObsm([tmp_path / "a.h5ad"], "X_emb", obs_columns=["cell_type"]), out, kind="ivf", nlist=4, nprobe=4, embedding_key="X_emb")
    before = json.loads(run_cli_here("query", out, "--cell", "cell5", "-k", "3", "--json").stdout)["hits"]
    recorded = json.loads((out / "meta.json").read_text())["rerank"]["source"]["files"][0]["path"]
    (tmp_path / "a.h5ad").rename(tmp_path / "moved.h5ad")

    expected = (
        f"the vectors used for exact re-ranking are missing: {recorded}. Where: {out / 'meta.json'} field 'rerank'. "
        "What to do: restore the files, or search with the index's compressed codes only: `mmgene query --no-rerank` "
        "(or `mmgene transfer --no-rerank`); CellIndex.load(path, rerank=False) in Python."
    )
    assert assert_refused(["query", out, "--cell", "cell5"], [tmp_path]) == f"mmgene: error: {expected}"
    assert_refused(["transfer", out, tmp_path / "q.h5ad", "-c", "cell_type", "-o", tmp_path / "t.h5ad"], [tmp_path], contains=expected)
    # the option the advice names: the index's own codes (exact for IVF-Flat), so the same hits
    res = run_cli_here("query", out, "--cell", "cell5", "-k", "3", "--json", "--no-rerank")
    assert res.returncode == 0, res.stderr
    assert [h["cell_id"] for h in json.loads(res.stdout)["hits"]] == [h["cell_id"] for h in before]
    res = run_cli_here("transfer", out, tmp_path / "q.h5ad", "-c", "cell_type", "-o", tmp_path / "t.h5ad", "--no-rerank", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["cells"] == 20 and (tmp_path / "t.h5ad").is_file()
    # index info describes the folder and says what is missing instead of failing
    res = run_cli_here("index", "info", out, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["rerank"] == {"candidates": 10, "files": [recorded], "problem": expected}
    res = run_cli_here("index", "info", out)
    assert res.stdout.splitlines()[-1] == f"rerank:     10 candidates a hit re-scored exactly from 1 file(s) (a.h5ad); not available: {expected}"
    (tmp_path / "moved.h5ad").rename(tmp_path / "a.h5ad")
    assert json.loads(run_cli_here("index", "info", out, "--json").stdout)["rerank"]["problem"] is None
    assert run_cli_here("index", "info", out).stdout.splitlines()[-1].endswith("(a.h5ad); available")
    with pytest.raises(IntegrityError, match=r"or search with its compressed codes only: `mmgene query --no-rerank`.*rerank=False\) in Python"):
        changed = ad.read_h5ad(tmp_path / "a.h5ad")
        changed.obsm["X_emb"][0] += 1.0
        changed.write_h5ad(tmp_path / "a.h5ad")
        CellIndex.load(out)
    assert CellIndex.load(out, rerank=False).vectors(["cell5"]).shape == (1, DIM)  # the codes' vector, looked up without the files


def test_damaged_lists_on_disk_are_refused_not_read_past_their_end(streamed, tmp_path):
    """FAISS memory-maps index.ivfdata where index.faiss says the lists are: a truncated file whose size
    meta.json was edited to match crashed the process (SIGBUS), and lists with damaged ids gave positions of
    no cell (a raw IndexError). Both are refused with the folder named (the load runs in a child process,
    so that a crash fails this test rather than ending the run)."""
    import subprocess
    import sys

    from mmgene.index import CellIndex

    folder = Path(shutil.copytree(streamed._path, tmp_path / "cut"))
    data = (folder / "index.ivfdata").read_bytes()
    (folder / "index.ivfdata").write_bytes(data[: len(data) // 4])
    meta = json.loads((folder / "meta.json").read_text())
    meta["storage"]["bytes"] = len(data) // 4
    (folder / "meta.json").write_text(json.dumps(meta))
    script = (
        "import sys, numpy as np\nfrom mmgene.index import CellIndex\nfrom mmgene.errors import IntegrityError\n"
        "try:\n    CellIndex.load(sys.argv[1], rerank=False).search(np.ones((2, 16), np.float32), 5)\n"
        "except IntegrityError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"index.faiss expects {len(data):,} bytes of lists, but index.ivfdata has {len(data) // 4:,}" in done.stdout
    assert str(folder / "index.ivfdata") in done.stdout

    folder = Path(shutil.copytree(streamed._path, tmp_path / "garbled"))
    noise = np.random.default_rng(1).integers(0, 255, len(data), dtype=np.uint8)
    (folder / "index.ivfdata").write_bytes(noise.tobytes())
    with pytest.raises(IntegrityError, match="index.ivfdata has crc32 .* but meta.json field 'lists_checksum.crc32' records"):
        CellIndex.load(folder, rerank=False)
    # unverified (verify=False), the search still refuses ids of no cell
    with pytest.raises(IntegrityError, match="outside its 900 cells, so its inverted lists are damaged") as info:
        CellIndex.load(folder, rerank=False, verify=False).hits(clustered(3, 86), 5)
    assert str(folder) in str(info.value)
