"""A GenePT space embeds cells that lack its obsm key on the fly. It wrote those vectors (obsm, obs
``genept_*_n_genes``, ``uns['mmgene']``) into the user's AnnData, and the caller could then refuse the
request (refine on two cells, a reference that lacks a label, a wrong index dimension, ...), leaving the
data changed by a call that failed. The space now returns the vectors and writes nothing."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.errors import MissingColumnError, MMGeneError, ParameterError

GENES = ["CD3E", "CD8A", "NKG7", "GNLY", "MS4A1", "CD79A", "LYZ", "CD14"]
LABELS = ["T cell", "B cell"]


def cells(n: int = 4, labels: tuple[str, ...] = ("T cell", "B cell")) -> ad.AnnData:
    """``n`` cells of counts over real gene symbols (every gene expressed), labels in obs['cell_type']."""
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 6, size=(n, len(GENES))).astype(np.float32)
    obs = pd.DataFrame({"cell_type": [labels[i % len(labels)] for i in range(n)]}, index=[f"c{i}" for i in range(n)])
    return ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame({"gene_symbol": GENES}, index=GENES))


def snapshot(adata: ad.AnnData) -> tuple:
    return list(adata.obs.columns), sorted(adata.obsm.keys()), repr(dict(adata.uns)), list(adata.var.columns)


@pytest.fixture(scope="module")
def encoder():
    from mmgene.text.encoders import text_encoder

    return text_encoder("minilm")


@pytest.fixture(scope="module", params=["s", "w"])
def space(request, encoder):
    from mmgene.query import GenePTSpace

    return GenePTSpace(request.param, encoder=encoder)


def refused(error: type, call, *datas: ad.AnnData, match: str) -> None:
    """``call()`` raises ``error`` (an MMGeneError) and leaves every AnnData of ``datas`` as it was."""
    before = [snapshot(a) for a in datas]
    with pytest.raises(error, match=match) as err:
        call()
    assert isinstance(err.value, MMGeneError)
    assert [snapshot(a) for a in datas] == before


def reference_index(space, *, dim: int | None = None, labels: bool = True):
    """A reference index over 4 cells: the space's vectors (``dim=None``) or random ones of dimension ``dim``."""
    from mmgene.index import build

    ref = cells(4)
    ref.obsm["X_ref"] = space.encode_cells(ref) if dim is None else np.random.default_rng(1).normal(size=(4, dim))
    if not labels:
        ref.obs["cell_type"] = pd.Series([None] * 4, index=ref.obs_names, dtype=object)
    return build(ref, "X_ref", obs_columns=["cell_type"])


def test_encode_cells_returns_the_embedding_and_writes_nothing(space):
    from mmgene import embed
    from mmgene.vectors import as_unit_vectors

    adata = cells(4)
    before = snapshot(adata)
    got = space.encode_cells(adata)
    assert snapshot(adata) == before
    written = cells(4)
    (embed.genept_s if space.variant == "s" else embed.genept_w)(written, encoder=space.encoder)
    np.testing.assert_array_equal(got, as_unit_vectors(written.obsm[space.key]))  # as from a stored embedding


@pytest.mark.parametrize("variant", ["s", "w"])
def test_genept_inplace_false_returns_the_vectors_alone(variant, encoder):
    from mmgene import embed

    embedder = embed.genept_s if variant == "s" else embed.genept_w
    adata, written = cells(3), cells(3)
    before = snapshot(adata)
    vectors = embedder(adata, encoder=encoder, inplace=False)
    assert snapshot(adata) == before
    embedder(written, encoder=encoder)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_array_equal(vectors, written.obsm[f"X_genept_{variant}"])
    with pytest.raises(ParameterError, match="copy=True and inplace=False"):
        embedder(adata, encoder=encoder, copy=True, inplace=False)


def test_annotate_writes_only_what_it_promises(space):
    from mmgene.query import annotate

    adata = cells(4)
    annotate(adata, LABELS, space, others=False)
    assert sorted(adata.obsm.keys()) == ["mmgene_probs"]
    assert list(adata.obs.columns) == ["cell_type", "mmgene_label", "mmgene_score"]
    assert list(adata.uns["mmgene"]) == ["mmgene_label"]


def test_annotate_refine_on_two_cells_leaves_the_anndata(space):
    from mmgene.query import annotate

    adata = cells(2)
    refused(ParameterError, lambda: annotate(adata, LABELS, space, refine=True), adata, match="at least 3 cells")


def test_annotate_reference_without_a_label_leaves_both_anndatas(space):
    from mmgene.query import annotate

    adata, ref = cells(4), cells(4, ("T cell",))
    refused(ParameterError, lambda: annotate(adata, LABELS, space, reference=(ref, "cell_type")), adata, ref,
            match="the reference labels no cell 'B cell'")


def test_annotate_reference_without_the_column_leaves_the_anndata(space):
    from mmgene.query import annotate

    adata, ref = cells(4), cells(4)
    refused(MissingColumnError, lambda: annotate(adata, LABELS, space, reference=(ref, "nope")), adata, ref,
            match="'nope'")


def test_evaluate_refine_on_two_cells_leaves_the_anndata(space):
    from mmgene.evaluate import evaluate

    adata = cells(2)
    run = lambda: evaluate(space, adata, "cell_type", baseline=False, marker_baseline=False, refine=True)  # noqa: E731
    refused(ParameterError, run, adata, match="at least 3 cells")


def test_evaluate_classes_without_a_label_leaves_the_anndata(space):
    from mmgene.evaluate import evaluate

    adata = cells(4)
    classes = ["T cell", "NK cell"]
    run = lambda: evaluate(space, adata, "cell_type", classes=classes, baseline=False, marker_baseline=False)  # noqa: E731
    refused(ParameterError, run, adata, match=r"labels not among the classes: \['B cell'\]")


def test_transfer_from_unlabelled_reference_leaves_the_query(space):
    from mmgene.query import transfer_labels

    index, query = reference_index(space, labels=False), cells(3)
    refused(ParameterError, lambda: transfer_labels(index, query, "cell_type", model=space), query,
            match="the reference has no labels in 'cell_type'")


def test_transfer_to_an_index_of_another_dimension_leaves_the_query(space):
    from mmgene.query import transfer_labels

    index, query = reference_index(space, dim=5), cells(3)
    refused(ParameterError, lambda: transfer_labels(index, query, "cell_type", k=2, model=space), query,
            match="query vectors have dimension 384, the index has 5")


def test_cells_to_cells_refusals_leave_the_query(space):
    from mmgene.query import cells_to_cells

    query = cells(3)
    refused(ParameterError, lambda: cells_to_cells(reference_index(space, dim=5), query, model=space), query,
            match="query vectors have dimension 384, the index has 5")
    refused(ParameterError, lambda: cells_to_cells(reference_index(space), query, k=0, model=space), query, match="k")

