"""The training log of an aligned model: what the Trainer logs (loss, learning rate, evaluations) kept
as records on the model and saved beside it as ``training_log.jsonl``, instead of printed on stdout.

transformers' Trainer prints each log dict on stdout (``PrinterCallback`` without progress bars,
``ProgressCallback.on_log`` with them), which breaks ``mmgene -q train --json``. :func:`attach` takes
both out of a trainer (bars stay, on stderr) and adds :class:`TrainingLog`, which appends each log to
the model's records; :meth:`mmgene.align.AlignedModel.save` writes them (:func:`write`) and
:func:`mmgene.align.load` reads them back (:func:`read`), so a saved copy keeps its log.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

#: the log file in a model folder, one JSON object per line
FILE = "training_log.jsonl"
#: attributes of the SentenceTransformer that hold the records and count the trainers it had
_ATTRIBUTE = "mmgene_training_log"
_RUNS = "mmgene_training_runs"


def records(model: Any) -> list[dict[str, Any]]:
    """The training log records of ``model`` (a SentenceTransformer); an empty list it then keeps."""
    log = getattr(model, _ATTRIBUTE, None)
    if log is None:
        log = []
        setattr(model, _ATTRIBUTE, log)  # a plain attribute: torch keeps lists out of the state dict
    return log


def _plain(value: Any) -> Any:
    """A log value as JSON data: numbers (NaN and infinities as None), text, or its text."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    try:
        number = float(value)  # numpy and torch scalars
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


class TrainingLog(TrainerCallback):
    """Appends every Trainer log (with its trainer run, step and epoch) to ``records``, on the main process only."""

    def __init__(self, log: list[dict[str, Any]], run: int) -> None:
        self.log, self.run = log, run

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        entry = {"run": self.run, "step": int(state.global_step), "epoch": _plain(state.epoch)}
        entry.update({str(k): _plain(v) for k, v in logs.items() if k != "total_flos"})
        self.log.append(entry)


class BarsOnly(ProgressCallback):
    """transformers' progress bars (stderr) without the log lines it writes on stdout."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        return None


def attach(trainer: Any, model: Any) -> Any:
    """``trainer`` logging into ``model``'s records instead of stdout; returns it. A model trained by
    several trainers in turn (training in rounds) numbers each trainer's records by its ``run``."""
    trainer.pop_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarsOnly())
    run = getattr(model, _RUNS, 0)
    setattr(model, _RUNS, run + 1)
    trainer.add_callback(TrainingLog(records(model), run))
    return trainer


def write(model: Any, folder: Path) -> Path | None:
    """Write ``model``'s records to ``folder/training_log.jsonl``; None (and no file) when it has none."""
    log = getattr(model, _ATTRIBUTE, None)
    if not log:
        return None
    path = Path(folder) / FILE
    path.write_text("".join(json.dumps(entry, allow_nan=False) + "\n" for entry in log), encoding="utf-8")
    return path


def read(folder: Path, model: Any) -> None:
    """Give ``model`` the records of ``folder/training_log.jsonl`` (lines that are not JSON objects are
    skipped: the log is a record of training, never needed to use the model; NaN and infinities, which JSON
    has not and :func:`write` refuses, are read as none)."""
    path = Path(folder) / FILE
    if not path.is_file():
        return
    log = records(model)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line, parse_constant=lambda _: None)  # NaN, Infinity: none, as training logs them
        except ValueError:
            continue
        if isinstance(entry, dict):
            log.append(entry)
    runs = [r["run"] for r in log if isinstance(r.get("run"), int)]
    setattr(model, _RUNS, max(runs, default=-1) + 1)
