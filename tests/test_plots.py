"""mmgene.pl: each plot draws what it says (points, colours, ticks, values), on a given ax, and refuses bad input."""

from __future__ import annotations

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mmgene import pl  # noqa: E402
from mmgene.errors import InputFileError, MissingColumnError, MMGeneError, OutputError, ParameterError  # noqa: E402

ANGLES = np.array([0.0, 30.0, 60.0, 90.0, 120.0, 180.0])  # cell vectors at these angles to the text vector
TRUE = ["a", "a", "b", "b", "c", "c"]
PRED = ["a", "b", "b", "unknown", "c", "c"]


class ToySpace:
    """A joint space in 2-D: every text is (1, 0); cells are read from obsm['X_toy']."""

    def encode_text(self, texts):
        return np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(texts), 1))

    def encode_cells(self, adata):
        x = np.asarray(adata.obsm["X_toy"], dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def describe(self):
        return {"model": "toy", "inputs": ["X_toy"]}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def adata():
    rad = np.deg2rad(ANGLES)
    coords = np.column_stack([np.arange(6.0), np.arange(6.0) ** 2])
    obs = pd.DataFrame({"cell_type": TRUE, "guess": PRED}, index=[f"c{i}" for i in range(6)])
    toy = 3.0 * np.column_stack([np.cos(rad), np.sin(rad)])  # not unit length: scores must still be cosines
    return ad.AnnData(obs=obs, obsm={"X_umap": coords, "X_toy": toy})


def _points(ax):
    """(offsets, colour values or RGBA rows) of the scatter on ``ax``."""
    coll = ax.collections[0]
    return np.asarray(coll.get_offsets()), coll


# --------------------------------------------------------------------------------------------- query
def test_query_colours_every_cell_by_its_cosine_score(adata):
    expected = np.cos(np.deg2rad(ANGLES))  # [1, .866, .5, 0, -.5, -1]
    np.testing.assert_allclose(pl.text_scores(adata, ToySpace(), "cytotoxic T cells"), expected, atol=1e-6)
    np.testing.assert_allclose(pl.text_scores(adata, ToySpace(), "x", use_rep="X_toy"), expected, atol=1e-6)
    ax = pl.query(adata, ToySpace(), "cytotoxic T cells", key_added="ctl", show=False)
    offsets, coll = _points(ax)
    assert offsets.shape == (6, 2)
    cell_at = {tuple(xy): i for i, xy in enumerate(adata.obsm["X_umap"])}
    order = [cell_at[tuple(xy)] for xy in offsets]
    assert sorted(order) == list(range(6))
    np.testing.assert_allclose(np.asarray(coll.get_array()), expected[order], atol=1e-6)
    assert order[-1] == 0  # the best cell is drawn last, on top
    np.testing.assert_allclose(adata.obs["ctl"], expected, atol=1e-6)
    assert ax.get_title() == "cytotoxic T cells"
    assert ax.get_xlabel() == "UMAP1"
    pl.query(adata, ToySpace(), "x", key_added="ctl", show=False)  # its own column, written again
    assert adata.uns["mmgene"]["ctl"]["text"] == "x"
    with pytest.raises(ParameterError, match=r"obs\['cell_type'\] exists and mmgene did not write it"):
        pl.query(adata, ToySpace(), "x", key_added="cell_type", show=False)
    assert adata.obs["cell_type"].dtype != np.float32 and "cell_type" not in adata.uns["mmgene"]


def test_query_draws_on_the_given_ax_and_returns_like_scanpy(adata, tmp_path):
    import scanpy as sc

    fig, ax = plt.subplots()
    assert pl.query(adata, ToySpace(), "t", ax=ax, show=False) is ax
    assert len(ax.collections[0].get_offsets()) == 6 and ax.figure is fig
    assert isinstance(pl.query(adata, ToySpace(), "t", return_fig=True), Figure)
    assert pl.query(adata, ToySpace(), "t", show=True) is None
    before, sc.settings.figdir = sc.settings.figdir, tmp_path  # scanpy's settings take no monkeypatch
    try:
        pl.query(adata, ToySpace(), "t", show=False, save="_ctl.png")
        pl.query(adata, ToySpace(), "t", show=False, save=True)
    finally:
        sc.settings.figdir = before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mmgene_query.pdf", "mmgene_query_ctl.png"]  # scanpy's default format is pdf
    assert (tmp_path / "mmgene_query_ctl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(adata.obs.columns) == ["cell_type", "guess"]  # without key_added the data are left as they are


# -------------------------------------------------------------------------------------------- labels
def test_labels_two_panels_one_colour_per_class(adata):
    axs = pl.labels(adata, "cell_type", np.array(PRED), basis="X_umap", show=False, palette={"a": "red", "b": "green", "c": "blue"})
    assert len(axs) == 2 and axs[0].figure is axs[1].figure
    assert [a.get_title() for a in axs] == ["true: cell_type", "predicted label"]
    colour = {"a": to_hex("red"), "b": to_hex("green"), "c": to_hex("blue"), "unknown": to_hex("lightgray")}
    for panel, labels in zip(axs, (TRUE, PRED)):
        offsets, coll = _points(panel)
        assert offsets.shape == (6, 2)
        cell_at = {tuple(xy): i for i, xy in enumerate(adata.obsm["X_umap"])}
        drawn = [to_hex(c) for c in coll.get_facecolors()]
        assert drawn == [colour[labels[cell_at[tuple(xy)]]] for xy in offsets]
        legend = [t.get_text() for t in panel.get_legend().get_texts()]
        assert legend == ["a", "b", "c", "unknown"]


def test_labels_default_palette_and_separate_axes(adata):
    f1, a1 = plt.subplots()
    f2, a2 = plt.subplots()
    axs = pl.labels(adata, "cell_type", "guess", ax=(a1, a2), show=False, title=("true", "mmgene"))
    assert axs == [a1, a2] and a1.get_title() == "true" and a2.get_title() == "mmgene"
    assert len(a1.collections[0].get_offsets()) == len(a2.collections[0].get_offsets()) == 6
    assert pl.class_colors(["a", "b", "unknown"]) == [to_hex(c) for c in ("#1f77b4", "#ff7f0e", "lightgray")]
    assert isinstance(pl.labels(adata, "cell_type", "guess", return_fig=True), Figure)


# ----------------------------------------------------------------------------------------- confusion
def test_confusion_counts_equal_the_hand_computed_matrix(adata):
    counts = np.array([[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 2, 0]])  # rows a, b, c; columns a, b, c, unknown
    table = pl.confusion_table(TRUE, PRED)
    assert list(table.index) == ["a", "b", "c"] and list(table.columns) == ["a", "b", "c", "unknown"]
    np.testing.assert_array_equal(table.to_numpy(), counts)
    np.testing.assert_allclose(pl.confusion_table(TRUE, PRED, normalize="true").to_numpy(),
                               [[0.5, 0.5, 0, 0], [0, 0.5, 0, 0.5], [0, 0, 1, 0]])
    np.testing.assert_allclose(pl.confusion_table(TRUE, PRED, normalize="pred").to_numpy(),
                               [[1, 0.5, 0, 0], [0, 0.5, 0, 1], [0, 0, 1, 0]])
    np.testing.assert_allclose(pl.confusion_table(TRUE, PRED, normalize="all").to_numpy(), counts / 6)

    ax = pl.confusion(adata, "cell_type", "guess", normalize=None, show=False)
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), counts)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "unknown"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert sorted(t.get_text() for t in ax.texts) == ["1", "1", "1", "1", "2"]
    assert ax.get_xlabel() == "predicted: guess" and ax.get_ylabel() == "true: cell_type"


def test_confusion_table_refuses_labels_it_cannot_count():
    """Empty, misaligned or missing labels went to sklearn and came back as a raw ValueError or TypeError."""
    cases = [
        (([], []), "y_true must hold one label per cell, got shape (0,)"),
        ((TRUE, PRED[:4]), "6 true labels for 4 predicted ones"),
        ((["a", np.nan, "b"], ["a", "b", "b"]), "1 cells have no label in y_true, first at position 1"),
        ((TRUE, [["a"]] * 6), "y_pred must hold one label per cell, got shape (6, 1)"),
    ]
    for (y_true, y_pred), expected in cases:
        with pytest.raises(ParameterError) as info:
            pl.confusion_table(y_true, y_pred)
        assert expected in str(info.value)
    assert list(pl.confusion_table(pd.Series([1, 2]), [1, 1]).index) == ["1", "2"]


def test_top_genes_refuses_what_is_no_anndata():
    """top_genes read adata.obs_names first: a path gave a raw AttributeError."""
    with pytest.raises(ParameterError, match="expected an AnnData, got str"):
        pl.top_genes("cells.h5ad", "genept-w", "T cells", "cell1", show=False)


def test_confusion_normalised_on_a_given_ax(adata):
    fig, ax = plt.subplots()
    assert pl.confusion(adata, TRUE, PRED, ax=ax, show=False) is ax  # default normalize='true'
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), [[0.5, 0.5, 0, 0], [0, 0.5, 0, 0.5], [0, 0, 1, 0]])
    assert sorted(t.get_text() for t in ax.texts) == ["0.50"] * 4 + ["1.00"]
    assert ax.images[0].get_clim() == (0, 1)


# ----------------------------------------------------------------------------------------- top genes
class ToyEncoder:
    """Texts -> fixed 3-D vectors (a gene's text mentions its symbol; anything else is the query)."""

    GENES = {"CD8A": [1.0, 0.0, 0.0], "NKG7": [0.6, 0.8, 0.0], "LYZ": [0.28, 0.0, 0.96], "MS4A1": [-0.6, 0.0, 0.8]}

    def encode(self, texts, **_):
        out = [next((v for g, v in self.GENES.items() if g in t), [1.0, 0.0, 0.0]) for t in texts]
        return np.asarray(out, dtype=np.float32)


@pytest.fixture
def counts_adata():
    genes = list(ToyEncoder.GENES)
    X = sp.csr_matrix(np.array([[6, 3, 1, 0], [0, 1, 5, 4]], dtype=np.float32))
    return ad.AnnData(X=X, obs=pd.DataFrame(index=["t1", "m1"]), var=pd.DataFrame({"gene_symbol": genes}, index=genes))


def test_top_genes_bars_are_each_genes_share_of_the_score(counts_adata):
    from mmgene.genes import GeneVectors
    from mmgene.query import GenePTSpace

    enc = ToyEncoder()
    vectors = GeneVectors(symbols=list(enc.GENES), vectors=np.asarray(list(enc.GENES.values())))
    space = GenePTSpace("w", encoder=enc)
    w = np.log1p(np.array([6, 3, 1, 0]) / 10 * 1e4)  # normalise-total 1e4, then log1p
    v = vectors.vectors.astype(float)
    contrib = w * (v @ [1.0, 0.0, 0.0]) / np.linalg.norm(w @ v)  # CD8A, NKG7, LYZ, MS4A1 (not expressed: 0)
    fig, ax = plt.subplots()
    assert pl.top_genes(counts_adata, space, "cytotoxic T cells", "t1", gene_vectors=vectors, top_n=3, ax=ax, show=False) is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["CD8A", "NKG7", "LYZ"]
    np.testing.assert_allclose([p.get_width() for p in ax.patches], contrib[:3], atol=1e-6)
    assert ax.get_title() == f"t1: 'cytotoxic T cells' (score {contrib.sum():.3f})"
    # a negative contribution is drawn to the left, in its own colour
    ax2 = pl.top_genes(counts_adata, space, "q", "m1", gene_vectors=vectors, top_n=4, show=False)
    widths = [p.get_width() for p in ax2.patches]
    assert [t.get_text() for t in ax2.get_yticklabels()][-1] == "MS4A1" and widths[-1] < 0
    assert to_hex(ax2.patches[-1].get_facecolor()) != to_hex(ax2.patches[0].get_facecolor())


# -------------------------------------------------------------------------------------- bad input
def test_bad_input_is_a_clear_error(adata, counts_adata):
    from mmgene.query import GenePTSpace

    space = ToySpace()
    cases = [
        (lambda: pl.query(adata, space, "t", basis="tsne", show=False), ParameterError, "no embedding 'tsne'"),
        (lambda: pl.query(adata, space, "  ", show=False), ParameterError, "one non-empty text"),
        (lambda: pl.query(adata, space, ["a", "b"], show=False), ParameterError, "one non-empty text"),
        (lambda: pl.query(adata, space, "t", use_rep="X_missing", show=False), MissingColumnError, "X_missing"),
        (lambda: pl.query(adata, space, "t", ax="left", show=False), ParameterError, "matplotlib Axes"),
        (lambda: pl.query(adata, space, "t", save=3, show=False), ParameterError, "save must be"),
        (lambda: pl.query(adata, object(), "t", show=False), ParameterError, "not a joint space"),
        (lambda: pl.labels(adata, "cell_type", "nope", show=False), MissingColumnError, "'nope'"),
        (lambda: pl.labels(adata, "cell_type", PRED[:4], show=False), ParameterError, "for 6 cells"),
        (lambda: pl.labels(adata, "cell_type", "guess", ax=plt.subplots()[1], show=False), ParameterError, "two Axes"),
        (lambda: pl.labels(adata, "cell_type", "guess", title="one", show=False), ParameterError, "two titles"),
        (lambda: pl.labels(adata, "cell_type", "guess", palette=["red"], show=False), ParameterError, "1 colours for 4"),
        (lambda: pl.labels(adata, "cell_type", "guess", palette={"a": "red"}, show=False), ParameterError, "class 'b'"),
        (lambda: pl.labels(adata, "cell_type", "guess", palette=["red", "blue", "nocolour", "k"], show=False), ParameterError, "not a colour"),
        (lambda: pl.confusion(adata, "cell_type", "guess", normalize="rows", show=False), ParameterError, "normalize="),
        (lambda: pl.confusion("cells.h5ad", "cell_type", "guess", show=False), ParameterError, "expected an AnnData, got str"),
        (lambda: pl.confusion(adata[:0], "cell_type", "guess", show=False), ParameterError, "the AnnData has no cells to draw"),
        (lambda: pl.labels(adata[:0], "cell_type", "guess", show=False), ParameterError, "the AnnData has no cells to draw"),
        (lambda: pl.query(None, space, "t", show=False), ParameterError, "expected an AnnData, got NoneType"),
        (lambda: pl.confusion(adata, ["a", None, "b", "b", "c", "c"], "guess", show=False), ParameterError, "1 cells have no label"),
        (lambda: pl.top_genes(counts_adata, GenePTSpace("s", encoder=ToyEncoder()), "t", "t1", show=False), ParameterError, "GenePT-w"),
        (lambda: pl.top_genes(counts_adata, GenePTSpace("w", encoder=ToyEncoder()), "t", "zz", show=False), MissingColumnError, "'zz'"),
        (lambda: pl.top_genes(counts_adata, GenePTSpace("w", encoder=ToyEncoder()), "t", "t1", top_n=0, show=False), ParameterError, "top_n"),
        (lambda: pl.top_genes(counts_adata, GenePTSpace("w", encoder=ToyEncoder()), "t", "t1", gene_vectors="nofile.parquet", show=False),
         InputFileError, "gene vectors file not found"),
    ]
    for call, kind, words in cases:
        with pytest.raises(kind, match=words) as info:
            call()
        assert isinstance(info.value, MMGeneError)
    adata.obsm["X_flat"] = np.zeros((6, 1))
    with pytest.raises(ParameterError, match="at least 2 columns"):
        pl.query(adata, space, "t", basis="flat", show=False)
    adata.obsm["X_3d"] = np.ones((6, 3))
    with pytest.raises(ParameterError, match="dimension 3 but the text vector 2"):
        pl.query(adata, space, "t", use_rep="X_3d", show=False)



class CountingSpace(ToySpace):
    """ToySpace that counts the cells it embeds: a refused call must fail before scoring."""

    calls = 0

    def encode_cells(self, adata):
        CountingSpace.calls += 1
        return super().encode_cells(adata)


def test_an_unknown_cmap_or_keyword_is_refused_before_anything_is_drawn(adata):
    """A colormap is checked against matplotlib.colormaps and a pass-through keyword against what
    scanpy.pl.embedding and matplotlib's scatter take, before any score is computed or figure made."""
    space = CountingSpace()
    figures = plt.get_fignums()
    cases = [
        (lambda: pl.query(adata, space, "t", cmap="Viridis", show=False),
         "'Viridis' is not a matplotlib colormap. Where: argument cmap. What to do: pass one of the "
         f"{len(list(matplotlib.colormaps))} names in matplotlib.colormaps, e.g. 'viridis', 'viridis_r', 'cividis', 'Reds', 'Blues'."),
        (lambda: pl.query(adata, space, "t", color_map="zzzz", show=False),
         "'zzzz' is not a matplotlib colormap. Where: argument color_map. What to do: pass one of the "
         f"{len(list(matplotlib.colormaps))} names in matplotlib.colormaps, e.g. 'viridis', 'Reds', 'Blues', 'magma', 'coolwarm'."),
        (lambda: pl.query(adata, space, "t", cmap=3, show=False), "cmap must be a colormap name or a matplotlib Colormap, got int"),
        (lambda: pl.confusion(adata, "cell_type", "guess", cmap="blues", show=False), "'blues' is not a matplotlib colormap"),
        (lambda: pl.labels(adata, "cell_type", "guess", cmap="Blue", show=False), "'Blue' is not a matplotlib colormap"),
        (lambda: pl.query(adata, space, "t", sizee=3, show=False),
         "unknown keyword argument 'sizee' for mmgene.pl.query. Where: keyword argument sizee (passed to scanpy.pl.embedding). "
         "What to do: pass a parameter of scanpy.pl.embedding (size, frameon, vmin, vmax, legend_loc, ...) or a matplotlib "
         "scatter property (alpha, edgecolor, linewidth, zorder, ...); close names: 'size', 'sizes'."),
        (lambda: pl.labels(adata, "cell_type", "guess", bogus=1, show=False), "unknown keyword argument 'bogus' for mmgene.pl.labels"),
        (lambda: pl.query(adata, space, "t", color="cell_type", show=False), "mmgene.pl.query sets 'color' itself"),
        (lambda: pl.labels(adata, "cell_type", "guess", basis="umap", color="x", show=False), "mmgene.pl.labels sets 'color' itself"),
        (lambda: pl.query(adata, space, "t", c="red", show=False), "'c' cannot be passed through mmgene.pl.query: scanpy sets it itself"),
        (lambda: pl.query(adata, space, "t", layer="counts", show=False), "'layer' cannot be passed through mmgene.pl.query"),
        (lambda: pl.query(adata, space, "t", ec="red", edgecolor="blue", show=False), "Got both 'ec' and 'edgecolor'"),
    ]
    for call, message in cases:
        with pytest.raises(ParameterError) as info:
            call()
        assert str(info.value).startswith(message), str(info.value)
    assert CountingSpace.calls == 0 and plt.get_fignums() == figures
    # what scanpy and the scatter do take still reaches them: a Colormap object, aliases, scatter properties
    ax = pl.query(adata, space, "t", cmap="magma", size=40, frameon=False, alpha=0.5, ec="red", show=False)
    coll = ax.collections[0]
    assert coll.get_cmap().name == "magma" and coll.get_alpha() == 0.5 and to_hex(coll.get_edgecolor()[0]) == to_hex("red")
    ax = pl.query(adata, space, "t", edgecolors="blue", show=False)  # scatter's own spelling, not overridden by scanpy's default
    assert to_hex(ax.collections[0].get_edgecolor()[0]) == to_hex("blue")
    ax = pl.confusion(adata, "cell_type", "guess", cmap=matplotlib.colormaps["Greens"], show=False)
    assert ax.images[0].get_cmap().name == "Greens"
    axs = pl.labels(adata, "cell_type", "guess", legend_loc="on data", lw=0.0, show=False)
    assert axs[0].get_legend() is None

def test_savefig_never_replaces_a_file_unless_asked(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    target = tmp_path / "plot.png"
    assert pl.savefig(fig, target) == target and target.read_bytes()[:4] == b"\x89PNG"
    target.write_bytes(b"mine")
    with pytest.raises(OutputError, match="already exists"):
        pl.savefig(fig, target)
    assert target.read_bytes() == b"mine"
    pl.savefig(fig, target, overwrite=True)
    assert target.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ParameterError, match="figure format"):
        pl.savefig(fig, tmp_path / "plot.bmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_importing_mmgene_pl_loads_no_plotting_stack():
    probe = "import sys, mmgene.pl; print(sorted(m for m in ('scanpy', 'matplotlib', 'anndata') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]"]
