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


def class_colors(classes: Sequence[str], palette: Mapping[str, str] | Sequence[str] | None = None) -> list[str]:
    """One colour per class: from ``palette`` (a class -> colour mapping or a list of at least as many colours),
    else scanpy's default palettes (as scanpy, all grey beyond 102 classes, with a warning); 'unknown' is light
    grey unless the palette says otherwise."""
    from matplotlib.colors import is_color_like, to_hex

    from mmgene.query.labelling import UNKNOWN

    if isinstance(palette, Mapping):
        missing = [c for c in classes if c not in palette and c != UNKNOWN]
        if missing:
            raise ParameterError(f"the palette has no colour for class {missing[0]!r}", "argument palette", "give a colour for every class")
        colors = [palette.get(c, UNKNOWN_COLOR) for c in classes]
    elif palette is not None:
        if not isinstance(palette, (str, Iterable)):
            raise ParameterError(
                f"palette must be a class -> colour mapping or a list of colours, got {type(palette).__name__}",
                "argument palette",
                "pass e.g. {'B cell': 'tab:blue'}, ['red', 'blue'], or None for scanpy's palette",
            )
        colors = [palette] if isinstance(palette, str) else list(palette)
        if len(colors) < len(classes):
            raise ParameterError(
                f"the palette has {len(colors)} colours for {len(classes)} classes", "argument palette",
                "pass at least one colour per class, a class -> colour mapping, or None for scanpy's palette",
            )
        colors = colors[: len(classes)]
    else:
        from scanpy.plotting import palettes

        known = [c for c in classes if c != UNKNOWN]
        pool = next((p for p in (palettes.default_20, palettes.default_28, palettes.default_102) if len(p) >= len(known)), None)
        if pool is None:  # scanpy's fallback for very many classes
            from mmgene.progress import warn

            warn(f"{len(known)} classes are more than scanpy's largest palette holds: all are drawn grey; "
                 "pass palette= to colour them")
        pool = list(pool) if pool is not None else ["grey"] * len(known)
        it = iter(pool)
        colors = [UNKNOWN_COLOR if c == UNKNOWN else next(it) for c in classes]
    bad = [c for c in colors if not is_color_like(c)]
    if bad:
        raise ParameterError(f"{bad[0]!r} is not a colour", "argument palette", "use matplotlib colour names or hex codes")
    return [to_hex(c) for c in colors]


def labels(
    adata: Any,
    true: str | Sequence[Any] | np.ndarray | pd.Series,
    predicted: str | Sequence[Any] | np.ndarray | pd.Series,
    *,
    basis: str = "umap",
    title: Sequence[str] | None = None,
    palette: Mapping[str, str] | Sequence[str] | None = None,
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
    legends. ``ax`` may be two Axes to draw the panels on (they may belong to different figures);
    ``title`` two titles. Other keyword arguments go to :func:`scanpy.pl.embedding` (an unknown one or
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
