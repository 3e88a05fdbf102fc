"""Audit of the command line with inputs a user really types: an AnnData output named as another kind of
file, an output inside (or onto) an input the command reads (a reference index, a reference AnnData, the
model an index names), a report name that is a folder, an empty gene symbol, a timeout of 0, a negative
seed, a gene vectors file of the wrong kind named only after the work. Each is refused with exit status 2
and one line, every file left as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_refused, run_cli_here


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> Path:
    """120 labelled cells of pbmc68k_reduced with a 16-wide embedding obsm['X_e'] (and its X_pca)."""
    import mmgene.data
    import mmgene.io

    adata = mmgene.io.read(mmgene.data.pbmc68k())[:120].copy()
    del adata.uns["mmgene"]
    adata.obsm["X_e"] = np.random.default_rng(0).normal(size=(adata.n_obs, 16)).astype(np.float32)
    path = tmp_path_factory.mktemp("audit37") / "cells.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def built_index(cells, tmp_path_factory) -> Path:
    """A flat index over obsm['X_pca'] of ``cells``, with its bulk_labels column."""
    folder = tmp_path_factory.mktemp("audit37-index") / "index"
    done = run_cli_here("index", "build", cells, "-e", "X_pca", "-o", folder, "--kind", "flat", "--obs", "bulk_labels")
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture
def index(built_index, tmp_path) -> Path:
    """A copy of the index for one test to leave as it found it."""
    return Path(shutil.copytree(built_index, tmp_path / "index"))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """An untrained aligned model over obsm['X_e'] (16 dimensions): a joint space that loads in seconds."""
    pytest.importorskip("sentence_transformers")
    from mmgene.align import AlignedModel, build_model
    from mmgene.align.config import ModelConfig

    st = build_model([], ModelConfig(hidden=32, dim=16), obsm_keys=["X_e"], obsm_dims=[16], seed=0)
    return Path(AlignedModel(st, ["X_e"]).save(tmp_path_factory.mktemp("audit37-model") / "model"))


@pytest.fixture
def model_dir(saved_model, tmp_path) -> Path:
    """A copy of the model for one test to leave as it found it."""
    return Path(shutil.copytree(saved_model, tmp_path / "model"))


def test_transfer_refuses_an_output_inside_the_reference_index(index, cells, tmp_path):
    line = assert_refused(
        ["transfer", index, cells, "-c", "bulk_labels", "-o", index / "labels.h5ad"], [tmp_path, cells],
        contains="inside the input",
    )
    assert str(index) in line


def test_an_anndata_output_named_as_another_kind_of_file_is_refused(index, cells, tmp_path):
    notes = tmp_path / "notes.csv"
    notes.write_text("cell,comment\nA,kept\n", encoding="utf-8")
    line = assert_refused(
        ["transfer", index, cells, "-c", "bulk_labels", "-o", notes, "--overwrite"], [tmp_path, cells],
        contains="--out must end in .h5ad or .zarr, got 'notes.csv'",
    )
    assert "What to do: pass --out NEW.h5ad or NEW.zarr." in line
    assert notes.read_text(encoding="utf-8") == "cell,comment\nA,kept\n"


def test_annotate_refuses_to_write_over_its_reference(cells, tmp_path):
    reference = Path(shutil.copy(cells, tmp_path / "reference.h5ad"))
    args = ["annotate", cells, "-m", "genept-w", "-l", "CD19+ B", "-l", "CD14+ Monocyte", "--reference", reference,
            "--reference-column", "bulk_labels", "-o", reference, "--overwrite"]
    line = assert_refused(args, [tmp_path, cells], contains="the output is the input")
    assert str(reference) in line


def test_annotate_refuses_an_output_inside_its_model_folder(model_dir, cells, tmp_path):
    args = ["annotate", cells, "-m", model_dir, "-l", "B cell", "-l", "T cell", "-o", model_dir / "annotated.h5ad"]
    line = assert_refused(args, [model_dir, cells], contains="the output is inside the input")
    assert str(model_dir) in line


def test_index_build_refuses_to_replace_the_model_it_names(model_dir, cells, tmp_path):
    args = ["index", "build", cells, "-e", "X_e", "-m", model_dir, "-o", model_dir, "--kind", "flat", "--overwrite"]
    assert_refused(args, [model_dir, cells], contains="the output is the input")
    assert (model_dir / "mmgene_align.json").is_file()


@pytest.mark.parametrize("out", [".", ""])
def test_evaluate_refuses_a_report_name_that_is_a_folder(out, cells, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    line = assert_refused(
        ["evaluate", tmp_path / "no-model", cells, "--label-col", "bulk_labels", "--out", out], [tmp_path, cells],
        contains="--out '.' names a folder",
    )
    assert "What to do: pass a name, e.g. --out eval" in line


def test_publish_refuses_a_negative_seed(cells, tmp_path):
    args = ["publish", cells, "--repo-id", "me/cells", "--dry-run", "--out", tmp_path / "staged", "--seed", "-1"]
    line = assert_refused(args, [tmp_path, cells], contains="'--seed'")
    assert "greater than or equal to 0" in line
    assert not (tmp_path / "staged").exists()


@pytest.mark.parametrize("timeout", ["0", "-1", "nan"])
def test_genes_fetch_refuses_a_timeout_not_above_zero(timeout, tmp_path):
    # a closed local port: nothing would leave the machine even if a request were made
    args = ["genes", "fetch", "CD3E", "--source", "ncbi", "--base-url", "http://127.0.0.1:9", "--cache",
            tmp_path / "ncbi.sqlite", "-o", tmp_path / "genes.json", "--timeout", timeout]
    line = assert_refused(args, [tmp_path], contains="--timeout must be a number above 0.0")
    assert "Where: option --timeout." in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("symbols", [[""], ["CD3E", "  "]])
def test_genes_fetch_refuses_an_empty_symbol(symbols, tmp_path):
    args = ["genes", "fetch", *symbols, "--source", "offline", "-o", tmp_path / "genes.json"]
    n = len(symbols)
    line = assert_refused(args, [tmp_path], contains=f"gene symbol {n} of {n} on the command line is empty")
    assert "What to do: pass gene symbols such as CD3E MS4A1" in line
    assert list(tmp_path.iterdir()) == []


def test_genes_embed_refuses_a_vectors_file_of_another_kind_before_any_work(tmp_path):
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps({"CD3E": "T cell receptor subunit"}), encoding="utf-8")
    args = ["genes", "embed", texts, "-o", tmp_path / "vectors.txt", "--encoder", tmp_path / "no-such-encoder"]
    line = assert_refused(args, [tmp_path], contains="gene vectors are saved as .parquet or .safetensors, not '.txt'")
    assert "What to do: name the file *.parquet or *.safetensors." in line


def test_a_share_out_of_range_says_what_to_pass():
    from mmgene.errors import ParameterError
    from mmgene.pairs.config import PairsConfig

    with pytest.raises(ParameterError, match=r"marker_share must be in \[0, 1\], got 2") as err:
        PairsConfig(marker_share=2)
    assert err.value.fix == "pass a share from 0 to 1, e.g. 0.5"
