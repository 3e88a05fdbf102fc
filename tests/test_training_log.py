"""The Trainer logs into the model's training log, never on stdout (mmgene.align.training_log)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments

from mmgene.align import training_log


class _Model(torch.nn.Module):
    """A stand-in for the SentenceTransformer whose log is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)


def _trainer(tmp_path, model, *, bars: bool) -> Trainer:
    args = TrainingArguments(output_dir=str(tmp_path), disable_tqdm=not bars, report_to="none", use_cpu=True)
    return Trainer(model=model, args=args)


@pytest.mark.parametrize("bars", [False, True])
def test_logs_go_to_the_model_not_stdout(tmp_path, capsys, bars):
    model = _Model()
    trainer = training_log.attach(_trainer(tmp_path, model, bars=bars), model)
    kinds = [type(cb) for cb in trainer.callback_handler.callbacks]
    assert PrinterCallback not in kinds and ProgressCallback not in kinds
    assert (training_log.BarsOnly in kinds) is bars  # bars stay (on stderr), without their log lines
    trainer.log({"loss": 1.5, "learning_rate": float("nan"), "total_flos": 7.0})
    assert capsys.readouterr().out == ""
    assert training_log.records(model) == [{"run": 0, "step": 0, "epoch": 0, "loss": 1.5, "learning_rate": None}]


def test_each_trainer_of_a_model_is_a_run_and_the_log_round_trips(tmp_path):
    model = _Model()
    for run in range(2):
        trainer = training_log.attach(_trainer(tmp_path / str(run), model, bars=False), model)
        trainer.state.global_step = 3
        trainer.log({"loss": float(run)})
    assert [(r["run"], r["step"], r["loss"]) for r in training_log.records(model)] == [(0, 3, 0.0), (1, 3, 1.0)]
    path = training_log.write(model, tmp_path)
    assert path == tmp_path / training_log.FILE
    assert [json.loads(line) for line in path.read_text().splitlines()] == training_log.records(model)
    # read back into another model; a damaged line is skipped (the log is never needed to use a model)
    path.write_text(path.read_text() + "not json\n[1, 2]\n")
    other = _Model()
    training_log.read(tmp_path, other)
    assert training_log.records(other) == training_log.records(model)
    trainer = training_log.attach(_trainer(tmp_path / "next", other, bars=False), other)
    trainer.log({"loss": 2.0})
    assert training_log.records(other)[-1]["run"] == 2
    assert training_log.write(_Model(), tmp_path / "none") is None  # no records: no file


def test_a_hand_edited_nan_is_read_as_none_so_the_model_saves_again(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / training_log.FILE).write_text('{"run": 0, "step": 5, "loss": NaN, "grad": [Infinity, 1.0]}\nnot json\n')
    model = _Model()
    training_log.read(folder, model)
    assert training_log.records(model) == [{"run": 0, "step": 5, "loss": None, "grad": [None, 1.0]}]
    out = tmp_path / "again"
    out.mkdir()
    path = training_log.write(model, out)
    assert path.read_text() == '{"run": 0, "step": 5, "loss": null, "grad": [null, 1.0]}\n'
