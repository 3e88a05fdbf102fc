"""``mmgene embed model``: a trained model's cell vectors from the command line, for an index of text queries.

Before it, only Python (``model.encode_cells``) or ``mmgene demo`` could write them, so the README's
``mmgene index build atlas.h5ad --embedding X_mmgene`` had no command line to make its input.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile import assert_refused, run_cli_here
from tiny_models import tiny_model


@pytest.fixture(scope="module")
def files(_pbmc68k_cached, tmp_path_factory):
    """A tiny model of pbmc68k_reduced saved to a folder, and 120 of its cells in an .h5ad without mmgene's records."""
    root = tmp_path_factory.mktemp("embed_model")
    tiny_model(_pbmc68k_cached.copy(), root / "model", gene_bridge=False)
    cells = _pbmc68k_cached[:120].copy()
    del cells.uns["mmgene"]
    cells.write_h5ad(root / "cells.h5ad")
    return root


def _expected(files, recentre: bool) -> np.ndarray:
    import anndata as ad

    from mmgene.align import load
    from mmgene.io import read

    return load(files / "model").encode_cells(read(ad.read_h5ad(files / "cells.h5ad")), recentre=recentre)


def test_the_vectors_are_the_models_recentred_as_annotate_recentres_them(files, tmp_path):
    import anndata as ad

    out = run_cli_here("embed", "model", files / "cells.h5ad", "-m", files / "model", "-o", tmp_path / "out.h5ad", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    written = ad.read_h5ad(tmp_path / "out.h5ad")
    assert result == {
        "out": str(tmp_path / "out.h5ad"), "key": "X_mmgene", "cells": 120, "dim": written.obsm["X_mmgene"].shape[1],
        "model": str(files / "model"), "recentred": True,  # 120 cells: at least the 30 annotate recentres from
    }
    np.testing.assert_array_equal(written.obsm["X_mmgene"], _expected(files, recentre=True))
    record = written.uns["mmgene"]["X_mmgene"]
    assert record["model"] == str(files / "model") and record["recentred"]
    plain = run_cli_here("embed", "model", files / "cells.h5ad", "-m", files / "model", "-o", tmp_path / "plain.h5ad", "--no-recentre")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith(f"wrote obsm['X_mmgene'] (120 x {result['dim']}; {files / 'model'}) to ")
    np.testing.assert_array_equal(ad.read_h5ad(tmp_path / "plain.h5ad").obsm["X_mmgene"], _expected(files, recentre=False))


def test_an_index_of_the_vectors_answers_text_through_the_model(files, tmp_path):
    assert run_cli_here("embed", "model", files / "cells.h5ad", "-m", files / "model", "-o", tmp_path / "out.h5ad").returncode == 0
    built = run_cli_here("index", "build", tmp_path / "out.h5ad", "-e", "X_mmgene", "-o", tmp_path / "idx", "--json")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["model"] == str(files / "model")  # from the vectors' provenance
    hits = json.loads(run_cli_here("query", tmp_path / "idx", "B cells", "-k", "3", "--json").stdout)["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3] and all(-1 <= h["score"] <= 1 for h in hits)


def test_what_is_not_a_trained_model_or_a_free_key_is_refused_and_nothing_is_written(files, tmp_path):
    import anndata as ad

    cells = files / "cells.h5ad"
    assert_refused(["embed", "model", cells, "-m", "genept-w", "-o", tmp_path / "o.h5ad"], [files, tmp_path],
                   contains="is not a trained mmgene model")
    assert_refused(["embed", "model", cells, "-m", files / "model", "-o", tmp_path / "o.h5ad", "--batch-size", "0"],
                   [files, tmp_path], contains="--batch-size must be a whole number of at least 1")
    theirs = ad.read_h5ad(cells)
    theirs.obsm["X_mmgene"] = np.zeros((theirs.n_obs, 2), np.float32)  # the user's own entry of that name
    theirs.write_h5ad(tmp_path / "theirs.h5ad")
    assert_refused(["embed", "model", tmp_path / "theirs.h5ad", "-m", files / "model", "--in-place"], [files, tmp_path],
                   contains="obsm['X_mmgene'] exists and mmgene did not write it")


def test_embed_lists_the_command():
    out = run_cli_here("embed", "--help")
    assert "model       A trained mmgene model's cell vectors into" in out.stdout


def test_a_streamed_index_of_the_vectors_names_the_model_they_record(files, tmp_path):
    from mmgene.index import AnnDataObsm, build_streamed

    assert run_cli_here("embed", "model", files / "cells.h5ad", "-m", files / "model", "-o", tmp_path / "out.h5ad").returncode == 0
    source = AnnDataObsm([tmp_path / "out.h5ad"], "X_mmgene", obs_columns=["bulk_labels"])
    assert source.recorded_model() == str(files / "model")
    index = build_streamed(source, tmp_path / "idx", kind="ivf", nlist=2, nprobe=2, embedding_key="X_mmgene")
    assert index.model == str(files / "model")  # as CellIndex.build takes it; text queries need it
    assert run_cli_here("index", "build", tmp_path / "out.h5ad", "-e", "X_mmgene", "--stream", "--kind", "ivf", "--nlist", "2",
                        "-o", tmp_path / "cli-idx").returncode == 0
    assert json.loads((tmp_path / "cli-idx" / "meta.json").read_text())["model"] == str(files / "model")
