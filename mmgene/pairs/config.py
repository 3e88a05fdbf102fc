"""How training pairs are made: captions, negatives, the held-out split and the cells' gene inputs."""

from __future__ import annotations

from dataclasses import dataclass

from mmgene.config import check_share, freeze, setting
from mmgene.errors import ParameterError
from mmgene.text.origin import Origin


@dataclass(frozen=True)
class PairsConfig:
    """Settings of :func:`mmgene.pairs.make_pairs` (and of the pairs :func:`mmgene.align.train` builds)."""

    captions_per_cell: int = setting(3, "Training rows per cell, each with its own caption (test rows get one name caption)")
    marker_share: float = setting(0.4, "Share of training captions that name the cell's marker genes")
    negatives: bool = setting(False, "Add a random caption of another class to every training row (a third column for the loss)")
    test_size: float = setting(0.2, "Held-out share of cells (or of groups with group_col)")
    group_col: str | None = setting(None, "Split by whole groups of this obs column (donor, batch) instead of by cell")
    exclude_labels: tuple[str, ...] = setting((), "Classes of the first label column left out of training; they stay in the test split")
    max_genes: int = setting(256, "Genes per cell the omics tower reads (the most expressed)")
    panel_share: float = setting(
        0.3, "Share of training rows restricted to a panel of the top-n most variable genes, so the model also reads HVG-filtered data"
    )
    panel_sizes: tuple[int, ...] = setting((500, 1000, 2000), "Panel sizes n drawn from for panel_share")
    species: str = setting("", "Species of the cells, said in captions with the tissue ('a T cell from mouse lung'); a corpus dataset's own wins")
    tissue: str = setting("", "Tissue of the cells (none: captions do not say where the cells come from); a corpus dataset's own wins")

    def __post_init__(self) -> None:
        if self.captions_per_cell < 1:
            raise ParameterError(
                f"captions_per_cell must be at least 1, got {self.captions_per_cell}", "PairsConfig.captions_per_cell"
            )
        check_share(self.marker_share, "marker_share", "PairsConfig.marker_share")
        check_share(self.panel_share, "panel_share", "PairsConfig.panel_share")
        labels = [self.exclude_labels] if isinstance(self.exclude_labels, str) else self.exclude_labels
        freeze(self, "exclude_labels", tuple(map(str, labels)))
        freeze(self, "panel_sizes", tuple(int(n) for n in self.panel_sizes))

    @property
    def origin(self) -> Origin:
        """Where the cells come from, as captions say it."""
        return Origin(self.species, self.tissue)
