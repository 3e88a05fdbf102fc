"""Audit of the cell representations against REFERENCE.md: zero-count cells stored with explicit
zeros, and refusals that must leave the user's AnnData as it was."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.cells import load_dictionaries, rank_encode

# B2M, CD3D, an id outside the vocabulary (no two columns share an id: the kernel computes totals)
IDS = ["ENSG00000166710", "ENSG00000167286", "ENSG00000999999"]


@pytest.fixture(scope="module")
def v1(geneformer_v1_dir):
    return load_dictionaries(geneformer_v1_dir)


def _stored_zeros() -> ad.AnnData:
    """Cell 'b' has no counts, but its row stores explicit zeros (as some writers leave them)."""
    data = np.array([100, 3, 7, 0, 0, 1, 1], np.float32)
    indices = np.array([0, 1, 2, 0, 1, 0, 1], np.int32)
    X = sp.csr_matrix((data, indices, np.array([0, 3, 5, 7])), shape=(3, 3))
    var = pd.DataFrame({"ensembl_id": IDS}, index=["g0", "g1", "g2"])
    return ad.AnnData(X, obs=pd.DataFrame(index=["a", "b", "c"]), var=var)


def _expected(a: ad.AnnData, v1) -> list[list[int]]:
    tidy = a.copy()
    tidy.X.eliminate_zeros()
    return [t.tolist() for t in rank_encode(tidy, v1).input_ids]


def test_a_cell_of_stored_zeros_is_an_empty_cell_not_a_crash(v1):
    """Geneformer ranks the non-zero genes: such a cell has none (its total, computed here, is 0)."""
    a = _stored_zeros()
    expected = _expected(a, v1)
    assert expected[1] == []
    enc = rank_encode(a, v1)
    assert [t.tolist() for t in enc.input_ids] == expected
    assert enc.empty_cells.tolist() == [1]


def test_n_counts_of_zero_is_accepted_for_a_cell_of_stored_zeros(v1):
    """obs['n_counts'] = 0 is right for a cell without counts, stored zeros or not."""
    a = _stored_zeros()
    a.obs["n_counts"] = [110.0, 0.0, 2.0]
    assert [t.tolist() for t in rank_encode(a, v1).input_ids] == _expected(a, v1)


def _tiny_model(folder, max_positions: int):
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=25_426, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=max_positions, hidden_act="relu", pad_token_id=0,
    )
    transformers.BertForMaskedLM(config).eval().save_pretrained(folder)
    return folder


def test_geneformer_refusal_leaves_the_anndata_unchanged(pbmc3k, v1, tmp_path):
    """Cells longer than the model's input are refused before anything is written into adata."""
    pytest.importorskip("transformers")
    from mmgene.embed import geneformer
    from mmgene.errors import ModelError

    cells = pbmc3k[:8].copy()
    cells.uns.pop("mmgene", None)
    model = _tiny_model(tmp_path / "short", max_positions=64)
    with pytest.raises(ModelError, match="at most 64"):
        geneformer(cells, model, dictionaries=v1, device="cpu")
    assert "mmgene" not in cells.uns and "X_geneformer" not in cells.obsm


def test_geneformer_on_another_rank_leaves_the_anndata_unchanged(pbmc3k, v1, tmp_path, monkeypatch):
    """Documented: under a launcher the ranks other than 0 return None and leave adata as it was."""
    pytest.importorskip("transformers")
    import mmgene.distributed
    from mmgene.embed import geneformer

    cells = pbmc3k[:8].copy()
    cells.uns.pop("mmgene", None)
    model = _tiny_model(tmp_path / "full", max_positions=2048)
    monkeypatch.setattr(mmgene.distributed, "map_rows", lambda n, fn, **kw: None)
    assert geneformer(cells, model, dictionaries=v1, device="cpu") is None
    assert "mmgene" not in cells.uns and "X_geneformer" not in cells.obsm
