"""Run token-id sequences through a Geneformer encoder in padded batches and pool them per cell.

Pooling follows Geneformer's ``EmbExtractor``: ``'mean'`` averages the hidden states of the
non-padding positions, leaving out ``<cls>`` and ``<eos>`` when the sequences carry them (V2);
``'cls'`` takes position 0 (V2 only). No L2 normalisation.

Cells are sorted by length (longest first, ties in cell order) and each batch is padded only to its
own longest cell, which is what makes Geneformer inference affordable: a batch of short cells costs
little. The attention mask hides the padding, so a cell's vector does not depend on its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.choices import POOLINGS
from mmgene.errors import ParameterError, is_whole_number
from mmgene.progress import progress



def batch_plan(lengths: np.ndarray, batch_size: int, *, sort: bool = True) -> list[np.ndarray]:
    """Cell indices of each batch: longest cells first when ``sort`` (stable), else in cell order."""
    if not is_whole_number(batch_size, 1):
        raise ParameterError(f"batch_size={batch_size!r} is not a positive integer", "argument batch_size", "use e.g. 16")
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable") if sort else np.arange(len(lengths))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(sequences: Sequence[np.ndarray], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)``, both ``(n, longest)``, padded on the right with ``pad_id``."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max()) if len(lengths) else 0
    mask = np.arange(width)[None, :] < lengths[:, None]
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    if width:
        ids[mask] = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    return ids, mask


def pool(hidden: Any, input_ids: Any, attention_mask: Any, pooling: str, special_ids: Sequence[int]) -> Any:
    """Pool hidden states ``(n, width, d)`` into ``(n, d)`` float32 (see module doc)."""
    import torch

    hidden = hidden.float()
    if pooling == "cls":
        return hidden[:, 0, :]
    keep = attention_mask.bool()
    if special_ids:
        keep &= ~torch.isin(input_ids, torch.as_tensor(list(special_ids), device=input_ids.device))
    weights = keep.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def embed_sequences(
    module: Any,
    sequences: Sequence[np.ndarray],
    *,
    pooling: str = "mean",
    special_ids: Sequence[int] = (),
    pad_id: int = 0,
    batch_size: int = 16,
    device: Any = "cpu",
    sort: bool = True,
    desc: str = "Geneformer",
) -> np.ndarray:
    """Pooled ``last_hidden_state`` of ``module`` for each sequence, float32 ``(len(sequences), d)``.

    ``module`` is a ``BertModel`` (already on ``device``, in eval mode, truncated after the layer to
    pool, see :mod:`mmgene.embed.geneformer_model`). Rows come back in the order of ``sequences``
    whatever the batching; every sequence must be non-empty.
    """
    import torch

    if pooling not in POOLINGS:
        raise ParameterError(f"pooling={pooling!r} is unknown", "argument pooling", f"use one of {POOLINGS}")
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    out = np.empty((len(sequences), int(module.config.hidden_size)), dtype=np.float32)
    plan = batch_plan(lengths, batch_size, sort=sort)
    with torch.inference_mode():
        for batch in progress(plan, total=len(plan), desc=desc, unit="batch"):
            ids, mask = pad_batch([sequences[i] for i in batch], pad_id)
            ids_t = torch.from_numpy(ids).to(device)
            mask_t = torch.from_numpy(mask).to(device=device, dtype=torch.long)
            hidden = module(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
            out[batch] = pool(hidden, ids_t, mask_t, pooling, special_ids).cpu().numpy()
    return out
