"""The gene vocabulary of cell sentences: one word per gene symbol, fixed once per call.

Fixing the vocabulary (and the tie-break order) from the gene table before any chunk is read is what
makes the sentences independent of how the matrix is chunked or stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmgene.choices import TIES
from mmgene.errors import GeneIdError, ParameterError, _preview, is_whole_number
from mmgene.io.expression import gene_symbols

#: how equal values inside a cell are ordered.


@dataclass(frozen=True)
class Vocabulary:
    """Words (upper-cased symbols) and, per column of the matrix, its word and tie rank.

    ``tie_rank`` is a permutation of the columns: among genes with equal expression in a cell, the
    gene with the lower tie rank comes first. ``word_of_rank[r]`` is the word id of that column.
    """

    words: np.ndarray
    col_word: np.ndarray
    tie_rank: np.ndarray
    word_of_rank: np.ndarray
    keep: np.ndarray
    packed: np.ndarray
    word_bytes: np.ndarray
    word_offsets: np.ndarray
    encoding: str
    ties: str

    @property
    def n_excluded(self) -> int:
        return int((~self.keep).sum())


def gene_words(var: pd.DataFrame) -> np.ndarray:
    """The words of ``var``'s genes: their symbols (:func:`mmgene.io.expression.gene_symbols`)
    upper-cased, as Cell2Sentence writes them; ``var_names`` where a gene has no symbol or none is
    recognisable (a sentence needs a word for every expressed gene)."""
    names = pd.Series(np.asarray(var.index, dtype=object), dtype=object).astype(str)
    sym = pd.Series(gene_symbols(var, or_names=True), dtype=object).astype(str).str.strip()
    sym = sym.where(sym != "", names)
    return sym.str.upper().to_numpy(dtype=object)


def _patterns(exclude: str | Iterable[str] | None) -> tuple[list[str], list[str]]:
    """Split exclusion patterns into exact names and prefixes (a trailing ``*`` or ``-`` marks a prefix)."""
    if exclude is None:
        return [], []
    if not isinstance(exclude, (str, Iterable)):
        raise ParameterError(
            f"exclude must be a pattern or a list of patterns, got {type(exclude).__name__} {exclude!r}",
            "argument exclude",
            "pass gene symbols ('MALAT1') or prefixes ending in '*' or '-' ('RPL*', 'MT-')",
        )
    items = [exclude] if isinstance(exclude, str) else list(exclude)
    exact, prefixes = [], []
    for item in items:
        if not isinstance(item, str) or not item.strip().rstrip("*"):
            raise ParameterError(
                f"exclusion pattern {item!r} is empty or not a string",
                "argument exclude",
                "pass gene symbols ('MALAT1') or prefixes ending in '*' or '-' ('RPL*', 'MT-')",
            )
        item = item.strip().upper()
        if item.endswith("*"):
            prefixes.append(item.rstrip("*"))
        elif item.endswith("-"):
            prefixes.append(item)
        else:
            exact.append(item)
    return exact, prefixes


def exclusion_mask(symbols: np.ndarray, exclude: str | Iterable[str] | None) -> np.ndarray:
    """True for genes excluded by exact name or by prefix (never by substring: ``MT-`` keeps ``MTOR``)."""
    exact, prefixes = _patterns(exclude)
    s = pd.Series(symbols, dtype=object)
    mask = s.isin(exact).to_numpy()
    if prefixes:
        mask |= s.str.startswith(tuple(prefixes)).to_numpy(dtype=bool)
    return mask


def build_vocabulary(var: pd.DataFrame, exclude=(), ties: str = "position", seed: int = 0) -> Vocabulary:
    """The vocabulary and tie order for the genes of ``var``.

    Ties: ``'symbol'`` orders equal values alphabetically by symbol (then by column); ``'position'``
    by column order in the matrix; ``'random'`` by a random gene order drawn once per call from
    ``seed`` (the same for every cell and every chunk).
    """
    if ties not in TIES:
        raise ParameterError(f"unknown tie-break {ties!r}", "argument ties", f"choose one of {', '.join(TIES)}")
    if not is_whole_number(seed, 0):
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}", "argument seed", "pass e.g. seed=0")
    symbols = gene_words(var)
    bad = symbols[pd.Series(symbols, dtype=object).str.contains(r"\s", regex=True).to_numpy(dtype=bool)]
    if len(bad):
        raise GeneIdError(
            f"{len(bad)} gene symbols contain whitespace ({_preview(bad)}), which would split into several words",
            "the gene symbols of the expression matrix (var['gene_symbol'] or var_names)",
            "rename those genes, e.g. replace spaces by '_'",
        )
    keep = ~exclusion_mask(symbols, exclude)
    if not keep.any():
        raise ParameterError(
            f"the exclusion patterns {exclude!r} remove all {len(symbols)} genes",
            "argument exclude",
            "exclude fewer genes (prefixes end in '*' or '-', anything else is an exact symbol)",
        )
    words, col_word = np.unique(symbols.astype(str), return_inverse=True)
    col_word = col_word.astype(np.int32)
    cols = np.arange(len(symbols))
    if ties == "symbol":
        order = np.lexsort((cols, col_word))
    elif ties == "position":
        order = cols
    else:
        word_rank = np.random.default_rng(seed).permutation(len(words))
        order = np.lexsort((cols, word_rank[col_word]))
    tie_rank = np.empty(len(symbols), np.int64)
    tie_rank[order] = cols
    packed, word_bytes, offsets = word_table(words)
    encoding = "ascii" if word_bytes.size == sum(len(w) + 1 for w in words) else "utf-8"
    return Vocabulary(words, col_word, tie_rank, col_word[order], keep, packed, word_bytes, offsets, encoding, ties)


def word_table(words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each word's UTF-8 bytes plus a space: concatenated with offsets, and packed in 16 bytes (2 x uint64)."""
    encoded = [w.encode("utf-8") + b" " for w in words]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    word_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    padded = b"".join(b[:16].ljust(16, b"\0") for b in encoded)
    packed = np.frombuffer(padded, dtype="<u8").astype(np.uint64)
    return packed, word_bytes, offsets
