"""True and predicted labels side by side on one embedding, each class the same colour in both panels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import ParameterError
from mmgene.pl._figure import check_axes_pair, check_save, closed_on_error, finish, pyplot
from mmgene.pl._inputs import basis_key, class_order, label_values, light_anndata
from mmgene.pl._options import check_embedding_kwargs, draw_embedding

#: colour of cells answered 'unknown' (scanpy's colour for missing values)
UNKNOWN_COLOR = "lightgray"


def class_colors(classes: Sequence[str], palette: Mapping[Any, str] | Sequence[str] | str | Any = None) -> list[str]:
    """One colour per class: from ``palette`` (as in scanpy: a class -> colour mapping, a list of colours, a
    :class:`~cycler.Cycler` with a ``'color'`` key, or a matplotlib colormap name such as ``'tab20'``), else
    scanpy's default palettes (as scanpy, all grey beyond 102 classes, with a warning). 'unknown' is light
    grey unless the palette says otherwise; a list needs a colour per class, or per class other than 'unknown'.
    Mapping keys are compared as text, as the labels are (``{1: 'red'}`` colours label ``1``)."""
    from matplotlib import colormaps
    from matplotlib.colors import is_color_like, to_hex

    from mmgene.query.labelling import UNKNOWN

    known = [c for c in classes if c != UNKNOWN]
    if isinstance(palette, Mapping):
        palette = {str(k): v for k, v in palette.items()}
        missing = [c for c in known if c not in palette]
        if missing:
            raise ParameterError(f"the palette has no colour for class {missing[0]!r}", "argument palette", "give a colour for every class")
        colors = [palette.get(c, UNKNOWN_COLOR) for c in classes]
    elif isinstance(palette, str) and palette in colormaps:  # scanpy samples the colormap evenly
        colors = _around_unknown(classes, colormaps[palette](np.linspace(0, 1, len(known))))
    elif palette is not None:
        colors = _listed_colors(classes, known, palette)
    else:
        colors = _default_colors(classes, known)
    bad = [c for c in colors if not is_color_like(c)]
    if bad:
        raise ParameterError(f"{bad[0]!r} is not a colour", "argument palette", "use matplotlib colour names or hex codes")
    return [to_hex(c) for c in colors]


def _listed_colors(classes: Sequence[str], known: Sequence[str], palette: Any) -> list[Any]:
    """Colours from a list or Cycler in class order; with exactly one per known class, 'unknown' is light grey."""
    from cycler import Cycler

    if isinstance(palette, Cycler):
        if "color" not in palette.keys:
            raise ParameterError("the palette cycler has no 'color' key", "argument palette",
                                 "pass e.g. cycler(color=['red', 'blue'])")
        palette = [item["color"] for item in palette]
    if not isinstance(palette, (str, Iterable)):
        raise ParameterError(
            f"palette must be a class -> colour mapping or a list of colours, got {type(palette).__name__}",
            "argument palette",
            "pass e.g. {'B cell': 'tab:blue'}, ['red', 'blue'], or None for scanpy's palette",
        )
    colors = [palette] if isinstance(palette, str) else list(palette)
    if len(colors) == len(known) < len(classes):
        return _around_unknown(classes, colors)
    if len(colors) < len(classes):
        raise ParameterError(
            f"the palette has {len(colors)} colours for {len(classes)} classes", "argument palette",
            "pass at least one colour per class, a class -> colour mapping, or None for scanpy's palette",
        )
    return colors[: len(classes)]


def _default_colors(classes: Sequence[str], known: Sequence[str]) -> list[Any]:
    """scanpy's default palette for the known classes, light grey for 'unknown'."""
    from scanpy.plotting import palettes

    pools = (palettes.default_20, palettes.default_28, palettes.default_102)
    pool = next((p for p in pools if len(p) >= len(known)), None)
    if pool is None:  # scanpy's fallback for very many classes
        from mmgene.progress import warn

        warn(f"{len(known)} classes are more than scanpy's largest palette holds: all are drawn grey; "
             "pass palette= to colour them")
    return _around_unknown(classes, list(pool) if pool is not None else ["grey"] * len(known))


def _around_unknown(classes: Sequence[str], colors: Iterable[Any]) -> list[Any]:
    """``colors`` given in turn to the classes other than 'unknown', which is light grey."""
    from mmgene.query.labelling import UNKNOWN

    it = iter(colors)
    return [UNKNOWN_COLOR if c == UNKNOWN else next(it) for c in classes]


def labels(
    adata: Any,
    true: str | Sequence[Any] | np.ndarray | pd.Series,
    predicted: str | Sequence[Any] | np.ndarray | pd.Series,
    *,
    basis: str = "umap",
    title: Sequence[str] | None = None,
    palette: Mapping[Any, str] | Sequence[str] | str | Any = None,
    ax: Any = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
    overwrite: bool = False,
    **kwargs: Any,
) -> Any:
    """Cells on ``obsm['X_<basis>']`` coloured by their true label (left panel) and predicted label (right).

    ``true`` and ``predicted`` are obs column names or one label per cell (obs order). Every class,
    including ones only predicted (such as 'unknown'), has one colour in both panels and in both
    legends; ``palette`` as in :func:`class_colors`. ``ax`` may be two Axes to draw the panels on (they
    may belong to different figures); ``title`` two titles. Other keyword arguments go to :func:`scanpy.pl.embedding` (an unknown one or
    an unknown colormap is a :class:`~mmgene.errors.ParameterError`). Returns the two
    Axes (``show=False``), the Figure of the first panel (``return_fig=True``) or ``None`` (shown); ``save``
    replaces a file only with ``overwrite=True``.
    """
    check_save(save, "mmgene_labels", overwrite)
    kwargs = check_embedding_kwargs(kwargs, "mmgene.pl.labels", ("adata", "basis", "color"))
    pair = check_axes_pair(ax)
    key = basis_key(adata, basis)
    y_true, y_pred = label_values(adata, true, "true"), label_values(adata, predicted, "predicted")
    if title is None:
        title = [f"true: {true}" if isinstance(true, str) else "true label",
                 f"predicted: {predicted}" if isinstance(predicted, str) else "predicted label"]
    elif isinstance(title, str) or len(title) != 2:
        raise ParameterError("title needs two titles, one per panel", "argument title", "pass e.g. title=('true', 'predicted')")
    _, classes = class_order(y_true, y_pred)
    colors = class_colors(classes, palette)
    light, name = light_anndata(adata, key, {
        "true": pd.Categorical(y_true, categories=classes), "predicted": pd.Categorical(y_pred, categories=classes),
    })
    light.uns["true_colors"] = light.uns["predicted_colors"] = colors
    made = pair is None
    if made:
        pair = list(pyplot().subplots(1, 2, figsize=(11, 4.2), layout="constrained")[1])
    fig = pair[0].figure
    with closed_on_error(fig, made):
        for panel, column, heading in zip(pair, ("true", "predicted"), title):
            draw_embedding(light, name, "mmgene.pl.labels", kwargs, color=column, title=heading, ax=panel)
    return finish(fig, pair, "mmgene_labels", show=show, save=save, return_fig=return_fig, overwrite=overwrite,
                  made=made)
