"""The shared vocabulary of text, below every package that speaks it.

Text encoders (:mod:`~mmgene.text.encoders`), which labels are missing and label cleaning
(:mod:`~mmgene.text.labels`), how authors abbreviate cell types (:mod:`~mmgene.text.shorthand`),
training captions (:mod:`~mmgene.text.captions`), Cell Ontology names (:mod:`~mmgene.text.ontology`),
zero-shot prompts and marker genes (:mod:`~mmgene.text.prompts`, :mod:`~mmgene.text.markers`), and
classes as vectors with their scores (:mod:`~mmgene.text.classes`).

Names are resolved lazily, so importing this package loads no model.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "text_encoder": "mmgene.text.encoders",
    "TextEncoder": "mmgene.text.encoders",
    "clean_label": "mmgene.text.labels",
    "missing_labels": "mmgene.text.labels",
    "class_text": "mmgene.text.captions",
    "term_text": "mmgene.text.ontology",
    "find_term": "mmgene.text.ontology",
    "class_prompts": "mmgene.text.prompts",
    "PROMPTS": "mmgene.text.prompts",
    "marker_genes": "mmgene.text.markers",
    "class_vectors": "mmgene.text.classes",
    "standardise": "mmgene.text.classes",
    "zero_shot_scores": "mmgene.text.classes",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
