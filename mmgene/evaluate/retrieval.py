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

from mmgene.errors import NonFiniteError, ParameterError, _preview, is_whole_number

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
    """recall@k and MRR for ``cell->text`` and ``text->cell`` (vectors L2-normalised, labels are class ids).

    Cells whose class has no text, and texts whose class has no cell, are not scored; at least one cell
    and one text must share a class."""
    if np.ndim(ks) != 1 or not len(ks) or not all(is_whole_number(k, 1) for k in ks):
        raise ParameterError(
            f"ks must be whole numbers of at least 1, got {ks!r}", "retrieval_metrics, argument ks",
            "pass e.g. ks=(1, 5, 10)",
        )
    cy = np.asarray(cell_labels)
    ty = np.asarray(text_labels)
    cells, texts = _checked(cells, cy, "cells"), _checked(texts, ty, "texts")
    if not len(cells) or not len(texts):
        raise ParameterError("retrieval needs at least one cell and one text", "retrieval_metrics", "pass at least one cell and one text")
    if cells.shape[1] != texts.shape[1]:
        raise ParameterError(
            f"cells have {cells.shape[1]} dimensions, texts {texts.shape[1]}", "retrieval_metrics", "pass vectors of one joint space"
        )
    relevant = cy[:, None] == ty[None, :]
    if not relevant.any():
        raise ParameterError(
            f"no cell's class has a text: cell classes {_preview(dict.fromkeys(cy.tolist()))} ({cy.dtype}), "
            f"text classes {_preview(dict.fromkeys(ty.tolist()))} ({ty.dtype})",
            "retrieval_metrics, arguments cell_labels and text_labels", "label cells and texts with the same class ids",
        )
    sim = cells @ texts.T  # (cells, texts)
    # cell -> text: rank of the best-scoring relevant text among all texts
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
