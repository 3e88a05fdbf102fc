"""`mmgene demo` on the embedded default: every output exists and the model beats the GenePT-s baseline."""

from __future__ import annotations

import json

import pytest

EXPECTED = [
    "model", "index", "annotated.h5ad", "report.md", "report.json",
    "umap_true.png", "umap_predicted.png", "confusion.png", "query_umap.png",
]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    """``mmgene demo`` with no argument, as a fresh process would run it (in this one: tests/hostile.py)."""
    from hostile import run_cli_here

    out = tmp_path_factory.mktemp("demo")
    proc = run_cli_here("demo", "--out", out / "result")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "result", proc.stdout


def test_every_output_exists(demo_out):
    out, stdout = demo_out
    for name in EXPECTED:
        assert (out / name).exists(), name
    for png in ("umap_true.png", "umap_predicted.png", "confusion.png", "query_umap.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "mmgene demo finished" in stdout and "GenePT-s" in stdout and "textbook marker genes, no model" in stdout
    assert [p.name for p in out.parent.iterdir()] == ["result"]  # built in a staging folder beside it, renamed: no leftover


def test_outputs_name_the_folder_not_its_staging_folder(demo_out):
    """The demo builds its folder as .result.*.tmp and renames it: the paths it records name result/."""
    import anndata as ad

    from mmgene.index import CellIndex

    out, _ = demo_out
    model = str(out / "model")
    assert CellIndex.load(out / "index").model == model
    assert json.loads((out / "report.json").read_text())["demo"]["model"] == model
    card = (out / "model" / "README.md").read_text()
    assert model in card and ".tmp" not in card  # the card's loading code points at the model's folder
    assert ".tmp" not in str(ad.read_h5ad(out / "annotated.h5ad").uns)


def test_report_beats_genept_s_baseline(demo_out):
    out, _ = demo_out
    report = json.loads((out / "report.json").read_text())
    model, base = report["zero_shot"], report["baseline"]
    assert model["balanced_accuracy"] > base["balanced_accuracy"]
    assert model["macro_auroc"] > base["macro_auroc"]
    marker = report["marker_baseline"]  # no model: mean z-scored textbook markers (CD14, CD34 absent here)
    assert marker["markers_found"]["CD34+"] == [] and marker["markers_found"]["CD14+ Monocyte"] == ["LYZ"]
    assert model["macro_auroc"] > marker["macro_auroc"]
    md = (out / "report.md").read_text()
    assert "GenePT-s" in md and "## Text queries" in md and "textbook marker genes" in md
    assert "| 0.500 | none (of FOXP3, IL2RA) |" in md  # the class's markers are not among the 765 genes


def test_annotated_anndata_and_index(demo_out):
    import anndata as ad

    out, _ = demo_out
    adata = ad.read_h5ad(out / "annotated.h5ad")
    assert adata.n_obs == 700
    assert {"mmgene_label", "mmgene_score", "cell_sentence"} <= set(adata.obs.columns)
    assert {"X_mmgene", "X_genept_w", "X_umap_mmgene"} <= set(adata.obsm.keys())
    assert adata.obsm["X_mmgene"].shape[0] == 700
    from mmgene.index import CellIndex

    index = CellIndex.load(out / "index")
    assert index.ntotal == 700


def test_demo_plots_step_writes_the_four_pngs_from_mmgene_pl(tmp_path, pbmc68k):
    """The plotting step alone, on a stand-in joint space (PCA): scanpy's UMAP in obsm, four PNGs, no figure left open."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from mmgene.demo import JOINT_KEY, _plots

    class PCASpace:
        def encode_text(self, texts):
            return np.eye(1, pbmc68k.obsm["X_pca"].shape[1], dtype=np.float32).repeat(len(texts), axis=0)

        def encode_cells(self, adata):
            return adata.obsm[JOINT_KEY]

        def describe(self):
            return {"model": "pca", "inputs": ["X_pca"]}

    adata = pbmc68k
    adata.obsm[JOINT_KEY] = adata.obsm["X_pca"] / np.linalg.norm(adata.obsm["X_pca"], axis=1, keepdims=True)
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    predicted = labels.copy()
    predicted[::7] = "unknown"
    open_before = set(plt.get_fignums())
    files = _plots(adata, labels, predicted, PCASpace(), "cytotoxic T cells", tmp_path, label_col="bulk_labels", seen="80%", seed=0)
    assert sorted(files) == sorted(EXPECTED[5:]) and all(files[n] == tmp_path / n for n in files)
    assert all((tmp_path / n).read_bytes()[:4] == b"\x89PNG" for n in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXPECTED[5:])
    assert adata.obsm["X_umap_mmgene"].shape == (700, 2)
    assert adata.uns["mmgene_neighbors"]["params"]["metric"] == "cosine" and "params" not in adata.uns["mmgene"]  # not in provenance
    assert set(plt.get_fignums()) == open_before  # every figure closed after saving


@pytest.mark.parametrize("queries", [[], ["B cells", " "], [3]])
def test_queries_and_seed_are_checked_before_any_work(tmp_path, queries):
    """No query (the plots ask the first: an IndexError after training), a blank one or a negative seed
    is a ParameterError before anything is read or written."""
    from mmgene.demo import run
    from mmgene.errors import ParameterError

    with pytest.raises(ParameterError, match="text queries"):
        run(out=tmp_path / "out", queries=queries)
    with pytest.raises(ParameterError, match="seed must be a whole number"):
        run(out=tmp_path / "out", seed=-1)
    assert not (tmp_path / "out").exists()


def test_one_query_text_is_one_query_not_one_per_character():
    from mmgene.demo import _checked_queries

    assert _checked_queries("B cells") == ("B cells",)
    assert _checked_queries(["B cells", "monocytes"]) == ("B cells", "monocytes")
