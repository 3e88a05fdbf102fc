"""Find the genes a piece of text names ("CD19+ B cell", "a cell expressing MS4A1 and CD79A").

Text such as "CD56+ NK" or "CD4+/CD25 T Reg" names genes by symbol or by their CD alias (CD56 is
NCAM1, CD25 is IL2RA). The text tower adds the shared gene embedding of every gene a caption names
*positively*, so a prompt can point at cells that express that gene even for a cell type never seen
in training. Aliases come from the NCBI human gene table that ships with mmgene
(:mod:`mmgene.genes.tables`, offline). Negated mentions ("CD19-negative", "negative for CD3, CD19 and
CD20", "CD25-") are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

#: a token that may be a gene symbol: letters, digits, dots and inner hyphens.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.]*(?:-[A-Za-z0-9.]+)*[+\-]?")
#: words after which the rest of the clause names markers a cell lacks.
_NEGATORS = re.compile(r"\b(negative|lacking|lacks|lack|without|absence of)\b", re.IGNORECASE)
#: suffixes that negate a single marker.
_NEG_SUFFIX = ("-NEGATIVE", "-NEG", "-LOW", "-LO", "-DIM", "-")
_POS_SUFFIX = ("-POSITIVE", "-POS", "-HIGH", "-HI", "-BRIGHT", "+")
#: where a clause ends: ";", brackets, a new line, "but", "and not", and a full stop (a dot followed by a
#: letter or digit is inside a gene symbol: "RP11-291B21.2", "AC092580.4").
_CLAUSE_END = re.compile(r"[;()\n]|\.(?![A-Za-z0-9])|\bbut\b|\band not\b")
#: CD antigens written with an isoform suffix (CD45RA, CD45RO) name the same gene.
_CD_ISOFORM = re.compile(r"^(CD\d+)R[ABCO]$")


def _plausible_symbol(token: str) -> bool:
    """Gene-like tokens only: at least 2 characters and a digit, or 3 and all capitals as written (skips
    'a', 'T', 'cell', and words such as 'has' or 'killer' that are also genes' aliases)."""
    return len(token) >= 2 and (any(c.isdigit() for c in token) or (token.isupper() and len(token) >= 3))


@lru_cache(maxsize=1)
def ncbi_aliases() -> dict[str, tuple[str, ...]]:
    """Upper-cased alias -> official symbols (every gene that lists it), from NCBI's human gene table."""
    from mmgene.genes.tables import NCBI_GENES, shipped_table

    frame = shipped_table(NCBI_GENES["human"]).frame
    aliases: dict[str, list[str]] = {}
    for symbol, alias_list in zip(frame["symbol"], frame["aliases"]):
        for alias in alias_list.split(", "):
            if alias:
                aliases.setdefault(alias.upper(), []).append(symbol)
    return {k: tuple(v) for k, v in aliases.items()}


def build_mention_index(symbols: Iterable[str], use_aliases: bool = True) -> dict[str, list[int]]:
    """Map upper-cased names (symbols, then CD and other aliases) to indices into ``symbols``."""
    symbols = [str(s) for s in symbols]
    index: dict[str, list[int]] = {}
    for i, sym in enumerate(symbols):
        up = sym.upper()
        if up and _plausible_symbol(up):
            index.setdefault(up, [i])
    if use_aliases:
        by_symbol = {s.upper(): i for i, s in enumerate(symbols)}
        for alias, targets in ncbi_aliases().items():
            if alias in index or not _plausible_symbol(alias):
                continue  # an official symbol always wins over another gene's alias
            ids = sorted({by_symbol[t.upper()] for t in targets if t.upper() in by_symbol})
            if ids:
                index[alias] = ids
    return index


def _lookup(token: str, index: Mapping[str, list[int]]) -> list[int]:
    up = token.upper()
    if up in index:
        return list(index[up])
    isoform = _CD_ISOFORM.match(up)
    if isoform and isoform.group(1) in index:
        return list(index[isoform.group(1)])
    return []


def find_mentions(text: str, index: Mapping[str, list[int]]) -> list[int]:
    """Indices of genes ``text`` names positively, in order of first mention, without repeats."""
    found: list[int] = []
    for clause in _CLAUSE_END.split(text):
        negated_from = None
        match = _NEGATORS.search(clause)
        if match:
            negated_from = match.start()
        for tok in _TOKEN.finditer(clause):
            raw = tok.group(0)
            if negated_from is not None and tok.start() > negated_from:
                continue
            up = raw.upper()
            if up.endswith(_NEG_SUFFIX):
                continue
            core = raw
            for suffix in _POS_SUFFIX:
                if up.endswith(suffix):
                    core = raw[: -len(suffix)]
                    break
            # "CD4+/CD25" style lists are split by the tokenizer on "/"; "T-cell" is not a gene. Judged as
            # written: "has", "killer" and "delta" are words here, though HAS1, TNFRSF10B and DLL1 go by them.
            if not _plausible_symbol(core):
                continue
            for i in _lookup(core, index):
                if i not in found:
                    found.append(i)
    return found
