"""Zero-shot prompts for class names: cleaned names, Cell Ontology names, template ensembles.

For a label such as ``"CD19+ B"`` the ensemble is every template applied to every name:
``"CD19+ B cell"`` (cleaned), the ontology label and synonyms of the core noun ("B cell", "B
lymphocyte") with and without the markers. The class vector is the normalised mean of the prompts'
joint-space vectors (prompt ensembling as in CLIP).
"""

from __future__ import annotations

from collections.abc import Sequence

from mmgene.pairs.labels import clean_label, split_markers

PROMPT_TEMPLATES = (
    "{}",
    "a {}",
    "a cell of type {}",
    "single-cell transcriptome of a {}",
    "a {} from human blood",
)


def class_names(label: str, ontology: bool = True, max_names: int = 6) -> list[str]:
    """Names for one label: the cleaned label, then Cell Ontology label/synonyms (with the label's markers)."""
    cleaned = clean_label(label)
    names = [cleaned]
    if ontology:
        from mmgene.pairs.ontology import find_term

        markers, core = split_markers(cleaned)
        prefix = " ".join(markers)
        for query in dict.fromkeys([cleaned, core]):
            if not query or query == "cell":
                continue
            term = find_term(query)
            if term is None:
                continue
            for name in term.names():
                # keep the markers: a bare "T cell" would blur CD4 and CD8 T cells together
                candidate = f"{prefix} {name}" if prefix and not name.startswith(prefix) else name
                if candidate not in names:
                    names.append(candidate)
    return names[:max_names]


def class_prompts(
    labels: Sequence[str], templates: Sequence[str] = PROMPT_TEMPLATES, ontology: bool = True
) -> list[list[str]]:
    """One list of prompts per label (templates x names)."""
    out = []
    for label in labels:
        names = class_names(label, ontology=ontology)
        out.append(list(dict.fromkeys(t.format(n) for n in names for t in templates)))
    return out
