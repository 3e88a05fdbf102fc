"""Cell-type names as comparable token lists: one normaliser for ontology names and author labels alike.

Why one normaliser: "CD14+ Monocytes", "CD14-positive monocyte" and "cd14 POS monocyte" must meet
on the same tokens. Surface differences (case, accents, Greek letters, ``_``/``/``/``.`` separators,
hyphens) are removed, and a marker's sign is fused to the marker so that "CD4+ CD8-" and "CD4- CD8+"
stay different once word order is ignored: ``cd4+``, ``cd8-``, ``cd56^bright``.
"""

from __future__ import annotations

import re

from mmgene.text.labels import MINUS_SIGN, fold_text

#: words that qualify a preceding marker, and the one spelling each is written as.
SIGNS = {
    "positive": "+",
    "pos": "+",
    "negative": "-",
    "neg": "-",
    "high": "^high",
    "hi": "^high",
    "bright": "^bright",
    "low": "^low",
    "lo": "^low",
    "dim": "^dim",
}
#: words that carry no meaning in a cell-type name once order is ignored ("cell of the islet").
FILLER = frozenset({"cell", "of", "the", "in", "and", "a", "an", "type"})
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4"}
_ATTACHED = re.compile(r"\b(cd\d+[a-z]?|ly6c)(hi|high|lo|low|bright|dim|neg|pos)\b")
_PLUS = re.compile(r"\+")
_SPLIT = re.compile(r"[^a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` with signs fused to the marker before them.

    ``"CD14+ Monocytes"`` -> ``["cd14+", "monocytes"]``; ``"CD16-negative, CD56-bright NK cell"`` ->
    ``["cd16-", "cd56^bright", "nk", "cell"]``; ``"T_CD8"`` -> ``["t", "cd8"]``.
    """
    text = _ATTACHED.sub(r"\1 \2", fold_text(str(text)).replace("_", " "))  # "_" is a word character to regex
    text = _PLUS.sub(" positive ", text)
    text = MINUS_SIGN.sub(" negative ", text)
    words = [w for w in _SPLIT.split(text) if w]
    out: list[str] = []
    for word in words:
        if out and out[-1] == "type" and word in _ROMAN:
            word = _ROMAN[word]
        sign = SIGNS.get(word)
        if sign and out and out[-1][-1] not in "+-" and "^" not in out[-1]:
            out[-1] += sign
        else:
            out.append(word)
    return out


def singular(word: str, vocabulary: frozenset[str] | set[str]) -> str:
    """``word`` without a plural ending when the singular is a word of ``vocabulary`` ("cells" -> "cell")."""
    if len(word) < 3 or not word.endswith("s") or word.endswith("ss"):
        return word
    for cut, add in (("ies", "y"), ("es", ""), ("s", "")):
        if word.endswith(cut) and word[: -len(cut)] + add in vocabulary:
            return word[: -len(cut)] + add
    return word


def key(words: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> str:
    """Order-free matching key: the distinct meaningful tokens, sorted (``"b cell"`` and ``"B"`` meet)."""
    return " ".join(sorted({w for w in words if w not in FILLER}))


def plain(text: str) -> str:
    """Case-, accent- and punctuation-free text for whole-name comparison (keeps word order)."""
    return " ".join(tokens(text))
