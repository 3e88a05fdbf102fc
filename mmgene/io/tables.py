"""Small text tables users write by hand (manifests, orthology tables, label mappings), read as text."""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

from mmgene.errors import InputFileError, MMGeneError, _preview, cause

#: the separators ``sep=None`` chooses among, with their names for messages.
SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon"}


def pick_separator(header: str) -> str:
    """The separator of a table whose header line is ``header``: the one of :data:`SEPARATORS` it holds
    most of (the first listed on a tie), a comma when it holds none (a table of one column)."""
    return max(SEPARATORS, key=header.count)


#: first characters that make a spreadsheet read a cell as a formula ("CSV injection": a label such as
#: ``=HYPERLINK(...)`` from someone else's data would run when a reviewer opens the table)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_spreadsheet_text(value: Any) -> Any:
    """``value`` as a spreadsheet shows it as text: a string that starts like a formula gets a leading
    ``'`` (which spreadsheets hide and do not save back); anything else is returned as it is."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def from_spreadsheet_text(value: Any) -> Any:
    """Undo :func:`as_spreadsheet_text` for a table read back without a spreadsheet in between."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def read_text_table(
    path: str | os.PathLike[str], *, what: str, error: type[MMGeneError], missing_fix: str, unreadable_fix: str, **read_options: Any
) -> Any:
    """``path`` as a DataFrame of strings (no NaN; header names stripped).

    A missing file is an :class:`InputFileError`; an empty file, a file pandas cannot parse and a row
    with more fields than the header (pandas would silently shift such a row's fields, make the
    first ones the index, or, with a separator of several characters, drop the last ones) are
    ``error`` naming ``what`` (and, for a one-character separator, the row's line); extra fields
    that are blank (a trailing separator) are ignored. ``read_options`` go to :func:`pandas.read_csv`
    (separator, encoding); ``sep=None`` picks comma, tab or semicolon from the header line
    (:func:`pick_separator`), not from pandas' sniffer, which takes a letter for the separator of a
    one-column table.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{what} not found: {path}", str(path), missing_fix)
    try:
        text = path.read_text(encoding=read_options.get("encoding") or "utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read the {what} ({cause(exc)})", str(path), unreadable_fix) from exc
    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if not lines:
        raise error(f"the {what} is empty", str(path), unreadable_fix)
    if "sep" in read_options and read_options["sep"] is None:
        read_options["sep"] = pick_separator(lines[0])
    try:
        width = _check_rows(text, path, what, error, read_options)
    except csv.Error as exc:
        raise error(f"cannot read the {what} ({cause(exc)})", str(path), unreadable_fix) from exc
    if width is not None:
        read_options["usecols"] = range(width)  # blank fields past the header's: not columns
    try:
        with warnings.catch_warnings():  # a separator of several characters: pandas only warns, and drops the fields
            warnings.filterwarnings("error", "Length of header or names does not match", pd.errors.ParserWarning)
            table = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False, **read_options)
    except pd.errors.ParserWarning:
        header = [h.strip() for h in re.split(read_options.get("sep", ","), lines[0].strip())]
        raise error(
            f"a row of the {what} has more fields than its header has names ({_preview(header, 10)}), so its last "
            "fields would be dropped", str(path), f"give every row the header's {len(header)} fields",
        ) from None
    except (ValueError, UnicodeDecodeError, csv.Error, pd.errors.ParserError) as exc:
        raise error(f"cannot read the {what} ({cause(exc)})", str(path), unreadable_fix) from exc
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _check_rows(text: str, path: Path, what: str, error: type[MMGeneError], read_options: dict[str, Any]) -> int | None:
    """Refuse a row with more non-blank fields than the header has names, naming its line; return the
    header's width when some row has blank fields past it (else ``None``)."""
    sep = read_options.get("sep", ",")
    if not isinstance(sep, str) or len(sep) != 1:  # a regular expression: pandas' own checks only
        return None
    skip = bool(read_options.get("skipinitialspace", False))
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=sep, skipinitialspace=skip)
    header: list[str] | None = None
    longer = False
    line = 1
    for row in reader:
        start, line = line, reader.line_num + 1  # a quoted field may span lines: the row starts on ``start``
        if not row or (header is None and not "".join(row).strip()):  # blank lines, as pandas skips them
            continue
        if header is None:
            header = row
            continue
        if len(row) > len(header):
            extra = [f for f in row[len(header):] if f.strip()]
            if extra:
                name = SEPARATORS.get(sep, repr(sep))
                raise error(
                    f"a row of the {what} has {len(row)} fields but its header has {len(header)} "
                    f"({_preview([h.strip() for h in header], 10)}); the extra fields are {_preview(extra)}",
                    f"line {start} of {path}",
                    f"give every row the header's {len(header)} fields ({name}-separated; "
                    f"put a field that contains a {name} in double quotes)",
                )
            longer = True
    return len(header) if longer and header is not None else None
