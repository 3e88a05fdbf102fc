"""Offline gene text: NCBI's human gene table as shipped by the PyPI package ``goatools``.

``goatools/test_data/genes_NCBI_9606_All.py`` holds NCBI Gene's table for *Homo sapiens* downloaded on
2016-01-05 (59,542 genes): symbol, aliases, full name ("description"), other designations and map
location. It has no curated summaries, so the text is shorter than GenePT's NCBI pages, but it needs no
network and is versioned by the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

from mmgene.errors import DependencyError
from mmgene.genes.text_sources import GeneRecord, GeneTextSource, normalise_symbols

MODULE = "goatools.test_data.genes_NCBI_9606_All"


@lru_cache(maxsize=1)
def _load() -> tuple[dict[str, GeneRecord], dict[str, str], str]:
    """Records by upper-cased official symbol, unique aliases -> symbol, and the download date."""
    import importlib

    try:
        mod = importlib.import_module(MODULE)
    except ImportError as exc:
        raise DependencyError(
            f"the offline gene text comes from the package 'goatools' ({MODULE}), which is not installed ({exc})",
            fix="pip install goatools",
        ) from exc
    records: dict[str, GeneRecord] = {}
    # Lowest GeneID wins when a symbol repeats (18 symbols do), so the choice is stable.
    for gene_id in sorted(mod.GENEID2NT):
        nt = mod.GENEID2NT[gene_id]
        sym = str(nt.Symbol).strip()
        if not sym or sym.upper() in records:
            continue
        records[sym.upper()] = GeneRecord(
            symbol=sym,
            name=str(nt.description or ""),
            aliases=str(nt.Aliases or ""),
            designations=str(nt.other_designations or ""),
            gene_id=str(gene_id),
            location=str(nt.map_location or ""),
        )
    alias_owner: dict[str, set[str]] = {}
    for key, rec in records.items():
        for alias in rec.aliases.split(","):
            alias = alias.strip().upper()
            if alias and alias not in records:
                alias_owner.setdefault(alias, set()).add(key)
    aliases = {a: next(iter(o)) for a, o in alias_owner.items() if len(o) == 1}
    return records, aliases, str(getattr(mod, "downloaded", "unknown"))


class OfflineGeneText(GeneTextSource):
    """Gene text from goatools' copy of NCBI's human gene table (no network).

    Parameters
    ----------
    use_aliases
        Also answer for a symbol that is not an official symbol in the table but is an alias of exactly
        one gene (older or newer nomenclature); the text is that gene's.
    """

    def __init__(self, use_aliases: bool = True) -> None:
        self.use_aliases = use_aliases
        records, _, downloaded = _load()
        try:
            pkg = version("goatools")
        except PackageNotFoundError:  # pragma: no cover
            pkg = "unknown"
        self.name = "ncbi-gene-table (goatools)"
        self.version = f"NCBI Gene homo sapiens table downloaded {downloaded.replace('_', '-')}; goatools {pkg}"
        self.n_genes = len(records)

    def records(self, symbols: Iterable[str] | None = None) -> dict[str, GeneRecord]:
        """``{REQUESTED SYMBOL: record}`` for the symbols the table knows."""
        records, aliases, _ = _load()
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
