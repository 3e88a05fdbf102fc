"""Outputs never destroy a user's files (#16 items 4, 5, 7): the rules of mmgene.atomic, and every
command that writes, refusing cleanly (exit 2, one line, every pre-existing file byte-identical)."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hostile import assert_refused, run_cli_here, snapshot

from mmgene.atomic import MARKER, atomic_path, check_output, is_mmgene_output, stale_temporaries, start_output_folder
from mmgene.errors import OutputError


def small_h5ad(path: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(1.0, size=(n, 6)).astype(np.float32))
    obs = pd.DataFrame({"cell_type": ["B cell", "T cell"] * (n // 2)}, index=[f"c{i}" for i in range(n)])
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=["CD3E", "LYZ", "MS4A1", "NKG7", "CD79A", "GNLY"])).write_h5ad(path)
    return path


def user_folder(path: Path) -> Path:
    """A folder of the user's own: a notes file and a data file, nothing mmgene wrote."""
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("my notes\n")
    (path / "chunks").mkdir()
    (path / "chunks" / "chunk-00000.h5ad").write_bytes(b"the user's own chunk file")
    return path


# ------------------------------------------------------------------ the rules, in the library
def test_new_output_is_written_and_a_folder_is_marked(tmp_path):
    with atomic_path(tmp_path / "a" / "b" / "out") as tmp:
        tmp.mkdir()
        (tmp / "x.txt").write_text("1")
    out = tmp_path / "a" / "b" / "out"
    assert (out / "x.txt").read_text() == "1" and is_mmgene_output(out)
    assert json.loads((out / MARKER).read_text())["written_by"] == "mmgene"
    with atomic_path(tmp_path / "f.txt") as tmp:
        tmp.write_text("file")
    assert (tmp_path / "f.txt").read_text() == "file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "f.txt"]  # no temporary left behind


def test_existing_file_needs_overwrite(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(OutputError, match="already exists.*--overwrite"):
        check_output(target)
    with pytest.raises(OutputError):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
    assert target.read_text() == "old"
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_user_folder_is_never_replaced_even_with_overwrite(tmp_path):
    folder = user_folder(tmp_path / "mine")
    before = snapshot([folder])
    with pytest.raises(OutputError, match="not written by mmgene"):
        check_output(folder, overwrite=True)
    with pytest.raises(OutputError):
        with atomic_path(folder, overwrite=True) as tmp:
            tmp.mkdir()
    assert snapshot([folder]) == before


def test_mmgene_folder_is_replaced_only_with_overwrite(tmp_path):
    target = tmp_path / "out"
    for content, overwrite in (("one", False), ("two", True)):
        with atomic_path(target, overwrite=overwrite) as tmp:
            tmp.mkdir()
            (tmp / content).write_text(content)
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "two"]
    with pytest.raises(OutputError, match="already exists"):
        check_output(target)


def test_empty_folder_counts_as_new_for_a_folder_and_is_never_replaced_by_a_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with atomic_path(tmp_path / "empty") as tmp:
        tmp.mkdir()
        (tmp / "part").write_text("a folder where an empty folder was")
    assert (tmp_path / "empty" / "part").read_text() == "a folder where an empty folder was"
    (tmp_path / "mine").mkdir()
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="the output is a file, but a folder of that name exists"):
            with atomic_path(tmp_path / "mine", overwrite=overwrite) as tmp:
                tmp.write_text("a file")
        assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "mine"]  # no staging leftover


@pytest.mark.parametrize("relation", ["same", "output contains input", "output inside input"])
def test_output_may_not_be_contain_or_sit_inside_an_input(tmp_path, relation):
    if relation == "same":
        source = tmp_path / "in.h5ad"
        source.write_text("x")
        target = tmp_path / "in.h5ad"
    elif relation == "output contains input":
        source = tmp_path / "dir" / "in.h5ad"
        source.parent.mkdir()
        source.write_text("x")
        target = tmp_path / "dir"
    else:
        source = tmp_path / "store.zarr"
        source.mkdir()
        target = source / "out"
    with pytest.raises(OutputError, match="input"):
        check_output(target, overwrite=True, inputs=[source])


@pytest.mark.parametrize("spelling", ["input is a link to the output", "output is a link to the input", "output through a linked folder into the input store", "hard link"])
def test_the_input_under_another_name_is_still_the_input(tmp_path, spelling):
    """Inputs were compared by spelling only: ``--out data.h5ad --overwrite`` with the input given as a
    link to data.h5ad replaced the input, and a link into a .zarr store let an output replace a file of
    the store. Now a link, a hard link or another spelling of the same file or folder is the input."""
    data, store = tmp_path / "data.h5ad", tmp_path / "in.zarr"
    data.write_bytes(b"the user's data")
    store.mkdir()
    (store / ".zattrs").write_text("{}")
    if spelling == "input is a link to the output":
        (tmp_path / "link.h5ad").symlink_to(data)
        source, target = tmp_path / "link.h5ad", data
    elif spelling == "output is a link to the input":
        (tmp_path / "link.h5ad").symlink_to(data)
        source, target = data, tmp_path / "link.h5ad"
    elif spelling == "output through a linked folder into the input store":
        (tmp_path / "store-link").symlink_to(store)
        source, target = store, tmp_path / "store-link" / ".zattrs"
    else:
        (tmp_path / "hard.h5ad").hardlink_to(data)
        source, target = data, tmp_path / "hard.h5ad"
    before = snapshot([tmp_path])
    with pytest.raises(OutputError, match="input"):
        check_output(target, overwrite=True, inputs=[source])
    with pytest.raises(OutputError, match="input"):
        with atomic_path(target, overwrite=True, inputs=[source]) as tmp:
            tmp.write_bytes(b"output")
    assert snapshot([tmp_path]) == before


def test_an_output_given_as_the_input_through_a_link_is_refused_by_the_cli(tmp_path, h5ad):
    link = tmp_path / "link.h5ad"
    link.symlink_to(h5ad)
    assert_refused(["embed", "genept-s", link, "--top-k", "3", "--out", h5ad, "--overwrite"], [tmp_path], contains="input")
    assert_refused(["embed", "genept-s", h5ad, "--top-k", "3", "--out", link, "--overwrite"], [tmp_path], contains="input")


def test_a_link_to_a_folder_is_not_replaced_and_a_link_is_never_written_through(tmp_path):
    """A link to someone's folder counted as a file: with --overwrite a folder output failed at the
    rename with a raw NotADirectoryError, and start_output_folder (the demo) would fill the folder the
    link points to. A link to a folder is now a folder mmgene did not write; a link to a file is
    replaced as a link (the file it points to is never written)."""
    mine = user_folder(tmp_path / "mine")
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "to-folder").symlink_to(mine)
    (tmp_path / "to-file").symlink_to(tmp_path / "notes.txt")
    before = snapshot([tmp_path])
    with pytest.raises(OutputError, match="not written by mmgene"):
        check_output(tmp_path / "to-folder", overwrite=True)
    with pytest.raises(OutputError, match="not written by mmgene"):
        start_output_folder(tmp_path / "to-folder", overwrite=True)
    with pytest.raises(OutputError, match="link"):
        with atomic_path(tmp_path / "to-file", overwrite=True) as tmp:
            tmp.mkdir()
            (tmp / "x").write_text("x")
    assert snapshot([tmp_path]) == before and (tmp_path / "to-file").is_symlink()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    out = start_output_folder(tmp_path / "to-file", overwrite=True)
    assert is_mmgene_output(out) and not out.is_symlink() and (tmp_path / "notes.txt").read_text() == "my notes"


def test_a_failed_write_or_rename_leaves_the_old_output_and_says_so(tmp_path, monkeypatch):
    """A full disk gave a raw OSError (a traceback from the CLI); and when the rename of the new folder
    failed after the old one was moved aside, the old output was deleted with the staging folder."""
    import errno
    import os

    target = tmp_path / "out"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "v1").write_text("1")
    (tmp_path / "f.txt").write_text("old")
    before = snapshot([tmp_path])
    h5py_says = "Can't close file (file write failed: errno = 28, error message = 'No space left on device')"  # no errno set
    for error in (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), OSError(h5py_says)):
        with pytest.raises(OutputError, match="writing the output failed \\(No space left on device\\); nothing was replaced"):
            with atomic_path(tmp_path / "f.txt", overwrite=True) as tmp:
                tmp.write_text("part")
                raise error
        assert snapshot([tmp_path]) == before
    with pytest.raises(OSError, match="connection reset"):  # not the disk's: passes through as it was
        with atomic_path(tmp_path / "f.txt", overwrite=True) as tmp:
            raise OSError("connection reset")
    real_replace, calls = os.replace, []

    def second_rename_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", second_rename_fails)
    with pytest.raises(OutputError, match="No space left on device"):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.mkdir()
            (tmp / "v2").write_text("2")
    assert snapshot([tmp_path]) == before and stale_temporaries(target) == []


def test_unwritable_or_impossible_location_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_output(blocker / "out")
    # /proc refuses new entries even to root, so this holds in CI's root shell as well
    with pytest.raises(OutputError, match="cannot write"):
        check_output("/proc/mmgene-output-test/out")


def test_stale_temporaries_of_a_killed_run_are_removed_and_never_taken_as_output(tmp_path):
    target = tmp_path / "model"
    stale = tmp_path / ".model.k1ll3d.tmp"
    (stale / "model").mkdir(parents=True)
    (stale / "model" / "half-written.bin").write_bytes(b"\0" * 10)
    (tmp_path / ".model-notes.tmp").write_text("not ours: other name")
    assert stale_temporaries(target) == [stale]
    assert not target.exists()  # the half-written folder was never renamed onto the output
    with atomic_path(target) as tmp:
        tmp.mkdir()
    assert not stale.exists() and (tmp_path / ".model-notes.tmp").exists()


def test_an_error_inside_leaves_the_old_output_and_no_temporary(tmp_path):
    target = tmp_path / "out"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "v1").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.mkdir()
            raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "v1"]
    assert stale_temporaries(target) == []


def test_start_output_folder_empties_only_its_own_folder(tmp_path):
    out = start_output_folder(tmp_path / "demo")
    (out / "old.png").write_text("x")
    with pytest.raises(OutputError):
        start_output_folder(tmp_path / "demo")
    start_output_folder(tmp_path / "demo", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [MARKER]
    mine = user_folder(tmp_path / "mine")
    with pytest.raises(OutputError, match="not written by mmgene"):
        start_output_folder(mine, overwrite=True)


def test_model_and_index_save_follow_the_rules(tmp_path):
    from mmgene.index import CellIndex

    vectors = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(50)]), obsm={"X_e": vectors})
    index = CellIndex.build(adata, "X_e", kind="flat")
    mine = user_folder(tmp_path / "mine")
    with pytest.raises(OutputError):
        index.save(mine, overwrite=True)
    index.save(tmp_path / "idx")
    with pytest.raises(OutputError):
        index.save(tmp_path / "idx")
    index.save(tmp_path / "idx", overwrite=True)
    assert CellIndex.load(tmp_path / "idx").ntotal == 50


# ------------------------------------------------------------------ the commands
@pytest.fixture
def h5ad(tmp_path) -> Path:
    return small_h5ad(tmp_path / "cells.h5ad")


def test_sentences_into_a_user_folder_holding_the_input_is_refused(tmp_path):
    folder = user_folder(tmp_path / "project")
    source = small_h5ad(folder / "cells.h5ad")
    assert_refused(["sentences", source, folder], [tmp_path], contains="input")
    assert_refused(["sentences", source, folder, "--overwrite"], [tmp_path], contains="input")
    assert_refused(["sentences", source, source, "--overwrite"], [tmp_path], contains="input")


def test_sentences_and_tokenize_refuse_an_existing_output_without_overwrite(tmp_path, h5ad):
    out = tmp_path / "sentences"
    first = run_cli_here("sentences", h5ad, out)
    assert first.returncode == 0, first.stderr
    assert is_mmgene_output(out)
    assert_refused(["sentences", h5ad, out], [tmp_path], contains="--overwrite")
    again = run_cli_here("sentences", h5ad, out, "--overwrite")
    assert again.returncode == 0, again.stderr
    mine = user_folder(tmp_path / "mine")
    assert_refused(["sentences", h5ad, mine, "--overwrite"], [tmp_path], contains="not written by mmgene")
    assert_refused(["tokenize", h5ad, mine, "--overwrite"], [tmp_path], contains="not written by mmgene")
    parquet = tmp_path / "s.parquet"
    parquet.write_bytes(b"user data")
    assert_refused(["sentences", h5ad, parquet], [tmp_path], contains="already exists")


def test_index_build_refuses_a_user_folder(tmp_path):
    source = tmp_path / "emb.h5ad"
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(30)]))
    adata.obsm["X_e"] = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    adata.write_h5ad(source)
    mine = user_folder(tmp_path / "mine")
    assert_refused(["index", "build", source, "--embedding", "X_e", "-o", mine, "--overwrite"], [tmp_path])
    assert_refused(["index", "build", source, "--embedding", "X_e", "-o", tmp_path], [tmp_path], contains="input")


def test_train_checks_its_output_before_training(tmp_path, h5ad):
    mine = user_folder(tmp_path / "mine")
    assert_refused(["train", h5ad, "--label-col", "cell_type", "--out", mine, "--overwrite"], [tmp_path])
    assert_refused(["train", h5ad, "--label-col", "cell_type", "--out", "/proc/mmgene-model"], [tmp_path], contains="cannot write")
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    assert_refused(["train", h5ad, "--label-col", "cell_type", "--out", blocker / "model"], [tmp_path], contains="not a folder")


def test_train_library_refuses_before_any_work(tmp_path, pbmc68k, monkeypatch):
    from mmgene.align import train

    def no_work(*args, **kwargs):
        raise AssertionError("pairs were built before the output was checked")

    monkeypatch.setattr("mmgene.pairs.make_pairs", no_work)
    with pytest.raises(OutputError):
        train(pbmc68k, "bulk_labels", out="/proc/mmgene-model")


@pytest.mark.parametrize("command", [["embed", "genept-s"], ["embed", "genept-w"], ["annotate", "--model", "genept-s", "--labels", "B cell", "T cell"]])
def test_adding_to_an_anndata_needs_out_or_in_place(tmp_path, h5ad, command):
    full = [command[0], *command[1:2], h5ad, *command[2:]] if command[0] == "embed" else [command[0], h5ad, *command[1:]]
    assert_refused(full, [tmp_path], contains="--in-place")
    assert_refused([*full, "--out", h5ad], [tmp_path], contains="input")
    assert_refused([*full, "--out", tmp_path / "x.h5ad", "--in-place"], [tmp_path], contains="both")


def test_in_place_updates_the_input(tmp_path, h5ad):
    res = run_cli_here("embed", "genept-s", h5ad, "--top-k", "3", "--in-place")
    assert res.returncode == 0, res.stderr
    assert "X_genept_s" in ad.read_h5ad(h5ad).obsm
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.h5ad"]


def test_in_place_refuses_a_read_only_file_and_keeps_a_files_mode(tmp_path, h5ad):
    """A chmod a-w file was replaced all the same (a rename needs only the folder's permission), and an
    in-place result came back with the default mode (a 0600 file became world-readable)."""
    import os
    import stat

    h5ad.chmod(0o444)
    message = assert_refused(["embed", "genept-s", h5ad, "--top-k", "3", "--in-place"], [tmp_path])
    assert message.startswith("mmgene: error: the file is read-only, so --in-place does not replace it")
    h5ad.chmod(0o600)
    res = run_cli_here("embed", "genept-s", h5ad, "--top-k", "3", "--in-place")
    assert res.returncode == 0, res.stderr
    assert "X_genept_s" in ad.read_h5ad(h5ad).obsm and stat.S_IMODE(os.stat(h5ad).st_mode) == 0o600


def test_in_place_through_a_link_writes_the_file_it_points_to(tmp_path, h5ad):
    """--in-place given a symbolic link replaced the link by a new file and left the data it pointed to
    without the result; now the file behind the link is rewritten and the link stays."""
    link = tmp_path / "link.h5ad"
    link.symlink_to(h5ad)
    res = run_cli_here("embed", "genept-s", link, "--top-k", "3", "--in-place")
    assert res.returncode == 0, res.stderr
    assert link.is_symlink() and link.resolve() == h5ad.resolve()
    assert "X_genept_s" in ad.read_h5ad(h5ad).obsm


def test_evaluate_refuses_existing_report(tmp_path, h5ad):
    report = tmp_path / "cells.mmgene_eval.json"
    report.write_text("{}")
    model = tmp_path / "model"
    model.mkdir()
    assert_refused(["evaluate", model, h5ad, "--label-col", "cell_type"], [tmp_path], contains="already exists")


def test_demo_refuses_a_user_folder(tmp_path, h5ad):
    mine = user_folder(tmp_path / "mine")
    assert_refused(["demo", h5ad, "--label-col", "cell_type", "--out", mine], [tmp_path], contains="already exists")
    assert_refused(["demo", h5ad, "--label-col", "cell_type", "--out", mine, "--overwrite"], [tmp_path], contains="not written by mmgene")


def test_a_failed_demo_leaves_nothing_behind_and_a_rerun_is_not_refused(tmp_path, h5ad, monkeypatch):
    """The demo checks its arguments (model, epochs) before writing anything and builds its folder in a
    staging folder renamed into place only on success: a failed run, early or half-way, leaves nothing
    (an output it was to replace stays byte-identical), and a rerun into the same --out is not refused."""
    import mmgene.demo
    from mmgene.errors import ParameterError

    out = tmp_path / "result"
    (tmp_path / "some.json").write_text("{}")
    demo = ["demo", h5ad, "--label-col", "cell_type", "--out", out]
    assert_refused([*demo, "--model", tmp_path / "nomodel"], [tmp_path], contains="no model folder")
    assert_refused([*demo, "-m", tmp_path / "some.json"], [tmp_path], contains="not a model folder")
    assert_refused([*demo, "--epochs", "0"], [tmp_path], contains="epochs")
    assert not out.exists()

    def failing(adata, labels, plan, staged, files, t0):
        (staged / "report.md").write_text("half")
        raise ParameterError("stopped half-way", "the demo")

    def succeeding(adata, labels, plan, staged, files, t0):
        assert plan.model_path == out / "model" and staged != out  # outputs name where they will be, not the staging folder
        (staged / "report.json").write_text("{}")
        files["report.json"] = staged / "report.json"
        return {"demo": {}}

    monkeypatch.setattr(mmgene.demo, "_pipeline", failing)
    assert_refused(demo, [tmp_path], contains="stopped half-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.h5ad", "some.json"]  # no folder, no staging leftover
    monkeypatch.setattr(mmgene.demo, "_pipeline", succeeding)
    result = mmgene.demo.run(h5ad, label_col="cell_type", out=out)
    assert result.out == out and result.files == {"report.json": out / "report.json"} and result.report == {"demo": {}}
    assert is_mmgene_output(out) and sorted(p.name for p in out.iterdir()) == [MARKER, "report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.h5ad", "result", "some.json"]
    monkeypatch.setattr(mmgene.demo, "_pipeline", failing)
    assert_refused([*demo, "--overwrite"], [tmp_path], contains="stopped half-way")  # the earlier output is kept as it was


def test_genes_outputs_refuse_to_overwrite(tmp_path):
    out = tmp_path / "texts.json"
    out.write_text("{}")
    assert_refused(["genes", "fetch", "CD3E", "--source", "offline", "--out", out], [tmp_path], contains="already exists")
    vectors = tmp_path / "v.parquet"
    vectors.write_bytes(b"mine")
    assert_refused(["genes", "embed", out, "--out", vectors], [tmp_path], contains="already exists")


# ------------------------------------------------------------------ publish (item 6)
def test_publish_refuses_a_user_staging_folder(tmp_path, h5ad):
    mine = user_folder(tmp_path / "mine")
    args = ["publish", h5ad, "--repo-id", "me/cells", "--dry-run", "--out", mine, "--label-key", "cell_type"]
    assert_refused(args, [tmp_path], contains="already exists")
    assert_refused([*args, "--overwrite"], [tmp_path], contains="not written by mmgene")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--layout", "pairs"], "caption"),
        (["--layout", "pairs", "--label-key", "nope"], "nope"),
        (["--label-key", "cell_type", "--split-by", "nope"], "nope"),
        (["--layout", "triplets"], "layout"),
        (["--share", "ftp"], "share"),
        (["--share", "webdav"], "url"),
        (["--share", "http", "--share-url", "http://127.0.0.1:9/x"], "share"),
        (["--label-key", "cell_type", "--caption-template", "no placeholder"], "{label}"),
    ],
)
def test_publish_checks_every_argument_before_writing(tmp_path, h5ad, extra, message):
    out = tmp_path / "staged"
    assert_refused(["publish", h5ad, "--repo-id", "me/cells", "--dry-run", "--out", out, *extra], [tmp_path], contains=message)
    assert not out.exists()


def test_publish_refuses_repeated_cell_ids_whose_rows_could_not_be_told_apart(tmp_path):
    import warnings

    source = small_h5ad(tmp_path / "cells.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # anndata warns of the repeated names it is asked to write
        adata = ad.read_h5ad(source)
        adata.obs_names = ["c0", "c1", "c1"] + list(adata.obs_names[3:])
        adata.write_h5ad(source)
    args = ["publish", source, "--repo-id", "me/cells", "--dry-run", "--out", tmp_path / "staged", "--label-key", "cell_type"]
    assert_refused(args, [tmp_path], contains="cell ids are not unique (e.g. 'c1')")


def test_publish_dry_run_twice_with_overwrite_replaces_its_own_stage(tmp_path, h5ad):
    out = tmp_path / "staged"
    args = ["publish", h5ad, "--repo-id", "me/cells", "--dry-run", "--out", out, "--label-key", "cell_type", "--chunk-size", "10"]
    assert run_cli_here(*args).returncode == 0
    assert [p.name[:11] for p in sorted((out / "chunks").iterdir())] == [f"chunk-0000{i}" for i in range(4)]
    assert_refused(args, [tmp_path], contains="already exists")
    res = run_cli_here(*args[:-1], "20", "--overwrite")
    assert res.returncode == 0, res.stderr
    assert [p.name[:11] for p in sorted((out / "chunks").iterdir())] == ["chunk-00000", "chunk-00001"]
    manifest = json.loads((out / "chunks.json").read_text())
    assert all(c["link"] == (out / "chunks" / c["name"]).resolve().as_uri() for c in manifest["chunks"])



def _chunk_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_failed_push_withdraws_the_chunks_it_shared_and_stages_nothing(tmp_path, h5ad, monkeypatch):
    import mmgene.hub.publishing as publishing
    from mmgene.errors import RemoteError

    share_root = tmp_path / "www"
    share_root.mkdir()
    (share_root / "chunk-00000.h5ad.keep").write_text("a file the share already had")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")

    def refuse(*args, **kwargs):
        raise RemoteError("pushing to the Hub failed", "me/cells", "check HF_TOKEN")

    monkeypatch.setattr(publishing, "_push", refuse)
    out = tmp_path / "staged"
    with pytest.raises(RemoteError):
        publishing.publish(
            h5ad, "me/cells", share="http", share_options={"url": "https://example.org/cells", "root": share_root},
            out=out, label_key="cell_type", chunk_size=10,
        )
    assert _chunk_files(share_root) == ["chunk-00000.h5ad.keep"]  # only what was there before
    assert not out.exists() and stale_temporaries(out) == []


def test_a_failed_upload_withdraws_the_files_uploaded_before_it(tmp_path, h5ad, monkeypatch):
    from mmgene.hub.share import HttpFolderShare

    share_root = tmp_path / "www"
    calls = {"n": 0}
    real_put = HttpFolderShare.put

    def fail_third(self, path, name, sha256, size):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real_put(self, path, name, sha256, size)

    monkeypatch.setattr(HttpFolderShare, "put", fail_third)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    import mmgene.hub.publishing as publishing

    with pytest.raises(OSError, match="disk full"):
        publishing.publish(h5ad, "me/cells", share="http", share_options={"url": "https://example.org/c", "root": share_root},
                           label_key="cell_type", chunk_size=10)
    assert calls["n"] == 3 and _chunk_files(share_root) == []
