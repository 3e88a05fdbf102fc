"""One author label -> one Cell Ontology term, with a confidence and the way it was found.

Stages, first hit wins:

1. ``exact-name`` (1.0): the label is a current term's id ("CL:0000236"), or a term's name, ignoring
   case, punctuation, plurals, word order and the word "cell" ("B cells" -> "B cell"); with a tissue
   hint, a term *below* it named by the label plus the tissue's words wins at 0.9 ("acinar" in
   pancreas -> "pancreatic acinar cell");
2. ``synonym`` (1.0): the label is one of the term's synonyms ("NK cells" -> natural killer cell);
3. ``abbreviation`` (0.9, 0.85 with the tissue's words added, 0.75 with a cell state left out or for
   one marker alone, "CD34+"): a rewrite of :mod:`mmgene.harmonise.rules` is a name or synonym
   ("T_CD8" -> "CD8-positive, alpha-beta T cell"). A single-cell naming convention or shorthand ("IPC"
   in brain, "DC2") outranks a synonym (stage 2) that reads the same words as another term;
4. ``similarity`` (0..0.8): the best word/character overlap with any name (:mod:`.similarity`), plus
   a bonus for terms that mention the tissue; a name that states a CD marker the label does not state,
   or the opposite sign of one it does, is not a candidate ("CD56+ NK" is not the "CD16-positive,
   CD56-dim" kind: the label says nothing about CD16), nor is one without a lineage word the label
   names ("B intermediate" is no intermediate monocyte, "Transitional DC" no transitional stage B cell);
5. ``ancestor``: when the similarity confidence is below ``ancestor_below`` and the top candidates
   share a specific enough ancestor, that ancestor, at the same confidence.

A label of alternatives ("Mono/Mac", "T/NK", "HSC/MPP": every part has a word that is not a marker, so
"CD4+/CD25 T Reg" is one label) is first matched part by part, one-word parts sharing the last part's
rest ("Tcm/Naive helper T cells" is "Tcm helper T cells" or "Naive helper T cells"); when every part
maps, the answer is their shared term, or their nearest specific enough common ancestor (method
``ancestor``, the weakest part's confidence x 0.9); otherwise the whole label goes through the stages
above.

Terms the ontology marks as specific to a species ("..., human", "(Mmus)") are left out for another
species; with no species configured they are used only when no general term matches.

Below ``min_confidence`` the label stays unmapped (``method`` "unmapped", guesses in ``alternatives``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmgene.harmonise import rules
from mmgene.harmonise.config import HarmoniseConfig
from mmgene.harmonise.similarity import similarity_index, text_model_scores
from mmgene.harmonise.text import key, plain
from mmgene.harmonise.tissue import Tissue, parse_tissue
from mmgene.harmonise.vocabulary import Name, Vocabulary, vocabulary
from mmgene.text.ontology import normalise_term_id

#: highest confidence a similarity match earns (an exact rewrite earns more).
SIMILARITY_CEILING = 0.8
#: an ancestor with more descendants than this is too general to be an answer ("cell", "leukocyte").
MAX_ANCESTOR_DESCENDANTS = 400


#: methods by which a rule chose the term (the ontology's own name or synonym, or a rewrite of the label
#: into one), not a similarity score: a match by one of them is the term the label spells out
RULE_METHODS = frozenset({"exact-name", "synonym", "abbreviation"})


@dataclass
class Match:
    """The term chosen for one label, how, and the runners-up ``[(term_id, score), ...]``."""

    term_id: str
    confidence: float
    method: str
    note: str = ""
    alternatives: list[tuple[str, float]] = field(default_factory=list)


#: lineage words: a label that names one ("B intermediate", "Transitional DC") is matched by similarity
#: only to names that say one of its lineage words too (no intermediate monocyte, no transitional stage
#: B cell; "Mono-mac" may be either).
_LINEAGE_WORDS = frozenset({
    "b", "t", "dendritic", "killer", "monocyte", "macrophage", "neutrophil", "eosinophil", "basophil", "mast",
    "megakaryocyte", "erythrocyte", "plasma",
})


def _consistent(claimed: dict[str, str], stated: dict[str, str]) -> bool:
    """Whether a name's markers are all stated by the label, none with the opposite sign (+ against -)."""
    return all(m in stated and {sign, stated[m]} != {"+", "-"} for m, sign in claimed.items())


def shared_tail(parts: list[str]) -> list[str]:
    """Alternatives written once for a shared rest ("Tcm/Naive helper T cells") spelled out in full:
    one-word parts before a longer last part take its words after the first ("Tcm helper T cells")."""
    *first, last = parts
    rest = last.split(None, 1)[1:]
    if not rest or any(len(p.split()) > 1 for p in first):
        return parts
    return [f"{p} {rest[0]}" for p in first] + [last]


class Matcher:
    """Matches labels for one configuration (tissue, species) against the shared vocabulary."""

    def __init__(self, config: HarmoniseConfig) -> None:
        self.config = config
        self.vocab: Vocabulary = vocabulary()
        self.tissue: Tissue | None = parse_tissue(config.tissue)
        self._tissue_cache: dict[str, bool] = {}
        self._tagged = False

    # -- filters and ranking -------------------------------------------------------------------------
    def allowed(self, term_id: str) -> bool:
        """False for terms specific to another species than the configured one; with no species
        configured, species-specific terms are allowed only in the fallback pass (``_tagged``)."""
        tag, species = self.vocab.species.get(term_id, ""), self.config.species
        if not tag:
            return True
        if species is None:
            return self._tagged
        if tag == "non-mammal":
            return species not in ("human", "mouse")
        return tag == species

    def in_tissue(self, term_id: str) -> bool:
        """Whether the term's names, definition or ancestors mention the tissue hint."""
        if self.tissue is None:
            return False
        if term_id not in self._tissue_cache:
            self._tissue_cache[term_id] = self.tissue.mentions(self.vocab.context_text(term_id))
        return self._tissue_cache[term_id]

    def _lookup(self, words: list[str] | tuple[str, ...]) -> list[Name]:
        """Allowed names with the key of ``words``, best first: general over species-specific terms,
        a tissue mention, a label over a synonym, then the id."""

        def order(n: Name) -> tuple:
            return (
                self.vocab.species.get(n.term_id, "") != "",
                not self.in_tissue(n.term_id),
                not n.is_label,
                n.term_id,
            )

        return sorted((n for n in self.vocab.lookup(words) if self.allowed(n.term_id)), key=order)

    # -- similarity ----------------------------------------------------------------------------------
    def _similar(self, queries: list[tuple[str, ...]]) -> list[tuple[str, float]]:
        """``(term_id, score)`` best first: best name per term, tissue bonus added, disallowed terms and
        names that claim markers the label does not state left out."""
        index = similarity_index(self.vocab)
        scores = index.scores(queries)
        if self.config.use_text_model:
            texts = [" ".join(q) for q in queries if q]
            from mmgene.harmonise.similarity import TEXT_MODEL_WEIGHT

            np.maximum(scores, TEXT_MODEL_WEIGHT * text_model_scores(self.vocab, texts), out=scores)
        stated = {marker: sign for words in queries for marker, sign in rules.marker_signs(words).items()}
        lineage = set(rules.expand(list(queries[0]), self.tissue)) & _LINEAGE_WORDS if queries else set()
        best: dict[str, float] = {}
        for i in np.argsort(-scores, kind="stable")[: self.config.candidates * 8]:
            if scores[i] <= 0:
                break
            name = self.vocab.names[i]
            term = name.term_id
            if (
                term not in best
                and self.allowed(term)
                and _consistent(rules.marker_signs(name.words), stated)
                and (not lineage or lineage & set(name.words))
            ):
                best[term] = float(scores[i])
            if len(best) >= self.config.candidates:
                break
        ranked = {t: min(1.0, s + (self.config.tissue_weight if self.in_tissue(t) else 0.0)) for t, s in best.items()}
        return sorted(ranked.items(), key=lambda item: (-item[1], item[0]))

    def _common_ancestor(self, terms: list[str]) -> str | None:
        """The nearest ancestor all ``terms`` share, if it is specific enough."""
        lineages = [self.vocab.ancestors(t) for t in terms]
        shared = set(lineages[0]).intersection(*lineages[1:])
        if not shared:
            return None
        nearest = min(shared, key=lambda a: (max(line[a] for line in lineages), a))
        if len(self.vocab.parser.get_term_descendants(nearest)) > MAX_ANCESTOR_DESCENDANTS:
            return None
        return nearest

    # -- the stages ----------------------------------------------------------------------------------
    def match(self, label: str) -> Match:
        """The best term for one (non-empty) author label."""
        as_id = normalise_term_id(str(label))  # "CL:0000236", "cl:0000236", "CL_0000236", the PURL
        if as_id in self.vocab.labels:  # a label column of ids (cell_type_ontology_term_id) names its terms
            return Match(as_id, 1.0, "exact-name", "the label is the term's id")
        if as_id is not None:
            return Match("", 0.0, "unmapped", f"{as_id} is no current Cell Ontology term")
        if not any(ch.isalnum() for ch in str(label)):  # "+", "?", "***": "+" alone read as "positive"
            return Match("", 0.0, "unmapped", "names no cell type")
        either = self._alternatives(label)
        if either is not None:
            return either
        words = self.vocab.words_of(label)
        cleaned = rules.strip_noise(words)
        if (
            key(words) in rules.NOT_A_CELL_TYPE
            or plain(label) in rules.NOT_A_CELL_TYPE
            or not key(cleaned)
            or key(cleaned).isdigit()
        ):
            return Match("", 0.0, "unmapped", "names no cell type")
        if all(w in rules.STATE_WORDS or w == "cell" for w in cleaned):  # "Proliferating", "Cycling cells"
            return Match("", 0.0, "unmapped", "names a cell state, no cell type")
        variants, convention = rules.variants(words, self.tissue)
        # tissue words come from the hint, not the label: they re-rank (tissue_weight) but never score
        # (fixed after looking at the shared corpus's failures: "N3" + brain scored "brain pericyte" at 0.53)
        queries = [tuple(cleaned), *(v.words for v in variants if not v.tissue)]
        similar = self._similar(queries)
        chosen = self._exact(words, variants, convention)
        if chosen is None and self.config.species is None:  # fallback pass: species-specific terms too
            self._tagged = True
            try:
                chosen = self._exact(words, variants, convention)
                similar = similar or self._similar(queries)
            finally:
                self._tagged = False
        if chosen is None:
            if max(len(w) for w in key(cleaned).split()) <= 2:  # "S", "G1": no rule read it, and a letter or two
                # shares spellings with names at random ("S" scored "Kolmer's cell" at 0.72, "G1" a retinal cell)
                return Match("", 0.0, "unmapped", "a code of one or two characters that no rule reads")
            chosen = self._by_similarity(similar)
        others = [(t, round(s * SIMILARITY_CEILING, 3)) for t, s in similar if t != chosen.term_id]
        chosen.alternatives = (chosen.alternatives + others)[: self.config.alternatives]
        if chosen.confidence < self.config.min_confidence:
            guess = [(chosen.term_id, chosen.confidence)] if chosen.term_id else []
            return Match(
                "",
                chosen.confidence,
                "unmapped",
                f"best guess below min_confidence ({chosen.method})",
                (guess + chosen.alternatives)[: self.config.alternatives],
            )
        return chosen

    def _alternatives(self, label: str) -> Match | None:
        """The match of a label of alternatives ("Mono/Mac"): the parts' shared term or common ancestor."""
        parts = [p for p in (part.strip() for part in str(label).split("/")) if p]
        if len(parts) < 2 or any(not rules.has_cell_word(self.vocab.words_of(p)) for p in parts):
            return None
        parts = shared_tail(parts)
        found = [self.match(p) for p in parts]
        if any(not f.term_id for f in found):
            return None
        terms = sorted({f.term_id for f in found})
        confidence = min(f.confidence for f in found)
        if len(terms) == 1:
            return Match(terms[0], confidence, found[0].method, f"every alternative of the label maps to it ({' / '.join(parts)})")
        ancestor = self._common_ancestor(terms)
        if ancestor is None:
            return None
        note = f"nearest common ancestor of the label's alternatives: {', '.join(f'{p} -> {t}' for p, t in zip(parts, (f.term_id for f in found)))}"
        return Match(ancestor, round(confidence * rules.ABBREVIATION, 3), "ancestor", note, [(t, confidence) for t in terms])

    def _exact(self, words: list[str], variants: list[rules.Variant], convention: bool) -> Match | None:
        hits = self._lookup(words)
        labels = [n for n in hits if n.is_label]
        first = labels[0] if labels else (hits[0] if hits and not convention else None)
        child = self._tissue_child(words, first.term_id) if first is not None else None
        if child is not None:
            note = f"{child.text!r}, the tissue's kind of {self.vocab.labels[first.term_id]!r}"
            return Match(child.term_id, rules.ABBREVIATION, "abbreviation", note, self._rest(hits, child))
        if labels:
            return Match(
                labels[0].term_id, 1.0, "exact-name", "the label is the term's name", self._rest(hits, labels[0])
            )
        if hits and not convention:
            return Match(
                hits[0].term_id, 1.0, "synonym", f"the label is a synonym: {hits[0].text!r}", self._rest(hits, hits[0])
            )
        for variant in variants:
            found = self._lookup(variant.words)
            if found:
                best = self._tissue_child(list(variant.words), found[0].term_id) or found[0]
                if hits and best.term_id == hits[0].term_id:  # the rewrite agrees with the synonym
                    return Match(
                        hits[0].term_id, 1.0, "synonym", f"the label is a synonym: {hits[0].text!r}", self._rest(hits, hits[0])
                    )
                kind = "the name" if found[0].is_label else "a synonym"
                note = f"{' '.join(variant.words)!r} ({variant.note}) is {kind} {found[0].text!r}"
                if best is not found[0]:
                    note += f"; {best.text!r} is the tissue's kind of it"
                return Match(best.term_id, variant.confidence, "abbreviation", note, self._rest(found, best))
        if hits:
            return Match(
                hits[0].term_id, 1.0, "synonym", f"the label is a synonym: {hits[0].text!r}", self._rest(hits, hits[0])
            )
        return None

    def _tissue_child(self, words: list[str], term_id: str) -> Name | None:
        """A term below ``term_id`` named by the label plus the tissue's words ("acinar" in pancreas ->
        "pancreatic acinar cell"); never a term elsewhere in the ontology ("B" -> "pancreatic B cell")."""
        for extra in self.tissue.qualifiers if self.tissue is not None else ():
            for name in self._lookup([*words, *extra.split()]):
                if name.term_id != term_id and term_id in self.vocab.ancestors(name.term_id):
                    return name
        return None

    def _rest(self, names: list[Name], chosen: Name) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        for n in names:
            if n.term_id != chosen.term_id and all(n.term_id != t for t, _ in out):
                out.append((n.term_id, 1.0))
        return out

    def _by_similarity(self, similar: list[tuple[str, float]]) -> Match:
        if not similar:
            return Match("", 0.0, "unmapped", "no ontology name shares a word or spelling with the label")
        term, score = similar[0]
        confidence = round(SIMILARITY_CEILING * score, 3)
        if confidence < self.config.ancestor_below:
            top = [t for t, s in similar[: self.config.ancestor_pool] if s >= 0.8 * score]
            ancestor = self._common_ancestor(top) if len(top) > 1 else None
            if ancestor and ancestor != term:
                return Match(ancestor, confidence, "ancestor", f"shared ancestor of the closest terms {', '.join(top)}")
        return Match(term, confidence, "similarity", f"closest name (score {score:.2f})")
