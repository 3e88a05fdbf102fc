"""A dataset card says what its split rule guarantees: groups kept apart only when split by them.

Before, a card split per cell said "so no group appears in two splits", which held for no group: a
donor's cells could be in train and test alike.
"""

from __future__ import annotations


def _card(pbmc68k, tmp_path, name: str, **settings) -> str:
    import mmgene.hub

    mmgene.hub.publish(pbmc68k[:80].copy(), f"me/{name}", out=tmp_path / name, dry_run=True, top_k=10, **settings)
    return (tmp_path / name / "README.md").read_text()


def test_a_card_split_per_cell_says_donors_can_straddle_splits(pbmc68k, tmp_path):
    card = _card(pbmc68k, tmp_path, "cells")
    assert (
        "Splits are drawn per cell (seed 0): the cells of one donor or sample can fall in different splits, so a model "
        "tested on the test split may have seen its donors (publish with `--split-by` to keep such groups apart). "
        "Negatives are drawn only\nfrom the row's own split." in card
    )
    assert "no group appears in two splits" not in card


def test_a_card_split_by_groups_says_no_group_straddles_them(pbmc68k, tmp_path):
    card = _card(pbmc68k, tmp_path, "groups", split_by="louvain")
    assert (
        "Splits are drawn by the groups of `obs['louvain']` (seed 0): no group appears in two splits. Negatives are "
        "drawn only\nfrom the row's own split." in card
    )
