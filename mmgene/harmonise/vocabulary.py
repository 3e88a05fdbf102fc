"""The Cell Ontology as a lookup table: every current ``CL:`` term's names and synonyms, tokenised once.

Read offline through ``cellxgene-ontology-guide`` (the ontology ships inside that package). Building
the table takes well under a second, so it is cached in-process only (:func:`vocabulary`), keyed by
nothing: one ontology version per installed package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mmgene.lazy import require
from mmgene.harmonise.text import key, singular, tokens

_SPECIES_TAGS = (
    (re.compile(r", human$|\((homo sapiens|hsap|primate)\)", re.I), "human"),
    (re.compile(r", mouse$|\((mmus|mus musculus|sensu mus)\)", re.I), "mouse"),
    (re.compile(r"\(sensu (nematoda|arthr?opoda|teleostei|endopterygota|fungi|protostomia)", re.I), "non-mammal"),
)


@dataclass(frozen=True)
class Name:
    """One name of a term: its label or one synonym, as tokens and matching key."""

    term_id: str
    text: str
    is_label: bool
    words: tuple[str, ...]
    key: str


@dataclass(eq=False)
class Vocabulary:
    """All current Cell Ontology terms, their names, and indexes over them."""

    version: str
    labels: dict[str, str]
    species: dict[str, str]
    names: list[Name]
    by_key: dict[str, list[int]]
    words: frozenset[str]
    parser: Any

    def words_of(self, text: str) -> list[str]:
        """Tokens of ``text`` with plurals reduced to the ontology's singular words."""
        return [singular(w, self.words) for w in tokens(text)]

    def lookup(self, words: list[str] | set[str] | tuple[str, ...]) -> list[Name]:
        """Names whose key equals the key of ``words`` (order, plurals, case and filler ignored)."""
        return [self.names[i] for i in self.by_key.get(key(words), ())]

    def ancestors(self, term_id: str) -> dict[str, int]:
        """``{ancestor: distance}`` over is_a links, the term itself at distance 0."""
        return _ancestors(self.parser, term_id)

    def context_text(self, term_id: str) -> str:
        """Label, synonyms, definition and ancestors' labels of a term, lower-cased (what a tissue hint
        is matched against)."""
        return _context_text(self.parser, term_id)


@lru_cache(maxsize=65536)
def _ancestors(parser: Any, term_id: str) -> dict[str, int]:
    found = dict(parser.get_term_ancestors_with_distances(term_id))
    found[term_id] = 0
    return found


@lru_cache(maxsize=65536)
def _context_text(parser: Any, term_id: str) -> str:
    parts = [
        parser.get_term_label(term_id),
        *(parser.get_term_synonyms(term_id) or ()),
        parser.get_term_description(term_id) or "",
    ]
    parts += [parser.get_term_label(a) for a in parser.get_term_ancestors(term_id) if a.startswith("CL:")]
    return " ".join(p for p in parts if p).lower()


def species_of(names: str) -> str:
    """``"human"``, ``"mouse"`` or ``"non-mammal"`` when a term's names (``" ; "``-joined) mark it
    species-specific, else ``""``."""
    for pattern, tag in _SPECIES_TAGS:
        if any(pattern.search(n.strip()) for n in names.split(";")):
            return tag
    return ""


@lru_cache(maxsize=1)
def parser() -> Any:
    """The shared :class:`OntologyParser` (raises :class:`~mmgene.errors.DependencyError` when missing)."""
    module = require("cellxgene_ontology_guide.ontology_parser", "Cell Ontology label harmonisation")
    return module.OntologyParser()


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    """Build (once per process) the table of current ``CL:`` terms and their names."""
    onto = parser()
    label_to_id = onto.get_term_label_to_id_map("CL")
    labels = {t: name for name, t in label_to_id.items() if t.startswith("CL:") and not onto.is_term_deprecated(t)}
    synonyms = onto.map_term_synonyms(sorted(labels))
    raw = [(t, text, True) for t, text in labels.items()]
    raw += [(t, s, False) for t in sorted(labels) for s in (synonyms.get(t) or ()) if s]
    tokenised = [(t, text, is_label, tokens(text)) for t, text, is_label in raw]
    words = frozenset(w for *_, ws in tokenised for w in ws)
    names: list[Name] = []
    by_key: dict[str, list[int]] = {}
    for t, text, is_label, ws in tokenised:
        ws = tuple(singular(w, words) for w in ws)
        name = Name(t, text, is_label, ws, key(ws))
        if not name.key or any(
            n.term_id == t and n.key == name.key for n in (names[i] for i in by_key.get(name.key, ()))
        ):
            continue
        by_key.setdefault(name.key, []).append(len(names))
        names.append(name)
    version = str((onto.cxg_schema.supported_ontologies.get("CL") or {}).get("version", "unknown"))
    return Vocabulary(
        version=version,
        labels=labels,
        species={t: species_of(" ; ".join([name, *(synonyms.get(t) or ())])) for t, name in labels.items()},
        names=names,
        by_key=by_key,
        words=words,
        parser=onto,
    )
