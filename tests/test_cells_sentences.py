"""Cell sentences: exact values on a hand-made matrix, storage independence, real PBMC 3k vs a reference."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mmgene.io
from mmgene.cells import sentences
from mmgene.errors import GeneIdError, NegativeValuesError, ParameterError

GENES = ["CD3E", "MT-CO1", "MTOR", "B2M", "ACTB"]
COUNTS = np.array(
    [
        [0, 5, 1, 3, 1],  # tie between MTOR and ACTB (1 count each)
        [2, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],  # no expressed gene
    ],
    dtype=np.float32,
)


def tiny(matrix=COUNTS, genes=GENES) -> ad.AnnData:
    a = ad.AnnData(sp.csr_matrix(matrix), obs=pd.DataFrame(index=[f"c{i}" for i in range(len(matrix))]), var=pd.DataFrame(index=genes))
    return a


def test_exact_sentences_with_tie_and_empty_cell():
    a = tiny()
    sentences(a)
    assert a.obs["cell_sentence"].tolist() == ["MT-CO1 B2M MTOR ACTB", "CD3E", ""]
    prov = a.uns["mmgene"]["cell_sentence"]
    assert prov["ties"] == "position" and prov["empty_cells"] == 1 and prov["matrix"] == "X"


def test_ties_symbol_and_random_are_deterministic():
    assert sentences(tiny(), inplace=False, ties="symbol")[0] == "MT-CO1 B2M ACTB MTOR"
    r1 = sentences(tiny(), inplace=False, ties="random", seed=3)
    assert r1 == sentences(tiny(), inplace=False, ties="random", seed=3)
    assert r1[0].split()[:2] == ["MT-CO1", "B2M"] and sorted(r1[0].split()[2:]) == ["ACTB", "MTOR"]
    seen = {sentences(tiny(), inplace=False, ties="random", seed=s)[0] for s in range(12)}
    assert seen == {"MT-CO1 B2M ACTB MTOR", "MT-CO1 B2M MTOR ACTB"}


def test_top_k_exclusion_by_prefix_and_exact_name_never_substring():
    assert sentences(tiny(), inplace=False, top_k=2) == ["MT-CO1 B2M", "CD3E", ""]
    assert sentences(tiny(), inplace=False, exclude="MT-")[0] == "B2M MTOR ACTB"  # MTOR stays
    assert sentences(tiny(), inplace=False, exclude=["mt-*", "b2m"], ties="symbol")[0] == "ACTB MTOR"
    assert sentences(tiny(), inplace=False, exclude=["MT"])[0] == "MT-CO1 B2M MTOR ACTB"  # exact, no gene 'MT'


def test_log1p_data_dense_and_copy():
    logged = np.log1p(COUNTS / np.maximum(COUNTS.sum(1, keepdims=True), 1) * 1e4).astype(np.float64)
    a = ad.AnnData(logged, var=pd.DataFrame(index=GENES))
    out = sentences(a, copy=True)
    assert out is not a and "cell_sentence" not in a.obs
    assert out.obs["cell_sentence"].tolist() == ["MT-CO1 B2M MTOR ACTB", "CD3E", ""]
    assert sentences(a, inplace=False, ties="symbol") == ["MT-CO1 B2M ACTB MTOR", "CD3E", ""]


def test_duplicate_symbols_give_one_word_at_best_rank():
    a = tiny(np.array([[1, 4, 2]], np.float32), ["X1", "X2", "X3"])
    a.var["gene_symbol"] = ["GAPDH", "CD3E", "gapdh"]
    assert sentences(a, inplace=False) == ["CD3E GAPDH"]


def test_bad_input():
    with pytest.raises(ParameterError):
        sentences(tiny(), top_k=0)
    with pytest.raises(ParameterError):
        sentences(tiny(), exclude=["*"])
    with pytest.raises(ParameterError):
        sentences(tiny(), ties="alphabet")
    neg = tiny(COUNTS - 1)
    with pytest.raises(NegativeValuesError):
        sentences(neg)
    spaced = tiny()
    spaced.var["gene_symbol"] = ["CD3E", "MT CO1", "MTOR", "B2M", "ACTB"]
    with pytest.raises(GeneIdError, match="whitespace"):
        sentences(spaced)


def reference_sentences(X: sp.csr_matrix, symbols: np.ndarray, ties: str = "position") -> list[str]:
    """Cell2Sentence's per-cell procedure (stable argsort of the row's non-zeros), ties as mmgene documents them."""
    out = []
    for i in range(X.shape[0]):
        cols = X.indices[X.indptr[i] : X.indptr[i + 1]]
        vals = X.data[X.indptr[i] : X.indptr[i + 1]]
        cols, vals = cols[vals > 0], vals[vals > 0]
        order = np.argsort(-vals, kind="stable") if ties == "position" else np.lexsort((cols, symbols[cols], -vals))
        words = list(dict.fromkeys(symbols[cols[order]]))
        out.append(" ".join(words))
    return out


def test_pbmc3k_matches_reference_and_storage(pbmc3k, pbmc3k_path):
    got = sentences(pbmc3k, inplace=False, chunk_size=1000)
    symbols = np.array([s.upper() for s in pbmc3k.var["gene_symbol"]], dtype=object).astype(str)
    idx = np.r_[0:150, 2500:2638]
    X = pbmc3k.X[idx]
    assert [got[i] for i in idx] == reference_sentences(X, symbols)
    by_symbol = sentences(pbmc3k, inplace=False, ties="symbol", chunk_size=1000)
    assert [by_symbol[i] for i in idx] == reference_sentences(X, symbols, "symbol")
    assert sentences(mmgene.io.read(pbmc3k_path, backed=True), inplace=False, ties="symbol", chunk_size=333) == by_symbol
    assert sentences(pbmc3k, inplace=False, chunk_size=97, n_jobs=1) == got  # chunking does not matter
    assert sentences(pbmc3k, inplace=False, chunk_size=97, n_jobs=2) == got  # nor threads
    backed = mmgene.io.read(pbmc3k_path, backed=True)
    assert sentences(backed, inplace=False, chunk_size=700, n_jobs=3) == got
    dense = ad.AnnData(pbmc3k.X[:300].toarray(), var=pbmc3k.var.copy())
    assert sentences(dense, inplace=False) == got[:300]
    logged = ad.AnnData(pbmc3k.X[:300].copy(), var=pbmc3k.var.copy())
    totals = np.asarray(logged.X.sum(1)).ravel()
    logged.X = sp.csr_matrix(sp.diags(1e4 / totals) @ logged.X)
    logged.X.data = np.log1p(logged.X.data).astype(np.float64)
    assert sentences(logged, inplace=False) == got[:300]


def test_pbmc3k_exclusion_counts(pbmc3k):
    sentences(pbmc3k, exclude=["MT-", "RPL*", "RPS*"], top_k=50)
    words = " ".join(pbmc3k.obs["cell_sentence"]).split()
    assert not any(w.startswith(("MT-", "RPL", "RPS")) for w in words)
    assert max(len(s.split()) for s in pbmc3k.obs["cell_sentence"]) == 50
    prov = pbmc3k.uns["mmgene"]["cell_sentence"]
    assert prov["genes_excluded"] == int(pd.Series(pbmc3k.var["gene_symbol"]).str.upper().str.startswith(("MT-", "RPL", "RPS")).sum())


def test_long_and_non_ascii_symbols_round_trip():
    names = ["A" * 8, "B" * 9, "C" * 16, "D" * 17, "GÈNE-Ω", "X"]
    counts = np.array([[6, 5, 4, 3, 2, 1], [1, 0, 0, 0, 0, 7], [0, 0, 0, 3, 0, 0]], np.float32)
    out = sentences(tiny(counts, names), inplace=False)
    assert out == [" ".join(n.upper() for n in names), "X AAAAAAAA", "D" * 17]


def test_whole_number_check():
    from mmgene.cells.ranking import whole_numbers

    assert whole_numbers(np.array([0.0, 3.0, 2.0**52], np.float64)) and whole_numbers(np.zeros(0, np.float32))
    for bad in (1.5, np.nan, np.inf, -np.inf, 2.0**53):
        assert not whole_numbers(np.r_[np.zeros(5000), bad])  # found in the second block too
    assert whole_numbers(np.array([1, 2], np.int64))


def _oracle_rows(block: sp.csr_matrix, tie_rank: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, tie ranks, values) of each row's kept non-zero entries in the order of the NumPy reference."""
    from mmgene.cells.ranking import lexsort_rows

    mask = (block.data > 0) & keep[block.indices]
    cum = np.zeros(len(mask) + 1, np.int64)
    np.cumsum(mask, out=cum[1:])
    indptr, values, ranks = cum[block.indptr], block.data[mask], tie_rank[block.indices[mask]]
    perm = lexsort_rows(indptr, values, ranks)
    return indptr, ranks[perm], values[perm]


@pytest.mark.parametrize("kind", ["counts32", "counts64", "float32", "near_ties64"])
@pytest.mark.parametrize("ties", ["position", "symbol", "random"])
def test_every_ordering_kernel_matches_the_numpy_reference(kind, ties):
    """The keyed sort (with its exact re-sort of float64 near-ties) and the counting sort give exactly
    the order of one NumPy lexsort: value descending, ties by the vocabulary's tie rank."""
    from mmgene.cells.ranking import rank_chunk, sentence_ids
    from mmgene.cells.vocabulary import build_vocabulary

    rng = np.random.default_rng(7)
    n_genes = 400
    X = sp.random(120, n_genes, density=0.3, random_state=8, format="csr", data_rvs=lambda s: rng.integers(1, 6, s)).astype(np.float64)
    if kind == "float32":
        X.data = np.log1p(X.data * rng.uniform(0.5, 2.0, X.nnz)).astype(np.float32).astype(np.float64)
    elif kind == "near_ties64":  # many values one float64 ulp apart: equal in float32, different here
        X.data = X.data * (1.0 + rng.choice([0.0, 2**-52, 2**-50, -(2**-52)], X.nnz))
    X = X.astype(np.float32) if kind in ("counts32", "float32") else X
    symbols = np.array([f"G{j % 350}" for j in range(n_genes)])  # some columns share a word
    vocab = build_vocabulary(pd.DataFrame(index=[f"c{j}" for j in range(n_genes)], data={"gene_symbol": symbols}), exclude=["G7"], ties=ties, seed=2)
    indptr, ranks, values = _oracle_rows(X, vocab.tie_rank, vocab.keep)
    got = rank_chunk(X, vocab.tie_rank, vocab.keep)
    assert np.array_equal(got.indptr, indptr) and np.array_equal(got.ranks, ranks)
    assert np.array_equal(got.values.astype(np.float64), values.astype(np.float64))
    ptr, ids = sentence_ids(X, vocab, 25)
    words = vocab.word_of_rank[ranks]
    for i in range(X.shape[0]):
        expect = list(dict.fromkeys(words[indptr[i] : indptr[i + 1]].tolist()))[:25]
        assert ids[ptr[i] : ptr[i + 1]].tolist() == expect


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"ties": "random", "seed": "x"}, "seed must be a non-negative integer, got 'x'"),
    ({"ties": "random", "seed": 1.5}, "seed must be a non-negative integer, got 1.5"),
    ({"ties": "random", "seed": -1}, "seed must be a non-negative integer, got -1"),
    ({"exclude": 5}, "exclude must be a pattern or a list of patterns, got int 5"),
])
def test_bad_seed_or_exclude_is_a_parameter_error(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        sentences(tiny(), inplace=False, **kwargs)
