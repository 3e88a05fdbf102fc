"""A low ``min_prob`` calls fewer cells unknown; it must not send them to deeper labels.

The Cell Ontology puts "CD14-low, CD16-positive monocyte" below "CD14-positive monocyte", so PBMC labels
("CD14+ Monocytes", "FCGR3A+ Monocytes") are nested. With ``--min-prob 0``, asked to call no cell unknown,
annotate answered every monocyte with the deeper term: the shared Kang file's 400 CD14 monocytes all became
CD16 monocytes through a saved leave-one-out model, and 323 stay CD14 monocytes at the default 0.5.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmgene.query.labelling import assign_nested
from mmgene.text.hierarchy import LabelHierarchy, deepest_confident, inclusive

CD14_MONO, CD16_MONO, B_CELL = "CL:0001054", "CL:0002396", "CL:0000236"
T_CELL, CD4_T, CD8_T = "CL:0000084", "CL:0000624", "CL:0000625"
MONOCYTES = LabelHierarchy.of(["CD14 mono", "CD16 mono", "B"], [CD14_MONO, CD16_MONO, B_CELL])


def _answer(probs: list[float], tree: LabelHierarchy, min_prob: float) -> str:
    return assign_nested(np.log([probs]), tree, temperature=1.0, min_prob=min_prob).label.tolist()[0]


@pytest.mark.parametrize("min_prob", [0.0, 0.2, 0.34, 0.5])
def test_a_label_keeps_its_cells_from_a_label_below_it_that_is_less_likely(min_prob):
    assert MONOCYTES.below == ((1,), (), ())  # the ontology nests the two monocytes
    assert _answer([0.60, 0.35, 0.05], MONOCYTES, min_prob) == "CD14 mono"
    assert _answer([0.30, 0.65, 0.05], MONOCYTES, min_prob) == "CD16 mono"


def test_a_cell_split_between_two_subtypes_keeps_their_parent():
    tree = LabelHierarchy.of(["T", "CD4 T", "CD8 T", "B"], [T_CELL, CD4_T, CD8_T, B_CELL])
    for min_prob in (0.0, 0.2):
        assert _answer([0.30, 0.25, 0.25, 0.20], tree, min_prob) == "T"  # neither subtype beats what T keeps
        assert _answer([0.10, 0.55, 0.15, 0.20], tree, min_prob) == "CD4 T"
        assert _answer([0.05, 0.10, 0.20, 0.65], tree, min_prob) == "B"  # B is the likeliest top label
        assert _answer([0.10, 0.15, 0.30, 0.45], tree, min_prob) == "CD8 T"  # T (0.55 with CD4 and CD8), then CD8
    assert _answer([0.30, 0.25, 0.25, 0.20], tree, 0.5) == "T"
    assert _answer([0.10, 0.15, 0.30, 0.45], tree, 0.5) == "T"
    assert _answer([0.30, 0.25, 0.25, 0.20], tree, 0.85) == "unknown"  # no label above 0.85


def test_min_prob_below_half_only_trims_the_probable_path():
    tree = LabelHierarchy.of(["T", "CD4 T", "CD8 T", "B"], [T_CELL, CD4_T, CD8_T, B_CELL])
    probs = inclusive(np.array([[0.05, 0.15, 0.50, 0.30], [0.02, 0.03, 0.40, 0.55], [0.30, 0.25, 0.25, 0.20]]), tree)
    np.testing.assert_allclose(probs, [[0.70, 0.15, 0.50, 0.30], [0.45, 0.03, 0.40, 0.55], [0.80, 0.25, 0.25, 0.20]])
    assert deepest_confident(probs, tree, 0.0).tolist() == [2, 3, 0]
    assert deepest_confident(probs, tree, 0.45).tolist() == [2, 3, 0]
    assert deepest_confident(probs, tree, 0.5).tolist() == [0, 3, 0]  # CD8's 0.50 is not above 0.5: its parent
    assert deepest_confident(probs, tree, 0.6).tolist() == [0, -1, 0]
