"""Benchmark: the ways mmgene orders a cell's genes, each on the data it is used for, one thread.

PBMC 3k counts stacked to ``--cells`` cells, as counts, float32 log1p and float64 log1p (per 10,000).
For cell sentences: the keyed sort (``sentence_keys`` + ``np.sort``, + ``exact_runs`` for float64) on
every case, the counting sort where it applies (counts, ties by column: the default), and the NumPy
reference (``lexsort_rows``) on the first ``--ref-cells`` cells. For Geneformer tokens:
``geneformer_rank`` against normalising in NumPy and ordering with the keyed sort. Every output is
checked equal to the reference. Prints cells/s; a kernel stays only where it is the fastest exact one.

    python benchmarks/bench_orderings.py --cells 20000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("MMGENE_QUIET", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import mmgene.io  # noqa: E402
from mmgene.cells import _kernels as k  # noqa: E402
from mmgene.cells import ranking  # noqa: E402
from mmgene.cells.vocabulary import build_vocabulary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pbmc3k.h5ad"
DEFAULT_DICTS = ROOT.parent / "shared" / "data" / "geneformer_v1"
CHUNK = 2048


def chunks(M: sp.csr_matrix) -> list[sp.csr_matrix]:
    return [M[s : s + CHUNK] for s in range(0, M.shape[0], CHUNK)]


def fastest(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def keyed(block, vocab, limit):
    ptrs, ids = [np.zeros(1, np.int64)], []
    for key_ptr, keys, _, tie_bits in ranking.sorted_keys(block, vocab.tie_rank, vocab.keep):
        ptr, words = k.sentence_words(key_ptr, keys, vocab.word_of_rank, tie_bits, limit, len(vocab.words))
        ptrs.append(ptr[1:] + ptrs[-1][-1])
        ids.append(words)
    return np.concatenate(ptrs), np.concatenate(ids)


def counting(block, vocab, limit):
    dedupe = len(vocab.words) < len(vocab.col_word)
    return k.sentence_counts_by_position(block.indptr.astype(np.int64), block.indices, block.data, vocab.keep, vocab.col_word, limit, len(vocab.words), dedupe)


def reference(block, vocab, limit):
    mask = (block.data > 0) & vocab.keep[block.indices]
    cum = np.zeros(len(mask) + 1, np.int64)
    np.cumsum(mask, out=cum[1:])
    indptr, data, indices = cum[block.indptr], block.data[mask], block.indices[mask]
    words = vocab.col_word[indices[ranking.lexsort_rows(indptr, data, vocab.tie_rank[indices])]]
    out, ptr = [], [0]
    for i in range(len(indptr) - 1):
        out += list(dict.fromkeys(words[indptr[i] : indptr[i + 1]].tolist()))[:limit]
        ptr.append(len(out))
    return np.asarray(ptr), np.asarray(out, np.int32)


def rows_of(outputs) -> list[list[int]]:
    return [ids[p[i] : p[i + 1]].tolist() for p, ids in outputs for i in range(len(p) - 1)]


def tokens(args, X: sp.csr_matrix, var) -> None:
    from mmgene.cells import load_dictionaries
    from mmgene.cells.rank_encoding import plan_tokens

    plan = plan_tokens(var, load_dictionaries(args.dicts, "V1"))
    col_token, col_recip = plan.columns(merged=False)
    keep = col_token >= 0
    order = np.argsort(np.where(keep, col_token, np.iinfo(np.int32).max), kind="stable")  # ties by token id
    tie = np.empty(len(order), np.int64)
    tie[order] = np.arange(len(order))

    def radix(block):
        recip_n = np.zeros(block.shape[0])
        args = (block.indptr.astype(np.int64), block.indices, block.data, col_token, recip_n, 10_000.0, col_recip, True, 2048)
        return k.geneformer_rank(*args, -1, -1, np.zeros(0, np.int32), 0)[:2]

    def numpy_then_keyed(block):
        recip_n = 1.0 / np.asarray(block.sum(axis=1), np.float64).ravel()
        b = block.astype(np.float64)
        b.data = (b.data * np.repeat(recip_n, np.diff(b.indptr))) * 10_000.0 * col_recip[b.indices]
        ptrs, ids = [np.zeros(1, np.int64)], []
        for key_ptr, keys, _, tie_bits in ranking.sorted_keys(b, tie, keep):
            ids.append(col_token[order[(keys & np.uint64((1 << tie_bits) - 1)).astype(np.int64)]])
            ptrs.append(key_ptr[1:] + ptrs[-1][-1])
        return np.concatenate(ptrs), np.concatenate(ids)

    blocks = chunks(X)
    res = {}
    for name, fn in (("geneformer_rank", radix), ("NumPy + keyed sort", numpy_then_keyed)):
        fn(blocks[0])  # compile
        res[name] = fastest(lambda: [fn(b) for b in blocks], args.repeats)
    a, b = ([r[:2048] for r in rows_of(out)] for _, out in res.values())
    n = X.shape[0]
    print(f"tokens (V1)      " + "  ".join(f"{name}: {n / t:>9,.0f} cells/s" for name, (t, _) in res.items()) + f"   same tokens: {a == b}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=20_000)
    p.add_argument("--ref-cells", type=int, default=2_000, help="cells for the (slow) NumPy reference")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--dicts", type=Path, default=DEFAULT_DICTS)
    args = p.parse_args(argv)
    base = mmgene.io.read(args.data)
    X = sp.vstack([base.X] * -(-args.cells // base.n_obs), format="csr")[: args.cells].astype(np.float32)
    X.sort_indices()
    totals = np.asarray(X.sum(axis=1), np.float64).ravel()
    log64 = X.astype(np.float64)
    log64.data = np.log1p(log64.data * np.repeat(1e4 / totals, np.diff(X.indptr)))
    cases = {"counts": X, "log1p float32": log64.astype(np.float32), "log1p float64": log64}
    n, n_ref = X.shape[0], min(args.ref_cells, X.shape[0])
    ok = True
    for ties in ("position", "symbol"):
        vocab = build_vocabulary(base.var, ties=ties)
        for name, M in cases.items():
            paths = {"keyed sort": keyed}
            if ties == "position" and name == "counts":
                paths["counting sort"] = counting
            t_ref, ref = fastest(lambda: [reference(b, vocab, 1 << 30) for b in chunks(M[:n_ref])], 1)
            line = f"ties={ties:<8} {name:<14} NumPy reference {n_ref / t_ref:>7,.0f} cells/s"
            for label, fn in paths.items():
                blocks = chunks(M)
                fn(blocks[0], vocab, 10)  # compile
                t, out = fastest(lambda: [fn(b, vocab, 1 << 30) for b in blocks], args.repeats)
                same = rows_of(out)[:n_ref] == rows_of(ref)
                ok &= same
                line += f"  {label} {n / t:>9,.0f} cells/s{'' if same else ' (DIFFERS)'}"
            print(line, flush=True)
    tokens(args, X, base.var)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
