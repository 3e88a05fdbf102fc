"""Audit of mmgene.query's search, label transfer, "none of the asked types" rule and refinement: wrong answers
on edge cases, and bad input refused with an MMGeneError instead of a raw Python or numpy error."""

from __future__ import annotations

import warnings

import anndata
import numpy as np
import pandas as pd
import pytest

from mmgene.errors import MissingColumnError, ParameterError

# six reference cells on three axes: r0, r2 on x; r1, r3 on y; r4, r5 on z
AXES = np.eye(3, dtype=np.float32)[[0, 1, 0, 1, 2, 2]]
IDS = [f"r{i}" for i in range(6)]


def reference(labels, vectors=AXES, key: str | None = "X"):
    from mmgene.index import CellIndex

    ids = [f"r{i}" for i in range(len(vectors))]
    return CellIndex.from_vectors(vectors, ids, pd.DataFrame({"ct": labels}), embedding_key=key)


def query(n: int = 6) -> anndata.AnnData:
    adata = anndata.AnnData(np.zeros((n, 1), np.float32), obs=pd.DataFrame(index=[f"q{i}" for i in range(n)]))
    adata.obsm["X"] = AXES[:n].copy()
    return adata


# --------------------------------------------------------------------------- transfer_labels
def test_transfer_reads_one_vector_as_one_cell_not_one_cell_per_number():
    """A 1-D vector gave one output row per dimension, each with that cell's label."""
    from mmgene.query import transfer_labels

    out = transfer_labels(reference(["a", "b", "a", "b", "c", "c"]), np.array([0.0, 0.0, 1.0], np.float32), "ct", k=2)
    assert out.index.tolist() == ["0"]
    assert out["label"].tolist() == ["c"] and out["confidence"].tolist() == [1.0]


def test_novelty_on_a_one_cell_reference_is_refused_not_silently_off():
    """The threshold was NaN (a 'Mean of empty slice' warning), so no cell could be called unknown."""
    from mmgene.query import transfer_labels

    ref = reference(["a"], AXES[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ParameterError, match="novelty_alpha"):
            transfer_labels(ref, AXES[1:3], "ct", k=1, novelty_alpha=0.1)


def test_unused_categories_of_the_label_column_are_no_labels():
    from mmgene.query import transfer_labels

    cats = pd.Categorical(["a", "b", "a", "b", "c", "c"], categories=["a", "b", "c", "never"])
    adata = query()
    out = transfer_labels(reference(cats), adata, "ct", k=2)
    assert out.attrs["labels"] == ["a", "b", "c"]
    assert adata.obs["ct_transferred"].cat.categories.tolist() == ["a", "b", "c", "unknown"]
    empty = pd.Categorical([None] * 6, categories=["a", "b"])  # every cell unlabelled: every answer was unknown
    with pytest.raises(ParameterError, match="no labels in 'ct'"):
        transfer_labels(reference(empty), AXES, "ct", k=2)


def test_labels_that_read_alike_are_one_label_whose_votes_add_up():
    """1 and '1' were two classes: their votes split (confidence 0.5), and writing obs failed on duplicate categories."""
    from mmgene.query import transfer_labels

    labels = pd.Series([1, "1", 1, "1", "c", "c"], dtype=object)
    adata = query(4)
    out = transfer_labels(reference(labels), adata, "ct", k=4, weighting="uniform")
    assert out.attrs["labels"] == ["1", "c"]
    assert out["label"].tolist() == ["1", "1", "1", "1"]
    assert out["confidence"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert adata.obs["ct_transferred"].tolist() == ["1", "1", "1", "1"]


def test_a_cell_that_no_neighbour_voted_for_has_no_best_label():
    """A cell without a vector had best = the first label ('a'), which reads as a vote it never had."""
    from mmgene.query import transfer_labels

    vectors = np.array([[0.0, 1.0, 0.0], [np.nan, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    out = transfer_labels(reference(["a", "b", "a", "b", "c", "c"]), vectors, "ct", k=2)
    assert out["label"].tolist() == ["b", "unknown", "unknown"]
    assert out["best"].tolist() == ["b", None, None]


def test_copy_of_a_backed_query_is_made_in_memory(tmp_path):
    """copy=True on a backed AnnData raised anndata's raw ValueError after the whole search."""
    from mmgene.query import transfer_labels

    path = tmp_path / "q.h5ad"
    query().write_h5ad(path)
    backed = anndata.read_h5ad(path, backed="r")
    out = transfer_labels(reference(["a", "b", "a", "b", "c", "c"]), backed, "ct", k=2, copy=True)
    assert out.obs["ct_transferred"].tolist() == ["a", "b", "a", "b", "c", "c"]
    assert "ct_transferred" not in backed.obs.columns


# --------------------------------------------------------------------------- cells_to_cells
@pytest.mark.parametrize("vectors", [np.array([[0, 0, 1]]), [[0.0, 0.0, 1.0]]])
def test_cells_to_cells_reads_integer_and_nested_list_vectors_as_vectors(vectors):
    """They were taken for cell ids and refused as the unknown cell '[0 0 1]'."""
    from mmgene.query import cells_to_cells

    out = cells_to_cells(reference(["a"] * 6), vectors, k=2)
    assert out["cell_id"].tolist() == ["r4", "r5"]
    assert out["score"].tolist() == [1.0, 1.0]


def test_cells_to_cells_says_why_an_anndata_cannot_query_an_index_of_bare_vectors():
    """The message was "column 'None' does not exist in obsm"."""
    from mmgene.query import cells_to_cells

    ref = reference(["a"] * 6, key=None)
    with pytest.raises(ParameterError, match="bare vectors") as err:
        cells_to_cells(ref, query(2), k=1)
    assert not isinstance(err.value, MissingColumnError)


# --------------------------------------------------------------------------- refine_scores
@pytest.mark.parametrize("name", ["fraction", "C", "weight"])
def test_refine_refuses_settings_that_are_not_numbers(name):
    """'0.1' failed with a raw TypeError from a comparison."""
    from mmgene.query.refine import refine_scores

    with pytest.raises(ParameterError, match=f"{name} must be a number, got '1'"):
        refine_scores(np.eye(4, 2), np.ones((4, 2)), **{name: "1"})


# --------------------------------------------------------------------------- others
def test_a_label_named_as_a_class_takes_that_class_s_term():
    """A label that resolves to no term by name but is a class of the model: the classes above it ('T cell') and
    below it were others, so the cells of that very label were called unknown for being nearer to 'T cell'."""
    from mmgene.query.others import other_classes

    vocabulary = [("Tcm/Naive helper T cells", "CL:0000624"), ("T cell", "CL:0000084"), ("B", "CL:0000236"),
                  ("monocyte", "CL:0000576"), ("CD4 T memory", "CL:0000897")]
    assert other_classes(vocabulary, ["Tcm/Naive helper T cells", "B"], ["", ""]) == ["monocyte"]
