"""Audit: an ``unknown`` answer named like a label is refused (it merged with that class), and a label
column of mixed Python objects keeps each value's own text (1 and True were one label, "1")."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest

from mmgene.errors import ParameterError


def _reference():
    """A labelled index of 20 cells on two axes: 'B cell' on the first, 'T cell' on the second."""
    from mmgene.index import CellIndex

    vectors = np.zeros((20, 2), np.float32)
    vectors[::2, 0] = 1.0
    vectors[1::2, 1] = 1.0
    table = pd.DataFrame({"ct": ["B cell", "T cell"] * 10})
    return CellIndex.from_vectors(vectors, [f"r{i}" for i in range(20)], table, embedding_key="axis")


def _query() -> anndata.AnnData:
    """Four cells: on the 'B cell' axis, the 'T cell' axis, no vector (all zero: unknown), the 'B cell' axis."""
    adata = anndata.AnnData(np.ones((4, 2), np.float32), obs=pd.DataFrame(index=[f"q{i}" for i in range(4)]))
    adata.obsm["axis"] = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0]], np.float32)
    return adata


@pytest.mark.parametrize(
    ("unknown", "said"),
    [("B cell", "'B cell' is both"), ("b  CELL", "'B cell' reads as 'b  CELL', both")],
)
def test_transfer_refuses_an_unknown_answer_named_like_a_reference_label(unknown, said):
    """Rejected cells were written as 'B cell', one class with the real B cells, silently."""
    from mmgene.query import transfer_labels

    query = _query()
    before = (list(query.obs.columns), dict(query.uns))
    with pytest.raises(ParameterError) as err:
        transfer_labels(_reference(), query, "ct", k=3, unknown=unknown)
    message = str(err.value)
    said += f" a label of the reference's 'ct' column and the answer for unrecognised cells (unknown={unknown!r})"
    assert said in message
    assert "Where: transfer_labels(unknown=...)" in message
    assert "pass another name for unrecognised cells (the default is 'unknown')" in message
    assert (list(query.obs.columns), dict(query.uns)) == before
    with pytest.raises(ParameterError, match="both a label"):  # an array query too
        transfer_labels(_reference(), query.obsm["axis"], "ct", k=3, unknown=unknown)
    out = transfer_labels(_reference(), query, "ct", k=3, unknown="none of these", key_added="knn")  # a name of its own
    assert out.index.tolist() == ["q0", "q1", "q2", "q3"]
    assert out["label"].tolist() == ["B cell", "T cell", "none of these", "B cell"]
    assert list(query.obs["knn"].cat.categories) == ["B cell", "T cell", "none of these"]
    assert query.obs["knn"].astype(str).tolist() == ["B cell", "T cell", "none of these", "B cell"]


@pytest.mark.parametrize("unknown", ["", "  ", None, 3])
def test_transfer_refuses_an_unknown_answer_that_is_no_name(unknown):
    from mmgene.query import transfer_labels

    with pytest.raises(ParameterError, match="unknown must be a non-empty name"):
        transfer_labels(_reference(), _query().obsm["axis"], "ct", k=3, unknown=unknown)


@pytest.mark.parametrize("unknown", ["a", " A "])
def test_assign_labels_refuses_an_unknown_answer_named_like_a_label(unknown):
    """assign_labels wrote rejected cells as 'a', one class with the cells it did call 'a'."""
    from mmgene.query import assign_labels

    with pytest.raises(ParameterError, match="the answer for unrecognised cells, not a label"):
        assign_labels(np.array([[1.0, 0.0], [0.5, 0.5]]), ["a", "b"], unknown=unknown)
    res = assign_labels(np.array([[5.0, 0.0], [0.5, 0.5]]), ["a", "b"], temperature=1.0, unknown="neither")
    assert res.label.tolist() == ["a", "neither"]


def test_assign_nested_refuses_an_unknown_answer_named_like_a_label():
    from mmgene.query.labelling import assign_nested
    from mmgene.text.hierarchy import LabelHierarchy

    hierarchy = LabelHierarchy(("T cell", "CD4 T cell"), ("CL:0000084", "CL:0000624"), ((1,), ()))
    with pytest.raises(ParameterError, match="'T cell' is the answer for unrecognised cells, not a label"):
        assign_nested(np.array([[1.0, 0.0]]), hierarchy, unknown="T cell")


# ------------------------------------------------------------------------------------ label text
def test_label_text_keeps_values_that_compare_equal_but_read_differently_apart():
    """1, 1.0 and True hash alike, so all three were written '1' (and 0, False as '0')."""
    from mmgene.text.labels import label_text, missing_labels

    values = [1, True, 1.0, 0, False, 0.0, -0.0, None, float("nan"), pd.NA, "", "  ", "1", "True", "B cell"]
    expected = ["1", "True", "1.0", "0", "False", "0.0", "-0.0", "", "", "", "", "", "1", "True", "B cell"]
    assert label_text(values).tolist() == expected
    assert label_text(np.array(values, dtype=object)).tolist() == expected
    assert label_text(pd.Series(values, dtype=object)).tolist() == expected
    assert label_text(pd.Series([True, 1, True, 1])).tolist() == ["True", "1", "True", "1"]
    got = missing_labels(values)  # which are missing is unchanged
    assert got.tolist() == [False] * 7 + [True] * 5 + [False] * 3


def test_label_text_of_typed_columns():
    from mmgene.text.labels import label_text

    assert label_text(pd.Series([0.0, -0.0, np.nan, 1.5])).tolist() == ["0.0", "-0.0", "", "1.5"]
    assert label_text(pd.Series([3, 1, 3])).tolist() == ["3", "1", "3"]
    assert label_text(np.array([True, False])).tolist() == ["True", "False"]
    categorical = pd.Categorical(["B cell", None, " ", "T cell", "B cell"])
    assert label_text(categorical).tolist() == ["B cell", "", "", "T cell", "B cell"]
    assert label_text(pd.Series(["x", None, "y"], dtype="string")).tolist() == ["x", "", "y"]
    assert label_text([]).tolist() == []


def test_usable_labels_count_one_and_true_as_two_classes():
    """The label-column checks read label_text: a column of 1 and True was one class, so it was refused."""
    from mmgene.io.labels import usable_labels

    keep, labels, dropped = usable_labels(pd.Series([1, True, 1, True, None], dtype=object), "obs['flag']", "evaluate")
    assert keep.tolist() == [True, True, True, True, False]
    assert labels.tolist() == ["1", "True", "1", "True"]
    assert dropped == 1
