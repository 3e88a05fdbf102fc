"""How training pairs are made: captions, negatives, the held-out split and the cells' gene inputs."""

from __future__ import annotations

from dataclasses import dataclass

from mmgene.config import check_range, check_share, check_whole, freeze, setting
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
        check_whole(self.captions_per_cell, "captions_per_cell", "PairsConfig.captions_per_cell", "pass e.g. 3", 1)
        check_whole(self.max_genes, "max_genes", "PairsConfig.max_genes", "pass e.g. 256", 1)
        check_share(self.marker_share, "marker_share", "PairsConfig.marker_share")
        check_share(self.panel_share, "panel_share", "PairsConfig.panel_share")
        check_range(self.test_size, "test_size", "PairsConfig.test_size", 0.0, 1.0, fix="pass e.g. 0.2 (0: no test split)")
        if self.test_size == 1.0:
            raise ParameterError("test_size must be below 1, got 1.0: no cell would be left for training", "PairsConfig.test_size", "pass e.g. 0.2")
        labels = [self.exclude_labels] if isinstance(self.exclude_labels, str) else self.exclude_labels
        freeze(self, "exclude_labels", tuple(map(str, labels)))
        sizes = (self.panel_sizes,) if isinstance(self.panel_sizes, int) else tuple(self.panel_sizes)
        for n in sizes:
            check_whole(n, "each panel size", "PairsConfig.panel_sizes", "pass gene counts >= 1, e.g. 500, 1000, 2000", 1)
        if self.panel_share > 0 and not sizes:
            raise ParameterError(
                f"panel_share={self.panel_share} needs at least one panel size, got none",
                "PairsConfig.panel_sizes",
                "pass panel sizes (e.g. 500, 1000, 2000), or panel_share=0 to train without panels",
            )
        freeze(self, "panel_sizes", tuple(int(n) for n in sizes))

    @property
    def origin(self) -> Origin:
        """Where the cells come from, as captions say it."""
        return Origin(self.species, self.tissue)
