"""mmgene.corpus audit: a file or a Census query listed twice, file names shared by two files (ids are
file names there), rows of blank fields that a spreadsheet saves for an empty row, and a Census release
written with a blank after ``census:``. Manifests are checked without opening a SOMA experiment.
"""

from __future__ import annotations

import pytest

from mmgene.corpus import CensusQuery, DatasetSpec, read_corpus, read_manifest, specs_from_paths
from mmgene.errors import CorpusError, InputFileError
from tests.test_corpus_audit import HEADER, _dataset, data  # noqa: F401 (data: a fixture)

CENSUS_HEADER = HEADER + ["obs_value_filter", "seed"]
FILTER = "cell_type == 'B cell'"


def _write(path, rows: list[list[str]]) -> None:
    path.write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")


def test_one_file_listed_twice_under_one_id_is_named_as_one_file(data):
    """Was 'dataset id used twice: give every dataset its own id', which only leads to the next refusal."""
    manifest = data / "corpus.csv"
    row = ["hs.h5ad", "hs", "cell_type", "", "human", ""]
    _write(manifest, [HEADER, row, ["./hs.h5ad", *row[1:]]])
    before = manifest.read_bytes()
    with pytest.raises(CorpusError) as refused:
        read_corpus(manifest)
    assert refused.value.what == f"dataset 'hs' is listed twice: the same file {data / 'hs.h5ad'}"
    assert refused.value.where == f"line 2 of {manifest} and line 3 of {manifest}"
    assert refused.value.fix == "list each file once"
    assert manifest.read_bytes() == before


def test_a_folder_and_a_file_in_it_are_one_file_listed_twice(data):
    with pytest.raises(CorpusError) as refused:
        specs_from_paths([data, data / "hs.h5ad"], label_col="cell_type")
    assert refused.value.what == f"dataset 'hs' is listed twice: the same file {data / 'hs.h5ad'}"
    assert refused.value.fix == "list each file once"


def test_two_files_of_one_name_are_told_to_rename_not_to_choose_an_id(data, tmp_path):
    """Without a manifest a dataset's id is its file name: 'give every dataset its own id' cannot be done."""
    other = tmp_path / "other"
    other.mkdir()
    _dataset(other / "hs.h5ad", ["CD3E", "ACTB"])
    with pytest.raises(CorpusError) as refused:
        read_corpus([data / "hs.h5ad", other / "hs.h5ad"], label_col="cell_type")
    assert refused.value.what == "dataset id 'hs' is used twice"
    assert refused.value.where == f"{data / 'hs.h5ad'} and {other / 'hs.h5ad'}"
    assert refused.value.fix == (
        "rename one of the files (a dataset's id is its file name without suffix), or list the files in a "
        "manifest CSV that gives each its own id"
    )


def test_the_same_census_query_twice_is_refused_before_reading(tmp_path):
    """Two rows of one query read the same cells twice (one left out would still train on them); was accepted."""
    manifest = tmp_path / "corpus.csv"
    _write(
        manifest,
        [
            CENSUS_HEADER,
            ["exp", "b1", "cell_type", "", "human", "", f'"{FILTER}"', "3"],
            ["exp", "b3", "cell_type", "", "human", "", f'"{FILTER}"', "4"],
            ["./exp", "b2", "cell_type", "", "human", "", f'"{FILTER}"', "3"],
        ],
    )
    with pytest.raises(CorpusError) as refused:
        read_manifest(manifest)  # no experiment at exp: refused before anything is opened
    assert refused.value.what == "datasets 'b1' and 'b2' are the same Census query"
    assert refused.value.where == f"line 2 of {manifest} and line 4 of {manifest}"
    assert refused.value.fix == "list each query once"
    one = DatasetSpec("a", "cell_type", census=CensusQuery(FILTER, organism="Mus musculus", max_cells=5))
    with pytest.raises(CorpusError, match="'a' and 'b' are the same Census query"):
        read_corpus([one, DatasetSpec("b", "cell_type", census=one.census)])


def test_rows_of_blank_fields_are_skipped_as_blank_lines_are(data):
    """A spreadsheet saves an empty row as ',,,,,': it was refused as 'path, dataset, ... is blank'."""
    manifest = data / "corpus.csv"
    _write(
        manifest,
        [
            HEADER,
            ["hs.h5ad", "hs", "cell_type", "", "human", ""],
            [""] * 6,
            [" "] * 6,
            ["mm.h5ad", "mm", "cell_type", "", "mouse", ""],
            [""] * 6,
        ],
    )
    assert [(s.dataset, s.path, s.where) for s in read_manifest(manifest)] == [
        ("hs", data / "hs.h5ad", f"line 2 of {manifest}"),
        ("mm", data / "mm.h5ad", f"line 5 of {manifest}"),
    ]
    _write(manifest, [HEADER, [""] * 6, ["nope.h5ad", "n", "cell_type", "", "human", ""]])
    with pytest.raises(InputFileError) as refused:
        read_manifest(manifest)
    assert refused.value.where == f"line 3 of {manifest} (dataset 'n')"
    _write(manifest, [HEADER, [""] * 6])
    with pytest.raises(CorpusError, match="the manifest lists no dataset"):
        read_manifest(manifest)


def test_a_census_release_written_with_a_blank_after_the_colon(tmp_path):
    """'census: 2025-01-30' asked Census for the release ' 2025-01-30', which does not exist."""
    manifest = tmp_path / "corpus.csv"
    _write(manifest, [CENSUS_HEADER, ["census: 2025-01-30", "b", "cell_type", "", "mouse", "", f'"{FILTER}"', ""]])
    (spec,) = read_manifest(manifest)
    assert spec.census == CensusQuery(FILTER, organism="Mus musculus", census_version="2025-01-30")
