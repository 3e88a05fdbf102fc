"""Plots are real PNG files with the expected content."""

from __future__ import annotations

import numpy as np
import pytest

from mmgene import plots
from mmgene.errors import ParameterError


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_and_scatter(tmp_path):
    coords = np.array([[0, 0], [1, 1], [2, 0], [3, 3]], dtype=float)
    p1 = plots.confusion(["a", "a", "b", "b"], ["a", "b", "b", "unknown"], tmp_path / "cm.png", title="t")
    p2 = plots.umap_by_label(coords, ["a", "a", "b", "b"], tmp_path / "u.png")
    p3 = plots.umap_by_score(coords, [0.1, 0.2, 0.9, 0.4], tmp_path / "s.png")
    assert all(_is_png(p) for p in (p1, p2, p3))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cm.png", "s.png", "u.png"]


def test_umap_is_deterministic_and_checks_input():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (30, 8)), rng.normal(6, 1, (30, 8))])
    a = plots.umap_coords(X, seed=1)
    b = plots.umap_coords(X, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (60, 2)
    with pytest.raises(ParameterError, match="at least 3 rows"):
        plots.umap_coords(X[:2])
