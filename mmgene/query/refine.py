"""Refine zero-shot class scores on the query data's own structure (transductive self-training).

A text prompt reaches the cells of another dataset through the model's cell tower, which was trained
on one gene panel and one lab's cells. The query data has its own structure, which the model may
blur (a foreign panel of 765 genes, other depths). :func:`refine_scores` lets that structure sharpen
the text's answer, without labels:

1. Standardise each class's zero-shot scores over the query cells (as ``standardize=True`` does,
   :func:`mmgene.text.classes.standardise`).
2. **Pseudo-labels.** Each cell's best class; keep the ``fraction`` of each class's cells with the
   largest margin over their second-best class (at least one cell per class that wins any cell).
3. **Fit.** A multinomial logistic regression (L2, inverse strength ``C``) from the query's own
   features, by default the first 50 principal components of its log-normalised, scaled highly
   variable genes (:func:`expression_pcs`, scanpy's defaults), to the pseudo-labels.
4. **Fuse.** The refined score is the weighted mean of the standardised zero-shot scores and the
   standardised log-probabilities of the fit: ``(z(S) + weight * z(log p)) / (1 + weight)``. A class
   that wins no cell has no fitted probability; its ``z(log p)`` is taken as 0 (a z-score's mean), so its
   score is ``z(S) / (1 + weight)``.

Self-training amplifies the signal it starts from; it does not create one. With MiniLM's GenePT-s
scores or random scores as the start it stays near chance (``benchmarks/quality_pbmc.py`` prints
this). It looks at every query cell, so a cell's scores depend on the other cells it is scored with.
The defaults (``fraction=0.1``, ``C=0.05``, equal weight) were chosen on the PBMC evaluation sets of
that benchmark; the README says how much they move its figures.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from mmgene.errors import DataError, ParameterError

DEFAULT_FRACTION = 0.1
DEFAULT_C = 0.05
DEFAULT_COMPONENTS = 50


def expression_pcs(adata: Any, n_comps: int = DEFAULT_COMPONENTS) -> np.ndarray:
    """Principal components of ``adata``'s expression with scanpy's defaults (cells x ``n_comps``).

    The matrix is the one :func:`mmgene.io.expression` picks; counts are normalised to log1p per
    :data:`~mmgene.io.expression.TARGET_SUM` by scanpy itself (whose float32 rounding differs from
    :func:`~mmgene.io.expression.log_normalise` in the last bit, and these are scanpy's components),
    and log-normalised data is used as it is. Genes of one value in every cell are dropped
    (:func:`_varying_genes`), so the components are those of the data without them. Then
    ``highly_variable_genes`` (Seurat flavour), ``scale`` (``max_value=10``) and ``pca``
    (``random_state=0``). With fewer than two highly variable genes all varying genes are used. Fewer
    components are returned when the data cannot have ``n_comps``.
    Memory: the scaled matrix is dense, cells x highly variable genes.
    """
    import anndata as ad
    import scanpy as sc
    import scipy.sparse as sp

    from mmgene.errors import is_whole_number
    from mmgene.io import expression
    from mmgene.io.expression import TARGET_SUM

    if not is_whole_number(n_comps, 1):
        raise ParameterError(f"n_comps must be a whole number >= 1, got {n_comps!r}", "expression_pcs(n_comps=...)", "use e.g. 50")
    if adata.n_obs < 3 or adata.n_vars < 2:
        raise ParameterError(
            f"principal components need at least 3 cells and 2 genes, the data has {adata.n_obs} x {adata.n_vars}",
            "expression_pcs", "refine on a larger query, or leave refinement off",
        )
    expr = expression(adata)
    matrix = expr.take(np.arange(adata.n_obs))
    work = ad.AnnData(sp.csr_matrix(matrix, dtype=np.float32))
    if expr.kind == "counts":
        sc.pp.normalize_total(work, target_sum=TARGET_SUM)
        sc.pp.log1p(work)
    work = _varying_genes(work)
    sc.pp.highly_variable_genes(work)
    variable = work.var["highly_variable"].to_numpy()
    chosen = work.X[:, variable] if variable.sum() >= 2 else work.X
    work = ad.AnnData(np.asarray(chosen.todense()))  # scaling densifies anyway
    sc.pp.scale(work, max_value=10)
    n = int(min(n_comps, work.n_obs - 1, work.n_vars - 1))
    sc.pp.pca(work, n_comps=n, random_state=0)
    return np.asarray(work.obsm["X_pca"], dtype=np.float64)


def _varying_genes(work: Any) -> Any:
    """``work`` (an AnnData of the matrix to reduce) without its genes of one value in every cell: they
    carry no structure, and scanpy's ``highly_variable_genes`` would still bin their means with the other
    genes' (changing which of those it picks) and give them a NaN dispersion. A :class:`DataError` when
    fewer than two genes vary, where the components would be those of a constant matrix."""
    import anndata as ad

    varying = (work.X.max(axis=0) != work.X.min(axis=0)).toarray().ravel()
    if varying.sum() < 2:
        raise DataError(
            f"refinement needs at least 2 genes whose expression varies across the cells; {int(varying.sum())} of "
            f"the {work.n_vars} genes vary (the others hold one value in every cell)",
            "expression_pcs", "refine a query whose cells differ in expression, or leave refinement off",
        )
    return work if varying.all() else ad.AnnData(work.X[:, np.flatnonzero(varying)])


def _check(scores: np.ndarray, features: np.ndarray, fraction: float, C: float, weight: float) -> None:
    where = "refine_scores"
    for name, value in (("fraction", fraction), ("C", C), ("weight", weight)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):  # '0.1' would fail as a raw TypeError
            raise ParameterError(f"{name} must be a number, got {value!r}", f"{where}({name}=...)", "pass a number")
    if scores.ndim != 2 or scores.shape[0] < 2 or scores.shape[1] < 2:
        raise ParameterError(f"scores must be cells x classes with at least 2 of each, got shape {scores.shape}", where, "score at least two cells against at least two classes")
    if features.ndim != 2 or features.shape[0] != scores.shape[0] or features.shape[1] < 1:
        raise ParameterError(f"features must be one row per cell ({scores.shape[0]}), got shape {features.shape}", where, "pass expression_pcs(adata) of the scored cells")
    for name, array in (("scores", scores), ("features", features)):
        if not np.isfinite(array).all():
            raise ParameterError(f"{name} hold NaN or infinite values", where, f"check the {name}")
    if not 0 < fraction <= 1:
        raise ParameterError(f"fraction must be in (0, 1], got {fraction!r}", where, f"use e.g. {DEFAULT_FRACTION}")
    if not C > 0:
        raise ParameterError(f"C must be positive, got {C!r}", where, f"use e.g. {DEFAULT_C}")
    if not (np.isfinite(weight) and weight >= 0):
        raise ParameterError(f"weight must be a finite number >= 0, got {weight!r}", where, "use 1.0 for an equal mix, 0 to switch the fit off")


def pseudo_labels(z_scores: np.ndarray, fraction: float = DEFAULT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Best class per cell, and a mask of the ``fraction`` of each class's cells with the widest margin."""
    best = z_scores.argmax(axis=1)
    top2 = np.sort(z_scores, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    keep = np.zeros(len(best), dtype=bool)
    for cls in np.unique(best):
        members = np.flatnonzero(best == cls)
        n_keep = max(1, int(np.ceil(fraction * len(members))))
        keep[members[np.argsort(-margin[members], kind="stable")[:n_keep]]] = True
    return best, keep


def refine_scores(
    scores: np.ndarray,
    features: np.ndarray,
    *,
    fraction: float = DEFAULT_FRACTION,
    C: float = DEFAULT_C,
    weight: float = 1.0,
) -> np.ndarray:
    """Zero-shot ``scores`` (cells x classes) refined by self-training on ``features`` (see the module).

    Returns cells x classes; larger is more likely. Each column is shifted and scaled like a z-score,
    so use the result for ranking and argmax, not as a cosine similarity.
    """
    from sklearn.linear_model import LogisticRegression

    from mmgene.text.classes import standardise

    scores = np.asarray(scores, dtype=np.float64)
    features = np.asarray(features, dtype=np.float64)
    _check(scores, features, fraction, C, weight)
    z = standardise(scores)
    best, keep = pseudo_labels(z, fraction)
    classes = np.unique(best[keep])
    if len(classes) < 2 or weight == 0:
        return z  # one class wins every cell: there is nothing to tell apart
    fit = LogisticRegression(C=C, max_iter=2000).fit(features[keep], best[keep])
    log_p = np.zeros_like(z)
    log_p[:, fit.classes_] = standardise(np.log(np.maximum(fit.predict_proba(features), 1e-20)))
    return (z + weight * log_p) / (1.0 + weight)
