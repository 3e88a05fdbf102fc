"""``mmgene.cells.cell_inputs``: argument and obsm checks."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.cells import cell_inputs
from mmgene.errors import ParameterError


def small() -> ad.AnnData:
    X = sp.csr_matrix(np.array([[1, 0, 3], [0, 2, 0]], dtype=np.float32))
    return ad.AnnData(X, obs=pd.DataFrame(index=["c1", "c2"]), var=pd.DataFrame(index=["CD3E", "LYZ", "MS4A1"]))


@pytest.mark.parametrize("max_genes", ["2", 1.5, 0, True])
def test_max_genes_must_be_a_positive_integer(max_genes):
    with pytest.raises(ParameterError, match="max_genes must be a positive integer"):
        cell_inputs(small(), max_genes=max_genes)


def test_non_numeric_obsm_is_a_parameter_error():
    adata = small()
    adata.obsm["X_e"] = np.array([["a", "b"], ["c", "d"]], dtype=object)
    with pytest.raises(ParameterError, match=r"obsm\['X_e'\] holds object values of shape \(2, 2\), not a numeric matrix"):
        cell_inputs(adata, inputs=["X_e"])


def test_one_input_named_as_a_string():
    adata = small()
    adata.obsm["X_e"] = np.ones((2, 3), dtype=np.float64)
    assert cell_inputs(adata, inputs="X_e") == cell_inputs(adata, inputs=["X_e"]) == [{"X_e": [1.0, 1.0, 1.0]}] * 2
    assert cell_inputs(adata, inputs="genes", max_genes=1) == cell_inputs(adata, inputs=["genes"], max_genes=1)


def test_an_input_named_twice_is_refused():
    adata = ad.AnnData(X=np.ones((3, 2), dtype=np.float32))
    adata.obsm["X_e"] = np.ones((3, 4), dtype=np.float32)
    with pytest.raises(ParameterError, match=r"omics inputs named twice: \['genes'\]"):
        cell_inputs(adata, inputs=["genes", "X_e", "genes"])


def test_genes_without_a_symbol_are_never_a_cells_input_but_count_towards_its_total():
    counts = sp.csr_matrix(np.array([[9, 5, 3, 1], [1, 8, 0, 2]], dtype=np.float32))
    var = pd.DataFrame({"gene_symbol": ["CD3E", None, "LYZ", ""]}, index=["g1", "g2", "g3", "g4"])
    adata = ad.AnnData(counts, var=var, obs=pd.DataFrame(index=["c1", "c2"]))
    got = cell_inputs(adata, "genes", max_genes=3)
    assert [c["genes"] for c in got] == [["CD3E", "LYZ"], ["CD3E"]]
    # the unnamed genes' counts stay in the total (18): values as if they were there, 4 decimals, float32
    assert got[0]["values"] == [float(np.float32(round(np.log1p(c / 18 * 1e4), 4))) for c in (9, 3)]
    named = ad.AnnData(counts, var=pd.DataFrame({"gene_symbol": ["CD3E", "CD14", "LYZ", "NKG7"]}, index=var.index))
    assert [c["genes"] for c in cell_inputs(named, "genes", max_genes=3)] == [["CD3E", "CD14", "LYZ"], ["CD14", "NKG7", "CD3E"]]
