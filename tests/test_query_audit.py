"""Audit of mmgene.query: wrong answers on valid input, and bad input refused with an MMGeneError
that leaves the user's AnnData as it was."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest

from mmgene.errors import DataError, MMGeneError, NonFiniteError, ParameterError

LABELS = ["alpha thing", "beta thing"]


class AxisSpace:
    """A joint space without training classes: a text is the axis of the label it names (else the last)."""

    name = "axis"

    def encode_text(self, texts):
        out = np.zeros((len(texts), 3), np.float32)
        for row, text in enumerate(texts):
            out[row, 0 if "alpha" in text else 1 if "beta" in text else 2] = 1.0
        return out

    def encode_cells(self, adata):
        return np.asarray(adata.obsm["axis"], np.float32)

    def describe(self):
        return {"model": self.name, "inputs": ["axis"]}


def cells(n: int = 40) -> anndata.AnnData:
    """``n`` cells, half on the alpha axis and half on the beta axis (with a little noise)."""
    rng = np.random.default_rng(0)
    vectors = np.zeros((n, 3), np.float32)
    vectors[np.arange(n) % 2 == 0, 0] = 1.0
    vectors[np.arange(n) % 2 == 1, 1] = 1.0
    vectors += rng.normal(scale=0.05, size=vectors.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    adata = anndata.AnnData(np.ones((n, 2), np.float32), obs=pd.DataFrame({"mine": np.arange(n)}, index=[f"c{i}" for i in range(n)]))
    adata.obsm["axis"] = vectors
    return adata


def snapshot(adata: anndata.AnnData) -> tuple:
    return list(adata.obs.columns), sorted(adata.obsm.keys()), repr(adata.uns.get("mmgene"))


def refused(error: type, adata: anndata.AnnData, call, match: str | None = None) -> MMGeneError:
    """``call()`` raises ``error`` (an MMGeneError) and leaves ``adata`` as it was."""
    before = snapshot(adata)
    with pytest.raises(error, match=match) as err:
        call()
    assert isinstance(err.value, MMGeneError)
    assert snapshot(adata) == before
    return err.value


def annotate(adata, labels=LABELS, **settings):
    from mmgene.query import annotate as run

    return run(adata, labels, AxisSpace(), **{"others": False, **settings})


def test_annotate_works_on_the_fake_space():
    adata = cells()
    annotate(adata)
    assert adata.obs["mmgene_label"].astype(str).tolist() == [LABELS[i % 2] for i in range(40)]


# --------------------------------------------------------------------------- wrong answers
def test_a_cell_with_a_nan_vector_is_refused_rather_than_every_cell_called_unknown():
    """One NaN cell made every label's z-score mean NaN, so all 40 cells came back unknown, silently."""
    adata = cells()
    adata.obsm["axis"][3] = np.nan
    err = refused(NonFiniteError, adata, lambda: annotate(adata))
    assert "'c3'" in str(err)


def test_nested_labels_below_half_answer_the_probable_branch_not_the_deepest_one():
    """With min_prob < 0.5 confident labels lie on several branches: a cell that is 75% B cell was called
    the CD8 T cell it is 21% like, because that term is deeper."""
    from mmgene.query.labelling import assign_nested
    from mmgene.text.hierarchy import LabelHierarchy

    tree = LabelHierarchy.of(["T cell", "CD8 T", "B cell"], ["CL:0000084", "CL:0000625", "CL:0000236"])
    b_cell = np.log([[0.04, 0.21, 0.75]])
    cd8 = np.log([[0.10, 0.60, 0.30]])
    for min_prob in (0.0, 0.2):
        assert assign_nested(b_cell, tree, temperature=1.0, min_prob=min_prob).label.tolist() == ["B cell"]
        assert assign_nested(cd8, tree, temperature=1.0, min_prob=min_prob).label.tolist() == ["CD8 T"]
    # the default rule is as before: one chain of confident labels, its deepest wins
    assert assign_nested(b_cell, tree, temperature=1.0, min_prob=0.5).label.tolist() == ["B cell"]
    assert assign_nested(cd8, tree, temperature=1.0, min_prob=0.5).label.tolist() == ["CD8 T"]
    assert assign_nested(np.log([[0.35, 0.3, 0.35]]), tree, temperature=1.0, min_prob=0.5).label.tolist() == ["T cell"]


def test_labels_whose_default_prompts_are_the_same_are_refused():
    """'Foo_cells' and 'Foo cells' read as one name ('foo cell'): identical prompts, identical scores, so
    every cell of that type was split 0.5/0.5 and called unknown."""
    adata = cells()
    refused(ParameterError, adata, lambda: annotate(adata, ["Foo_cells", "Foo cells", "beta thing"]), "same prompts")
    # with templates that keep the labels as written they differ, and are accepted
    annotate(adata, ["Foo_cells", "Foo cells", "beta thing"], prompts=["a {label}"])


def test_a_probability_table_the_user_wrote_in_obsm_is_not_replaced():
    adata = cells()
    adata.obsm["mmgene_probs"] = np.zeros((40, 2))
    refused(ParameterError, adata, lambda: annotate(adata), "obsm\\['mmgene_probs'\\]")
    assert not adata.obsm["mmgene_probs"].any()
    annotate(adata, key_added="other")  # another key is fine, and so is a second run over mmgene's own table
    annotate(adata, key_added="other")
    assert adata.obsm["other_probs"].shape == (40, 2)


def test_uns_mmgene_that_is_not_a_mapping_is_refused_before_anything_is_written():
    adata = cells()
    adata.uns["mmgene"] = "a note"
    refused(DataError, adata, lambda: annotate(adata), "uns\\['mmgene'\\]")


def reference():
    """An index of 40 labelled cells whose vectors are ``obsm['axis']``."""
    from mmgene.index import CellIndex

    return CellIndex.from_vectors(
        cells().obsm["axis"], [f"r{i}" for i in range(40)], pd.DataFrame({"ct": ["a", "b"] * 20}), embedding_key="axis"
    )


def test_transfer_refuses_uns_mmgene_that_is_not_a_mapping_before_writing():
    from mmgene.query import transfer_labels

    ref = reference()
    query = cells(6)
    query.uns["mmgene"] = ["a list"]
    refused(DataError, query, lambda: transfer_labels(ref, query, "ct", k=3), "uns\\['mmgene'\\]")


def test_standardising_one_cell_is_refused_not_every_label_scored_zero():
    """A z-score over one cell is 0 for every label: p = 1/n_labels, and the cell was unknown, silently."""
    adata = cells(1)
    refused(ParameterError, adata, lambda: annotate(adata, standardize=True), "at least two cells")


# --------------------------------------------------------------------------- bad input refused
@pytest.mark.parametrize("labels", [None, ["alpha thing", None], ["alpha thing", float("nan")], ["alpha thing", pd.NA]])
def test_missing_labels_are_refused(labels):
    adata = cells()
    refused(ParameterError, adata, lambda: annotate(adata, labels))


def test_assign_labels_and_calibrate_refuse_non_finite_and_malformed_numbers():
    from mmgene.query import assign_labels, calibrate

    scores = np.array([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(NonFiniteError, match="NaN"):  # a NaN row was answered 'a' with a NaN score
        assign_labels(np.array([[np.nan, 0.0], [1.0, 0.0]]), ["a", "b"])
    with pytest.raises(ParameterError, match="thresholds"):
        assign_labels(scores, ["a", "b"], thresholds=[0.0, 0.0, 0.0])
    with pytest.raises(ParameterError, match="thresholds"):  # NaN switched the threshold off
        assign_labels(scores, ["a", "b"], thresholds=np.nan)
    with pytest.raises(ParameterError, match="min_prob"):
        assign_labels(scores, ["a", "b"], min_prob="0.5")
    with pytest.raises(ParameterError, match="temperature"):
        assign_labels(scores, ["a", "b"], temperature="1")
    with pytest.raises(NonFiniteError, match="NaN"):  # gave a NaN threshold, which rejects no cell
        calibrate(np.array([[np.nan, 0.0], [0.0, 1.0]]), ["a", "b"], ["a", "b"])
    with pytest.raises(ParameterError, match="alpha"):
        calibrate(scores, ["a", "b"], ["a", "b"], alpha="0.05")
    # numpy numbers are numbers
    res = assign_labels(scores, ["a", "b"], temperature=np.float32(1.0), min_prob=np.float32(0.5), thresholds=np.float32(0.0))
    assert res.label.tolist() == ["a", "b"]


def test_transfer_refuses_malformed_numbers():
    from mmgene.query import transfer_labels

    ref = reference()
    query = cells(4).obsm["axis"]
    for bad, name in (({"k": 2.5}, "k"), ({"k": "5"}, "k"), ({"min_confidence": "0.5"}, "min_confidence"),
                      ({"novelty_alpha": "0.1"}, "novelty_alpha"), ({"novelty_alpha": 0.1, "calibration_cells": 0}, "calibration_cells")):
        with pytest.raises(ParameterError, match=name):
            transfer_labels(ref, query, "ct", **bad)


def test_cells_to_cells_refuses_k_below_one():
    from mmgene.index import CellIndex
    from mmgene.query import cells_to_cells

    index = CellIndex.from_vectors(cells().obsm["axis"], [f"r{i}" for i in range(40)])
    with pytest.raises(ParameterError, match="k must be"):  # k=0 returned an empty table
        cells_to_cells(index, ["r1"], k=0)


def test_genept_cells_without_genes_are_refused_without_touching_the_anndata(_pbmc3k_cached):
    """GenePT embedded the cells into the user's AnnData (obsm, obs, uns) and then refused their NaN rows,
    advising to recompute the embedding."""
    from mmgene.query import GenePTSpace
    from mmgene.query import annotate as run
    from mmgene.text.encoders import text_encoder

    adata = _pbmc3k_cached[:12].copy()
    matrix = adata.X.tolil()
    matrix[3, :] = 0
    adata.X = matrix.tocsr()
    err = refused(DataError, adata, lambda: run(adata, ["B cell", "T cell"], GenePTSpace("s", encoder=text_encoder("minilm"))))
    assert adata.obs_names[3] in str(err) and "drop" in err.fix
