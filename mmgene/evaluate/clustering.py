"""How well an embedding separates known labels, scored as GenePT reports it.

* :func:`knn_classify`: k-nearest-neighbour classification (cosine distance, k = 10) trained on 80 % of
  the cells and scored on the other 20 % (stratified split, seeded);
* :func:`kmeans_scores`: k-means with k = number of label classes, scored against the labels by the
  adjusted Rand index (ARI) and adjusted mutual information (AMI).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmgene.config import check_range
from mmgene.errors import ParameterError, is_whole_number


def _check(X: Any, labels: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    import scipy.sparse as sp

    if sp.issparse(X):
        raise ParameterError("expected a dense embedding matrix, got a sparse one", where, "pass adata.obsm[key] (dense)")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ParameterError(f"expected a 2-d embedding (cells x dimensions), got shape {X.shape}", where)
    y = pd.Series(np.asarray(labels, dtype=object).ravel())
    if len(y) != X.shape[0]:
        raise ParameterError(f"{len(y)} labels for {X.shape[0]} cells", where, "pass one label per row of X")
    if y.isna().any():
        raise ParameterError(f"{int(y.isna().sum())} labels are missing (NaN)", where, "drop unlabelled cells first")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise ParameterError(
            f"{int(bad.sum())} rows of the embedding are NaN or infinite (first: row {int(np.flatnonzero(bad)[0])})",
            where,
            "drop the cells flagged as empty (obs['<method>_n_genes'] == 0) before evaluating",
        )
    y = y.astype(str).to_numpy()
    if len(np.unique(y)) < 2:
        raise ParameterError("the labels have fewer than 2 classes", where, "evaluate on data with at least two labels")
    return X, y


def knn_classify(X: Any, labels: Any, k: int = 10, test_size: float = 0.2, seed: int = 0) -> dict[str, Any]:
    """k-NN (cosine) accuracy and macro precision/recall/F1 on a seeded ``1 - test_size`` / ``test_size`` split.

    The split is stratified by label when every class has at least two cells and each side of the
    split has room for one cell of every class.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    X, y = _check(X, labels, "knn_classify")
    check_range(test_size, "test_size", "knn_classify", 0.0, 1.0, strict=True, fix="pass e.g. test_size=0.2")
    n_test = int(np.ceil(test_size * len(y)))
    if not is_whole_number(k, 1) or len(y) - n_test < k:
        raise ParameterError(f"k must be between 1 and the {len(y) - n_test} training cells, got {k}", "knn_classify", "use a smaller k")
    _, counts = np.unique(y, return_counts=True)
    stratified = bool(counts.min() >= 2 and min(n_test, len(y) - n_test) >= len(counts))
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=y if stratified else None)
    clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
    clf.fit(X[train], y[train])
    pred = clf.predict(X[test])
    precision, recall, f1, _ = precision_recall_fscore_support(y[test], pred, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y[test], pred)),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "k": int(k),
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "n_classes": int(len(counts)),
        "stratified": stratified,
        "seed": int(seed),
    }


def kmeans_scores(X: Any, labels: Any, seed: int = 0, n_clusters: int | None = None, n_init: int = 10) -> dict[str, Any]:
    """k-means (k = number of classes unless given) and its ARI/AMI against ``labels``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    X, y = _check(X, labels, "kmeans_scores")
    if n_clusters is not None and not is_whole_number(n_clusters, 1):  # 0 must not mean "the number of classes"
        raise ParameterError(f"n_clusters must be a whole number between 1 and {len(y)}, got {n_clusters!r}", "kmeans_scores")
    k = int(n_clusters if n_clusters is not None else len(np.unique(y)))
    if not 1 <= k <= len(y):
        raise ParameterError(f"n_clusters must be between 1 and {len(y)}, got {k}", "kmeans_scores")
    clusters = KMeans(n_clusters=k, random_state=seed, n_init=n_init).fit_predict(X)
    return {
        "ari": float(adjusted_rand_score(y, clusters)),
        "ami": float(adjusted_mutual_info_score(y, clusters)),
        "n_clusters": k,
        "seed": int(seed),
    }
