"""mmgene.corpus audit: a mouse dataset listed as human (files are human by default) and a manifest's
Census caps and seed below their minimum. Tiny AnnData files are written here; expected values are
written out.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.corpus import read_corpus, read_manifest
from mmgene.errors import CorpusError
from tests.hostile import assert_refused

HEADER = "path,dataset,label_col,ontology_col,species,tissue"
MOUSE = ["Cd3e", "Ms4a1", "Actb", "Gm12345", "0610005C13Rik"]
HUMAN = ["CD3E", "MS4A1", "ACTB", "GAPDH", "LYZ"]


def _dataset(path: Path, genes: list[str]) -> Path:
    """Four T cells and four B cells (counts) over ``genes``."""
    X = sp.csr_matrix(np.arange(1, 8 * len(genes) + 1, dtype=np.float32).reshape(8, len(genes)))
    obs = pd.DataFrame({"cell_type": ["T", "B"] * 4}, index=[f"c{i}" for i in range(8)])
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
    return path


def test_mouse_symbols_listed_as_human_are_refused(tmp_path):
    """A mouse file read with the default species (human) was reported as human, every gene "matched to a
    human symbol" (Gm12345 and 0610005C13Rik among them), and its cells were captioned human."""
    mm = _dataset(tmp_path / "mm.h5ad", MOUSE)
    with pytest.raises(CorpusError) as err:
        read_corpus(mm, label_col="cell_type")
    assert str(err.value) == (
        "dataset 'mm' is listed as human, but its gene symbols read as mouse genes (5 of 5 written in mouse style: "
        "Cd3e, ...Rik, Gm...), so every symbol would count as a human one and its cells would be called human. "
        f"Where: {mm}; the gene symbols of {mm}. What to do: set its species to mouse (the manifest's species "
        "column; --species mouse or species='mouse' for files, which are human by default); if it is human data, "
        "write its gene symbols in upper case."
    )
    mouse = read_corpus(mm, label_col="cell_type", species="mouse")["mm"]
    assert mouse.symbols.tolist() == ["CD3E", "MS4A1", "ACTB", "", ""]  # the mouse-only genes stay unmatched
    assert read_corpus(_dataset(tmp_path / "hs.h5ad", HUMAN), label_col="cell_type")["hs"].n_matched == 5


def test_mouse_symbols_listed_as_human_in_a_manifest_are_refused_by_the_cli(tmp_path):
    _dataset(tmp_path / "hs.h5ad", HUMAN)
    _dataset(tmp_path / "mm.h5ad", MOUSE)
    manifest = tmp_path / "corpus.csv"
    manifest.write_text(f"{HEADER}\nhs.h5ad,hs,cell_type,,human,blood\nmm.h5ad,mm,cell_type,,human,lung\n")
    line = assert_refused(["corpus", "info", manifest], [tmp_path], contains="dataset 'mm' is listed as human")
    assert f"Where: line 3 of {manifest}; the gene symbols of {tmp_path / 'mm.h5ad'}." in line
    line = assert_refused(["corpus", "info", tmp_path / "mm.h5ad", "--label-col", "cell_type", "--json"], [tmp_path])
    assert "set its species to mouse" in line
    manifest.write_text(f"{HEADER}\nhs.h5ad,hs,cell_type,,human,blood\nmm.h5ad,mm,cell_type,,mouse,lung\n")
    assert read_corpus(manifest).gene_report()[["dataset", "n_matched"]].values.tolist() == [["hs", 5], ["mm", 3]]


@pytest.mark.parametrize(
    "column, value, minimum",
    [("seed", "-1", 0), ("max_cells", "0", 1), ("max_cells_per_type", "-5", 1), ("max_cells_per_dataset", "-1", 1)],
)
def test_census_caps_and_seed_below_their_minimum_are_refused_in_manifest_terms(tmp_path, column, value, minimum):
    """seed -1 was refused with "pass seed=0 or another integer" (-1 is one), a cap with CensusQuery's
    "pass a positive ..." and no column: the manifest's line and column, and what to write there."""
    manifest = tmp_path / "corpus.csv"
    row = f"{HEADER},obs_value_filter,{column}\ncensus,c,cell_type,,human,,tissue_general == 'blood',"
    manifest.write_text(f"{row}{value}\n")
    with pytest.raises(CorpusError) as err:
        read_manifest(manifest)
    assert str(err.value) == (
        f"{column} must be a whole number of at least {minimum}, got '{value}'. Where: line 2 of {manifest}, column "
        f"'{column}'. What to do: write an integer >= {minimum} in {column}, or leave it blank."
    )
    manifest.write_text(f"{row}{minimum}\n")
    assert getattr(read_manifest(manifest)[0].census, column) == minimum
