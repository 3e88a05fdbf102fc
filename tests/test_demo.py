"""`mmgene demo` on the embedded default: every output exists and the model beats the GenePT-s baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

EXPECTED = [
    "model", "index", "annotated.h5ad", "report.md", "report.json",
    "umap_true.png", "umap_predicted.png", "confusion.png", "query_umap.png",
]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mmgene", "demo", "--out", str(out / "result")],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "result", proc.stdout


def test_every_output_exists(demo_out):
    out, stdout = demo_out
    for name in EXPECTED:
        assert (out / name).exists(), name
    for png in ("umap_true.png", "umap_predicted.png", "confusion.png", "query_umap.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "mmgene demo finished" in stdout and "GenePT-s" in stdout and "textbook marker genes, no model" in stdout


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
