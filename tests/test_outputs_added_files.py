"""A folder mmgene wrote is replaced only while it holds nothing added since (mmgene.atomic's marker lists it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile import assert_refused, snapshot

from mmgene.atomic import MARKER, atomic_path, start_output_folder
from mmgene.errors import OutputError


def _written(target, names=("a.txt", "sub/b.txt")):
    with atomic_path(target) as tmp:
        for name in names:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(name)
    return target


def _replace(target):
    with atomic_path(target, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")


def test_the_marker_lists_every_entry_mmgene_wrote(tmp_path):
    out = _written(tmp_path / "out")
    marker = json.loads((out / MARKER).read_text())
    assert marker["written_by"] == "mmgene" and marker["entries"] == ["a.txt", "sub", "sub/b.txt"]


@pytest.mark.parametrize("added", ["notes.txt", "sub/notes.txt", "extra/deep/notes.txt"])
def test_a_file_added_to_an_mmgene_folder_keeps_it_from_being_replaced(tmp_path, added):
    out = _written(tmp_path / "out")
    (out / added).parent.mkdir(parents=True, exist_ok=True)
    (out / added).write_text("my notes")
    before = snapshot([tmp_path])
    with pytest.raises(OutputError, match="did not write") as err:
        _replace(out)
    assert added in str(err.value) and err.value.where == str(out)
    assert snapshot([tmp_path]) == before


def test_a_folder_holding_only_what_mmgene_wrote_or_desktop_files_is_replaced(tmp_path):
    out = _written(tmp_path / "out")
    (out / ".DS_Store").write_bytes(b"\0")
    (out / "sub" / "Thumbs.db").write_bytes(b"\0")
    (out / "a.txt").write_text("edited")  # a listed file changed: still mmgene's
    _replace(out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "new.txt"]


def test_a_marker_without_a_list_replaces_as_before(tmp_path):
    out = _written(tmp_path / "out")
    (out / MARKER).write_text(json.dumps({"written_by": "mmgene", "version": "0.1"}) + "\n")  # an older marker
    (out / "notes.txt").write_text("cannot be told apart")
    _replace(out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "new.txt"]


def test_a_folder_filled_after_start_output_folder_is_replaced(tmp_path):
    out = start_output_folder(tmp_path / "demo")
    (out / "report.md").write_text("filled by the job")
    assert "entries" not in json.loads((out / MARKER).read_text())
    start_output_folder(tmp_path / "demo", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [MARKER]


def test_the_cli_refuses_to_replace_an_index_folder_holding_a_users_file(tmp_path):
    import anndata as ad

    rng = np.random.default_rng(0)
    adata = ad.AnnData(np.zeros((40, 3), np.float32), obsm={"X_emb": rng.normal(size=(40, 8)).astype(np.float32)})
    adata.obs_names = [f"c{i}" for i in range(40)]
    data = tmp_path / "cells.h5ad"
    adata.write_h5ad(data)
    from hostile import run_cli_here

    built = run_cli_here("index", "build", str(data), "--embedding", "X_emb", "--out", str(tmp_path / "idx"), "--kind", "flat")
    assert built.returncode == 0, built.stderr
    (tmp_path / "idx" / "notes.md").write_text("which run was this")
    message = assert_refused(
        ["index", "build", str(data), "--embedding", "X_emb", "--out", tmp_path / "idx", "--kind", "flat", "--overwrite"],
        [tmp_path], contains="notes.md",
    )
    assert "did not write" in message
