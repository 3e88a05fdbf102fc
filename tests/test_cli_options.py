"""Enumerated CLI options: the values the library accepts, listed in --help, checked before any work;
--label-col everywhere."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from typer.testing import CliRunner

from mmgene.cli import options
from mmgene.cli.app import app

runner = CliRunner()


def test_choices_have_one_home():
    """The library and the CLI read each list of values from mmgene.choices (no copies to keep equal)."""
    from mmgene import choices
    from mmgene.cells.dictionaries import VERSIONS
    from mmgene.cells.vocabulary import TIES
    from mmgene.embed.geneformer_pool import POOLINGS
    from mmgene.query.transfer import WEIGHTINGS
    from mmgene.text.encoders import BACKENDS

    assert TIES is choices.TIES and VERSIONS is choices.VERSIONS and POOLINGS is choices.POOLINGS
    assert WEIGHTINGS is choices.WEIGHTINGS and BACKENDS is choices.TEXT_BACKENDS
    assert get_args(options.Dtype) == ("float32", "fp32", "float", "float16", "fp16", "half", "bfloat16", "bf16")
    assert get_args(options.OnEmpty) == ("nan", "zero", "raise") and get_args(options.TextBackend) == ("auto", "torch", "onnx", "onnx-int8")


def _help(*command: str) -> str:
    res = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    return " ".join(res.stdout.split())


@pytest.mark.parametrize(
    "command, option, values",
    [
        (["publish"], "--layout", "single|pairs|multiplets"),
        (["publish"], "--share", "hub|webdav|nextcloud|http"),
        (["publish"], "--format", "h5ad|zarr"),
        (["train"], "--loss", "clip|mnrl"),
        (["embed", "geneformer"], "--pooling", "mean|cls"),
        (["embed", "geneformer"], "--device", "auto|cpu|cuda|cuda:N|mps"),
        (["embed", "geneformer"], "--dtype", "float32|fp32|float|float16|fp16|half|bfloat16|bf16"),
        (["embed", "geneformer"], "--dictionary-version", "v1|v2"),  # matched case-insensitively
        (["embed", "genept-w"], "--on-empty", "nan|zero|raise"),
        (["embed", "genept-s"], "--on-empty", "nan|zero|raise"),
        (["sentences"], "--ties", "symbol|position|random"),
        (["tokenize"], "--version", "v1|v2"),
        (["index", "build"], "--kind", "auto|flat|ivf|ivfpq|hnsw"),
        (["transfer"], "--weighting", "uniform|distance"),
    ],
)
def test_help_lists_the_choices(command, option, values):
    assert re.search(rf"{re.escape(option)} [<\[]{re.escape(values)}[>\]]", _help(*command)), (option, _help(*command))


def test_device_values():
    for good in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert options.parse_device(good) == good
    for bad in ("gpu", "cuda:", "cuda:x", "CPU", "cpu "):
        with pytest.raises(Exception, match="is not one of auto, cpu, cuda, cuda:N"):
            options.parse_device(bad)


def test_the_label_column_is_label_col_everywhere():
    """Every command with a label column calls it --label-col; old spellings are hidden."""
    commands = [["train"], ["evaluate"], ["demo"], ["transfer"], ["publish"], ["corpus", "info"], ["labels", "harmonise"], ["labels", "apply"]]
    for command in commands:
        text = _help(*command)
        assert "--label-col" in text, command
        assert "--label-column" not in text and "--label-key" not in text, command


def test_old_spellings_agree_or_are_refused():
    from mmgene.errors import ParameterError

    assert options.label_col_given("a", None, "--label-key") == "a"
    assert options.label_col_given(None, "a", "--label-key") == "a"
    assert options.label_col_given("a", "a", "--label-key") == "a"
    assert options.label_col_given(None, None, "--label-key") is None
    with pytest.raises(ParameterError, match="--label-col 'a' and --label-key 'b' disagree"):
        options.label_col_given("a", "b", "--label-key")


def test_a_bad_choice_stops_before_any_work(tmp_path):
    """The value is checked by the parser: no file is read (FILE does not exist) and nothing is written."""
    res = runner.invoke(app, ["sentences", str(tmp_path / "missing.h5ad"), str(tmp_path / "out"), "--ties", "alphabetical"])
    assert res.exit_code == 2 and "'alphabetical' is not one of 'symbol', 'position', 'random'" in res.stderr
    assert list(tmp_path.iterdir()) == []
    res = runner.invoke(app, ["tokenize", str(tmp_path / "missing.h5ad"), str(tmp_path / "out"), "--version", "v2", "--help"])
    assert res.exit_code == 0  # versions match case-insensitively, as the library reads them


def test_overwrite_help_says_a_file_is_replaced_and_a_folder_only_if_mmgene_wrote_it():
    """docs/safety.md's rule: --overwrite replaces a file output whatever wrote it, a folder only with mmgene's marker."""
    for command in (["annotate"], ["demo"], ["sentences"]):
        assert "--overwrite Replace an existing output: a file whatever wrote it, a folder only if mmgene wrote it." in _help(*command)


def test_min_z_takes_a_finite_number_or_none(tmp_path):
    """--min-z none switches the rule off, as its help says; NaN or infinity is refused (it would switch
    the rule off silently), before any file is read or written."""
    from hostile import assert_refused

    from mmgene.errors import ParameterError
    from mmgene.query.config import AnnotateConfig

    assert "--min-z FLOAT|none Below this standardised similarity to the winning label the cell is unknown (none: no such rule)" in _help("annotate")
    assert options.number_or_off("none") == options.OFF == options.number_or_off(" None ")
    assert options.number_or_off("-1.5") == -1.5 and options.number_or_off("2") == 2.0
    with pytest.raises(Exception, match="'abc' is neither a number nor 'none'"):
        options.number_or_off("abc")
    assert AnnotateConfig(min_z=None).min_z is None and AnnotateConfig(min_z=1).min_z == 1.0 and AnnotateConfig().min_z == 0.0
    assert AnnotateConfig().replace(min_z=None).min_z is None
    for bad in (float("nan"), float("inf"), -float("inf"), "0.5", True):
        with pytest.raises(ParameterError, match="min_z must be a finite number, or none for no such rule"):
            AnnotateConfig(min_z=bad)
    args = ["annotate", tmp_path / "cells.h5ad", "-m", "genept-s", "-l", "B cell", "T cell", "--out", tmp_path / "out.h5ad", "--min-z"]
    for bad in ("nan", "inf", "-inf"):
        assert_refused([*args, bad], [tmp_path], contains="min_z must be a finite number")
    assert_refused([*args, "abc"], [tmp_path], contains="neither a number nor 'none'")
    assert list(tmp_path.iterdir()) == []


def test_annotate_min_z_none_switches_the_rule_off(tmp_path, monkeypatch):
    """The rule annotate runs: --min-z none is min_z=None, a number is that number, unset is the default."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    from hostile import run_cli_here

    import mmgene.query.labelling
    from mmgene.errors import ParameterError

    ad.AnnData(np.ones((4, 2), dtype=np.float32), var=pd.DataFrame(index=["CD3E", "MS4A1"])).write_h5ad(tmp_path / "cells.h5ad")
    seen = []

    def fake_annotate(adata, labels, model, rule, **kwargs):
        seen.append(rule.min_z)
        raise ParameterError("stop here", "the test")

    monkeypatch.setattr(mmgene.query.labelling, "annotate", fake_annotate)
    args = ["annotate", str(tmp_path / "cells.h5ad"), "-m", "genept-s", "-l", "B cell", "T cell", "--out", str(tmp_path / "out.h5ad")]
    for extra in (["--min-z", "none"], ["--min-z", "-0.5"], []):
        res = run_cli_here(*args, *extra)
        assert res.returncode == 2 and "stop here" in res.stderr, res.stderr
    assert seen == [None, -0.5, 0.0]
