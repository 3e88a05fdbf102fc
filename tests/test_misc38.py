"""A Matrix Market value with trailing junk (or NaN/inf) is refused; constant genes do not change the PCs
of refinement; ``genes embed`` reads 'offline' as the keyword, not as a path."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from hostile import snapshot
from mtx_folders import mtx_folder
from typer.testing import CliRunner

from mmgene.cli.app import app
from mmgene.errors import DataError, InputFileError, OutputError
from mmgene.io import read
from mmgene.io import tenx
from mmgene.io.tenx import read_mtx_folder
from mmgene.query.refine import expression_pcs

#: (gene, cell, value) as the file lists them, 1-based; Matrix Market holds genes x cells
ENTRIES = [(2, 1, "3"), (1, 2, "2.5"), (4, 2, "1e-05"), (1, 3, ".5"), (2, 3, "3."), (3, 3, "4E+1")]
VALUES = np.array([[0, 3, 0, 0], [2.5, 0, 0, 1e-05], [0.5, 3, 40, 0]], dtype=np.float32)  # cells x genes


def _folder(root, entries, *, field="real", gzipped=False):
    """The folder of :func:`mtx_folder` with two comment lines (the first entry is on line 5)."""
    return mtx_folder(root, entries, field=field, gzipped=gzipped, comments=("%", "% by hand"))


def _refusal(tmp_path, folder, reader=read_mtx_folder):
    """The :class:`InputFileError` ``reader`` raises for ``folder``, which it leaves as it was."""
    before = snapshot([tmp_path])
    with pytest.raises(InputFileError) as err:
        reader(folder)
    assert snapshot([tmp_path]) == before
    return err.value


@pytest.mark.parametrize("block", [1 << 20, 7], ids=["one-block", "7-byte-blocks"])
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzipped"])
@pytest.mark.parametrize("junk", ["3abc", "1e", "1e+", "3.4.5", "3-4", "1x"])
def test_a_value_with_trailing_junk_is_refused_at_its_line_and_the_clean_file_reads_exactly(
    tmp_path, monkeypatch, junk, gzipped, block
):
    monkeypatch.setattr(tenx, "_SCAN_BLOCK", block, raising=False)  # small blocks: a value split between two reads
    clean = _folder(tmp_path / "clean", ENTRIES, gzipped=gzipped)
    mine = read_mtx_folder(clean).X
    scanpys = sc.read_mtx(next(clean.glob("matrix.mtx*"))).X.T
    assert type(mine) is type(scanpys) and mine.dtype == scanpys.dtype == np.float32 and (mine != scanpys).nnz == 0
    np.testing.assert_array_equal(mine.toarray(), VALUES)

    folder = _folder(tmp_path, [*ENTRIES[:3], (1, 3, junk), *ENTRIES[4:]], gzipped=gzipped)
    matrix_file = next(folder.glob("matrix.mtx*"))
    error = _refusal(tmp_path, folder)
    assert error.where == str(matrix_file)
    assert error.what == (
        f"line 8 of {matrix_file.name} ('1 3 {junk}') holds {junk!r}, which is not a number; "
        "scipy would read the number it starts with and drop the rest"
    )
    assert error.fix == (
        "check that the file is complete and undamaged (export it again from its source); a value must be a "
        "decimal number such as 3, 2.5 or 1e-05"
    )


@pytest.mark.parametrize("field", ["real", "integer"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_a_nan_or_infinite_value_is_refused_at_its_line(tmp_path, value, field):
    entries = [(2, 1, "3"), (1, 2, value), (4, 2, "5")]
    folder = _folder(tmp_path, entries, field=field)
    error = _refusal(tmp_path, folder)
    assert str(_refusal(tmp_path, folder, read)) == str(error)  # as mmgene.io.read says it
    assert error.where == str(folder / "matrix.mtx")
    assert error.what == (
        f"line 6 of matrix.mtx ('1 2 {value}') holds {value!r}, which is not a finite number; "
        "a count or expression value is finite"
    )
    assert error.fix == "repair the NaN or infinite values at their source and export the matrix again"


@pytest.mark.parametrize(("field", "fraction", "junk"), [("real", 0.25, "1.25e"), ("integer", 0, "12abc")])
def test_junk_in_a_file_of_many_blocks_is_found_at_its_line(tmp_path, monkeypatch, field, fraction, junk):
    monkeypatch.setattr(tenx, "_SCAN_BLOCK", 1000, raising=False)
    entries = [(1 + i % 4, 1 + i % 3, f"{i % 7 + fraction:g}") for i in range(3000)]
    clean = _folder(tmp_path / "clean", entries, field=field)
    assert read_mtx_folder(clean).X.sum() == pytest.approx(sum(i % 7 + fraction for i in range(3000)))
    entries[2500] = (2, 2, junk)
    error = _refusal(tmp_path, _folder(tmp_path, entries, field=field))
    assert error.what.startswith(f"line 2505 of matrix.mtx ('2 2 {junk}') holds {junk!r}, which is not a number")


def _counts_with_constant_genes():
    """40 cells x 30 Poisson genes (two groups), and the same with 4 genes never expressed placed among them."""
    rng = np.random.default_rng(0)
    rate = np.full((40, 30), 2.0)
    rate[:20, :10] = rate[20:, 10:20] = 20.0
    counts = rng.poisson(rate).astype(np.float32)
    zeros = np.zeros((40, 2), dtype=np.float32)
    return counts, np.hstack([zeros, counts[:, :15], zeros, counts[:, 15:]])


def _adata(matrix):
    genes = pd.DataFrame(index=[f"G{j}" for j in range(matrix.shape[1])])
    return ad.AnnData(sp.csr_matrix(matrix), obs=pd.DataFrame(index=[f"c{i}" for i in range(len(matrix))]), var=genes)


def test_genes_never_expressed_leave_the_components_of_counts_unchanged():
    counts, with_zeros = _counts_with_constant_genes()
    pcs = expression_pcs(_adata(with_zeros), n_comps=5)
    assert pcs.shape == (40, 5) and np.isfinite(pcs).all()
    np.testing.assert_array_equal(pcs, expression_pcs(_adata(counts), n_comps=5))


def test_constant_genes_leave_the_components_of_log_normalised_data_unchanged():
    counts, _ = _counts_with_constant_genes()
    logged = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    constant = np.hstack([np.full((40, 3), 1.5, dtype=np.float32), logged, np.zeros((40, 2), dtype=np.float32)])
    pcs = expression_pcs(_adata(constant), n_comps=5)
    assert np.isfinite(pcs).all()
    np.testing.assert_array_equal(pcs, expression_pcs(_adata(logged), n_comps=5))


def _one_value_but(column_values):
    """10 cells x 6 genes of 0.75 (log-normalised), gene 0 holding ``column_values``."""
    matrix = np.full((10, 6), 0.75, dtype=np.float32)
    matrix[:, 0] = column_values
    return matrix


@pytest.mark.parametrize(
    ("matrix", "n_varying"),
    [
        (np.full((10, 6), 2.0, dtype=np.float32), 0),
        (_one_value_but(0.75), 0),
        (_one_value_but([0.75] * 5 + [1.25] * 5), 1),
    ],
    ids=["constant-counts", "constant-log", "one-varying-gene"],
)
def test_fewer_than_two_varying_genes_are_refused(matrix, n_varying):
    with pytest.raises(DataError) as err:
        expression_pcs(_adata(matrix), n_comps=3)
    assert str(err.value) == (
        f"refinement needs at least 2 genes whose expression varies across the cells; {n_varying} of the 6 genes vary "
        "(the others hold one value in every cell). Where: expression_pcs. "
        "What to do: refine a query whose cells differ in expression, or leave refinement off."
    )


def test_genes_embed_reads_offline_as_the_shipped_table_not_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "genes.txt").write_text("CD3E\nLYZ\n")
    runner = CliRunner()
    res = runner.invoke(app, ["genes", "embed", "-o", "offline/v.parquet", "--genes-from", "genes.txt", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert (got["out"], got["genes"], got["dim"]) == ("offline/v.parquet", 2, 384)
    assert got["text_source"].startswith("ncbi-gene-table") and (tmp_path / "offline" / "v.parquet").is_file()

    # a text file is still an input the output may not replace, whatever its name
    texts = tmp_path / "t.parquet"
    texts.write_text("CD3E\tT-cell receptor CD3 epsilon\n")
    before = snapshot([tmp_path])
    res = runner.invoke(app, ["genes", "embed", "t.parquet", "-o", "t.parquet", "--overwrite"])
    assert res.exit_code == 1 and isinstance(res.exception, OutputError)
    assert res.exception.what == f"the output is the input {str(texts.resolve())!r}"
    assert snapshot([tmp_path]) == before
