"""Text -> cells and cell -> cells over a :class:`~mmgene.index.CellIndex`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import MissingColumnError, ParameterError, is_whole_number
from mmgene.query.space import _check_texts, load_space, space_name
from mmgene.vectors import as_float32


def text_to_cells(index: Any, texts: str | Sequence[str], *, model: Any = None, k: int = 20) -> pd.DataFrame:
    """The ``k`` cells most similar to each text, best first.

    ``model`` is the joint space the index's vectors live in (default: the one recorded in the
    index). Returns a table with ``query``, ``rank``, ``cell_id``, ``score`` (cosine similarity),
    the index's obs columns and ``position`` (row in the index).
    """
    texts = _check_texts(texts)
    spec = model if model is not None else index.model
    space = load_space(spec)
    queries = space.encode_text(texts)
    if np.shape(queries)[-1] != index.dim:
        raise ParameterError(
            f"model {space_name(space, spec)!r} encodes text into dimension {np.shape(queries)[-1]} but the index holds vectors of "
            f"dimension {index.dim} (obsm[{index.embedding_key!r}])", "text query",
            "query with the model those vectors were made with (--model, model=), or rebuild the index from vectors of this model",
        )
    return index.hits(queries, k, query_names=texts)


def cells_to_cells(index: Any, cells: Any, *, k: int = 20, exclude_self: bool = True, model: Any = None) -> pd.DataFrame:
    """The ``k`` indexed cells most similar to each given cell.

    ``cells`` is a list of cell ids already in the index (their stored vectors are the queries;
    ``exclude_self`` drops each cell from its own result), an (n, d) array, or an AnnData whose
    ``obsm[index.embedding_key]`` holds the vectors (or which ``model`` embeds).
    """
    if hasattr(cells, "obsm"):
        key = index.embedding_key
        if key is not None and key in cells.obsm:
            vectors = cells.obsm[key]
        elif model is not None or index.model is not None:
            vectors = load_space(model if model is not None else index.model).encode_cells(cells)
        elif key is None:  # an index of bare vectors that names no model: nothing says which of the AnnData's to use
            raise ParameterError(
                "the index was built from bare vectors and records neither an obsm key nor a model, so nothing says "
                "which of the AnnData's vectors to compare with it", "cells_to_cells(cells=...)",
                "pass the cells' vectors as an array in the index's space, or a model (model=...)",
            )
        else:
            raise MissingColumnError(str(key), "obsm", list(cells.obsm.keys()))
        names = list(map(str, cells.obs_names))
        return index.hits(vectors, k, query_names=names)
    if _are_vectors(cells):
        return index.hits(as_float32(cells, "cells_to_cells(cells=...)"), k)
    if not hasattr(index, "positions"):  # IndexShards: its cells are looked up one shard at a time
        raise ParameterError(
            "cell ids are looked up in one index folder, but these are shards searched as one",
            "cells_to_cells(cells=...)",
            "pass the cells' vectors (CellIndex.vectors(ids) of the shard that holds them), or query that shard alone",
        )
    ids = [str(c) for c in ([cells] if isinstance(cells, str) else cells)]
    if not is_whole_number(k, 1):  # the search asks for k + 1 neighbours, so k = 0 would pass it and return nothing
        raise ParameterError(f"k must be at least 1 (a whole number), got {k!r}", "cells_to_cells(k=...)", "ask for k >= 1 neighbours")
    if not ids:
        raise ParameterError("no cells given", "cells_to_cells", "pass cell ids, vectors or an AnnData")
    pos = index.positions(ids)
    scores, found = index.search(index.vectors(positions=pos), k + int(exclude_self))
    if exclude_self:
        scores, found = _drop_own(scores, found, pos, min(k, max(index.ntotal - 1, 0)))
    return index.table(scores, found, query_names=ids)


def _are_vectors(cells: Any) -> bool:
    """Whether ``cells`` are vectors, not cell ids: a float array, or numbers in rows (an integer array, a list of
    lists), which as ids would be looked up as the texts '[1 0 0]'. A flat list of integers stays ids."""
    if isinstance(cells, str):
        return False
    if isinstance(cells, np.ndarray) and cells.dtype.kind == "f":
        return True
    try:
        arr = np.asarray(cells)
    except ValueError:  # ragged: rows of unequal length are vectors (refused as such), anything else ids
        return all(isinstance(row, (Sequence, np.ndarray)) and not isinstance(row, str) for row in cells)
    return arr.ndim == 2 and arr.dtype.kind in "iuf"


def _drop_own(scores: np.ndarray, found: np.ndarray, own: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own position from its row (or the last hit when it was not found)."""
    from mmgene.hits import own_hit_mask

    n, width = found.shape
    keep = ~own_hit_mask(found, own)
    scores = scores[keep].reshape(n, width - 1)[:, :k]
    found = found[keep].reshape(n, width - 1)[:, :k]
    return scores, found
