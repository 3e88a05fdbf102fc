"""Label text: which labels are missing, and plain cell-type text for the others.

A label is **missing** when it is ``None``, NaN (also pandas' ``NA``/``NaT``), or a string that is empty
or only whitespace (:func:`missing_labels`). Such cells are dropped and counted by the label-column
checks of :mod:`mmgene.io.labels`, never turned into a class called ``"nan"`` or ``""``. Any other value
is a label, compared as text (a literal ``"nan"`` string is a label, since someone wrote it).

Label columns are written for people scanning a plot legend, not for a text encoder: plurals, slashes
between markers, abbreviations ("T Reg", "Mono", "DC") and bare adjectives ("Dendritic").
:func:`clean_label` turns them into plain cell-type text ("CD14+ Monocytes" -> "CD14+ monocyte") with
generic rules; the same cleaning is used for training captions and for zero-shot prompts so both
sides speak the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmgene.text.shorthand import ABBREVIATIONS


def _as_objects(values: Any) -> pd.Series:
    """``values`` as a Series of Python objects."""
    return pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values.astype(object)


def _texts(uniques: Any) -> np.ndarray:
    """Distinct labels as ``str``, with ``""`` for empty or whitespace-only text."""
    text = np.array([str(u) for u in uniques], dtype=object)
    blank = np.array([isinstance(u, (str, bytes)) and not u.strip() for u in uniques], dtype=bool)
    text[blank] = ""
    return text


def _factorized(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, text)``: each cell's code into ``text``, the distinct labels as ``str`` with ``""``
    for missing ones; code ``-1`` for None/NaN/NA. Work is per distinct label, not per cell.

    Values that compare equal share a code although their text may differ (``1``, ``1.0``, ``True``;
    ``0.0``, ``-0.0``): right for telling missing labels apart, not for a label's text (:func:`label_text`)."""
    codes, uniques = pd.factorize(_as_objects(values))
    return codes, _texts(uniques)


def _prints_alike(values: Any) -> bool:
    """Whether equal values of ``values`` always have the same text: a typed column (int, bool, str,
    categorical, datetime) holds one kind of value; an object column may mix ``1`` and ``True``, and a
    float one ``0.0`` and ``-0.0``."""
    dtype = getattr(values, "dtype", None)
    return dtype is not None and dtype != object and getattr(dtype, "kind", "") != "f"


def missing_labels(values: Any) -> np.ndarray:
    """Boolean mask: True where a label is missing (None, NaN, NA, empty or whitespace-only text)."""
    codes, text = _factorized(values)
    return (codes < 0) | (text[np.maximum(codes, 0)] == "") if len(text) else np.ones(len(codes), bool)


def spelling_key(label: str) -> str:
    """A label as two spellings of one name compare: case and runs of blanks ignored ("B cell", " b  cell")."""
    return " ".join(str(label).split()).casefold()


def label_text(values: Any) -> np.ndarray:
    """Labels as ``str`` (object array), with ``""`` where a label is missing. Each label keeps its own
    text, as users see it: ``1``, ``1.0`` and ``True`` stay ``"1"``, ``"1.0"`` and ``"True"``."""
    series = _as_objects(values)
    codes, uniques = pd.factorize(series)
    out = np.append(_texts(uniques), "").astype(object)[codes]  # code -1 picks the appended ""
    if _prints_alike(values):
        return out
    # a unique other than text may stand for equal values written differently: those cells by their own text
    merged = np.append([not isinstance(u, (str, bytes)) for u in uniques], False).astype(bool)[codes]
    if merged.any():
        out[merged] = [str(v) for v in series.to_numpy()[merged]]
    return out


#: the shorthand a caption spells out, as :data:`mmgene.text.shorthand.ABBREVIATIONS` reads it; the rest
#: (NK, CD4 T, ...) stays as the author wrote it.
SPELLED_OUT = ("treg", "mono", "dc", "pdc", "mdc", "mk", "hsc")
#: words that already name a kind of cell, so no "cell" is appended after them.
_CELL_NOUNS = re.compile(
    r"(cell|cyte|blast|clast|phil|phage|platelet|erythrocyte|progenitor|neuron|troph|phore|gamete|zygote|spermatid|gonium|precursor|fiber|myotube)s?$",
    re.IGNORECASE,
)
#: lineage letters written alone ("CD19+ B", "Naive T"): they need "cell" after them.
_LINEAGE = {"T", "B", "NK", "NKT", "ILC", "MAIT"}
#: CD markers that make a label with no lineage named a T cell ("CD4+/CD45RO+ Memory", "CD8+ Naive");
#: also read by the label harmoniser (:mod:`mmgene.harmonise.rules`).
T_CELL_MARKERS = ("CD3", "CD4", "CD8")
#: a hyphen that is a marker's minus sign ("CD16- monocyte", "CD25-/CD127-"), not a join ("T-cell"), in
#: lower-cased text; read by :func:`mmgene.text.ontology.find_term` and the label harmoniser.
MINUS_SIGN = re.compile(r"(?<=[a-z0-9])-(?=$|[\s/,;_)\]])")
#: Greek letters as the Cell Ontology spells them ("γδ T cell" is a "gamma-delta T cell").
GREEK_LETTERS = {
    "α": "alpha",
    "β": "beta",
    "γ": "gamma",
    "δ": "delta",
    "ε": "epsilon",
    "κ": "kappa",
    "λ": "lambda",
    "μ": "mu",
    "φ": "phi",
    "ø": "phi",
}
_GREEK_RUN = re.compile(f"[{''.join(GREEK_LETTERS)}]+")
#: typographic minus signs and hyphens (NFKD turns a superscript "⁻" into U+2212), written as "-" so
#: that "CD16− monocytes" keeps its sign instead of reading as "CD16 monocytes" (the CD16-positive ones).
_DASHES = str.maketrans({ch: "-" for ch in "\u2010\u2011\u2012\u2013\u2212\ufe63\uff0d"})


def fold_text(text: str) -> str:
    """Lower-case ASCII-like text of a name: Greek letters spelled out (a run of them one word apiece,
    "αβ" -> "alpha beta", so "αβ T cell" meets "alpha-beta T cell"), compatibility forms unfolded
    (superscript "⁺" -> "+", a non-breaking space -> " "), typographic dashes as "-", accents dropped."""
    text = _GREEK_RUN.sub(lambda m: " ".join(GREEK_LETTERS[ch] for ch in m.group()), text.lower())
    text = unicodedata.normalize("NFKD", text).translate(_DASHES)
    return "".join(ch for ch in text if not unicodedata.combining(ch))


_T_MARKERS = re.compile(rf"^CD({'|'.join(m[2:] for m in T_CELL_MARKERS)})[A-Z]?[+-]?$")


def _shorthand_pattern(key: str) -> re.Pattern[str]:
    """``key`` as a whole word in any case, also plural; "treg" also as "T Reg" and "T-reg"."""
    body = r"t[ -]?reg" if key == "treg" else re.escape(key)
    return re.compile(rf"(?<![\w+-]){body}s?(?![\w+-])", re.IGNORECASE)


def _spelled_out(key: str) -> str:
    """The cell type ``key`` stands for, as caption words ("treg" -> "regulatory T cell")."""
    words = [w.upper() if w.upper() in _LINEAGE else w for w in ABBREVIATIONS[key].split()]
    return " ".join(words if _CELL_NOUNS.search(words[-1]) else [*words, "cell"])


_SPELLED_OUT_PATTERNS = [(_shorthand_pattern(key), _spelled_out(key)) for key in SPELLED_OUT]


def _singular(word: str) -> str:
    """``word`` without a plural ``s`` ("cells" -> "cell"); "-ss", "-us" and "-is" words are not plurals."""
    if len(word) > 3 and word.isalpha() and word.lower().endswith("s") and not word.lower().endswith(("ss", "us", "is")):
        return word[:-1]
    return word


#: words that start a qualifier after the cell noun ("stromal cell of pancreas", "NK T cell secreting
#: interleukin-4"); a comma after the cell noun does too ("dendritic cell, human").
_QUALIFIER_WORDS = {"of", "in", "from", "secreting", "expressing", "producing"}


def _head_and_qualifier(words: list[str]) -> tuple[list[str], list[str]]:
    """The noun phrase that names the cell and what qualifies it: a trailing ``(...)`` group, and from
    a :data:`_QUALIFIER_WORDS` word or a comma after a cell noun on ("epithelial cell" + "of lung";
    "dendritic cell" + ", human", the comma as the qualifier's first word). English puts the plural
    and the cell noun in the head, so only the head is singularised and checked for a cell noun."""
    tail: list[str] = []
    opened = [i for i, w in enumerate(words) if w.startswith("(")]
    if words[-1].endswith(")") and opened and opened[-1] > 0:
        words, tail = words[: opened[-1]], words[opened[-1] :]
    for i in range(1, len(words) + 1):
        before = words[i - 1]
        after_noun = _CELL_NOUNS.search(_singular(before.rstrip(",")))
        if after_noun and before.endswith(",") and i < len(words):
            return [*words[: i - 1], before[:-1]], [",", *words[i:], *tail]
        if after_noun and i < len(words) and words[i].lower() in _QUALIFIER_WORDS:
            return words[:i], words[i:] + tail
    return words, tail


def _case(word: str) -> str:
    """Lower-case ordinary words; keep markers (CD14+), lineage letters (T, NK) and other capitals."""
    if any(c.isdigit() for c in word) or "+" in word or word in _LINEAGE or (word.isupper() and len(word) <= 5):
        return word
    return word.lower()


#: a marker gene or protein written as a word: letters, then digits ("CD14", "FCGR3A", "IL7R+").
_MARKER_WORD = re.compile(r"^[A-Za-z]{2,}\d+[A-Za-z]?[+-]?$")


def _noun_last(words: list[str]) -> list[str]:
    """The cell noun last, as English has it, for labels written noun first: markers after the cell
    noun or lineage letter go before it ("monocyte CD14" -> "CD14 monocyte", "T CD4" -> "CD4 T"), and
    a leading lineage letter goes after its words ("B naive" -> "naive B", "NK CD56bright" ->
    "CD56bright NK"); a number stays where it is ("monocyte 2")."""
    end = len(words)
    while end > 1 and _MARKER_WORD.match(words[end - 1]):
        end -= 1
    if end < len(words) and (words[end - 1] in _LINEAGE or _CELL_NOUNS.search(words[end - 1])):
        return [*words[end:], *words[:end]]
    rest = words[1:]
    if words[0] in _LINEAGE and rest and all(re.search("[A-Za-z]", w) and w not in _LINEAGE and not _CELL_NOUNS.search(w) for w in rest):
        return [*rest, words[0]]
    return words


def distinct_name(name: str, qualifier: str, taken: Sequence[str]) -> str:
    """``name``, or ``"name (qualifier)"`` when another class already shows ``name``: two classes shown
    alike would be one column of a report and one prompt."""
    return name if name not in taken else f"{name} ({qualifier})"


def clean_label(name: str) -> str:
    """Readable singular cell-type text for a label.

    Rules, in order: ``/`` and ``_`` become spaces; known abbreviations are expanded (``T Reg`` ->
    ``regulatory T``); what qualifies the cell noun ("of pancreas", ", human", "(sensu ...)") is split
    off and kept as written; in the rest, the last word and cell nouns become singular; ordinary words
    are lower-cased while markers, lineage letters and acronyms keep their case; CD3/CD4/CD8 markers
    without a lineage word add ``T``; and ``cell`` is appended unless the name already ends in a cell
    noun (``monocyte``, ``B cell``). A label written noun first is turned round ("Mono_CD14" -> "CD14
    monocyte", "B naive" -> "naive B cell"). So Cell Ontology names come back as written, up to case.

    >>> clean_label("CD14+ Monocytes")
    'CD14+ monocyte'
    >>> clean_label("CD4+/CD45RO+ Memory")
    'CD4+ CD45RO+ memory T cell'
    >>> clean_label("Stromal cells of pancreas")
    'stromal cell of pancreas'

    A missing label (None, NaN, empty or blank, see :func:`missing_labels`) gives ``""``, never "nan cell".
    """
    if missing_labels([name])[0]:
        return ""
    text = re.sub(r"[/_]+", " ", str(name)).strip()
    text = re.sub(r"\s+", " ", text)
    if not text:
        return text
    for pattern, words in _SPELLED_OUT_PATTERNS:
        text = pattern.sub(words, text)
    head, qualifier = _head_and_qualifier(text.split())
    last = len(head) - 1
    words = [_case(_singular(w) if i == last or _CELL_NOUNS.search(_singular(w)) else w) for i, w in enumerate(head)]
    words = _noun_last(words)
    has_lineage = any(w in _LINEAGE or _CELL_NOUNS.search(w) for w in words) or "killer" in words
    if not has_lineage and any(_T_MARKERS.match(w) for w in words):
        words.append("T")
    if not _CELL_NOUNS.search(words[-1]):
        words.append("cell")
    out = " ".join([*words, *(_case(w) for w in qualifier)]).replace(" , ", ", ")
    return re.sub(r"\bcell cell\b", "cell", out)


def split_markers(name: str) -> tuple[list[str], str]:
    """Leading marker words and the rest: ``"CD19+ B cell"`` -> ``(["CD19+"], "B cell")``."""
    words = name.split()
    markers = []
    while words and (any(c.isdigit() for c in words[0]) and words[0][:1].isalpha()) and len(words) > 1:
        markers.append(words.pop(0))
    return markers, " ".join(words)
