"""mmgene's shipped gene tables (mmgene/_data) and the tool that makes them (tools/make_gene_tables.py)."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path

import pytest

from mmgene.align.mentions import ncbi_aliases
from mmgene.errors import DependencyError, ParameterError
from mmgene.genes.ids import gene_table
from mmgene.genes.offline_text import OfflineGeneText
from mmgene.genes.tables import GENE_IDS_HUMAN, NCBI_GENES, parse_table, shipped_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("make_gene_tables", ROOT / "tools" / "make_gene_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def read_gz(path: Path):
    return parse_table(gzip.decompress(path.read_bytes()))


# -- the shipped tables --------------------------------------------------------------------------


def test_gene_ids_table_says_its_source_and_keeps_gencode_order():
    shipped = shipped_table(GENE_IDS_HUMAN)
    assert shipped.meta["version"] == "GENCODE v44"
    assert shipped.meta["file"] == "celltypist 1.7.1: celltypist/data/samples/GENCODEv44_Gene_id2name.csv"
    assert shipped.meta["rows"] == "62754" and len(shipped.frame) == 62754
    assert list(shipped.frame.columns) == ["ensembl_id", "symbol"]
    assert shipped.frame.iloc[0].tolist() == ["ENSG00000290825", "DDX11L2"]
    table = gene_table()
    assert table.version == "GENCODE v44"
    assert (len(table.symbol_to_ensembl), len(table.ensembl_to_symbol)) == (61267, 62754)
    assert table.symbol_to_ensembl["TP53"] == "ENSG00000141510"
    # a symbol on two ids (PLCXD1: X copy, then its PAR_Y copy): the first in GENCODE's order wins
    assert table.symbol_to_ensembl["PLCXD1"] == "ENSG00000182378"
    assert table.ensembl_to_symbol["ENSG00000292344"] == "PLCXD1"


def test_ncbi_tables_for_human_and_mouse():
    human, mouse = (shipped_table(NCBI_GENES[s]) for s in ("human", "mouse"))
    assert human.meta["version"] == "NCBI Gene homo sapiens table downloaded 2016-01-05; goatools 1.6.9"
    assert mouse.meta["version"] == "NCBI Gene mus musculus table downloaded 2016-02-22; goatools 1.6.9"
    assert (len(human.frame), len(mouse.frame)) == (59542, 30539)
    assert human.meta["ensembl_id"] == "not in the source (empty)" and set(human.frame["ensembl_id"]) == {""}
    src = OfflineGeneText(species="mouse")
    assert (src.name, src.n_genes) == ("ncbi-gene-table (goatools)", 30522)
    assert src.texts(["cd3e"]) == {
        "CD3E": "Gene symbol Cd3e. Full name: CD3 antigen, epsilon polypeptide. Also known as: AI504783, CD3, "
        "CD3epsilon, T3e. Other designations: T-cell surface antigen T3/Leu-4 epsilon chain. Location: 9 24.84 cM."
    }
    with pytest.raises(ParameterError, match="no offline gene table for species 'rat'.*use one of: human, mouse"):
        OfflineGeneText(species="rat")


def test_aliases_include_genes_whose_fields_hold_quotes():
    # PECAM1's aliases include "GPIIA'": a text pattern over goatools' source skipped such genes
    aliases = ncbi_aliases()
    assert aliases["CD31"] == ("PECAM1",) and aliases["CD56"] == ("NCAM1",)
    assert aliases["CD25"] == ("IL2RA", "ISG20")


def test_missing_table_is_an_installation_error():
    with pytest.raises(DependencyError, match="gene table nope.tsv.gz is missing or damaged.*reinstall mmgene"):
        shipped_table("nope.tsv.gz")


# -- tools/make_gene_tables.py -------------------------------------------------------------------

GTF = """##description: evidence-based annotation of the human genome (GRCh38), version 44 (Ensembl 110)
##provider: GENCODE
chr1\tHAVANA\tgene\t11869\t14409\t.\t+\t.\tgene_id "ENSG00000290825.1"; gene_type "lncRNA"; gene_name "DDX11L2"; level 2;
chr1\tHAVANA\ttranscript\t11869\t14409\t.\t+\t.\tgene_id "ENSG00000290825.1"; transcript_id "ENST1"; gene_name "DDX11L2";
chrX\tHAVANA\tgene\t1\t9\t.\t+\t.\tgene_id "ENSG00000182378.14"; gene_name "PLCXD1";
chrY\tHAVANA\tgene\t1\t9\t.\t+\t.\tgene_id "ENSG00000182378.14_PAR_Y"; gene_name "PLCXD1";
chr17\tHAVANA\tgene\t1\t9\t.\t-\t.\tgene_id "ENSG00000141510.18"; gene_name "TP53";
"""

GENE_INFO = (
    "#tax_id\tGeneID\tSymbol\tLocusTag\tSynonyms\tdbXrefs\tchromosome\tmap_location\tdescription\ttype_of_gene\t"
    "Symbol_from_nomenclature_authority\tFull_name_from_nomenclature_authority\tNomenclature_status\t"
    "Other_designations\tModification_date\tFeature_type\n"
    "9606\t7157\tTP53\t-\tBCC7|LFS1|P53\tMIM:191170|HGNC:HGNC:11998|Ensembl:ENSG00000141510\t17\t17p13.1\t"
    "tumor protein p53\tprotein-coding\tTP53\ttumor protein p53\tO\tcellular tumor antigen p53|p53 tumor suppressor\t"
    "20240101\t-\n"
    "9606\t1\tA1BG\t-\t-\t-\t19\t19q13.43\talpha-1-B glycoprotein\tprotein-coding\tA1BG\t-\tO\t-\t20240101\t-\n"
    "10090\t22059\tTrp53\t-\tp53\tEnsembl:ENSMUSG00000059552\t11\t11 B3\ttransformation related protein 53\t"
    "protein-coding\t-\t-\t-\t-\t20240101\t-\n"
)

GOATOOLS = '''"""Data downloaded from NCBI Gene data converted into Python data."""
downloaded = "2016_02_22" # 2 items
import collections as cx
raise SystemExit("this file must be read, not run")
NtData = cx.namedtuple('NtData', 'tax_id GeneID Symbol Aliases description other_designations map_location')
GENEID2NT = {
  22059 : NtData(tax_id=10090, GeneID=22059, Symbol='Trp53', Aliases="p53, bbl, bfy, p44, Tp53'", description='transformation related protein 53', other_designations='cellular tumor antigen p53|tumor suppressor p53', map_location='11 B3'),
  12501 : NtData(tax_id=10090, GeneID=12501, Symbol='Cd3e', Aliases='CD3, T3e', description='CD3 antigen, epsilon polypeptide', other_designations='', map_location=''),
}
'''


def test_tool_reads_gencode_gtf_and_writes_deterministic_tables(tool, tmp_path):
    gtf = tmp_path / "gencode.v44.annotation.gtf"
    gtf.write_text(GTF)
    out = tmp_path / "a" / "gene_ids_human.tsv.gz"
    tool.main(["--gencode", str(gtf), "--out", str(tmp_path / "a")])
    first = out.read_bytes()
    tool.main(["--gencode", str(gtf), "--out", str(tmp_path / "a")])
    assert out.read_bytes() == first
    table = read_gz(out)
    assert table.frame.values.tolist() == [
        ["ENSG00000290825", "DDX11L2"],
        ["ENSG00000182378", "PLCXD1"],
        ["ENSG00000141510", "TP53"],
    ]
    assert table.meta["version"] == "GENCODE v44" and table.meta["rows"] == "3"
    assert table.meta["source"].startswith("GENCODE release 44 (https://www.gencodegenes.org), GTF")
    assert table.meta["made by"] == "tools/make_gene_tables.py --gencode gencode.v44.annotation.gtf --out a"


def test_tool_reads_gencode_csv_named_by_release(tool, tmp_path):
    csv = tmp_path / "GENCODEv44_Gene_id2name.csv"
    csv.write_text("ENSG00000290825,DDX11L2\nENSG00000141510,TP53\nENSG00000141510,TP53\nnot-an-id,X\n")
    tool.main(["--gencode", str(csv), "--out", str(tmp_path)])
    table = read_gz(tmp_path / "gene_ids_human.tsv.gz")
    assert table.frame["symbol"].tolist() == ["DDX11L2", "TP53"] and table.meta["version"] == "GENCODE v44"
    csv.rename(tmp_path / "ids.csv")
    with pytest.raises(SystemExit, match="cannot tell the GENCODE release.*pass --gencode-version"):
        tool.main(["--gencode", str(tmp_path / "ids.csv"), "--out", str(tmp_path)])


def test_tool_reads_ncbi_gene_info_and_goatools_copies_without_running_them(tool, tmp_path):
    info = tmp_path / "All_Mammalia.gene_info"
    info.write_text(GENE_INFO)
    copy = tmp_path / "genes_NCBI_10090_All.py"
    copy.write_text(GOATOOLS)
    tool.main(["--ncbi-human", str(info), "--ncbi-mouse", str(copy), str(info), "--ncbi-date", "2024-01-02",
               "--out", str(tmp_path)])
    human = read_gz(tmp_path / "ncbi_genes_human.tsv.gz")
    assert human.frame.values.tolist() == [
        ["1", "A1BG", "", "alpha-1-B glycoprotein", "", "", "19q13.43"],
        ["7157", "TP53", "ENSG00000141510", "tumor protein p53", "BCC7, LFS1, P53",
         "cellular tumor antigen p53|p53 tumor suppressor", "17p13.1"],
    ]
    assert human.meta["name"] == "ncbi-gene-table"
    assert human.meta["version"] == "NCBI Gene homo sapiens gene_info downloaded 2024-01-02"
    assert human.meta["ensembl_id"] == "from gene_info dbXrefs"
    mouse = read_gz(tmp_path / "ncbi_genes_mouse.tsv.gz")
    # GeneID order; the goatools copy, given first, wins for Trp53 (no Ensembl id there)
    assert mouse.frame.values.tolist() == [
        ["12501", "Cd3e", "", "CD3 antigen, epsilon polypeptide", "CD3, T3e", "", ""],
        ["22059", "Trp53", "", "transformation related protein 53", "p53, bbl, bfy, p44, Tp53'",
         "cellular tumor antigen p53|tumor suppressor p53", "11 B3"],
    ]
    assert mouse.meta["file"] == (
        "genes_NCBI_10090_All.py (2 genes, NCBI Gene tabular export); All_Mammalia.gene_info (1 genes, NCBI gene_info)"
    )
    with pytest.raises(SystemExit, match="pass --ncbi-date"):
        tool.main(["--ncbi-human", str(info), "--out", str(tmp_path)])
