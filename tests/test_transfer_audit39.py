"""Label transfer and streamed index builds, audited on real corpus labels and tiny AnnData.

* ``k`` above the reference's cells was run silently: every query cell took the whole reference as its
  neighbours (uniform: all got the reference's majority label) and ``k`` recorded in uns was never used.
* Query cells whose neighbours were all unlabelled reference cells were called unknown without a word.
* ``index build --stream`` did not take the joint space FILE records for the vectors, which the in-memory
  build of the same file does, so the index answered no text query and transfer could not embed a query.
"""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from mmgene.errors import ParameterError


def _reference(labels: list[object]):
    """An index of one cell per label on the axes of a plane (unit vectors at angles 0, 10, 20, ... degrees)."""
    from mmgene.index import CellIndex

    angles = np.deg2rad(10.0 * np.arange(len(labels)))
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    table = pd.DataFrame({"ct": pd.Series(labels, dtype=object)})
    return CellIndex.from_vectors(vectors, [f"r{i}" for i in range(len(labels))], table, embedding_key="X_emb")


def _query(n: int = 2) -> ad.AnnData:
    angles = np.deg2rad(10.0 * np.arange(n) + 1.0)
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    var = pd.DataFrame(index=["CD3E", "MS4A1", "LYZ"])
    return ad.AnnData(np.ones((n, 3), np.float32), obs=pd.DataFrame(index=[f"q{i}" for i in range(n)]), var=var, obsm={"X_emb": vectors})


def test_k_above_the_reference_cells_is_refused_and_the_query_is_left_alone():
    from mmgene.query import transfer_labels

    ref, query = _reference(["a", "a", "b", "b", "a", "b"]), _query()
    with pytest.raises(ParameterError) as err:
        transfer_labels(ref, query, "ct", k=7, weighting="uniform")
    assert str(err.value) == (
        "k=7 is more than the 6 cells of the reference index: every query cell would take all of them as neighbours "
        "and get (nearly) the reference's most common label. Where: transfer_labels(k=...). What to do: use k of at "
        "most 6 (e.g. 6), or a larger reference."
    )
    assert list(query.obs.columns) == [] and "mmgene" not in query.uns
    out = transfer_labels(ref, query, "ct", k=6, weighting="uniform")  # all of them is still allowed
    assert out["confidence"].tolist() == [0.5, 0.5]


def test_cli_transfer_with_k_above_the_reference_leaves_the_file(tmp_path):
    from hostile import assert_refused

    _reference(["a", "b", "a"]).save(tmp_path / "idx")
    _query().write_h5ad(tmp_path / "q.h5ad")
    line = assert_refused(["transfer", tmp_path / "idx", tmp_path / "q.h5ad", "-c", "ct", "--in-place", "-k", "5000"], [tmp_path])
    assert line.startswith("mmgene: error: k=5000 is more than the 3 cells of the reference index")


def test_cells_with_only_unlabelled_neighbours_are_said_to_be_unknown(capsys, monkeypatch):
    from mmgene.query import transfer_labels
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "quiet", False)
    ref = _reference(["a", None, "b", np.nan])  # q0 is nearest r0 ('a'), q1 nearest r1 (no label)
    out = transfer_labels(ref, _query(), "ct", k=1)
    assert out["label"].tolist() == ["a", "unknown"] and out["confidence"].tolist() == [1.0, 0.0]
    assert capsys.readouterr().err.splitlines() == [
        "2 of 4 reference cells have no label in 'ct' and do not vote; 1 query cells found no labelled neighbour: called 'unknown'"
    ]
    transfer_labels(ref, _query(1), "ct", k=1)  # every cell found a labelled neighbour: nothing to say
    assert capsys.readouterr().err == ""


def test_real_labels_with_gaps_and_unused_categories(shared_dir, capsys, monkeypatch):
    """Kang et al. PBMC labels (a slice), a third of them removed and two unused categories added."""
    from mmgene.index import CellIndex
    from mmgene.query import transfer_labels
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "quiet", False)
    kang = ad.read_h5ad(shared_dir / "corpus" / "kang_ifnb_pbmc.h5ad")[:60]
    labels = kang.obs["cell_type_name"].astype(object).copy()
    labels.iloc[::3] = np.nan
    cats = [*kang.obs["cell_type_name"].cat.categories, "platelet", "erythrocyte"]
    obs = pd.DataFrame({"ct": pd.Categorical(labels, categories=cats)}).reset_index(drop=True)
    vectors = np.log1p(np.asarray(kang.X[:, :200].todense(), dtype=np.float32)) + 0.01
    ref = CellIndex.from_vectors(vectors, list(map(str, kang.obs_names)), obs, embedding_key="X_log")
    out = transfer_labels(ref, vectors, "ct", k=1)  # each cell finds itself
    known = labels.notna().to_numpy()
    assert (out["label"].to_numpy()[known] == labels.to_numpy()[known]).all()
    assert (out["label"].to_numpy()[~known] == "unknown").all() and out.attrs["labels"] == sorted(set(labels.dropna()))
    assert capsys.readouterr().err.startswith("20 of 60 reference cells have no label in 'ct' and do not vote; 20 query")
    with pytest.raises(ParameterError, match="k=61 is more than the 60 cells"):
        transfer_labels(ref, vectors, "ct", k=61)


def test_streamed_build_names_the_model_an_in_memory_build_names(tmp_path):
    from hostile import run_cli_here

    from mmgene.index import CellIndex

    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"ct": ["a", "b", "c"] * 10}, index=[f"c{i}" for i in range(30)])
    ad.AnnData(obs=obs, obsm={"X_genept_w": rng.normal(size=(30, 384)).astype(np.float32)}).write_h5ad(tmp_path / "a.h5ad")
    ad.AnnData(obs=obs, obsm={"X_genept_w": rng.normal(size=(30, 8)).astype(np.float32)}).write_h5ad(tmp_path / "b.h5ad")
    models = []
    for extra in ([], ["--stream", "--kind", "ivf", "--nlist", "2"]):
        out = tmp_path / f"idx{len(models)}"
        res = run_cli_here("index", "build", str(tmp_path / "a.h5ad"), "-e", "X_genept_w", "-o", str(out), *extra, "--json")
        assert res.returncode == 0, res.stderr
        models.append((json.loads(res.stdout)["model"], CellIndex.load(out).model))
    assert models == [("genept-w", "genept-w"), ("genept-w", "genept-w")]
    # vectors of another dimension under that key are no GenePT-w vectors: no model, and no refusal for one not asked for
    res = run_cli_here("index", "build", str(tmp_path / "b.h5ad"), "-e", "X_genept_w", "-o", str(tmp_path / "other"),
                       "--stream", "--kind", "ivf", "--nlist", "2", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["model"] is None, res.stderr
