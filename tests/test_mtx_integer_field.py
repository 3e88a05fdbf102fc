"""A Matrix Market file declaring ``integer`` values is read exactly, or refused when a value is not an integer."""

from __future__ import annotations


import numpy as np
import pytest
import scanpy as sc
from hostile import assert_refused, snapshot
from mtx_folders import BARCODES, GENES, mtx_folder

from mmgene.errors import InputFileError, NegativeValuesError
from mmgene.io import read
from mmgene.io.tenx import read_mtx_folder

#: (gene, cell, value) as the file lists them, 1-based; Matrix Market holds genes x cells
ENTRIES = [(2, 1, "3"), (1, 2, "2"), (4, 2, "5"), (1, 3, "1"), (2, 3, "1"), (3, 3, "4")]
COUNTS = np.array([[0, 3, 0, 0], [2, 0, 0, 5], [1, 1, 4, 0]], dtype=np.float32)  # cells x genes


def _folder(tmp_path, entries, *, field="integer", gzipped=False):
    return mtx_folder(tmp_path, entries, field=field, gzipped=gzipped)


def _matrix_file(folder):
    return next(folder.glob("matrix.mtx*"))


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzipped"])
def test_a_declared_integer_file_reads_its_counts_exactly(tmp_path, gzipped):
    folder = _folder(tmp_path, ENTRIES, gzipped=gzipped)
    adata = read(folder)
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X.toarray(), COUNTS)
    assert list(adata.obs_names) == BARCODES and list(adata.var_names) == GENES
    mine, scanpys = read_mtx_folder(folder).X, sc.read_mtx(_matrix_file(folder)).X.T
    assert type(mine) is type(scanpys) and mine.dtype == scanpys.dtype  # scipy's integer parse, as before
    assert (mine != scanpys).nnz == 0


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzipped"])
def test_a_declared_real_file_keeps_its_fractions(tmp_path, gzipped):
    entries = [*ENTRIES[:-1], (3, 3, "2.5")]
    folder = _folder(tmp_path, entries, field="real", gzipped=gzipped)
    expected = COUNTS.copy()
    expected[2, 2] = 2.5
    np.testing.assert_array_equal(read_mtx_folder(folder).X.toarray(), expected)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzipped"])
def test_a_fraction_in_a_declared_integer_file_is_refused(tmp_path, gzipped):
    folder = _folder(tmp_path, [*ENTRIES[:2], (4, 2, "2.5"), *ENTRIES[3:]], gzipped=gzipped)
    matrix_file = _matrix_file(folder)
    before = snapshot([tmp_path])
    with pytest.raises(InputFileError) as err:
        read(folder)
    assert snapshot([tmp_path]) == before
    assert err.value.where == str(matrix_file)
    assert err.value.what == (
        f"{matrix_file.name} declares integer values ('%%MatrixMarket matrix coordinate integer general') "
        "but holds 2.5 at row 4, column 2 (1-based, as the file counts), which is not an integer; "
        "reading it as counts would change it"
    )
    assert "change 'integer' to 'real'" in err.value.fix and "export them again" in err.value.fix


def test_a_value_beyond_int64_is_refused_as_too_large(tmp_path):
    folder = _folder(tmp_path, [*ENTRIES[:-1], (3, 3, "99999999999999999999")])
    with pytest.raises(InputFileError) as err:
        read(folder)
    assert err.value.where == str(folder / "matrix.mtx")
    assert err.value.what == (
        "matrix.mtx holds 1e+20 at row 3, column 3 (1-based, as the file counts), too large for an integer "
        "count (at most 9223372036854775807, a 64-bit integer)"
    )


def test_a_negative_count_is_still_refused_by_the_counts_check(tmp_path):
    folder = _folder(tmp_path, [*ENTRIES[:-1], (3, 3, "-4")])
    with pytest.raises(NegativeValuesError, match="1 negative values in X"):
        read(folder)


def test_the_cli_refuses_a_fraction_in_a_declared_integer_file_with_status_2(tmp_path):
    folder = _folder(tmp_path, [*ENTRIES[:-1], (3, 3, "2.5")], gzipped=True)
    message = assert_refused(["info", folder], [tmp_path], contains="holds 2.5 at row 3, column 3")
    assert str(folder / "matrix.mtx.gz") in message and "change 'integer' to 'real'" in message
