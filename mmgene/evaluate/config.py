"""Settings of one evaluation (:func:`mmgene.evaluate.evaluate`) and of the leave-one-dataset-out
evaluation (:func:`mmgene.evaluate.cross_dataset.cross_dataset`), in one light module.

``mmgene evaluate`` and ``mmgene corpus cross-dataset`` read their defaults and help lines from these configs, so
the CLI imports this module without numpy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmgene.config import check_share, setting, with_settings
from mmgene.errors import ParameterError
from mmgene.query.config import OTHERS_MARGIN
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
    recentre: bool | None = setting(
        None, "Move the cells' mean learned vector onto the model's training mean first, as annotate does (none: when the model stores one and there are at least 30 cells)"
    )
    definitions: bool | None = setting(
        None, "Add each class's Cell Ontology definition to its prompts, as annotate does (none: for a model trained on a corpus)"
    )
    data_markers: bool | None = setting(
        None, "Let the gene channel also reach the genes that mark the data's own cells, as annotate does (none: for a model trained on a corpus, from 30 cells)"
    )
    hierarchy: bool = setting(
        True, "A class whose Cell Ontology term lies above some of the model's training classes also answers for them, as in annotate"
    )
    refine: bool = setting(False, "Refine every method's scores by self-training on the data's own principal components (uses no labels)")
    weigh_types: bool = setting(
        False, "Z-score as annotate(weigh_types=True) does, the labels a first pass finds weighing alike (mmgene and GenePT-s; not with refine)"
    )
    seed: int = setting(0, "Seed of the k-means clustering of the joint space")

    def __post_init__(self) -> None:
        from mmgene.query.config import check_not_refined_and_weighed

        check_not_refined_and_weighed(self.refine, self.weigh_types, "EvaluateConfig")

    @property
    def origin(self) -> Origin:
        """Where the cells come from, as the prompts say it (annotate's rule: only when given)."""
        return Origin(self.species, self.tissue)

    def replace(self, **settings: Any) -> EvaluateConfig:
        """A copy with some settings changed by name."""
        return with_settings(self, settings, "evaluate(...)")


@dataclass(frozen=True)
class CrossDatasetConfig:
    """What :func:`mmgene.evaluate.cross_dataset.cross_dataset` holds out, which baselines it fits and
    how it scores (annotate's default rule)."""

    datasets: tuple[str, ...] = setting((), "Datasets to hold out, one at a time (empty: every dataset)")
    reference: str | None = setting("pbmc3k", "Dataset the single-dataset baseline model trains on (None: no such baseline)")
    mapper: bool = setting(True, "Also fit the supervised reference mapper (logistic regression on the other datasets)")
    min_prob: float = setting(0.5, "Unknown at or below this winning probability, for the rejection rates")
    min_z: float = setting(0.0, "Unknown below this standardised similarity to the winning label, for the rejection rates")
    others_margin: float = setting(
        OTHERS_MARGIN, "Unknown when a trained class outside the labels beats them by more than this cosine (annotate's others rule)"
    )
    min_left_out_cells: int = setting(10, "Classes with fewer cells are not left out in the left-out-label rejection rates")
    author_col: str = setting("cell_type", "obs column of the authors' own labels for the 'author' prompts (else the dataset's label column)")
    standardize: bool = setting(
        True, "Score as annotate does by default: each class's similarities z-scored over the held-out cells (raw cosines are kept beside)"
    )
    recentre: bool | None = setting(
        None, "Score as annotate does by default: the held-out cells' mean learned vector moved onto the training mean (none: from 30 cells on)"
    )
    definitions: bool = setting(True, "Score as annotate does by default: each class's prompts also carry its Cell Ontology definition")
    data_markers: bool | None = setting(
        None, "Score as annotate does by default: the gene channel also reaches the genes that mark the held-out cells (none: from 30 cells on)"
    )
    hierarchy: bool = setting(True, "Score as annotate does by default: a class also answers for the model's training classes below it")
    origin_prompts: bool = setting(
        False, "Prompts also say the held-out dataset's species and tissue ('a T cell from mouse lung'), as annotate does when told them"
    )

    def __post_init__(self) -> None:
        from mmgene.errors import is_whole_number
        from mmgene.query.config import check_margin

        check_share(self.min_prob, "min_prob", "CrossDatasetConfig")
        check_margin(self.others_margin, "CrossDatasetConfig.others_margin")
        if not is_whole_number(self.min_left_out_cells, 1):
            raise ParameterError(
                f"min_left_out_cells must be a whole number of at least 1, got {self.min_left_out_cells!r}",
                "CrossDatasetConfig.min_left_out_cells", "pass an integer >= 1",
            )
