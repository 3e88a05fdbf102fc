"""mmgene.corpus: the shared manifest, gene matching across species, orthology tables, bad manifests,
Census queries against a local SOMA experiment, and `mmgene corpus info`.

Expected numbers are computed here from the files themselves (anndata, csv, set intersections), not
taken from mmgene.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.corpus import (
    CensusQuery,
    CorpusOptions,
    DatasetSpec,
    OrthologyMap,
    census_anndata,
    read_corpus,
    read_manifest,
    specs_from_paths,
)
from mmgene.errors import CorpusError, InputFileError, LabelError, MissingColumnError, MMGeneError, ParameterError
from mmgene.genes.ids import settle_repeats, split_joined
from tests.hostile import assert_refused, run_cli_here

HEADER = "path,dataset,label_col,ontology_col,species,tissue\n"


@pytest.fixture(scope="module")
def manifest(shared_dir) -> Path:
    return shared_dir / "corpus" / "corpus.csv"


@pytest.fixture(scope="module")
def rows(manifest) -> list[dict[str, str]]:
    with open(manifest, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def files(manifest, rows) -> dict[str, ad.AnnData]:
    """Each dataset's file, read by anndata alone (backed: obs and var only)."""
    return {r["dataset"]: ad.read_h5ad(manifest.parent / r["path"], backed="r") for r in rows}


@pytest.fixture(scope="module")
def corpus(manifest):
    return read_corpus(manifest)


def gencode_symbols() -> set[str]:
    """Upper-cased human symbols of the GENCODE v44 table mmgene ships, read directly."""
    path = Path(__file__).resolve().parents[1] / "mmgene" / "_data" / "gene_ids_human.tsv.gz"
    table = pd.read_csv(path, sep="\t", comment="#", dtype=str, keep_default_na=False)
    return set(table["symbol"].str.upper())


def upper(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object)).astype(str).str.upper()


def file_symbols(f: ad.AnnData) -> pd.Series:
    """A file's upper-cased gene_symbol column, with each repeated symbol on the gene GENCODE names so."""
    ids = f.var["ensembl_id"].to_numpy(dtype=object) if "ensembl_id" in f.var.columns else [""] * f.n_vars
    return upper(settle_repeats(f.var["gene_symbol"], ids)[0])


# -- the shared manifest -------------------------------------------------------------------------


def test_manifest_lists_eight_datasets_with_their_columns(manifest, rows):
    specs = read_manifest(manifest)
    assert [s.dataset for s in specs] == [r["dataset"] for r in rows] and len(specs) == 8
    for spec, row in zip(specs, rows):
        assert (spec.label_col, spec.ontology_col, spec.species, spec.tissue) == (
            row["label_col"],
            row["ontology_col"],
            row["species"],
            row["tissue"],
        )
        assert spec.path.resolve() == (manifest.parent / row["path"]).resolve() and spec.census is None
    assert specs[0].label_col == "cell_type_cl_name" and specs[0].path.name == "pbmc3k.h5ad"
    assert {s.species for s in specs} == {"human", "mouse"}


def test_corpus_cells_genes_labels_per_dataset(corpus, rows, files):
    assert corpus.names == [r["dataset"] for r in rows]
    for row, ds in zip(rows, corpus):
        f = files[row["dataset"]]
        labels = f.obs[row["label_col"]].astype(object)
        labelled = labels.notna() & (labels.astype(str).str.strip() != "")
        assert ds.n_cells == int(labelled.sum()) and ds.adata.n_obs == f.n_obs
        assert ds.n_genes == f.n_vars == ds.adata.n_vars
        assert ds.classes == sorted(set(labels[labelled].astype(str)))
        assert list(corpus.labels(row["dataset"])) == list(labels[labelled].astype(str))
        assert list(ds.ontology_ids) == list(f.obs[row["ontology_col"]].astype(str)[labelled])
        assert ds.class_counts.sum() == ds.n_cells
        assert list(ds.adata.var["human_symbol"]) == list(ds.symbols)
    assert corpus.sizes() == {r["dataset"]: int(files[r["dataset"]].n_obs) for r in rows}


def test_gene_report_matches_set_intersections(corpus, rows, files):
    human = set().union(*(set(file_symbols(files[r["dataset"]])) for r in rows if r["species"] == "human"))
    reference = gencode_symbols() | human
    report = corpus.gene_report().set_index("dataset")
    assert list(report.columns) == ["species", "n_genes", "n_matched", "share_matched", "matched_by"]
    for r in rows:
        symbols = file_symbols(files[r["dataset"]])
        if r["species"] == "human":  # every distinct symbol once (repeats after the first stay unmatched)
            expected = symbols[symbols != ""].nunique()
        else:
            expected = len(set(symbols) & reference)
            assert 0 < expected < len(symbols)
        got = report.loc[r["dataset"]]
        assert (got["species"], got["n_genes"], got["n_matched"]) == (r["species"], len(symbols), expected), r[
            "dataset"
        ]
        assert got["share_matched"] == pytest.approx(expected / len(symbols))
    assert report.loc["pbmc3k", "n_matched"] < report.loc["pbmc3k", "n_genes"]  # PBMC 3k repeats some symbols
    mouse = corpus["tabula_muris_kidney"]
    var_names = list(mouse.adata.var_names)
    assert mouse.symbols[var_names.index("Cd3e")] == "CD3E" and mouse.symbols[var_names.index("0610005C13Rik")] == ""
    assert "case-insensitive" in report.loc["tabula_muris_kidney", "matched_by"]


def test_concat_obs_has_one_row_per_cell_and_no_matrix(corpus):
    obs = corpus.concat_obs()
    assert list(obs.columns) == ["dataset", "species", "tissue", "label", "ontology_id", "cell", "row"]
    assert len(obs) == sum(corpus.sizes().values()) and obs.index.is_unique
    assert list(obs["dataset"].cat.categories) == corpus.names
    kidney = obs[obs["dataset"] == "tabula_muris_kidney"]
    assert set(kidney["species"]) == {"mouse"} and set(kidney["tissue"]) == {"kidney"}
    assert (kidney["label"].to_numpy() == corpus.labels("tabula_muris_kidney")).all()
    assert kidney["ontology_id"].str.startswith("CL:").all()


# -- orthology tables ----------------------------------------------------------------------------


def mouse_specs(manifest):
    return [s for s in read_manifest(manifest) if s.species == "mouse"]


def test_orthology_table_replaces_symbol_match_and_drops_ambiguous_rows(manifest, tmp_path):
    table = tmp_path / "orthologs.csv"
    table.write_text(
        "human_symbol,mouse_symbol\n"  # columns found by name, in either order
        "CD3E,Cd3e\n"
        "PTPRC,Ptprc\n"
        "PTPRC,ptprc\n"  # the same pair again (case-insensitive): one pair
        "CD8A,Cd8a\nCD8A,Cd8b1\n"  # many-to-one: both mouse genes dropped
        "HLA-A,H2-K1\nHLA-B,H2-K1\n"  # one-to-many: dropped
        ",Lyz2\n"  # blank: ignored
    )
    corpus = read_corpus(mouse_specs(manifest), CorpusOptions(orthology=table))
    assert corpus.orthology.dropped == {"pairs_kept": 2, "one_to_many": 1, "many_to_one": 2}
    for ds in corpus:  # tabula muris writes Cd3e, zilionis CD3E: both match the table
        matched = {str(g).upper(): s for g, s in zip(ds.adata.var_names, ds.symbols) if s}
        assert matched == {"CD3E": "CD3E", "PTPRC": "PTPRC"}, ds.name
    report = corpus.gene_report()
    assert list(report["n_matched"]) == [2, 2] and set(report["matched_by"]) == {"orthology table orthologs.csv"}


def test_orthology_from_mgi_report_and_two_unnamed_columns(tmp_path):
    mgi = tmp_path / "HOM_MouseHumanSequence.rpt"
    mgi.write_text(
        "DB Class Key\tCommon Organism Name\tNCBI Taxon ID\tSymbol\n"
        "1\tmouse, laboratory\t10090\tCd3e\n1\thuman\t9606\tCD3E\n"
        "2\tmouse, laboratory\t10090\tCd8b1\n2\tmouse, laboratory\t10090\tCd8b2\n2\thuman\t9606\tCD8B\n"
        "3\tmouse, laboratory\t10090\tXist\n"  # no human member
    )
    orth = OrthologyMap.from_file(mgi)
    assert orth.table == {"CD3E": "CD3E"} and orth.dropped == {"pairs_kept": 1, "one_to_many": 0, "many_to_one": 2}
    assert list(orth.to_human(["cd3e", "Cd8b1", "Xist", None])) == ["CD3E", "", "", ""]
    plain = tmp_path / "pairs.tsv"
    plain.write_text("a\tb\nTrp53\tTP53\n")
    assert OrthologyMap.from_file(plain).table == {"TRP53": "TP53"}
    three = tmp_path / "three.csv"
    three.write_text("a,b,c\nx,y,z\n")
    with pytest.raises(CorpusError, match="mouse and the human symbol column"):
        OrthologyMap.from_file(three)


#: bad orthology table -> (its text, the message after "CorpusError: ", with {path} for the file)
PAIR_FIX = (
    "write a header row such as mouse_symbol,human_symbol and one mouse,human symbol pair per line "
    "(comma, tab or semicolon separated)"
)
BAD_ORTHOLOGY = {
    "empty": ("", f"the orthology table is empty. Where: {{path}}. What to do: {PAIR_FIX}."),
    "blank lines only": ("\n \n", f"the orthology table is empty. Where: {{path}}. What to do: {PAIR_FIX}."),
    "ragged first row": (  # pandas made the extra fields the index: {'EXTRA': 'EXTRA2'}
        "mouse_symbol,human_symbol\nCd3e,CD3E,extra,extra2\nPtprc,PTPRC\n",
        "a row of the orthology table has 4 fields but its header has 2 ('mouse_symbol', 'human_symbol'); the extra "
        "fields are 'extra', 'extra2'. Where: line 2 of {path}. What to do: give every row the header's 2 fields "
        "(comma-separated; put a field that contains a comma in double quotes).",
    ),
    "ragged later row, tab-separated": (
        "mouse_symbol\thuman_symbol\n\nPtprc\tPTPRC\nCd3e\tCD3E\tCd3g\n",
        "a row of the orthology table has 3 fields but its header has 2 ('mouse_symbol', 'human_symbol'); the extra "
        "fields are 'Cd3g'. Where: line 4 of {path}. What to do: give every row the header's 2 fields "
        "(tab-separated; put a field that contains a tab in double quotes).",
    ),
    "one column": (  # pandas' sniffer took the letter 's' for the separator
        "mouse_symbol\nCd3e\n",
        "the orthology table has one column ('mouse_symbol'); it needs a mouse and a human symbol column. "
        f"Where: {{path}}. What to do: {PAIR_FIX}.",
    ),
    "header only": (
        "mouse_symbol,human_symbol\n",
        "the orthology table has a header row but no pairs. Where: {path}. "
        "What to do: add one mouse,human symbol pair per line below the header.",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ORTHOLOGY))
def test_bad_orthology_tables_are_refused_naming_the_file_and_line(case, manifest, tmp_path):
    text, message = BAD_ORTHOLOGY[case]
    table = tmp_path / "orthologs.csv"
    table.write_text(text)
    with pytest.raises(CorpusError) as info:
        OrthologyMap.from_file(table)
    assert str(info.value) == message.format(path=table)
    # the CLI: one line, exit 2, before any data is read; nothing written
    line = assert_refused(["corpus", "info", manifest, "--orthology", table], [tmp_path])
    assert line == f"mmgene: error: {message.format(path=table)}"


@pytest.mark.parametrize(
    "text, columns",
    [
        ("mouse_symbol,human_symbol\nCd3e,CD3E\nCd3e,CD3D\n,PTPRC\n", "mouse symbols in 'mouse_symbol'"),  # all ambiguous or blank
        ("DB Class Key\tCommon Organism Name\tSymbol\n1\thuman\tCD3E\n2\thuman\tCD4\n", "DB Class Key"),  # no mouse row
    ],
)
def test_an_orthology_table_without_one_usable_pair_is_refused(text, columns, tmp_path):
    """Such a table used to be accepted, leaving every mouse gene unmatched without a word."""
    table = tmp_path / "orthologs.csv"
    table.write_text(text)
    with pytest.raises(CorpusError, match="gives no one-to-one mouse,human pair") as info:
        OrthologyMap.from_file(table)
    assert columns in str(info.value) and str(table) in str(info.value)


def test_the_one_column_a_two_column_orthology_header_names_decides_the_other(tmp_path):
    """``symbol,mouse_symbol`` used to be read by position, the human column taken for the mouse one."""
    for header, row in (("symbol,mouse_symbol", "TP53,Trp53"), ("mouse,gene", "Trp53,TP53"), ("gene,human", "Trp53,TP53")):
        table = tmp_path / "pairs.csv"
        table.write_text(f"{header}\n{row}\n")
        assert OrthologyMap.from_file(table).table == {"TRP53": "TP53"}, header
    table.write_text("human,human_symbol\nTP53,TP53\n")  # neither column is mouse
    with pytest.raises(CorpusError, match="cannot tell the mouse and the human symbol column apart"):
        OrthologyMap.from_file(table)


def test_separator_is_the_one_the_header_line_holds_most_of():
    from mmgene.io.tables import pick_separator

    assert [pick_separator(h) for h in ("a,b", "a\tb", "a;b", "mouse_symbol", "a;b\tc;d")] == [",", "\t", ";", ",", ";"]


def test_orthology_table_rows_with_a_trailing_separator_or_quoted_fields_are_read(tmp_path):
    """Blank fields past the header's (a trailing separator) are no columns; a quoted field keeps its separator."""
    table = tmp_path / "pairs.csv"
    table.write_text('\ufeffmouse_symbol;human_symbol\r\nCd3e;CD3E;\r\nPtprc;PTPRC;;\r\n"Cd8a;x";CD8A\r\n')
    orth = OrthologyMap.from_file(table)
    assert orth.table == {"CD3E": "CD3E", "PTPRC": "PTPRC", "CD8A;X": "CD8A"}


# -- files and folders ---------------------------------------------------------------------------


def test_folder_of_files_with_a_label_column(shared_dir, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("camp_fetal_neocortex", "baron_pancreas_human"):
        (folder / f"{name}.h5ad").symlink_to(shared_dir / "corpus" / f"{name}.h5ad")
    (folder / "notes.txt").write_text("not data")
    specs = specs_from_paths(folder, label_col="cell_type", tissue="mixed")
    assert [s.dataset for s in specs] == ["baron_pancreas_human", "camp_fetal_neocortex"]
    corpus = read_corpus(folder, label_col="cell_type")
    baron = ad.read_h5ad(folder / "baron_pancreas_human.h5ad", backed="r")
    assert corpus["baron_pancreas_human"].classes == sorted(baron.obs["cell_type"].astype(str).unique())
    assert corpus.sizes() == {"baron_pancreas_human": 175, "camp_fetal_neocortex": 220}
    out = run_cli_here("corpus", "info", folder, "--label-col", "cell_type", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)["datasets"]
    assert [(d["dataset"], d["n_cells"], d["label_col"]) for d in data] == [
        ("baron_pancreas_human", 175, "cell_type"),
        ("camp_fetal_neocortex", 220, "cell_type"),
    ]
    with pytest.raises(ParameterError, match="label column"):
        read_corpus(folder)


# -- bad manifests -------------------------------------------------------------------------------


def write_manifest(tmp_path: Path, shared_dir: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(header + body.replace("{corpus}", str(shared_dir / "corpus")))
    return path


B = "{corpus}/baron_pancreas_human.h5ad"
C = "{corpus}/camp_fetal_neocortex.h5ad"
#: case -> (header, rows, error, text in the message, line named or None)
BAD = {
    "missing column": ("path,dataset,species\n", f"{B},b,human\n", CorpusError, "no column 'label_col'", None),
    "unknown column": (
        HEADER.strip() + ",weights\n",  # misspelt: the column is weight
        f"{B},b,cell_type,,human,,2\n",
        CorpusError,
        "unknown column 'weights'",
        None,
    ),
    "missing file": (
        HEADER,
        f"{B},b,cell_type,,human,\n{{corpus}}/nope.h5ad,n,cell_type,,human,\n",
        InputFileError,
        "nope.h5ad",
        3,
    ),
    "unknown species": (HEADER, f"{B},b,cell_type,,zebrafish,\n", CorpusError, "zebrafish", 2),
    "blank label column": (HEADER, f"{B},b,,,human,\n", CorpusError, "label_col is blank", 2),
    "duplicate id": (HEADER, f"{B},b,cell_type,,human,\n{C},b,cell_type,,human,\n", CorpusError, "used twice", 3),
    "one file twice": (  # leaving one out would still train on its cells
        HEADER,
        f"{B},b,cell_type,,human,\n{C},c,cell_type,,human,\n{B.replace('/baron', '/./baron')},b2,cell_type,,human,\n",
        CorpusError,
        "datasets 'b' and 'b2' are the same file",
        4,
    ),
    "label column absent": (
        HEADER,
        f"{C},c,cell_type,,human,\n{B},b,celltype,,human,\n",
        MissingColumnError,
        "'celltype'",
        3,
    ),
    "ontology column absent": (HEADER, f"{B},b,cell_type,cl_id,human,\n", MissingColumnError, "'cl_id'", 2),
    "one class": (HEADER, f"{B},b,dataset,,human,\n", LabelError, "at least 2 classes", 2),
    "extra field": (  # pandas made the first field the index: every column shifted by one
        HEADER,
        f"{C},c,cell_type,,human,\n{B},b,cell_type,,human,pancreas,2\n",
        CorpusError,
        "a row of the manifest has 7 fields but its header has 6",
        3,
    ),
    "empty file": ("", "", CorpusError, "the manifest is empty", None),
    "census cap on a file": (  # was silently ignored: the file was read whole
        HEADER.strip() + ",max_cells\n",
        f"{C},c,cell_type,,human,,\n{B},b,cell_type,,human,,10\n",
        CorpusError,
        "max_cells is set for dataset 'b', which has no obs_value_filter",
        3,
    ),
    "blank lines above the bad row": (  # pandas skips them: the row's position alone named line 3
        HEADER,
        f"\n{B},b,cell_type,,human,\n \n{{corpus}}/nope.h5ad,n,cell_type,,human,\n",
        InputFileError,
        "nope.h5ad",
        5,
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_manifests_raise_errors_naming_the_file_and_line(case, shared_dir, tmp_path):
    header, body, error, text, line = BAD[case]
    path = write_manifest(tmp_path, shared_dir, body, header)
    with pytest.raises(error) as info:
        read_corpus(path)
    message = str(info.value)
    assert text in message and str(path) in message, message
    if line is not None:
        assert f"line {line} of {path}" in message, message


def test_cli_refuses_a_bad_manifest_with_one_line(shared_dir, tmp_path):
    path = write_manifest(tmp_path, shared_dir, "{corpus}/baron_pancreas_human.h5ad,b,celltype,,human,\n")
    line = assert_refused(["corpus", "info", path], [tmp_path], contains="line 2")
    assert "'celltype'" in line
    assert_refused(["corpus", "info", path, "--label-col", "cell_type"], [tmp_path], contains="not to a manifest")


def _ids_dataset(path: Path, ids: list[str]) -> None:
    """Four T cells and four B cells (counts), with ``ids`` as their Cell Ontology column."""
    X = sp.csr_matrix(np.tile(np.array([[3, 0, 1], [0, 4, 2]], dtype=np.float32), (4, 1)))
    obs = pd.DataFrame({"cell_type": ["T", "B"] * 4, "cl": ids}, index=[f"c{i}" for i in range(8)])
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=["CD3E", "MS4A1", "ACTB"])).write_h5ad(path)


def test_bad_ontology_ids_are_refused_when_the_corpus_is_read(tmp_path):
    """Malformed ids and ids the shipped Cell Ontology lacks are refused as the corpus is read (corpus
    info, pretrain: before any training), naming the dataset, the manifest line, the column, the values
    with their cell counts and what to do; blank ids are no ids and are kept."""
    from mmgene.text.ontology import ontology_version

    data = tmp_path / "data"
    data.mkdir()
    _ids_dataset(data / "good.h5ad", ["CL:0000084", "CL:0000236", "", "CL:0000236"] * 2)
    _ids_dataset(data / "bad.h5ad", ["CL0000236", "CL:0000236", "foo", "CL:9999999", "CL0000236", "CL:0000236", "CL0000236", "CL:0000236"])
    manifest = data / "corpus.csv"
    manifest.write_text(HEADER + "good.h5ad,good,cell_type,cl,human,blood\nbad.h5ad,bad,cell_type,cl,human,blood\n")
    with pytest.raises(CorpusError) as info:
        read_corpus(manifest)
    assert str(info.value) == (
        "dataset 'bad' has 5 cells whose Cell Ontology id in obs['cl'] is malformed or unknown to the Cell Ontology "
        f"{ontology_version()}: 'CL0000236' (3 cells, not of the form CL:0000000), 'foo' (1 cell, not of the form CL:0000000), "
        "'CL:9999999' (1 cell, not in the Cell Ontology). "
        f"Where: line 3 of {manifest}; obs['cl'] of {data / 'bad.h5ad'}. "
        "What to do: correct the ids (e.g. CL:0000236), blank out the ones you do not know, or leave ontology_col blank for "
        "this dataset and map its labels instead: `mmgene labels harmonise` writes a reviewable mapping, which "
        "`mmgene pretrain --mapping` applies."
    )
    good = read_corpus(data / "good.h5ad", label_col="cell_type", ontology_col="cl")["good"]
    assert list(good.ontology_ids) == ["CL:0000084", "CL:0000236", "", "CL:0000236"] * 2
    assert read_corpus(data / "bad.h5ad", label_col="cell_type")["bad"].n_cells == 8  # no ontology column: labels only
    line = assert_refused(["corpus", "info", manifest], [tmp_path], contains="line 3 of")
    assert "dataset 'bad' has 5 cells" in line
    line = assert_refused(["pretrain", manifest, "--out", tmp_path / "model", "--max-steps", "1"], [tmp_path])
    assert "'CL:9999999' (1 cell, not in the Cell Ontology)" in line and "mmgene labels harmonise" in line
    assert not (tmp_path / "model").exists()


def test_cellxgene_unknown_id_marks_an_unlabelled_cell(tmp_path, capsys, monkeypatch):
    """CELLxGENE writes the id ``unknown`` (label "unknown") for a cell its authors did not type: such a
    cell is dropped as unlabelled and said so, not refused and not learned as a class named "unknown"."""
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "quiet", False)
    path = tmp_path / "census_like.h5ad"
    _ids_dataset(path, ["CL:0000084", "unknown", "CL:0000236", "unknown", "CL:0000084", "CL:0000236", "", "CL:0000236"])
    ds = read_corpus(path, label_col="cell_type", ontology_col="cl")["census_like"]
    assert ds.n_cells == 6 and ds.n_dropped == 2
    assert list(ds.ontology_ids) == ["CL:0000084", "CL:0000236", "CL:0000084", "CL:0000236", "", "CL:0000236"]
    assert "dropped 2 of 8 cells whose obs['cl'] is 'unknown'" in capsys.readouterr().err
    only_unknown = tmp_path / "untyped.h5ad"
    _ids_dataset(only_unknown, ["CL:0000084", "unknown"] * 4)  # every B cell untyped: one class left
    with pytest.raises(LabelError, match="after dropping 4 cells with no label"):
        read_corpus(only_unknown, label_col="cell_type", ontology_col="cl")


# -- Census / SOMA -------------------------------------------------------------------------------

CENSUS_FILES = ("kang_ifnb_pbmc", "symphony_pbmc_3chem")


@pytest.fixture(scope="module")
def soma_source(shared_dir, tmp_path_factory):
    """Two shared files as one AnnData with Census's obs/var columns, written as a local SOMA
    experiment and as a Census-shaped collection (census_data/homo_sapiens)."""
    soma = pytest.importorskip("tiledbsoma")
    import tiledbsoma.io

    parts = []
    for name in CENSUS_FILES:
        a = ad.read_h5ad(shared_dir / "corpus" / f"{name}.h5ad")
        a.obs = pd.DataFrame(
            {
                "dataset_id": name,
                "assay": "10x" if "kang" in name else a.obs["chemistry"].astype(str).to_numpy(),
                "cell_type": a.obs["cell_type_name"].astype(str).to_numpy(),
                "cell_type_ontology_term_id": a.obs["cell_type_ontology_term_id"].astype(str).to_numpy(),
                "tissue_general": "blood",
                "donor_id": a.obs["sample_id"].astype(str).to_numpy() if "sample_id" in a.obs else "unknown",
            },
            index=[f"{name}:{c}" for c in a.obs_names],
        )
        parts.append(a)
    full = ad.concat(parts, join="outer", fill_value=0)
    full.X = sp.csr_matrix(full.X, dtype=np.float32)
    full.var = pd.DataFrame({"feature_name": full.var_names.to_numpy()}, index=full.var_names)
    root = tmp_path_factory.mktemp("soma")
    exp_uri = str(root / "experiment")
    tiledbsoma.io.from_anndata(exp_uri, full, measurement_name="RNA")
    with soma.Collection.create(str(root / "census")) as census:
        census.add_new_collection("census_data")
    tiledbsoma.io.from_anndata(str(root / "census" / "census_data" / "homo_sapiens"), full, measurement_name="RNA")
    with (
        soma.Collection.open(str(root / "census"), "w") as census,
        soma.Experiment.open(str(root / "census" / "census_data" / "homo_sapiens")) as exp,
    ):
        census["census_data"].set("homo_sapiens", exp)
    return full, exp_uri, str(root / "census")


TYPES = ["B cell", "natural killer cell", "CD14-low, CD16-positive monocyte", "dendritic cell"]
FILTER = f"cell_type in {TYPES!r} and tissue_general == 'blood'"


def same_cells(got: ad.AnnData, full: ad.AnnData, names) -> None:
    """``got`` holds exactly the cells ``names`` of ``full`` (in file order), all genes, same values."""
    assert list(got.obs_names) == list(names)
    assert list(got.var["gene_symbol"]) == list(full.var_names)
    assert (got.X != full[list(names)].X).nnz == 0
    assert list(got.obs.columns) == [
        "soma_joinid",
        "dataset_id",
        "assay",
        "cell_type",
        "cell_type_ontology_term_id",
        "tissue_general",
        "donor_id",
    ]
    assert list(got.obs["cell_type"]) == list(full.obs.loc[list(names), "cell_type"])


def test_census_query_matches_an_in_memory_filter(soma_source):
    full, exp_uri, _ = soma_source
    wanted = full.obs_names[full.obs["cell_type"].isin(TYPES)]
    got = census_anndata(CensusQuery(FILTER, uri=exp_uri))
    same_cells(got, full, wanted)
    assert got.uns["mmgene"]["census"]["n_obs"] == len(wanted)


def test_census_caps_are_exact_seeded_and_keep_values(soma_source):
    full, exp_uri, _ = soma_source
    matching = full.obs[full.obs["cell_type"].isin(TYPES)]
    per_type = census_anndata(CensusQuery(FILTER, uri=exp_uri, max_cells_per_type=40, seed=1))
    expected = matching["cell_type"].value_counts().clip(upper=40)
    assert per_type.obs["cell_type"].value_counts().sort_index().to_dict() == expected.sort_index().to_dict()
    order = [n for n in full.obs_names if n in set(per_type.obs_names)]
    same_cells(per_type, full, order)
    per_dataset = census_anndata(CensusQuery(FILTER, uri=exp_uri, max_cells_per_dataset=100, seed=1))
    assert (
        per_dataset.obs["dataset_id"].value_counts().to_dict()
        == matching["dataset_id"].value_counts().clip(upper=100).to_dict()
    )
    again = census_anndata(CensusQuery(FILTER, uri=exp_uri, max_cells_per_type=40, seed=1))
    other = census_anndata(CensusQuery(FILTER, uri=exp_uri, max_cells_per_type=40, seed=2))
    assert list(again.obs_names) == list(per_type.obs_names) and list(other.obs_names) != list(per_type.obs_names)
    both = census_anndata(
        CensusQuery(FILTER, uri=exp_uri, max_cells_per_dataset=150, max_cells_per_type=30, max_cells=100)
    )
    assert both.n_obs == 100 and both.obs["cell_type"].value_counts().max() <= 30


def test_census_gene_filter_keeps_those_genes_in_experiment_order(soma_source):
    """``var_value_filter`` keeps exactly the named genes (in the experiment's order) with their values;
    a filter tiledbsoma rejects is a CorpusError naming the query."""
    full, exp_uri, _ = soma_source
    picked = [full.var_names[7], full.var_names[2], full.var_names[40]]
    got = census_anndata(CensusQuery(FILTER, uri=exp_uri, var_value_filter=f"feature_name in {picked!r}", max_cells=30))
    order = [g for g in full.var_names if g in picked]
    assert list(got.var_names) == order and list(got.var["gene_symbol"]) == order
    assert (got.X != full[list(got.obs_names), order].X).nnz == 0 and got.X.has_canonical_format
    with pytest.raises(CorpusError, match="the query failed") as refused:
        census_anndata(CensusQuery(FILTER, uri=exp_uri, var_value_filter="no_such_column == 'x'"))
    assert exp_uri in str(refused.value)


def test_soma_rows_slices_match_the_in_memory_read(soma_source):
    """Rows read slice by slice equal the same cells read at once; an empty slice has no rows and every gene."""
    from mmgene.corpus.soma_rows import SomaRows

    full, exp_uri, _ = soma_source
    query = CensusQuery(FILTER, uri=exp_uri, max_cells_per_type=10, seed=4)
    whole = census_anndata(query)
    rows = SomaRows(query)
    try:
        parts = [rows[a : a + 7] for a in range(0, rows.n_obs, 7)]
        assert [list(p.obs_names) for p in parts] == [list(whole.obs_names[a : a + 7]) for a in range(0, whole.n_obs, 7)]
        assert all((p.X != whole[p.obs_names].X).nnz == 0 for p in parts)
        pd.testing.assert_frame_equal(parts[1].obs, whole.obs.iloc[7:14])
        empty = rows[5:5]
        assert empty.shape == (0, full.n_vars) and empty.X.nnz == 0
    finally:
        rows.close()


def test_census_handle_path_gives_the_same_anndata(soma_source):
    pytest.importorskip("cellxgene_census")
    import tiledbsoma

    _, exp_uri, census_uri = soma_source
    query = CensusQuery(FILTER, organism="Homo sapiens", x_name="data", max_cells_per_type=25, seed=3)
    with tiledbsoma.open(census_uri) as census:
        online_like = census_anndata(query, census)
    local = census_anndata(CensusQuery(FILTER, uri=exp_uri, max_cells_per_type=25, seed=3))
    assert list(online_like.obs_names) == list(local.obs_names)
    pd.testing.assert_frame_equal(online_like.obs, local.obs)
    assert (online_like.X != local.X).nnz == 0


def test_census_dataset_in_a_corpus_and_a_manifest(soma_source, tmp_path):
    full, exp_uri, _ = soma_source
    spec = DatasetSpec(
        "census_blood", "cell_type", ontology_col="cell_type_ontology_term_id", census=CensusQuery(FILTER, uri=exp_uri)
    )
    corpus = read_corpus([spec])
    ds = corpus["census_blood"]
    assert ds.classes == sorted(TYPES) and ds.n_genes == full.n_vars
    # kang names 91 genes SYMBOL_ENSEMBL; 30 of them have a plain twin from symphony, read as one gene
    assert ds.n_matched == len({s.upper() for s in split_joined(full.var_names)[0]}) == full.n_vars - 30
    assert set(corpus.concat_obs()["tissue"]) == {"blood"}
    manifest = tmp_path / "census.csv"
    manifest.write_text(
        "path,dataset,label_col,ontology_col,species,tissue,obs_value_filter,max_cells_per_type\n"
        f'{exp_uri},blood,cell_type,cell_type_ontology_term_id,human,blood,"{FILTER}",20\n'
    )
    capped = read_corpus(manifest)["blood"]
    assert capped.class_counts.to_dict() == {t: 20 for t in sorted(TYPES)}


def test_a_backed_corpus_closes_its_files_and_the_experiments_it_opened(soma_source, manifest):
    """``with read_corpus(..., backed=True)`` closes the .h5ad file and the SOMA experiment on leaving;
    rows read afterwards are refused; a Census handle the caller passed stays open."""
    import tiledbsoma

    from mmgene.corpus.soma_rows import SomaRows

    _, exp_uri, census_uri = soma_source
    census_spec = DatasetSpec("census_blood", "cell_type", ontology_col="cell_type_ontology_term_id", census=CensusQuery(FILTER, uri=exp_uri))
    with read_corpus([read_manifest(manifest)[0], census_spec], CorpusOptions(backed=True)) as corpus:
        backed, rows = corpus[0].adata, corpus[1].adata
        assert backed.isbacked and backed.file.is_open and isinstance(rows, SomaRows)
        experiment = rows._source.experiment
        assert not experiment.closed and rows[0:3].n_obs == 3
    assert not backed.file.is_open and experiment.closed
    with pytest.raises(CorpusError, match="the SOMA source was closed"):
        rows[0:3]
    corpus.close()  # a second close does nothing

    query = CensusQuery(FILTER, organism="Homo sapiens", x_name="data", max_cells_per_type=5, seed=0)
    with tiledbsoma.open(census_uri) as census:
        theirs = SomaRows(query, census)
        theirs.close()
        assert not census.closed and census_anndata(query, census).n_obs == 20  # still the caller's to use
    with pytest.raises(CorpusError, match="closed"):
        theirs[0:1]


def test_a_refused_backed_corpus_leaves_no_file_open(manifest):
    """A dataset refused while a backed corpus is read closes the files of the datasets read before it."""
    import dataclasses

    import h5py

    def open_files() -> int:
        return len(h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE))

    good, other = read_manifest(manifest)[:2]
    before = open_files()
    with pytest.raises(MissingColumnError, match="no_such_column") as refused:
        read_corpus([good, dataclasses.replace(other, label_col="no_such_column")], CorpusOptions(backed=True))
    assert open_files() == before and refused.value is not None  # the traceback still holds the datasets read


def test_census_errors_name_the_query(soma_source, tmp_path):
    _, exp_uri, _ = soma_source
    with pytest.raises(CorpusError, match="query failed") as info:
        census_anndata(CensusQuery("celltype == 'B cell'", uri=exp_uri))
    assert exp_uri in str(info.value)
    with pytest.raises(CorpusError, match="no cell matches"):
        census_anndata(CensusQuery("cell_type == 'b cell'", uri=exp_uri))
    with pytest.raises(CorpusError, match="no column 'tissue'"):
        census_anndata(CensusQuery(FILTER, uri=exp_uri, obs_columns=("cell_type", "tissue")))
    with pytest.raises(CorpusError, match="cannot open a SOMA experiment"):
        census_anndata(CensusQuery(FILTER, uri=str(tmp_path / "none")))
    with pytest.raises(CorpusError, match="max_cells_per_type"):
        CensusQuery(FILTER, uri=exp_uri, max_cells_per_type=0)
    with pytest.raises(CorpusError, match="obs_value_filter"):
        CensusQuery("")  # the whole Census: refused


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_corpus_info_table_and_json(manifest, corpus):
    out = run_cli_here("corpus", "info", manifest)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["dataset", "species", "tissue", "cells"] and len(lines) == 10
    report = corpus.gene_report().set_index("dataset")
    kidney = next(line for line in lines if line.startswith("tabula_muris_kidney"))
    n, share = report.loc["tabula_muris_kidney", ["n_matched", "share_matched"]]
    assert f"{n:,} ({share:.1%})" in kidney and "cell_type_name" in kidney
    assert lines[-1].startswith("8 datasets, 7,504 cells")
    data = json.loads(run_cli_here("corpus", "info", manifest, "--json").stdout)
    got = {d["dataset"]: (d["n_cells"], d["n_genes"], d["n_matched"], d["n_classes"]) for d in data["datasets"]}
    assert got == {ds.name: (ds.n_cells, ds.n_genes, ds.n_matched, len(ds.classes)) for ds in corpus}
    assert data["orthology"]["source"].startswith("case-insensitive")
    one = run_cli_here("corpus", "info", manifest.parent / "kang_ifnb_pbmc.h5ad", "--label-col", "cell_type")
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines()[-1] == "1 dataset, 1,556 cells"  # no mouse dataset: no word on mouse genes


def test_errors_are_mmgene_errors():
    assert issubclass(CorpusError, MMGeneError)


def test_census_unreachable_is_a_corpus_error(monkeypatch):
    """Offline, cellxgene_census's error escaped as a traceback (exit 1). The Census's directories are
    served by a server on 127.0.0.1 that answers 503."""
    pytest.importorskip("cellxgene_census")
    import cellxgene_census._release_directory as releases
    from servers.trickle_server import TrickleServer

    from mmgene.corpus.census import CensusQuery, open_source
    from mmgene.errors import CorpusError

    with TrickleServer(answers={"mirrors.json": [(503, {})], "release.json": [(503, {})]}) as server:
        for name in ("MIRRORS", "RELEASE"):
            monkeypatch.setattr(releases, f"CELL_CENSUS_{name}_DIRECTORY_URL", f"{server.url}/files/{name.lower()}.json")
        with pytest.raises(CorpusError) as caught:
            open_source(CensusQuery("cell_type == 'B cell'"))
        assert [path for _, path, _ in server.requests] == ["/files/mirrors.json"]
    assert str(caught.value).startswith("cannot open the CELLxGENE Census release 'stable' (HTTPError: 503 Server Error")
    assert "Where: CELLxGENE Census stable (Homo sapiens), obs_value_filter \"cell_type == 'B cell'\"." in str(caught.value)
    assert str(caught.value).endswith(
        "What to do: check the network connection and the release name, or read a local SOMA experiment (the query's uri)."
    )
