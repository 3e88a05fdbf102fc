"""Geneformer's rank-value encoding (``TranscriptomeTokenizer``), exact and streamed.

Per cell, as Geneformer defines it:

1. Ensembl ids are upper-cased (versions stripped), mapped through the Ensembl mapping dictionary
   when there is one, and genes mapping to the same id have their counts **summed**; genes without a
   token or a median are dropped.
2. Each count is normalised as ``x / n_counts * 10_000 / median[gene]`` (``n_counts``: the cell's
   total over all genes, from ``obs['n_counts']`` or computed), evaluated in the same floating-point
   order as Geneformer's SciPy expression (reciprocal multiplications, float64 where SciPy uses it),
   so values match bit for bit.
3. Non-zero genes are ordered by descending normalised value. Geneformer's ``np.argsort(-x)`` leaves
   ties in arbitrary order; mmgene puts **equal values in ascending token id** order.
4. V1 keeps the first 2,048 tokens; V2 keeps 4,094 and wraps them as ``<cls> ... <eos>``.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmgene.cells import _kernels as k
from mmgene.cells._chunks import check_chunk_size, iter_chunks, ordered_map, threads_for
from mmgene.cells.dictionaries import SPECIAL, GeneformerDictionaries, load_dictionaries
from mmgene.cells.ranking import canonical
from mmgene.errors import DataError, GeneIdError, MissingColumnError, NoGeneIdsError, ParameterError, _preview
from mmgene.io.expression import check_values

#: Geneformer's own normalisation target (part of its tokenizer's definition, so it stays apart from
#: :data:`mmgene.io.expression.TARGET_SUM`).
TARGET_SUM = 10_000
DEFAULT_CHUNK = 4096
TIE_BREAK = "equal normalised values: lower token id first"


class TokenRows(Sequence):
    """Each cell's token ids, as views of one flat array made when asked for (200,000 cells need no
    200,000 array objects). Supports ``len``, iteration, indexing and slicing (a list)."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        self._flat, self._offsets = flat, offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        j = operator.index(i)
        j = j + n if j < 0 else j
        if not 0 <= j < n:
            raise IndexError(f"cell {i} of {n}")
        return self._flat[self._offsets[j] : self._offsets[j + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        flat, ends = self._flat, self._offsets.tolist()
        for a, b in zip(ends[:-1], ends[1:]):
            yield flat[a:b]

    def __repr__(self) -> str:
        return f"TokenRows({len(self):,} cells, {len(self._flat):,} tokens)"


@dataclass
class RankEncoding:
    """Token ids per encoded cell (original cell order), their lengths, and cells with no known gene.

    ``cells`` are the encoded cells' positions in the AnnData (all of them unless ``obs['filter_pass']``
    left some out); ``empty_cells`` index the encoding, like ``input_ids``.
    """

    input_ids: Sequence[np.ndarray]
    length: np.ndarray
    obs_names: np.ndarray
    version: str
    empty_cells: np.ndarray
    flat: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int32))
    offsets: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(1, np.int64))
    cells: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.length)

    @classmethod
    def from_flat(
        cls, flat: np.ndarray, offsets: np.ndarray, obs_names: Any, version: str, empty_cells: np.ndarray, cells: np.ndarray | None = None
    ) -> RankEncoding:
        input_ids = TokenRows(flat, offsets)
        cells = np.arange(len(input_ids), dtype=np.int64) if cells is None else np.asarray(cells, np.int64)
        return cls(input_ids, np.diff(offsets).astype(np.int64), np.asarray(obs_names, dtype=object).astype(str), version, empty_cells, flat, offsets, cells)

    def to_dataset(self, obs: pd.DataFrame | None = None) -> Any:
        """A ``datasets.Dataset`` with ``input_ids``, ``length``, ``cell_id`` (plus ``obs``'s columns)."""
        import pyarrow as pa
        from mmgene.lazy import require

        require("datasets", "a token dataset (datasets.Dataset)")
        from datasets import Dataset
        from datasets.table import InMemoryTable

        offsets = pa.array(self.offsets, type=pa.int64())
        ids = pa.LargeListArray.from_arrays(offsets, pa.array(self.flat, type=pa.int32()))
        if self.offsets[-1] < 2**31 - 1:
            ids = pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32), type=pa.int32()), pa.array(self.flat, type=pa.int32()))
        columns: dict[str, Any] = {"input_ids": ids, "length": pa.array(self.length, type=pa.int64()), "cell_id": pa.array(self.obs_names.tolist(), type=pa.string())}
        if obs is not None:
            if len(obs) != len(self):
                raise ParameterError(f"obs has {len(obs)} rows for {len(self)} cells", "argument obs", "pass adata.obs.iloc[encoding.cells] of the encoded AnnData")
            for name in obs.columns:
                if name in columns:
                    raise ParameterError(f"obs column {name!r} clashes with a dataset column", "argument obs", "rename the column")
                col = obs[name]
                if isinstance(col.dtype, pd.CategoricalDtype):
                    col = col.astype(str)
                columns[str(name)] = pa.array(col.to_numpy(), from_pandas=True)
        # datasets would hash the whole table for a fingerprint; the token arrays identify it already
        digest = hashlib.blake2b(digest_size=8)
        for part in (self.flat, self.offsets, np.asarray(self.obs_names.tolist(), dtype=str), np.asarray([self.version, *columns], dtype=str)):
            digest.update(np.ascontiguousarray(part).tobytes())
        if obs is not None:
            digest.update(pd.util.hash_pandas_object(obs, index=True).to_numpy().tobytes())
        return Dataset(InMemoryTable(pa.table(columns)), fingerprint=digest.hexdigest())


@dataclass(frozen=True)
class TokenPlan:
    """How input columns become Geneformer genes: target gene (or -1), token and 1/median per target."""

    col_target: np.ndarray
    tokens: np.ndarray
    recip_median: np.ndarray
    has_duplicates: bool
    n_input: int
    id_source: str

    @property
    def n_genes(self) -> int:
        return len(self.tokens)

    def columns(self, merged: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per column: token id (``-1``: dropped) and 1/median, for the input columns or, when
        ``merged``, for columns that are already the targets."""
        return (self.tokens, self.recip_median) if merged else self._input_columns

    @cached_property
    def _input_columns(self) -> tuple[np.ndarray, np.ndarray]:
        known = self.col_target >= 0
        col_token = np.full(len(self.col_target), -1, np.int32)
        col_token[known] = self.tokens[self.col_target[known]]
        col_recip = np.zeros(len(self.col_target), np.float64)
        col_recip[known] = self.recip_median[self.col_target[known]]
        return col_token, col_recip


def _ensembl_ids(var: pd.DataFrame, dicts: GeneformerDictionaries, origin: str) -> tuple[np.ndarray, str]:
    """Upper-cased, unversioned Ensembl ids per gene ('' where unknown) and where they came from."""
    names = pd.Series(np.asarray(var.index, dtype=object), dtype=object).astype(str)
    if "ensembl_id" in var.columns:
        ids = pd.Series(np.asarray(var["ensembl_id"], dtype=object), dtype=object)
        source = "var['ensembl_id']"
    else:
        from mmgene.genes.ids import resolve_gene_ids

        try:
            ids = pd.Series(resolve_gene_ids(var, source=origin).ensembl, dtype=object)
            source = "resolved from var (GENCODE v44)"
        except GeneIdError:
            ids = pd.Series([""] * len(var), dtype=object)
            source = "none"
    ids = pd.Series([g.strip().split(".")[0].upper() for g in ids.fillna("").astype(str)], dtype=object)
    missing = (ids == "").to_numpy()
    if missing.any() and dicts.name_to_id:
        symbols = var["gene_symbol"].astype(str) if "gene_symbol" in var.columns else names
        symbols = pd.Series(np.asarray(symbols, dtype=object), dtype=object)
        upper = {name.upper(): gid for name, gid in dicts.name_to_id.items()}
        filled = symbols[missing].map(dicts.name_to_id).fillna(symbols[missing].str.upper().map(upper)).fillna("")
        ids = ids.copy()
        ids[missing] = filled.str.upper().to_numpy()
        if (filled != "").any():
            source += " + Geneformer gene_name_id_dict for symbols"
    if not (ids != "").any():
        raise NoGeneIdsError(
            "no gene has an Ensembl id, which Geneformer needs "
            f"(first gene names: {_preview(names[:5])})",
            f"var of {origin}",
            "put Ensembl ids in var['ensembl_id'] (or human symbols in var_names so mmgene can map them)",
        )
    return ids.to_numpy(dtype=object), source


def plan_tokens(var: pd.DataFrame, dicts: GeneformerDictionaries, origin: str = "the AnnData") -> TokenPlan:
    """Map the columns of ``var`` to Geneformer genes ordered by token id (collapsing duplicates)."""
    ids, source = _ensembl_ids(var, dicts, origin)
    series = pd.Series(ids, dtype=object)
    if dicts.ensembl_mapping is not None:
        series = series.map(dicts.ensembl_mapping).fillna("").astype(str).str.upper()
    special = set(SPECIAL)
    tid, med = dicts.token_ids, dicts.medians
    token = np.fromiter((tid.get(g, -1) if g and g not in special and g in med else -1 for g in series.to_numpy()), np.int64, len(series))
    known = token >= 0
    if not known.any():
        raise GeneIdError(
            f"none of the {len(var)} genes is in Geneformer's {dicts.version} vocabulary "
            f"(first Ensembl ids: {_preview([i for i in ids if i][:5])})",
            f"var of {origin}",
            "Geneformer covers human genes: check the species and that var['ensembl_id'] holds Ensembl gene ids",
        )
    targets = np.unique(token[known])
    if len(targets) > k.MAX_ROW_GENES:
        raise ParameterError(
            f"{len(targets):,} of the dictionaries' genes are in the data; mmgene ranks at most {k.MAX_ROW_GENES:,} per cell",
            dicts.source or "argument dictionaries",
            "use Geneformer's dictionaries (about 25,000 genes)",
        )
    col_target = np.full(len(var), -1, np.int64)
    col_target[known] = np.searchsorted(targets, token[known])
    medians = np.array([dicts.medians[g] for g in series.to_numpy()[known][np.unique(col_target[known], return_index=True)[1]]])
    recip = np.true_divide(1.0, medians)
    return TokenPlan(col_target, targets.astype(np.int32), recip, bool(known.sum() > len(targets)), len(var), source)


def _n_counts(adata: Any, n_obs: int, origin: str) -> np.ndarray | None:
    if "n_counts" not in adata.obs.columns:
        return None
    values = np.asarray(adata.obs["n_counts"].to_numpy())
    if values.dtype.kind not in "iuf":
        raise DataError(f"obs['n_counts'] holds {values.dtype} values, not numbers", f"obs['n_counts'] of {origin}", "store each cell's total count, or delete the column so mmgene computes it")
    if values.dtype.kind in "iu":
        values = values.astype(np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        cell = adata.obs_names[int(np.flatnonzero(bad)[0])]
        raise DataError(f"{int(bad.sum())} cells have a negative or non-finite n_counts", f"obs['n_counts'] of {origin}, first at cell {cell!r}", "fix the column or delete it so mmgene computes it")
    return values


def _filter_pass(adata: Any, use: bool | None, origin: str) -> np.ndarray | None:
    """Cells Geneformer tokenizes: ``obs['filter_pass'] == 1`` when the column is there (``use=None``)
    or required (``use=True``); ``None`` means all cells."""
    present = "filter_pass" in adata.obs.columns
    if use is False or (use is None and not present):
        return None
    if not present:
        raise MissingColumnError("filter_pass", f"obs of {origin}", list(map(str, adata.obs.columns)))
    values = adata.obs["filter_pass"].to_numpy()
    if values.dtype.kind not in "biuf":
        raise DataError(f"obs['filter_pass'] holds {values.dtype} values, not 0/1", f"obs['filter_pass'] of {origin}", "store 1 (or True) for cells to tokenize and 0 (or False) for the others")
    bad = ~np.isin(values, (0, 1))
    if bad.any():
        cell = adata.obs_names[int(np.flatnonzero(bad)[0])]
        raise DataError(f"{int(bad.sum())} cells have an obs['filter_pass'] other than 0 or 1", f"obs['filter_pass'] of {origin}, first at cell {cell!r}", "store 1 (or True) for cells to tokenize and 0 (or False) for the others")
    keep = values == 1
    if not keep.any():
        raise DataError(f"no cell of {len(keep)} has obs['filter_pass'] == 1", f"obs['filter_pass'] of {origin}", "mark the cells to tokenize with 1, or pass filter_pass=False to tokenize all cells")
    return keep


def _encode_chunk(
    block: sp.csr_matrix, n_counts: np.ndarray | None, plan: TokenPlan, limit: int, prefix: int, suffix: int,
    out: np.ndarray | None = None, start: int = 0,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Token ids of one chunk of cells (CSR layout); ``n_counts=None`` sums each cell over all genes.

    They go to ``out[start:]`` when given (room for the block's non-zeros plus 2 per cell needed).
    The kernel checks the values too: the third result is False when one is not a finite whole
    number >= 0 (the tokens then mean nothing). Rows with unsorted or repeated columns are summed
    into canonical form and encoded again."""
    indptr, ids, flags = _encode_rows(block, n_counts, plan, limit, prefix, suffix, out, start)
    if flags[1]:
        indptr, ids, flags = _encode_rows(canonical(block), n_counts, plan, limit, prefix, suffix, out, start)
    return indptr, ids, not flags[0]


def _encode_rows(
    block: sp.csr_matrix, n_counts: np.ndarray | None, plan: TokenPlan, limit: int, prefix: int, suffix: int,
    out: np.ndarray | None, start: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_encode_chunk` without the canonical-form retry."""
    indptr, indices, data = block.indptr.astype(np.int64), block.indices, block.data
    col_target = plan.col_target
    # Geneformer computes X / n_counts * 10_000 / median; SciPy evaluates it as x * (1/n) * 10_000 * (1/median)
    compute_totals = n_counts is None
    if compute_totals:
        recip_n = np.zeros(block.shape[0], np.float64)  # filled by the kernel from each cell's total
    else:
        with np.errstate(divide="ignore"):
            recip_n = np.true_divide(1.0, n_counts)
    valid = True
    if plan.has_duplicates:  # sum the counts of genes that map to one Ensembl id, as Geneformer does
        valid = bool(k.values_ok(data, True))  # before summing: a bad value could cancel out
        block = canonical(block)
        indptr, indices, data = block.indptr.astype(np.int64), block.indices, block.data
        if compute_totals:  # totals over all genes, before genes are dropped and merged
            recip_n, compute_totals = _recip_totals(block), False
        target = col_target[indices]
        keep = target >= 0
        cum = np.zeros(len(keep) + 1, np.int64)
        np.cumsum(keep, out=cum[1:])
        merged = sp.csr_matrix((data[keep], target[keep], cum[indptr]), shape=(block.shape[0], plan.n_genes))
        merged.sum_duplicates()
        indptr, indices, data = merged.indptr.astype(np.int64), merged.indices, merged.data
    col_token, col_recip = plan.columns(merged=plan.has_duplicates)
    target_sum = recip_n.dtype.type(TARGET_SUM)
    args = (indptr, indices, data, col_token, recip_n, target_sum, col_recip, compute_totals, limit, prefix, suffix)
    args += (np.zeros(0, np.int32) if out is None else out, start)
    indptr, ids, flags = k.geneformer_rank(*args)
    flags[0] |= not valid
    return indptr, ids, flags


def _has_counts(block: sp.csr_matrix) -> np.ndarray:
    """Per row: whether it holds a non-zero value (explicitly stored zeros are no counts)."""
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    return np.bincount(rows[block.data != 0], minlength=block.shape[0]) > 0


def _recip_totals(block: sp.csr_matrix) -> np.ndarray:
    """1 / (each row's float64 total over all genes)."""
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    totals = np.bincount(rows, weights=block.data.astype(np.float64), minlength=block.shape[0])
    with np.errstate(divide="ignore"):
        return np.true_divide(1.0, totals)


def rank_encode(
    adata: Any,
    dictionaries: GeneformerDictionaries | str | None = None,
    version: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    output: Literal["arrays", "dataset"] = "arrays",
    n_jobs: int | None = None,
    filter_pass: bool | None = None,
) -> Any:
    """Geneformer token ids for every cell, exactly as Geneformer's tokenizer makes them.

    Parameters
    ----------
    adata
        AnnData with raw counts (``X``, ``layers['counts']`` or ``.raw``; in memory or backed),
        Ensembl ids in ``var['ensembl_id']`` (or symbols mmgene can map), optionally
        ``obs['n_counts']`` (computed over all genes when missing).
    dictionaries
        :class:`GeneformerDictionaries`, a folder/hub id for :func:`load_dictionaries`, or ``None``
        to download them from the Geneformer hub repository.
    version
        ``'V1'`` or ``'V2'``; ``None``: the version of the dictionaries given, or ``'V1'`` when they
        are loaded here. A version that differs from loaded dictionaries' is refused.
    chunk_size
        Cells per streamed chunk.
    output
        ``'arrays'`` for a :class:`RankEncoding`, ``'dataset'`` for a ``datasets.Dataset``.
    n_jobs
        Threads working on chunks at once; ``None``: ``mmgene.settings.n_jobs`` (default every
        core), ``-1``: every core, ``1``: one thread. The output is the same for any value.
    filter_pass
        ``None`` (default): like Geneformer, encode only cells with ``obs['filter_pass'] == 1`` when
        that column exists, else all cells; ``True``: require the column; ``False``: encode all cells.

    Returns
    -------
    :class:`RankEncoding` (``input_ids``, ``length``, ``obs_names``, ``empty_cells``, ``cells``: the
    encoded cells' positions), or its ``to_dataset()``. Provenance goes to ``adata.uns['mmgene']['rank_encoding']``.
    """
    from mmgene.genes.ids import note_mouse_symbols
    from mmgene.io import expression
    from mmgene.progress import info, progress
    from mmgene.provenance import check_record_slot, record

    check_record_slot(adata, "rank_encode(adata=...)")  # before the work: the provenance goes there
    if output not in ("arrays", "dataset"):
        raise ParameterError(f"unknown output {output!r}", "argument output", "pass 'arrays' or 'dataset'")
    chunk_size = check_chunk_size(chunk_size)  # before the dictionaries load
    threads = threads_for(n_jobs)
    if isinstance(dictionaries, GeneformerDictionaries):
        dicts = dictionaries
        if version is not None and str(version).upper() != dicts.version:
            raise ParameterError(
                f"version={version!r} but the dictionaries given are {dicts.version}",
                "arguments version and dictionaries",
                "drop version, or pass dictionaries of that version",
            )
    else:
        dicts = load_dictionaries(dictionaries, "V1" if version is None else version)
    if dicts.version == "V2" and (dicts.cls_id is None or dicts.eos_id is None):
        raise ParameterError("V2 dictionaries need <cls> and <eos> tokens, and these have none", dicts.source or "argument dictionaries", "pass the V2 (gc104M) dictionaries, or version='V1'")
    view = expression(adata, require="counts")
    plan = plan_tokens(view.var, dicts, view.origin)
    note_mouse_symbols(adata, f"Geneformer's {dicts.version} vocabulary")
    given = _n_counts(adata, view.shape[0], view.origin)
    passing = _filter_pass(adata, filter_pass, view.origin)
    if passing is not None and not passing.all():
        info(f"rank_encode: encoding the {int(passing.sum()):,} of {len(passing):,} cells with obs['filter_pass'] == 1, as Geneformer does")
    limit = dicts.max_genes
    prefix = dicts.cls_id if dicts.version == "V2" else None
    suffix = dicts.eos_id if dicts.version == "V2" else None
    flats, lengths = [], []
    total = -(-view.shape[0] // chunk_size)
    # in-memory CSR: one output buffer (an upper bound). One thread writes each chunk right after the
    # previous one; several threads write each chunk at its upper-bound offset and the chunk is moved
    # left once it is done, in order (it never overlaps a chunk still being written).
    matrix = view.matrix
    in_memory = sp.issparse(matrix) and matrix.format == "csr"
    buffer = np.empty(matrix.nnz + 2 * view.shape[0], np.int32) if in_memory else None
    written = 0
    pre, suf = -1 if prefix is None else prefix, -1 if suffix is None else suffix

    def chunks() -> Any:
        for start, stop, block in iter_chunks(view, chunk_size, check=False):  # values checked by the kernel
            full = block
            n_counts = None if given is None else given[start:stop]
            rows = np.arange(start, stop)
            if passing is not None and not passing[start:stop].all():
                rows = rows[passing[start:stop]]
                block = block[passing[start:stop]]
                n_counts = None if n_counts is None else n_counts[passing[start:stop]]
            if n_counts is not None:
                bad = (n_counts <= 0) & _has_counts(block)
                if bad.any():
                    cell = view.obs_names[rows[int(np.flatnonzero(bad)[0])]]
                    raise DataError(
                        f"{int(bad.sum())} cells have counts but obs['n_counts'] <= 0",
                        f"obs['n_counts'] of {view.origin}, first at cell {cell!r}",
                        "store each cell's total count over all genes, or delete the column so mmgene computes it",
                    )
            offset = 0 if buffer is None else written if threads == 1 else int(matrix.indptr[start]) + 2 * start
            yield block, n_counts, offset, full, start

    def encode(item: tuple[sp.csr_matrix, np.ndarray | None, int, sp.csr_matrix, int]) -> tuple[np.ndarray, np.ndarray, int]:
        block, n_counts, offset, full, start = item
        indptr, ids, valid = _encode_chunk(block, n_counts, plan, limit, pre, suf, buffer, offset)
        if not valid:
            check_values(full, view, start)  # raises, naming the first bad cell and gene
            raise DataError("a count is not a finite whole number >= 0", f"{view.origin} ({view.source}), cells {start} onwards", "give raw counts")
        return indptr, ids, offset

    for indptr, ids, offset in progress(ordered_map(encode, chunks(), threads), total=total, desc="rank encoding", unit="chunk"):
        if buffer is None:
            flats.append(ids)
        elif offset != written:
            k.move_left(buffer, written, offset, len(ids))
        written += len(ids)
        lengths.append(np.diff(indptr))
    length = np.concatenate(lengths)
    offsets = np.zeros(len(length) + 1, np.int64)
    np.cumsum(length, out=offsets[1:])
    flat = buffer[:written] if buffer is not None else np.concatenate(flats) if flats else np.zeros(0, np.int32)
    n_special = 2 if prefix is not None else 0
    empty = np.flatnonzero(length == n_special)
    if len(empty) == len(length):
        raise DataError(
            f"none of the {len(length)} cells has a non-zero count in a gene of Geneformer's {dicts.version} vocabulary "
            f"({plan.n_genes} of {plan.n_input} genes are in it)",
            f"{view.origin} ({view.source})",
            "check that the matrix holds raw counts of human genes with Ensembl ids",
        )
    if len(empty):
        info(f"rank_encode: {len(empty)} cells have no gene in the {dicts.version} vocabulary (see RankEncoding.empty_cells)")
    record(
        adata,
        "rank_encoding",
        packages=("numba",),
        method="Geneformer rank-value encoding (TranscriptomeTokenizer)",
        dictionaries=dicts.summary(),
        matrix=view.source,
        gene_ids=plan.id_source,
        n_counts="obs['n_counts']" if given is not None else "computed: total counts over all genes",
        genes_in_vocabulary=int((plan.col_target >= 0).sum()),
        genes_after_collapsing=plan.n_genes,
        genes_input=plan.n_input,
        max_genes=limit,
        special_tokens=["<cls>", "<eos>"] if prefix is not None else [],
        tie_break=TIE_BREAK,
        cells="all" if passing is None else "obs['filter_pass'] == 1",
        cells_encoded=int(len(length)),
        empty_cells=int(len(empty)),
        mean_length=float(length.mean()),
    )
    cells = np.arange(view.shape[0], dtype=np.int64) if passing is None else np.flatnonzero(passing)
    enc = RankEncoding.from_flat(flat, offsets, np.asarray(view.obs_names)[cells], dicts.version, empty, cells)
    return enc.to_dataset() if output == "dataset" else enc
