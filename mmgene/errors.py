"""Errors mmgene raises for bad input.

Every error says *what* is wrong, *where* (file, column, gene, cell) and *what to do*. The CLI
prints the message as one line and exits with status 2; Python callers can catch
:class:`MMGeneError` or one of its subclasses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral


def is_whole_number(value: object, minimum: int = 0) -> bool:
    """True for an integer (Python or numpy, not a bool) of at least ``minimum``: the check behind every
    count-like argument (chunk sizes, batch sizes, top-k), each of which says its own error."""
    return isinstance(value, Integral) and not isinstance(value, bool) and bool(value >= minimum)


def cause(exc: BaseException, limit: int = 200) -> str:
    """``'TypeName: first line of the message'`` (at most ``limit`` characters): the library error
    behind an :class:`MMGeneError`, short enough for a one-line message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__


def _preview(items: Iterable[object], limit: int = 5) -> str:
    """Show at most ``limit`` items, then how many more there are."""
    items = list(items)
    shown = ", ".join(repr(str(i)) for i in items[:limit])
    more = len(items) - limit
    return shown + (f" and {more} more" if more > 0 else "")


class MMGeneError(Exception):
    """Base class: a problem with the user's input or setup, explained for a human."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        self.what, self.where, self.fix = what, where, fix
        parts = [what.rstrip(".") + "."]
        if where:
            parts.append(f"Where: {where}.")
        if fix:
            parts.append(f"What to do: {fix.rstrip('.')}.")
        super().__init__(" ".join(parts))


class InputFileError(MMGeneError):
    """A file is missing, unreadable or not an AnnData."""


class DataError(MMGeneError):
    """The expression matrix has values mmgene cannot use."""


class EmptyMatrixError(DataError):
    """The matrix has no cells, no genes or no non-zero value."""


class NonFiniteError(DataError):
    """The matrix contains NaN or infinite values."""


class NegativeValuesError(DataError):
    """Counts or expression values are negative."""


class NotCountsError(DataError):
    """Raw integer counts are required but the matrix holds other values."""


class GeneIdError(MMGeneError):
    """Gene identifiers are duplicated, missing or unrecognisable."""


class DuplicateGenesError(GeneIdError):
    """The same gene name appears more than once."""


class NoGeneIdsError(GeneIdError):
    """No column of the gene table holds recognisable symbols or Ensembl ids."""


class MissingColumnError(MMGeneError, KeyError):
    """A requested obs/var column or obsm key does not exist (a ``KeyError``, as a missing key of a
    DataFrame or mapping is, so ``except KeyError`` catches it)."""

    def __init__(self, column: str, table: str, available: Sequence[str], source: str = "") -> None:
        where = f"{table} of {source}" if source else table
        super().__init__(
            f"column {column!r} does not exist in {table}",
            where,
            f"choose one of: {_preview(available, 12)}" if len(available) else f"{table} has no columns",
        )
        self.column = column

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument (quoted); the message prints as written
        return Exception.__str__(self)


class UnknownCellError(MissingColumnError):
    """A cell id that a table or index does not hold (a :class:`MissingColumnError`, so a ``KeyError``)."""

    def __init__(self, cell: str, table: str, known: Sequence[str]) -> None:
        MMGeneError.__init__(
            self, f"cell {cell!r} is not among {table}", table, f"pass cell ids it holds, e.g. {_preview(known, 5)}"
        )
        self.column = cell


class ParameterError(MMGeneError, ValueError):
    """An argument has a value mmgene cannot use (a ``ValueError``, so ``except ValueError`` catches it)."""


class DependencyError(MMGeneError):
    """An optional dependency needed for this feature is not installed."""


class RemoteError(MMGeneError):
    """A remote service (NCBI, OpenAI, the Hub, a share server) failed after retries."""


class IntegrityError(MMGeneError):
    """A downloaded or stored file does not match its recorded checksum."""


class ModelError(MMGeneError):
    """A model checkpoint is missing, unreadable, of the wrong kind or does not match its vocabulary."""


class OutputError(MMGeneError):
    """An output would replace something mmgene did not write, or cannot be written where asked."""


__all__ = [
    "cause",
    "MMGeneError",
    "InputFileError",
    "DataError",
    "EmptyMatrixError",
    "NonFiniteError",
    "NegativeValuesError",
    "NotCountsError",
    "GeneIdError",
    "DuplicateGenesError",
    "NoGeneIdsError",
    "MissingColumnError",
    "ParameterError",
    "DependencyError",
    "RemoteError",
    "IntegrityError",
    "ModelError",
    "OutputError",
]


class MetadataError(InputFileError):
    """A metadata file (an index's meta.json) lacks a field, or a field has the wrong type or range."""


__all__ += ["MetadataError"]


class UnsafeModelError(ModelError):
    """A model folder names code mmgene does not run: a class outside its allow-list, or remote code."""


__all__ += ["UnsafeModelError"]


class MatrixStructureError(DataError):
    """A sparse matrix's index arrays (indptr, indices) do not describe a valid matrix: the file is corrupt."""


class LabelError(DataError, ParameterError):
    """A label column leaves too few classes once cells without a label are dropped (a problem of the
    data and of the column chosen: callers catching either class see it)."""


__all__ += ["MatrixStructureError", "LabelError"]


class CorpusError(InputFileError):
    """A corpus manifest or source is malformed: a missing or unknown column, a blank field, an unknown
    species, a duplicate dataset id, an orthology table or Census query mmgene cannot use."""


__all__ += ["CorpusError"]


class MappingError(ParameterError):
    """A label mapping table (the reviewable CSV of ``mmgene labels harmonise``) is malformed, names an
    unknown or obsolete Cell Ontology id, or lacks a label the data has."""


__all__ += ["MappingError"]
