"""What every plot does at its start and end: make or take the axes, then save, show or return, as scanpy does.

``show``, ``save`` and ``return_fig`` mean what they mean in :func:`scanpy.pl.embedding`:

- ``return_fig=True`` returns the :class:`~matplotlib.figure.Figure` (after saving, when asked);
- ``save=True`` or a suffix such as ``'_cd8.pdf'`` writes ``sc.settings.figdir / f'{writekey}{suffix}'``
  (the extension picks the format, default ``sc.settings.file_format_figs``); an existing file there is
  replaced only with ``overwrite=True`` (checked before any work), the one departure from scanpy;
- ``show=None`` follows ``sc.settings.autoshow``; a shown figure returns ``None``, otherwise the axes.

A figure the plot made itself is closed once saved (as scanpy does) or shown (unless pyplot is
interactive), and when drawing fails, so a loop of plots leaves no figures open.
:func:`savefig` writes a figure to a path of your choice instead, never over a file unless asked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmgene.atomic import atomic_path, check_output
from mmgene.config import check_range
from mmgene.errors import ParameterError
from mmgene.lazy import require

FORMATS = ("png", "pdf", "svg")


def pyplot() -> Any:
    """``matplotlib.pyplot``, or a clear error naming the extra that installs it."""
    require("matplotlib", "Plotting")
    import matplotlib.pyplot as plt

    return plt


def check_ax(ax: Any) -> Any:
    """``ax`` itself when it is ``None`` or one matplotlib Axes."""
    if ax is not None and not (hasattr(ax, "figure") and hasattr(ax, "scatter")):
        raise ParameterError(f"ax must be a matplotlib Axes, got {type(ax).__name__}", "argument ax", "pass ax=None or one Axes, e.g. from plt.subplots()")
    return ax


def axes(ax: Any, figsize: tuple[float, float] | None = None) -> tuple[Any, Any]:
    """``(figure, axes)``: the given ``ax`` and its figure, or a new figure with one axes."""
    if check_ax(ax) is None:
        fig, ax = pyplot().subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def check_save(save: bool | str | None, writekey: str | None = None, overwrite: bool = False) -> None:
    """``save`` is one of the values scanpy accepts; with ``writekey``, the file it names may be written
    (an existing one only with ``overwrite=True``): checked before the plot computes anything."""
    if save is not None and not isinstance(save, (bool, str)):
        raise ParameterError(
            f"save must be True, False, None or a file-name suffix, got {type(save).__name__}", "argument save",
            "pass e.g. save=True or save='_mine.pdf' (written to sc.settings.figdir), or use mmgene.pl.savefig(fig, path)",
        )
    if not isinstance(overwrite, bool):
        raise ParameterError(f"overwrite must be True or False, got {overwrite!r}", "argument overwrite",
                             "pass overwrite=True to replace a saved figure")
    if save and writekey is not None:
        check_output(scanpy_path(writekey, save), overwrite=overwrite)


def scanpy_path(writekey: str, save: bool | str) -> Path:
    """Where scanpy would write ``save`` for a plot named ``writekey``."""
    import scanpy as sc

    suffix, ext = (save if isinstance(save, str) else ""), None
    for fmt in FORMATS:
        if suffix.endswith(f".{fmt}"):
            suffix, ext = suffix[: -len(fmt) - 1], fmt
    if os.sep in suffix or (os.altsep and os.altsep in suffix):
        raise ParameterError(f"save={save!r} names a folder", "argument save", "pass a file-name suffix; set sc.settings.figdir for the folder")
    ext = ext or sc.settings.file_format_figs
    if str(ext).lower() not in _writable_formats():  # else matplotlib refuses it only once the plot is drawn
        raise ParameterError(
            f"matplotlib cannot save a figure as {ext!r}", "sc.settings.file_format_figs",
            f"set sc.settings.file_format_figs to one of {', '.join(sorted(_writable_formats()))}, "
            f"or end save with .{', .'.join(FORMATS)}",
        )
    return Path(sc.settings.figdir) / f"{writekey}{suffix}{sc.settings.plot_suffix}.{ext}"


def _writable_formats() -> set[str]:
    """The file formats matplotlib can write (png, pdf, svg, jpg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())


@contextmanager
def closed_on_error(fig: Any, made: bool) -> Iterator[None]:
    """Close ``fig`` when drawing or saving it fails and the plot made it (``made``): a refused call leaves
    no open figure behind."""
    try:
        yield
    except BaseException:
        if made:
            pyplot().close(fig)
        raise


def finish(
    fig: Any, axs: Any, writekey: str, *, show: bool | None, save: bool | str | None, return_fig: bool,
    overwrite: bool = False, made: bool = False,
) -> Any:
    """Save (when asked), then return the figure, show it (returning ``None``) or return the axes. A figure
    the plot made (``made``) is then closed when saved or shown, so that pyplot keeps no figure nobody holds."""
    import scanpy as sc

    check_save(save)
    with closed_on_error(fig, made):
        if save:
            target = scanpy_path(writekey, save)
            with atomic_path(target, overwrite=overwrite) as tmp:
                fig.savefig(tmp, format=target.suffix[1:], bbox_inches="tight")
    shown = not return_fig and bool(sc.settings.autoshow if show is None else show)
    if shown:
        pyplot().show()
    if made and (save or (shown and not pyplot().isinteractive())):  # interactive: the window shows it
        pyplot().close(fig)
    if return_fig:
        return fig
    return None if shown else axs


def savefig(fig: Any, path: str | os.PathLike[str], *, dpi: float = 100, overwrite: bool = False) -> Path:
    """Write ``fig`` (a Figure, or one Axes: its figure) to ``path`` (format from the extension: png, pdf
    or svg) atomically.

    An existing file is replaced only with ``overwrite=True``. Returns the path.
    """
    if not hasattr(fig, "savefig") and hasattr(getattr(fig, "figure", None), "savefig"):
        fig = fig.figure  # the Axes a plot returns with show=False
    if not hasattr(fig, "savefig"):
        raise ParameterError(
            f"expected a matplotlib Figure or Axes, got {type(fig).__name__}", "argument fig",
            "pass the Figure (return_fig=True) or one Axes; for two panels, save each Axes' figure",
        )
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"path must be a file path, got {type(path).__name__}", "argument path", "pass e.g. 'umap.png'")
    check_range(dpi, "dpi", "argument dpi", 0, None, strict=True, fix="pass e.g. dpi=150")
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ParameterError(f"cannot tell the figure format from {path.name!r}", str(path), f"end the file name with .{', .'.join(FORMATS)}")
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


def check_axes_pair(ax: Any) -> list[Any] | None:
    """``None`` or exactly two Axes (one per panel), from a list, tuple or array of them."""
    if ax is None:
        return None
    if hasattr(ax, "scatter") or isinstance(ax, (str, bytes)) or not hasattr(ax, "__iter__"):
        items = []
    else:
        items = list(getattr(ax, "flat", ax))  # .flat: an array of Axes, as plt.subplots(1, 2) returns
    if len(items) != 2 or not all(hasattr(a, "scatter") for a in items):
        raise ParameterError(
            "this plot has two panels and needs two Axes", "argument ax", "pass ax=None or a pair of Axes, e.g. plt.subplots(1, 2)[1]"
        )
    return items
