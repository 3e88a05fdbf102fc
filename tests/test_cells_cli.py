"""``mmgene sentences`` and ``mmgene tokenize`` on the real PBMC 3k file."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from mmgene.cli.app import app


def test_sentences_and_tokenize_write_datasets(pbmc3k_path, geneformer_v1_dir, tmp_path):
    from datasets import load_from_disk

    from mmgene.cells import load_dictionaries, rank_encode, sentences
    from mmgene.io import read

    runner = CliRunner()
    out = tmp_path / "sentences"
    res = runner.invoke(app, ["sentences", str(pbmc3k_path), str(out), "--top-k", "20", "-x", "MT-", "--obs", "cell_type", "--chunk-size", "1000"])
    assert res.exit_code == 0, res.output
    assert "wrote 2,638 cell sentences" in res.output
    ds = load_from_disk(str(out))
    assert ds.column_names == ["cell_id", "cell_sentence", "n_genes", "cell_type"]
    adata = read(pbmc3k_path)
    expected = sentences(adata, inplace=False, top_k=20, exclude="MT-")
    assert ds["cell_sentence"] == expected
    assert ds["cell_type"][:2] == adata.obs["cell_type"].astype(str).tolist()[:2]

    tok = tmp_path / "tokens"
    res = runner.invoke(app, ["tokenize", str(pbmc3k_path), str(tok), "--dictionaries", str(geneformer_v1_dir), "--backed", "--obs", "cell_type"])
    assert res.exit_code == 0, res.output
    ds = load_from_disk(str(tok))
    assert ds.column_names == ["input_ids", "length", "cell_id", "cell_type"]
    enc = rank_encode(read(pbmc3k_path), load_dictionaries(geneformer_v1_dir))
    assert ds["length"] == enc.length.tolist()
    assert all(np.array_equal(a, b) for a, b in zip(ds["input_ids"][:50], enc.input_ids[:50]))
    assert ds["cell_id"][0] == "AAACATACAACCAC-1"

    pq = tmp_path / "tokens.parquet"
    res = runner.invoke(app, ["tokenize", str(pbmc3k_path), str(pq), "--dictionaries", str(geneformer_v1_dir), "--version", "v1", "--json"])
    assert res.exit_code == 0, res.output
    assert pq.is_file()
    assert json.loads(res.stdout) == {
        "out": str(pq), "cells": 2638, "version": "V1", "mean_length": float(enc.length.mean()),
        "cells_without_vocabulary_genes": len(enc.empty_cells),
    }
    res = runner.invoke(app, ["sentences", str(pbmc3k_path), str(tmp_path / "s.parquet"), "--top-k", "20", "--ties", "symbol", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert (got["out"], got["cells"], got["ties"], got["excluded_genes"]) == (str(tmp_path / "s.parquet"), 2638, "symbol", 0)
    assert got["mean_genes"] == float(np.minimum(np.asarray((adata.X > 0).sum(axis=1)).ravel(), 20).mean())


def test_cli_errors_are_one_line(pbmc3k_path, tmp_path):
    import subprocess
    import sys

    bad = subprocess.run(
        [sys.executable, "-m", "mmgene", "tokenize", str(pbmc3k_path), str(tmp_path / "x"), "--dictionaries", str(tmp_path)],
        capture_output=True, text=True, env={"MMGENE_QUIET": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("mmgene: error: no Geneformer V1 token dictionary file") and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()
    res = CliRunner().invoke(app, ["sentences", str(pbmc3k_path), str(tmp_path / "y"), "--obs", "nope"])
    assert res.exit_code != 0 and not (tmp_path / "y").exists()


def test_tokenize_honours_filter_pass(pbmc3k_path, geneformer_v1_dir, tmp_path):
    import anndata as ad
    from datasets import load_from_disk

    small = ad.read_h5ad(pbmc3k_path)[:60].copy()
    small.obs["filter_pass"] = np.arange(60) % 3 != 0  # cells 0, 3, 6, ... fail
    path = tmp_path / "small.h5ad"
    small.write_h5ad(path)
    runner = CliRunner()
    for flags, cells in (([], np.flatnonzero(np.arange(60) % 3 != 0)), (["--all-cells"], np.arange(60))):
        out = tmp_path / f"tok{len(flags)}"
        res = runner.invoke(app, ["tokenize", str(path), str(out), "--dictionaries", str(geneformer_v1_dir), "--obs", "cell_type", *flags])
        assert res.exit_code == 0, res.output
        ds = load_from_disk(str(out))
        assert ds["cell_id"] == small.obs_names[cells].tolist()
        assert ds["cell_type"] == small.obs["cell_type"].astype(str).iloc[cells].tolist()
    assert f"wrote {len(cells)} cells" in res.output
