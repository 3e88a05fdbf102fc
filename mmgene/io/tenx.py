"""Read a Cell Ranger matrix folder (``matrix.mtx``, ``features.tsv`` or ``genes.tsv``, ``barcodes.tsv``),
each file gzipped or not.

scanpy 1.11's ``read_10x_mtx`` reads a Cell Ranger 3 folder only when all three files are gzipped and a
Cell Ranger 2 folder only when none is, so a folder someone unpacked (``gunzip *.gz``) is refused. This
reads every layout the same way, with scipy's Matrix Market reader (which opens ``.gz`` itself; scanpy's
``read_mtx`` calls it) and pandas for the two tables, and builds the AnnData exactly as
``read_10x_mtx(path, var_names="gene_symbols", gex_only=True)`` does: cells x genes, float32, symbols
as ``var_names`` (made unique), Ensembl ids in ``var['gene_ids']``, ``var['feature_types']`` for a
Cell Ranger 3 folder, which keeps its ``Gene Expression`` features only.

A matrix whose header declares ``integer`` values is parsed as ``real`` and checked: scipy's integer
parser stops at the first character that is not a digit, so ``2.5`` would read as 2 without a word.
Its parsers also stop at the end of a number and skip the rest of the line, so ``3abc`` reads as 3 and
``1e`` as 1: every entry line is checked on its way to scipy, and a value that is not a finite decimal
number (NaN and infinities included: a count is finite) is refused with its line.

:func:`check_h5_matrix` checks a Cell Ranger ``.h5`` before scanpy's ``read_10x_h5`` reads it.
"""

from __future__ import annotations

import csv
import gzip
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import pandas as pd

from mmgene.errors import InputFileError

#: the three files of a matrix folder; the first name found is used (features.tsv is Cell Ranger 3's genes.tsv)
_PARTS = {"matrix": ("matrix.mtx",), "features": ("features.tsv", "genes.tsv"), "barcodes": ("barcodes.tsv",)}
#: every integer up to this magnitude is exact in float64: a declared-integer value read as real is then unchanged
_EXACT_IN_FLOAT64 = 2**53
#: the largest magnitude scipy's integer parser (int64) reads; a value beyond it is not a count
_INT64_LIMIT = 2**63
#: values checked at a time, so the check's temporary arrays stay small beside the matrix
_CHECK_CHUNK = 1 << 22
#: bytes of a Matrix Market file checked at a time on their way to scipy (which asks for 1 KiB at a time)
_SCAN_BLOCK = 1 << 20
#: a value as a Matrix Market file writes one: a decimal number, optionally with a sign and an exponent
_NUMBER = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: the bytes of a block of counts
_DIGITS_AND_BLANKS = b"0123456789 \t\r\n"
#: whole lines of numbers, in RE2's syntax (whitespace as scipy skips it)
_NUMBER_LINES = rf"\A(?:[ \t\r]*(?:{_NUMBER.pattern.decode()}(?:[ \t\r]+{_NUMBER.pattern.decode()})*)?[ \t\r]*\n)*\z"


def is_mtx_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``matrix.mtx`` or ``matrix.mtx.gz``."""
    return path.is_dir() and any((path / name).is_file() for name in ("matrix.mtx", "matrix.mtx.gz"))


def _part(folder: Path, part: str) -> Path:
    """The one file of ``folder`` holding ``part``, plain or gzipped; refuses a folder with none or two."""
    candidates = [folder / f"{name}{gz}" for name in _PARTS[part] for gz in ("", ".gz")]
    found = [path for path in candidates if path.is_file()]
    names = " or ".join(f"{name}(.gz)" for name in _PARTS[part])
    if not found:
        raise InputFileError(
            f"the Cell Ranger matrix folder has no {names}", str(folder),
            f"add {names} (Cell Ranger writes it beside matrix.mtx)",
        )
    if len(found) > 1:
        raise InputFileError(
            f"the Cell Ranger matrix folder holds both {found[0].name} and {found[1].name}; "
            "mmgene cannot tell which to read",
            str(folder), "keep one of them (a gzipped copy and its unpacked file hold the same table)",
        )
    return found[0]


def check_h5_matrix(path: Path) -> None:
    """Check the index arrays of a Cell Ranger 3+ ``.h5`` before scanpy reads it: scanpy builds the
    matrix without checking its indices and slices out the gene expression features in compiled code,
    where an index out of range reads outside an array (garbage values, or a crash). A file that lacks
    an array, or whose barcodes or features disagree with its shape, is left to scanpy, which refuses it
    before slicing."""
    import h5py
    import numpy as np

    from mmgene.io.structure import check_indptr, check_on_disk_indices

    with h5py.File(path, "r") as handle:
        group = handle.get("matrix")
        features = group.get("features") if isinstance(group, h5py.Group) else None
        arrays = ("data", "indices", "indptr", "shape", "barcodes")
        if not isinstance(features, h5py.Group) or "name" not in features or any(a not in group for a in arrays):
            return
        n_genes, n_cells = (int(n) for n in group["shape"][:2])
        if len(group["barcodes"]) != n_cells or len(features["name"]) != n_genes:
            return
        view = SimpleNamespace(
            origin=str(path), source="matrix", obs_names=pd.Index(group["barcodes"][...].astype(str)),
            var_names=pd.Index(features["name"][...].astype(str)),
        )  # stored genes x cells by column: cells x genes by row (CSR)
        indptr = np.asarray(group["indptr"][...])
        check_indptr(indptr, group["indices"].shape[0], group["data"].shape[0], view, "csr")
        check_on_disk_indices(group["indices"], indptr, view, "csr")


def _table(path: Path) -> pd.DataFrame:
    """A headerless tab-separated table, every field a string as written (no ``NA`` -> NaN, no quoting)."""
    return pd.read_csv(
        path, sep="\t", header=None, dtype=str, keep_default_na=False, na_filter=False, quoting=csv.QUOTE_NONE
    )


def _only_counts(block: bytes) -> bool:
    """Whether ``block`` holds digits and whitespace only (whole numbers, as a file of counts does)."""
    return not block.translate(None, _DIGITS_AND_BLANKS)


def _all_numbers(block: bytes) -> bool:
    """Whether every line of ``block`` (whole lines, the last ending in a newline) holds only decimal numbers
    (:data:`_NUMBER`); ``False`` also for a comment line (:func:`_first_junk` then looks line by line).
    RE2 (pyarrow's: linear time, in C++) reads a megabyte in about 2 ms, where a Python loop over the lines
    would take longer than scipy's parse."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return bool(pc.match_substring_regex(pa.array([block], pa.binary()), _NUMBER_LINES)[0].as_py())


def _first_junk(block: bytes) -> tuple[int, bytes, bytes] | None:
    """``(line index in block, line, token)`` of the first token of ``block`` that is not a number; comment
    lines are scipy's to judge."""
    for index, line in enumerate(block.split(b"\n")):
        if line.lstrip().startswith(b"%"):
            continue
        for token in line.split():
            if not _NUMBER.fullmatch(token):
                return index, line, token
    return None


def _refuse_junk(path: Path, line_number: int, line: bytes, token: bytes) -> InputFileError:
    """The error for a value of ``path`` that is not a finite decimal number."""
    text, value = line.decode("ascii", "replace").strip()[:80], token.decode("ascii", "replace")[:40]
    place = f"line {line_number} of {path.name} ({text!r}) holds {value!r}"
    try:
        finite = math.isfinite(float(value))
    except ValueError:
        finite = True
    if not finite:
        return InputFileError(
            f"{place}, which is not a finite number; a count or expression value is finite", str(path),
            "repair the NaN or infinite values at their source and export the matrix again",
        )
    return InputFileError(
        f"{place}, which is not a number; scipy would read the number it starts with and drop the rest", str(path),
        "check that the file is complete and undamaged (export it again from its source); a value must be a "
        "decimal number such as 3, 2.5 or 1e-05",
    )


def _lines_before(path: Path, offset: int) -> int:
    """How many lines the first ``offset`` bytes of ``path`` hold (read again: only a refusal needs it)."""
    count = 0
    with _open_mtx(path) as handle:
        while offset > 0:
            chunk = handle.read(min(offset, _SCAN_BLOCK))
            if not chunk:
                break
            count, offset = count + chunk.count(b"\n"), offset - len(chunk)
    return count


class _CheckedMtx:
    """A Matrix Market file opened for scipy, each entry line checked (:func:`_only_counts`, then
    :func:`_all_numbers` once a block holds more than counts) before scipy
    reads it, with ``first_line`` (its header, ``integer`` perhaps swapped for ``real``: scipy then parses
    every value as a float, which shows a fraction instead of cutting it) in place of its own first line.
    The file itself is only read."""

    def __init__(self, handle: IO[bytes], path: Path, header: bytes, first_line: bytes) -> None:
        self._handle, self._path = handle, path
        comments = []
        line = handle.readline()
        while line.startswith(b"%"):  # comments sit between the header and the size line
            comments.append(line)
            line = handle.readline()
        self._buffer, self._position = first_line + b"".join(comments), 0
        self._offset = len(header) + sum(map(len, comments))  # bytes of the file before the next block checked
        self._size_line = line
        self._counts = True  # every block so far held counts only: try that cheaper check first

    def _next_block(self) -> bytes:
        """The next whole lines of the file, checked; an :class:`InputFileError` for one that is not numbers."""
        block = self._size_line + self._handle.read(_SCAN_BLOCK)
        self._size_line = b""
        if not block:
            return block
        if not block.endswith(b"\n"):
            block += self._handle.readline()
        checked = block if block.endswith(b"\n") else block + b"\n"  # the file's last line may lack its newline
        self._counts = self._counts and _only_counts(checked)
        if not self._counts and not _all_numbers(checked):
            junk = _first_junk(checked)
            if junk is not None:
                index, line, token = junk
                raise _refuse_junk(self._path, _lines_before(self._path, self._offset) + index + 1, line, token)
        self._offset += len(block)
        return block

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (the rest with -1): the first lines, then the checked blocks of the rest."""
        if size < 0:
            return b"".join(iter(lambda: self.read(_SCAN_BLOCK), b""))
        if self._position >= len(self._buffer):
            self._buffer, self._position = self._next_block(), 0
        out = self._buffer[self._position:self._position + size]
        self._position += len(out)
        return out


def _open_mtx(path: Path) -> IO[bytes]:
    """``path`` opened for reading bytes, unpacked when its name ends in ``.gz`` (as scipy decides)."""
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115


def _as_real(first_line: bytes) -> bytes | None:
    """``first_line`` with its field ``integer`` made ``real``; ``None`` when it is not a Matrix Market
    header declaring integer values (scipy reads such a file as it is, or refuses it)."""
    words = first_line.split()
    if len(words) < 5 or words[0].lower() != b"%%matrixmarket" or words[3].lower() != b"integer":
        return None
    return b" ".join([*words[:3], b"real", *words[4:]]) + b"\n"


def _first_bad(values: Any) -> int | None:
    """The index of the first value that is not an integer a count can hold (a fraction, NaN, or beyond
    int64); checked chunk by chunk."""
    import numpy as np

    for start in range(0, values.size, _CHECK_CHUNK):
        chunk = values[start:start + _CHECK_CHUNK]
        hits = np.flatnonzero((chunk != np.round(chunk)) | (np.abs(chunk) > _INT64_LIMIT))
        if hits.size:
            return start + int(hits[0])
    return None


def _refuse_value(path: Path, header: bytes, value: float, row: int, column: int) -> InputFileError:
    """The error for a value of a declared-integer file that is not an integer a count can hold."""
    place = f"{value!r} at row {row}, column {column} (1-based, as the file counts)"
    declared = header.decode("ascii", "replace").strip()
    if abs(value) > _INT64_LIMIT:
        return InputFileError(
            f"{path.name} holds {place}, too large for an integer count (at most {_INT64_LIMIT - 1}, a 64-bit integer)",
            str(path), "check that the file is complete and holds counts; export the counts again from their source",
        )
    return InputFileError(
        f"{path.name} declares integer values ({declared!r}) but holds {place}, which is not an integer; "
        "reading it as counts would change it",
        str(path),
        "if the values are meant to be fractional (normalised data), change 'integer' to 'real' in the file's "
        "first line (unpack a .gz file first); if they are counts, export them again from their source",
    )


def _check_integers(path: Path, header: bytes, matrix: Any) -> bool:
    """Refuse a value of ``matrix`` (read as real from a file declaring integer values) that is not an
    integer; ``True`` when every value is exact in float64 (else the caller reads the file as integers)."""
    import numpy as np

    sparse = hasattr(matrix, "row")
    values = matrix.data if sparse else np.asarray(matrix).ravel(order="F")  # an array file lists columns
    bad = _first_bad(values)
    if bad is not None:
        n_rows = matrix.shape[0]
        row, column = (int(matrix.row[bad]), int(matrix.col[bad])) if sparse else (bad % n_rows, bad // n_rows)
        raise _refuse_value(path, header, float(values[bad]), row + 1, column + 1)
    return not values.size or float(np.abs(values).max()) <= _EXACT_IN_FLOAT64


def _read_matrix(path: Path) -> Any:
    """The Matrix Market file at ``path`` as scanpy's ``read_mtx`` reads it (a float32 CSR AnnData, as
    the file lays it out); a value that is not a finite number is an :class:`InputFileError`, and so is one
    that is not an integer in a file declaring integer values (parsed once, as real)."""
    import anndata as ad
    import scanpy as sc
    import scipy.io
    import scipy.sparse

    with _open_mtx(path) as handle:
        header = handle.readline()
        first_line = _as_real(header)
        matrix = scipy.io.mmread(_CheckedMtx(handle, path, header, first_line or header))
    if first_line is not None and not _check_integers(path, header, matrix):  # beyond 2**53, float64 may round a count
        return sc.read_mtx(path)
    return ad.AnnData(scipy.sparse.csr_matrix(matrix.astype("float32")))  # as scanpy's read_mtx builds it


def read_mtx_folder(folder: Path) -> Any:
    """A Cell Ranger 2 or 3 matrix folder, each file gzipped or not, as scanpy's ``read_10x_mtx`` reads it.

    A table whose length does not match the matrix is an :class:`InputFileError` naming both files;
    a file scanpy or pandas cannot parse raises the library's error (:func:`mmgene.io.read` turns it
    into an :class:`InputFileError`).
    """
    import anndata as ad

    matrix_file, features_file, barcodes_file = (_part(folder, part) for part in ("matrix", "features", "barcodes"))
    adata = _read_matrix(matrix_file).T  # Matrix Market holds genes x cells
    genes, barcodes = _table(features_file), _table(barcodes_file)
    tables = ((genes, features_file, "genes", adata.n_vars), (barcodes, barcodes_file, "cells", adata.n_obs))
    for table, file, axis, n in tables:
        if len(table) != n:
            raise InputFileError(
                f"not a readable Cell Ranger matrix folder: {file.name} has {len(table)} rows "
                f"but {matrix_file.name} has {n} {axis}",
                str(folder), "check that the three files come from the same Cell Ranger run and are complete",
            )
    if genes.shape[1] < 2:
        raise InputFileError(
            f"not a readable Cell Ranger matrix folder: {features_file.name} has {genes.shape[1]} column, "
            "not a gene id and a symbol",
            str(features_file), "pass the file Cell Ranger wrote (gene id, gene symbol[, feature type] per line)",
        )
    adata.var_names = ad.utils.make_index_unique(pd.Index(genes[1].to_numpy()))
    adata.var["gene_ids"] = genes[0].to_numpy()
    adata.obs_names = barcodes[0].to_numpy()
    if features_file.name.startswith("genes.tsv") or genes.shape[1] < 3:  # Cell Ranger 2: gene expression only
        return adata
    adata.var["feature_types"] = genes[2].to_numpy()
    return adata[:, (adata.var["feature_types"] == "Gene Expression").to_numpy()].copy()
