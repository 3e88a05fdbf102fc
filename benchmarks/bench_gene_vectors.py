"""The first GenePT run: embedding the default gene set's texts with MiniLM, torch vs ONNX Runtime.

Embeds the same texts (the offline gene text of every gene expressed in PBMC 3k, ~14,000, as
``default_gene_vectors`` would for that dataset) with each backend of
:class:`~mmgene.text.encoders.SentenceTransformerEncoder`, in one process, without the embedding
cache, each backend in a fresh mmgene cache folder, and prints texts/s (wall clock and per CPU
second), the ratio to the torch path, and the least cosine between each backend's vectors and torch's.
The ONNX timings include the one-time export (and quantisation), as a first run would; ``--warm``
times a second run too.

    OMP_NUM_THREADS=1 python benchmarks/bench_gene_vectors.py [--n 2000] [--backends torch,onnx,auto] [--threads 2]

torch runs with ``settings.torch_threads`` (default 1, as ``mmgene`` does); ONNX Runtime with
``--threads`` (default: every core this process may use, as ``mmgene`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def gene_texts(n: int | None) -> list[str]:
    """Offline gene text of the genes expressed in PBMC 3k (sorted by symbol; the first ``n`` at random, seed 0)."""
    from mmgene.data import shared_data_dir
    from mmgene.genes.offline_text import OfflineGeneText
    from mmgene.io import expression, read

    shared = shared_data_dir()
    if shared is None:
        sys.exit("needs ../shared/data/pbmc3k.h5ad")
    adata = read(shared / "pbmc3k.h5ad")
    view = expression(adata)
    seen = np.zeros(view.shape[1], dtype=bool)
    for _, _, block in view.chunks(2048):
        seen[np.unique(block.indices[block.data != 0])] = True
    symbols = sorted({s.upper() for s, e in zip(view.symbols(), seen) if e and s})
    texts = OfflineGeneText().texts(symbols)
    keys = sorted(texts)
    if n is not None and n < len(keys):
        keys = sorted(np.random.default_rng(0).choice(keys, n, replace=False))
    return [texts[k] for k in keys]


def run(backend: str, texts: list[str], threads: int | None) -> tuple[np.ndarray, float, float]:
    """Vectors, wall seconds and CPU seconds of one first run (model load and export included)."""
    from mmgene.text.encoders import SentenceTransformerEncoder

    wall, cpu = time.perf_counter(), time.process_time()
    enc = SentenceTransformerEncoder("minilm", cache=False, backend=backend, threads=threads)
    vecs = enc.encode(texts)
    return vecs, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=None, help="a random subset of this many texts (default: all)")
    parser.add_argument("--backends", default="torch,onnx,auto", help="auto: mmgene's default (onnx-int8 for this many texts)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: every core)")
    parser.add_argument("--warm", action="store_true", help="also time a second ONNX run (export cached)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmgene.settings import settings

    texts = gene_texts(args.n)
    print(f"{len(texts):,} gene texts; {len(os.sched_getaffinity(0))} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    results: dict[str, dict[str, float]] = {}
    reference: np.ndarray | None = None
    runs = [(b, "first") for b in args.backends.split(",")]
    if args.warm:
        runs += [(b, "warm") for b in args.backends.split(",") if b != "torch"]
    folders: dict[str, str] = {}
    for backend, which in runs:
        if which == "first":  # a cache folder of its own: nothing exported yet, as on a first run
            folders[backend] = tempfile.mkdtemp(prefix=f"bench-gene-vectors-{backend}-")
        settings.cache_dir = folders[backend]
        vecs, wall, cpu = run(backend, texts, args.threads)
        if reference is None:
            reference = vecs
        cos = np.sum(vecs * reference, axis=1)
        name = backend if which == "first" else f"{backend} (export cached)"
        results[name] = {"texts_per_s": len(texts) / wall, "texts_per_cpu_s": len(texts) / cpu, "wall_s": wall, "cpu_s": cpu, "min_cosine": float(cos.min())}
        print(f"{name}: {wall:.0f} s, {len(texts) / wall:.1f} texts/s, {len(texts) / cpu:.1f} texts per CPU second, min cosine to {args.backends.split(',')[0]} {cos.min():.5f}", flush=True)
    base = next(iter(results.values()))
    print("\n| path | texts/s | ratio | texts per CPU s | ratio | min cosine |\n|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['texts_per_s']:.1f} | {r['texts_per_s'] / base['texts_per_s']:.2f} | {r['texts_per_cpu_s']:.1f} "
            f"| {r['texts_per_cpu_s'] / base['texts_per_cpu_s']:.2f} | {r['min_cosine']:.5f} |"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"n": len(texts), "results": results}, indent=2))


if __name__ == "__main__":
    main()
