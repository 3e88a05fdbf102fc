"""The training rows of :func:`mmgene.pairs.make_pairs` built chunk by chunk from an AnnData on disk.

:class:`DatasetStream` never holds the expression matrix: it reads ``chunk_size`` cells at a time
(a backed ``.h5ad``, a lazily opened ``.zarr``, or anything ``read(start, stop)`` returns as a small
in-memory AnnData) and makes the same rows as ``make_pairs`` would for the whole file, using its
steps (:mod:`mmgene.pairs.build`):

1. the plan (classes, split) from ``obs`` alone (:func:`~mmgene.pairs.build.plan_pairs`);
2. a pass (:meth:`DatasetStream.scan`) that leaves out of both splits the cells that express no gene
   with a symbol, as ``make_pairs`` does (the omics tower would read nothing for them), and sums each
   gene's expression over the training cells left (:class:`~mmgene.pairs.build.GeneMoments`, the same
   sums whatever the chunk size): the mean that marker genes are measured against and the variable
   genes of the panels;
3. a pass replaying the seeded row draws (:class:`~mmgene.pairs.build.RowDrawer`) in cell order,
   which saves the generator's state at the start of every chunk, counts marker genes and collects
   the vocabulary of the rows that will be trained on;
4. then any chunk's rows, in any order, any number of times: the chunk is read again, its draws
   replayed from the saved state, and the cell inputs made for the rows asked for
   (:func:`mmgene.cells.inputs.cell_inputs`).

Memory holds one chunk, a few integers per cell (labels, split, picked rows) and one generator state
per chunk, whatever the number of cells. :func:`typed_iterable` wraps a row generator as the
``datasets.IterableDataset`` that sentence-transformers' trainer reads.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmgene.config import check_whole
from mmgene.copies import copy_in_memory
from mmgene.errors import EmptyMatrixError, ParameterError
from mmgene.io import expression
from mmgene.io.expression import DEFAULT_CHUNK
from mmgene.pairs.build import (
    GeneMoments, RowDrawer, count_markers, expressed_split, excess_genes, marker_list, panel_count, plan_pairs,
)
from mmgene.pairs.config import PairsConfig
from mmgene.pairs.stream_config import StreamConfig  # noqa: F401 (its home is stream_config, light enough for the CLI)


class ChunkReader:
    """Rows ``start:stop`` of an AnnData as a small in-memory AnnData, at most ``chunk_size`` at a time;
    ``largest`` is the most rows read at once (what a test of bounded memory checks)."""

    def __init__(self, adata: Any, chunk_size: int, view: Callable[[Any], Any] | None = None) -> None:
        self.adata, self.chunk_size, self.view = adata, int(chunk_size), view
        self.largest = 0
        self.reads = 0

    def __call__(self, start: int, stop: int) -> Any:
        if stop - start > self.chunk_size:
            raise ParameterError(f"asked for {stop - start} rows at once, the limit is {self.chunk_size}", "ChunkReader")
        self.largest = max(self.largest, stop - start)
        self.reads += 1
        chunk = self.adata[start:stop]
        chunk = copy_in_memory(chunk)
        return self.view(chunk) if self.view is not None else chunk


def _names_a_gene(view: Any, block: sp.csr_matrix, max_genes: int) -> np.ndarray:
    """Per row of ``block`` (log-normalised rows of ``view``'s matrix): whether its input
    (:func:`~mmgene.cells.inputs.cell_inputs`, its ``max_genes`` highest genes) names a gene."""
    from mmgene.cells.inputs import top_genes

    named = np.asarray(view.symbols() != "")
    if not named.all():  # only then can a cell's highest genes all be unnamed while a lower one is named
        block = top_genes(block, max_genes)
    hit = (block.data > 0) & named[block.indices]
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    return np.bincount(rows[hit], minlength=block.shape[0]) > 0


class DatasetStream:
    """The training rows of ``make_pairs(adata, ...)`` made chunk by chunk (see the module docstring).

    ``read(start, stop)`` returns those cells as an in-memory AnnData (default: a :class:`ChunkReader`
    of ``adata``); the arguments are those of :func:`~mmgene.pairs.make_pairs`. Call :meth:`prepare`
    once (the passes; :meth:`scan` first on its own when the training cells must be known before
    choosing rows) before :meth:`rows`. ``empty_cells`` counts the cells left out for expressing no gene.
    """

    def __init__(
        self,
        adata: Any,
        label_cols: str | Sequence[str],
        *,
        ontology_col: str | None = None,
        inputs: Sequence[str] = ("genes",),
        config: PairsConfig | None = None,
        seed: int = 0,
        chunk_size: int = DEFAULT_CHUNK,
        read: Callable[[int, int], Any] | None = None,
    ) -> None:
        check_whole(chunk_size, "chunk_size", "DatasetStream", "pass a whole number >= 1", minimum=1)
        self.config = config or PairsConfig()
        self.inputs = list(inputs)
        self.seed = seed
        self.plan = plan_pairs(adata, label_cols, ontology_col=ontology_col, config=self.config, seed=seed)
        self.read = read or ChunkReader(adata, chunk_size)
        self.n_cells, self.chunk_size = int(adata.n_obs), int(chunk_size)
        self.captions = self.config.captions_per_cell
        self.drawer = RowDrawer(self.plan, self.config, seed, panel_count(self.config, self.inputs))
        self.want_markers = "genes" in self.inputs and self.config.marker_share > 0
        self.states: list[dict[str, Any]] = []
        self.mean: np.ndarray | None = None
        self.ranked: list[str] = []
        self.marker_genes: list[str] = []
        self.vocabulary: set[str] = set()
        self.picked: np.ndarray = np.zeros(0, np.int64)
        self.adata = adata
        self.empty_cells = 0
        self.scanned = False

    # ------------------------------------------------------------------ what is known from obs
    @property
    def n_chunks(self) -> int:
        return -(-self.n_cells // self.chunk_size)

    def bounds(self, chunk: int) -> tuple[int, int]:
        return chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, self.n_cells)

    @property
    def row_labels(self) -> np.ndarray:
        """Class id of every training row of ``make_pairs`` (each training cell gives ``captions_per_cell`` rows)."""
        return np.repeat(self.plan.codes[self.plan.train], self.captions)

    def row_chunks(self, rows: np.ndarray) -> np.ndarray:
        """The chunk that holds the cell of each training row."""
        return self.plan.train[np.asarray(rows, dtype=np.int64) // self.captions] // self.chunk_size

    def _train_in(self, chunk: int) -> tuple[int, np.ndarray]:
        """Position (in the training cells) of the first training cell of ``chunk``, and that chunk's training cells."""
        a, b = self.bounds(chunk)
        lo, hi = np.searchsorted(self.plan.train, [a, b])
        return int(lo), self.plan.train[lo:hi]

    # ------------------------------------------------------------------ the passes
    def scan(self) -> DatasetStream:
        """Leave out of the split the cells that express no gene with a symbol (counted in ``empty_cells``,
        reported as ``make_pairs`` reports them) and sum the gene moments of the training cells left: one
        pass over the chunks that hold split cells, when the omics tower reads genes. Runs once."""
        if self.scanned or "genes" not in self.inputs:
            self.scanned = True
            return self
        from mmgene.progress import progress

        want_moments = bool(self.drawer.n_panels or self.want_markers)
        split = np.union1d(self.plan.train, self.plan.test)
        expressing = np.zeros(self.n_cells, dtype=bool)
        moments: GeneMoments | None = None
        symbols = None
        for c in progress(np.unique(split // self.chunk_size).tolist(), desc="cells and gene means", unit="chunk"):
            a, b = self.bounds(c)
            cells = split[(split >= a) & (split < b)]
            try:
                view = expression(self.read(a, b))
            except EmptyMatrixError:  # every value of the chunk is zero: none of its cells expresses a gene
                continue
            block = view.log_normalise(view.chunk(0, view.shape[0])[cells - a], dtype=np.float32)
            expressing[cells] = _names_a_gene(view, block, self.config.max_genes)
            train = np.isin(cells, self.plan.train) & expressing[cells]
            if want_moments and train.any():
                if moments is None:
                    moments, symbols = GeneMoments(view.shape[1]), view.symbols()
                moments.add(cells[train], block[np.flatnonzero(train)])
        train, test = expressed_split(self.adata, expressing, self.plan.train, self.plan.test)
        self.empty_cells = len(self.plan.train) + len(self.plan.test) - len(train) - len(test)
        # the drawer keeps the classes of the split before, as make_pairs' does
        self.plan = dataclasses.replace(self.plan, train=train, test=test)
        if want_moments:
            moments = moments.finish()
            self.mean = moments.mean
            self.ranked = moments.ranked(symbols) if self.drawer.n_panels else []
        self.scanned = True
        return self

    def prepare(self, picked: np.ndarray | None = None) -> DatasetStream:
        """Run :meth:`scan` (unless run) and the replay pass; ``picked`` are the training rows that will be
        trained on (repeats allowed; default: every row), whose inputs give the vocabulary."""
        from mmgene.progress import progress

        self.scan()
        self.picked = np.arange(len(self.plan.train) * self.captions) if picked is None else np.sort(np.asarray(picked, dtype=np.int64))
        freq: dict[str, int] = {}
        wanted = self.row_chunks(self.picked)
        for c in progress(range(self.n_chunks), desc="pairs", unit="chunk"):
            self.states.append(copy.deepcopy(self.drawer.rng.bit_generator.state))
            picks = self.picked[wanted == c]
            cols = self._chunk(c, picks, counts=freq)
            for cell in cols.get("cell", []):
                self.vocabulary.update(cell.get("genes", ()))
        self.marker_genes = marker_list(freq=freq)
        return self

    # ------------------------------------------------------------------ rows
    def rows(self, chunk: int, picks: np.ndarray | None = None) -> dict[str, list]:
        """The training rows of ``chunk`` as ``make_pairs`` makes them (columns ``cell``, ``caption``,
        ``label``, ``obs_name``, ``row``, and the negatives), only the rows numbered ``picks`` (repeats
        give repeated rows) when given."""
        if not self.states:
            raise ParameterError("the stream is not prepared", "DatasetStream.rows", "call prepare() first")
        self.drawer.rng.bit_generator.state = copy.deepcopy(self.states[chunk])
        if picks is None:
            first, cells = self._train_in(chunk)
            picks = np.arange(first * self.captions, (first + cells.size) * self.captions)
        return self._chunk(chunk, np.asarray(picks, dtype=np.int64))

    def _chunk(self, chunk: int, picks: np.ndarray, counts: dict[str, int] | None = None) -> dict[str, list]:
        """Replay the draws of ``chunk`` (from the drawer's current state) and build the rows ``picks``."""
        first, cells = self._train_in(chunk)
        if not cells.size:
            return {}
        a, _ = self.bounds(chunk)
        data = self.read(*self.bounds(chunk)) if (self.want_markers or picks.size) else None
        markers = None
        if self.want_markers:
            view = expression(data)
            markers = excess_genes(view, view.chunk(0, view.shape[0])[cells - a], self.mean, view.symbols())
            if counts is not None:
                count_markers(markers, counts)
        drawn = self.drawer.rows(cells, self.captions, True, markers)
        if not picks.size:
            return {}
        take = (picks - first * self.captions).tolist()
        index = np.asarray(drawn["index"])[take]
        variant = np.asarray(drawn["cell"])[take]
        inputs = self._inputs(data, index - a, variant)
        out: dict[str, list] = {"cell": [inputs[(int(i), int(v))] for i, v in zip(index - a, variant)]}
        for column in ("caption", "label", "negative", "negative_label"):
            if column in drawn:
                out[column] = [drawn[column][t] for t in take]
        out["obs_name"] = np.asarray(data.obs_names).astype(str)[index - a].tolist()
        out["row"] = picks.tolist()
        return out

    def _inputs(self, data: Any, local: np.ndarray, variant: np.ndarray) -> dict[tuple[int, int], dict[str, Any]]:
        """Cell inputs of the (local row, variant) pairs asked for: -1 all genes, ``p`` panel ``p``."""
        from mmgene.cells.inputs import cell_inputs

        out: dict[tuple[int, int], dict[str, Any]] = {}
        for v in np.unique(variant):
            rows = np.unique(local[variant == v])
            panel = None if v < 0 else self.ranked[: self.config.panel_sizes[int(v)]]
            made = cell_inputs(data[rows], inputs=self.inputs, max_genes=self.config.max_genes, gene_panel=panel)
            out.update(((int(r), int(v)), cell) for r, cell in zip(rows, made))
        return out

    def test_cells(self, cells: np.ndarray) -> list[dict[str, Any]]:
        """Cell inputs (all genes) of the given cells (rows of the AnnData), read chunk by chunk, in the order given."""
        from mmgene.cells.inputs import cell_inputs

        cells = np.asarray(cells, dtype=np.int64)
        out: list[dict[str, Any] | None] = [None] * len(cells)
        for c in np.unique(cells // self.chunk_size):
            a, b = self.bounds(int(c))
            sel = np.flatnonzero(cells // self.chunk_size == c)
            made = cell_inputs(self.read(a, b)[cells[sel] - a], inputs=self.inputs, max_genes=self.config.max_genes)
            for s, cell in zip(sel, made):
                out[s] = cell
        return out  # type: ignore[return-value]


def typed_iterable(generate: Callable[..., Iterator[tuple[str, dict[str, Any]]]], kwargs: dict[str, Any], features: Any) -> Any:
    """A ``datasets.IterableDataset`` over ``generate(**kwargs)`` (``(key, row)`` pairs) whose rows
    already have ``features``: lists in ``kwargs`` are its shards (split over dataloader workers and
    ranks, and reordered for every epoch after the first, :meth:`~datasets.IterableDataset.set_epoch`,
    through ``shuffle_data_sources``, which also redraws an integer ``seed`` in ``kwargs`` for the order
    within shards); rows are not re-encoded one by one (which costs more than building them)."""
    import datasets
    from datasets.iterable_dataset import ExamplesIterable

    class TypedExamples(ExamplesIterable):
        @property
        def is_typed(self) -> bool:
            return True

        @property
        def features(self) -> Any:
            return features

        def _wrap(self, base: Any) -> TypedExamples:
            return TypedExamples(base.generate_examples_fn, base.kwargs)

        def shuffle_data_sources(self, generator: np.random.Generator) -> TypedExamples:
            shuffled = self._wrap(super().shuffle_data_sources(generator))
            if "seed" in shuffled.kwargs:  # a new order within the shards too, drawn from the epoch's generator
                draw = int(copy.deepcopy(generator).integers(2**32))
                shuffled.kwargs = {**shuffled.kwargs, "seed": int(np.random.default_rng([shuffled.kwargs["seed"], draw]).integers(2**62))}
            return shuffled

        def shard_data_sources(self, num_shards: int, index: int, contiguous: bool = True) -> TypedExamples:
            return self._wrap(super().shard_data_sources(num_shards, index, contiguous))

        def reshard_data_sources(self) -> TypedExamples:
            return self._wrap(super().reshard_data_sources())

    return datasets.IterableDataset(TypedExamples(generate, kwargs), info=datasets.DatasetInfo(features=features))
