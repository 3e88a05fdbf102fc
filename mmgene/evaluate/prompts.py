"""Zero-shot prompts for class names: cleaned names, Cell Ontology names, template ensembles.

For a label such as ``"CD19+ B"`` the ensemble is every template applied to every name:
``"CD19+ B cell"`` (cleaned), the ontology label and synonyms of the core noun ("B cell", "B
lymphocyte") with and without the markers and, with ``markers=True`` (the default), each name with the
label's canonical marker genes spliced in ("a B cell expressing MS4A1 and CD79A", see
:mod:`mmgene.evaluate.markers`; only common blood cell types are covered). The class vector is the
normalised mean of the prompts' joint-space vectors (prompt ensembling as in CLIP).
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
    labels: Sequence[str],
    templates: Sequence[str] = PROMPT_TEMPLATES,
    ontology: bool = True,
    markers: bool = True,
) -> list[list[str]]:
    """One list of prompts per label (templates x names, plus templates x names with marker genes).

    ``markers=True`` (default) expands labels the marker table knows (:mod:`mmgene.evaluate.markers`) with
    prompts naming their marker genes; the model's text tower reaches those genes by name.
    """
    from mmgene.evaluate.markers import MARKER_PHRASES, marker_genes

    out = []
    for label in labels:
        names = class_names(label, ontology=ontology)
        if markers:
            genes = marker_genes(names)
            if genes:
                joined = genes[0] if len(genes) == 1 else ", ".join(genes[:-1]) + " and " + genes[-1]
                names = names + [p.format(name=n, genes=joined) for n in names for p in MARKER_PHRASES]
        out.append(list(dict.fromkeys(t.format(n) for n in names for t in templates)))
    return out
