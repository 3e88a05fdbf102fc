"""Balanced resampling of training rows across datasets and classes (training on a corpus).

A corpus mixes a 175-cell dataset with a 2,638-cell one, and within a dataset a class of 20 cells
with one of 1,000. Drawn by cell, the big dataset and its big classes would decide the model. So
every dataset contributes the same number of rows, and within a dataset every class the same share
of them:

- dataset ``d`` gives ``rows`` rows (times its manifest ``weight`` over the mean weight, rounded, at
  least 1: :func:`weighted_rows`); its ``K`` classes (those in its training split, in class-id
  order) get ``rows // K`` each, and the first ``rows % K`` of them one more;
- a class with ``n`` rows that must give ``m``: ``m // n`` full seeded permutations of its rows,
  then the first ``m % n`` of one more (so no row repeats before every row was used once).

Seeded with ``(seed, dataset position)``: the same inputs give the same rows. Under ``torchrun`` every
rank therefore draws the same rows, in the same order, without talking to the others, and the
trainer's sampler deals each global batch out in shares (:mod:`mmgene.align.fit`): the ranks never
need to agree on a draw, and a run is the same for a seed and a number of ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmgene.errors import DataError, ParameterError


def class_quota(classes: Sequence[int], rows: int) -> dict[int, int]:
    """Rows per class when ``rows`` are spread evenly over ``classes`` (earlier classes take the remainder)."""
    ordered = sorted(set(int(c) for c in classes))
    base, extra = divmod(rows, len(ordered))
    return {c: base + (1 if k < extra else 0) for k, c in enumerate(ordered)}


def _draw(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` positions out of ``n``: whole permutations, then part of one more."""
    parts = [rng.permutation(n) for _ in range(m // n)]
    if m % n:
        parts.append(rng.permutation(n)[: m % n])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def weighted_rows(rows: int, weights: Sequence[float]) -> list[int]:
    """Each dataset's rows: ``rows`` times its weight over the datasets' mean weight (rounded half to even,
    at least 1), so weights share out the same rows an epoch: equal weights, whatever their value, change
    nothing, and a lone dataset keeps ``rows``."""
    if not len(weights):
        return []
    relative = np.asarray(weights, dtype=np.float64)
    relative = relative / relative.max()  # weights of 1e308 would sum to infinity
    return [max(1, int(round(rows * float(w) / float(relative.mean())))) for w in relative]


def balanced_rows(labels: Sequence[np.ndarray], rows: int | Sequence[int], seed: int = 0) -> list[np.ndarray]:
    """For each dataset's row labels, the row positions to train on (``rows`` per dataset, or
    ``rows[d]`` for dataset ``d``; classes evenly; see the module docstring). Rows repeat where a
    dataset or class has fewer."""
    quotas = [int(rows)] * len(labels) if np.ndim(rows) == 0 else [int(r) for r in rows]  # type: ignore[arg-type]
    if len(quotas) != len(labels) or min(quotas, default=1) < 1:
        raise ParameterError(
            f"rows per dataset must be at least 1 for each of the {len(labels)} datasets, got {rows}",
            "CorpusTrainingConfig.rows_per_dataset", "pass 0 or a row count",
        )
    out = []
    for d, lab in enumerate(labels):
        lab = np.asarray(lab, dtype=np.int64)
        if lab.size == 0:
            raise DataError(
                "a dataset has no training rows to draw from (every training cell left out, e.g. as contradicted)",
                f"dataset {d + 1} of {len(labels)}, in corpus order",
                "leave that dataset out of the corpus, or keep its cells: CorpusTrainingConfig.drop_contradicted=False",
            )
        rng = np.random.default_rng([seed, d])
        picked = []
        for cls, m in class_quota(lab.tolist(), quotas[d]).items():
            where = np.flatnonzero(lab == cls)
            picked.append(where[_draw(len(where), m, rng)])
        out.append(np.concatenate(picked))
    return out


def default_rows(sizes: Sequence[int]) -> int:
    """Rows per dataset when none is asked for: the median of the datasets' training rows."""
    return max(1, int(np.median(np.asarray(sizes, dtype=np.float64))))


def dataset_quotas(sizes: Sequence[int], weights: Sequence[float], asked: int = 0) -> tuple[int, list[int]]:
    """The rows per dataset (``asked``, or :func:`default_rows` of ``sizes`` when 0) and each dataset's
    share of them by its weight (:func:`weighted_rows`): what both corpus trainers draw."""
    rows = asked or default_rows(sizes)
    return rows, weighted_rows(rows, weights)
