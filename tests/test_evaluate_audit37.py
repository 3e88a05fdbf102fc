"""Audit of the evaluation metrics (retrieval, clustering, classification, marker baseline): edge cases
that gave wrong figures silently, and bad input that crashed with a bare Python or numpy error instead
of an MMGeneError saying what, where and what to do."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.errors import MMGeneError, ParameterError

GENES = ["MS4A1", "CD79A", "GNLY", "NKG7", "ACTB"]
LOG = np.array(
    [
        [1.5, 1.5, 0.0, 0.0, 2.5],
        [1.5, 0.5, 0.0, 0.0, 2.5],
        [0.0, 0.0, 1.5, 1.5, 2.5],
        [0.5, 0.0, 0.5, 1.5, 2.5],
    ]
)


def _adata() -> ad.AnnData:
    return ad.AnnData(
        X=sp.csr_matrix(LOG.astype(np.float32)),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(len(LOG))]),
        var=pd.DataFrame(index=GENES),
    )


def _z(col: np.ndarray) -> np.ndarray:
    return (col - col.mean()) / col.std()


def _explained(error: MMGeneError) -> None:
    assert error.where and error.fix


def test_classification_metrics_refuses_a_class_named_twice():
    """per_class kept one entry of the two 'a' (the other's figures overwritten) without a word."""
    from mmgene.metrics import classification_metrics

    with pytest.raises(ParameterError, match="classes name 'a' more than once") as caught:
        classification_metrics(np.array([0, 1, 2]), np.eye(3), ["a", "b", "a"])
    _explained(caught.value)


def test_label_codes_refuses_a_class_named_twice():
    """The cells of 'a' were coded as the second 'a' (codes [2, 1]), so the first 'a' had no cells."""
    from mmgene.evaluate.classify import label_codes

    with pytest.raises(ParameterError, match="classes name 'a' more than once") as caught:
        label_codes(["a", "b"], 2, ["a", "b", "a"])
    assert caught.value.where == "argument classes"


@pytest.mark.parametrize(
    "y, scores, message",
    [
        (np.array([[0], [1]]), np.eye(2), "1-d array of class indices"),  # numpy IndexError
        (np.array([0, 1]), np.array([["1", "0"], ["0", "1"]]), "numeric scores"),  # numpy TypeError in isfinite
        (np.array([0, 1]), np.array([[1.0, None], [0.0, 1.0]], dtype=object), "numeric scores"),
    ],
)
def test_classification_metrics_refuses_labels_that_are_no_vector_and_scores_that_are_no_numbers(y, scores, message):
    from mmgene.metrics import classification_metrics

    with pytest.raises(ParameterError, match=message) as caught:
        classification_metrics(y, scores, ["a", "b"])
    _explained(caught.value)


@pytest.mark.parametrize("pred", [[0, 2], [0, -1]])
def test_proportion_error_refuses_predictions_outside_the_classes(pred):
    """numpy's "operands could not be broadcast" and "'list' argument must have no negative elements"."""
    from mmgene.metrics import proportion_error

    with pytest.raises(ParameterError, match="predictions must be a 1-d array of class indices from 0 to 1") as caught:
        proportion_error(np.array([0, 1]), np.array(pred), 2)
    _explained(caught.value)
    assert proportion_error(np.array([0, 1, 1, 1]), np.array([0, 0, 0, 1]), 2) == 0.5


@pytest.mark.parametrize("name", ["similarities", "standardised", "refine"])
def test_zero_shot_refuses_arrays_of_other_cells_when_unlabelled_cells_are_dropped(name):
    """With a cell without a label, an array of 3 rows for 4 cells was numpy's "boolean index did not match"."""
    from mmgene.evaluate.classify import zero_shot

    cells = np.eye(3)[[0, 0, 1, 1]]
    given = {name: np.zeros((3, 2))}
    with pytest.raises(ParameterError, match=f"{name} of shape \\(3, 2\\) for 4 cells") as caught:
        zero_shot(cells, ["a", None, "b", "b"], lambda t: np.eye(3)[:len(t)], classes=["a", "b"],
                  prompts=[["a"], ["b"]], **given)
    assert caught.value.where == f"argument {name}"


@pytest.mark.parametrize("cell_labels, text_labels", [([0, 1], [2, 3]), (["0", "1"], [0, 1])])
def test_retrieval_refuses_labels_with_no_class_in_common(cell_labels, text_labels):
    """cell->text was all NaN, with numpy's "Mean of empty slice" warnings."""
    from mmgene.evaluate import retrieval_metrics

    with pytest.raises(ParameterError, match="no cell's class has a text") as caught:
        retrieval_metrics(np.eye(2), cell_labels, np.eye(2), text_labels)
    _explained(caught.value)


@pytest.mark.parametrize("ks", [(0,), (1.5,), (), 5])
def test_retrieval_refuses_ks_that_are_no_whole_numbers_of_at_least_one(ks):
    """recall@0 = 0.0 and recall@1.5 were reported as figures."""
    from mmgene.evaluate import retrieval_metrics

    with pytest.raises(ParameterError, match="ks must be whole numbers of at least 1") as caught:
        retrieval_metrics(np.eye(2), [0, 1], np.eye(2), [0, 1], ks=ks)
    _explained(caught.value)
    got = retrieval_metrics(np.eye(2), [0, 1], np.eye(2), [0, 1], ks=(1, 50))  # k above the candidates: every hit
    assert got["cell->text"] == {"recall@1": 1.0, "recall@50": 1.0, "mrr": 1.0}


def test_knn_classify_refuses_a_test_size_that_is_no_number():
    """'0.2' was Python's "'<' not supported between instances of 'int' and 'str'"."""
    from mmgene.evaluate.clustering import knn_classify

    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ParameterError, match="test_size must be a number") as caught:
        knn_classify(X, np.repeat(["a", "b"], 10), k=1, test_size="0.2")
    _explained(caught.value)


def test_marker_zero_shot_refuses_markers_given_as_one_string():
    """{'NK': 'GNLY'} looked for genes G, N, L and Y: NK had no marker found and was never called."""
    from mmgene.evaluate import marker_zero_shot

    with pytest.raises(ParameterError, match=r"the markers of \['NK'\] are a string") as caught:
        marker_zero_shot(_adata(), ["B", "B", "NK", "NK"], markers={"B": ["MS4A1"], "NK": "GNLY"})
    _explained(caught.value)


def test_marker_zero_shot_reads_markers_keyed_as_the_labels_are():
    """Labels 1 and 2 with markers keyed 1 and 2: the classes are '1' and '2', so every marker was lost
    (NoMarkerGenesError)."""
    from mmgene.evaluate import marker_zero_shot

    got = marker_zero_shot(_adata(), [1, 1, 2, 2], markers={1: ["MS4A1"], 2: ["GNLY"]})
    assert got["markers_found"] == {"1": ["MS4A1"], "2": ["GNLY"]}
    assert got["balanced_accuracy"] == 1.0 and got["macro_auroc"] == 1.0


def test_a_marker_listed_twice_weighs_once():
    """MS4A1 and ms4a1 in one class's list weighed MS4A1 twice: (2 z(MS4A1) + z(CD79A)) / 3."""
    from mmgene.evaluate.marker_baseline import marker_scores

    scores, found = marker_scores(_adata(), {"B": ["MS4A1", "ms4a1", "CD79A"], "NK": ["GNLY"]})
    assert found == {"B": ["MS4A1", "CD79A"], "NK": ["GNLY"]}
    np.testing.assert_allclose(scores[:, 0], (_z(LOG[:, 0]) + _z(LOG[:, 1])) / 2, rtol=1e-6)
    np.testing.assert_allclose(scores[:, 1], _z(LOG[:, 2]), rtol=1e-6)
