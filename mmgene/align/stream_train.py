"""Train one aligned model on a corpus larger than memory: pairs made on the fly from backed files.

:func:`train_stream` trains what :func:`mmgene.align.train_corpus` trains, on the same rows, without
materialising them. Each dataset is a :class:`~mmgene.pairs.stream.DatasetStream` over its file
(opened backed: ``read_corpus(..., CorpusOptions(backed=True))``), read ``StreamConfig.chunk_size``
cells at a time as the corpus path sees them (human symbols only, :func:`human_view`). Classes are
made global and rows balanced across datasets and classes exactly as :func:`corpus_pairs` does (the
balance needs labels only), so an epoch holds the same multiset of (cell, caption) rows as the
in-memory path.

The rows reach sentence-transformers' trainer as a ``datasets.IterableDataset`` whose shards are
(dataset, chunk) blocks: every epoch visits the blocks in a new seeded order across all files and
shuffles the rows of ``StreamConfig.shuffle_chunks`` blocks together; the same seed gives the same
order. Under ``torchrun`` each rank reads only its own blocks: every epoch the blocks are dealt, in that
epoch's seeded order, to one lane per rank (each block to the lane with the fewest rows so far), and
each lane yields exactly ``rows // world_size`` rows (re-reading its own blocks from the start when its
share falls short). The lanes are the dataset's shards, so accelerate gives rank ``r`` lane ``r``
(:meth:`datasets.IterableDataset.shard`) instead of reading every batch on the first rank and sending
it out; all ranks run the same number of steps per epoch. The zero-shot evaluator scores
a seeded sample of at most ``StreamConfig.eval_cells`` held-out cells. Hard-negative mining, which
rewrites every row between rounds, needs the in-memory path. Cells whose label the other datasets
contradict (``CorpusTrainingConfig.drop_contradicted``, off by default here) are found first by
:mod:`mmgene.corpus.consensus`, reading each file ``StreamConfig.chunk_size`` cells at a time (the
ranks share the judging out), and their rows are left out before balancing, as in memory. So are
cells that express no gene (an empty input for the omics tower), found in a first pass over each file
(:meth:`~mmgene.pairs.stream.DatasetStream.scan`) and reported as :func:`mmgene.pairs.make_pairs` reports them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmgene.align.balance import balanced_rows, dataset_quotas
from mmgene.align.config import STREAMED_DEFAULTS, AlignConfig, CorpusTrainingConfig, ModelConfig, TrainingConfig
from mmgene.align.corpus_train import (
    GlobalClasses, _merge_markers, _shown, class_key, contradicted_obs, contradicted_record, corpus_meta, dataset_pairs, human_view,
    start_training, terms_of,
)
from mmgene.cells.inputs import GENES
from mmgene.errors import ParameterError
from mmgene.pairs.config import PairsConfig
from mmgene.pairs.stream import ChunkReader, DatasetStream, typed_iterable
from mmgene.pairs.stream_config import StreamConfig
from mmgene.progress import info


@dataclass(frozen=True)
class StreamFacts:
    """What training needs to know about a streamed split without reading it (see :func:`mmgene.align.fit.fit_pairs`)."""

    #: rows of one epoch.
    rows: int
    #: gene symbols of the rows' cell inputs, sorted (the model's vocabulary).
    vocabulary: list[str]
    #: global class ids with training rows.
    labels: list[int]


@dataclass
class _HumanChunk:
    """A chunk of a corpus dataset as :func:`human_view` reads a dataset."""

    adata: Any
    symbols: np.ndarray
    name: str


def _kept_rows(d: DatasetStream, obs_names: Any, left_out: set[str] | None) -> np.ndarray:
    """The training rows of ``d`` whose cell is not named in ``left_out`` (all of them without it), in order,
    as :func:`~mmgene.align.corpus_train.corpus_pairs` keeps them."""
    rows = np.arange(len(d.plan.train) * d.captions)
    if not left_out:
        return rows
    dropped = np.flatnonzero(np.isin(np.asarray(obs_names).astype(str), sorted(left_out)))
    return rows[~np.isin(d.plan.train[rows // d.captions], dropped)]


class CorpusStream:
    """The balanced training rows of a corpus, made block by block (see the module docstring)."""

    def __init__(
        self, corpus: Any, *, inputs: Sequence[str], config: AlignConfig, balance: CorpusTrainingConfig, stream: StreamConfig,
        left_out: dict[str, set[str]] | None = None,
    ) -> None:
        self.inputs, self.config, self.stream = list(inputs), config, stream
        seed = self.seed = config.training.seed
        self.names = list(corpus.names)
        classes = GlobalClasses([], [], [])
        self.datasets: list[DatasetStream] = []
        self.mappings: list[np.ndarray] = []
        self.readers: list[ChunkReader] = []
        for ds in corpus:
            reader = ChunkReader(ds.adata, stream.chunk_size, view=lambda chunk, ds=ds: human_view(_HumanChunk(chunk, ds.symbols, ds.name)))
            d = DatasetStream(
                ds.adata, [ds.spec.label_col], ontology_col=ds.spec.ontology_col, inputs=inputs, config=dataset_pairs(ds, config.pairs),
                seed=seed, chunk_size=stream.chunk_size, read=reader,
            )
            d.scan()  # cells expressing no gene leave the split before rows are balanced, as in corpus_pairs
            terms = terms_of(ds, d.plan.class_names)
            self.mappings.append(np.array(
                [classes.add(class_key(n, t), _shown(n, t), text) for n, t, text in zip(d.plan.class_names, terms, d.plan.texts)],
                dtype=np.int64,
            ))
            self.datasets.append(d)
            self.readers.append(reader)
        self.classes = classes
        kept = [_kept_rows(d, ds.adata.obs_names, (left_out or {}).get(ds.name)) for d, ds in zip(self.datasets, corpus)]
        sizes = [len(k) for k in kept]
        self.dataset_rows = dict(zip(self.names, sizes))
        self.dataset_weights = {ds.name: ds.spec.weight for ds in corpus}
        self.rows_per_dataset, quotas = dataset_quotas(sizes, list(self.dataset_weights.values()), balance.rows_per_dataset)
        picked = balanced_rows([m[d.row_labels[k]] for m, d, k in zip(self.mappings, self.datasets, kept)], quotas, seed)
        self.picked = [k[p] for k, p in zip(kept, picked)]
        for name, d, k, picked in zip(self.names, self.datasets, kept, self.picked):
            dropped = len(d.plan.train) - len(k) // d.captions
            notes = ([f"{dropped:,} left out as contradicted"] if dropped else []) + (
                [f"{d.empty_cells:,} training or test cells left out for expressing no gene"] if d.empty_cells else []
            )
            info(f"streamed pairs of dataset {name!r}: {len(d.plan.train) - dropped:,} training cells"
                 + (f" ({'; '.join(notes)})" if notes else "") + f", {len(picked):,} rows an epoch")
            d.prepare(picked)
        self.blocks: list[tuple[int, int]] = []
        self.picks: dict[tuple[int, int], np.ndarray] = {}
        for i, (d, picked) in enumerate(zip(self.datasets, self.picked)):
            chunks = d.row_chunks(picked)
            for c in np.unique(chunks):
                self.blocks.append((i, int(c)))
                self.picks[(i, int(c))] = np.sort(picked[chunks == c])
        labels = sorted({int(g) for m, d, p in zip(self.mappings, self.datasets, self.picked) for g in np.unique(m[d.row_labels[p]])})
        vocabulary = sorted(set().union(*(d.vocabulary for d in self.datasets))) if GENES in self.inputs else []
        self.facts = StreamFacts(int(sum(len(p) for p in self.picked)), vocabulary, labels)
        self.marker_genes = _merge_markers([d.marker_genes for d in self.datasets])

    # ------------------------------------------------------------------ rows
    @property
    def pair_labels(self) -> bool:
        """Rows carry ``[label, negative_label]`` (negatives with the clip loss, which masks by both)."""
        return self.config.pairs.negatives and self.config.training.loss == "clip"

    def block_rows(self, i: int, chunk: int) -> dict[str, list]:
        """The rows of one block: its picked rows (repeats included), classes global, names prefixed by the dataset."""
        cols = self.datasets[i].rows(chunk, self.picks[(i, chunk)])
        mapping = self.mappings[i]
        label = mapping[np.asarray(cols["label"], dtype=np.int64)].tolist()
        if self.config.pairs.negatives:
            negative = mapping[np.asarray(cols.pop("negative_label"), dtype=np.int64)].tolist()
            label = [list(pair) for pair in zip(label, negative)] if self.pair_labels else label
        cols["label"] = label
        cols["obs_name"] = [f"{self.names[i]}:{n}" for n in cols["obs_name"]]
        return cols

    def generate(self, blocks: list[tuple[int, int]], seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """Rows of ``blocks`` in order, ``shuffle_chunks`` blocks at a time shuffled together with ``seed``."""
        columns = ["cell", "caption"] + (["negative"] if self.config.pairs.negatives else []) + ["label", "obs_name"]
        step = self.stream.shuffle_chunks
        for w in range(0, len(blocks), step):
            parts = [(b, self.block_rows(*b)) for b in blocks[w : w + step]]
            keys = [f"{self.names[i]}:{c}:{r}" for (i, c), cols in parts for r in range(len(cols["caption"]))]
            merged = {k: [v for _, cols in parts for v in cols[k]] for k in columns}
            for j in np.random.default_rng([seed, w]).permutation(len(keys)):
                yield keys[j], {k: merged[k][j] for k in columns}

    def deal(self, seed: int, world: int) -> list[list[tuple[int, int]]]:
        """The blocks in a seeded order, dealt to ``world`` lanes: each block to the lane with the fewest
        rows so far (the lanes' rows then differ by at most one block's)."""
        lanes: list[list[tuple[int, int]]] = [[] for _ in range(world)]
        load = np.zeros(world, dtype=np.int64)
        for k in np.random.default_rng([seed, 2]).permutation(len(self.blocks)):
            lane = int(np.argmin(load))
            lanes[lane].append(self.blocks[k])
            load[lane] += len(self.picks[self.blocks[k]])
        return lanes

    def generate_lanes(self, lanes: list[int], seed: int, world: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """The rows of ``lanes`` of the epoch's deal (``seed``): ``rows // world`` rows each, its blocks
        read again from the start (in a new order within windows) while it is short."""
        quota = self.facts.rows // world
        dealt = self.deal(seed, world)
        for lane in lanes:
            made, again = 0, 0
            while made < quota:
                for key, row in self.generate(dealt[lane], seed + again):
                    yield f"{lane}:{again}:{key}", row
                    made += 1
                    if made == quota:
                        break
                again += 1

    def features(self, obsm_dims: Sequence[int]) -> Any:
        import datasets

        floats = datasets.List(datasets.Value("float32"))
        cell: dict[str, Any] = {k: floats for k in self.inputs if k != GENES}
        if GENES in self.inputs:
            cell.update(genes=datasets.List(datasets.Value("string")), values=floats)
        label = datasets.List(datasets.Value("int64")) if self.pair_labels else datasets.Value("int64")
        spec = {"cell": cell, "caption": datasets.Value("string")}
        if self.config.pairs.negatives:
            spec["negative"] = datasets.Value("string")
        spec.update(label=label, obs_name=datasets.Value("string"))
        return datasets.Features(spec)

    def train_split(self, obsm_dims: Sequence[int], world: int = 1) -> Any:
        """The epoch as a ``datasets.IterableDataset`` (epoch 0 in a seeded block order; later epochs
        reorder through ``set_epoch``), with :attr:`facts` as ``stream_facts``. With ``world`` > 1 its
        shards are the ``world`` lanes of the module docstring, one for each rank."""
        features = self.features(obsm_dims)
        if world > 1:
            if len(self.blocks) < world:
                raise ParameterError(
                    f"the corpus streams as {len(self.blocks)} blocks of cells, fewer than the {world} processes that each read their own",
                    "StreamConfig.chunk_size",
                    f"lower chunk_size (now {self.stream.chunk_size}) so that there are at least {world} blocks, or use fewer processes",
                )
            ds = typed_iterable(self.generate_lanes, {"lanes": list(range(world)), "seed": self.seed, "world": world}, features)
        else:
            order = np.random.default_rng([self.seed, 0]).permutation(len(self.blocks))
            ds = typed_iterable(self.generate, {"blocks": [self.blocks[k] for k in order], "seed": self.seed}, features)
        ds.stream_facts = self.facts
        return ds

    def test_split(self) -> Any:
        """A seeded sample of at most ``eval_cells`` held-out cells of all datasets (columns ``cell``, ``label``)."""
        import datasets

        where = [(i, int(c)) for i, d in enumerate(self.datasets) for c in d.plan.test]
        if not where or not self.stream.eval_cells:
            return None
        rng = np.random.default_rng([self.seed, 1])
        take = np.sort(rng.choice(len(where), min(self.stream.eval_cells, len(where)), replace=False))
        cells, labels = [], []
        for i, d in enumerate(self.datasets):
            mine = np.array([where[t][1] for t in take if where[t][0] == i], dtype=np.int64)
            if mine.size:
                cells += d.test_cells(mine)
                labels += self.mappings[i][d.plan.codes[mine]].tolist()
        return datasets.Dataset.from_dict({"cell": cells, "label": labels})

    def training_cells(self, i: int) -> Iterator[Any]:
        """Dataset ``i``'s training cells, read a chunk at a time (in-memory AnnData pieces)."""
        d, reader = self.datasets[i], self.readers[i]
        for start in range(0, d.n_cells, d.chunk_size):
            stop = min(start + d.chunk_size, d.n_cells)
            rows = d.plan.train[(d.plan.train >= start) & (d.plan.train < stop)]
            if rows.size:
                yield reader(start, stop)[rows - start]

    @property
    def largest_read(self) -> int:
        """The most cells read from disk at once, over all datasets."""
        return max(r.largest for r in self.readers)


def train_stream(
    corpus: Any,
    *,
    inputs: Sequence[str] = ("genes",),
    pairs: PairsConfig | None = None,
    model: ModelConfig | None = None,
    training: TrainingConfig | None = None,
    balance: CorpusTrainingConfig | None = None,
    stream: StreamConfig | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Any:
    """Train on ``corpus`` as :func:`mmgene.align.train_corpus` does, reading the datasets in chunks
    (see the module docstring); ``stream`` (:class:`~mmgene.pairs.stream_config.StreamConfig`) sets the chunk
    size, how many chunks are shuffled together and the evaluator's sample. Read the corpus backed
    (``CorpusOptions(backed=True)``) so that no matrix is loaded. One model by default; ``balance.members``
    > 1 trains an :class:`~mmgene.align.ensemble.EnsembleModel`, reading the corpus once per member."""
    from mmgene.lazy import require

    require("torch", "streamed training on a corpus")
    from mmgene.align.ensemble import train_members

    given = AlignConfig(pairs or PairsConfig(), model or ModelConfig(), training or TrainingConfig())
    if given.training.hard_negatives:
        raise ParameterError(
            "hard negatives rewrite every training row between rounds, which a streamed corpus does not hold",
            "TrainingConfig.hard_negatives", "pass hard_negatives=0, or train in memory with train_corpus",
        )
    config, balance, obsm_dims = start_training(corpus, inputs, given, balance, STREAMED_DEFAULTS, out, overwrite)
    stream = stream or StreamConfig()
    left_out = None
    if balance.drop_contradicted:  # every rank judges its share and gets all verdicts
        from mmgene.corpus.consensus import ConsensusConfig

        left_out = contradicted_obs(corpus, ConsensusConfig(chunk_cells=stream.chunk_size))
    aligned = train_members(
        lambda member, text: _train_model(corpus, inputs, member, balance, stream, obsm_dims, text, left_out), config, balance.members
    )
    if out is not None:
        aligned.save(out, overwrite=overwrite)
    return aligned


def _train_model(
    corpus: Any, inputs: Sequence[str], config: AlignConfig, balance: CorpusTrainingConfig, stream: StreamConfig,
    obsm_dims: list[int], text: Any, left_out: dict[str, set[str]] | None = None,
) -> Any:
    """One model of :func:`train_stream`, with its training mean, not saved; ``text`` is the members' shared text
    model; ``left_out`` the cells not trained on, per dataset."""
    from mmgene import distributed
    from mmgene.align.fit import fit_pairs
    from mmgene.align.model import AlignedModel
    from mmgene.align.recentre import MEAN_KEY, training_mean
    from mmgene.pairs.result import TrainingPairs
    from mmgene.text.ontology import related_terms

    t0 = time.perf_counter()
    source = CorpusStream(corpus, inputs=inputs, config=config, balance=balance, stream=stream, left_out=left_out)
    prepare_s = time.perf_counter() - t0
    splits = {"train": source.train_split(obsm_dims, world=distributed.world_size())}
    test = source.test_split()
    if test is not None:
        splits["test"] = test
    classes = source.classes
    examples = TrainingPairs(splits, classes.names, classes.texts, sum(d.plan.unlabelled for d in source.datasets), source.marker_genes)
    related = related_terms(classes.term_ids) if balance.mask_related else None
    run = fit_pairs(examples, inputs=inputs, config=config, obsm_dims=obsm_dims, related=related, shared_text=text)
    seconds = time.perf_counter() - t0
    record = {
        "datasets": source.names,
        "dataset_classes": {
            name: [classes.names[int(g)] for g in sorted(set(m[d.row_labels].tolist()))]
            for name, m, d in zip(source.names, source.mappings, source.datasets)
        },
        "class_ids": classes.keys,
        "train_cells": sum(len(np.unique(d.plan.train[p // d.captions])) for d, p in zip(source.datasets, source.picked)),
        "balance": {
            "rows_per_dataset": source.rows_per_dataset, "dataset_rows": source.dataset_rows, "mask_related": balance.mask_related,
            "dataset_weights": source.dataset_weights,
            **contradicted_record(left_out),
        },
    }
    meta = corpus_meta(corpus, examples, record, related, run, seconds)
    meta["stream"] = {
        "chunk_size": stream.chunk_size, "shuffle_chunks": stream.shuffle_chunks, "eval_cells": stream.eval_cells,
        "prepare_seconds": round(prepare_s, 1),
    }
    aligned = AlignedModel(run.st, list(inputs), meta, config)
    aligned.meta[MEAN_KEY] = training_mean(aligned, [source.training_cells(k) for k in range(len(source.datasets))])
    info(f"trained on {len(corpus)} datasets, streamed, in {seconds:.0f} s ({prepare_s:.0f} s preparing the pairs)")
    return aligned
