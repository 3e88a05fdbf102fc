"""Where cells come from ("human blood", "mouse lung"), as training captions and prompts say it.

Why: a caption is a fact the model learns. "a T cell from human blood" is true of a PBMC cell and
false of a mouse lung one, so the words of origin come from the data (a corpus manifest's
``species`` and ``tissue``, or the settings of one AnnData) and are left out when the tissue is not
known. Prompts say the origin only when the user gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: how a tissue is said before a cell type, where it differs from the tissue's own name
PLACE_WORDS = {"blood": "peripheral blood"}
#: spellings of a species (lower case) -> the word mmgene uses for it
SPECIES_WORDS = {
    "human": "human",
    "homo sapiens": "human",
    "homo_sapiens": "human",
    "hsapiens": "human",
    "hs": "human",
    "mouse": "mouse",
    "mus musculus": "mouse",
    "mus_musculus": "mouse",
    "mmusculus": "mouse",
    "mm": "mouse",
}


def species_word(value: str) -> str:
    """``"human"`` for "Homo sapiens", "hs", ...; any other species as written, in lower case and single-spaced."""
    name = " ".join(str(value).split()).lower()
    return SPECIES_WORDS.get(name, name)


@dataclass(frozen=True)
class Origin:
    """Species and tissue of some cells; either may be empty (unknown)."""

    species: str = ""
    tissue: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "species", " ".join(str(self.species or "").split()))
        object.__setattr__(self, "tissue", " ".join(str(self.tissue or "").split()))

    @property
    def phrase(self) -> str:
        """``"human blood"``: species and tissue, or ``""`` when the tissue is unknown."""
        return f"{self.species} {self.tissue}".strip() if self.tissue else ""

    @property
    def place(self) -> str:
        """``"peripheral blood"``, ``"lung"``: the tissue as said before a cell type (``""``: unknown)."""
        return PLACE_WORDS.get(self.tissue.lower(), self.tissue)

    def fill(self, template: str, label: str) -> str | None:
        """``template`` with ``label`` and this origin's words; ``None`` when it needs words this origin lacks."""
        needs_phrase, needs_place = "{origin}" in template, "{place}" in template
        if (needs_phrase and not self.phrase) or (needs_place and not self.place):
            return None
        return template.format(label=label, origin=self.phrase, place=self.place)
