"""Where a corpus's datasets come from: a manifest CSV, files and folders, or Census queries.

A manifest (``corpus.csv``: UTF-8, comma-separated; tab or semicolon also read) has one row per dataset
and these columns (a header row is required, each name once):

============== ======== ===================================================================
column         required meaning
============== ======== ===================================================================
path           yes      an ``.h5ad``/``.zarr`` file, relative to the manifest's folder
dataset        yes      a unique dataset id
label_col      yes      the ``obs`` column holding this dataset's cell-type labels
species        yes      ``human`` or ``mouse`` (``Homo sapiens``/``Mus musculus`` also read)
ontology_col   no       the ``obs`` column of Cell Ontology ids (blank: none)
tissue         no       free text (blank: none)
weight         no       the dataset's share of training rows against the others' (blank: 1)
============== ======== ===================================================================

Training gives every dataset the same number of rows (:mod:`mmgene.align.balance`); ``weight`` shares
them out unevenly instead: a dataset of weight 2 gets twice the rows of one of weight 1, the rows of an
epoch staying the same in all, e.g. to lean less on a dataset whose labels came from correlation with
sorted bulk profiles rather than from its cells' own clusters. It must be a positive number; it changes
only how often a dataset's cells are trained on, not which cells the consensus judges.

A row with a non-blank ``obs_value_filter`` (optional column) is a Census query instead of a file:
``path`` is then ``census`` (CELLxGENE Census, stable release), ``census:VERSION``, or a local SOMA
experiment folder; the optional columns ``max_cells_per_dataset``, ``max_cells_per_type``,
``max_cells`` and ``seed`` cap it (see :class:`mmgene.corpus.census.CensusQuery`; on a file's row they
are refused). Any other column is refused, so a misspelt column name is not silently ignored.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from mmgene.corpus.census import ORGANISMS, CensusQuery
from mmgene.errors import CorpusError, InputFileError, MMGeneError, ParameterError, _preview
from mmgene.text.origin import species_word

REQUIRED_COLUMNS = ("path", "dataset", "label_col", "species")
OPTIONAL_COLUMNS = ("ontology_col", "tissue", "weight")
CENSUS_COLUMNS = ("obs_value_filter", "max_cells_per_dataset", "max_cells_per_type", "max_cells", "seed")
#: the species a corpus can hold (genes are matched to human symbols)
SPECIES = ("human", "mouse")
#: file suffixes read from a folder.
DATA_SUFFIXES = (".h5ad", ".zarr")
#: how to part two files of one id when ids are file names (no manifest)
FILE_ID_FIX = (
    "rename one of the files (a dataset's id is its file name without suffix), or list the files in a manifest CSV "
    "that gives each its own id"
)


def species_name(value: str, where: str) -> str:
    """``'human'`` or ``'mouse'`` for any accepted spelling; a :class:`CorpusError` otherwise."""
    name = species_word(value)
    if name not in SPECIES:
        raise CorpusError(f"unknown species {value!r}", where, "use human or mouse (or Homo sapiens / Mus musculus)")
    return name


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a corpus: a file (``path``) or a Census query (``census``), and how to read it."""

    dataset: str
    label_col: str
    species: str = "human"
    path: Path | None = None
    census: CensusQuery | None = None
    ontology_col: str | None = None
    tissue: str = ""
    #: the dataset's share of training rows against the others' (1: the same as every other)
    weight: float = 1.0
    #: where the spec was written (e.g. ``line 3 of corpus.csv``), for error messages.
    where: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = self.where or f"dataset {self.dataset!r}"
        if (self.path is None) == (self.census is None):
            raise CorpusError(
                "a dataset needs exactly one of a file path and a Census query",
                where,
                "pass path=... or census=CensusQuery(...)",
            )
        if not str(self.dataset).strip() or not str(self.label_col).strip():
            raise CorpusError("a dataset needs a dataset id and a label column", where, "fill in dataset and label_col")
        object.__setattr__(self, "species", species_name(self.species, where))
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "ontology_col", self.ontology_col or None)
        object.__setattr__(self, "weight", dataset_weight(self.weight, where))

    @property
    def source(self) -> str:
        """The file, or the Census query, in words."""
        return str(self.path) if self.path is not None else self.census.describe()  # type: ignore[union-attr]

    @property
    def location(self) -> str:
        """Where to point a user who must fix this dataset."""
        return self.where or f"dataset {self.dataset!r} ({self.source})"


def dataset_weight(value: object, where: str) -> float:
    """``value`` as a dataset's weight: a finite number above 0 (a bool, text or NaN is a :class:`CorpusError`)."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or number <= 0:
        raise CorpusError(
            f"a dataset's weight must be a number above 0, got {value!r}",
            where,
            "write a positive number such as 0.5, 1 or 2 (blank in a manifest: 1); leave a dataset out by deleting its row",
        )
    return float(number)


def _weight_field(row: pd.Series, where: str) -> float:
    """The manifest row's ``weight`` (1 when blank), refused in the manifest's terms."""
    text = str(row.get("weight", "")).strip()
    if not text:
        return 1.0
    try:
        value: object = float(text)
    except ValueError:
        value = text
    return dataset_weight(value, f"{where}, column 'weight'")


def located(exc: MMGeneError, context: str) -> MMGeneError:
    """A copy of ``exc`` (same class and attributes) whose *where* starts with ``context``, so an error
    raised while reading one dataset names the manifest line as well as the file."""
    new = type(exc).__new__(type(exc))
    new.__dict__.update(exc.__dict__)
    MMGeneError.__init__(new, exc.what, f"{context}; {exc.where}" if exc.where else context, exc.fix)
    return new


def _int_field(row: pd.Series, column: str, where: str, minimum: int) -> int | None:
    """A cap or seed column's whole number (``None`` when blank), at least ``minimum``; refused in the
    manifest's own terms (its column and line), not in CensusQuery's keyword arguments."""
    text = str(row.get(column, "")).strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise CorpusError(
            f"{column} must be a whole number of at least {minimum}, got {text!r}",
            f"{where}, column {column!r}",
            f"write an integer >= {minimum} in {column}, or leave it blank",
        )
    return value


def _census_query(row: pd.Series, base: Path, species: str, where: str) -> CensusQuery:
    path = str(row["path"]).strip()
    version = path.split(":", 1)[1].strip() if path.startswith("census:") else "stable"
    uri = None if path == "census" or path.startswith("census:") else str(base / path)
    caps = {c: _int_field(row, c, where, 1) for c in ("max_cells_per_dataset", "max_cells_per_type", "max_cells")}
    seed = _int_field(row, "seed", where, 0)
    try:
        return CensusQuery(
            obs_value_filter=str(row["obs_value_filter"]).strip(),
            organism=ORGANISMS[species],
            uri=uri,
            census_version=version,
            seed=0 if seed is None else seed,
            **caps,
        )
    except MMGeneError as exc:
        raise located(exc, where) from exc


def read_manifest(manifest: str | os.PathLike[str]) -> list[DatasetSpec]:
    """The datasets a manifest CSV lists (format in the module docstring), paths resolved against its
    folder. Every file must exist; errors name the manifest line."""
    from mmgene.io.tables import read_text_table

    manifest = Path(manifest)
    table = read_text_table(
        manifest, what="manifest", error=CorpusError, missing_fix="pass a CSV with columns " + ", ".join(REQUIRED_COLUMNS),
        unreadable_fix="save it as UTF-8 text, comma-separated, with a header row",
        skipinitialspace=True,
        sep=None,
    )
    rows = _csv_rows(manifest)
    table = _named_columns(table, rows[0], manifest)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise CorpusError(
            f"the manifest has no column {', '.join(map(repr, missing))} (it has {_preview(table.columns, 10)})",
            str(manifest),
            f"add a header row with the columns {', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS + CENSUS_COLUMNS)})",
        )
    unknown = [c for c in table.columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS + CENSUS_COLUMNS]
    if unknown:
        raise CorpusError(
            f"the manifest has unknown column {', '.join(map(repr, unknown))}",
            str(manifest),
            f"use only {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS + CENSUS_COLUMNS)} (check the spelling)",
        )
    # the line each data row starts on (pandas skips blank lines); by position if the two readings disagree
    lines = [start for start, _ in rows[1:]] if len(rows) == len(table) + 1 else [i + 2 for i in range(len(table))]
    table, lines = _without_blank_rows(table, lines)
    if table.empty:
        raise CorpusError("the manifest lists no dataset", str(manifest), "add one row per dataset below the header")
    base = manifest.parent
    specs = []
    for i, row in table.iterrows():  # one row per dataset: a handful, not per cell
        where = f"line {lines[int(i)]} of {manifest}"
        row = row.map(lambda v: str(v).strip())
        blank = [c for c in REQUIRED_COLUMNS if not row[c]]
        if blank:
            raise CorpusError(
                f"{', '.join(blank)} is blank",
                where,
                f"fill in {', '.join(blank)} for dataset {row['dataset'] or '(no id)'!r}",
            )
        species = species_name(row["species"], f"{where}, column 'species'")
        census = _census_query(row, base, species, where) if row.get("obs_value_filter", "") else None
        caps = [c for c in CENSUS_COLUMNS[1:] if row.get(c, "")]
        if census is None and caps:
            raise CorpusError(
                f"{', '.join(caps)} {'is' if len(caps) == 1 else 'are'} set for dataset {row['dataset']!r}, which has no "
                "obs_value_filter: caps and seeds apply to Census queries only, not to a file",
                where,
                f"blank out {', '.join(caps)}, or fill in obs_value_filter to read the dataset as a Census query",
            )
        path = None
        if census is None:
            path = base / row["path"]
            if not path.exists():
                raise InputFileError(
                    f"file not found: {path}",
                    f"{where} (dataset {row['dataset']!r})",
                    "fix the path; paths are relative to the manifest's folder",
                )
        specs.append(
            DatasetSpec(
                dataset=row["dataset"],
                label_col=row["label_col"],
                species=species,
                path=path,
                census=census,
                ontology_col=row.get("ontology_col", "") or None,
                tissue=row.get("tissue", ""),
                weight=_weight_field(row, where),
                where=where,
            )
        )
    check_unique(specs)
    return specs


def _csv_rows(manifest: Path) -> list[tuple[int, list[str]]]:
    """The manifest's non-blank rows (the header first) with the line each starts on, split on the
    separator its header line holds most of, as :func:`~mmgene.io.tables.read_text_table` reads it."""
    import csv
    import io

    from mmgene.io.tables import pick_separator

    text = manifest.read_text(encoding="utf-8").lstrip("\ufeff")
    header = next(line for line in text.splitlines() if line.strip())
    reader = csv.reader(io.StringIO(text), delimiter=pick_separator(header), skipinitialspace=True)
    rows, line = [], 1
    for row in reader:
        start, line = line, reader.line_num + 1  # a quoted field may span lines: the row starts on ``start``
        if len(row) > 1 or "".join(row).strip():  # pandas skips blank lines, the header's too
            rows.append((start, row))
    return rows


def _without_blank_rows(table: pd.DataFrame, lines: list[int]) -> tuple[pd.DataFrame, list[int]]:
    """``table`` and the line of each row without the rows whose every field is blank: the ``,,,,,``
    a spreadsheet saves for an empty row holds no dataset, as a blank line holds none."""
    filled = (table.apply(lambda column: column.str.strip()) != "").any(axis=1).to_numpy()
    return table[filled].reset_index(drop=True), [line for line, keep in zip(lines, filled) if keep]


def _named_columns(table: pd.DataFrame, header: tuple[int, list[str]], manifest: Path) -> pd.DataFrame:
    """``table`` without the columns a trailing separator adds (no name, no value); a name used twice or
    a column with values but no name is a :class:`CorpusError` (pandas would rename them ``tissue.1``
    and ``Unnamed: 6``)."""
    line, names = header[0], [n.strip() for n in header[1]]
    where = f"line {line} of {manifest} (the header row)"
    repeated = list(dict.fromkeys(n for n in names if n and names.count(n) > 1))
    if repeated:
        what = f"the manifest names column {', '.join(map(repr, repeated))} more than once"
        raise CorpusError(what, where, "keep one column of each name")
    if len(names) != len(table.columns):  # cannot match them up: pandas' own names stand
        return table
    unnamed = [i for i, n in enumerate(names) if not n]
    filled = [i + 1 for i in unnamed if (table.iloc[:, i].str.strip() != "").any()]
    if filled:
        raise CorpusError(
            f"column {', '.join(map(str, filled))} of the manifest holds values but has no name",
            where,
            f"name it in the header row ({', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}) or delete its values",
        )
    return table.drop(columns=table.columns[unnamed])


def check_unique(specs: Sequence[DatasetSpec], id_fix: str = "give every dataset its own id") -> None:
    """A :class:`CorpusError` when two rows read the same file or run the same Census query (leaving one
    out would then still train on its cells), or two datasets share an id (every cell is traced back by
    it; ``id_fix`` says how to change one)."""
    seen: dict[str, DatasetSpec] = {}
    sources: dict[object, DatasetSpec] = {}
    for spec in specs:
        same = sources.setdefault(_source_key(spec), spec)
        if same is not spec:
            what = f"the same file {Path(spec.path).resolve()}" if spec.path is not None else "the same Census query"
            named = (
                f"datasets {same.dataset!r} and {spec.dataset!r} are"
                if same.dataset != spec.dataset
                else f"dataset {spec.dataset!r} is listed twice:"
            )
            raise CorpusError(
                f"{named} {what}",
                f"{same.location} and {spec.location}",
                "list each file once" if spec.path is not None else "list each query once",
            )
        if spec.dataset in seen:
            where = f"{seen[spec.dataset].location} and {spec.location}"
            raise CorpusError(f"dataset id {spec.dataset!r} is used twice", where, id_fix)
        seen[spec.dataset] = spec


def _source_key(spec: DatasetSpec) -> object:
    """What a dataset reads, comparable across specs: its resolved file, or its query with a local
    experiment's folder resolved (``exp`` and ``./exp`` are one experiment)."""
    if spec.path is not None:
        return Path(spec.path).resolve()
    query = spec.census
    if query is not None and query.uri is not None and "://" not in query.uri:
        query = replace(query, uri=str(Path(query.uri).resolve()))
    return query


def _data_files(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in DATA_SUFFIXES and not p.name.startswith("."))
    if not found:
        raise CorpusError(
            f"no .h5ad or .zarr file in the folder {folder}",
            str(folder),
            "pass a folder that holds AnnData files, or the files themselves",
        )
    return found


def specs_from_paths(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    label_col: str,
    ontology_col: str | None = None,
    species: str = "human",
    tissue: str = "",
) -> list[DatasetSpec]:
    """One dataset per file; a folder (not a ``.zarr`` store) stands for its ``.h5ad``/``.zarr`` files,
    sorted by name. Dataset ids are the file names without suffix; every file shares the columns,
    species and tissue given."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ParameterError("no file or folder given", "argument paths", "pass .h5ad/.zarr files or a folder of them")
    files: list[Path] = []
    for item in map(Path, items):
        if not item.exists():
            raise InputFileError(
                f"file not found: {item}", str(item), "check the path (relative paths start from the current folder)"
            )
        files.extend(_data_files(item) if item.is_dir() and item.suffix.lower() != ".zarr" else [item])
    specs = [
        DatasetSpec(
            dataset=f.stem,
            label_col=label_col,
            species=species,
            path=f,
            ontology_col=ontology_col,
            tissue=tissue,
            where=str(f),
        )
        for f in files
    ]
    check_unique(specs, FILE_ID_FIX)
    return specs


def specs_from(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Sequence[DatasetSpec],
    *,
    label_col: str | None = None,
    ontology_col: str | None = None,
    species: str | None = None,
    tissue: str | None = None,
) -> list[DatasetSpec]:
    """Specs from what a user names: one ``.csv`` manifest, ``.h5ad``/``.zarr`` files and folders (then
    ``label_col`` is required; species defaults to human), or specs already built (returned as they
    are). The keyword arguments apply to files only: a manifest names them per dataset."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if items and all(isinstance(s, DatasetSpec) for s in items):
        check_unique(items)  # type: ignore[arg-type]
        return [replace(s) for s in items]  # type: ignore[misc]
    paths = [Path(s) for s in items]  # type: ignore[arg-type]
    manifests = [p for p in paths if p.suffix.lower() in (".csv", ".tsv")]
    if manifests:
        if len(paths) > 1:
            raise ParameterError(
                "a manifest cannot be mixed with other sources",
                ", ".join(map(str, paths)),
                "pass one manifest CSV, or only data files and folders",
            )
        given = [
            k
            for k, v in (
                ("label_col", label_col),
                ("ontology_col", ontology_col),
                ("species", species),
                ("tissue", tissue),
            )
            if v is not None
        ]
        if given:
            raise ParameterError(
                f"{', '.join(given)} apply to data files, not to a manifest",
                str(manifests[0]),
                "set them per dataset in the manifest's columns of the same names",
            )
        return read_manifest(manifests[0])
    if label_col is None:
        raise ParameterError(
            "data files need a label column",
            ", ".join(map(str, paths)) or "no sources",
            "pass --label-col (label_col=) naming the obs column of cell types",
        )
    return specs_from_paths(
        paths, label_col=label_col, ontology_col=ontology_col, species=species or "human", tissue=tissue or ""
    )
