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
    assert "gene names:     109 repeated symbols settled by Ensembl id\nlabel columns:" in text
    assert "cell_type (8)" in text


def test_info_names_mouse_symbols_and_what_their_looked_up_ids_are(tmp_path):
    import anndata as ad
    import numpy as np
    import pandas as pd

    names = ["Cd3e", "Ms4a1", "Nkg7", "0610005C13Rik", "Gm12345"]
    ad.AnnData(np.ones((3, len(names)), dtype=np.float32), var=pd.DataFrame(index=names)).write_h5ad(tmp_path / "m.h5ad")
    out = run("info", str(tmp_path / "m.h5ad"))
    assert out.returncode == 0, out.stderr
    assert (
        "gene symbols:   from index, 5 genes (100.0%)\n"
        "species:        mouse, by its symbols (5 in mouse style: Cd3e, ...Rik, Gm...); "
        "the Ensembl ids are the human genes of the same symbol\n"
        "Ensembl ids:    from gene table, 3 genes (60.0%)\n"
    ) in out.stdout


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


def _settings_in_a_fresh_process(env: dict[str, str]) -> dict:
    """Import mmgene with ``env``, then read each setting: its value, or the error it raises at use."""
    code = (
        "import json, mmgene\n"
        "from mmgene.errors import MMGeneError\n"
        "out = {}\n"
        "for name in ('quiet', 'n_jobs', 'torch_threads', 'http_deadline'):\n"
        "    try:\n"
        "        out[name] = getattr(mmgene.settings, name)\n"
        "    except MMGeneError as exc:\n"
        "        out[name] = 'error: ' + str(exc)\n"
        "print(json.dumps(out))\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("MMGENE_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**base, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr  # a malformed value never breaks `import mmgene`
    return json.loads(proc.stdout)


def test_quiet_environment_values():
    for value, quiet in [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("false", False),
                         ("No", False), ("off", False), ("", False)]:
        assert _settings_in_a_fresh_process({"MMGENE_QUIET": value})["quiet"] is quiet, value
    assert _settings_in_a_fresh_process({})["quiet"] is False


def test_malformed_settings_are_errors_at_use_not_at_import():
    got = _settings_in_a_fresh_process(
        {"MMGENE_QUIET": "maybe", "MMGENE_N_JOBS": "four", "MMGENE_TORCH_THREADS": "0", "MMGENE_HTTP_DEADLINE": "soon"}
    )
    assert got["quiet"] == (
        "error: environment variable MMGENE_QUIET='maybe' is not a yes/no value. Where: environment variable MMGENE_QUIET. "
        "What to do: set it to 1, true, yes or on (yes), or 0, false, no, off or empty (no), or unset it."
    )
    assert got["n_jobs"].startswith("error: environment variable MMGENE_N_JOBS='four' is not a whole number of threads >= 1, or -1")
    assert got["torch_threads"].startswith("error: environment variable MMGENE_TORCH_THREADS='0' is not a whole number of threads >= 1")
    assert got["http_deadline"].startswith("error: environment variable MMGENE_HTTP_DEADLINE='soon' is not a positive number of seconds")
    good = _settings_in_a_fresh_process({"MMGENE_N_JOBS": "3", "MMGENE_TORCH_THREADS": "2", "MMGENE_HTTP_DEADLINE": "1.5"})
    assert (good["n_jobs"], good["torch_threads"], good["http_deadline"]) == (3, 2, 1.5)
    assert _settings_in_a_fresh_process({"MMGENE_N_JOBS": "-1"})["n_jobs"] == -1


def test_malformed_settings_in_the_cli_are_one_line(tmp_path):
    from hostile import assert_refused

    import anndata as ad
    import numpy as np
    import pandas as pd

    h5 = tmp_path / "cells.h5ad"
    ad.AnnData(np.ones((2, 2), dtype=np.float32), var=pd.DataFrame(index=["CD3E", "LYZ"])).write_h5ad(h5)
    line = assert_refused(["info", h5], [tmp_path], env={"MMGENE_QUIET": "loud"})
    assert "MMGENE_QUIET='loud'" in line
    line = assert_refused(["sentences", h5, tmp_path / "out"], [tmp_path], env={"MMGENE_N_JOBS": "all"})
    assert "MMGENE_N_JOBS='all'" in line


def test_messages_follow_mmgene_quiet():
    code = "from mmgene.progress import info; info('a message'); print('result')"
    base = {k: v for k, v in os.environ.items() if not k.startswith("MMGENE_")}
    for value, shown in (("0", True), ("1", False), ("off", True), ("yes", False)):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**base, "MMGENE_QUIET": value}, timeout=60)
        assert proc.returncode == 0 and proc.stdout == "result\n", proc.stderr
        assert (proc.stderr == "a message\n") is shown, (value, proc.stderr)


def test_usage_errors_are_one_line_with_status_2(tmp_path):
    for args, contains in [
        (["info", "--nope"], "No such option: --nope. Where: python -m mmgene info."),
        (["publish", tmp_path / "x.h5ad", "--repo-id", "me/x", "--layout", "pears"],
         "Invalid value for '--layout': 'pears' is not one of 'single', 'pairs', 'multiplets'."),
        (["embed", "geneformer", tmp_path / "x.h5ad", "--model", tmp_path, "--device", "gpu"],
         "Invalid value for '--device': 'gpu' is not one of auto, cpu, cuda, cuda:N (N a GPU number) or mps."),
        (["train", tmp_path / "x.h5ad", "--label-col", "c", "--out", tmp_path / "m", "--loss", "triplet"],
         "Invalid value for '--loss': 'triplet' is not one of 'clip', 'mnrl'."),
    ]:
        out = run(*map(str, args))
        assert out.returncode == 2 and out.stdout == "", out
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mmgene: error: ") and contains in lines[0], out.stderr
    assert not (tmp_path / "m").exists()
