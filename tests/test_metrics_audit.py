"""Audit of the reported figures: each metric against scikit-learn or a hand count, on edge cases and
bad input (which must be refused with an MMGeneError that says what, where and what to do)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from mmgene.errors import LabelError, MMGeneError, NonFiniteError, ParameterError


def test_classification_metrics_agree_with_sklearn_on_random_scores_with_ties():
    """A guard (passes before and after the audit): truth classes never predicted, predictions of classes
    the truth lacks, tied scores."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    from mmgene.metrics import classification_metrics

    rng = np.random.default_rng(0)
    for trial in range(60):
        n, k = int(rng.integers(2, 40)), int(rng.integers(2, 6))
        y = rng.integers(0, k, n)
        scores = rng.normal(size=(n, k)).round(0 if trial % 2 else 3)
        m = classification_metrics(y, scores, [f"c{j}" for j in range(k)])
        pred = scores.argmax(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
        assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
        assert m["macro_f1"] == pytest.approx(f1_score(y, pred, labels=np.unique(y), average="macro", zero_division=0))
        aucs = [roc_auc_score(y == j, scores[:, j]) for j in range(k) if 0 < (y == j).sum() < n]
        assert (not aucs and np.isnan(m["macro_auroc"])) or m["macro_auroc"] == pytest.approx(np.mean(aucs))


@pytest.mark.parametrize(
    "y, scores, error, message",
    [
        ([0, 1, 1], [[1.0, 0.0], [0.0, 1.0]], ParameterError, "shape"),  # a label more than rows of scores
        ([0, 1], [[1.0, 0.0, 5.0], [0.0, 1.0, 5.0]], ParameterError, "shape"),  # a column more than classes
        (np.array([], int), np.zeros((0, 2)), ParameterError, "shape"),
        ([0, 2], [[1.0, 0.0], [0.0, 1.0]], ParameterError, "class indices"),
        ([0, 1], [[np.nan, 0.0], [0.0, 1.0]], NonFiniteError, "NaN"),
    ],
)
def test_classification_metrics_refuse_bad_input(y, scores, error, message):
    """Each was a bare sklearn/numpy error, or (an extra column) figures of the wrong classes without a word."""
    from mmgene.metrics import classification_metrics

    with pytest.raises(error, match=message) as caught:
        classification_metrics(np.asarray(y), np.asarray(scores), ["a", "b"])
    assert isinstance(caught.value, MMGeneError) and caught.value.where and caught.value.fix


def test_proportion_error_refuses_predictions_of_other_cells():
    from mmgene.metrics import proportion_error

    with pytest.raises(ParameterError, match="2 true classes for 1 predictions"):
        proportion_error(np.array([0, 1]), np.array([0]), 2)  # was 0.5


@pytest.mark.parametrize("missing", [None, float("nan"), ""])
def test_balanced_accuracy_difference_refuses_cells_without_a_true_label(missing):
    """None was scored as a class of its own (difference 0.167 instead of 0.0 on the labelled cells),
    NaN raised numpy's "pvals contains NaNs"."""
    from mmgene.metrics import balanced_accuracy_difference

    with pytest.raises(LabelError, match="1 of 4 cells have no true label") as caught:
        balanced_accuracy_difference(["a", missing, "b", "b"], ["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert "drop those cells" in str(caught.value)


def test_balanced_accuracy_difference_is_sklearns_difference_with_unknown_and_one_cell_classes():
    """A guard: 'unknown' and classes only predicted count as wrong; a class of one cell is fine."""
    from sklearn.metrics import balanced_accuracy_score

    from mmgene.metrics import balanced_accuracy_difference

    truth = ["a", "a", "b", "c", "c", "c"]
    first, second = ["a", "unknown", "b", "c", "x", "c"], ["unknown", "a", "a", "c", "c", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = balanced_accuracy_score(truth, first) - balanced_accuracy_score(truth, second)
    got = balanced_accuracy_difference(truth, first, second, resamples=300)
    assert got["difference"] == pytest.approx(expected) and got["low"] <= got["difference"] <= got["high"]


def test_retrieval_ties_are_no_hits():
    """A space that gives every cell the same vector scored text->cell recall@1 = MRR = 1.0: a relevant
    cell tied with every other class's cell counted as ranked first."""
    from mmgene.evaluate import retrieval_metrics

    cells = np.tile([[1.0, 0.0]], (6, 1))
    texts = np.array([[1.0, 0.0], [0.0, 1.0]])
    r = retrieval_metrics(cells, [0, 0, 0, 1, 1, 1], texts, [0, 1])
    assert r["text->cell"]["recall@1"] == 0.0 and r["text->cell"]["recall@5"] == 1.0  # rank 4: behind 3 tied cells
    assert r["text->cell"]["mrr"] == pytest.approx(0.25)
    # cell->text: a cell as near to its class's text as to another's is not ranked first either
    tied = retrieval_metrics(np.array([[0.6, 0.8]]), [0], np.array([[0.6, 0.8], [0.6, 0.8], [0.0, 1.0]]), [0, 1, 2])
    assert tied["cell->text"]["recall@1"] == 0.0 and tied["cell->text"]["mrr"] == 0.5


@pytest.mark.parametrize(
    "cells, texts, error, message",
    [
        ([[np.nan, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], NonFiniteError, "NaN"),  # the NaN cell was left out silently
        ([[1.0, 0.0], [0.0, 1.0]], [[1.0, np.inf], [0.0, 1.0]], NonFiniteError, "NaN"),
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], ParameterError, "dimensions"),  # numpy's matmul error
        ([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], ParameterError, "shape"),
    ],
)
def test_retrieval_refuses_bad_vectors(cells, texts, error, message):
    from mmgene.evaluate import retrieval_metrics

    with pytest.raises(error, match=message) as caught:
        retrieval_metrics(np.asarray(cells), [0, 1], np.asarray(texts), [0, 1])
    assert caught.value.where and caught.value.fix


def test_knn_classify_with_fewer_training_cells_than_classes_does_not_crash():
    """The split was stratified with 1 training cell for 4 classes: sklearn's ValueError."""
    from mmgene.evaluate.clustering import knn_classify

    X = np.random.default_rng(0).normal(size=(8, 3))
    got = knn_classify(X, np.repeat(list("abcd"), 2), k=1, test_size=0.8)
    assert got["n_train"] == 1 and got["n_test"] == 7 and not got["stratified"]


def test_cross_dataset_table_of_a_saved_report_reads_null_as_nan():
    """A saved report writes NaN as null; the table of it (benchmarks/cross_dataset.py --merge) raised TypeError."""
    from mmgene.evaluate.cross_dataset import markdown
    from mmgene.evaluate.report import report_json

    entry = {"cells": 10, "mmgene": {"ontology": {"balanced_accuracy": 0.5, "macro_auroc": float("nan")}, "rejection": None},
             "mapper": None, "versus": {}}
    report = {"datasets": {"a": entry}}
    assert markdown(json.loads(report_json(report))) == markdown(report)
    assert "| a | 10 | 0.500 / nan |" in markdown(report)
