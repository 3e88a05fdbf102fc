"""mmgene.corpus audit: manifests written by spreadsheets (tab or semicolon separated, a trailing
separator, a column named twice), orthology tables without a header row, and a dataset none of whose
genes matches a human symbol. Tiny AnnData files are written here; expected values are written out.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.corpus import CorpusOptions, OrthologyMap, read_corpus, read_manifest
from mmgene.errors import CorpusError
from tests.hostile import assert_refused

HEADER = ["path", "dataset", "label_col", "ontology_col", "species", "tissue"]


def _dataset(path: Path, genes: list[str]) -> Path:
    """Four T cells and four B cells (counts) over ``genes``."""
    X = sp.csr_matrix(np.arange(1, 8 * len(genes) + 1, dtype=np.float32).reshape(8, len(genes)))
    obs = pd.DataFrame({"cell_type": ["T", "B"] * 4}, index=[f"c{i}" for i in range(8)])
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    _dataset(folder / "hs.h5ad", ["CD3E", "MS4A1", "ACTB"])
    _dataset(folder / "mm.h5ad", ["Cd3e", "Ms4a1", "Gm12345"])
    return folder


# -- manifests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sep, name", [("\t", "corpus.tsv"), (";", "corpus.csv")])
def test_tab_and_semicolon_separated_manifests_are_read(data, sep, name):
    """specs_from takes a .tsv as a manifest, but it was read comma-separated: never a 'path' column."""
    manifest = data / name
    rows = [
        HEADER,
        ["hs.h5ad", "hs", "cell_type", "", "human", "blood, PBMC"],
        ["mm.h5ad", "mm", "cell_type", "", "mouse", ""],
    ]
    manifest.write_text("\ufeff" + "\r\n".join(sep.join(r) for r in rows) + "\r\n", encoding="utf-8")
    specs = read_manifest(manifest)
    assert [(s.dataset, s.path, s.species, s.tissue, s.where) for s in specs] == [
        ("hs", data / "hs.h5ad", "human", "blood, PBMC", f"line 2 of {manifest}"),
        ("mm", data / "mm.h5ad", "mouse", "", f"line 3 of {manifest}"),
    ]
    assert read_corpus(manifest).sizes() == {"hs": 8, "mm": 8}


def test_a_trailing_separator_on_the_header_row_adds_no_column(data):
    """Spreadsheets end rows with a separator; pandas named the empty header field 'Unnamed: 6' and the
    manifest was refused for an unknown column."""
    manifest = data / "corpus.csv"
    manifest.write_text(",".join(HEADER) + ",\nhs.h5ad,hs,cell_type,,human,blood,\n\nmm.h5ad,mm,cell_type,,mouse,,\n")
    assert [(s.dataset, s.tissue, s.where) for s in read_manifest(manifest)] == [
        ("hs", "blood", f"line 2 of {manifest}"),
        ("mm", "", f"line 4 of {manifest}"),
    ]


def test_a_manifest_column_with_values_but_no_name_is_refused(data):
    manifest = data / "corpus.csv"
    manifest.write_text(",".join(HEADER) + ",\nhs.h5ad,hs,cell_type,,human,blood,\nmm.h5ad,mm,cell_type,,mouse,,2\n")
    with pytest.raises(CorpusError) as info:
        read_manifest(manifest)
    assert str(info.value) == (
        f"column 7 of the manifest holds values but has no name. Where: line 1 of {manifest} (the header row). "
        "What to do: name it in the header row (path, dataset, label_col, species, ontology_col, tissue, weight) or delete "
        "its values."
    )


def test_a_manifest_naming_a_column_twice_is_refused_as_such(data, tmp_path):
    """Was refused as an 'unknown column' named 'tissue.1' (pandas' renaming), a name the user never wrote."""
    manifest = data / "corpus.csv"
    manifest.write_text(",".join(HEADER) + ",tissue\nhs.h5ad,hs,cell_type,,human,blood,PBMC\n")
    message = (
        f"the manifest names column 'tissue' more than once. Where: line 1 of {manifest} (the header row). "
        "What to do: keep one column of each name."
    )
    with pytest.raises(CorpusError) as info:
        read_corpus(manifest)
    assert str(info.value) == message
    assert assert_refused(["corpus", "info", manifest], [tmp_path]) == f"mmgene: error: {message}"


# -- orthology tables ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Cd3e,CD3E\nPtprc,PTPRC\nTrp53,TP53\n",
        "\ufeffCd3e\tCD3E\r\nPtprc\tPTPRC\r\nTrp53\tTP53\r\n",
        "Trp53;TP53\nCd3e;CD3E\nPtprc;PTPRC\n",
    ],
)
def test_an_orthology_table_without_a_header_row_keeps_its_first_pair(text, tmp_path):
    """Its first pair was taken for a header row and silently lost."""
    table = tmp_path / "pairs.csv"
    table.write_text(text, encoding="utf-8")
    orth = OrthologyMap.from_file(table)
    assert orth.table == {"CD3E": "CD3E", "PTPRC": "PTPRC", "TRP53": "TP53"}
    assert orth.dropped == {"pairs_kept": 3, "one_to_many": 0, "many_to_one": 0}


def test_a_one_line_orthology_table_without_a_header_is_one_pair(tmp_path):
    """Was refused as 'a header row but no pairs'; header words that are no gene stay a header."""
    table = tmp_path / "pairs.csv"
    table.write_text("Trp53,TP53\n")
    assert OrthologyMap.from_file(table).table == {"TRP53": "TP53"}
    table.write_text("gene,ortholog\nTrp53,TP53\n")
    assert OrthologyMap.from_file(table).table == {"TRP53": "TP53"}


def test_a_headerless_orthology_table_matches_every_listed_mouse_gene(data, tmp_path):
    table = tmp_path / "pairs.csv"
    table.write_text("Cd3e,CD3E\nMs4a1,MS4A1\n")
    corpus = read_corpus(data / "mm.h5ad", CorpusOptions(orthology=table), label_col="cell_type", species="mouse")
    report = corpus.gene_report()
    assert list(corpus["mm"].symbols) == ["CD3E", "MS4A1", ""]
    assert report[["n_genes", "n_matched", "matched_by"]].values.tolist() == [[3, 2, "orthology table pairs.csv"]]


# -- gene matching -------------------------------------------------------------------------------


def test_a_dataset_none_of_whose_genes_matches_is_refused(data, tmp_path):
    """A mouse dataset indexed by Ensembl ids (or an orthology table of other names) used to be read with
    0% of its genes matched: cells without any expression the model could read."""
    _dataset(data / "ens.h5ad", ["ENSMUSG00000032094", "ENSMUSG00000024673", "ENSMUSG00000029580"])
    manifest = data / "corpus.csv"
    manifest.write_text(",".join(HEADER) + "\nhs.h5ad,hs,cell_type,,human,\nens.h5ad,ens,cell_type,,mouse,\n")
    with pytest.raises(CorpusError) as info:
        read_corpus(manifest)
    assert str(info.value) == (
        "none of the 3 genes of dataset 'ens' (mouse) matched a human gene symbol (matched by case-insensitive symbol "
        "match against GENCODE v44 and the corpus's human symbols; genes 'ENSMUSG00000032094', 'ENSMUSG00000024673', "
        f"'ENSMUSG00000029580'). Where: line 3 of {manifest}. What to do: check the dataset's species and give var a "
        "column of gene symbols (e.g. var['gene_symbol']); if you pass an orthology table, its mouse column must hold "
        "these symbols."
    )
    assert_refused(["corpus", "info", manifest], [tmp_path], contains="none of the 3 genes of dataset 'ens'")
    table = tmp_path / "orthologs.csv"
    table.write_text("mouse_symbol,human_symbol\nTrp53,TP53\n")  # shares no gene with mm.h5ad
    with pytest.raises(CorpusError, match="none of the 3 genes of dataset 'mm'.*orthology table orthologs.csv"):
        read_corpus(data / "mm.h5ad", CorpusOptions(orthology=table), label_col="cell_type", species="mouse")
