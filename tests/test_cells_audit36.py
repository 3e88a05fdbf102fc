"""Audit of cell sentences, rank-value encoding and GenePT: a damaged dictionary whose length field
overflows, a chunk size that is not a number, and an ``uns['mmgene']`` that is not mmgene's records.
Each must be a clear MMGeneError, with the user's AnnData left as it was."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from test_cells_rank_encoding import tiny, v1  # noqa: F401  (fixture)
from test_embed_genept import small, vectors

from mmgene.cells import cell_inputs, load_dictionaries, rank_encode, sentences
from mmgene.cells.dictionaries import safe_load_pickle
from mmgene.embed.genept import genept_s, genept_w
from mmgene.errors import DataError, InputFileError, ParameterError

# protocol-4 pickles whose length field claims more bytes than any system can hold
OVERFLOWING = {
    "frame": b"\x80\x04\x95" + b"\xff" * 8 + b"}.",
    "binbytes8": b"\x80\x04\x8e" + b"\xff" * 8 + b".",
}


@pytest.mark.parametrize("damage", sorted(OVERFLOWING))
def test_a_dictionary_with_an_overflowing_length_is_an_input_file_error(damage, geneformer_v1_dir, tmp_path):
    path = tmp_path / "token_dictionary.pkl"
    path.write_bytes(OVERFLOWING[damage])
    with pytest.raises(InputFileError, match="not a valid dictionary pickle"):
        safe_load_pickle(path)
    folder = tmp_path / "dicts"
    shutil.copytree(geneformer_v1_dir, folder)
    (folder / "token_dictionary.pkl").write_bytes(OVERFLOWING[damage])
    with pytest.raises(InputFileError, match="token_dictionary.pkl"):
        load_dictionaries(folder)


@pytest.mark.parametrize("chunk_size", ["64", None])
def test_a_chunk_size_that_is_not_a_number_is_a_parameter_error(chunk_size):
    a = tiny()
    with pytest.raises(ParameterError, match="chunk_size"):
        sentences(a, chunk_size=chunk_size)
    with pytest.raises(ParameterError, match="chunk_size"):
        cell_inputs(a, chunk_size=chunk_size)
    assert "cell_sentence" not in a.obs and "mmgene" not in a.uns
    assert sentences(a, chunk_size=1, inplace=False) == sentences(a, inplace=False)  # a good one still works


class _FakeEncoder:
    """A text encoder without a model: each text's length and word count."""

    name = cache_key = "fake"
    dim = 2

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.array([[len(t), len(t.split())] for t in texts], np.float32).reshape(-1, 2)


def _runs(dicts):
    return {
        "sentences": lambda a: sentences(a),
        "rank_encode": lambda a: rank_encode(a, dicts),
        "genept_w": lambda a: genept_w(a, gene_vectors=vectors()),
        "genept_s": lambda a: genept_s(a, encoder=_FakeEncoder()),
    }


SLOTS = {"str": "my note", "list": ["a", "list"], "series": pd.Series([1, 2], index=["x", "y"])}
# rank_encode writes nothing but its provenance, so a Series there was already refused cleanly
CASES = [(step, slot) for step in ("sentences", "rank_encode", "genept_w", "genept_s") for slot in SLOTS if (step, slot) != ("rank_encode", "series")]


@pytest.mark.parametrize(("step", "slot"), CASES)
def test_uns_mmgene_that_is_not_a_mapping_is_refused_before_anything_is_written(step, slot, v1):  # noqa: F811
    """Something else's value in uns['mmgene'] is a DataError naming it, never an AttributeError or a
    result half-written into obs before the provenance fails."""
    a = tiny() if step == "rank_encode" else small()
    slot = SLOTS[slot]
    a.uns["mmgene"] = slot
    obs, obsm = a.obs.copy(), dict(a.obsm)
    with pytest.raises(DataError, match=r"uns\['mmgene'\] holds a (str|list|Series)"):
        _runs(v1)[step](a)
    assert a.obs.equals(obs) and set(a.obsm) == set(obsm)
    assert a.uns["mmgene"] is slot
    a.uns.pop("mmgene")
    _runs(v1)[step](a)  # the same call works once the slot is free
    assert list(a.uns["mmgene"]) == ["rank_encoding" if step == "rank_encode" else {"sentences": "cell_sentence"}.get(step, f"X_{step}")]
