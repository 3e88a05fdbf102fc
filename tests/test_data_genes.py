"""The data's own marker genes join a model's gene channel (mmgene.align.data_genes): the learned part
of every vector stays as it was, the model itself is never changed, and annotate, evaluate and the CLI
use it by default for a model trained on a corpus from 30 cells on, and say so."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tiny_models import as_corpus_model, tiny_model

from mmgene.errors import ParameterError

MYELOID_AND_B = ["CD14+ Monocyte", "CD19+ B", "Dendritic"]


@pytest.fixture(scope="module")
def cells(_pbmc68k_cached):
    """scanpy's pbmc68k_reduced (700 cells, obs['bulk_labels'])."""
    return _pbmc68k_cached.copy()


@pytest.fixture(scope="module")
def model(cells, tmp_path_factory):
    """A 4-step model with a gene channel, trained on the myeloid and B cells only (no T or NK cell marks its channel)."""
    some = cells[cells.obs["bulk_labels"].isin(MYELOID_AND_B)].copy()
    return tiny_model(some, tmp_path_factory.mktemp("data_genes") / "model")


@pytest.fixture(scope="module")
def corpus_model(model):
    """The same model read as one trained on a corpus (what the default rule asks)."""
    return as_corpus_model(model)


def test_data_markers_counts_each_cells_genes_above_the_mean():
    from mmgene.align.data_genes import data_markers

    counts = np.zeros((6, 4), dtype=np.float32)
    counts[0:3, 0] = 10  # CD3E in three cells
    counts[3:5, 1] = 10  # INS in two
    counts[5, 2] = 10  # GCG in one
    counts[[0, 3], 3] = 1  # CD19, a little, in two (above its mean there)
    adata = anndata.AnnData(sp.csr_matrix(counts), var=pd.DataFrame(index=["CD3E", "INS", "GCG", "CD19"]))
    assert data_markers(adata) == ["CD3E", "CD19", "INS", "GCG"]  # most often first, ties by name
    assert data_markers(adata, limit=2) == ["CD3E", "CD19"]


def test_widening_adds_genes_after_the_channels_own_and_keeps_the_learned_part(model, cells, monkeypatch):
    from mmgene.align.data_genes import channel_genes, data_markers

    own = channel_genes(model)
    assert own and "HLA-DRA" not in own and "SPI1" not in own
    plain_cells, plain_text = model.encode_cells(cells), model.encode_text(["a monocyte expressing SPI1"])
    same, added = model.with_channel_genes(own[:5])
    assert same is model and added == 0  # nothing new: the model itself
    # GZMK marks no training cell, so it is not in the vocabulary and cannot join
    wide, added = model.with_channel_genes(["HLA-DRA", "SPI1", "HLA-DRA", "GZMK", "not-a-gene"])
    assert added == 2 and channel_genes(wide) == [*own, "HLA-DRA", "SPI1"]
    assert channel_genes(model) == own  # the model itself is unchanged
    wide_cells, wide_text = wide.encode_cells(cells), wide.encode_text(["a monocyte expressing SPI1"])
    dim = model._cell_head().out_dim
    assert wide_cells.shape == (700, plain_cells.shape[1] + 2)
    has_own = np.linalg.norm(plain_cells[:, dim:], axis=1) > 0
    np.testing.assert_allclose(wide_cells[has_own, :dim], plain_cells[has_own, :dim], atol=1e-6)
    t_cells = cells.obs["bulk_labels"].str.contains(r"CD4\+|CD8\+").to_numpy()
    assert wide_cells[~t_cells, -1].mean() > 5 * wide_cells[t_cells, -1].mean()  # SPI1's column: not the T cells
    assert wide_text[0, -1] > 0.1 and plain_text.shape[1] == wide_text.shape[1] - 2  # the prompt names SPI1
    np.testing.assert_array_equal(model.encode_cells(cells), plain_cells)
    assert set(data_markers(cells)) >= {"HLA-DRA", "SPI1", "GZMK"}
    from mmgene.align.modules.text_input import TextInput

    encoder = next(m for m in model.st.modules() if isinstance(m, TextInput)).encoder
    monkeypatch.setattr(encoder, "encode", lambda *args, **kwargs: pytest.fail("a gene text embedded twice"))
    again, added = model.with_channel_genes(["HLA-DRA", "SPI1"])  # the process remembers their vectors
    assert added == 2 and np.array_equal(again.encode_cells(cells), wide_cells)


def test_an_ensemble_widens_every_member(model, cells):
    from mmgene.align.data_genes import channel_genes
    from mmgene.align.ensemble import EnsembleModel

    pair = EnsembleModel([model, model])
    wide, added = pair.with_channel_genes(["SPI1"])
    assert added == 2 and [channel_genes(m)[-1] for m in wide.members] == ["SPI1", "SPI1"]
    assert wide.dim == pair.dim + 2 and wide.meta == pair.meta


def test_default_rule_a_corpus_model_and_30_cells(model, corpus_model, cells):
    from mmgene.query.space import GenePTSpace, space_for_labels

    assert space_for_labels(model, cells, None) == (model, 0)  # one AnnData's model: off unless asked
    asked, added = space_for_labels(model, cells, True)
    assert added > 0 and asked is not model
    wide, added_by_default = space_for_labels(corpus_model, cells, None)
    assert added_by_default == added and wide is not corpus_model
    assert space_for_labels(corpus_model, cells[:29], None) == (corpus_model, 0)
    assert space_for_labels(corpus_model, cells, False) == (corpus_model, 0)
    assert space_for_labels(GenePTSpace("s"), cells, None)[1] == 0
    with pytest.raises(ParameterError, match="no gene channel to widen") as err:
        space_for_labels(GenePTSpace("s"), cells, True)
    assert "--no-data-markers" in str(err.value)


def test_annotate_and_evaluate_say_how_many_genes_joined(model, corpus_model, cells):
    from mmgene.evaluate import evaluate
    from mmgene.query.labelling import annotate

    labels = ["B cell", "natural killer cell", "CD14-positive monocyte"]
    on, off = cells.copy(), cells.copy()
    annotate(on, labels, corpus_model, others=False)
    annotate(off, labels, corpus_model, others=False, data_markers=False)
    joined = on.uns["mmgene"]["mmgene_label"]["data_markers"]
    assert joined > 0 and off.uns["mmgene"]["mmgene_label"]["data_markers"] == 0
    assert not np.allclose(on.obsm["mmgene_probs"].to_numpy(), off.obsm["mmgene_probs"].to_numpy())
    report = evaluate(corpus_model, cells, "bulk_labels", baseline=False, marker_baseline=False)
    assert report["zero_shot"]["data_markers"] == joined
    plain = evaluate(model, cells, "bulk_labels", baseline=False, marker_baseline=False)
    assert plain["zero_shot"]["data_markers"] == 0
    from mmgene.evaluate import markdown_report

    assert f"{joined} genes that mark these cells joined the model's gene channel" in markdown_report(report)
    assert "joined the model's gene channel" not in markdown_report(plain)


def test_cli_data_markers_flag(model, cells, tmp_path):
    from hostile import run_cli_here

    path = tmp_path / "cells.h5ad"
    small = cells[:60].copy()
    del small.uns["mmgene"]
    small.write_h5ad(path)
    before = path.read_bytes()
    labels = ["CD14+ Monocyte", "CD19+ B", "CD56+ NK"]
    out = tmp_path / "annotated.h5ad"
    done = run_cli_here("annotate", path, "--model", model.meta["path"], "--labels", *labels, "--out", out, "--data-markers")
    assert done.returncode == 0, done.stderr
    assert anndata.read_h5ad(out).uns["mmgene"]["mmgene_label"]["data_markers"] > 0
    refused = tmp_path / "refused.h5ad"
    done = run_cli_here("annotate", path, "--model", "genept-s", "--labels", *labels, "--out", refused, "--data-markers")
    assert done.returncode == 2 and "no gene channel to widen" in done.stderr
    assert not refused.exists() and path.read_bytes() == before
