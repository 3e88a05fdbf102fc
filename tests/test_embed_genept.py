"""GenePT-w against a hand computation, empty cells, GenePT-s, and bit-reproducibility on PBMC 3k."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.embed.genept import SENTENCE_PREFIX, genept_s, genept_w
from mmgene.errors import DataError, GeneIdError, ParameterError
from mmgene.genes import GeneVectors

GENES = ["CD3E", "LYZ", "MS4A1", "NKG7"]


def small(counts=None) -> ad.AnnData:
    X = np.array([[1, 0, 3, 5], [0, 2, 0, 0], [0, 0, 0, 4]], dtype=np.float32) if counts is None else counts
    return ad.AnnData(sp.csr_matrix(X), obs=pd.DataFrame(index=["c1", "c2", "c3"]), var=pd.DataFrame(index=GENES))


def vectors() -> GeneVectors:
    # NKG7 has no vector; the others are unit vectors in 2-d.
    return GeneVectors(np.array(["CD3E", "LYZ", "MS4A1"], dtype=object), np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), {"encoder": "hand", "text_source": "hand"})


def test_genept_w_matches_hand_computation():
    adata = small()
    genept_w(adata, gene_vectors=vectors())
    emb = adata.obsm["X_genept_w"]
    # c1: counts CD3E 1, MS4A1 3, NKG7 5 (total 9, NKG7 counts in the total but has no vector)
    w_cd3e, w_ms4a1 = np.log1p(1 / 9 * 1e4), np.log1p(3 / 9 * 1e4)
    c1 = np.array([w_cd3e * 1.0, w_ms4a1 * 1.0]) / (w_cd3e + w_ms4a1)
    c1 /= np.hypot(*c1)
    np.testing.assert_allclose(emb[0], c1, rtol=1e-6)
    assert emb[0, 0] == pytest.approx(0.65406, abs=1e-5)  # 7.01401 / hypot(7.01401, 8.11203); log1p(1111.1), log1p(3333.3)
    np.testing.assert_allclose(emb[1], [0.6, 0.8], rtol=1e-6)  # c2: LYZ only
    assert np.isnan(emb[2]).all()  # c3: only NKG7, which has no vector -> flagged, not zero
    assert emb.dtype == np.float32
    assert list(adata.obs["genept_w_n_genes"]) == [2, 1, 0]
    rec = adata.uns["mmgene"]["X_genept_w"]
    assert rec["genes_matched"] == 3 and rec["genes_total"] == 4 and rec["n_empty_cells"] == 1 and rec["empty_cells"] == ["c3"]
    assert rec["encoder"] == "hand" and rec["text_source"] == "hand" and rec["normalization"] == "normalize_total(1e4) + log1p"


def test_genept_w_log1p_input_used_as_is():
    logged = np.log1p(np.array([[1, 0, 3, 0], [0, 2, 0, 0], [0.5, 0, 0, 0]], dtype=np.float32) * 1.5).astype(np.float32)
    adata = small(logged)
    genept_w(adata, gene_vectors=vectors())
    assert adata.uns["mmgene"]["X_genept_w"]["normalization"] == "none (log1p input used as is)"
    a, b = logged[0, 0], logged[0, 2]
    np.testing.assert_allclose(adata.obsm["X_genept_w"][0], np.array([a, b]) / np.hypot(a, b), rtol=1e-6)
    np.testing.assert_allclose(adata.obsm["X_genept_w"][2], [1.0, 0.0])


def test_on_empty_options_and_copy():
    out = genept_w(small(), gene_vectors=vectors(), on_empty="zero", copy=True)
    assert (out.obsm["X_genept_w"][2] == 0).all()
    original = small()
    genept_w(original, gene_vectors=vectors(), copy=True)
    assert "X_genept_w" not in original.obsm
    with pytest.raises(DataError, match="1 cells have no expressed gene with a gene vector.*c3"):
        genept_w(small(), gene_vectors=vectors(), on_empty="raise")
    with pytest.raises(ParameterError, match="on_empty"):
        genept_w(small(), gene_vectors=vectors(), on_empty="skip")  # type: ignore[arg-type]


def test_no_matching_gene_and_bad_vectors(tmp_path):
    other = GeneVectors(np.array(["TP53"], dtype=object), np.ones((1, 2)))
    with pytest.raises(GeneIdError, match="none of the 4 genes has a gene vector"):
        genept_w(small(), gene_vectors=other)
    with pytest.raises(ParameterError, match="gene_vectors must be"):
        genept_w(small(), gene_vectors={"CD3E": [1, 0]})
    path = vectors().save(tmp_path / "v.safetensors")
    adata = small()
    genept_w(adata, gene_vectors=path)
    np.testing.assert_allclose(adata.obsm["X_genept_w"][1], [0.6, 0.8], rtol=1e-6)


def test_chunking_does_not_change_a_bit():
    rng = np.random.default_rng(1)
    X = sp.random(50, 4, density=0.6, random_state=2, format="csr", data_rvs=lambda n: rng.integers(1, 20, n)).astype(np.float32)
    a = ad.AnnData(X, obs=pd.DataFrame(index=[f"c{i}" for i in range(50)]), var=pd.DataFrame(index=GENES))
    b = a.copy()
    genept_w(a, gene_vectors=vectors(), chunk_size=7)
    genept_w(b, gene_vectors=vectors(), chunk_size=2048)
    assert np.array_equal(a.obsm["X_genept_w"], b.obsm["X_genept_w"], equal_nan=True)


def test_genept_s_sentences_and_empty_cells(tmp_path):
    from mmgene.cells import sentences
    from mmgene.text.encoders import text_encoder

    adata = small()
    enc = text_encoder("minilm", cache=tmp_path / "s.sqlite")
    genept_s(adata, encoder=enc, top_k=2)
    sent = sentences(small(), top_k=2, inplace=False)
    assert sent == ["NKG7 MS4A1", "LYZ", "NKG7"]
    expected = enc.encode([SENTENCE_PREFIX + s for s in sent])
    assert np.array_equal(adata.obsm["X_genept_s"], expected)
    assert list(adata.obs["genept_s_n_genes"]) == [2, 1, 1]
    rec = adata.uns["mmgene"]["X_genept_s"]
    assert rec["top_k"] == 2 and rec["prefix"] == SENTENCE_PREFIX and rec["encoder"].startswith("sentence-transformers/all-MiniLM")
    empty = small(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 2, 0]], dtype=np.float32))
    genept_s(empty, encoder=enc, top_k=2)
    assert np.isnan(empty.obsm["X_genept_s"][1]).all() and empty.uns["mmgene"]["X_genept_s"]["empty_cells"] == ["c2"]
    with pytest.raises(ParameterError, match="top_k"):
        genept_s(small(), encoder=enc, top_k=0)


@pytest.fixture(scope="module")
def pbmc_gene_vectors(_pbmc3k_cached):
    """Real MiniLM vectors of the offline text for PBMC 3k's 80 most expressed genes (kept small: CPU)."""
    from mmgene.genes import default_gene_vectors

    totals = np.asarray(_pbmc3k_cached.X.sum(axis=0)).ravel()
    top = _pbmc3k_cached.var["gene_symbol"].to_numpy()[np.argsort(-totals, kind="stable")[:80]]
    return default_gene_vectors("minilm", genes=top)


def test_genept_w_pbmc3k_bit_reproducible(pbmc3k, _pbmc3k_cached, pbmc_gene_vectors, tmp_path):
    genept_w(pbmc3k, gene_vectors=pbmc_gene_vectors)
    second = _pbmc3k_cached.copy()
    genept_w(second, gene_vectors=GeneVectors.load(pbmc_gene_vectors.save(tmp_path / "g.parquet")), chunk_size=500)
    first = pbmc3k.obsm["X_genept_w"]
    assert first.shape == (2638, 384) and np.isfinite(first).all()
    assert first.tobytes() == second.obsm["X_genept_w"].tobytes()
    assert pbmc3k.uns["mmgene"]["X_genept_w"]["genes_matched"] >= 75
    # it carries biology: same-type cells are closer than cells of different types
    labels = pbmc3k.obs["cell_type"].astype(str).to_numpy()
    from mmgene.evaluate.clustering import knn_classify

    assert knn_classify(first, labels)["accuracy"] > 0.6


def test_genept_s_pbmc3k_bit_reproducible(_pbmc3k_cached):
    """GenePT-s twice without the embedding cache (so the model really runs twice): identical bits."""
    from mmgene.text.encoders import SentenceTransformerEncoder

    cells = _pbmc3k_cached[:24].copy()  # 24 cells: MiniLM on a 2-core CPU is slow
    runs = []
    for _ in range(2):
        adata = cells.copy()
        genept_s(adata, encoder=SentenceTransformerEncoder("minilm", cache=False), top_k=25)
        runs.append(adata.obsm["X_genept_s"])
    assert runs[0].shape == (24, 384) and runs[0].tobytes() == runs[1].tobytes()


@pytest.mark.parametrize(("call", "kwargs", "match"), [
    (genept_w, {"chunk_size": 0}, "chunk_size must be a positive integer, got 0"),  # was ZeroDivisionError
    (genept_w, {"chunk_size": "5"}, "chunk_size must be a positive integer, got '5'"),
    (genept_s, {"top_k": "5"}, "top_k must be a positive integer or None, got '5'"),  # was a raw TypeError
    (genept_s, {"prefix": 5}, "prefix must be text, got int"),
])
def test_bad_arguments_are_parameter_errors(call, kwargs, match):
    extra = {"gene_vectors": vectors()} if call is genept_w else {}
    with pytest.raises(ParameterError, match=match):
        call(small(), **extra, **kwargs)
