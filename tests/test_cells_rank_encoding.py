"""Geneformer rank-value encoding: hand-computed values, ties, collapsing, V2, real PBMC 3k vs Geneformer's procedure."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mmgene.io
from mmgene.cells import GeneformerDictionaries, load_dictionaries, rank_encode
from mmgene.errors import DataError, GeneIdError, NoGeneIdsError, NotCountsError

# B2M, ENSG00000264844 and ENSG00000207632 (same gene median: a guaranteed tie), CD3D, an id outside
# the vocabulary, and CD3D again (its counts are summed with the first CD3D column).
IDS = ["ENSG00000166710", "ENSG00000264844", "ENSG00000207632", "ENSG00000167286", "ENSG00000999999", "ENSG00000167286"]
COUNTS = np.array(
    [
        [100, 2, 2, 3, 7, 1],
        [0, 0, 0, 0, 5, 0],  # only a gene outside the vocabulary
        [1, 0, 0, 1, 0, 0],
    ],
    dtype=np.float32,
)


@pytest.fixture(scope="module")
def v1(geneformer_v1_dir) -> GeneformerDictionaries:
    return load_dictionaries(geneformer_v1_dir)


def tiny(matrix=COUNTS) -> ad.AnnData:
    var = pd.DataFrame({"ensembl_id": IDS}, index=[f"g{i}" for i in range(len(IDS))])
    return ad.AnnData(sp.csr_matrix(matrix), obs=pd.DataFrame(index=["a", "b", "c"][: len(matrix)]), var=var)


def test_hand_computed_tokens(v1):
    tok = v1.token_ids
    assert v1.medians["ENSG00000264844"] == v1.medians["ENSG00000207632"]
    enc = rank_encode(tiny(), v1)
    # cell a: n=115; both tied genes 2/115*1e4/1.448 = 120.07 (lower token id first), B2M 100/115*1e4/81.9 = 106.2,
    # CD3D (3+1)/115*1e4/7.86 = 44.2
    expect_a = [tok["ENSG00000207632"], tok["ENSG00000264844"], tok["ENSG00000166710"], tok["ENSG00000167286"]]
    assert expect_a == [18121, 22219, 11842, 11987]
    assert enc.input_ids[0].tolist() == expect_a
    assert enc.input_ids[1].tolist() == []
    assert enc.input_ids[2].tolist() == [11987, 11842]  # CD3D 1/2*1e4/7.86 = 636 > B2M 61
    assert enc.length.tolist() == [4, 0, 2]
    assert enc.empty_cells.tolist() == [1]
    assert enc.input_ids[0].dtype == np.int32
    assert list(enc.obs_names) == ["a", "b", "c"]
    ds = enc.to_dataset()
    assert ds.column_names == ["input_ids", "length", "cell_id"]
    assert ds[0] == {"input_ids": expect_a, "length": 4, "cell_id": "a"}
    assert ds._fingerprint == enc.to_dataset()._fingerprint != rank_encode(tiny()[:2], v1).to_dataset()._fingerprint


def test_n_counts_column_changes_values_not_just_order(v1):
    a = tiny()
    a.obs["n_counts"] = [115.0, 5.0, 2.0]
    assert rank_encode(a, v1).input_ids[0].tolist() == [18121, 22219, 11842, 11987]
    a.obs["n_counts"] = [0.0, 5.0, 2.0]
    with pytest.raises(DataError, match="n_counts"):
        rank_encode(a, v1)


def test_v2_wraps_in_cls_eos_and_truncates(v1):
    tokens = dict(v1.token_ids) | {"<cls>": 25426, "<eos>": 25427}
    v2 = GeneformerDictionaries(tokens, v1.medians, v1.name_to_id, None, "V2")
    enc = rank_encode(tiny(), v2)
    assert enc.input_ids[0].tolist() == [25426, 18121, 22219, 11842, 11987, 25427]
    assert enc.input_ids[1].tolist() == [25426, 25427] and enc.empty_cells.tolist() == [1]
    # truncation: 5,000 vocabulary genes with distinct counts
    genes = [g for g in v1.token_ids if g.startswith("ENSG")][:5000]
    counts = np.arange(5000, 0, -1, dtype=np.float32)[None, :]
    big = ad.AnnData(sp.csr_matrix(counts), var=pd.DataFrame({"ensembl_id": genes}, index=genes))
    e1 = rank_encode(big, v1)
    assert e1.length.tolist() == [2048]
    norm = counts[0].astype(np.float64) * (1 / counts.sum(dtype=np.float64)) * 1e4 * (1 / np.array([v1.medians[g] for g in genes]))
    expect = [v1.token_ids[genes[j]] for j in np.lexsort(([v1.token_ids[g] for g in genes], -norm))]
    assert e1.input_ids[0].tolist() == expect[:2048]
    e2 = rank_encode(big, v2)
    assert e2.length.tolist() == [4096]
    assert e2.input_ids[0].tolist() == [25426, *expect[:4094], 25427]


def test_bad_input(v1):
    logged = tiny()
    logged.X = logged.X.multiply(0.5).tocsr() + sp.csr_matrix(np.full(COUNTS.shape, 0.25, np.float32))
    with pytest.raises(NotCountsError):
        rank_encode(logged, v1)
    noids = ad.AnnData(sp.csr_matrix(COUNTS), var=pd.DataFrame(index=[f"gene{i}" for i in range(6)]))
    with pytest.raises(NoGeneIdsError):
        rank_encode(noids, v1)
    mouse = ad.AnnData(sp.csr_matrix(COUNTS), var=pd.DataFrame({"ensembl_id": [f"ENSMUSG0000000{i:04d}" for i in range(6)]}, index=list("abcdef")))
    with pytest.raises(GeneIdError, match="vocabulary"):
        rank_encode(mouse, v1)
    empty = tiny(np.array([[0, 0, 0, 0, 3, 0], [0, 0, 0, 0, 1, 0]], np.float32))
    with pytest.raises(DataError, match="none of the 2 cells"):
        rank_encode(empty, v1)


def reference_geneformer(X: sp.csr_matrix, ensembl: pd.Series, dicts: GeneformerDictionaries, n_counts: np.ndarray) -> list[np.ndarray]:
    """Geneformer's tokenize_anndata + rank_genes over chunks of 512 cells, ties by token id."""
    ens = ensembl.str.upper()
    loc = np.where([g in dicts.token_ids and g in dicts.medians for g in ens])[0]
    norm = np.array([dicts.medians[g] for g in ens.iloc[loc]])
    tokens = np.array([dicts.token_ids[g] for g in ens.iloc[loc]])
    out = []
    for s in range(0, X.shape[0], 512):
        nc = n_counts[s : s + 512][:, None]
        Xn = sp.csr_matrix(X[s : s + 512][:, loc] / nc * 10_000 / norm)
        for i in range(Xn.shape[0]):
            row = Xn[i]
            t = tokens[row.indices]
            out.append(t[np.lexsort((t, -row.data))][:2048])
    return out


def test_pbmc3k_matches_geneformer_procedure(pbmc3k, pbmc3k_path, v1):
    n_counts = np.asarray(pbmc3k.X.sum(axis=1)).ravel()  # float32, as users usually store it
    pbmc3k.obs["n_counts"] = n_counts
    enc = rank_encode(pbmc3k, v1, chunk_size=1000)
    idx = np.r_[0:200, 2400:2638]
    ref = reference_geneformer(pbmc3k.X[idx], pbmc3k.var["ensembl_id"].iloc[:], v1, n_counts[idx])
    assert all(np.array_equal(enc.input_ids[i], r) for i, r in zip(idx, ref))
    assert len(enc.empty_cells) == 0
    del pbmc3k.obs["n_counts"]
    computed = rank_encode(pbmc3k, v1, chunk_size=333)
    ref64 = reference_geneformer(pbmc3k.X[:100], pbmc3k.var["ensembl_id"], v1, n_counts[:100].astype(np.float64))
    assert all(np.array_equal(computed.input_ids[i], r) for i, r in enumerate(ref64))
    assert pbmc3k.uns["mmgene"]["rank_encoding"]["n_counts"].startswith("computed")
    backed = mmgene.io.read(pbmc3k_path, backed=True)
    from_disk = rank_encode(backed, v1, chunk_size=800)
    dense = ad.AnnData(pbmc3k.X[:250].toarray(), var=pbmc3k.var.copy())
    from_dense = rank_encode(dense, v1)
    assert np.array_equal(from_disk.flat, computed.flat) and np.array_equal(from_disk.offsets, computed.offsets)
    assert np.array_equal(from_dense.flat, computed.flat[: computed.offsets[250]])


def test_collapsing_sums_counts(v1):
    a = tiny()
    merged = ad.AnnData(
        sp.csr_matrix(np.c_[COUNTS[:, :3], COUNTS[:, 3] + COUNTS[:, 5], COUNTS[:, 4]]),
        var=pd.DataFrame({"ensembl_id": IDS[:5]}, index=[f"g{i}" for i in range(5)]),
    )
    assert np.array_equal(rank_encode(a, v1).flat, rank_encode(merged, v1).flat)
    assert a.uns["mmgene"]["rank_encoding"]["genes_after_collapsing"] == 4


def test_ensembl_mapping_collapses_and_drops(v1):
    mapping = {"ENSG00000166710": "ENSG00000166710", "ENSG00000264844": "ENSG00000207632", "ENSG00000207632": "ENSG00000207632"}
    mapped = GeneformerDictionaries(v1.token_ids, v1.medians, v1.name_to_id, mapping, "V1")
    enc = rank_encode(tiny(), mapped)
    # the two tied genes now count as one (2 + 2 counts); CD3D is not in the mapping and is dropped
    assert enc.input_ids[0].tolist() == [18121, 11842]
    assert enc.input_ids[2].tolist() == [11842]
    bad_v2 = GeneformerDictionaries(v1.token_ids, v1.medians, v1.name_to_id, None, "V2")
    from mmgene.errors import ParameterError

    with pytest.raises(ParameterError, match="<cls>"):
        rank_encode(tiny(), bad_v2)


def kernel_reference(X: sp.csr_matrix, recip_n: np.ndarray, recip_median: np.ndarray, limit: int) -> list[np.ndarray]:
    """Targets per row by (value descending, target ascending), values as the kernel computes them,
    ordered by the NumPy reference (mmgene.cells.ranking.lexsort_rows)."""
    from mmgene.cells.ranking import lexsort_rows

    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    t = X.indices.astype(np.int64)
    v = (X.data.astype(np.float64) * recip_n[rows]) * 10_000.0 * recip_median[t]
    ordered = t[lexsort_rows(X.indptr, v, t)]
    return [ordered[X.indptr[i] : X.indptr[i + 1]][:limit] for i in range(X.shape[0])]


def test_kernel_exact_on_near_ties():
    """Medians that are equal or one ulp apart and wide count ranges: every key run is re-sorted exactly."""
    from mmgene.cells import _kernels as k

    rng = np.random.default_rng(3)
    n_genes = 3000
    med = rng.choice(np.array([0.5, 1.0, 3.0, 7.0]), n_genes) * rng.choice([1.0, 1.0 + 2**-52, 1.0 - 2**-53, 1.0 + 2**-40], n_genes)
    med[::7] = rng.lognormal(0, 4, len(med[::7]))  # 3 radix passes for some rows
    recip = np.true_divide(1.0, med)
    X = sp.random(300, n_genes, density=0.2, random_state=4, format="csr", data_rvs=lambda s: rng.integers(1, 5000, s) ** rng.integers(1, 3, s) % 9000 + 1).astype(np.float32)
    X.sort_indices()
    recip_n = 1.0 / np.asarray(X.sum(axis=1), np.float64).ravel()
    args = (X.indptr.astype(np.int64), X.indices, X.data, np.arange(n_genes, dtype=np.int32), recip_n, 10_000.0, recip, False, 400)
    ref = kernel_reference(X, recip_n, recip, 400)
    ptr, ids, flags = k.geneformer_rank(*args, -1, -1, np.zeros(0, np.int32), 0)
    assert flags.tolist() == [False, False]
    assert all(np.array_equal(ids[ptr[i] : ptr[i + 1]], r) for i, r in enumerate(ref))
    out = np.full(len(X.data) + 2 * X.shape[0] + 5, -7, np.int32)  # wrapped, written from an offset
    ptr, ids, _ = k.geneformer_rank(*args, 7, 9, out, 5)
    assert all(np.array_equal(ids[ptr[i] : ptr[i + 1]], np.r_[7, r, 9]) for i, r in enumerate(ref))
    assert (out[:5] == -7).all() and np.shares_memory(ids, out)


def test_threads_give_the_same_tokens(pbmc3k, v1):
    from mmgene.errors import ParameterError

    from mmgene.cells._chunks import threads_for
    from mmgene.settings import settings

    one = rank_encode(pbmc3k, v1, chunk_size=700, n_jobs=1)
    for jobs in (2, -1, None):
        other = rank_encode(pbmc3k, v1, chunk_size=700, n_jobs=jobs)
        assert np.array_equal(one.flat, other.flat) and np.array_equal(one.offsets, other.offsets)
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ParameterError, match="n_jobs"):
            rank_encode(pbmc3k, v1, n_jobs=bad)
    old = settings.n_jobs
    try:
        settings.n_jobs = 1
        assert threads_for(None) == 1 and threads_for(1) == 1 and threads_for(-1) >= 1
        settings.n_jobs = 0
        with pytest.raises(ParameterError, match="MMGENE_N_JOBS"):
            threads_for(None)
    finally:
        settings.n_jobs = old


def test_filter_pass_encodes_only_passing_cells_like_geneformer(v1):
    a = tiny()
    a.obs["filter_pass"] = [1, 1, 0]
    enc = rank_encode(a, v1, chunk_size=2)
    assert list(enc.obs_names) == ["a", "b"] and enc.cells.tolist() == [0, 1]
    assert enc.input_ids[0].tolist() == [18121, 22219, 11842, 11987] and enc.length.tolist() == [4, 0]
    assert enc.empty_cells.tolist() == [1]  # an index into the encoding, like input_ids
    assert a.uns["mmgene"]["rank_encoding"]["cells"] == "obs['filter_pass'] == 1"
    a.obs["filter_pass"] = [False, True, True]  # booleans work; the other chunk layout too
    enc = rank_encode(a, v1, chunk_size=1)
    assert enc.cells.tolist() == [1, 2] and enc.input_ids[1].tolist() == [11987, 11842]
    ds = enc.to_dataset(a.obs.iloc[enc.cells][["filter_pass"]])
    assert ds["cell_id"] == ["b", "c"] and ds["filter_pass"] == [True, True]
    everything = rank_encode(a, v1, filter_pass=False)
    assert everything.cells.tolist() == [0, 1, 2] and len(everything) == 3
    # n_counts is taken for the passing cells only, and a bad one is named by its own cell name
    a.obs["n_counts"] = [115.0, 5.0, 0.0]
    with pytest.raises(DataError, match="'c'"):
        rank_encode(a, v1)


def test_filter_pass_bad_values(v1):
    from mmgene.errors import MissingColumnError

    a = tiny()
    with pytest.raises(MissingColumnError, match="filter_pass"):
        rank_encode(a, v1, filter_pass=True)
    assert len(rank_encode(a, v1)) == 3  # no column: all cells, as Geneformer does
    for values, match in (([1, 2, 0], "other than 0 or 1"), ([1.0, np.nan, 1.0], "other than 0 or 1"), (["1", "0", "1"], "not 0/1"), ([0, 0, 0], "no cell")):
        a.obs["filter_pass"] = values
        with pytest.raises(DataError, match=match):
            rank_encode(a, v1)


def test_more_genes_than_one_row_can_rank_is_refused():
    from mmgene.errors import ParameterError

    n = 65_536
    ids = [f"ENSG{i:011d}" for i in range(n)]
    big = GeneformerDictionaries({g: i + 1 for i, g in enumerate(ids)}, {g: 1.0 for g in ids}, {}, None, "V1")
    a = ad.AnnData(sp.csr_matrix(np.ones((1, n), np.float32)), var=pd.DataFrame({"ensembl_id": ids}, index=ids))
    with pytest.raises(ParameterError, match="65,535"):
        rank_encode(a, big)


def test_token_rows_behave_like_a_list_of_arrays(v1):
    enc = rank_encode(tiny(), v1)
    rows = enc.input_ids
    as_list = [r.tolist() for r in rows]
    assert len(rows) == 3 and as_list == [[18121, 22219, 11842, 11987], [], [11987, 11842]]
    assert rows[-1].tolist() == [11987, 11842] and [r.tolist() for r in rows[1:]] == as_list[1:]
    assert np.shares_memory(rows[0], enc.flat) and rows[np.int64(2)].tolist() == as_list[2]
    with pytest.raises(IndexError):
        rows[3]
    with pytest.raises(TypeError):
        rows[1.5]
    assert repr(rows) == "TokenRows(3 cells, 6 tokens)"


def test_repeated_entries_and_bad_values_found_while_ranking(v1):
    from mmgene.errors import NegativeValuesError, NonFiniteError, NotCountsError

    # cell a's B2M count split over two entries, listed out of column order: summed as SciPy does
    data = np.array([1, 60, 2, 2, 3, 7, 40, 5, 1, 1], np.float32)
    indices = np.array([5, 0, 1, 2, 3, 4, 0, 4, 0, 3], np.int32)
    messy = sp.csr_matrix((data, indices, np.array([0, 7, 8, 10])), shape=(3, 6))
    assert not messy.has_canonical_format
    a = tiny()
    a.X = messy
    assert rank_encode(a, v1).input_ids[0].tolist() == [18121, 22219, 11842, 11987]
    from mmgene.io.expression import SAMPLE_ROWS

    many = np.tile(COUNTS, (SAMPLE_ROWS // 3 + 2, 1))  # the bad value lies beyond read()'s first-rows sample
    names = [f"cell{i}" for i in range(len(many))]
    for value, error in ((-1.0, NegativeValuesError), (np.nan, NonFiniteError), (2.5, NotCountsError)):
        bad = ad.AnnData(sp.csr_matrix(many), obs=pd.DataFrame(index=names), var=tiny().var)
        bad.X.data[-1] = value
        for jobs in (1, 2):
            with pytest.raises(error, match=f"'{names[-1]}'"):
                rank_encode(bad, v1, n_jobs=jobs, chunk_size=64)


def test_columns_increase_matches_a_row_by_row_check():
    """Random CSR layouts, with empty rows and pointers that start past 0 (a chunk of a bigger matrix)."""
    from mmgene.cells._kernels import columns_increase

    def row_by_row(indptr, indices):
        return all(bool(np.all(np.diff(indices[indptr[i] : indptr[i + 1]]) > 0)) for i in range(len(indptr) - 1))

    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(2000):
        lengths = rng.integers(0, 5, rng.integers(0, 6))
        offset = int(rng.integers(0, 3))
        indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64) + offset
        indices = rng.integers(0, 6, indptr[-1]).astype(np.int32)
        expected = row_by_row(indptr, indices)
        assert columns_increase(indptr, indices) == expected, (indptr, indices)
        outcomes.add(expected)
    assert outcomes == {True, False}
    # a row start below the previous row's end is fine; a repeat inside a row is not
    assert columns_increase(np.array([0, 3, 5]), np.array([4, 7, 9, 1, 2], np.int32))
    assert not columns_increase(np.array([0, 3, 5]), np.array([4, 7, 9, 2, 2], np.int32))
    assert not columns_increase(np.array([0, 3, 3, 5]), np.array([4, 9, 7, 1, 2], np.int32))


def test_version_that_contradicts_the_dictionaries_is_refused(v1):
    from mmgene.errors import ParameterError

    with pytest.raises(ParameterError, match="version='V2' but the dictionaries given are V1"):
        rank_encode(tiny(), v1, version="V2")
    assert rank_encode(tiny(), v1, version="v1").version == "V1"  # agreeing (any case) or left out is fine
    assert rank_encode(tiny(), v1).version == "V1"
