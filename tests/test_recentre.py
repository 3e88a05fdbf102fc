"""Recentring: cells move onto the model's training mean in the learned space before labels score them
(mmgene.align.recentre), chosen by leaving whole datasets out; annotate, evaluate and the CLI use it by
default from 30 cells on, and say so."""

from __future__ import annotations

import numpy as np
import pytest

from tiny_models import tiny_model

from mmgene.errors import ParameterError


@pytest.fixture(scope="module")
def cells(_pbmc68k_cached):
    """scanpy's pbmc68k_reduced (700 cells, obs['bulk_labels'])."""
    return _pbmc68k_cached.copy()


@pytest.fixture(scope="module")
def model(cells, tmp_path_factory):
    """A 4-step model on pbmc68k_reduced without a gene channel (its joint vector is its normalised learned vector)."""
    return tiny_model(cells, tmp_path_factory.mktemp("recentre") / "model", gene_bridge=False)


def test_training_stores_the_mean_of_its_training_cells_and_saving_keeps_it(model, cells):
    from mmgene.align import load

    trained = cells[~cells.obs_names.isin(model.test_obs_names)]
    assert trained.n_obs == 525 and len(model.test_obs_names) == 175
    expected = model.learned_vectors(trained).astype(np.float64).mean(axis=0)
    assert model.training_mean.shape == (16,) and model.training_mean.dtype == np.float32
    np.testing.assert_allclose(model.training_mean, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(load(model.meta["path"]).training_mean, model.training_mean)


def test_recentred_cells_are_the_normalised_learned_vectors_moved_by_the_offset(model, cells):
    from mmgene.align.recentre import offsets
    from mmgene.text.classes import unit_rows

    t_cells = cells[cells.obs["bulk_labels"].str.contains("CD4")]  # a sorted population, far from the training mean
    assert t_cells.n_obs == 138
    learned = model.learned_vectors(t_cells)
    [moved_by] = offsets([model], t_cells)
    np.testing.assert_allclose(moved_by, model.training_mean - learned.astype(np.float64).mean(axis=0), atol=1e-6)
    recentred = model.encode_cells(t_cells, recentre=True)
    np.testing.assert_allclose(recentred, unit_rows(learned + moved_by), atol=1e-5)
    plain = model.encode_cells(t_cells)
    np.testing.assert_allclose(plain, unit_rows(learned), atol=1e-5)
    assert np.abs(recentred - plain).max() > 0.05  # the population's own mean is gone
    np.testing.assert_array_equal(model.encode_cells(t_cells), plain)  # the offset lasts one encoding
    assert model._cell_head().offset is None


def test_recentring_the_training_cells_barely_moves_them(model, cells):
    """Their mean is the training mean, so the offset is zero up to the rounding of float32."""
    trained = cells[~cells.obs_names.isin(model.test_obs_names)]
    np.testing.assert_allclose(model.encode_cells(trained, recentre=True), model.encode_cells(trained), atol=1e-5)


def test_a_large_dataset_has_its_mean_taken_over_a_seeded_sample(model, cells, monkeypatch):
    from mmgene.align import recentre

    learned = model.learned_vectors(cells).astype(np.float64)
    np.testing.assert_allclose(recentre.dataset_mean(model, cells), learned.mean(axis=0), atol=1e-6)  # 700 cells: all
    monkeypatch.setattr(recentre, "MEAN_CELLS", 100)
    rows = np.sort(np.random.default_rng(0).choice(700, 100, replace=False))
    sampled = recentre.dataset_mean(model, cells)
    np.testing.assert_allclose(sampled, learned[rows].mean(axis=0), atol=1e-6)
    np.testing.assert_array_equal(recentre.dataset_mean(model, cells), sampled)  # the same cells every time
    assert np.abs(sampled - learned.mean(axis=0)).max() > 0  # a sample, not every cell
    pieces = [cells[:350], cells[350:]]  # a dataset read in chunks is averaged over every cell
    np.testing.assert_allclose(recentre.dataset_mean(model, pieces), learned.mean(axis=0), atol=1e-6)


def test_the_shift_is_undone_after_an_error(model):
    from mmgene.align.recentre import shifted

    head = model._cell_head()
    with pytest.raises(RuntimeError, match="inside"):
        with shifted(head, np.ones(16, dtype=np.float32)):
            assert head.offset is not None
            raise RuntimeError("inside")
    assert head.offset is None


def test_default_rule_30_cells_and_a_stored_mean(model, cells):
    from mmgene.align.model import AlignedModel
    from mmgene.query.space import GenePTSpace, cells_for_labels, recentres

    assert [recentres(model, n, None) for n in (1, 29, 30, 700)] == [False, False, True, True]
    assert recentres(model, 5, True) is True and recentres(model, 700, False) is False
    bare = AlignedModel(model.st, model.inputs, {k: v for k, v in model.meta.items() if k != "learned_mean"})
    assert bare.training_mean is None and recentres(bare, 700, None) is False
    with pytest.raises(ParameterError, match="stores no training mean") as err:
        bare.encode_cells(cells[:40], recentre=True)
    assert "--no-recentre" in str(err.value)
    with pytest.raises(ParameterError, match="no learned space to recentre"):
        recentres(GenePTSpace("s"), 700, True)
    assert recentres(GenePTSpace("s"), 700, None) is False
    vectors, moved = cells_for_labels(model, cells[:29], None)
    assert not moved and np.array_equal(vectors, model.encode_cells(cells[:29]))


def test_annotate_and_evaluate_recentre_by_default_and_say_so(model, cells):
    from mmgene.evaluate import evaluate
    from mmgene.query.labelling import annotate

    labels = sorted(set(cells.obs["bulk_labels"].astype(str)))
    on, off = cells.copy(), cells.copy()
    annotate(on, labels, model, others=False)
    annotate(off, labels, model, others=False, recentre=False)
    assert on.uns["mmgene"]["mmgene_label"]["recentred"] is True
    assert off.uns["mmgene"]["mmgene_label"]["recentred"] is False
    assert not np.allclose(on.obsm["mmgene_probs"].to_numpy(), off.obsm["mmgene_probs"].to_numpy())
    few = cells[:20].copy()
    annotate(few, labels, model, others=False)
    assert few.uns["mmgene"]["mmgene_label"]["recentred"] is False
    report = evaluate(model, cells, "bulk_labels", baseline=False, marker_baseline=False)
    assert report["zero_shot"]["recentred"] is True
    from mmgene.evaluate import markdown_report

    assert "recentred on its training mean" in markdown_report(report)
    plain = evaluate(model, cells, "bulk_labels", baseline=False, marker_baseline=False, recentre=False)
    assert plain["zero_shot"]["recentred"] is False and "recentred" not in markdown_report(plain)
    assert plain["retrieval"] != report["retrieval"]  # retrieval reads the same (recentred) cell vectors


def test_cli_no_recentre_reaches_annotate_and_evaluate(model, cells, tmp_path):
    import json

    import anndata

    from hostile import run_cli_here

    path = tmp_path / "cells.h5ad"
    small = cells[:60].copy()
    del small.uns["mmgene"]
    small.write_h5ad(path)
    labels = ["CD14+ Monocyte", "CD19+ B", "CD56+ NK"]
    for flag, expected in (("--recentre", True), ("--no-recentre", False)):
        out = tmp_path / f"annotated{flag}.h5ad"
        done = run_cli_here("annotate", path, "--model", model.meta["path"], "--labels", *labels, "--out", out, flag)
        assert done.returncode == 0, done.stderr
        assert anndata.read_h5ad(out).uns["mmgene"]["mmgene_label"]["recentred"] is expected
        done = run_cli_here(
            "evaluate", model.meta["path"], path, "--label-col", "bulk_labels", "--out", tmp_path / f"eval{flag}",
            "--no-baseline", "--no-marker-baseline", flag, "--json",
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["zero_shot"]["recentred"] is expected
