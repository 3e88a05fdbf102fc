"""AnnData -> ``datasets.DatasetDict`` in three layouts, with leak-free splits.

Layouts (every row also carries ``sample_idx``, ``chunk``, ``cell_id``, ``share_link`` and
``chunk_sha256``, so any row leads back to its cell's AnnData chunk):

``single``
    One row per cell: ``cell_sentence``, ``caption`` (when captions are given), the ``obs`` metadata
    (a column named like one of mmgene's own is stored as ``obs_<name>``: :func:`metadata_column`)
    and any chosen ``obsm`` embeddings (``emb_<key>``). ``sample_idx`` is the cell's position in the
    AnnData.
``pairs``
    Cell-caption pairs for a binary matching objective: per cell one row with its own caption
    (``label=1``) and ``n_negatives`` rows with a different caption drawn at random (``label=0``).
    ``sample_idx = cell_idx * (1 + n_negatives) + j``.
``multiplets``
    One row per cell for contrastive losses: ``anchor`` (the cell sentence), ``positive`` (its
    caption), ``negative_1..k`` (different captions) and ``negative_cell_1..m`` (sentences of other
    cells with a different caption, with their ``negative_cell_idx_*``). ``sample_idx`` is the cell index.

A cell with no label (or caption): None, NaN, empty or blank, has ``caption`` None in ``single`` and
no row in ``pairs``/``multiplets`` (how many is said on stderr); those two layouts need at least two
distinct captions among the other cells.

``sample_idx`` is unique across the whole DatasetDict and all chunks; ``chunk`` says which chunk file
holds the cell. Splits are drawn per group (``split_by``: donor, sample, batch ...), so no group
appears in two splits; negatives are drawn within the row's own split, so no split sees another's
cells. All random choices come from ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import DataError, LabelError, ParameterError, _preview, is_whole_number
from mmgene.hub.config import DEFAULT_SPLITS, LayoutConfig, check_splits, fill_caption
from mmgene.io import obs_column
from mmgene.io.labels import MIN_CLASSES, report_dropped
from mmgene.text.labels import label_text

#: columns mmgene writes itself; obs columns with these names are stored as ``obs_<name>``
RESERVED = {
    "sample_idx", "cell_idx", "chunk", "cell_id", "cell_sentence", "caption", "label", "share_link",
    "chunk_sha256", "anchor", "positive",
}
#: prefixes of columns mmgene writes itself; obs columns starting with them are stored as ``obs_<name>`` too
RESERVED_PREFIXES = ("obs_", "emb_", "negative_")


def assign_splits(
    groups: Sequence[Any] | np.ndarray | pd.Series | None,
    n_obs: int,
    splits: Mapping[str, float] = DEFAULT_SPLITS,
    seed: int = 0,
    where: str = "split_by",
) -> np.ndarray:
    """The split name of every cell; all cells of one group land in the same split.

    ``groups=None`` splits cells individually (a seeded permutation cut at the fractions). Otherwise
    the groups are shuffled with ``seed``; each split first gets one group, then every further group
    goes to the split furthest below its target number of cells. Raises if there are fewer groups
    than splits.
    """
    splits = check_splits(splits)
    names = np.array(list(splits), dtype=object)
    fractions = np.array(list(splits.values()))
    rng = np.random.default_rng(seed)
    if n_obs < len(names):
        raise ParameterError(f"{n_obs} cells cannot fill {len(names)} splits", where, "use fewer splits")
    if groups is None:
        order = rng.permutation(n_obs)
        bounds = np.round(np.cumsum(fractions) * n_obs).astype(int)
        bounds = np.maximum(bounds, np.arange(1, len(bounds) + 1))  # every split gets at least one cell
        bounds[-1] = n_obs
        out = np.empty(n_obs, dtype=object)
        start = 0
        for name, stop in zip(names, bounds):
            out[order[start:stop]] = name
            start = stop
        return out
    values = pd.Series(np.asarray(groups))
    if values.isna().any():
        raise DataError(
            f"{int(values.isna().sum())} cells have no value in the group column", where, "fill or drop them before splitting"
        )
    codes, uniques = pd.factorize(values, sort=True)
    if len(uniques) < len(names):
        raise ParameterError(
            f"the group column has {len(uniques)} groups, fewer than the {len(names)} splits",
            where,
            "choose a column with more groups, or fewer splits",
        )
    sizes = np.bincount(codes, minlength=len(uniques))
    targets = fractions * n_obs
    filled = np.zeros(len(names))
    group_split = np.empty(len(uniques), dtype=np.int64)
    for rank, g in enumerate(rng.permutation(len(uniques))):
        s = rank if rank < len(names) else int(np.argmax((targets - filled) / targets))
        group_split[g] = s
        filled[s] += sizes[g]
    return names[group_split[codes]]


def _captions(adata: Any, label_key: str | None, caption_key: str | None, template: str) -> np.ndarray | None:
    """One caption per cell (``None`` where the cell has no label or caption: None, NaN, empty or
    blank), from ``obs[caption_key]`` or from ``obs[label_key]`` through ``template``."""
    key = caption_key if caption_key is not None else label_key
    if key is None:
        return None
    text = label_text(obs_column(adata, key))
    has = text != ""
    out = np.full(len(text), None, dtype=object)
    if caption_key is not None:
        out[has] = text[has]
        return out
    uniq, inverse = np.unique(text[has].astype(str), return_inverse=True)
    captions = np.array([fill_caption(template, u) for u in uniq], dtype=object)
    out[has] = captions[inverse]
    return out


def _require_two_captions(captions: np.ndarray, n_dropped: int, where: str, layout: str) -> None:
    """Report the cells dropped for having no caption; fewer than two distinct captions left is a
    :class:`LabelError` (no negative could be drawn)."""
    report_dropped(n_dropped, len(captions) + n_dropped, where, f"the {layout!r} layout")
    distinct = pd.unique(captions)
    if len(distinct) < MIN_CLASSES:
        dropped = f" (after dropping {n_dropped:,} cells with no label)" if n_dropped else ""
        raise LabelError(
            f"the {layout!r} layout needs at least {MIN_CLASSES} classes, but the cells{dropped} have "
            + (f"a single caption ({_preview(distinct)})" if len(distinct) else "no caption"),
            where,
            "choose a label column with two or more cell types, or use the 'single' layout",
        )


def metadata_column(name: str) -> str:
    """The dataset column of ``obs[name]``: ``obs_<name>`` for a name mmgene uses itself (:data:`RESERVED`)
    or that starts like one of its own columns (``obs_``, ``emb_``, ``negative_``), so no obs column
    replaces an embedding or another obs column, and the card can say where each column comes from."""
    return f"obs_{name}" if name in RESERVED or name.startswith(RESERVED_PREFIXES) else name


def _metadata(adata: Any, keys: Sequence[str] | None) -> dict[str, Any]:
    obs = adata.obs if keys is None else pd.DataFrame({k: obs_column(adata, k) for k in keys})
    out: dict[str, Any] = {}
    for name in obs.columns:
        col = obs[name]
        key = metadata_column(str(name))
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or pd.api.types.is_string_dtype(col):
            out[key] = [None if pd.isna(v) else str(v) for v in col.tolist()]
        elif pd.api.types.is_bool_dtype(col):
            out[key] = col.to_numpy(dtype=bool)
        elif pd.api.types.is_numeric_dtype(col):
            out[key] = col.to_numpy()
        else:
            out[key] = col.astype(str).tolist()
    return out


def _negative_captions(codes: np.ndarray, n_unique: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, k)`` caption codes, each different from the row's own code."""
    draw = rng.integers(0, n_unique - 1, size=(len(codes), k))
    return draw + (draw >= codes[:, None])


def _negative_cells(codes: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, m)`` positions of other cells (same split) whose caption code differs from the row's."""
    n = len(codes)
    out = rng.integers(0, n, size=(n, m))
    bad = codes[out] == codes[:, None]
    for _ in range(200):
        if not bad.any():
            return out
        out[bad] = rng.integers(0, n, size=int(bad.sum()))
        bad = codes[out] == codes[:, None]
    # rare: a dominant caption; draw exactly from the cells with other captions
    for i, j in zip(*np.nonzero(bad)):
        candidates = np.flatnonzero(codes != codes[i])
        out[i, j] = candidates[rng.integers(0, len(candidates))]
    return out


def build_dataset(
    adata: Any,
    layout: str | LayoutConfig = "single",
    *,
    sentences: Sequence[str],
    chunks: Sequence[Any],
    links: Mapping[str, str],
    **settings: Any,
) -> Any:
    """Build the ``datasets.DatasetDict`` of a layout (see the module docstring).

    Parameters
    ----------
    layout
        A layout name with its settings as keywords (``label_key``, ``caption_key``,
        ``caption_template``, ``split_by``, ``splits``, ``n_negatives``, ``n_cell_negatives``,
        ``obs_keys``, ``obsm_keys``, ``seed``: :class:`~mmgene.hub.config.LayoutConfig`, whose defaults
        apply), or a ready ``LayoutConfig``.
    sentences
        One cell sentence per cell, in cell order (:func:`mmgene.cells.sentences` with ``inplace=False``).
    chunks, links
        The :class:`~mmgene.hub.chunks.ChunkFile` list and ``{chunk name: share link}``.

    Captions come from ``obs[caption_key]`` (free text), or from ``obs[label_key]`` through
    ``caption_template``; ``pairs``/``multiplets`` need one of them. ``split_by`` names the ``obs``
    column whose groups never straddle two splits. ``obs_keys=None`` keeps all of ``obs`` (``single``
    layout only); ``obsm_keys=None`` includes no embedding here.
    """
    from mmgene.lazy import require

    require("datasets", "a Hub dataset")
    import datasets

    config = replace(layout, **settings) if isinstance(layout, LayoutConfig) else LayoutConfig(layout, **settings)
    layout, label_key, caption_key, split_by, seed = config.layout, config.label_key, config.caption_key, config.split_by, config.seed
    n_negatives, n_cell_negatives = config.n_negatives, config.n_cell_negatives
    n = adata.n_obs
    if len(sentences) != n:
        raise ParameterError(f"{len(sentences)} sentences for {n} cells", "sentences", "pass one sentence per cell")
    for c in chunks:
        if c.name not in links:
            raise ParameterError(f"no share link for chunk {c.name}", "links", "share every chunk before building the dataset")
    if sum(c.n_obs for c in chunks) != n or any(a.stop != b.start for a, b in zip(chunks, chunks[1:])):
        raise ParameterError("the chunks do not cover the cells in order", "chunks", "write the chunks from this AnnData")
    for name, value in (("n_negatives", n_negatives), ("n_cell_negatives", n_cell_negatives)):
        least = 1 if layout == "pairs" and name == "n_negatives" else 0
        if not is_whole_number(value, least):
            raise ParameterError(f"{name} must be a whole number >= {least}, got {value!r}", name, f"pass {max(least, 1)} or more")
    captions = _captions(adata, label_key, caption_key, config.caption_template)
    if layout != "single" and captions is None:
        raise ParameterError(
            f"the {layout!r} layout needs captions", "label_key / caption_key", "pass label_key (e.g. 'cell_type') or caption_key"
        )
    captioned = np.ones(n, dtype=bool) if captions is None else pd.notna(captions)
    if layout != "single":  # a cell without a label has no positive caption: it gets no row
        where = f"obs[{caption_key if caption_key is not None else label_key!r}]"
        _require_two_captions(captions[captioned], int((~captioned).sum()), where, layout)

    starts = np.array([c.start for c in chunks])
    chunk_of = np.searchsorted(starts, np.arange(n), side="right") - 1
    link_of = np.array([links[c.name] for c in chunks], dtype=object)
    sha_of = np.array([c.sha256 for c in chunks], dtype=object)
    cell_ids = np.asarray(adata.obs_names.astype(str), dtype=object)
    sentences = np.asarray(sentences, dtype=object)
    groups = None if split_by is None else obs_column(adata, split_by).to_numpy()
    split_of = assign_splits(groups, n, config.splits, seed, where=f"obs[{split_by!r}]" if split_by else "cells")
    meta = _metadata(adata, config.obs_keys) if layout == "single" else {}
    embeddings = {}
    for key in config.obsm_keys or ():
        if key not in adata.obsm:
            raise ParameterError(f"obsm[{key!r}] does not exist", "obsm_keys", f"choose from {list(adata.obsm)}")
        embeddings[f"emb_{key}"] = np.asarray(adata.obsm[key], dtype=np.float32)

    out = {}
    for s_index, split in enumerate(config.splits):
        rows = np.flatnonzero((split_of == split) & (captioned | (layout == "single")))
        rng = np.random.default_rng([seed, s_index])
        common = {"chunk": chunk_of[rows], "cell_id": cell_ids[rows]}
        tail = {"share_link": link_of[chunk_of[rows]], "chunk_sha256": sha_of[chunk_of[rows]]}
        if layout == "single":
            cols = {"sample_idx": rows, **common, "cell_sentence": sentences[rows]}
            if captions is not None:
                cols["caption"] = captions[rows]
            cols.update({k: (np.asarray(v, dtype=object)[rows] if isinstance(v, list) else v[rows]) for k, v in meta.items()})
            cols.update({k: v[rows] for k, v in embeddings.items()})
            cols.update(tail)
        else:
            codes, uniq = pd.factorize(pd.Series(captions[rows]))
            uniq = np.asarray(uniq, dtype=object)
            if len(uniq) < 2:
                raise DataError(
                    f"split {split!r} has a single caption, so no negative can be drawn",
                    f"split {split!r}",
                    "use more labels, a different split_by column, or the 'single' layout",
                )
            k = n_negatives
            neg = _negative_captions(codes, len(uniq), k, rng) if k else np.zeros((len(rows), 0), dtype=int)
            if layout == "pairs":
                per = 1 + k
                cap = np.concatenate([uniq[codes][:, None], uniq[neg]], axis=1)
                lab = np.zeros((len(rows), per), dtype=np.int8)
                lab[:, 0] = 1
                rep = np.repeat(np.arange(len(rows)), per)
                cols = {
                    "sample_idx": (rows[:, None] * per + np.arange(per)).ravel(),
                    "cell_idx": rows[rep],
                    **{key: value[rep] for key, value in common.items()},
                    "cell_sentence": sentences[rows][rep],
                    "caption": cap.ravel(),
                    "label": lab.ravel(),
                    **{key: value[rows][rep] for key, value in embeddings.items()},
                    **{key: value[rep] for key, value in tail.items()},
                }
            else:
                cols = {"sample_idx": rows, **common, "anchor": sentences[rows], "positive": uniq[codes]}
                for j in range(k):
                    cols[f"negative_{j + 1}"] = uniq[neg[:, j]]
                if n_cell_negatives:
                    other = _negative_cells(codes, n_cell_negatives, rng)
                    for j in range(n_cell_negatives):
                        cols[f"negative_cell_{j + 1}"] = sentences[rows[other[:, j]]]
                        cols[f"negative_cell_idx_{j + 1}"] = rows[other[:, j]]
                cols.update({key: value[rows] for key, value in embeddings.items()})
                cols.update(tail)
        out[split] = datasets.Dataset.from_dict({k: _column(v) for k, v in cols.items()})
    return datasets.DatasetDict(out)


def _column(values: Any) -> Any:
    """numpy -> what ``datasets.Dataset.from_dict`` stores compactly (lists of str/None, int64, float32 lists)."""
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.dtype == object:
        return arr.tolist()
    if arr.ndim == 2:
        return list(arr)
    if arr.dtype.kind in "iu" and arr.dtype != np.int8:
        return arr.astype(np.int64)
    return arr
