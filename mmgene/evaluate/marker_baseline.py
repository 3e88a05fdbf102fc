"""The textbook-marker baseline: score each class by the expression of its canonical marker genes.

A zero-shot model should beat what a biologist does by hand: take the marker genes of each cell
type (the same table the prompts use, :mod:`mmgene.text.markers`), z-score their log expression
over the cells, and call a cell by the class whose markers it expresses most (the way a marker dot
plot is read). It also shows which of a label's markers a dataset
lacks: a panel of 765 variable genes, as in scanpy's ``pbmc68k_reduced``, has no CD14, CD34, FOXP3 or
IL2RA, so no method can reach those classes through those genes.

A marker that is the same in every cell (a gene the data lists but no cell expresses) says nothing
about any cell and counts as not found. A class with no marker in the table, or none of its markers
found in the data, gets the same score for every cell, below every other score: AUROC 0.5, and it is never predicted (with markers for
one class only, every cell is called that class; its AUROC still ranks the cells). When no class has a
marker among the data's genes there is nothing to score: :func:`marker_zero_shot` raises
:class:`NoMarkerGenesError`, and :func:`mmgene.evaluate.evaluate` reports the baseline as not scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.errors import GeneIdError, ParameterError
from mmgene.metrics import classification_metrics
from mmgene.query.refine import refine_scores
from mmgene.text.classes import MIN_SPREAD, standardise


#: why a report's marker baseline has no figures (the ``reason`` of :func:`not_scored`)
NO_MARKERS_FOUND = "no marker gene of any class in the data, or none that varies between its cells"


class NoMarkerGenesError(GeneIdError):
    """No class has a marker gene among the data's genes: every score would be the same constant, and the
    argmax would call every cell the first class, so the baseline has no figures to give."""

    def __init__(self, markers: dict[str, list[str]]) -> None:
        wanted = list(dict.fromkeys(g for genes in markers.values() for g in genes))
        more = " ..." if len(wanted) > 8 else ""
        looked = f"looked for {', '.join(wanted[:8])}{more}" if wanted else "none known for these classes"
        super().__init__(
            f"the textbook-marker baseline cannot score these cells: {NO_MARKERS_FOUND} ({looked})",
            "marker_zero_shot: each class's marker genes against the data's gene symbols",
            "pass markers= with genes the data has, or leave the baseline out (marker_baseline=False, --no-marker-baseline)",
        )
        self.markers = markers


def not_scored(error: NoMarkerGenesError) -> dict[str, Any]:
    """The report entry of a marker baseline that could not be scored: no metric, the reason and the table."""
    return {"scored": False, "reason": NO_MARKERS_FOUND, "markers": error.markers,
            "markers_found": {c: [] for c in error.markers}}


def class_markers(classes: Sequence[str], ontology: bool = True) -> dict[str, list[str]]:
    """Each class's textbook marker genes (empty when the table knows none), matched as prompts match them."""
    from mmgene.text.markers import marker_genes
    from mmgene.text.prompts import class_names

    return {str(c): list(marker_genes(class_names(str(c), ontology=ontology))) for c in classes}


def _marker_expression(adata: Any, genes: list[str], chunk_size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """log1p expression (cells x found genes) of ``genes``, read ``chunk_size`` cells at a time so that
    only those genes of the whole matrix are held; and each column's position in ``genes``."""
    from mmgene.errors import GeneIdError
    from mmgene.query.genes import gene_weights

    parts, positions = [], None
    for start in range(0, adata.n_obs, chunk_size):
        try:
            block, positions = gene_weights(adata, np.arange(start, min(start + chunk_size, adata.n_obs)), genes)
        except GeneIdError:  # none of the genes is in the data
            return None
        parts.append(block.toarray().astype(np.float64))
    return np.vstack(parts), positions


def marker_scores(
    adata: Any, markers: dict[str, list[str]], chunk_size: int = 65_536
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Cells x classes: mean z-scored log1p expression of each class's markers found in ``adata``
    (z-scored by :func:`mmgene.text.classes.standardise`: a gene without spread scores 0).

    Returns the scores and, per class, the markers found (matched by symbol, case-insensitive; one that
    is the same in every cell is not found: its z-score of 0 everywhere would let the class win every
    cell the other classes' markers score below average). Classes without a marker found get a constant
    below every other score (all zeros when no class has one).
    """
    wanted = list(dict.fromkeys(g for genes in markers.values() for g in genes))
    n = adata.n_obs
    found_expr: dict[str, np.ndarray] = {}
    if wanted:
        read = _marker_expression(adata, wanted, chunk_size)
        if read is not None:
            dense, positions = read
            z = standardise(dense)
            varies = dense.std(axis=0) > MIN_SPREAD
            for j, pos in enumerate(positions):
                if varies[j]:
                    found_expr[wanted[int(pos)].upper()] = z[:, j]
    scores = np.zeros((n, len(markers)), dtype=np.float64)
    found: dict[str, list[str]] = {}
    empty = []
    for k, (cls, genes) in enumerate(markers.items()):
        found[cls] = _found_once(genes, found_expr)
        if found[cls]:
            scores[:, k] = np.mean([found_expr[g.upper()] for g in found[cls]], axis=0)
        else:
            empty.append(k)
    return _below_the_rest(scores, empty), found


def _found_once(genes: Sequence[str], found_expr: dict[str, np.ndarray]) -> list[str]:
    """``genes`` found in ``found_expr`` (keyed by upper-case symbol), each once: a gene listed twice, in
    any case, would weigh twice in its class's mean."""
    seen: dict[str, str] = {}
    for g in genes:
        if g.upper() in found_expr:
            seen.setdefault(g.upper(), g)
    return list(seen.values())


def _below_the_rest(scores: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """Set ``columns`` (classes without markers) to one constant below every other score, in place."""
    if len(columns):
        scored = np.delete(scores, columns, axis=1)
        scores[:, columns] = scored.min() - 1.0 if scored.size else 0.0
    return scores


def _refine_scored(scores: np.ndarray, scored: list[bool], features: np.ndarray) -> np.ndarray:
    """Refine the columns of classes with markers found; the rest stay a constant below all (never predicted)."""
    cols = np.flatnonzero(scored)
    if len(cols) < 2:
        return scores
    out = scores.copy()
    out[:, cols] = refine_scores(scores[:, cols], features)
    return _below_the_rest(out, np.flatnonzero(~np.asarray(scored)))


def marker_zero_shot(
    adata: Any,
    labels: Sequence[str],
    classes: Sequence[str] | None = None,
    *,
    ontology: bool = True,
    markers: dict[str, Sequence[str]] | None = None,
    refine: np.ndarray | None = None,
) -> dict[str, Any]:
    """Zero-shot metrics of the textbook-marker baseline on ``adata`` with true ``labels``.

    ``markers`` maps class -> genes and replaces the table (:func:`class_markers`). ``refine`` refines
    the scores on the query's own features, as in :func:`mmgene.evaluate.zero_shot`. The result has the
    keys of :func:`mmgene.metrics.classification_metrics` plus ``scored`` (True), ``markers`` (the table's
    genes per class) and ``markers_found`` (those among the data's genes).

    Raises :class:`NoMarkerGenesError` when no class has a marker among the data's genes (nothing to score).
    """
    from mmgene.evaluate.classify import label_codes

    classes, y = label_codes(labels, adata.n_obs, classes)
    if markers is None:
        table = class_markers(classes, ontology=ontology)
    else:
        unknown = sorted(set(map(str, markers)) - set(classes))
        if unknown:
            raise ParameterError(f"markers given for classes that are not scored: {unknown[:5]}", "argument markers")
        lone = sorted(str(c) for c, genes in markers.items() if isinstance(genes, str))
        if lone:  # a string is a sequence of its letters: "GNLY" would look for genes G, N, L and Y
            raise ParameterError(
                f"the markers of {lone[:5]} are a string, not a list of genes", "argument markers",
                "give each class a list, e.g. {'NK cells': ['GNLY']}",
            )
        given = {str(c): genes for c, genes in markers.items()}  # keyed as classes are (str)
        table = {c: [str(g) for g in given.get(c, ())] for c in classes}
    scores, found = marker_scores(adata, table)
    if not any(found.values()):
        raise NoMarkerGenesError(table)
    if refine is not None:
        scores = _refine_scored(scores, [bool(found[c]) for c in classes], refine)
    out = classification_metrics(y, scores, classes)
    out["scored"] = True
    out["refined"] = refine is not None
    out["markers"] = table
    out["markers_found"] = found
    return out
