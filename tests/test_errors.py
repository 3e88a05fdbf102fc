"""Every kind of bad input gets a clear MMGeneError: what, where, what to do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mmgene.io
from mmgene import errors

GENES = ["CD3E", "MS4A1", "NKG7", "LYZ", "GNLY"]


def make(X, genes=GENES, **kw):
    import anndata as ad

    obs = pd.DataFrame(index=[f"cell{i}" for i in range(np.shape(X)[0])])
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes[: np.shape(X)[1]]), **kw)


def counts(n=4):
    return sp.csr_matrix(np.arange(n * 5, dtype=np.float32).reshape(n, 5) % 4)


def test_message_has_what_where_fix():
    err = errors.MMGeneError("thing is broken", "file x.h5ad", "repair it")
    assert str(err) == "thing is broken. Where: file x.h5ad. What to do: repair it."
    assert (err.what, err.where, err.fix) == ("thing is broken", "file x.h5ad", "repair it")


def test_hierarchy():
    for cls in (
        errors.InputFileError, errors.EmptyMatrixError, errors.NonFiniteError, errors.NegativeValuesError,
        errors.NotCountsError, errors.DuplicateGenesError, errors.NoGeneIdsError, errors.MissingColumnError,
    ):
        assert issubclass(cls, errors.MMGeneError)


def test_missing_file(tmp_path):
    with pytest.raises(errors.InputFileError, match=r"file not found: .*nope\.h5ad.*What to do"):
        mmgene.io.read(tmp_path / "nope.h5ad")


def test_not_an_anndata(tmp_path):
    bad = tmp_path / "table.h5ad"
    bad.write_text("cell,CD3E\nc1,3\n")
    with pytest.raises(errors.InputFileError, match=r"not an AnnData file.*table\.h5ad"):
        mmgene.io.read(bad)


def test_not_an_anndata_object():
    with pytest.raises(errors.InputFileError, match="expected an AnnData or a path, got list"):
        mmgene.io.read([1, 2, 3])


@pytest.mark.parametrize("shape", [(0, 5), (3, 0)])
def test_empty_matrix(shape):
    with pytest.raises(errors.EmptyMatrixError, match=rf"empty \({shape[0]} cells x {shape[1]} genes\)"):
        mmgene.io.read(make(sp.csr_matrix(shape, dtype=np.float32)))


def test_all_zero_matrix():
    with pytest.raises(errors.EmptyMatrixError, match="every value in the first 3 cells is zero"):
        mmgene.io.read(make(sp.csr_matrix((3, 5), dtype=np.float32)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_names_cell_and_gene(bad):
    X = counts().toarray()
    X[2, 3] = bad
    with pytest.raises(errors.NonFiniteError, match=r"1 NaN or infinite values in X.*cell 'cell2', gene 'LYZ'"):
        mmgene.io.read(make(sp.csr_matrix(X)))


def test_negative_values_name_cell_and_gene():
    X = counts().toarray()
    X[1, 0] = -2
    with pytest.raises(errors.NegativeValuesError, match=r"1 negative values in X.*cell 'cell1', gene 'CD3E'.*raw counts"):
        mmgene.io.read(make(sp.csr_matrix(X)))


def test_non_integer_where_counts_required():
    X = counts().toarray() / 3.0
    with pytest.raises(errors.NotCountsError, match=r"no matrix holds raw integer counts \(found X: log1p\)"):
        mmgene.io.read(make(sp.csr_matrix(X)), require="counts")


def test_non_integer_inside_stream_is_caught():
    X = counts(1500).toarray()
    X[1200, 2] = 0.5  # beyond the rows sampled to classify the matrix
    view = mmgene.io.expression(make(sp.csr_matrix(X)), require="counts")
    with pytest.raises(errors.NotCountsError, match=r"cell 'cell1200', gene 'NKG7'"):
        for _ in view.chunks(500):
            pass


def test_large_non_integer_values_are_not_counts():
    X = counts().toarray() * 1000.5
    with pytest.raises(errors.NotCountsError, match=r"found X: other"):
        mmgene.io.read(make(sp.csr_matrix(X)))


def test_duplicated_gene_names():
    with pytest.raises(errors.DuplicateGenesError, match=r"1 gene names appear more than once in var_names \('CD3E'\).*var_names_make_unique"):
        mmgene.io.read(make(counts(), genes=["CD3E", "MS4A1", "CD3E", "LYZ", "GNLY"]))


def test_no_recognisable_gene_ids():
    with pytest.raises(errors.NoGeneIdsError, match=r"no recognisable human gene symbols or Ensembl ids.*'g0'"):
        mmgene.io.read(make(counts(), genes=[f"g{i}" for i in range(5)]))


def test_missing_obs_column():
    adata = mmgene.io.read(make(counts()))
    adata.obs["cell_type"] = "T"
    with pytest.raises(errors.MissingColumnError, match=r"column 'celltype' does not exist in obs.*choose one of: 'cell_type'"):
        mmgene.io.obs_column(adata, "celltype")


def test_bad_chunk_size():
    view = mmgene.io.expression(make(counts()))
    with pytest.raises(errors.ParameterError, match="chunk_size must be at least 1"):
        next(view.chunks(0))


def test_input_is_not_modified_on_error():
    X = counts().toarray()
    X[0, 0] = -1
    adata = make(sp.csr_matrix(X))
    with pytest.raises(errors.NegativeValuesError):
        mmgene.io.read(adata)
    assert "mmgene" not in adata.uns and list(adata.var.columns) == []
