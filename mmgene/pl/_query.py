"""Cells on an embedding, coloured by how well they match a text query."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmgene.config import check_key
from mmgene.errors import MissingColumnError, ParameterError
from mmgene.pl._figure import axes, check_ax, check_save, closed_on_error, finish
from mmgene.pl._inputs import basis_key, check_anndata, light_anndata, single_text
from mmgene.pl._options import check_embedding_kwargs, draw_embedding


#: scanpy.pl.embedding keywords that mmgene.pl.query sets itself.
OWN = ("adata", "basis", "color")


def text_scores(adata: Any, space: Any, text: str, *, use_rep: str | None = None) -> np.ndarray:
    """Cosine similarity of every cell of ``adata`` to ``text`` in a joint space (float32, obs order).

    ``space`` is a joint space or a spec for :func:`mmgene.query.load_space` (a model folder,
    ``'genept-s'``, ``'genept-w'``). Cells are embedded by the space, or read from
    ``obsm[use_rep]`` when they already are (e.g. ``'X_mmgene'``).
    """
    from mmgene.vectors import as_unit_vectors
    from mmgene.query.space import load_space

    check_anndata(adata)
    text = single_text(text)
    space = load_space(space)
    if use_rep is None:
        cells = space.encode_cells(adata)
    elif use_rep not in adata.obsm:
        raise MissingColumnError(use_rep, "obsm", list(adata.obsm.keys()))
    else:
        cells = as_unit_vectors(adata.obsm[use_rep], list(map(str, adata.obs_names)), f"obsm[{use_rep!r}]")
    query = space.encode_text([text])[0]
    if cells.shape[1] != query.size:
        raise ParameterError(
            f"cell vectors have dimension {cells.shape[1]} but the text vector {query.size}",
            f"obsm[{use_rep!r}]" if use_rep else "the joint space", "use the cell vectors of the model that embeds the text",
        )
    return (cells @ query).astype(np.float32)


def query(
    adata: Any,
    space: Any,
    text: str,
    *,
    basis: str = "umap",
    use_rep: str | None = None,
    key_added: str | None = None,
    title: str | None = None,
    ax: Any = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
    overwrite: bool = False,
    **kwargs: Any,
) -> Any:
    """Cells on ``obsm['X_<basis>']`` coloured by their cosine similarity to ``text`` (best cells drawn on top).

    ``space`` and ``use_rep`` as in :func:`text_scores`; ``key_added`` also writes the scores to
    ``adata.obs[key_added]``. Other keyword arguments go to :func:`scanpy.pl.embedding` (``size``,
    ``cmap``, ``vmin``, ``frameon``...), checked before anything is computed: an unknown keyword or
    colormap is a :class:`~mmgene.errors.ParameterError`. Returns the Axes (``show=False``), the Figure
    (``return_fig=True``) or ``None`` (shown), as scanpy does; ``save`` replaces a file only with ``overwrite=True``.
    """
    text = single_text(text)
    check_ax(ax)
    check_save(save, "mmgene_query", overwrite)
    kwargs = check_embedding_kwargs(kwargs, "mmgene.pl.query", OWN)
    key = basis_key(adata, basis)
    if key_added is not None:
        from mmgene.provenance import check_own_columns

        check_key(key_added, "argument key_added", "query_score")
        check_own_columns(adata, [key_added], key_added, "argument key_added")
    scores = text_scores(adata, space, text, use_rep=use_rep)
    made = ax is None
    fig, ax = axes(ax)
    light, name = light_anndata(adata, key, {"score": scores})
    with closed_on_error(fig, made):
        draw_embedding(light, name, "mmgene.pl.query", kwargs, color="score", ax=ax,
                       title=text if title is None else title)
    if key_added:  # once drawn: a refused call leaves adata as it was
        from mmgene.provenance import record

        adata.obs[key_added] = scores
        record(adata, key_added, text=text, use_rep=use_rep or "")
    return finish(fig, ax, "mmgene_query", show=show, save=save, return_fig=return_fig, overwrite=overwrite, made=made)
