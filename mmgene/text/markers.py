"""Prompt expansion (``class_prompts(..., markers=True)``, on by default in evaluation): canonical
marker genes of common blood cell types.

A label such as ``"NK cells"`` says nothing a cell's expression can be matched against; the prompt
``"a natural killer cell expressing GNLY and NKG7"`` does, because the text tower adds the shared
gene embedding of every gene a prompt names (:mod:`mmgene.align.mentions`). This lets the model reach
cell types it never saw in training through genes it did see.

Sources of the table (textbook markers only, never chosen from a benchmark's data):

* the PBMC marker genes of scanpy's clustering tutorial
  (https://scanpy.readthedocs.io/en/stable/tutorials/basics/clustering-2017.html, after Seurat's
  guided clustering tutorial, https://satijalab.org/seurat/articles/pbmc3k_tutorial): CD14 and LYZ
  (CD14+ monocytes), MS4A1 (B; plus CD79A from the same tutorial's marker list), GNLY and NKG7 (NK),
  FCGR3A and MS4A7 (FCGR3A+ monocytes), PPBP (megakaryocytes/platelets);
* for T-cell *subsets*, the same Seurat table: CCR7 for naive T cells (the table lists IL7R and CCR7;
  IL7R is left out because the table gives it to memory T cells as well), IL7R and S100A4 for memory
  T cells, CD8A for cytotoxic (CD8+) T cells;
* FOXP3 and IL2RA (CD25) for regulatory T cells (the Treg lineage factor and the defining surface
  marker; Hori, Nomura & Sakaguchi, Science 2003) and CD34 for CD34+ hematopoietic stem and
  progenitor cells (the antigen that defines them).

Left out on purpose: plain "CD4 T cell" / "CD8 T cell" / "T cell" labels (IL7R is also high in memory
CD8 T cells and CD3E does not tell subsets apart: with them, held-out PBMC 3k balanced accuracy fell
from 0.930 to 0.925 on seed 0), and dendritic cells (the tutorial's FCER1A and CST3 are not specific
among PBMC: CST3 is high in every monocyte, FCER1A in basophils; with them, held-out PBMC 3k dendritic
cell recall fell from 0.69 to 0.46 on seed 1). Labels no entry matches keep their plain prompts. This
knowledge was first written down from PBMC data, so PBMC figures with the expansion are "with
textbook marker knowledge"; ``benchmarks/quality_pbmc.py`` prints the figures without it next to them.

Matching is by the label's cleaned name and its Cell Ontology names (lower case, whole words), the
most specific entry first, so ``"FCGR3A+ monocyte"`` gets FCGR3A and MS4A7, not CD14 and LYZ, and
``"CD8+ CD45RA+ naive cytotoxic T cell"`` gets the naive marker CCR7.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: (name patterns, marker genes), most specific first; patterns are whole-word, lower-case regexes.
MARKER_TABLE: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    ((r"regulatory t", r"treg"), ("FOXP3", "IL2RA")),
    ((r"naive(?: cytotoxic)? t",), ("CCR7",)),
    ((r"memory t",), ("IL7R", "S100A4")),
    ((r"cytotoxic t",), ("CD8A",)),
    ((r"cd34\+", r"cd34-positive", r"hematopoietic (?:stem|progenitor)"), ("CD34",)),
    ((r"natural killer", r"nk cell", r"nk"), ("GNLY", "NKG7")),
    ((r"b cell", r"b lymphocyte", r"b"), ("MS4A1", "CD79A")),
    ((r"fcgr3a\+? monocyte", r"cd16\+? monocyte", r"non-classical monocyte"), ("FCGR3A", "MS4A7")),
    ((r"cd14\+? monocyte", r"classical monocyte", r"monocyte"), ("CD14", "LYZ")),
    ((r"megakaryocyte", r"platelet"), ("PPBP",)),
)

#: how a marker list is spliced into a prompt name.
MARKER_PHRASES = ("{name} expressing {genes}", "{name}, marker genes {genes}")


def marker_genes(names: Sequence[str]) -> tuple[str, ...]:
    """Marker genes of the first table entry that any of ``names`` matches (empty when none does)."""
    lowered = [" " + re.sub(r"\s+", " ", str(n).lower()).strip() + " " for n in names]
    for patterns, genes in MARKER_TABLE:
        for pattern in patterns:
            rx = re.compile(r"(?<![a-z0-9])" + pattern + r"(?![a-z0-9])")
            if any(rx.search(name) for name in lowered):
                return genes
    return ()


def join_genes(genes: Sequence[str]) -> str:
    """``"A"``, ``"A and B"``, ``"A, B and C"``: genes as a prompt names them."""
    genes = list(genes)
    return genes[0] if len(genes) == 1 else ", ".join(genes[:-1]) + " and " + genes[-1]


def marker_names(names: Sequence[str], phrases: Sequence[str] = MARKER_PHRASES) -> list[str]:
    """Extra names for a label: its first name with its marker genes spliced in (empty when none known)."""
    if not names:
        return []
    genes = marker_genes(names)
    if not genes:
        return []
    return [p.format(name=names[0], genes=join_genes(genes)) for p in phrases]
