"""The genes a set of cell vectors was made from, so that vectors made from other genes are said to be.

A cell's vector (GenePT-w, Geneformer, a joint space) is made from the genes its dataset measured. Two
datasets whose gene panels hardly overlap (two panels of highly variable genes chosen apart), or whose
genes are of two species, give vectors that a nearest-neighbour search still compares, and label transfer
then answers with confident votes for the wrong type. An index records the panel of the AnnData it was
built from (``meta.json['genes']``), and :func:`compare_panels` tells a query's panel from it.

Symbols are compared upper-cased, as the corpus matches mouse genes to human ones by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

#: two panels are said to differ when the genes they share are fewer than this share of the smaller panel:
#: most of one dataset's genes were not measured in the other (two PBMC datasets filtered to 1,267 and 1,767
#: variable genes share 261)
LOW_SHARED_SHARE = 0.5


@dataclass(frozen=True)
class GenePanel:
    """The upper-cased gene symbols of a dataset (an Ensembl id where the data names a gene by it), and whether
    they read as mouse genes."""

    symbols: frozenset[str]
    looks_mouse: bool

    @property
    def species(self) -> str:
        """``'mouse'`` or ``'human'``, as the symbols' writing tells (:func:`mmgene.genes.ids.reads_as_mouse`)."""
        return "mouse" if self.looks_mouse else "human"

    @classmethod
    def of_var(cls, var: pd.DataFrame, origin: str = "the AnnData") -> GenePanel | None:
        """The panel of a gene table (``var``); None when it has no genes."""
        from mmgene.genes.ids import mouse_style_count, reads_as_mouse, split_joined
        from mmgene.io.expression import gene_symbols

        if not len(var):
            return None
        names, _ = split_joined(gene_symbols(var, origin=origin, or_names=True))  # as mmgene.io.read reads them
        symbols = [s for s in names if s]
        return cls(frozenset(s.upper() for s in symbols), reads_as_mouse(mouse_style_count(symbols), len(symbols)))

    @classmethod
    def of(cls, adata: Any, origin: str = "the AnnData") -> GenePanel | None:
        """The panel of an AnnData's genes; None when it has none."""
        return cls.of_var(adata.var, origin)

    def union(self, other: GenePanel) -> GenePanel:
        """The genes of both panels (an index built from several files), mouse when either reads as mouse."""
        return GenePanel(self.symbols | other.symbols, self.looks_mouse or other.looks_mouse)

    def to_meta(self) -> dict[str, Any]:
        """The JSON form an index folder stores (sorted, so that a rebuild writes the same bytes)."""
        return {"symbols": sorted(self.symbols), "looks_mouse": self.looks_mouse}

    @classmethod
    def from_meta(cls, entry: Any) -> GenePanel | None:
        """The panel :meth:`to_meta` wrote; None for an index that records none (built from bare vectors, or
        before panels were recorded)."""
        if not isinstance(entry, dict):
            return None
        return cls(frozenset(entry["symbols"]), bool(entry["looks_mouse"]))


@dataclass(frozen=True)
class PanelMatch:
    """How a query's gene panel meets a reference's: the genes they share and each one's species."""

    shared: int
    reference_genes: int
    query_genes: int
    reference_species: str
    query_species: str

    @property
    def shared_share(self) -> float:
        """The shared genes as a share of the smaller panel (1 for two empty panels: nothing is missing)."""
        smaller = min(self.reference_genes, self.query_genes)
        return self.shared / smaller if smaller else 1.0

    @property
    def panels_differ(self) -> bool:
        return self.shared_share < LOW_SHARED_SHARE

    @property
    def species_differ(self) -> bool:
        return self.reference_species != self.query_species

    def note(self) -> str | None:
        """What a user should know before trusting answers across these panels; None when they match."""
        parts = []
        if self.panels_differ:
            parts.append(
                f"the query shares {self.shared:,} genes with the reference ({_share(self.shared, self.query_genes)} of the "
                f"query's {self.query_genes:,}, {_share(self.shared, self.reference_genes)} of the reference's "
                f"{self.reference_genes:,}), so their cells' vectors were made from mostly different genes"
            )
        if self.species_differ:
            parts.append(
                f"the reference's genes read as {self.reference_species} and the query's as {self.query_species}: "
                "cells are compared through genes of the same symbol"
            )
        if not parts:
            return None
        return (
            "; ".join(parts) + ". Nearest reference cells, and the labels they give, may be wrong even at high "
            "confidence: embed both datasets from their shared genes (adata[:, shared]) and rebuild the index"
        )

    def record(self) -> dict[str, Any]:
        """The match in plain data, for provenance."""
        return {
            "shared_genes": self.shared, "reference_genes": self.reference_genes, "query_genes": self.query_genes,
            "reference_species": self.reference_species, "query_species": self.query_species,
        }


def compare_panels(reference: GenePanel, query: GenePanel) -> PanelMatch:
    """The genes ``query`` shares with ``reference``, and the two species."""
    return PanelMatch(
        len(reference.symbols & query.symbols), len(reference.symbols), len(query.symbols),
        reference.species, query.species,
    )


def _share(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a whole percentage ('18%'), 'none' of an empty whole."""
    return f"{part / whole:.0%}" if whole else "none"


__all__ = ["LOW_SHARED_SHARE", "GenePanel", "PanelMatch", "compare_panels"]
