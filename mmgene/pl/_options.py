"""What a plot passes on to scanpy and matplotlib, checked before anything is computed or drawn.

A misspelt colormap or keyword would otherwise fail deep inside matplotlib (``PathCollection.set()
got an unexpected keyword argument``) after the scores were computed; here it is refused up front
with the argument's name and the names that would work.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from mmgene.errors import ParameterError, cause

#: keywords of :func:`scanpy.pl.embedding` that read data the plot does not hand it (expression
#: values, raw, a layer, a neighbour graph): the plot draws only its own scores or labels.
NOT_PASSED = frozenset({
    "use_raw", "layer", "gene_symbols", "neighbors_key", "edges", "edges_width", "edges_color", "arrows", "arrows_kwds",
})
#: scatter arguments scanpy sets itself (points, colours, sizes, rasterising): passing one would clash.
SET_BY_SCANPY = frozenset({"x", "y", "c", "data", "rasterized", "plotnonfinite", "array", "offsets", "paths", "figure"})
#: keyword arguments of :func:`scanpy.pl.embedding` that name a colormap.
CMAP_KEYS = ("cmap", "color_map")
#: colormaps a refusal suggests after the names closest to the one given.
COMMON_CMAPS = ("viridis", "Reds", "Blues", "magma", "coolwarm")


def check_cmap(cmap: Any, argument: str = "cmap") -> Any:
    """``cmap`` itself when it is ``None``, a matplotlib Colormap or a name registered in
    :data:`matplotlib.colormaps`; otherwise a :class:`ParameterError` naming ``argument`` and close names."""
    from matplotlib import colormaps
    from matplotlib.colors import Colormap

    if cmap is None or isinstance(cmap, Colormap):
        return cmap
    if not isinstance(cmap, str):
        raise ParameterError(
            f"{argument} must be a colormap name or a matplotlib Colormap, got {type(cmap).__name__}", f"argument {argument}",
            "pass a name such as 'viridis', 'Reds' or 'Blues'",
        )
    if cmap in colormaps:
        return cmap
    names = sorted(colormaps)
    close = list(dict.fromkeys([n for n in names if n.lower() == cmap.lower()] + difflib.get_close_matches(cmap, names, n=3, cutoff=0.6)))
    examples = ", ".join(map(repr, list(dict.fromkeys([*close[:3], *COMMON_CMAPS]))[:5]))  # the closest names first
    raise ParameterError(
        f"{cmap!r} is not a matplotlib colormap", f"argument {argument}",
        f"pass one of the {len(names)} names in matplotlib.colormaps, e.g. {examples}",
    )


@lru_cache(maxsize=1)
def embedding_keywords() -> frozenset[str]:
    """Keywords :func:`scanpy.pl.embedding` accepts: its own parameters, then what its ``**kwargs``
    reach (:meth:`matplotlib.axes.Axes.scatter`'s parameters and the PathCollection's properties,
    aliases included), less the ones scanpy sets itself or that read data the plot does not pass."""
    import scanpy as sc
    from matplotlib.artist import ArtistInspector
    from matplotlib.axes import Axes
    from matplotlib.collections import PathCollection

    def named(func: Any) -> set[str]:
        params = inspect.signature(func).parameters.values()
        return {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}

    inspector = ArtistInspector(PathCollection)
    properties = set(inspector.get_setters()) | {a for aliases in inspector.aliasd.values() for a in aliases}
    return frozenset((named(sc.pl.embedding) | named(Axes.scatter) | properties) - SET_BY_SCANPY - NOT_PASSED)


def check_embedding_kwargs(kwargs: Mapping[str, Any], function: str, own: Iterable[str]) -> dict[str, Any]:
    """``kwargs`` with matplotlib's aliases spelt out (``ec`` -> ``edgecolor``: scanpy sets ``edgecolor``
    itself unless given, and would clash with or override an alias); a :class:`ParameterError` for a
    keyword that :func:`scanpy.pl.embedding` (and the scatter behind it) would not take, one that
    ``function`` sets itself (``own``, e.g. ``color``), and an unknown colormap name."""
    from matplotlib.cbook import normalize_kwargs
    from matplotlib.collections import PathCollection

    own = set(own)
    known = embedding_keywords()
    for name in kwargs:
        if name in own:
            raise ParameterError(
                f"{function} sets {name!r} itself", f"keyword argument {name}",
                f"leave {name}= out (the plot's own arguments are listed in help({function}))",
            )
        if name in SET_BY_SCANPY or name in NOT_PASSED:
            raise ParameterError(
                f"{name!r} cannot be passed through {function}: "
                + ("scanpy sets it itself" if name in SET_BY_SCANPY else "the plot draws its own values, not the AnnData's"),
                f"keyword argument {name}", "leave it out",
            )
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
            hint = f"; close names: {', '.join(map(repr, close))}" if close else ""
            raise ParameterError(
                f"unknown keyword argument {name!r} for {function}", f"keyword argument {name} (passed to scanpy.pl.embedding)",
                "pass a parameter of scanpy.pl.embedding (size, frameon, vmin, vmax, legend_loc, ...) or a matplotlib "
                f"scatter property (alpha, edgecolor, linewidth, zorder, ...){hint}",
            )
    for key in CMAP_KEYS:
        if key in kwargs:
            check_cmap(kwargs[key], key)
    try:
        return dict(normalize_kwargs(dict(kwargs), PathCollection))
    except TypeError as exc:  # two spellings of one property, e.g. ec= and edgecolor=
        raise ParameterError(str(exc), "keyword arguments", "pass each scatter property once") from None


def draw_embedding(light: Any, basis: str, function: str, kwargs: Mapping[str, Any], **own: Any) -> None:
    """:func:`scanpy.pl.embedding` of ``light`` with the plot's ``own`` arguments and the caller's checked
    ``kwargs``; a value scanpy or matplotlib refuses (``size='big'``, ``alpha='x'``) is a
    :class:`ParameterError` naming the keyword arguments passed, not a TypeError from deep inside matplotlib."""
    import scanpy as sc

    try:
        sc.pl.embedding(light, basis, show=False, **own, **kwargs)
    except (TypeError, ValueError) as exc:
        if not kwargs:
            raise
        raise ParameterError(
            f"drawing failed on a value passed through {function} ({cause(exc)})",
            f"keyword arguments {', '.join(kwargs)} (passed to scanpy.pl.embedding)",
            "pass values of the types scanpy.pl.embedding and matplotlib's scatter take, e.g. size=20, alpha=0.5",
        ) from exc
