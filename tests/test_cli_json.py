"""``--json``: commands print their result as exactly one JSON object on stdout, and ``-q`` leaves stdout
to that result alone (train, evaluate, publish, labels, corpus cross-dataset, embed geneformer, demo;
the other commands are checked beside their text output in test_cli, test_cells_cli, test_genes_cli
and test_query_cli)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmgene.cli.app import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """160 labelled cells of scanpy's pbmc68k_reduced (log1p data, obs['bulk_labels'])."""
    import mmgene.data
    import mmgene.io

    path = tmp_path_factory.mktemp("json") / "cells.h5ad"
    adata = mmgene.io.read(mmgene.data.pbmc68k())[:160].copy()
    del adata.uns["mmgene"]
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def trained(cells, tmp_path_factory):
    """``mmgene -q train ... --json`` in a fresh process, as a script would run it (stderr not a terminal)."""
    out = tmp_path_factory.mktemp("json") / "model"
    env = {k: v for k, v in os.environ.items() if k != "MMGENE_QUIET"}
    proc = subprocess.run(
        [sys.executable, "-m", "mmgene", "-q", "train", str(cells), "--label-col", "bulk_labels", "--out", str(out),
         "--max-steps", "2", "--batch-size", "16", "--no-gene-bridge", "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_quiet_train_prints_only_its_result_and_logs_to_the_model_folder(trained):
    out, proc = trained
    result = json.loads(proc.stdout)  # the whole of stdout: one JSON object, no Trainer log dicts
    assert result["model"] == str(out) and result["training_log"] == str(out / "training_log.jsonl")
    assert (result["train_cells"], result["test_cells"], result["run"]["steps"]) == (128, 32, 2)
    assert "'loss'" not in proc.stdout + proc.stderr and "Computing widget examples" not in proc.stderr
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert [(r["run"], r["step"]) for r in log if "loss" in r] == [(0, 1), (0, 2)]
    assert all(math.isfinite(r["loss"]) and "learning_rate" in r for r in log if "loss" in r)
    (evaluation,) = [r for r in log if "eval_zero_shot_balanced_accuracy" in r]
    assert evaluation["eval_zero_shot_balanced_accuracy"] == result["eval_history"][-1]["zero_shot_balanced_accuracy"]
    assert "train_loss" in log[-1]


def test_the_trained_model_has_its_card(trained):
    from mmgene.cards import code_blocks

    out, _ = trained
    assert f'mmgene.align.load("{out}")' in code_blocks((out / "README.md").read_text())[0]


def test_evaluate_json_is_the_report(trained, cells, tmp_path):
    out, _ = trained
    res = invoke("evaluate", out, cells, "--label-col", "bulk_labels", "--no-baseline", "--no-marker-baseline", "--out", tmp_path / "rep", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    written = json.loads((tmp_path / "rep.json").read_text())
    assert got["zero_shot"] == written["zero_shot"] and got["n_cells"] == written["n_cells"] == 160
    assert got["files"] == [str(tmp_path / "rep.json"), str(tmp_path / "rep.md")]
    assert got["origin"] == "" and got["zero_shot"]["standardized"] is True and got["zero_shot"]["hierarchy"] is True
    res = invoke("evaluate", out, cells, "--label-col", "bulk_labels", "--no-baseline", "--no-marker-baseline", "--out", tmp_path / "raw",
                 "--no-standardize", "--no-hierarchy", "--json")
    assert res.exit_code == 0, res.output
    raw = json.loads(res.stdout)["zero_shot"]
    assert raw["standardized"] is False and raw["hierarchy"] is False and raw["answers_for"] == {}
    assert "Raw cosine similarities, not z-scored" in (tmp_path / "raw.md").read_text()
    res = invoke("evaluate", out, cells, "--label-col", "bulk_labels", "--no-baseline", "--no-marker-baseline", "--out", tmp_path / "told",
                 "--species", "human", "--tissue", "blood", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["origin"] == "human blood"
    assert 'Prompts say where the cells come from: "a <label> from human blood"' in (tmp_path / "told.md").read_text()


def test_publish_dry_run_json(cells, tmp_path):
    staged = tmp_path / "staged"
    res = invoke("publish", cells, "--repo-id", "me/cells", "--dry-run", "--out", staged, "--label-col", "bulk_labels",
                 "--layout", "pairs", "--chunk-size", "80", "--format", "zarr", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert (got["repo_id"], got["dry_run"], got["layout"], got["private"], got["out"]) == ("me/cells", True, "pairs", True, str(staged))
    assert got["commit_url"] is None and len(got["chunks"]) == 2 and all(c["link"] for c in got["chunks"])
    assert sum(got["rows"].values()) >= 160 and set(got["rows"]) == {"train", "validation", "test"}
    assert all((staged / name).exists() for name in got["files"])


def test_labels_harmonise_and_apply_json(tmp_path):
    from test_harmonise import small_adata

    data = tmp_path / "cells.h5ad"
    small_adata(["CD14+ Monocytes", "T_CD8", "alpha", "alpha", None]).write_h5ad(data)
    mapping, out = tmp_path / "mapping.csv", tmp_path / "labelled.h5ad"
    res = invoke("labels", "harmonise", data, "--label-col", "cell_type", "--tissue", "pancreas", "--out", mapping, "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert (got["out"], got["labels"], got["unmapped"]) == (str(mapping), 3, 0)
    assert {r["author_label"]: r["term_id"] for r in got["mapping"]}["alpha"] == "CL:0000171"
    res = invoke("labels", "apply", data, "--mapping", mapping, "--label-col", "cell_type", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {
        "out": str(out), "key": "cell_type_ontology_term_id", "name_key": "cell_type_name", "mapped_cells": 4, "unmapped_cells": 1,
    }


def test_printed_table_cuts_long_labels_but_json_and_csv_keep_them(tmp_path):
    from test_harmonise import small_adata

    from mmgene.harmonise import read_mapping

    long_label = "CD14+ Monocytes " + "x" * 100
    data = tmp_path / "cells.h5ad"
    small_adata([long_label, "alpha"]).write_h5ad(data)
    res = invoke("labels", "harmonise", data, "--label-col", "cell_type", "--out", tmp_path / "m.csv")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert any(line.lstrip().startswith(long_label[:57] + "...") for line in lines)
    assert not [line for line in lines if long_label in line], res.stdout
    assert long_label in read_mapping(tmp_path / "m.csv")["author_label"].tolist()
    res = invoke("labels", "harmonise", data, "--label-col", "cell_type", "--out", tmp_path / "m2.csv", "--json")
    assert long_label in [r["author_label"] for r in json.loads(res.stdout)["mapping"]]


@pytest.mark.shared
def test_embed_geneformer_json(pbmc3k, geneformer_v1_dir, tmp_path):
    from test_embed_geneformer import _save_model

    model = tmp_path / "gf"
    _save_model(model)
    src, out = tmp_path / "cells.h5ad", tmp_path / "embedded.h5ad"
    pbmc3k[:4].copy().write_h5ad(src)
    res = invoke("embed", "geneformer", src, "--model", model, "--dictionaries", geneformer_v1_dir, "--device", "cpu",
                 "--dtype", "float32", "--pooling", "mean", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert (got["out"], got["key"], got["cells"], got["ok_column"]) == (str(out), "X_geneformer", 4, "mmgene_geneformer_ok")
    assert got["record"]["hidden_size"] == 64 and got["record"]["n_encoded"] == 4


def test_corpus_cross_dataset_json(cells, tmp_path, monkeypatch):
    """The printed JSON is the report written to --out (strict JSON: an undefined metric is null). The
    evaluation itself (training a model per held-out dataset) is tested in test_cross_dataset."""
    import anndata as ad

    import mmgene.evaluate.cross_dataset as module

    adata = ad.read_h5ad(cells)
    rows = ["path,dataset,label_col,ontology_col,species,tissue"]
    for name, part in (("first", adata[:80]), ("second", adata[80:])):
        part.copy().write_h5ad(tmp_path / f"{name}.h5ad")
        rows.append(f"{tmp_path / name}.h5ad,{name},bulk_labels,,human,blood")
    manifest = tmp_path / "corpus.csv"
    manifest.write_text("\n".join(rows) + "\n")
    seen = []

    def fake_cross_dataset(corpus, *, config, training, balance):
        seen.append((sorted(corpus.sizes().items()), config.datasets, config.mapper, training.max_steps, balance.members))
        return {"datasets": {"second": {"cells": 80, "mmgene": {"ontology": {"balanced_accuracy": 0.5, "macro_auroc": float("nan")}}}}}

    monkeypatch.setattr(module, "cross_dataset", fake_cross_dataset)
    report = tmp_path / "report.json"
    res = invoke("corpus", "cross-dataset", manifest, "--hold-out", "second", "--no-mapper", "--max-steps", "1", "--members", "2", "--out", report, "--json")
    assert res.exit_code == 0, res.output
    assert seen == [([("first", 80), ("second", 80)], ("second",), False, 1, 2)]
    got = json.loads(res.stdout)
    assert got == json.loads(report.read_text())
    assert got["datasets"]["second"]["mmgene"]["ontology"] == {"balanced_accuracy": 0.5, "macro_auroc": None}


def test_demo_json_carries_what_the_demo_returns(monkeypatch, tmp_path):
    """The JSON of `mmgene demo` is mmgene.demo.run's result: folder, seconds, files, report (NaN as null)."""
    import mmgene.demo
    from mmgene.demo import DemoResult

    calls = []

    def fake_run(file, **kwargs):
        calls.append((file, kwargs))
        return DemoResult(
            out=tmp_path / "demo", files={"report": tmp_path / "demo" / "report.json"}, seconds=12.5,
            report={"zero_shot": {"balanced_accuracy": 0.75, "macro_auroc": float("nan")}, "demo": {"cells": 700}},
        )

    monkeypatch.setattr(mmgene.demo, "run", fake_run)
    res = invoke("demo", "--out", tmp_path / "demo", "--seed", "3", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {
        "out": str(tmp_path / "demo"), "seconds": 12.5, "files": {"report": str(tmp_path / "demo" / "report.json")},
        "report": {"zero_shot": {"balanced_accuracy": 0.75, "macro_auroc": None}, "demo": {"cells": 700}},
    }
    assert calls[0][1]["seed"] == 3 and calls[0][1]["out"] == Path(tmp_path / "demo")


@pytest.mark.parametrize("args", [["info", "missing.h5ad", "--json"], ["info", "--json", "--backed", "nan"], ["info", "cells.h5ad", "--json", "--bogus"]])
def test_json_failure_is_one_json_object_on_stdout_and_the_error_line_on_stderr(tmp_path, monkeypatch, args):
    """With --json a failed command left stdout empty, which a script's json.loads cannot read."""
    from hostile import run_cli_here

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cells.h5ad").write_bytes(b"PK\x03\x04 a zip file, not an .h5ad")
    (tmp_path / "nan").mkdir()
    res = run_cli_here(*args)
    assert res.returncode == 2 and res.stderr.startswith("mmgene: error:") and len(res.stderr.splitlines()) == 1
    got = json.loads(res.stdout)
    assert got["error"] == res.stderr.strip().removeprefix("mmgene: error: ") and got["type"]
    plain = run_cli_here(*[a for a in args if a != "--json"])
    assert plain.returncode == 2 and plain.stdout == ""
