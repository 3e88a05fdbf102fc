"""Settings of label harmonisation, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

from mmgene.errors import ParameterError, is_whole_number
from mmgene.text.origin import species_word


@dataclass(frozen=True)
class HarmoniseConfig:
    """How author labels are matched to Cell Ontology terms.

    tissue
        Free-text tissue of the cells ("pancreas", "PBMC", "fetal neocortex"): bare labels are also tried
        with the tissue's words ("alpha" -> "pancreatic alpha cell") and terms that mention the tissue
        are preferred. ``None``: no tissue preference.
    species
        ``"human"``, ``"mouse"`` (or ``"Homo sapiens"``, ``"Mus musculus"``) or another species: terms the
        ontology marks as specific to another species ("..., human", "(Mmus)") are left out. ``None``:
        none left out, general terms preferred.
    min_confidence
        Below this the label is left unmapped (``term_id`` empty; the guesses stay in ``alternatives``).
    candidates
        Ontology names scored by text similarity that are kept per label (before tissue re-ranking).
    alternatives
        Other terms listed beside the chosen one.
    tissue_weight
        Added to a similarity score when the term mentions the tissue.
    ancestor_below
        A similarity match with a confidence below this is replaced by the nearest common ancestor of the
        top candidates when they share one that is specific enough.
    ancestor_pool
        How many top candidates must share that ancestor (at most).
    use_text_model
        Also score similarity with the offline MiniLM sentence model (slower; finds paraphrases the
        character and word overlap misses).
    """

    tissue: str | None = None
    species: str | None = None
    min_confidence: float = 0.3
    candidates: int = 50
    alternatives: int = 3
    tissue_weight: float = 0.1
    ancestor_below: float = 0.5
    ancestor_pool: int = 3
    use_text_model: bool = False

    def __post_init__(self) -> None:
        for name in ("min_confidence", "tissue_weight", "ancestor_below"):
            value = getattr(self, name)
            if not isinstance(value, Real) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
                raise ParameterError(
                    f"{name} must be a number from 0 to 1, got {value!r}",
                    f"HarmoniseConfig.{name}",
                    "pass a value such as 0.3",
                )
            object.__setattr__(self, name, float(value))  # a numpy number is written out as a plain one
        for name, low in (("candidates", 1), ("alternatives", 0), ("ancestor_pool", 2)):
            if not is_whole_number(getattr(self, name), low):
                raise ParameterError(
                    f"{name} must be a whole number of at least {low}, got {getattr(self, name)!r}",
                    f"HarmoniseConfig.{name}",
                    f"pass an integer >= {low}",
                )
        if self.species is not None:
            if not isinstance(self.species, str) or not self.species.strip():
                raise ParameterError(
                    f"species must be a name such as 'human' or 'mouse', got {self.species!r}",
                    "HarmoniseConfig.species",
                    "pass species='human', 'mouse', another species name, or None",
                )
            object.__setattr__(self, "species", species_word(self.species))
