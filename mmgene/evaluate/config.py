"""Settings of one evaluation (:func:`mmgene.evaluate.evaluate`), in one light module.

``mmgene evaluate`` reads each default and help line from :class:`EvaluateConfig`, so the CLI imports
this module without numpy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmgene.config import setting, with_settings
from mmgene.text.origin import Origin


@dataclass(frozen=True)
class EvaluateConfig:
    """What :func:`mmgene.evaluate.evaluate` scores beside the model, how it words the prompts, and how
    it scores them: by default annotate's rule (hierarchy on, z-scored over 30 cells or more), so the
    figures measure what ``mmgene annotate`` answers."""

    baseline: bool = setting(True, "Also score the GenePT-s zero-shot baseline with the same prompts")
    marker_baseline: bool = setting(True, "Also score the textbook-marker baseline (mean z-scored marker expression)")
    ontology: bool = setting(True, "Add Cell Ontology names to the prompts")
    markers: bool = setting(True, "Name canonical marker genes of common blood cell types in the prompts (mmgene.text.markers)")
    species: str = setting("", "Species of the cells, said in the prompts with the tissue ('a T cell from mouse lung')")
    tissue: str = setting("", "Tissue of the cells (none: the prompts do not say where the cells come from)")
    standardize: bool | None = setting(
        None, "Z-score each class's scores over the cells before the argmax, as annotate does (uses no labels; none: when there are at least 30 cells)"
    )
    hierarchy: bool = setting(
        True, "A class whose Cell Ontology term lies above some of the model's training classes also answers for them, as in annotate"
    )
    refine: bool = setting(False, "Refine every method's scores by self-training on the data's own principal components (uses no labels)")
    seed: int = setting(0, "Seed of the k-means clustering of the joint space")

    @property
    def origin(self) -> Origin:
        """Where the cells come from, as the prompts say it (annotate's rule: only when given)."""
        return Origin(self.species, self.tissue)

    def replace(self, **settings: Any) -> EvaluateConfig:
        """A copy with some settings changed by name."""
        return with_settings(self, settings, "evaluate(...)")
