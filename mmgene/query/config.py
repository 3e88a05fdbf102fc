"""Settings of zero-shot annotation (:func:`mmgene.query.annotate`), in one light module.

``mmgene annotate`` reads each default and help line from :class:`AnnotateConfig`, so the CLI imports
this module without numpy or torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mmgene.config import check_range, freeze, setting, with_settings
from mmgene.errors import ParameterError
from mmgene.text.origin import Origin

#: the answer for a cell that no label fits
UNKNOWN = "unknown"
#: softmax temperature over standardised similarities: the value that minimises the negative
#: log-likelihood of the true labels over the leave-one-dataset-out folds of the shared corpus whose
#: cell types the other datasets cover (the five immune ones, four training seeds, datasets weighing
#: equally: 0.49; 0.45-0.51 when each dataset is also left out of the choice), see docs/benchmarks.md.
#: It was 0.75, the choice over all eight folds, pulled up by three tissues no other dataset has
#: (their labels are near chance at any temperature); 0.75 left 19-53% of an immune dataset's cells
#: "unknown" although more than half of those (0.45-0.72) were right.
DEFAULT_TEMPERATURE = 0.5
#: a cell is none of the asked labels when another class the model knows is more similar by more than
#: this cosine (:mod:`mmgene.query.others`; chosen on the leave-one-dataset-out folds)
OTHERS_MARGIN = 0.04


@dataclass(frozen=True)
class AnnotateConfig:
    """How :func:`mmgene.query.annotate` scores cells and decides their labels (see its module docstring)."""

    prompts: tuple[str, ...] | None = setting(
        None, "Prompt templates with {label} (none: names, Cell Ontology names and marker genes, mmgene.text.prompts)"
    )
    markers: bool = setting(True, "Name canonical marker genes of common blood cell types in the default prompts")
    species: str = setting("", "Species of the cells, said in the default prompts with the tissue ('a T cell from mouse lung')")
    tissue: str = setting("", "Tissue of the cells (none: the default prompts do not say where the cells come from)")
    temperature: float = setting(DEFAULT_TEMPERATURE, "Softmax temperature over the standardised similarities")
    min_prob: float = setting(0.5, "At or below this winning probability the cell is unknown")
    min_z: float | None = setting(0.0, "Below this standardised similarity to the winning label the cell is unknown (none: no such rule)")
    standardize: bool | None = setting(None, "Z-score each label's similarities over the cells (none: when there are at least 30 cells)")
    weigh_types: bool = setting(
        False,
        "Take each label's z-scores with the labels a first pass finds weighing alike: better overall accuracy and proportions, fewer unknown cells, rare types recalled less (not with refine)",
    )
    recentre: bool | None = setting(
        None,
        "Move the cells' mean learned vector onto the model's training mean first (none: when the model stores one and there are at least 30 cells; off for a sorted population)",
    )
    definitions: bool | None = setting(
        None, "Add each label's Cell Ontology definition to its default prompts (none: for a model trained on a corpus)"
    )
    data_markers: bool | None = setting(
        None,
        "Let the gene channel also reach the genes that mark the data's own cells, so prompts for cell types of a tissue the model never saw find their genes (none: for a model trained on a corpus, from 30 cells)",
    )
    hierarchy: bool = setting(
        True, "Read labels as Cell Ontology terms: a label covers the model's classes below it, and the deepest confident label wins"
    )
    others: bool = setting(
        True, "Also unknown when a class the model was trained on, outside the labels, fits the cell better (not with a reference)"
    )
    others_margin: float = setting(OTHERS_MARGIN, "By how much (cosine) that class must beat every label")
    refine: bool = setting(False, "Refine the scores by self-training on the data's own principal components (not with a reference)")
    alpha: float = setting(0.05, "With a reference: share of a known type's cells allowed below its threshold")
    unknown: str = setting(UNKNOWN, "The answer for cells no label fits")

    def __post_init__(self) -> None:
        if self.prompts is not None:
            freeze(self, "prompts", (self.prompts,) if isinstance(self.prompts, str) else tuple(self.prompts))
        _check_setting(self.temperature, "temperature", "AnnotateConfig.temperature", 0.0, None, strict=True)
        _check_setting(self.min_prob, "min_prob", "AnnotateConfig.min_prob", 0.0, 1.0)
        if self.min_z is not None:  # any finite z; None switches the rule off (NaN would, silently)
            number = isinstance(self.min_z, (int, float)) and not isinstance(self.min_z, bool)
            if not number or not math.isfinite(self.min_z):
                raise ParameterError(
                    f"min_z must be a finite number, or none for no such rule, got {self.min_z!r}", "AnnotateConfig.min_z",
                    "pass a number such as 0.0 (the default), or none (--min-z none, min_z=None) to switch the rule off",
                )
            freeze(self, "min_z", float(self.min_z))
        _check_setting(self.alpha, "alpha", "AnnotateConfig.alpha", 0.0, 1.0, strict=True)
        check_margin(self.others_margin, "AnnotateConfig.others_margin")
        check_not_refined_and_weighed(self.refine, self.weigh_types, "AnnotateConfig")
        if not isinstance(self.unknown, str) or not self.unknown.strip():
            raise ParameterError(f"unknown must be a non-empty name, got {self.unknown!r}", "AnnotateConfig.unknown", f"use the default, {UNKNOWN!r}")

    @property
    def origin(self) -> Origin:
        """Where the cells come from, as the default prompts say it."""
        return Origin(self.species, self.tissue)

    def replace(self, **settings: Any) -> AnnotateConfig:
        """A copy with some settings changed by name (checked again)."""
        return with_settings(self, settings, "annotate(...)")


def _check_setting(value: Any, name: str, where: str, low: float, high: float | None, *, strict: bool = False) -> float:
    """:func:`mmgene.config.check_range` for an annotate setting, suggesting its default as the fix."""
    default = {f.name: f.default for f in dataclasses.fields(AnnotateConfig)}.get(name)
    fix = f"use e.g. {default}" if default is not None else None
    return check_range(value, name, where, low, high, strict=strict, fix=fix)


def check_not_refined_and_weighed(refine: bool, weigh_types: bool, where: str) -> None:
    """Refinement z-scores its starting scores again, unweighted (:mod:`mmgene.query.refine`), which
    would undo ``weigh_types``: the two are refused together."""
    if refine and weigh_types:
        raise ParameterError(
            "refine and weigh_types cannot be combined: refinement z-scores its starting scores again, unweighted",
            f"{where}(refine=..., weigh_types=...)", "refine, or weigh the labels' z-scores, not both",
        )


def check_margin(value: Any, where: str) -> float:
    """An others margin: a cosine difference from 0 to 2."""
    return _check_setting(value, "others_margin", where, 0.0, 2.0)
