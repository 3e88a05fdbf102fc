"""The Cell Ontology term each label of a question stands for, so that the hierarchy and the others
rule read "CD4 T cells" as the CD4-positive, alpha-beta T cell it names.

A label is first looked up as a term's name or synonym (:func:`mmgene.text.hierarchy.resolve_terms`).
What a user types often is neither ("CD4 T cells", "CD14+ Monocytes", "T_CD8"); for those the label
harmoniser's rules are asked (:mod:`mmgene.harmonise`: abbreviations, marker spellings, plurals), and
its answer is taken only when a rule chose it (:data:`~mmgene.harmonise.matching.RULE_METHODS`), never
a similarity guess: a wrong term would make a label answer for classes it does not name. A label
neither finds keeps no term and is scored by its prompts alone, as before. Pass ``term_ids`` to say
the terms yourself.

Where the cells come from (``origin``: annotate's ``species`` and ``tissue``) is the harmoniser's hint:
with ``tissue="pancreas"`` "alpha" is the pancreatic A cell, and with ``species="human"`` no term the
ontology marks as mouse-only is taken (without a hint "alpha" is a synonym of a mouse retinal cell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from mmgene.errors import MMGeneError, ParameterError
from mmgene.text.hierarchy import resolve_terms
from mmgene.text.origin import Origin


@lru_cache(maxsize=8)
def _matcher(species: str, tissue: str) -> Any:
    """The harmoniser with its default settings and this hint ('' for none), built once per process."""
    from mmgene.harmonise.config import HarmoniseConfig
    from mmgene.harmonise.matching import Matcher

    return Matcher(HarmoniseConfig(tissue=tissue or None, species=species or None))


def label_terms(labels: Sequence[str], term_ids: Sequence[str] | None = None, origin: Origin | None = None) -> list[str]:
    """The Cell Ontology id of each label ('' for none): ``term_ids`` when given, else the term whose
    name or synonym the label is, else the term a harmoniser rule reads it as, told the cells'
    ``origin`` (see the module docstring)."""
    ids = resolve_terms(labels, term_ids)
    if term_ids is not None:
        return ids
    from mmgene.harmonise.matching import RULE_METHODS

    hint = origin or Origin()
    for i, label in enumerate(labels):
        if not ids[i] and str(label).strip():
            found = _matcher(hint.species, hint.tissue).match(str(label))
            if found.method in RULE_METHODS:
                ids[i] = found.term_id
    return ids


def chosen_terms(
    labels: Sequence[str], chosen: Mapping[str, str], where: str = "argument chosen", origin: Origin | None = None
) -> list[str]:
    """:func:`label_terms` with the terms of some labels said by the user: ``chosen`` maps a label to
    its Cell Ontology id ('' for no term, e.g. to stop a rule reading "alpha" as a retinal cell); the
    other labels are read as usual (with ``origin``). A key that is no label, or an id the ontology does not know, is a
    :class:`~mmgene.errors.ParameterError` located at ``where``."""
    from mmgene.text.ontology import term_text

    stray = [label for label in chosen if label not in labels]
    if stray:
        raise ParameterError(f"{stray[0]!r} is not one of the labels {list(labels)}", where, "name a label exactly as given to --labels")
    for label, term in chosen.items():
        if term:
            try:
                term_text(term)
            except MMGeneError as exc:
                raise ParameterError(f"the term of {label!r}: {exc.what}", where, "give a Cell Ontology id like 'CL:0000624', or nothing for no term") from exc
    return [chosen.get(label, read) for label, read in zip(labels, label_terms(labels, origin=origin))]
