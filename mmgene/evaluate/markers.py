"""Optional prompt expansion (``class_prompts(..., markers=True)``, off by default): canonical marker
genes of common blood cell types.

A label such as ``"NK cells"`` says nothing a cell's expression can be matched against; the prompt
``"a natural killer cell expressing GNLY and NKG7"`` does, because the text tower adds the shared
gene embedding of every gene a prompt names (:mod:`mmgene.align.mentions`). This lets the model reach
cell types it never saw in training through genes it did see.

Source of the table: the well-known PBMC marker genes of scanpy's clustering tutorial
(https://scanpy.readthedocs.io/en/stable/tutorials/basics/clustering-2017.html, after Seurat's
guided clustering tutorial): IL7R (CD4 T), CD14 and LYZ (CD14+ monocytes), MS4A1 (B), CD8A (CD8 T),
GNLY and NKG7 (NK), FCGR3A and MS4A7 (FCGR3A+ monocytes), FCER1A and CST3 (dendritic cells), PPBP
(megakaryocytes), plus CD79A (B, in the same tutorial's marker list). Only these lineages are covered
(not T-cell subsets, see below); any other label keeps its plain prompts. Note that this knowledge was
first written down from PBMC data, so benchmark figures on PBMC with the expansion on are "with
textbook marker knowledge", and are reported next to figures without it. It is off by default because
on seed 0 it lowered held-out PBMC 3k balanced accuracy from 0.930 to 0.927 (below that bar) while it
raised unseen-type AUROC (NK 0.45 -> 0.99, B 0.73 -> 0.80); see benchmarks/quality_pbmc.py --markers.

Matching is by the label's cleaned name and its Cell Ontology names (lower case, whole words), the
most specific entry first, so ``"FCGR3A+ monocyte"`` gets FCGR3A and MS4A7, not CD14 and LYZ.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: (name patterns, marker genes), most specific first; patterns are whole-word, lower-case regexes.
MARKER_TABLE: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    ((r"natural killer", r"nk cell", r"nk"), ("GNLY", "NKG7")),
    ((r"b cell", r"b lymphocyte", r"b"), ("MS4A1", "CD79A")),
    ((r"fcgr3a\+? monocyte", r"cd16\+? monocyte", r"non-classical monocyte"), ("FCGR3A", "MS4A7")),
    ((r"cd14\+? monocyte", r"classical monocyte", r"monocyte"), ("CD14", "LYZ")),
    ((r"dendritic cell", r"dendritic"), ("FCER1A", "CST3")),
    ((r"megakaryocyte", r"platelet"), ("PPBP",)),
)
#: T-cell subsets are left out on purpose: IL7R (CD4 T in the tutorial) is also high in memory CD8 T
#: cells, and CD3E does not tell subsets apart; with them on, held-out PBMC 3k balanced accuracy fell
#: from 0.930 to 0.925 (CD8 T recall 0.87 -> 0.85), so T-cell labels keep their plain prompts.

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


def _join(genes: Sequence[str]) -> str:
    genes = list(genes)
    return genes[0] if len(genes) == 1 else ", ".join(genes[:-1]) + " and " + genes[-1]


def marker_names(names: Sequence[str], phrases: Sequence[str] = MARKER_PHRASES) -> list[str]:
    """Extra names for a label: its first name with its marker genes spliced in (empty when none known)."""
    if not names:
        return []
    genes = marker_genes(names)
    if not genes:
        return []
    return [p.format(name=names[0], genes=_join(genes)) for p in phrases]
