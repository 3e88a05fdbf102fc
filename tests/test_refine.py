"""Self-training refinement of zero-shot scores on the query's own principal components (mmgene.query.refine)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.errors import ParameterError


def _blobs(seed: int = 0, n: int = 40, k: int = 3, noise: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k well-separated groups in 5 feature dimensions, and zero-shot scores that are right only 2 times in 3."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n)
    centres = rng.normal(scale=4.0, size=(k, 5))
    features = centres[y] + rng.normal(size=(len(y), 5))
    scores = np.eye(k)[y] + rng.normal(scale=noise, size=(len(y), k))
    return y, features, scores


def _counts(seed: int = 0) -> tuple[ad.AnnData, np.ndarray]:
    """40 cells x 30 genes of Poisson counts; cells 0-19 express genes 0-9 highly, cells 20-39 genes 10-19."""
    rng = np.random.default_rng(seed)
    rate = np.full((40, 30), 2.0)
    rate[:20, :10] = 20.0
    rate[20:, 10:20] = 20.0
    counts = rng.poisson(rate).astype(np.float32)
    adata = ad.AnnData(
        X=sp.csr_matrix(counts), obs=pd.DataFrame(index=[f"c{i}" for i in range(40)]), var=pd.DataFrame(index=[f"G{j}" for j in range(30)])
    )
    return adata, counts


def test_pseudo_labels_keep_the_widest_margins_of_each_class():
    from mmgene.query.refine import pseudo_labels

    z = np.array([[2.0, 0.0, -1.0], [1.0, 0.5, 0.0], [0.0, 3.0, 0.0], [0.0, 1.0, 0.9], [-1.0, 0.0, 2.0]])
    best, keep = pseudo_labels(z, fraction=0.5)
    # margins 2, 0.5 | 3, 0.1 | 2: half of each class's cells, rounded up, at least one
    assert best.tolist() == [0, 0, 1, 1, 2]
    assert keep.tolist() == [True, False, True, False, True]
    _, keep_all = pseudo_labels(z, fraction=1.0)
    assert keep_all.all()


def test_refinement_recovers_the_groups_the_features_hold():
    from mmgene.text.classes import standardise
    from mmgene.query.refine import refine_scores

    y, features, scores = _blobs()
    refined = refine_scores(scores, features)
    assert refined.shape == scores.shape
    assert (scores.argmax(1) == y).sum() == 80  # of 120: the text alone
    assert (standardise(scores).argmax(1) == y).sum() == 82
    assert (refined.argmax(1) == y).sum() == 111
    # weight 0 switches the fit off: the standardised scores, exactly
    np.testing.assert_array_equal(refine_scores(scores, features, weight=0.0), standardise(scores))
    # the fit amplifies the start, it does not create a signal: random scores stay near chance (1/3)
    noise = np.random.default_rng(1).normal(size=scores.shape)
    assert (refine_scores(noise, features).argmax(1) == y).sum() == 50


def test_one_winning_class_leaves_nothing_to_fit():
    from mmgene.text.classes import standardise
    from mmgene.query.refine import refine_scores

    scores = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # two equal columns: the first class wins every tie
    features = np.arange(6, dtype=float).reshape(3, 2)
    np.testing.assert_array_equal(refine_scores(scores, features), standardise(scores))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scores": np.zeros(4)}, "cells x classes"),
        ({"scores": np.zeros((4, 1))}, "cells x classes"),
        ({"features": np.zeros((3, 2))}, "one row per cell"),
        ({"scores": np.array([[0.0, np.nan]] * 4)}, "scores hold NaN"),
        ({"features": np.array([[np.inf, 0.0]] * 4)}, "features hold NaN"),
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"C": 0.0}, "C must be positive"),
        ({"weight": -1.0}, "weight"),
        ({"weight": float("nan")}, "weight"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, message):
    from mmgene.query.refine import refine_scores

    args = {"scores": np.eye(4, 2), "features": np.ones((4, 2))}
    args.update(kwargs)
    scores, features = args.pop("scores"), args.pop("features")
    with pytest.raises(ParameterError, match=message):
        refine_scores(scores, features, **args)


def test_expression_pcs_normalise_counts_and_separate_the_groups():
    from mmgene.query.refine import expression_pcs

    adata, counts = _counts()
    pcs = expression_pcs(adata, n_comps=5)
    assert pcs.shape == (40, 5)
    np.testing.assert_array_equal(pcs, expression_pcs(adata, n_comps=5))  # deterministic
    first = np.sign(pcs[:, 0])
    assert len(set(first[:20])) == 1 and len(set(first[20:])) == 1 and first[0] != first[20]
    # the same cells given as log1p per 10,000 give the same components (up to sign)
    logged = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    log_adata = ad.AnnData(X=sp.csr_matrix(logged.astype(np.float32)), obs=adata.obs.copy(), var=adata.var.copy())
    np.testing.assert_allclose(np.abs(expression_pcs(log_adata, n_comps=5)), np.abs(pcs), atol=1e-3)
    # no more components than the data can have (cells - 1)
    assert expression_pcs(adata[:6].copy(), n_comps=50).shape == (6, 5)


def test_expression_pcs_bad_input():
    from mmgene.query.refine import expression_pcs

    adata, _ = _counts()
    with pytest.raises(ParameterError, match="n_comps"):
        expression_pcs(adata, n_comps=0)
    with pytest.raises(ParameterError, match="at least 3 cells"):
        expression_pcs(adata[:2].copy())


def test_zero_shot_with_refinement():
    from mmgene.evaluate import zero_shot

    y, features, scores = _blobs()
    classes = ["a", "b", "c"]
    labels = [classes[i] for i in y]

    def encode(texts):  # class c's prompts point along axis c
        return np.array([np.eye(3)[classes.index(t.split()[-1])] for t in texts])

    prompts = [[f"type {c}"] for c in classes]
    plain = zero_shot(scores, labels, encode, classes=classes, prompts=prompts)
    refined = zero_shot(scores, labels, encode, classes=classes, prompts=prompts, refine=features)
    assert not plain["refined"] and refined["refined"] and refined["standardized"]
    assert refined["accuracy"] > plain["accuracy"]


def test_marker_baseline_refined_never_calls_a_class_without_markers():
    from mmgene.evaluate import marker_zero_shot

    adata, counts = _counts()
    adata.var_names = ["MS4A1", "CD79A"] + [f"B{j}" for j in range(8)] + ["GNLY", "NKG7"] + [f"N{j}" for j in range(18)]
    labels = ["B cells"] * 20 + ["NK cells"] * 19 + ["Dendritic cells"]
    features = np.c_[np.r_[np.ones(20), -np.ones(20)], np.arange(40) % 3]
    res = marker_zero_shot(adata, labels, refine=features)
    assert res["refined"] and res["per_class"]["Dendritic cells"]["recall"] == 0.0
    assert res["per_class"]["Dendritic cells"]["auroc"] == 0.5
    assert res["per_class"]["B cells"]["recall"] == 1.0 and res["per_class"]["NK cells"]["recall"] == 1.0
