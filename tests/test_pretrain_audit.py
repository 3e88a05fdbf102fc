"""`mmgene pretrain` and mmgene.distributed against bad input: outputs that would land in an input or
over a file, a non-main rank's report, and damaged row-shard folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from hostile import assert_refused, run_cli_here
from test_pretrain import CENSUS_FILTER, HUMAN_GENES, TYPES, _adata, _soma_experiment

QUICK = ["--max-steps", "1", "--members", "1"]


@pytest.fixture
def human(tmp_path) -> Path:
    """60 cells of three types with Cell Ontology ids: enough rows for one default batch."""
    path = tmp_path / "human.h5ad"
    _adata(HUMAN_GENES, TYPES, 20, 0).write_h5ad(path)
    return path


def test_an_output_inside_a_local_soma_experiment_is_refused(tmp_path):
    """A Census row reading a local SOMA experiment makes that folder an input: no model is written into it."""
    pytest.importorskip("tiledbsoma")
    _soma_experiment(tmp_path / "soma")
    manifest = tmp_path / "corpus.csv"
    manifest.write_text(
        "path,dataset,label_col,ontology_col,species,tissue,obs_value_filter\n"
        f'soma,census,cell_type,cell_type_ontology_term_id,human,blood,"{CENSUS_FILTER.replace(chr(34), chr(34) * 2)}"\n'
    )
    line = assert_refused(["pretrain", manifest, "--out", tmp_path / "soma" / "model", *QUICK], [tmp_path])
    assert line.startswith(f"mmgene: error: the output is inside the input '{tmp_path / 'soma'}'. Where: {tmp_path / 'soma' / 'model'}.")


def test_an_existing_file_or_link_as_output_is_refused_before_any_data_is_read(human, tmp_path, monkeypatch):
    """--overwrite replaces a file, but the model is a folder: refused at once, not after training."""
    import mmgene.corpus

    def never(*args, **kwargs):
        raise AssertionError("the corpus was read before the output was refused")

    monkeypatch.setattr(mmgene.corpus, "read_corpus", never)
    (tmp_path / "taken.txt").write_text("mine")
    os.symlink(tmp_path / "taken.txt", tmp_path / "link")
    args = ["pretrain", human, "--label-col", "cell_type", "--overwrite", *QUICK, "--out"]
    line = assert_refused([*args, tmp_path / "taken.txt"], [tmp_path])
    assert line == (
        f"mmgene: error: the output is a folder, but a file of that name exists. Where: {tmp_path / 'taken.txt'}. "
        "What to do: choose another path, or move it away yourself."
    )
    line = assert_refused([*args, tmp_path / "link"], [tmp_path])
    assert line.startswith(f"mmgene: error: the output is a folder, but a link of that name exists. Where: {tmp_path / 'link'}.")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "taken.txt").read_text() == "mine"
    train = ["train", human, "--label-col", "cell_type", "--overwrite", "--out", tmp_path / "taken.txt"]  # mmgene train alike
    assert assert_refused(train, [tmp_path]).startswith("mmgene: error: the output is a folder, but a file of that name exists.")


def test_a_rank_other_than_0_trains_but_neither_writes_nor_reports(human, tmp_path):
    """Under torchrun only rank 0 saves the model; another rank's command prints no summary of a
    folder it did not write (with --json, stdout would hold one object per rank)."""
    out = tmp_path / "model"
    cmd = ["pretrain", human, "--label-col", "cell_type", "--ontology-col", "cell_type_ontology_term_id", *QUICK, "--out", out]
    res = run_cli_here(*cmd, "--json", env={"RANK": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout == "" and not out.exists()


def _shards(folder: Path) -> Path:
    from mmgene import distributed

    rows = lambda a, b: np.arange(a, b, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # noqa: E731
    return distributed.write_rows(10, rows, folder, chunk_size=4)


def _edit_manifest(folder: Path, **changes: object) -> None:
    manifest = json.loads((folder / "shards.json").read_text())
    (folder / "shards.json").write_text(json.dumps({**manifest, **changes}))


def test_read_rows_refuses_missing_damaged_or_mislabelled_parts(tmp_path):
    from mmgene.distributed import iter_rows, read_rows
    from mmgene.errors import InputFileError

    missing = _shards(tmp_path / "missing")
    (missing / "part-00001.npy").unlink()
    with pytest.raises(InputFileError, match=r"^part-00001\.npy cannot be read \(FileNotFoundError: "):
        read_rows(missing)
    truncated = _shards(tmp_path / "truncated")
    (truncated / "part-00002.npy").write_bytes((truncated / "part-00002.npy").read_bytes()[:60])
    with pytest.raises(InputFileError, match=r"^part-00002\.npy cannot be read \(ValueError: "):
        list(iter_rows(truncated))
    retyped = _shards(tmp_path / "retyped")
    _edit_manifest(retyped, dtype="int64")  # the parts hold float32: never silently cast
    with pytest.raises(InputFileError) as refused:
        read_rows(retyped)
    assert refused.value.what == "part-00000.npy holds (4, 3) rows of float32, the manifest says (4, 3) of int64"
    for bad in ({"shape": "3"}, {"shape": [3.5]}, {"dtype": "no-such-type"}, {"dtype": "object"}):
        folder = _shards(tmp_path / f"bad{len(list(tmp_path.iterdir()))}")
        _edit_manifest(folder, **bad)
        with pytest.raises(InputFileError, match="does not describe consecutive parts of mmgene-row-shards/1"):
            read_rows(folder)
