"""A tissue hint ("pancreas", "PBMC", "fetal neocortex") as the words the Cell Ontology uses for that tissue.

Why: a bare label means different cells in different tissues ("alpha" in islets is a pancreatic A
cell; "HSC" in liver is a hepatic stellate cell). The hint does two things: it adds the tissue's
adjective or noun to a label ("pancreatic alpha cell", "delta cell of pancreatic islet"), and it
boosts candidate terms whose names, definition or ancestors mention the tissue. The table below is
general anatomy (organ -> adjectives and parts the ontology's names use), not fitted to any dataset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: tissue -> (aliases a hint may use, words added to a label, stems looked for in a term's text).
TISSUES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "blood": (
        ("blood", "pbmc", "pbmcs", "peripheral blood", "bone marrow", "marrow", "cord blood"),
        (),
        ("blood", "hematopoietic", "haematopoietic", "leukocyte", "marrow"),
    ),
    "pancreas": (
        ("pancreas", "pancreatic", "islet", "islets"),
        ("pancreatic", "pancreatic islet", "pancreas"),
        ("pancrea", "islet"),
    ),
    "kidney": (
        ("kidney", "renal", "nephron"),
        ("kidney", "renal"),
        ("kidney", "renal", "nephron", "glomerul", "tubul"),
    ),
    "lung": (
        ("lung", "pulmonary", "airway", "alveolar"),
        ("lung", "pulmonary"),
        ("lung", "pulmonary", "alveol", "airway", "bronch"),
    ),
    "brain": (
        ("brain", "cortex", "neocortex", "cortical", "cerebral", "hippocampus", "cerebellum", "nervous"),
        ("brain",),
        ("brain", "neur", "glia", "cortex", "cortical", "cerebr", "nervous"),
    ),
    "liver": (("liver", "hepatic"), ("hepatic", "liver"), ("liver", "hepat", "sinusoid")),
    "heart": (("heart", "cardiac"), ("cardiac", "heart"), ("heart", "cardiac", "cardio")),
    "skin": (
        ("skin", "epidermis", "dermis", "cutaneous"),
        ("skin", "epidermal", "dermal"),
        ("skin", "epiderm", "derm", "cutaneous"),
    ),
    # the plain hint names no part, so it adds no part's words ("Paneth" in gut is not the colon's kind)
    "intestine": (("intestine", "intestinal", "gut"), ("intestinal", "intestine"), ("intestin", "enter", "crypt", "villus")),
    "small intestine": (
        ("small intestine", "ileum", "ileal", "jejunum", "duodenum"),
        ("small intestine", "intestinal"),
        ("small intestin", "ileum", "jejun", "duoden", "villus"),
    ),
    "colon": (
        ("colon", "colonic", "large intestine", "rectum", "rectal"),
        ("colon", "large intestine", "colonic"),
        ("colon", "large intestin", "rect"),
    ),
    "stomach": (("stomach", "gastric"), ("gastric", "stomach"), ("stomach", "gastric")),
    "spleen": (("spleen", "splenic"), ("splenic", "spleen"), ("spleen", "splenic")),
    "thymus": (("thymus", "thymic"), ("thymic", "thymus"), ("thymus", "thymic", "thymocyte")),
    "lymph node": (("lymph node", "lymph nodes"), ("lymph node",), ("lymph node",)),
    "muscle": (("muscle", "skeletal muscle"), ("skeletal muscle",), ("muscle", "myo")),
    "eye": (("eye", "retina", "retinal"), ("retinal",), ("retin", "eye", "photoreceptor")),
    "breast": (("breast", "mammary"), ("mammary",), ("mammary", "breast")),
    "prostate": (("prostate",), ("prostate",), ("prostat",)),
    "testis": (("testis", "testes"), ("testicular",), ("testi", "sperm", "seminiferous")),
    "ovary": (("ovary", "ovarian"), ("ovarian",), ("ovar", "oocyte", "follic")),
    "adipose": (("adipose", "fat"), ("adipose",), ("adipo", "fat")),
    "bone": (("bone", "cartilage"), ("bone",), ("bone", "osteo", "chondro")),
}


@dataclass(frozen=True)
class Tissue:
    """A parsed tissue hint: the known tissues it names, words to qualify labels with, stems to look for."""

    hint: str
    names: tuple[str, ...]
    qualifiers: tuple[str, ...]
    stems: tuple[str, ...]

    def mentions(self, text: str) -> bool:
        """Whether lower-case ``text`` (a term's names, definition and ancestors) mentions this tissue."""
        return any(re.search(r"\b" + re.escape(stem), text) for stem in self.stems)


def parse_tissue(hint: str | None) -> Tissue | None:
    """The :class:`Tissue` for a free-text hint; an unknown tissue still boosts terms that mention its words."""
    if hint is None or not str(hint).strip():
        return None
    text = " " + re.sub(r"[^a-z]+", " ", str(hint).lower()).strip() + " "
    names = tuple(name for name, (aliases, _, _) in TISSUES.items() if any(f" {a} " in text for a in aliases))
    if not names:
        words = tuple(w for w in text.split() if len(w) > 3)
        return Tissue(str(hint), (), (), words)
    qualifiers = tuple(q for n in names for q in TISSUES[n][1])
    stems = tuple(s for n in names for s in TISSUES[n][2])
    return Tissue(str(hint), names, qualifiers, stems)
