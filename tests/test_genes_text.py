"""Offline gene text (goatools' NCBI table), user files (JSON/TSV) and the source dispatcher."""

from __future__ import annotations

import json

import pytest

from mmgene.errors import InputFileError, ParameterError
from mmgene.genes.offline_text import OfflineGeneText
from mmgene.genes.sources import gene_text_source
from mmgene.genes.text_sources import GeneRecord, normalise_symbols
from mmgene.genes.user_text import UserGeneText


def test_offline_table_version_and_text():
    src = OfflineGeneText()
    assert src.name == "ncbi-gene-table (goatools)"
    assert src.version.startswith("NCBI Gene homo sapiens table downloaded 2016-01-05; goatools ")
    assert src.n_genes == 59524  # 59,542 rows, 18 symbols repeated
    texts = src.texts(["tp53", "HLA-DRA", "NOT-A-GENE"])
    assert list(texts) == ["TP53", "HLA-DRA"]
    assert texts["TP53"] == (
        "Gene symbol TP53. Full name: tumor protein p53. Also known as: BCC7, LFS1, P53, TRP53. Other designations: "
        "antigen NY-CO-13; mutant tumor protein 53; p53 tumor suppressor; phosphoprotein p53; transformation-related "
        "protein 53; tumor protein 53; tumor supressor p53. Location: 17p13.1."
    )


def test_offline_aliases_resolve_only_when_unique():
    src = OfflineGeneText()
    rec = src.records(["P53"])["P53"]
    assert rec.symbol == "TP53" and rec.gene_id == "7157"
    assert "P53" not in OfflineGeneText(use_aliases=False).texts(["P53"])
    assert len(src.texts(None)) == src.n_genes


def test_record_text_skips_empty_fields():
    assert GeneRecord("ABC1").text() == "Gene symbol ABC1."
    assert GeneRecord("ABC1", name="a b c", summary="Does things.").text() == "Gene symbol ABC1. Full name: a b c. Summary: Does things."


def test_normalise_symbols():
    assert normalise_symbols([" cd3e", "CD3E", "", "lyz"]) == ["CD3E", "LYZ"]
    with pytest.raises(ParameterError, match="#1 is int"):
        normalise_symbols(["A", 5])


def test_user_json_genept_format(tmp_path):
    path = tmp_path / "NCBI_summary_of_genes.json"
    path.write_text(json.dumps({"TP53": "Gene Symbol TP53 tumor protein p53 ...", "cd14": "CD14 molecule", "EMPTY": "  ", "LIST": ["a", "b"]}))
    src = UserGeneText(path)
    assert src.texts() == {"TP53": "Gene Symbol TP53 tumor protein p53 ...", "CD14": "CD14 molecule", "LIST": "a b"}
    assert src.texts(["cd14", "nope"]) == {"CD14": "CD14 molecule"}
    assert src.name == "file:NCBI_summary_of_genes.json" and src.version.startswith("sha256:")
    assert isinstance(gene_text_source(path), UserGeneText)


def test_user_tsv_with_and_without_header(tmp_path):
    a = tmp_path / "a.tsv"
    a.write_text("symbol\ttext\nTP53\ttumor protein p53\nCD14\tCD14 molecule\twith a tab\n\n")
    assert UserGeneText(a).texts() == {"TP53": "tumor protein p53", "CD14": "CD14 molecule\twith a tab"}
    b = tmp_path / "b.txt"
    b.write_text("LYZ\tlysozyme\n")
    assert UserGeneText(b).texts() == {"LYZ": "lysozyme"}


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("list.json", "[1, 2]", "holds a list"),
        ("num.json", '{"TP53": 5}', "is a int"),
        ("dup.json", '{"TP53": "a", "tp53": "b"}', "appears twice"),
        ("empty.json", '{"TP53": ""}', "no gene with text"),
        ("notab.tsv", "TP53 tumor protein\n", "line 1 has no tab"),
    ],
)
def test_user_file_errors(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputFileError, match=match):
        UserGeneText(path)


def test_source_dispatch_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        gene_text_source(tmp_path / "missing.json")
    with pytest.raises(ParameterError, match="unknown gene text source 'wikipedia'"):
        gene_text_source("wikipedia")
    assert isinstance(gene_text_source("offline"), OfflineGeneText)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("same.tsv", "TP53\tfirst text\nTP53\tsecond text\n"),  # the last one won silently
        ("same.json", '{"TP53": "first text", "TP53": "second text"}'),
    ],
)
def test_a_symbol_repeated_with_two_texts_is_refused(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputFileError, match="gene 'TP53' appears twice with different texts"):
        UserGeneText(path)
    path.write_text(content.replace("second", "first"))
    assert UserGeneText(path).texts() == {"TP53": "first text"}


@pytest.mark.parametrize(("name", "content"), [("h.tsv", "symbol\ttext\nTP53\tp53\n"), ("n.tsv", "TP53\tp53\n"), ("j.json", '{"TP53": "p53"}')])
def test_byte_order_mark_is_not_part_of_the_first_symbol(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8-sig")  # as spreadsheet programs save "UTF-8" text
    assert UserGeneText(path).texts() == {"TP53": "p53"}
