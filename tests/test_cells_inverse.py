"""Inverse of cell sentences: exact line on hand-made data, reconstruction, and real PBMC 3k correlation."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.cells import fit_rank_expression, reconstruct, sentences
from mmgene.cells.inverse import RankExpressionFit, reconstruction_pearson
from mmgene.cells.vocabulary import gene_words
from mmgene.errors import ParameterError


def test_exact_line_on_log_data():
    y = 3.0 - 1.5 * np.log10(1 + np.arange(5))
    X = np.array([y, y[[4, 2, 0, 1, 3]]])  # second cell: same values, other genes
    a = ad.AnnData(X, var=pd.DataFrame(index=["CD3E", "CD4", "CD8A", "MS4A1", "NKG7"]))
    fit = fit_rank_expression(a)
    assert fit.slope == pytest.approx(-1.5) and fit.intercept == pytest.approx(3.0)
    assert fit.pearson == pytest.approx(-1.0) and fit.n == 10 and not fit.normalized
    assert a.uns["mmgene"]["rank_expression_fit"]["slope"] == pytest.approx(-1.5)
    rec = reconstruct(sentences(a, inplace=False), fit, a.var_names)
    assert np.allclose(rec.toarray(), X, atol=1e-6)
    assert reconstruction_pearson(a, fit)["pearson"] == pytest.approx(1.0)


def test_reconstruct_unknown_repeated_and_empty():
    fit = RankExpressionFit(slope=-2.0, intercept=3.0, pearson=-0.9, n=10, target_sum=1e4, normalized=True)
    rec = reconstruct(["b a zzz a", "", "C"], fit, ["A", "B", "c", "A"])
    dense = rec.toarray()
    assert dense.shape == (3, 4)
    assert dense[0].tolist() == pytest.approx([3 - 2 * np.log10(2), 3.0, 0.0, 0.0])
    assert dense[1].tolist() == [0, 0, 0, 0]
    assert dense[2].tolist() == pytest.approx([0, 0, 3.0, 0])
    assert fit.predict(10**6).item() == 0.0  # clipped at zero


def test_pbmc3k_reconstruction_correlation(pbmc3k):
    fit = fit_rank_expression(pbmc3k)
    sents = sentences(pbmc3k, inplace=False)
    rec = reconstruct(sents, fit, gene_words(pbmc3k.var))
    X = pbmc3k.X
    totals = np.asarray(X.sum(axis=1)).ravel()
    truth = sp.csr_matrix(sp.diags(1e4 / totals) @ X)
    truth.data = np.log1p(truth.data)
    coo = truth.tocoo()
    got = np.asarray(rec[coo.row, coo.col]).ravel()
    r = float(np.corrcoef(got, coo.data)[0, 1])
    print(f"\nPBMC 3k: log-expression = {fit.intercept:.3f} + {fit.slope:.3f} * log10(1 + rank); "
          f"Pearson(reconstructed, true) over {coo.nnz:,} expressed entries = {r:.3f}")
    assert fit.slope < 0 and r >= 0.85
    streamed = reconstruction_pearson(pbmc3k, fit)
    assert streamed["pearson"] == pytest.approx(r, abs=0.01)


@pytest.mark.parametrize("target_sum", [0, -1.0, float("inf"), float("nan"), "1e4", True])
def test_target_sum_must_be_a_finite_positive_number(target_sum):
    adata = ad.AnnData(X=np.array([[1.0, 2.0, 0.0], [0.0, 3.0, 1.0]], dtype=np.float32))
    with pytest.raises(ParameterError, match="target_sum must be a (finite )?number above 0.0"):
        fit_rank_expression(adata, target_sum=target_sum)
