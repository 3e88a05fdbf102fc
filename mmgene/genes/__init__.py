"""Genes: identifiers (symbol <-> Ensembl), gene text and gene vectors (GenePT).

Gene text and vector helpers load on first use, so importing this package stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmgene.genes.ids import GeneIds, gene_table, resolve_gene_ids

#: public name -> module that defines it (loaded lazily)
_LAZY = {
    "GeneVectors": "mmgene.genes.vectors",
    "default_gene_vectors": "mmgene.genes.default",
    "GeneTextSource": "mmgene.genes.text_sources",
    "GeneRecord": "mmgene.genes.text_sources",
    "gene_text_source": "mmgene.genes.sources",
    "OfflineGeneText": "mmgene.genes.offline_text",
    "UserGeneText": "mmgene.genes.user_text",
    "NCBIGeneText": "mmgene.genes.ncbi",
    "NCBIClient": "mmgene.genes.ncbi",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmgene.genes' has no attribute {name!r}")


__all__ = ["GeneIds", "gene_table", "resolve_gene_ids", *_LAZY]
