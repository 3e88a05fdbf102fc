"""mmgene.pl as a notebook or a script uses it: saving never replaces a file unless asked, figures the
plots make are closed once saved or shown, and bad labels, embeddings, palettes and values are refused clearly."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scanpy as sc  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from mmgene import pl  # noqa: E402
from mmgene.errors import DataError, OutputError, ParameterError  # noqa: E402

TRUE = ["a", "a", "b", "b", "c", "c"]
PRED = ["a", "b", "b", "unknown", "c", "c"]
COUNTS = [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 2, 0]]  # rows a, b, c; columns a, b, c, unknown
PNG = b"\x89PNG\r\n\x1a\n"


from test_plots import CountingSpace  # noqa: E402  (a 2-D joint space that counts the cells it embeds)


@pytest.fixture(autouse=True)
def _no_figures():
    plt.close("all")
    CountingSpace.calls = 0
    yield
    plt.close("all")


@pytest.fixture
def adata():
    rad = np.deg2rad([0.0, 30.0, 60.0, 90.0, 120.0, 180.0])
    obs = pd.DataFrame({"cell_type": TRUE, "guess": PRED}, index=[f"c{i}" for i in range(6)])
    coords = np.column_stack([np.arange(6.0), np.arange(6.0) ** 2])
    return ad.AnnData(obs=obs, obsm={"X_umap": coords, "X_toy": np.column_stack([np.cos(rad), np.sin(rad)])})


@pytest.fixture
def figdir(tmp_path):
    before = sc.settings.figdir  # scanpy's settings take no monkeypatch
    sc.settings.figdir = tmp_path
    yield tmp_path
    sc.settings.figdir = before


def test_save_replaces_an_existing_figure_only_with_overwrite(adata, figdir):
    """save= wrote over a file of the same name in sc.settings.figdir without asking."""
    mine = figdir / "mmgene_query_ctl.png"
    mine.write_bytes(b"my figure")
    with pytest.raises(OutputError) as info:
        pl.query(adata, CountingSpace(), "t", save="_ctl.png", show=False)
    assert str(info.value) == (
        f"the output file already exists. Where: {mine}. "
        "What to do: choose a new path, or pass --overwrite (overwrite=True) to replace it."
    )
    assert mine.read_bytes() == b"my figure" and CountingSpace.calls == 0 and plt.get_fignums() == []  # refused before any work
    (figdir / "mmgene_confusion.png").write_bytes(b"mine too")
    with pytest.raises(OutputError, match="already exists"):
        pl.confusion(adata, "cell_type", "guess", save=".png", show=False)
    assert (figdir / "mmgene_confusion.png").read_bytes() == b"mine too"
    pl.query(adata, CountingSpace(), "t", save="_ctl.png", show=False, overwrite=True)
    assert mine.read_bytes()[:8] == PNG
    with pytest.raises(ParameterError, match="overwrite must be True or False, got 'yes'"):
        pl.labels(adata, "cell_type", "guess", save=True, overwrite="yes", show=False)
    assert sorted(p.name for p in figdir.iterdir()) == ["mmgene_confusion.png", "mmgene_query_ctl.png"]


def test_a_loop_of_plots_leaves_no_figure_open(adata, figdir):
    """A figure a plot made stayed open in pyplot after it was saved or shown: a loop leaked them all."""
    for _ in range(40):  # over matplotlib's 20-figure warning
        assert pl.confusion(adata, "cell_type", "guess", show=True) is None  # Agg: shown means done
    assert plt.get_fignums() == []
    for i in range(5):
        pl.query(adata, CountingSpace(), "t", save=f"_{i}.png", show=False)
        pl.labels(adata, "cell_type", "guess", save=True, overwrite=True, show=False)
        assert isinstance(pl.confusion(adata, TRUE, PRED, save=".svg", overwrite=True, return_fig=True), matplotlib.figure.Figure)
    assert plt.get_fignums() == []
    assert (figdir / "mmgene_query_4.png").read_bytes()[:8] == PNG and len(list(figdir.iterdir())) == 7
    # the caller's own figure stays open, and show=False returns the open Axes, as scanpy does
    fig, ax = plt.subplots()
    assert pl.confusion(adata, "cell_type", "guess", ax=ax, show=True) is None
    ax2 = pl.confusion(adata, "cell_type", "guess", show=False)
    assert plt.get_fignums() == [fig.number, ax2.figure.number]
    np.testing.assert_array_equal(np.asarray(ax2.images[0].get_array()), [[0.5, 0.5, 0, 0], [0, 0.5, 0, 0.5], [0, 0, 1, 0]])


def test_a_value_refused_while_drawing_is_a_parameter_error_and_changes_nothing(adata):
    """size='big' reached matplotlib's scatter: a raw ValueError, an open figure and obs[key_added] already written."""
    with pytest.raises(ParameterError) as info:
        pl.query(adata, CountingSpace(), "t", key_added="score", size="big", show=False)
    assert str(info.value) == (
        "drawing failed on a value passed through mmgene.pl.query (ValueError: s must be float, but has type <U3). "
        "Where: keyword arguments size (passed to scanpy.pl.embedding). What to do: pass values of the types "
        "scanpy.pl.embedding and matplotlib's scatter take, e.g. size=20, alpha=0.5."
    )
    assert list(adata.obs.columns) == ["cell_type", "guess"] and plt.get_fignums() == []
    with pytest.raises(ParameterError, match=r"mmgene.pl.labels \(TypeError: alpha must be numeric or None, not a string\)"):
        pl.labels(adata, "cell_type", "guess", alpha="half", show=False)
    assert plt.get_fignums() == []


def test_blank_labels_are_missing_labels(adata):
    """An empty or blank label became a class named '' (drawn and counted) instead of a missing label."""
    with pytest.raises(ParameterError) as info:
        pl.labels(adata, ["a", "", "b", "b", "c", "c"], "guess", show=False)
    assert str(info.value) == (
        "1 cells have no label, first at cell 'c1'. Where: argument true. "
        "What to do: fill the missing labels (e.g. 'unknown') or plot the labelled cells only."
    )
    adata.obs["guess"] = ["a", "b", "  ", "unknown", "c", " "]
    with pytest.raises(ParameterError, match=r"2 cells have no label, first at cell 'c2'. Where: obs\['guess'\]"):
        pl.confusion(adata, "cell_type", "guess", show=False)
    with pytest.raises(ParameterError, match="1 cells have no label in y_pred, first at position 2"):
        pl.confusion_table(TRUE, ["a", "b", "", "b", "c", "c"])
    assert plt.get_fignums() == []


def test_a_series_of_labels_is_aligned_by_cell_id(adata):
    """A Series indexed by cell ids in another order was read by position: every cell got another's label."""
    reversed_pred = pd.Series(PRED[::-1], index=adata.obs_names[::-1])
    ax = pl.confusion(adata, "cell_type", reversed_pred, normalize=None, show=False)
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), COUNTS)
    axs = pl.labels(adata, pd.Series(TRUE), "guess", show=False)  # a default 0..n-1 index is read by position
    assert [t.get_text() for t in axs[0].get_legend().get_texts()] == ["a", "b", "c", "unknown"]
    with pytest.raises(ParameterError) as info:
        pl.labels(adata, "cell_type", pd.Series(PRED, index=[f"x{i}" for i in range(6)]), show=False)
    assert str(info.value) == (
        "predicted is a Series whose index does not match the AnnData's 6 cell ids ('x0' is not one of them). "
        "Where: argument predicted. What to do: pass a Series indexed by adata.obs_names (it is aligned by id), "
        "or a list or array in obs order."
    )


def test_an_embedding_that_is_not_dense_numbers_is_refused(adata):
    """Text coordinates failed in numpy's isfinite (a raw TypeError); a sparse one was reported as 'shape ()'."""
    adata.obsm["X_text"] = np.array([["a", "b"]] * 6)
    adata.obsm["X_sparse"] = sp.csr_matrix(adata.obsm["X_umap"])
    with pytest.raises(ParameterError) as info:
        pl.labels(adata, "cell_type", "guess", basis="text", show=False)
    assert str(info.value) == (
        "obsm['X_text'] must be a dense array of finite numbers with at least 2 columns, "
        "got ndarray of shape (6, 2), dtype <U1. "
        "Where: obsm['X_text']. What to do: pass the key of a 2-D embedding such as a UMAP."
    )
    with pytest.raises(ParameterError, match=r"got csr_matrix of shape \(6, 2\), dtype float64"):
        pl.query(adata, CountingSpace(), "t", basis="X_sparse", show=False)
    assert CountingSpace.calls == 0


def test_savefig_takes_the_axes_a_plot_returns_and_refuses_what_it_cannot_save(adata, tmp_path):
    """pl.savefig(ax, ...) with the Axes of show=False failed with AttributeError; a bad path or dpi with TypeError."""
    ax = pl.confusion(adata, "cell_type", "guess", show=False)
    target = tmp_path / "new" / "folder" / "confusion.png"  # missing folders are made
    assert pl.savefig(ax, target) == target and target.read_bytes()[:8] == PNG
    cases = [
        (lambda: pl.savefig([ax, ax], tmp_path / "x.png"),
         "expected a matplotlib Figure or Axes, got list. Where: argument fig. What to do: pass the Figure (return_fig=True) "
         "or one Axes; for two panels, save each Axes' figure."),
        (lambda: pl.savefig(ax.figure, None),
         "path must be a file path, got NoneType. Where: argument path. What to do: pass e.g. 'umap.png'."),
        (lambda: pl.savefig(ax.figure, tmp_path / "x.png", dpi="high"),
         "dpi must be a number above 0, got 'high'. Where: argument dpi. What to do: pass e.g. dpi=150."),
        (lambda: pl.savefig(ax.figure, tmp_path / "x.png", dpi=0), "dpi must be a number above 0, got 0."),
    ]
    for call, message in cases:
        with pytest.raises(ParameterError) as info:
            call()
        assert str(info.value).startswith(message), str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_class_colors_refuses_a_palette_that_is_no_colours_and_warns_when_all_are_grey(capsys):
    """palette=5 gave a raw TypeError; more than 102 classes were all drawn grey without a word."""
    with pytest.raises(ParameterError) as info:
        pl.class_colors(["a", "b"], 5)
    assert str(info.value) == (
        "palette must be a class -> colour mapping or a list of colours, got int. Where: argument palette. "
        "What to do: pass e.g. {'B cell': 'tab:blue'}, ['red', 'blue'], or None for scanpy's palette."
    )
    colors = pl.class_colors([f"type {i}" for i in range(103)] + ["unknown"])
    assert set(colors[:-1]) == {"#808080"} and colors[-1] == "#d3d3d3"
    assert capsys.readouterr().err == (
        "mmgene: warning: 103 classes are more than scanpy's largest palette holds: all are drawn grey; "
        "pass palette= to colour them\n"
    )
    assert len(set(pl.class_colors([f"type {i}" for i in range(102)]))) == 102 and capsys.readouterr().err == ""


class ToyEncoder:
    """Texts -> fixed 3-D vectors: a gene's text mentions its symbol; anything else is the query."""

    GENES = {"CD8A": [1.0, 0.0, 0.0], "NKG7": [0.6, 0.8, 0.0], "LYZ": [0.28, 0.0, 0.96]}

    def encode(self, texts, **_):
        return np.asarray([next((v for g, v in self.GENES.items() if g in t), [1.0, 0.0, 0.0]) for t in texts], dtype=np.float32)


def test_top_genes_refuses_a_cell_without_genes_or_an_id_of_several_cells():
    """A cell without counts drew an empty chart titled 'score 0.000'; a repeated cell id failed inside pandas."""
    from mmgene.genes import GeneVectors
    from mmgene.query import GenePTSpace

    genes = list(ToyEncoder.GENES)
    X = sp.csr_matrix(np.array([[6, 3, 1], [0, 0, 0], [1, 0, 0]], dtype=np.float32))
    cells = ad.AnnData(X=X, obs=pd.DataFrame(index=["t1", "empty", "t2"]), var=pd.DataFrame({"gene_symbol": genes}, index=genes))
    vectors = GeneVectors(symbols=genes, vectors=np.asarray(list(ToyEncoder.GENES.values())))
    space = GenePTSpace("w", encoder=ToyEncoder())
    message = ("cell 'empty' expresses no gene that has a gene vector, so no gene explains its score. Where: cell 'empty'. "
               "What to do: pick a cell with counts (e.g. one of the query's hits), or pass gene_vectors= covering its genes.")
    for given in (vectors, None):  # None: the default gene vectors, refused before any gene is embedded
        with pytest.raises(DataError) as info:
            pl.top_genes(cells, space, "cytotoxic T cells", "empty", gene_vectors=given, show=False)
        assert str(info.value) == message
    assert [t.get_text() for t in pl.top_genes(cells, space, "q", "t1", gene_vectors=vectors, show=False).get_yticklabels()] == genes
    cells.obs_names = ["t1", "empty", "t1"]
    with pytest.raises(ParameterError) as info:
        pl.top_genes(cells, space, "cytotoxic T cells", "empty", gene_vectors=vectors, show=False)
    assert str(info.value) == (
        "the cell ids are not unique: 't1' names 2 cells. Where: adata.obs_names. "
        "What to do: make them unique first, e.g. adata.obs_names_make_unique()."
    )
    plt.close("all")
    assert plt.get_fignums() == []
