"""Rewrite rules from an author label to Cell Ontology words, and the variants of a label they give.

The shorthand tables and where they come from are in :mod:`mmgene.text.shorthand`. The rules here
are general conventions:

- "+"/"-"/"hi"/"lo"/"bright"/"dim" are the ontology's "-positive"/"-negative"/"-high"/"-low"/"-bright"/
  "-dim" (done by :mod:`mmgene.harmonise.text`), and a bare marker before a cell noun ("CD8 T") means
  positive;
- the monocyte nomenclature of Ziegler-Heitbrock et al. (Blood 2010): classical CD14++CD16-,
  intermediate CD14++CD16+, non-classical CD14+CD16++, so "CD16 monocytes" are non-classical; in mouse
  Ly6C-high monocytes are the classical and Ly6C-low the non-classical ones;
- CD4 and CD8 T cells in single-cell papers are alpha-beta T cells (the Cell Ontology names them
  "CD4-positive, alpha-beta T cell"), unless the label says gamma-delta, and naive ones are the
  ontology's "naive thymus-derived" CD4/CD8 T cells;
- cluster numbers ("Mono 2", "0_CD4 T", and "Mono2", "AP1" when the letters are known shorthand) are not
  part of a name, except after "type", "group", "layer" ...;
- CD4 or CD8 with only T-cell qualifiers and no cell noun ("CD8+ Naive", "CD4+/CD45RO+ Memory") is a T
  cell;
- a T-cell label that names no CD4/CD8 but one role word means the atlases' lineage of it: helper T cells
  are CD4, cytotoxic T cells CD8 ("Tem cytotoxic T cells" -> effector memory CD8-positive, alpha-beta T
  cell); a label that is itself a term's name ("cytotoxic T cell") still matches that term first;
- a role word beside the marker it stands for, in a label that also names a state, is that lineage and
  no function ("CD8+/CD45RA+ Naive Cytotoxic" is a naive CD8 T cell; written after seeing that label of
  the shared corpus fail);
- one positive marker alone names the population sorted by it ("CD34+" -> hematopoietic precursor
  cell; the table is ``MARKER_POPULATIONS``);
- the Cell Ontology's own naming patterns: tissue-qualified names ("pancreatic A cell", "delta cell of
  pancreatic islet"), so a bare label plus a tissue hint is tried as "<tissue adjective> <label>" and
  "<label> <tissue noun>" (word order and "of" are ignored when matching).

:func:`variants` lists the rewritten forms of one label, most faithful first, each with the confidence
an exact ontology hit would earn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmgene.text.shorthand import (
    ABBREVIATIONS,
    GENE_TO_CD,
    MARKER_POPULATIONS,
    NOT_A_CELL_TYPE,
    STATE_WORDS,
    T_QUALIFIERS,
    T_ROLE_LINEAGE,
    TISSUE_ABBREVIATIONS,
)
from mmgene.harmonise.tissue import Tissue
from mmgene.text.labels import T_CELL_MARKERS

__all__ = [
    "NOT_A_CELL_TYPE",
    "Variant",
    "conventions",
    "expand",
    "has_cell_word",
    "marker_population",
    "marker_signs",
    "markers",
    "restated_roles",
    "strip_noise",
    "variants",
]

#: words before which a trailing number is part of a name ("type 2", "group 3", "layer 5").
_NUMBERED = frozenset({"type", "group", "layer", "segment", "stage", "grade", "l", "th", "ilc"})
_MARKER = re.compile(r"^cd\d+[a-z]{0,2}$")
_SIGN = re.compile(r"(\+|-|\^[a-z]+)$")
_NUMBERED_SHORTHAND = re.compile(r"([a-z]+?)(\d+)")
_T_POSITIVE = frozenset(m.lower() + "+" for m in T_CELL_MARKERS)
#: words that make a T-cell label no alpha-beta T cell, or one that already says so
_NOT_ALPHA_BETA = frozenset({"gamma", "delta", "alpha", "nk", "natural"})

#: confidence of an exact ontology hit reached through each kind of rewrite.
ABBREVIATION = 0.9
TISSUE_QUALIFIED = 0.85
STATE_DROPPED = 0.75
#: a label of one marker names a population by convention only
MARKER_ONLY = 0.75


@dataclass(frozen=True)
class Variant:
    """One rewritten form of a label: its words, the confidence an exact hit earns, and what was done."""

    words: tuple[str, ...]
    confidence: float
    note: str
    #: the tissue's words were added (they come from the hint, not the label)
    tissue: bool = False


def _split_sign(word: str) -> tuple[str, str]:
    match = _SIGN.search(word)
    return (word[: match.start()], match.group(1)) if match else (word, "")


def _is_marker(word: str) -> bool:
    return bool(_MARKER.match(_split_sign(word)[0]))


def has_cell_word(words: list[str] | tuple[str, ...]) -> bool:
    """Whether ``words`` hold a word that is not a CD marker (so they can name a cell on their own)."""
    return any(not _is_marker(w) for w in words)


def marker_signs(words: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``{marker: sign}`` of the CD markers among ``words`` (``"cd16+"`` -> ``{"cd16": "+"}``)."""
    return dict(_split_sign(w) for w in words if _is_marker(w))


def strip_noise(words: list[str]) -> list[str]:
    """Drop cluster numbers: a leading number, a trailing one (not after "type"/"group"/...), "cluster N"."""
    out = [w for w in words if w not in ("cluster", "subcluster", "subset", "population", "like")]
    while out and out[0].isdigit():
        out = out[1:]
    while len(out) > 1 and out[-1].isdigit() and out[-2] not in _NUMBERED:
        out = out[:-1]
    return out


def markers(words: list[str]) -> list[str]:
    """Gene symbols as CD names, and a bare CD marker followed by other words as positive ("CD8 T")."""
    out: list[str] = []
    for word in words:
        base, sign = _split_sign(word)
        out.append(GENE_TO_CD.get(base, base) + sign)
    has_noun = any(not _is_marker(w) for w in out)
    return [w + "+" if has_noun and _MARKER.match(w) else w for w in out]


def expand(words: list[str], tissue: Tissue | None) -> list[str]:
    """Replace shorthand by ontology words (tissue-specific shorthand first, then the general table)."""
    table = dict(ABBREVIATIONS)
    if tissue is not None:
        for name in tissue.names:
            table.update(TISSUE_ABBREVIATIONS.get(name, {}))
    out: list[str] = []
    for word in words:
        base, sign = _split_sign(word)
        if base not in table and base.endswith("s") and base[:-1] in table:  # "Tcells", "DCs"
            base = base[:-1]
        th = re.fullmatch(r"th(\d+)", base)
        numbered = _NUMBERED_SHORTHAND.fullmatch(base) if base not in table else None
        if numbered and numbered.group(1) in table and not th:  # "Mono2", "AP1": a cluster number
            base = numbered.group(1)
        if th:
            out += ["t", "helper", th.group(1)]
        elif base in table and not sign:
            out += table[base].split()
        else:
            out.append(word)
    return out


def marker_population(words: list[str]) -> list[str] | None:
    """Ontology words for a label that is one positive marker and nothing else ("CD34+" -> "hematopoietic
    precursor"), or None."""
    if len(words) != 1:
        return None
    base, sign = _split_sign(words[0])
    population = MARKER_POPULATIONS.get(base)
    return population.split() if population and sign in ("", "+", "^high", "^bright") else None


def restated_roles(words: list[str]) -> list[str]:
    """Role words of a T-cell label that only restate the CD4/CD8 it names ("cytotoxic" beside CD8+)
    when the label also names a state: then the role is the lineage, not a function ("CD8+ Naive
    Cytotoxic" is a naive CD8 T cell, not an effector), and the ontology names the state on the marker."""
    restated = [w for w in words if w in T_ROLE_LINEAGE and T_ROLE_LINEAGE[w] in words]
    has_state = any(w in T_QUALIFIERS and w not in T_ROLE_LINEAGE for w in words)
    return restated if has_state else []


def conventions(words: list[str]) -> list[list[str]]:
    """Single-cell naming conventions the ontology does not spell out: the rewrites they call for, if any.

    - "CD16 monocyte" (CD16+ without CD14+) is a non-classical monocyte, in the ontology's words
      "CD14-low, CD16-positive monocyte" (human) or "non-classical monocyte"; CD14+CD16+ is
      "CD14-positive, CD16-positive monocyte" (intermediate);
    - a Ly6C-high (mouse) monocyte is a classical monocyte, a Ly6C-low one non-classical;
    - a CD4+ or CD8+ T cell is an alpha-beta T cell unless gamma-delta is named, and a naive one is the
      ontology's "naive thymus-derived" one (its only naive CD4/CD8 alpha-beta T cells); CD4+ or CD8+
      with only T-cell qualifiers ("CD8+/CD45RA+ Naive Cytotoxic") names a T cell;
    - a helper T cell without CD4/CD8 is a CD4-positive, a cytotoxic one a CD8-positive alpha-beta T cell
      (the role word kept, then dropped: "naive CD8-positive, alpha-beta T cell" does not say "cytotoxic");
    - "Lymphoid" or "Lymphoid cells" alone means lymphocytes (the ontology has no "lymphoid cell").

    A role word beside the marker it stands for ("CD8+ Naive Cytotoxic") is left out only in a last
    variant (:func:`variants`), so that a name which says both ("CD4-positive helper T cell") comes first.
    """
    s = set(words)
    if s <= {"lymphoid", "cell"} and "lymphoid" in s:  # the adjective alone: the lineage's cells
        return [["lymphocyte"]]
    if "t" not in s and s & _T_POSITIVE and all(_is_marker(w) or w in T_QUALIFIERS for w in words):
        words, s = [*words, "t"], s | {"t"}
    if "monocyte" in s and "classical" not in s and s & {"ly6c^high", "ly6c+", "ly6c^low", "ly6c-"}:
        rest = [w for w in words if not w.startswith("ly6c") and w != "monocyte"]
        high = bool(s & {"ly6c^high", "ly6c+"})
        return [[*rest, "classical", "monocyte"] if high else [*rest, "non", "classical", "monocyte"]]
    cd16 = s & {"cd16+", "cd16^high", "cd16^bright"}
    if "monocyte" in s and cd16 and "classical" not in s:
        rest = [w for w in words if w not in cd16 and not w.startswith("cd14") and w != "monocyte"]
        if "cd14+" in s:
            return [[*rest, "cd14+", "cd16+", "monocyte"], [*rest, "intermediate", "monocyte"]]
        return [[*rest, "cd14^low", "cd16+", "monocyte"], [*rest, "non", "classical", "monocyte"]]
    if "t" not in s or s & _NOT_ALPHA_BETA:
        return []
    if s & {"cd4+", "cd8+"}:
        alpha_beta = [*words, "alpha", "beta"]
        return [[*alpha_beta, "thymus", "derived"], alpha_beta] if "naive" in s else [alpha_beta]
    lineages = {T_ROLE_LINEAGE[w] for w in s & T_ROLE_LINEAGE.keys()}
    if len(lineages) == 1 and not s & {"cd4-", "cd8-"}:
        lineage = lineages.pop()
        kept = [*words, lineage, "alpha", "beta"]
        return [kept, [w for w in kept if w not in T_ROLE_LINEAGE]]
    return []


def variants(label_words: list[str], tissue: Tissue | None) -> tuple[list[Variant], bool]:
    """Rewritten forms of a label (most faithful first) and whether a naming convention or shorthand
    applied (either outranks a synonym that reads the label's words as another term: "IPC" in brain is
    an intermediate progenitor, not the plasmacytoid dendritic cell synonym; "DC2" is a cDC2 as
    single-cell atlases write it, not the older pDC synonym)."""
    core = markers(strip_noise(label_words))
    expanded = expand(core, tissue)
    population = marker_population(core)
    shorthand = expanded != core or population is not None
    ruled = conventions(expanded)
    out: list[Variant] = []
    seen: set[tuple[str, ...]] = set()

    def add(words: list[str], confidence: float, note: str, qualified: bool = False) -> None:
        key = tuple(sorted(set(words)))
        if words and key not in seen:
            seen.add(key)
            out.append(Variant(tuple(words), confidence, note, qualified))

    if population is not None:
        add(population, MARKER_ONLY, "one marker alone: the population sorted by it")

    bases = [(words, "naming convention") for words in ruled] + [(expanded, "abbreviations expanded")]
    if tissue is not None:
        bases.append((expand(core, None), "general abbreviations"))
    bases.append((core, "markers"))
    for words, note in bases:
        add(words, ABBREVIATION, note)
    faithful = bases[: len(ruled) + 1]  # the conventions' rewrites and the expanded label
    if tissue is not None:
        for words, note in faithful:
            for extra in tissue.qualifiers:
                add(
                    [*words, *extra.split()], TISSUE_QUALIFIED, f"{note}, qualified by tissue {extra!r}", qualified=True
                )
    for words, note in faithful:
        stateless = [w for w in words if w not in STATE_WORDS]
        if stateless != words:
            add(stateless, STATE_DROPPED, f"{note}, cell state left out")
            for extra in tissue.qualifiers if tissue is not None else ():
                add(
                    [*stateless, *extra.split()],
                    STATE_DROPPED,
                    f"{note}, cell state left out, qualified by tissue {extra!r}",
                    qualified=True,
                )
    for words, note in faithful:
        restated = restated_roles(words)
        if restated:
            add([w for w in words if w not in restated], ABBREVIATION, f"{note}, {' '.join(restated)} left out (the marker says it)")
    return out, bool(ruled) or shorthand
