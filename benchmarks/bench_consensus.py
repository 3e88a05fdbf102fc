"""Benchmark: the bounded consensus against the same rule unbounded, on an atlas made of the shared corpus.

:func:`mmgene.corpus.consensus.contradicted_cells` judges each training dataset by a logistic regression
on the other datasets of its species. Unbounded, that is one regression per dataset on every cell of all
the others, each dataset normalised and standardised whole: time grows with the square of the number of
datasets and memory with the corpus. The default :class:`~mmgene.corpus.consensus.ConsensusConfig`
bounds both (20,000 reference cells a regression, at most 100 regressions a species, 10,000 cells at a
time). This runs both in one process on the same corpus and prints time, peak traced memory
(``tracemalloc``: numpy's and scipy's arrays), regressions fitted, and how far the verdicts agree.

The corpus: the shared corpus's datasets (``--manifest``), each human one split into ``--parts`` disjoint
datasets (as a study gives an atlas one dataset per donor or sample), each part a bootstrap sample of
its cells ``--scale`` times its size. With ``--parts 1 --scale 1`` the corpus is the shared one, where
the bounds do not bind: the verdicts must then be equal. Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_consensus.py --manifest ../shared/data/corpus/corpus.csv --parts 4 --scale 3

Under a launcher (``torchrun --nproc_per_node 2 benchmarks/bench_consensus.py ...``) it compares instead the
bounded rule with its regressions shared out among the ranks against one rank judging everything.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np


def _atlas(manifest: Path, parts: int, scale: float, seed: int):
    from mmgene.corpus import read_corpus
    from mmgene.corpus.corpus import Corpus, CorpusDataset

    corpus = read_corpus(manifest)
    if parts == 1 and scale == 1:
        return corpus
    rng = np.random.default_rng(seed)
    datasets = [ds for ds in corpus if ds.species != "human"]
    for ds in [d for d in corpus if d.species == "human"]:
        for k, part in enumerate(np.array_split(rng.permutation(ds.n_cells), parts)):
            rows = np.sort(rng.choice(part, int(round(len(part) * scale)), replace=True))
            with warnings.catch_warnings():  # a bootstrap repeats cells, and so their names, until renamed
                warnings.simplefilter("ignore", UserWarning)
                adata = ds.adata[np.flatnonzero(ds.keep)[rows]].copy()
            adata.obs_names = [f"{name}#{i}" for i, name in enumerate(adata.obs_names)]
            datasets.append(CorpusDataset(
                spec=dataclasses.replace(ds.spec, dataset=f"{ds.name}#{k + 1}"), adata=adata, symbols=ds.symbols,
                keep=np.ones(len(rows), dtype=bool), labels=ds.labels[rows], ontology_ids=ds.ontology_ids[rows], n_dropped=0,
            ))
    return Corpus(datasets, corpus.orthology)


def _run(corpus, config):
    from sklearn.linear_model import LogisticRegression

    from mmgene.corpus.consensus import contradicted_cells

    fits = []
    fit = LogisticRegression.fit

    def counted(self, X, y, sample_weight=None):
        fits.append(X.shape[0])
        return fit(self, X, y, sample_weight=sample_weight)

    LogisticRegression.fit = counted
    tracemalloc.start()
    start = time.perf_counter()
    try:
        found = contradicted_cells(corpus, config)
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        LogisticRegression.fit = fit
    return found, seconds, peak, fits


def _launched(corpus, config) -> bool:
    """Under a launcher: the rule with its regressions shared out among the ranks, and the same rule with
    every rank judging everything (``distributed.local()``: one process's work), side by side in each rank;
    rank 0 prints both and whether their verdicts agree. Returns whether it ran."""
    from mmgene import distributed

    if not distributed.init():
        return False
    shared, shared_s, _, shared_fits = _run(corpus, config)
    with distributed.local():
        alone, alone_s, _, alone_fits = _run(corpus, config)
    if distributed.is_main():
        same = all(np.array_equal(shared[n], alone[n]) for n in alone)
        print(f"shared among {distributed.world_size()} ranks: {shared_s:7.1f} s, {len(shared_fits)} regressions on rank 0")
        print(f"one rank judging all:  {alone_s:7.1f} s, {len(alone_fits)} regressions")
        print(f"ratio (shared / one rank): time {shared_s / alone_s:.2f}; verdicts {'the same' if same else 'DIFFERENT'}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path("../shared/data/corpus/corpus.csv"))
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--scale", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-groups", type=int, default=None, help="ConsensusConfig.max_groups of the bounded run (default: its default)")
    args = parser.parse_args()
    if not args.manifest.is_file():
        sys.exit(f"no corpus manifest at {args.manifest}: pass --manifest (the shared corpus's corpus.csv)")

    from mmgene.corpus.consensus import ConsensusConfig

    corpus = _atlas(args.manifest, args.parts, args.scale, args.seed)
    human = [ds for ds in corpus if ds.species == "human"]
    print(f"corpus: {len(corpus)} datasets, {sum(ds.n_cells for ds in corpus):,} cells; "
          f"{len(human)} human datasets, {sum(ds.n_cells for ds in human):,} cells")
    everything = sum(ds.n_cells for ds in corpus)
    unbounded = ConsensusConfig(reference_cells=everything * len(corpus), max_groups=max(len(corpus), 2), chunk_cells=everything)
    bounded = ConsensusConfig(seed=args.seed) if args.max_groups is None else ConsensusConfig(seed=args.seed, max_groups=args.max_groups)
    if _launched(corpus, bounded):
        return
    ours, ours_s, ours_peak, ours_fits = _run(corpus, bounded)
    theirs, theirs_s, theirs_peak, theirs_fits = _run(corpus, unbounded)
    cells = sum(len(v) for v in theirs.values())
    same = sum(int((ours[n] == theirs[n]).sum()) for n in theirs)
    flagged = sum(int(theirs[n].sum()) for n in theirs)
    both = sum(int((ours[n] & theirs[n]).sum()) for n in theirs)
    print(f"bounded:            {ours_s:7.1f} s, peak {ours_peak / 2**20:7.0f} MiB, {len(ours_fits)} regressions on at most {max(ours_fits, default=0):,} cells")
    print(f"unbounded:          {theirs_s:7.1f} s, peak {theirs_peak / 2**20:7.0f} MiB, {len(theirs_fits)} regressions on at most {max(theirs_fits, default=0):,} cells")
    print(f"ratio (bounded / unbounded): time {ours_s / theirs_s:.2f}, peak memory {ours_peak / theirs_peak:.2f}")
    print(f"verdicts: {same:,} of {cells:,} cells the same ({same / cells:.4f}); of the {flagged:,} cells the unbounded rule "
          f"contradicts, the bounded one contradicts {both:,}, and {sum(int(v.sum()) for v in ours.values()) - both:,} others")
    if max(ours_fits, default=0) < max(theirs_fits, default=0):  # the samples bind: how much do they alone move the verdicts?
        other, *_ = _run(corpus, dataclasses.replace(bounded, seed=args.seed + 1))
        same = sum(int((ours[n] == other[n]).sum()) for n in ours)
        mine = sum(int(ours[n].sum()) for n in ours)
        both = sum(int((ours[n] & other[n]).sum()) for n in ours)
        print(f"bounded with another sample (seed {args.seed + 1}): {same:,} of {cells:,} cells the same ({same / cells:.4f}); "
              f"of the {mine:,} cells seed {args.seed} contradicts, it contradicts {both:,}")


if __name__ == "__main__":
    main()
