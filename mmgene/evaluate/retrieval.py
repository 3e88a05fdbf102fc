"""Cross-modal retrieval metrics: recall@k and mean reciprocal rank, in both directions.

Queries and candidates are paired by class: a cell's relevant texts are its class's captions and a
caption's relevant cells are the cells of its class. ``cell->text`` ranks the class texts for every
cell; ``text->cell`` ranks all cells for every class text and scores each relevant cell's rank among
the cells of *other* classes plus itself (so a class of 500 cells can still reach recall@1 = 1).
A tie counts against the relevant item: a space that gives every cell the same vector retrieves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.errors import NonFiniteError, ParameterError

KS = (1, 5, 10)


def _metrics(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """``ranks`` are 1-based ranks of the first relevant item."""
    out = {f"recall@{k}": float((ranks <= k).mean()) for k in ks}
    out["mrr"] = float((1.0 / ranks).mean())
    return out


def _checked(vectors: np.ndarray, labels: np.ndarray, name: str) -> np.ndarray:
    """``vectors`` (argument ``name``) as float32 rows, one per label, all finite."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(labels):
        raise ParameterError(
            f"{name} have shape {vectors.shape} for {len(labels)} labels", f"retrieval_metrics, argument {name}", "pass one vector (row) per label"
        )
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise NonFiniteError(
            f"{int(bad.sum())} {name} vectors hold NaN or infinite values (first: row {int(np.flatnonzero(bad)[0])})",
            f"retrieval_metrics, argument {name}", "drop those rows, or check how the vectors were made",
        )
    return vectors


def retrieval_metrics(
    cells: np.ndarray, cell_labels: Sequence[int], texts: np.ndarray, text_labels: Sequence[int], ks: Sequence[int] = KS
) -> dict[str, dict[str, float]]:
    """recall@k and MRR for ``cell->text`` and ``text->cell`` (vectors L2-normalised, labels are class ids)."""
    cy = np.asarray(cell_labels)
    ty = np.asarray(text_labels)
    cells, texts = _checked(cells, cy, "cells"), _checked(texts, ty, "texts")
    if not len(cells) or not len(texts):
        raise ParameterError("retrieval needs at least one cell and one text", "retrieval_metrics", "pass at least one cell and one text")
    if cells.shape[1] != texts.shape[1]:
        raise ParameterError(
            f"cells have {cells.shape[1]} dimensions, texts {texts.shape[1]}", "retrieval_metrics", "pass vectors of one joint space"
        )
    sim = cells @ texts.T  # (cells, texts)
    # cell -> text: rank of the best-scoring relevant text among all texts
    relevant = cy[:, None] == ty[None, :]
    best_rel = np.where(relevant, sim, -np.inf).max(1)
    has = np.isfinite(best_rel)
    c2t_rank = 1 + (np.where(~relevant, sim, -np.inf) >= best_rel[:, None]).sum(1)
    # text -> cell: for each text and each relevant cell, that cell's rank against the irrelevant cells
    t2c_ranks = []
    for j in range(len(texts)):
        col = sim[:, j]
        rel = cy == ty[j]
        if not rel.any():
            continue
        neg = np.sort(col[~rel])
        t2c_ranks.append(1 + (len(neg) - np.searchsorted(neg, col[rel], side="left")))
    out = {"cell->text": _metrics(c2t_rank[has], ks)}
    if t2c_ranks:
        out["text->cell"] = _metrics(np.concatenate(t2c_ranks).astype(np.float64), ks)
    return out
