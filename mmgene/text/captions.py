"""Captions for cells: cell-type names through varied templates, Cell Ontology text, marker genes.

Three kinds of caption teach the text tower three things:

* **names** ("a CD14+ monocyte", "single-cell profile of a natural killer cell"): every label column,
  cleaned (:func:`mmgene.text.labels.clean_label`), plus the ontology label and synonyms when an
  ontology id column is given, each through :data:`TEMPLATES` (those that say where the cells come
  from, "a T cell from mouse lung", only when the class's :class:`~mmgene.text.origin.Origin` knows it);
* **definitions** (the Cell Ontology definition of the term), so descriptive queries work;
* **markers** ("CD8 T cell expressing CCL5+ NKG7+", "a cell expressing GZMB"): genes this cell expresses
  far above the training average. They tie gene names in text to expression, which is what lets a
  prompt such as "CD19+ B cell" or "CD56+ NK cell" find cells the training labels never named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mmgene.errors import ParameterError
from mmgene.text.labels import clean_label
from mmgene.text.origin import Origin
from mmgene.text.prompts import fill_templates, named_definition

#: name-caption templates; ``{label}`` takes each name of the class, ``{origin}`` ("human blood") and
#: ``{place}`` ("peripheral blood") the cells' origin (a template whose words are unknown is skipped)
TEMPLATES = (
    "{label}",
    "a {label}",
    "a {label} from {origin}",
    "a cell of type {label}",
    "single-cell transcriptome of a {label}",
    "this is a {label}",
    "a {place} {label}",
    "an example of a {label}",
)
MARKER_TEMPLATES = (
    "{name} expressing {genes}",
    "{plus} {name}",
    "a cell expressing {genes}",
    "{plus} cell",
    "a {name} with high {genes}",
)


@dataclass
class ClassText:
    """All text known for one class: names (cleaned labels, ontology label and synonyms) and definitions."""

    label: str
    names: list[str] = field(default_factory=list)
    definitions: list[str] = field(default_factory=list)
    #: the class's Cell Ontology id ("" when it has none)
    term_id: str = ""
    #: where this class's cells come from (unknown: captions do not say)
    origin: Origin = field(default_factory=Origin)

    def name_captions(self, with_origin: bool = True) -> list[str]:
        """Every name through every template; ``with_origin=False`` skips the templates that say where the
        cells come from."""
        return fill_templates(TEMPLATES, self.names, self.origin if with_origin else None)

    def all_captions(self, with_origin: bool = True) -> list[str]:
        """Name captions, then definitions (also prefixed by the first name)."""
        defs = list(self.definitions)
        if self.definitions and self.names:
            defs += [named_definition(self.names[0], d) for d in self.definitions]
        return list(dict.fromkeys(self.name_captions(with_origin) + defs))


def class_text(values: Sequence[str], term_id: str | None = None, origin: Origin | None = None) -> ClassText:
    """Names and definitions for one class, from its label values (one per label column), ontology id
    and the origin of its cells. A label value that is a Cell Ontology id stands for its term (the
    ontology id, when none is given) and is no name itself."""
    values = [values] if isinstance(values, str) else list(values)
    if not values:
        raise ParameterError("a class has no label value", "class_text(values=...)", "pass one label value per label column")
    from mmgene.text.ontology import normalise_term_id

    names: list[str] = []
    for value in values:
        as_id = normalise_term_id(value)
        if as_id is not None:  # a label column of ids names its term: its names, never "CL:0000236 cell"
            term_id = term_id or as_id
            continue
        for name in (clean_label(value), str(value)):
            if name and name not in names:
                names.append(name)
    definitions: list[str] = []
    if term_id:
        from mmgene.text.ontology import term_text

        term_id = normalise_term_id(term_id) or term_id  # "cl:0000236", "CL_0000236" or the PURL
        term = term_text(term_id)  # raises ParameterError for a value that is not a known CL id
        for name in term.names():
            if name not in names:
                names.append(name)
        if term.description:
            definitions.append(term.description)
    return ClassText(label=str(values[0]), names=names, definitions=definitions, term_id=term_id or "", origin=origin or Origin())


def marker_caption(name: str, genes: Sequence[str], rng: np.random.Generator) -> str:
    """One caption naming ``genes`` (1-3 marker genes of this cell) with a random template."""
    template = MARKER_TEMPLATES[int(rng.integers(len(MARKER_TEMPLATES)))]
    listed = ", ".join(genes[:-1]) + (" and " if len(genes) > 1 else "") + genes[-1]
    plus = " ".join(f"{g}+" for g in genes)
    return template.format(name=name, genes=listed, plus=plus)
