"""The reviewable mapping table: written as CSV, edited by a person, read back checked, applied to ``obs``.

A reviewer changes ``term_id`` (or clears it to leave a label unmapped); :func:`read_mapping` reads the
CSV comma, semicolon or tab separated (a decimal comma in ``confidence`` too), checks every id against the
Cell Ontology (read in any usual form: ``cl:0000236``, ``CL_0000236``, the PURL), re-fills ``term_name``,
and marks rows whose id no longer matches the name that was written as ``method = "user"`` with
confidence 1.0. The id wins over the name; a written name that is not the id's is reported (a warning).
Errors name the CSV line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmgene.config import check_key
from mmgene.copies import copy_in_memory
from mmgene.errors import MappingError, MissingColumnError, _preview
from mmgene.provenance import record_of
from mmgene.text.labels import spelling_key
from mmgene.text.ontology import normalise_term_id

#: columns of a mapping table, in order (``dataset`` comes first when a table covers several datasets).
COLUMNS = ("author_label", "term_id", "term_name", "confidence", "method", "alternatives", "n_cells", "note")
REQUIRED = ("author_label", "term_id")
_CL_ID = re.compile(r"^CL:\d{7}$")


def format_alternatives(alternatives: list[tuple[str, float]], labels: dict[str, str]) -> str:
    """``"CL:0000576 monocyte (0.62) | ..."``: readable in a spreadsheet, one cell per label."""
    return " | ".join(f"{t} {labels.get(t, '')} ({s:.2f})" for t, s in alternatives)


def write_mapping(table: pd.DataFrame, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``table`` as CSV for review (atomically; an existing file only with ``overwrite``). Text that a
    spreadsheet would run as a formula (an author label ``=HYPERLINK(...)``) is written as text
    (:func:`~mmgene.io.tables.as_spreadsheet_text`); :func:`read_mapping` reads it back as it was."""
    from mmgene.atomic import atomic_path
    from mmgene.io.tables import as_spreadsheet_text

    text = table.select_dtypes(include=["object", "string"]).columns
    safe = table.assign(**{c: table[c].map(as_spreadsheet_text) for c in text})
    with atomic_path(path, overwrite=overwrite) as tmp:
        safe.to_csv(tmp, index=False, float_format="%.3f")
    return Path(path)


def read_mapping(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a (reviewed) mapping CSV and check it (see :func:`validate_mapping`)."""
    from mmgene.io.tables import from_spreadsheet_text, read_text_table

    table = read_text_table(
        path, what="mapping file", error=MappingError, missing_fix="pass the CSV written by harmonise (mmgene labels harmonise --out)",
        unreadable_fix="save the edited table as CSV (UTF-8; comma, semicolon or tab separated) with its header row",
        na_filter=False, encoding="utf-8-sig", sep=None,  # a spreadsheet in a decimal-comma locale saves with ";"
    )
    table = table.map(from_spreadsheet_text)  # as write_mapping wrote it, when no spreadsheet saved it since
    _check_header(_copied_columns(table.columns), str(path))
    checked = validate_mapping(table, str(path), csv_lines=True)
    checked.attrs["source"] = str(path)  # apply_mapping's messages name the file, not "the mapping table"
    return checked


def _copied_columns(columns: Any) -> list[str]:
    """The mapping's own columns that the header names twice: pandas reads the second ``term_id`` as
    ``term_id.1`` and would use the first, whichever one the reviewer edited."""
    own = (*COLUMNS, "dataset")
    return sorted({m.group(1) for c in columns if (m := re.match(r"^(.+)\.\d+$", str(c))) and m.group(1) in own
                   and m.group(1) in columns})


def _check_header(repeated: list[str], source: str) -> None:
    """Refuse a header that names a column twice: which copy the reviewer meant cannot be told."""
    if repeated:
        raise MappingError(
            f"the mapping names column {', '.join(map(repr, repeated))} twice in its header",
            source,
            "keep one column of each name (delete or rename the copy you did not edit)",
        )


def _text(value: Any) -> str:
    """A cell as text, ``""`` for a missing one (None, NaN, pandas' NA of nullable columns)."""
    return "" if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) else str(value)


def _row(i: int, csv_lines: bool) -> str:
    return f"line {i + 2}" if csv_lines else f"row {i}"


def _row_where(source: str, i: int, label: str, csv_lines: bool) -> str:
    return f"{_row(i, csv_lines)} of {source} (author label {label!r})"


def _term_id(written: str) -> str:
    """The id a reviewer wrote, as ``CL:0000236``: any usual form (``cl:0000236``, ``CL_0000236``, the PURL),
    blanks inside it too ("CL: 0000236"); other text is returned stripped, for :func:`_check_id` to refuse."""
    return normalise_term_id("".join(written.split())) or written.strip()


def _check_id(term_id: str, where: str) -> None:
    from mmgene.harmonise.vocabulary import parser, vocabulary

    if not _CL_ID.match(term_id):
        raise MappingError(
            f"term_id {term_id!r} is not a Cell Ontology id",
            where,
            "write ids like CL:0000623, or leave term_id empty to leave the label unmapped",
        )
    if term_id in vocabulary().labels:
        return
    onto = parser()
    try:
        obsolete = onto.is_term_deprecated(term_id)
        replacement = onto.get_term_replacement(term_id) if obsolete else None
    except (ValueError, KeyError):
        raise MappingError(
            f"term_id {term_id!r} is not in the Cell Ontology (version {vocabulary().version})",
            where,
            "check the id (search https://www.ebi.ac.uk/ols4/ontologies/cl), or leave term_id empty",
        ) from None
    fix = (
        f"use {replacement} instead"
        if replacement
        else "choose a current term (the alternatives column lists candidates)"
    )
    raise MappingError(f"term_id {term_id!r} is obsolete in the Cell Ontology", where, fix)


def _same_row(row: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two rows of a mapping say the same thing (every column equal, blanks and spaces aside)."""
    return all(str(row[c]).strip() == str(other[c]).strip() for c in row)


def _cell_counts(table: pd.DataFrame, source: str, csv_lines: bool) -> pd.Series:
    """The ``n_cells`` column as whole numbers: blank is 0 (none given); anything else that is not a
    count is a :class:`MappingError` naming the row."""
    text = table["n_cells"].map(lambda v: _text(v).strip())
    counts = pd.to_numeric(text.replace("", "0"), errors="coerce")
    bad = np.flatnonzero(counts.isna() | (counts < 0) | (counts % 1 != 0))
    if len(bad):
        i = int(bad[0])
        raise MappingError(
            f"n_cells {text.iloc[i]!r} is not a count of cells", _row_where(source, i, table["author_label"].iloc[i], csv_lines),
            "write a whole number of cells, or leave n_cells empty",
        )
    return counts.astype(int)


def validate_mapping(table: pd.DataFrame, source: str, *, csv_lines: bool = False) -> pd.DataFrame:
    """A checked copy of a mapping table: ids exist and are current, names re-filled, edits marked ``user``.

    Raises :class:`~mmgene.errors.MappingError` naming the row for a missing column, a blank or repeated
    author label, or an id that is malformed, unknown or obsolete.
    """
    from mmgene.harmonise.vocabulary import vocabulary

    table = table.copy().reset_index(drop=True)  # rows are set by position: a repeated index label would set several
    table.columns = [str(c).strip() for c in table.columns]
    _check_header(sorted({c for c in table.columns if list(table.columns).count(c) > 1}), source)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise MappingError(
            f"the mapping has no column {', '.join(map(repr, missing))} (it has {_preview(table.columns, 10)})",
            source,
            "keep the header row written by harmonise; author_label and term_id are required",
        )
    for column in COLUMNS:
        if column not in table.columns:
            table[column] = ""
    table["confidence"] = table["confidence"].astype(object)
    text_columns = ["author_label", "term_id", "term_name", "method", "alternatives", "note"] + (
        ["dataset"] if "dataset" in table.columns else []
    )
    for column in text_columns:
        table[column] = [_text(v) for v in table[column]]
    labels = vocabulary().labels
    seen: dict[tuple[str, str], int] = {}
    rows = table.to_dict(orient="records")
    repeats: list[int] = []
    mismatched: list[str] = []
    for i, row in enumerate(rows):
        where = _row_where(source, i, row["author_label"], csv_lines)
        if not row["author_label"].strip():
            raise MappingError(
                "author_label is blank", where, "fill in the label as it appears in the data, or delete the row"
            )
        ident = (row.get("dataset", ""), row["author_label"])
        if ident in seen and _same_row(row, rows[seen[ident]]):
            repeats.append(i)  # a row copied twice says one thing: checked like the others, then read once
        elif ident in seen:
            first = _row(seen[ident], csv_lines)
            raise MappingError(
                f"author label {row['author_label']!r} is listed twice (also on {first})",
                where,
                "keep one row per label",
            )
        seen.setdefault(ident, i)
        term = _term_id(row["term_id"])
        if term:
            _check_id(term, where)
        blank_confidence = _text(row["confidence"]).strip() in ("", "nan")
        renamed = term != "" and spelling_key(row["term_name"]) != spelling_key(labels[term])
        if renamed and row["term_name"].strip():
            mismatched.append(f"{_row(i, csv_lines)}: {row['term_name'].strip()!r} written, {term} is {labels[term]!r}")
        elif term == "" and row["term_name"].strip() and row["method"] in ("", "unmapped", "user"):
            # a name typed for a label that had no id (a cleared id of a match leaves its name: no report)
            mismatched.append(f"{_row(i, csv_lines)}: {row['term_name'].strip()!r} written, term_id is empty")
        edited = (
            blank_confidence
            or renamed
            or (term != "" and row["method"] == "unmapped")  # a reviewer filled in an id for an unmapped label
            or (term == "" and row["method"] not in ("unmapped", "user"))
        )
        table.at[table.index[i], "term_id"] = term
        table.at[table.index[i], "term_name"] = labels.get(term, "")
        if edited:
            table.at[table.index[i], "method"] = "user"
            table.at[table.index[i], "confidence"] = 1.0
    # "0,85": a decimal comma, as a spreadsheet in such a locale saves it
    written = table["confidence"].map(lambda v: re.sub(r"^\s*(\d*),(\d+)\s*$", r"\1.\2", str(v)))
    confidence = pd.to_numeric(written, errors="coerce")
    bad = np.flatnonzero(confidence.isna() | ~confidence.between(0.0, 1.0))
    if len(bad):
        i = int(bad[0])
        raise MappingError(
            f"confidence {table['confidence'].iloc[i]!r} is not a number from 0 to 1",
            _row_where(source, i, table["author_label"].iloc[i], csv_lines),
            "keep the confidence written by harmonise (an edited term_id sets it to 1.0 by itself)",
        )
    table["confidence"] = confidence.astype(float)
    table["n_cells"] = _cell_counts(table, source, csv_lines)
    if mismatched:
        from mmgene.progress import warn

        warn(
            f"{source}: term_name is not the name of term_id in {len(mismatched)} row(s); the id is used and its name "
            f"written ({'; '.join(mismatched[:3])}{' ...' if len(mismatched) > 3 else ''}). "
            "To choose another term, edit term_id (term_name follows it)"
        )
    if repeats:
        from mmgene.progress import info

        info(f"mmgene: {source}: {len(repeats)} row(s) repeat an earlier row exactly and were read once")
        table = table.drop(index=table.index[repeats])
    ordered = (["dataset"] if "dataset" in table.columns else []) + list(COLUMNS)
    return table[ordered + [c for c in table.columns if c not in ordered]].reset_index(drop=True)


def spelled_alike(absent: list[str], listed: Any) -> list[tuple[str, str]]:
    """``(label, row label)`` for labels of the data that the mapping lists only with other case or blanks
    (a hand edit's stray space or capital): such a row is meant for the label but must not be guessed."""
    near = {spelling_key(k): k for k in listed}
    return [(a, near[spelling_key(a)]) for a in absent if spelling_key(a) in near]


def _name_key(key_added: str) -> str:
    suffix = "_ontology_term_id"
    return key_added[: -len(suffix)] + "_name" if key_added.endswith(suffix) else f"{key_added}_name"


def _check_columns(adata: Any, label_col: str, key_added: str, name_key: str) -> None:
    """Refuse to write the ids or names over the author labels, or over an obs column that an earlier
    :func:`apply_mapping` did not write (curated ids, say): those would be lost from the output."""
    if len({label_col, key_added, name_key}) < 3:
        raise MappingError(
            f"obs[{label_col!r}] holds the labels and obs[{key_added!r}] / obs[{name_key!r}] take the ids and names: "
            "they must be three columns", "apply_mapping(key_added=..., name_key=...)", "pass other column names (--key)",
        )
    earlier = record_of(adata, key_added)
    by_apply = isinstance(earlier, dict) and ("mapping_labels" in earlier or "mapping" in earlier)  # "mapping": files of earlier versions
    ours = {key_added, str(earlier.get("name_key", ""))} if by_apply else set()
    taken = [c for c in (key_added, name_key) if c in adata.obs.columns and c not in ours]
    if taken:
        raise MappingError(
            f"obs[{taken[0]!r}] exists and was not written by `mmgene labels apply`, so it is not replaced",
            "apply_mapping(key_added=..., name_key=...)",
            "pass a new column name (--key, e.g. 'harmonised_term_id'), or drop that column yourself",
        )


def apply_mapping(
    adata: Any,
    label_col: str,
    table: pd.DataFrame | str | os.PathLike[str],
    *,
    key_added: str = "cell_type_ontology_term_id",
    name_key: str | None = None,
    dataset: str | None = None,
    copy: bool = False,
) -> Any:
    """Write each cell's Cell Ontology id and name into ``obs`` from a mapping table.

    ``obs[key_added]`` gets the id and ``obs[name_key]`` (default: ``cell_type_name`` for the default
    key, else ``<key_added>_name``) the term's name; cells whose label is missing or mapped to nothing
    get a missing value. A label of the data that the table lacks is an error (harmonise again, or add
    the row). A table covering several datasets (a ``dataset`` column) needs ``dataset=``. Provenance
    goes to ``uns['mmgene'][key_added]`` (the table as the lists ``mapping_labels`` and
    ``mapping_term_ids``, since labels may hold '/'). Returns the AnnData with ``copy=True``, else ``None``.
    """
    from mmgene.harmonise.vocabulary import vocabulary
    from mmgene.text.labels import label_text
    from mmgene.provenance import record

    check_key(key_added, "apply_mapping(key_added=...)", "cell_type_ontology_term_id")
    if name_key is not None:
        check_key(name_key, "apply_mapping(name_key=...)", "cell_type_name")
    source = str(table) if not isinstance(table, pd.DataFrame) else table.attrs.get("source", "the mapping table")
    table = read_mapping(table) if not isinstance(table, pd.DataFrame) else validate_mapping(table, source)
    if label_col not in adata.obs.columns:
        raise MissingColumnError(label_col, "obs", list(map(str, adata.obs.columns)))
    if "dataset" in table.columns:
        datasets = sorted(set(table["dataset"]))
        if dataset is None and len(datasets) > 1:
            raise MappingError(
                f"the mapping covers {len(datasets)} datasets ({_preview(datasets)})",
                source,
                "say which one applies (dataset=..., --dataset)",
            )
        if dataset is not None:
            if dataset not in datasets:
                raise MappingError(
                    f"the mapping has no rows for dataset {dataset!r} (it has {_preview(datasets)})",
                    source,
                    "pass one of its datasets",
                )
            table = table[table["dataset"] == dataset]
    elif dataset is not None:  # a one-file mapping: nothing to choose, and saying nothing would pretend it chose
        raise MappingError(
            f"dataset={dataset!r} was given, but the mapping has no dataset column (it maps one file's labels)",
            source,
            "leave --dataset out for a one-file mapping, or pass the mapping `mmgene labels harmonise MANIFEST` wrote",
        )
    codes, distinct = pd.factorize(label_text(adata.obs[label_col]))
    ids = dict(zip(table["author_label"], table["term_id"]))
    absent = sorted(str(v) for v in distinct if v != "" and v not in ids)
    if absent:
        close = spelled_alike(absent, ids)
        hint = (
            f" ({', '.join(f'{a!r} is written {b!r} in the mapping' for a, b in close[:3])}: labels must match exactly)"
            if close else ""
        )
        raise MappingError(
            f"{len(absent)} label(s) of obs[{label_col!r}] are not in the mapping: {_preview(absent)}{hint}",
            source,
            "harmonise this data again (mmgene labels harmonise), or add a row per missing label"
            if not close else "write author_label exactly as the data has it, or harmonise this data again",
        )
    name_key = name_key or _name_key(key_added)
    _check_columns(adata, label_col, key_added, name_key)
    if copy:  # a backed AnnData copies only to a file: its copy in memory
        adata = copy_in_memory(adata)
    names = vocabulary().labels
    per_label = np.array([ids.get(v, "") or None for v in distinct], dtype=object)  # one entry per distinct label
    cell_ids = per_label[codes]
    adata.obs[key_added] = pd.Categorical(cell_ids)
    adata.obs[name_key] = pd.Categorical(
        np.array([names.get(t) if t else None for t in per_label], dtype=object)[codes]
    )
    mapped = int(pd.notna(cell_ids).sum())
    record(
        adata,
        key_added,
        packages=("cellxgene-ontology-guide",),
        label_col=label_col,
        name_key=name_key,
        ontology="CL",
        ontology_version=vocabulary().version,
        n_cells=int(adata.n_obs),
        n_mapped=mapped,
        n_unmapped=int(adata.n_obs) - mapped,
        # the mapping as two parallel lists, not a dict: label names hold '/', which h5ad and zarr read
        # as nested keys ("CD4+/CD25 T Reg"), and "T" beside "T/NK" cannot be written at all
        mapping_labels=[str(k) for k in ids],
        mapping_term_ids=[str(v) for v in ids.values()],
    )
    return adata if copy else None
