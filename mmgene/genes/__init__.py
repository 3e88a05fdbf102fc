"""Genes: identifiers (symbol <-> Ensembl), gene text and gene vectors (GenePT)."""

from mmgene.genes.ids import GeneIds, gene_table, resolve_gene_ids

__all__ = ["GeneIds", "gene_table", "resolve_gene_ids"]
