"""The mmgene command line: help, version, quiet, errors as one line with status 2, info."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

MMGENE = [sys.executable, "-m", "mmgene"]


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "MMGENE_QUIET": "1"}
    return subprocess.run([*MMGENE, *args], capture_output=True, text=True, env=env, timeout=120, **kw)


def test_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    out = run("--help")
    elapsed = time.perf_counter() - start
    assert out.returncode == 0
    assert "info" in out.stdout and "--quiet" in out.stdout and "--version" in out.stdout
    # generous bound for a loaded 2-core machine; the budget is "well under a second" when idle
    assert elapsed < 3.0, f"mmgene --help took {elapsed:.2f}s"


def test_version():
    from mmgene import __version__

    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"mmgene {__version__}"


def test_error_is_one_line_with_status_2(tmp_path):
    out = run("info", str(tmp_path / "missing.h5ad"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("mmgene: error: file not found:") and "Traceback" not in out.stderr


def test_quiet_flag_accepted(tmp_path):
    out = run("-q", "info", str(tmp_path / "missing.h5ad"))
    assert out.returncode == 2


def test_info_pbmc3k(pbmc3k_path):
    out = run("info", str(pbmc3k_path))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "cells:          2,638" in text
    assert "genes:          32,738" in text
    assert "expression:     X (raw counts)" in text
    assert "Ensembl ids:    from ensembl_id, 32,738 genes (100.0%)" in text
    assert "cell_type (8)" in text


def test_info_json_on_zarr(tmp_path):
    import mmgene.data

    adata = mmgene.data.pbmc68k()
    del adata.uns["mmgene"]
    path = tmp_path / "pbmc68k.zarr"
    adata.write_zarr(path)
    out = run("info", str(path), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert (info["n_obs"], info["n_vars"], info["matrix"], info["kind"]) == (700, 765, "raw.X", "log1p")
    assert info["label_columns"]["bulk_labels"] == 10
    assert info["obsm"] == {"X_pca": [50], "X_umap": [2]}


def test_console_script_installed():
    exe = Path(sys.executable).parent / "mmgene"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("mmgene ")
