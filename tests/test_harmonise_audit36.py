"""Audit of the reviewable label mapping: tables joined by pandas, nullable columns, a header naming a
column twice, a name typed without an id, and a copy of a backed AnnData."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("cellxgene_ontology_guide")

from hostile import assert_refused  # noqa: E402
from test_harmonise_audit import small_adata, written  # noqa: E402

from mmgene.errors import MappingError  # noqa: E402
from mmgene.harmonise import apply_mapping, harmonise_labels, read_mapping, validate_mapping  # noqa: E402


def test_a_mapping_joined_without_a_new_index_keeps_each_datasets_choice():
    """``pd.concat`` of two datasets' tables repeats the index 0, 1, 0, 1: rows were set by index label,
    so dataset b's reviewed id for 'NK cells' was written over dataset a's as well."""
    a = pd.DataFrame({"dataset": "a", "author_label": ["B cells", "NK cells"], "term_id": ["CL:0000236", "CL:0000623"]})
    b = pd.DataFrame({"dataset": "b", "author_label": ["B cells", "NK cells"], "term_id": ["CL:0000236", "CL:0000814"]})
    both = pd.concat([a, b])
    checked = validate_mapping(both, "both")
    assert checked["term_id"].tolist() == ["CL:0000236", "CL:0000623", "CL:0000236", "CL:0000814"]
    assert checked["term_name"].tolist()[1] == "natural killer cell"
    adata = small_adata(["B cells", "NK cells"])
    apply_mapping(adata, "cell_type", both, dataset="a")
    assert adata.obs["cell_type_ontology_term_id"].astype(str).tolist() == ["CL:0000236", "CL:0000623"]
    assert both.index.tolist() == [0, 1, 0, 1]  # the caller's table is left as it was


def test_missing_values_of_nullable_columns_are_blanks_not_text():
    """pandas' NA of a "string" or "Int64" column was read as the text '<NA>': a cleared id was refused
    as "term_id '<NA>' is not a Cell Ontology id"."""
    table = pd.DataFrame({
        "author_label": ["B cells", "junk"],
        "term_id": pd.array(["CL:0000236", pd.NA], dtype="string"),
        "term_name": pd.array(["B cell", pd.NA], dtype="string"),
        "confidence": pd.array([1.0, pd.NA], dtype="Float64"),
        "method": pd.array(["exact-name", pd.NA], dtype="string"),
        "n_cells": pd.array([3, pd.NA], dtype="Int64"),
    })
    checked = validate_mapping(table, "typed")
    assert checked[["term_id", "method", "confidence", "n_cells"]].values.tolist() == [
        ["CL:0000236", "exact-name", 1.0, 3],
        ["", "user", 1.0, 0],
    ]
    adata = small_adata(["B cells", "junk", "B cells"])
    apply_mapping(adata, "cell_type", table.convert_dtypes())
    ids = adata.obs["cell_type_ontology_term_id"].astype(object).tolist()
    assert ids[0] == ids[2] == "CL:0000236" and pd.isna(ids[1])


@pytest.mark.parametrize("second", ["term_id", "term_id "])
def test_a_header_naming_a_column_twice_is_refused(tmp_path, second):
    """A reviewer who copied the term_id column and edited the copy: pandas reads it as 'term_id.1' and
    the untouched first column was used without a word (or, with a blank in the name, the header text
    'term_id' was read as an id)."""
    path = tmp_path / "m.csv"
    path.write_text(f"author_label,term_id,{second}\nB cells,CL:0000236,CL:0000236\nNK cells,CL:0000623,CL:0000814\n")
    with pytest.raises(MappingError, match="the mapping names column 'term_id' twice in its header") as info:
        read_mapping(path)
    assert str(path) in str(info.value)
    table = pd.DataFrame([["B cells", "CL:0000236", "CL:0000623"]], columns=["author_label", "term_id", "term_id "])
    with pytest.raises(MappingError, match="names column 'term_id' twice"):
        validate_mapping(table, "the table")


def test_cli_apply_refuses_a_header_naming_a_column_twice_leaving_files_as_they_were(tmp_path):
    data = tmp_path / "cells.h5ad"
    small_adata(["B cells", "NK cells"]).write_h5ad(data)
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("author_label,term_id,term_id\nB cells,CL:0000236,CL:0000236\nNK cells,CL:0000623,CL:0000814\n")
    for out in (["--in-place"], ["--out", tmp_path / "new.h5ad"]):
        assert_refused(
            ["labels", "apply", data, "--mapping", mapping, "--label-col", "cell_type", *out],
            [tmp_path],
            contains="names column 'term_id' twice",
        )


def test_a_term_name_typed_for_a_label_without_an_id_is_reported(tmp_path, capsys):
    """The documented contract: a written name that is not the id's is reported. A name typed into an
    unmapped row (its id left empty) was dropped in silence and the label stayed unmapped."""
    table = written(tmp_path, ("B cells", "xyzzy", "NK cells"))
    assert table["method"].tolist()[1] == "unmapped"
    table.loc[1, "term_name"] = "T cell"  # the reviewer typed a name, not its id
    table.loc[2, "term_id"] = ""  # cleared to leave the label unmapped: its old name stays, no report
    path = tmp_path / "edited.csv"
    table.to_csv(path, index=False)
    capsys.readouterr()
    back = read_mapping(path)
    err = capsys.readouterr().err
    assert back["term_id"].tolist() == ["CL:0000236", "", ""]
    assert back["term_name"].tolist() == ["B cell", "", ""]
    assert err.count("mmgene: warning:") == 1, err
    assert "1 row(s)" in err and "line 3: 'T cell' written, term_id is empty" in err and "NK cells" not in err


def test_apply_with_copy_reads_a_backed_anndata_into_memory_and_leaves_the_file(tmp_path):
    """``copy=True`` on a backed AnnData raised anndata's ValueError ("pass a filename")."""
    import anndata as ad

    path = tmp_path / "cells.h5ad"
    small_adata(["B cells", "NK cells", None]).write_h5ad(path)
    before = path.read_bytes()
    backed = ad.read_h5ad(path, backed="r")
    try:
        result = apply_mapping(backed, "cell_type", harmonise_labels(["B cells", "NK cells"]), copy=True)
        assert not result.isbacked
        assert result.obs["cell_type_ontology_term_id"].astype(object).tolist()[:2] == ["CL:0000236", "CL:0000623"]
        assert "cell_type_ontology_term_id" not in backed.obs
    finally:
        backed.file.close()
    assert path.read_bytes() == before
