"""Cross-modal retrieval metrics: recall@k and mean reciprocal rank, in both directions.

Queries and candidates are paired by class: a cell's relevant texts are its class's captions and a
caption's relevant cells are the cells of its class. ``cell->text`` ranks the class texts for every
cell; ``text->cell`` ranks all cells for every class text and scores each relevant cell's rank among
the cells of *other* classes plus itself (so a class of 500 cells can still reach recall@1 = 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.errors import ParameterError

KS = (1, 5, 10)


def _metrics(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """``ranks`` are 1-based ranks of the first relevant item."""
    out = {f"recall@{k}": float((ranks <= k).mean()) for k in ks}
    out["mrr"] = float((1.0 / ranks).mean())
    return out


def retrieval_metrics(
    cells: np.ndarray, cell_labels: Sequence[int], texts: np.ndarray, text_labels: Sequence[int], ks: Sequence[int] = KS
) -> dict[str, dict[str, float]]:
    """recall@k and MRR for ``cell->text`` and ``text->cell`` (vectors L2-normalised, labels are class ids)."""
    cells = np.asarray(cells, dtype=np.float32)
    texts = np.asarray(texts, dtype=np.float32)
    cy = np.asarray(cell_labels)
    ty = np.asarray(text_labels)
    if len(cells) != len(cy) or len(texts) != len(ty):
        raise ParameterError("vectors and labels differ in length", "retrieval_metrics")
    if not len(cells) or not len(texts):
        raise ParameterError("retrieval needs at least one cell and one text", "retrieval_metrics")
    sim = cells @ texts.T  # (cells, texts)
    # cell -> text: rank of the best-scoring relevant text among all texts
    relevant = cy[:, None] == ty[None, :]
    best_rel = np.where(relevant, sim, -np.inf).max(1)
    has = np.isfinite(best_rel)
    c2t_rank = 1 + (np.where(~relevant, sim, -np.inf) > best_rel[:, None]).sum(1)
    # text -> cell: for each text and each relevant cell, that cell's rank against the irrelevant cells
    t2c_ranks = []
    for j in range(len(texts)):
        col = sim[:, j]
        rel = cy == ty[j]
        if not rel.any():
            continue
        neg = np.sort(col[~rel])
        t2c_ranks.append(1 + (len(neg) - np.searchsorted(neg, col[rel], side="right")))
    out = {"cell->text": _metrics(c2t_rank[has], ks)}
    if t2c_ranks:
        out["text->cell"] = _metrics(np.concatenate(t2c_ranks).astype(np.float64), ks)
    return out
