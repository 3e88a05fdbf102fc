"""Small pieces the aligned model's modules share: padding, the MLP head, device and Hub options."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


def device_of(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (CPU when it has none)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def pad(rows: Sequence[Sequence[int]], values: Sequence[Sequence[float]] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Ragged id lists as padded ``(ids, values, mask)`` tensors (values 1.0 when not given)."""
    width = max(1, max((len(r) for r in rows), default=0))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    vals = np.zeros((len(rows), width), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=np.float32)
    for j, r in enumerate(rows):
        n = len(r)
        if n:
            ids[j, :n] = r
            vals[j, :n] = values[j] if values is not None else 1.0
            mask[j, :n] = 1.0
    return torch.from_numpy(ids), torch.from_numpy(vals), torch.from_numpy(mask)


def mlp(n_in: int, hidden: int, n_out: int, dropout: float) -> nn.Sequential:
    """Linear - GELU - Dropout - Linear."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))


def hub_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The Hub download options sentence-transformers passes to a module's ``load``, for reading extra files."""
    return {k: kwargs[k] for k in ("token", "cache_folder", "revision", "local_files_only") if k in kwargs}
