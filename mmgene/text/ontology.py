"""Cell Ontology text (names, synonyms, definitions), offline through ``cellxgene-ontology-guide``.

Used twice: to enrich training captions (a cell labelled ``CL:0000623`` is also captioned "NK cell" and
"A lymphocyte that can spontaneously kill ...") and to enrich zero-shot prompts (a label such as
"dendritic cell" is looked up by name and its synonyms join the prompt ensemble). The parser ships
its ontology files inside the package, so nothing touches the network.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mmgene.errors import ParameterError
from mmgene.lazy import require
from mmgene.text.labels import MINUS_SIGN, fold_text

_CL_ID = re.compile(r"^CL:\d{7}$")
#: the ways a Cell Ontology id is written: ``CL:0000236``, any case, ``CL_0000236`` (OBO's own IRI
#: form), and the PURL ``http://purl.obolibrary.org/obo/CL_0000236``
_CL_ID_FORMS = re.compile(r"^(?:https?://purl\.obolibrary\.org/obo/)?CL[:_](\d{7})$", re.IGNORECASE)


@dataclass(frozen=True)
class TermText:
    """The words the Cell Ontology has for one term."""

    term_id: str
    label: str
    synonyms: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""

    def names(self) -> list[str]:
        """The label first, then the synonyms, without duplicates."""
        out: list[str] = []
        for name in (self.label, *self.synonyms):
            if name and name not in out:
                out.append(name)
        return out


@lru_cache(maxsize=1)
def _parser() -> Any:
    module = require("cellxgene_ontology_guide.ontology_parser", "Cell Ontology captions")
    return module.OntologyParser()


def is_term_id(value: object) -> bool:
    """Whether ``value`` looks like a Cell Ontology id (``CL:0000623``)."""
    return isinstance(value, str) and bool(_CL_ID.match(value))


def normalise_term_id(value: object) -> str | None:
    """``"CL:0000236"`` for a Cell Ontology id written in any of its usual forms (any case, blanks around
    it, ``CL_0000236``, the PURL ``http://purl.obolibrary.org/obo/CL_0000236``); ``None`` for anything
    else. Whether the ontology holds the term is not checked (:func:`is_known_term`)."""
    if not isinstance(value, str):
        return None
    match = _CL_ID_FORMS.match(value.strip())
    return f"CL:{match.group(1)}" if match else None


@lru_cache(maxsize=65536)
def is_known_term(term_id: str) -> bool:
    """Whether ``term_id`` is a well-formed ``CL:`` id that the shipped Cell Ontology holds (current or obsolete)."""
    if not is_term_id(term_id):
        return False
    try:
        _parser().get_term_label(term_id)
    except (ValueError, KeyError):
        return False
    return True


def ontology_version() -> str:
    """The version of the Cell Ontology that ``cellxgene-ontology-guide`` ships (e.g. ``'v2026-03-26'``)."""
    return str((_parser().cxg_schema.supported_ontologies.get("CL") or {}).get("version", "unknown"))


@lru_cache(maxsize=4096)
def term_text(term_id: str) -> TermText:
    """Label, synonyms and definition of a ``CL:`` term (raises :class:`ParameterError` for unknown ids)."""
    if not is_term_id(term_id):
        raise ParameterError(
            f"{term_id!r} is not a Cell Ontology id",
            "the ontology id column",
            "give ids like 'CL:0000623', or leave out ontology enrichment (ontology_col=None)",
        )
    parser = _parser()
    try:
        label = parser.get_term_label(term_id)
    except (ValueError, KeyError) as exc:
        raise ParameterError(
            f"Cell Ontology term {term_id!r} is unknown to cellxgene-ontology-guide ({exc})",
            "the ontology id column",
            "check the id, or update cellxgene-ontology-guide",
        ) from exc
    try:
        synonyms = tuple(parser.get_term_synonyms(term_id) or ())
    except (ValueError, KeyError):
        synonyms = ()
    try:
        description = parser.get_term_description(term_id) or ""
    except (ValueError, KeyError):
        description = ""
    return TermText(term_id=term_id, label=label or term_id, synonyms=synonyms, description=description)


def _norm(name: str) -> str:
    """Lower case (Greek letters spelled out, superscripts and accents folded: :func:`fold_text`),
    punctuation to spaces; a marker's minus sign is kept as a word ("CD16- monocyte" is "cd16 negative
    monocyte", not "CD16 monocyte")."""
    return re.sub(r"[^a-z0-9+]+", " ", MINUS_SIGN.sub(" negative", fold_text(str(name)))).strip()


@lru_cache(maxsize=1)
def _name_index() -> dict[str, str]:
    """Normalised label or synonym -> CL id, over all current ``CL:`` terms."""
    parser = _parser()
    index: dict[str, str] = {}
    label_to_id = parser.get_term_label_to_id_map("CL")
    for label, term in label_to_id.items():
        if is_term_id(term) and not parser.is_term_deprecated(term):
            index.setdefault(_norm(label), term)
    terms = sorted({t for t in label_to_id.values() if is_term_id(t)})
    for term, synonyms in parser.map_term_synonyms(terms).items():  # after labels: a label wins a clash
        for syn in synonyms or ():
            index.setdefault(_norm(syn), term)
    return index


def term_of_id(value: object) -> TermText | None:
    """The term a Cell Ontology id names (``"CL:0000236"`` in any of the forms of
    :func:`normalise_term_id`); ``None`` for anything else, an id the ontology does not hold included.
    A label column of ids (``cell_type_ontology_term_id``) is read through it, never as the text "a
    CL:0000236 cell"."""
    text = normalise_term_id(value)
    return term_text(text) if text is not None and is_known_term(text) else None


def find_term(name: str) -> TermText | None:
    """The Cell Ontology term whose label or synonym equals ``name`` (case and punctuation ignored), or
    that ``name`` names by its id (:func:`term_of_id`)."""
    named = term_of_id(name)
    if named is not None:
        return named
    key = _norm(name)
    if not key:
        return None
    index = _name_index()
    term = index.get(key) or (index.get(key[:-1]) if key.endswith("s") else None)
    return term_text(term) if term else None


@lru_cache(maxsize=4096)
def term_ancestors(term_id: str) -> frozenset[str]:
    """The ``CL:`` ancestors of a Cell Ontology term (cellxgene-ontology-guide's ``get_term_ancestors``);
    empty for a value that is not a known ``CL:`` id, so such a class is related to no other."""
    if not is_term_id(term_id):
        return frozenset()
    try:
        found = _parser().get_term_ancestors(term_id)
    except (ValueError, KeyError):
        return frozenset()
    return frozenset(t for t in found or () if is_term_id(t) and t != term_id)


@lru_cache(maxsize=4096)
def term_parents(term_id: str) -> tuple[str, ...]:
    """The direct is_a parents of a Cell Ontology term (``CL:`` ids only; empty for an unknown id)."""
    if not is_term_id(term_id):
        return ()
    try:
        found = _parser().get_term_parents(term_id)
    except (ValueError, KeyError):
        return ()
    return tuple(sorted(t for t in found or () if is_term_id(t)))


def related_terms(term_ids: Sequence[str]) -> Any:
    """Class x class booleans: True where two classes are the same class (the diagonal), have the
    same term, or one's term is an ancestor of the other's. Why: a cell of a "CD8-positive,
    alpha-beta T cell" is also a "T cell", so training must not push it away from that caption.
    Entries that are not ``CL:`` ids ('' for a class without one) are related only to themselves."""
    import numpy as np

    ids = [str(t) for t in term_ids]
    n = len(ids)
    out = np.eye(n, dtype=bool)
    ancestors = [term_ancestors(t) for t in ids]
    for i in range(n):
        if not is_term_id(ids[i]):
            continue
        for j in range(n):
            if i != j and (ids[i] == ids[j] or ids[j] in ancestors[i] or ids[i] in ancestors[j]):
                out[i, j] = out[j, i] = True
    return out


@lru_cache(maxsize=4096)
def term_descendants(term_id: str) -> frozenset[str]:
    """The ``CL:`` descendants of a Cell Ontology term and the term itself; empty for a value that is not
    a known ``CL:`` id."""
    if not is_term_id(term_id) or not _known(term_id):
        return frozenset()
    found = _parser().get_term_descendants(term_id, include_self=True)
    return frozenset(t for t in found or () if is_term_id(t)) | {term_id}


def _known(term_id: str) -> bool:
    """Whether the ontology has ``term_id`` (its descendant lookup answers for any id)."""
    try:
        _parser().get_term_label(term_id)
    except (ValueError, KeyError):
        return False
    return True


def terms_overlap(a: str, b: str) -> bool:
    """Whether one cell can be of both terms: the same term, one below the other, or a term below both
    ("regulatory T cell" and "CD4-positive, alpha-beta T cell" share the CD4-positive regulatory T cells).
    False when either is not a known ``CL:`` id."""
    return bool(term_descendants(a) & term_descendants(b))
