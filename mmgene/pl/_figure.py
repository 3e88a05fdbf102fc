"""What every plot does at its start and end: make or take the axes, then save, show or return, as scanpy does.

``show``, ``save`` and ``return_fig`` mean what they mean in :func:`scanpy.pl.embedding`:

- ``return_fig=True`` returns the :class:`~matplotlib.figure.Figure` (after saving, when asked);
- ``save=True`` or a suffix such as ``'_cd8.pdf'`` writes ``sc.settings.figdir / f'{writekey}{suffix}'``
  (the extension picks the format, default ``sc.settings.file_format_figs``), replacing an earlier
  figure of that name as scanpy does;
- ``show=None`` follows ``sc.settings.autoshow``; a shown figure returns ``None``, otherwise the axes.

:func:`savefig` writes a figure to a path of your choice instead, never over a file unless asked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmgene.atomic import atomic_path
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


def check_save(save: bool | str | None) -> None:
    """``save`` is one of the values scanpy accepts."""
    if save is not None and not isinstance(save, (bool, str)):
        raise ParameterError(
            f"save must be True, False, None or a file-name suffix, got {type(save).__name__}", "argument save",
            "pass e.g. save=True or save='_mine.pdf' (written to sc.settings.figdir), or use mmgene.pl.savefig(fig, path)",
        )


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
    return Path(sc.settings.figdir) / f"{writekey}{suffix}{sc.settings.plot_suffix}.{ext}"


def finish(fig: Any, axs: Any, writekey: str, *, show: bool | None, save: bool | str | None, return_fig: bool) -> Any:
    """Save (when asked), then return the figure, show it (returning ``None``) or return the axes."""
    check_save(save)
    if save:
        target = scanpy_path(writekey, save)
        with atomic_path(target, overwrite=True) as tmp:
            fig.savefig(tmp, format=target.suffix[1:], bbox_inches="tight")
    if return_fig:
        return fig
    import scanpy as sc

    if sc.settings.autoshow if show is None else show:
        pyplot().show()
        return None
    return axs


def savefig(fig: Any, path: str | os.PathLike[str], *, dpi: float = 100, overwrite: bool = False) -> Path:
    """Write ``fig`` to ``path`` (format from the extension: png, pdf or svg) atomically.

    An existing file is replaced only with ``overwrite=True``. Returns the path.
    """
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
