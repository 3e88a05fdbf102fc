"""Gene text from a user file: JSON ``{symbol: text}`` (GenePT's ``NCBI_summary_of_genes.json``) or TSV.

TSV files hold two columns, symbol and text, with or without a header row (a first row whose first
field is ``symbol``, ``gene``, ``gene_symbol`` or ``gene_name`` is taken as the header).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from mmgene.errors import InputFileError
from mmgene.genes.text_sources import GeneTextSource, normalise_symbols

HEADER_NAMES = {"symbol", "gene", "gene_symbol", "gene_name", "genes"}


class _Object(list):
    """A JSON object read as its ``(key, value)`` pairs, so that a repeated key is seen (a dict keeps the last)."""


def _from_json(path: Path) -> list[tuple[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_Object)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"not valid JSON ({exc})", str(path), "write a JSON object {symbol: text}") from exc
    if not isinstance(data, _Object):
        kind = "list" if isinstance(data, list) else type(data).__name__
        raise InputFileError(f"the JSON holds a {kind}, not an object", str(path), "write a JSON object {symbol: text}")
    out: list[tuple[str, str]] = []
    for key, value in data:
        if isinstance(value, list) and not isinstance(value, _Object) and all(isinstance(v, str) for v in value):
            value = " ".join(value)
        if value is None:
            continue
        if not isinstance(value, str):
            kind = "dict" if isinstance(value, _Object) else type(value).__name__
            raise InputFileError(
                f"the text of gene {key!r} is a {kind}, not a string", str(path), "give every gene a string (or leave the gene out)"
            )
        out.append((str(key), value))
    return out


def _from_tsv(path: Path) -> list[tuple[str, str]]:
    try:  # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first symbol
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InputFileError(f"not UTF-8 text ({exc})", str(path), "save the file as UTF-8") from exc
    out: list[tuple[str, str]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t", 1)
        if len(fields) != 2:
            raise InputFileError(f"line {n} has no tab between symbol and text", f"{path}, line {n}", "write one 'symbol<TAB>text' per line")
        if n == 1 and fields[0].strip().lower() in HEADER_NAMES:
            continue
        out.append((fields[0], fields[1]))
    return out


class UserGeneText(GeneTextSource):
    """Gene text read from ``path`` (``.json`` or tab-separated ``.tsv``/``.txt``).

    Symbols are matched case-insensitively; empty texts count as no text. Two spellings of one
    symbol with different texts are an error.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError(f"gene text file not found: {self.path}", str(self.path), "pass a JSON {symbol: text} or TSV symbol<TAB>text file")
        raw = _from_json(self.path) if self.path.suffix.lower() == ".json" else _from_tsv(self.path)
        self._texts: dict[str, str] = {}
        for sym, text in raw:
            key, text = sym.strip().upper(), text.strip()
            if not key or not text:
                continue
            if key in self._texts and self._texts[key] != text:
                raise InputFileError(
                    f"gene {key!r} appears twice with different texts", str(self.path), "keep one text per gene symbol"
                )
            self._texts[key] = text
        if not self._texts:
            raise InputFileError("the file holds no gene with text", str(self.path), "write at least one symbol with a non-empty text")
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
        self.name = f"file:{self.path.name}"
        self.version = f"sha256:{digest}"

    def texts(self, symbols: Iterable[str] | None = None) -> dict[str, str]:
        if symbols is None:
            return dict(self._texts)
        return {s: self._texts[s] for s in normalise_symbols(symbols) if s in self._texts}
