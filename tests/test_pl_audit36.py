"""mmgene.pl.labels takes scanpy's palette forms (a colormap name, a Cycler, a mapping of numeric labels, one
colour per known class), and save= refuses an image format matplotlib cannot write before any work."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scanpy as sc  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from mmgene import pl  # noqa: E402
from mmgene.errors import ParameterError  # noqa: E402
from test_pl_audit import PRED, TRUE, CountingSpace, _no_figures, adata, figdir  # noqa: E402,F401  (shared fixtures)

GREY = to_hex("lightgray")


def _drawn(ax, adata):
    """Each drawn cell's label index -> colour, in obs order."""
    coll = ax.collections[0]
    cell_at = {tuple(xy): i for i, xy in enumerate(adata.obsm["X_umap"])}
    colours = {cell_at[tuple(xy)]: to_hex(c) for xy, c in zip(np.asarray(coll.get_offsets()), coll.get_facecolors())}
    return [colours[i] for i in range(adata.n_obs)]


def test_palette_may_be_a_colormap_name_as_in_scanpy(adata):
    """palette='tab10' (scanpy samples the colormap) was read as a list of one colour and refused."""
    tab10 = matplotlib.colormaps["tab10"]
    a, b, c = (to_hex(tab10(x)) for x in (0.0, 0.5, 1.0))
    assert (a, b, c) == ("#1f77b4", "#8c564b", "#17becf")
    assert pl.class_colors(["a", "b", "c", "unknown"], "tab10") == [a, b, c, GREY]
    axs = pl.labels(adata, "cell_type", "guess", palette="tab10", show=False)
    colour = {"a": a, "b": b, "c": c, "unknown": GREY}
    assert _drawn(axs[0], adata) == [colour[t] for t in TRUE]
    assert _drawn(axs[1], adata) == [colour[p] for p in PRED]


def test_palette_may_be_a_cycler_or_a_mapping_of_numeric_labels(adata):
    """A Cycler failed as "{'color': 'red'} is not a colour"; {1: 'red'} for a column of numbers as
    "no colour for class '1'"."""
    assert pl.class_colors(["a", "b"], cycler(color=["red", "green"])) == ["#ff0000", "#008000"]
    with pytest.raises(ParameterError, match="the palette cycler has no 'color' key"):
        pl.class_colors(["a", "b"], cycler(linestyle=["-", "--"]))
    adata.obs["cluster"] = [1, 1, 2, 2, 3, 3]
    axs = pl.labels(adata, "cluster", "cluster", palette={1: "red", 2: "blue", 3: "green"}, show=False)
    assert [t.get_text() for t in axs[0].get_legend().get_texts()] == ["1", "2", "3"]
    assert _drawn(axs[1], adata) == ["#ff0000"] * 2 + ["#0000ff"] * 2 + ["#008000"] * 2


def test_a_list_with_one_colour_per_known_class_leaves_unknown_grey(adata):
    """Three colours for the classes a, b, c were refused once a prediction said 'unknown', although
    'unknown' is light grey unless the palette says otherwise."""
    three = ["#ff0000", "#008000", "#0000ff"]
    assert pl.class_colors(["a", "b", "c", "unknown"], ["red", "green", "blue"]) == [*three, GREY]
    axs = pl.labels(adata, "cell_type", "guess", palette=["red", "green", "blue"], show=False)
    assert _drawn(axs[1], adata) == ["#ff0000", "#008000", "#008000", GREY, "#0000ff", "#0000ff"]
    # a colour for 'unknown' too is used; fewer colours than known classes are still refused
    assert pl.class_colors(["a", "unknown"], ["red", "black"]) == ["#ff0000", "#000000"]
    with pytest.raises(ParameterError, match="the palette has 2 colours for 4 classes"):
        pl.labels(adata, "cell_type", "guess", palette=["red", "green"], show=False)


def test_an_image_format_matplotlib_cannot_write_is_refused_before_any_work(adata, figdir):
    """sc.settings.file_format_figs='bmp' failed in matplotlib's savefig with a raw ValueError, after the scores
    were computed and the plot drawn."""
    before, sc.settings.file_format_figs = sc.settings.file_format_figs, "bmp"
    try:
        with pytest.raises(ParameterError) as info:
            pl.query(adata, CountingSpace(), "t", save=True, show=False)
        with pytest.raises(ParameterError, match="matplotlib cannot save a figure as 'bmp'"):
            pl.labels(adata, "cell_type", "guess", save="_mine", show=False)
        pl.confusion(adata, "cell_type", "guess", save="_mine.png", show=False)  # an explicit .png still works
    finally:
        sc.settings.file_format_figs = before
    message = str(info.value)
    assert message.startswith(
        "matplotlib cannot save a figure as 'bmp'. Where: sc.settings.file_format_figs. "
        "What to do: set sc.settings.file_format_figs to one of "
    ) and message.endswith(", or end save with .png, .pdf, .svg.") and " jpg, " in message
    assert CountingSpace.calls == 0 and plt.get_fignums() == []
    assert [p.name for p in figdir.iterdir()] == ["mmgene_confusion_mine.png"]
