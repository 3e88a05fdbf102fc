"""`mmgene demo --model`: a model trained on the same file is scored on the cells it held out, and a model
that cannot read the data is refused before anything is written."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from mmgene.cli.app import app

runner = CliRunner()
N_CELLS, N_GENES = 200, 380


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """200 cells x the first 380 genes of pbmc68k_reduced, the rest of its genes for the same cells, and a
    4-step model of the first file (a quarter of its cells held out)."""
    import mmgene.data
    import mmgene.io
    from tiny_models import tiny_model

    root = tmp_path_factory.mktemp("demo36")
    full = mmgene.io.read(mmgene.data.pbmc68k())[:N_CELLS]
    cells = full.raw.to_adata()  # its log1p expression (X is scaled), without .raw: a file of fewer genes has no others
    cells.obs = full.obs.copy()
    cells[:, :N_GENES].copy().write_h5ad(root / "cells.h5ad")
    cells[:, N_GENES:].copy().write_h5ad(root / "other_genes.h5ad")
    cells[::-1, :N_GENES].copy().write_h5ad(root / "reordered.h5ad")
    tiny_model(mmgene.io.read(root / "cells.h5ad"), root / "model", gene_bridge=False)
    return root


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_model_trained_on_this_file_is_evaluated_on_the_cells_it_held_out(trained, tmp_path):
    """The model's recorded split holds out 50 of the 200 cells: the figures called held-out are theirs,
    not those of all 200 cells (150 of which it was trained on)."""
    res = runner.invoke(app, ["demo", str(trained / "cells.h5ad"), "--model", str(trained / "model"),
                              "--out", str(tmp_path / "out"), "--json"])
    assert res.exit_code == 0, res.output[-3000:]
    demo = json.loads((tmp_path / "out" / "report.json").read_text())["demo"]
    assert (demo["held_out_cells"], demo["train_cells"], demo["cells"]) == (50, 150, 200)
    assert demo["annotation"]["rule"].endswith("calibrated on the training cells")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "trained on 150 cells" in md and "evaluated on 50 held-out cells" in md


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("other_genes.h5ad", "none of the data's 385 gene symbols is among the model's"),
        ("reordered.h5ad", "the model's training cells in another order"),
    ],
)
def test_model_that_cannot_be_evaluated_on_the_data_is_refused_before_any_output(trained, tmp_path, data, message):
    """No gene in common (every cell would get one vector), or the model's training cells reordered (its
    held-out cells cannot be told apart): exit 2 with the reason, nothing written, the input as it was."""
    from hostile import run_cli_here

    before = _digests(trained)
    proc = run_cli_here("demo", trained / data, "--model", trained / "model", "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
    assert _digests(trained) == before
