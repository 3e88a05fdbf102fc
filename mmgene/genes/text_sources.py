"""The interface every gene text source implements (NCBI E-utilities, an offline table, a user file).

Every source answers ``texts(symbols)`` with ``{SYMBOL: text}`` (upper-cased symbols, genes without text
left out: GenePT gives such genes no vector rather than an invented one) and says what it is
(``name``, ``version``) so gene vectors can record where their text came from. The sources live in
their own modules; :func:`mmgene.genes.sources.gene_text_source` picks one by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

from mmgene.errors import ParameterError


@dataclass(frozen=True)
class GeneRecord:
    """What a source knows about one gene; :meth:`text` renders it the way GenePT's text reads."""

    symbol: str
    name: str = ""
    aliases: str = ""
    summary: str = ""
    designations: str = ""
    gene_id: str = ""
    location: str = ""

    def text(self) -> str:
        """``"Gene symbol TP53. Full name: tumor protein p53. Also known as: ... Summary: ..."``."""
        parts = [f"Gene symbol {self.symbol}."]
        if self.name:
            parts.append(f"Full name: {self.name}.")
        if self.aliases:
            parts.append(f"Also known as: {self.aliases}.")
        if self.designations:
            parts.append(f"Other designations: {self.designations.replace('|', '; ')}.")
        if self.location:
            parts.append(f"Location: {self.location}.")
        if self.summary:
            parts.append(f"Summary: {self.summary}")
        return " ".join(parts)


def normalise_symbols(symbols: Iterable[str], where: str = "the gene list") -> list[str]:
    """Upper-cased, stripped, unique symbols in first-seen order; raise on non-strings."""
    out: dict[str, None] = {}
    for i, s in enumerate(symbols):
        if not isinstance(s, str):
            raise ParameterError(f"gene symbol #{i} is {type(s).__name__} {s!r}, not a string", where, "pass gene symbols as strings")
        s = s.strip().upper()
        if s:
            out.setdefault(s, None)
    return list(out)


class GeneTextSource(ABC):
    """A place gene text comes from."""

    #: short name recorded in gene vectors' metadata and ``uns['mmgene']``
    name: str = ""
    #: version or date of the underlying data
    version: str = ""

    @abstractmethod
    def texts(self, symbols: Iterable[str] | None = None) -> dict[str, str]:
        """``{SYMBOL: text}`` for the requested symbols that have text (all known genes when ``None``)."""

    def describe(self) -> dict[str, str]:
        return {"text_source": self.name, "text_source_version": self.version}
