"""Audit of label harmonisation: a reviewed mapping CSV as spreadsheets save it, edits that disagree,
reviewed rows that do not meet the data's labels, and the CLI's refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("cellxgene_ontology_guide")

from hostile import assert_refused, run_cli_here  # noqa: E402

from mmgene.errors import MappingError, ParameterError  # noqa: E402
from mmgene.harmonise import apply_mapping, harmonise_labels, read_mapping, write_mapping  # noqa: E402


def small_adata(labels: list[object]):
    import anndata as ad
    from scipy import sparse

    n = len(labels)
    obs = pd.DataFrame({"cell_type": np.array(labels, dtype=object)}, index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=["CD3E", "MS4A1", "LYZ"])
    return ad.AnnData(X=sparse.csr_matrix(np.ones((n, 3), dtype=np.float32)), obs=obs, var=var)


def written(tmp_path, labels=("B cells", "NK cells")) -> pd.DataFrame:
    """A mapping as harmonise writes it, read back as a spreadsheet shows it (all text)."""
    path = write_mapping(harmonise_labels(list(labels)), tmp_path / "written.csv")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_semicolon_or_tab_separated_mapping_with_decimal_commas_is_read(tmp_path, sep):
    """A spreadsheet in a decimal-comma locale saves "0,900" in a ';'-separated file (was refused)."""
    table = written(tmp_path, ("B cells", "T_CD8"))
    table["confidence"] = table["confidence"].str.replace(".", ",", regex=False)
    path = tmp_path / "edited.csv"
    path.write_bytes(("\ufeff" + table.to_csv(index=False, sep=sep)).replace("\n", "\r\n").encode("utf-8"))
    back = read_mapping(path)
    assert back["author_label"].tolist() == ["B cells", "T_CD8"]
    assert back["term_id"].tolist() == ["CL:0000236", "CL:0000625"]
    assert back["confidence"].tolist() == [1.0, 0.9]
    assert back["method"].tolist() == ["exact-name", "abbreviation"]


def test_an_id_with_blanks_inside_is_read_as_the_id(tmp_path):
    table = written(tmp_path)
    table.loc[1, "term_id"] = "CL: 0000814"
    path = tmp_path / "edited.csv"
    table.to_csv(path, index=False)
    row = read_mapping(path).iloc[1]
    assert (row["term_id"], row["term_name"], row["method"]) == ("CL:0000814", "mature NK T cell", "user")


def test_a_term_name_edited_without_its_id_is_reported_and_the_id_wins(tmp_path, capsys):
    table = written(tmp_path)
    table.loc[0, "term_name"] = "T cell"  # the reviewer meant another term but left the id
    table.loc[1, "term_name"] = "Natural Killer  Cell"  # case and blanks only: no edit
    path = tmp_path / "edited.csv"
    table.to_csv(path, index=False)
    capsys.readouterr()
    back = read_mapping(path)
    err = capsys.readouterr().err
    assert back["term_id"].tolist() == ["CL:0000236", "CL:0000623"]
    assert back["term_name"].tolist() == ["B cell", "natural killer cell"]
    assert back["method"].tolist() == ["user", "synonym"]
    assert err.count("mmgene: warning:") == 1
    assert "line 2: 'T cell' written, CL:0000236 is 'B cell'" in err and "edit term_id" in err


def test_an_id_filled_in_for_an_unmapped_label_is_a_user_choice(tmp_path):
    table = written(tmp_path, ("B cells", "xyzzy"))
    assert table.loc[1, "method"] == "unmapped"
    table.loc[1, ["term_id", "term_name"]] = ["CL:0000084", "T cell"]  # id and its right name, method left as it was
    path = tmp_path / "edited.csv"
    table.to_csv(path, index=False)
    row = read_mapping(path).iloc[1]
    assert (row["term_id"], row["method"], row["confidence"]) == ("CL:0000084", "user", 1.0)


@pytest.mark.parametrize("written_as", ["NK cells ", "nk cells", " NK  cells"])
def test_a_reviewed_label_written_with_other_case_or_blanks_is_refused_not_dropped(tmp_path, written_as):
    table = written(tmp_path)
    table.loc[1, ["author_label", "term_id"]] = [written_as, "CL:0000814"]
    with pytest.raises(MappingError, match=f"'NK cells' is written {written_as!r}"):
        harmonise_labels(["B cells", "NK cells"], mapping=table)
    # a row for a label the data also has as written is no near miss
    both = pd.concat([table, table.iloc[[1]].assign(author_label="NK cells")], ignore_index=True)
    result = harmonise_labels(["B cells", "NK cells", written_as], mapping=both)
    assert result["term_id"].tolist() == ["CL:0000236", "CL:0000814", "CL:0000814"]


def test_harmonise_refuses_a_mapping_of_several_datasets(tmp_path):
    table = written(tmp_path)
    both = pd.concat([table.assign(dataset="a"), table.assign(dataset="b", term_id=["CL:0000236", "CL:0000814"])])
    with pytest.raises(MappingError, match="covers 2 datasets"):
        harmonise_labels(["B cells", "NK cells"], mapping=both)
    one = harmonise_labels(["B cells", "NK cells"], mapping=both[both["dataset"] == "b"])
    assert one["term_id"].tolist() == ["CL:0000236", "CL:0000814"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"mapping": {"B cells": "CL:0000236"}}, "mapping must be a table"), ({"config": {"tissue": "blood"}}, "HarmoniseConfig")],
)
def test_a_mapping_or_config_of_the_wrong_type_is_refused(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        harmonise_labels(["B cells"], **kwargs)


def _semicolon_mapping(tmp_path, column: str, value: str):
    """Two cells' AnnData and their mapping written with ";" (as a European spreadsheet saves it),
    the second row's ``column`` edited to ``value``."""
    data = tmp_path / "cells.h5ad"
    small_adata(["B cells", "NK cells"]).write_h5ad(data)
    table = written(tmp_path)
    table.loc[1, column] = value
    mapping = tmp_path / "mapping.csv"
    mapping.write_text(table.to_csv(index=False, sep=";"))
    return data, mapping


def test_cli_apply_reads_a_semicolon_mapping_and_reports_a_name_edit_once(tmp_path):
    data, mapping = _semicolon_mapping(tmp_path, "term_name", "gamma-delta T cell")
    done = run_cli_here("labels", "apply", data, "--mapping", mapping, "--label-col", "cell_type", "--out", tmp_path / "o.h5ad")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("mmgene: warning:") == 1, done.stderr
    import anndata as ad

    assert ad.read_h5ad(tmp_path / "o.h5ad").obs["cell_type_ontology_term_id"].astype(str).tolist() == [
        "CL:0000236",
        "CL:0000623",
    ]


def test_cli_refuses_an_obsolete_id_in_a_semicolon_mapping_leaving_files_as_they_were(tmp_path):
    data, mapping = _semicolon_mapping(tmp_path, "term_id", "CL:0000493")
    message = assert_refused(
        ["labels", "apply", data, "--mapping", mapping, "--label-col", "cell_type", "--in-place"],
        [tmp_path],
        contains="obsolete",
    )
    assert "line 3" in message and "NK cells" in message


def test_apply_names_the_mapping_file_when_given_the_table_read_from_it(tmp_path):
    table = written(tmp_path)
    path = tmp_path / "edited.csv"
    table.iloc[:1].to_csv(path, index=False)
    with pytest.raises(MappingError, match="not in the mapping") as info:
        apply_mapping(small_adata(["B cells", "NK cells"]), "cell_type", read_mapping(path))
    assert str(path) in str(info.value)



def test_labels_a_spreadsheet_would_run_as_formulas_are_written_as_text_and_read_back(tmp_path):
    """A mapping table carries author labels from someone else's data: opened in a spreadsheet, a label
    "=HYPERLINK(...)" would be a live formula. It is written with a leading ' and read back as it was."""
    import csv

    labels = ['=HYPERLINK("http://evil.example","x")', "+CD4 T", "-", "@risk", "B cells", "'quoted"]
    table = harmonise_labels(labels)
    path = write_mapping(table, tmp_path / "m.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        cells = [row[0] for row in csv.reader(fh)][1:]
    assert sorted(cells) == sorted(['\'=HYPERLINK("http://evil.example","x")', "'+CD4 T", "'-", "'@risk", "B cells", "'quoted"])
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)
    back = read_mapping(path)
    assert sorted(back["author_label"]) == sorted(labels)
    adata = small_adata(labels)
    apply_mapping(adata, "cell_type", back)
    assert adata.obs["cell_type_ontology_term_id"].tolist()[labels.index("B cells")] == "CL:0000236"
