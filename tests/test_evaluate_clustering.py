"""kNN classification (cosine, 80/20) and k-means ARI/AMI."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mmgene.errors import ParameterError
from mmgene.evaluate import kmeans_scores, knn_classify


def blobs(n_per=40, seed=0):
    """Three classes pointing in three directions (cosine separates them perfectly)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    X = np.concatenate([c * rng.uniform(0.5, 5, size=(n_per, 1)) + rng.normal(scale=0.05, size=(n_per, 3)) for c in centres])
    y = np.repeat(["T", "B", "NK"], n_per)
    return X, y


def test_separable_classes_score_perfectly():
    X, y = blobs()
    knn = knn_classify(X, y)
    assert knn["accuracy"] == 1.0 and knn["f1_macro"] == 1.0 and knn["precision_macro"] == 1.0 and knn["recall_macro"] == 1.0
    assert (knn["n_train"], knn["n_test"], knn["n_classes"], knn["k"], knn["stratified"]) == (96, 24, 3, 10, True)
    km = kmeans_scores(X / np.linalg.norm(X, axis=1, keepdims=True), y)
    assert km["ari"] == pytest.approx(1.0) and km["ami"] == pytest.approx(1.0) and km["n_clusters"] == 3


def test_cosine_ignores_vector_length():
    # class A points along x, most of them long, 6 short; class B short vectors along y. A short A
    # cell's Euclidean neighbours are mostly B cells (k=10 gets 0.85 accuracy); cosine gets them right.
    rng = np.random.default_rng(3)
    mag = np.concatenate([rng.uniform(20, 100, 44), rng.uniform(1, 2, 6)])
    a = np.column_stack([mag, 0.02 * mag * rng.uniform(0, 1, 50)])
    b = np.column_stack([0.1 * rng.uniform(0, 1, 50), rng.uniform(1, 2, 50)])
    X, y = np.vstack([a, b]), np.repeat(["A", "B"], 50)
    assert knn_classify(X, y, k=10)["accuracy"] == 1.0


def test_seeded_and_stratified():
    X, y = blobs()
    noisy = X + np.random.default_rng(9).normal(scale=2.0, size=X.shape)
    assert knn_classify(noisy, y, seed=0) == knn_classify(noisy, y, seed=0)
    assert kmeans_scores(noisy, y, seed=0) == kmeans_scores(noisy, y, seed=0)
    scores = {knn_classify(noisy, y, seed=s)["accuracy"] for s in range(5)}
    assert len(scores) > 1  # the seed changes the split
    # one class with a single cell: the split cannot be stratified
    y2 = y.copy()
    y2[0] = "rare"
    assert knn_classify(X, y2)["stratified"] is False


def test_bad_input():
    X, y = blobs()
    Xn = X.copy()
    Xn[5] = np.nan
    with pytest.raises(ParameterError, match="1 rows of the embedding are NaN.*row 5"):
        knn_classify(Xn, y)
    with pytest.raises(ParameterError, match="1 rows"):
        kmeans_scores(Xn, y)
    with pytest.raises(ParameterError, match="119 labels for 120 cells"):
        knn_classify(X, y[1:])
    with pytest.raises(ParameterError, match="fewer than 2 classes"):
        kmeans_scores(X, np.repeat("T", 120))
    with pytest.raises(ParameterError, match="k must be between 1 and the 96 training cells"):
        knn_classify(X, y, k=97)
    with pytest.raises(ParameterError, match="test_size"):
        knn_classify(X, y, test_size=1.5)
    with pytest.raises(ParameterError, match="sparse"):
        knn_classify(sp.csr_matrix(X), y)
    labels = y.astype(object)
    labels[3] = None
    with pytest.raises(ParameterError, match="1 labels are missing"):
        knn_classify(X, labels)


def test_a_cluster_count_or_k_that_is_no_whole_number_is_refused():
    """n_clusters=0 used to mean "the number of classes" (silently), and k=2.5 reached scikit-learn's own error."""
    X, y = blobs()
    for n_clusters in (0, -1, 2.5):
        with pytest.raises(ParameterError, match="n_clusters must be a whole number"):
            kmeans_scores(X, y, n_clusters=n_clusters)
    assert kmeans_scores(X, y, n_clusters=np.int64(2))["n_clusters"] == 2
    with pytest.raises(ParameterError, match="k must be between 1"):
        knn_classify(X, y, k=2.5)

