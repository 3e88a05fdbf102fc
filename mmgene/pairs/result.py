"""What :func:`mmgene.pairs.make_pairs` returns: the splits, and what training needs to know about them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mmgene.text.captions import ClassText


@dataclass(eq=False)
class TrainingPairs(Mapping[str, Any]):
    """The ``train`` (and ``test``) splits as a mapping of ``datasets.Dataset``, with their classes.

    Reads like the ``datasets.DatasetDict`` it holds (``pairs["train"]``, ``"test" in pairs``); the
    class metadata are declared fields here rather than attributes set on that dict, so they are
    typed, documented and never lost by a ``DatasetDict`` method that returns a new dict.
    """

    dataset: Any
    """The ``datasets.DatasetDict`` of the splits."""
    classes: list[str]
    """Class names; a row's ``label`` is an index into this list."""
    class_text: list[ClassText]
    """Each class's names and captions, in the order of ``classes``."""
    unlabelled_cells: int
    """Cells left out because they have no label in the first label column."""
    marker_genes: list[str]
    """Genes that mark training cells, most often first, at most 2,000 (the text tower's gene-text bridge)."""

    def __getitem__(self, split: str) -> Any:
        return self.dataset[split]

    def __iter__(self) -> Iterator[str]:
        return iter(self.dataset)

    def __len__(self) -> int:
        return len(self.dataset)
