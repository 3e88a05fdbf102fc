"""Benchmark: training on a streamed corpus of 1,000,000 cells against the in-memory path, one run.

Corpus: PBMC 3k and the seven datasets of the shared corpus (``../shared/data/corpus/corpus.csv``,
7,504 cells) replicated ``ceil(--cells / 7,504)`` times into eight backed ``.h5ad`` files under
``--dir`` (about 5.6 GB for 1,005,536 cells; written block by block, never held in memory; reused by
later runs; never committed). Each replica of a cell is the same counts under a new name, so every
file keeps its dataset's genes, labels and ontology ids, and the corpus balances as the original does.

Three runs, each in a child process whose peak resident memory (``ru_maxrss``) is reported:

- ``memory``: :func:`mmgene.align.train_corpus` on the shared corpus (it fits), pairs built in memory;
- ``stream-small``: :func:`mmgene.align.stream_train.train_stream` on the same corpus, read backed;
- ``stream``: ``train_stream`` on the replicated corpus, read backed in chunks of ``--chunk-size``.

Each trains ``--steps`` steps of ``--batch-size`` rows of one model with the library's default model
and pairs, without hard negatives (the streamed path cannot mine them) and without evaluation during
the steps, so the loops time the same work per step. Reported per run: the time to
prepare the pairs (in memory: building every pair; streamed: the two passes over the files), the time
of the training loop itself (``trainer.train()``), training rows (cells) per second in that loop and
per CPU second of the process (the machine is shared: CPU time is steadier than wall time when the
load changes between runs), peak memory, and how much of the loop the frozen text model spent embedding
captions new to its cache (a caption is embedded once, then read from the cache). That part grows with
the corpus, not with how it is read: a corpus of 7,504 cells repeats its captions after one epoch, a
replicated one of a million cells hardly ever does, so the loops are also compared without it. The
target: the streamed 1M-cell run under 4 GiB and within 20% of the in-memory path's cells/s. Run
(takes a while on 2 shared cores; preparing 1M cells reads the files twice)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_stream.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


def replicate_corpus(manifest: Path, folder: Path, cells: int, block: int = 20_000) -> tuple[Path, int]:
    """Write every dataset of ``manifest`` replicated into ``folder`` (one backed .h5ad each) and a
    manifest for them; returns (manifest, cells). Files from an earlier run with the same spec are kept."""
    import anndata as ad
    import h5py
    import pandas as pd
    import scipy.sparse as sp
    from anndata.io import sparse_dataset, write_elem

    table = pd.read_csv(manifest, skipinitialspace=True, keep_default_na=False)
    sources = [(row, ad.read_h5ad(manifest.parent / row["path"])) for _, row in table.iterrows()]
    per_copy = sum(a.n_obs for _, a in sources)
    copies = -(-cells // per_copy)
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"manifest": str(manifest), "copies": copies, "version": 1}
    out_manifest = folder / "corpus.csv"
    spec_file = folder / "spec.json"
    if spec_file.exists() and json.loads(spec_file.read_text()) == spec and out_manifest.exists():
        return out_manifest, copies * per_copy
    spec_file.unlink(missing_ok=True)
    rows = []
    for row, adata in sources:
        name = row["dataset"]
        path = folder / f"{name}.h5ad"
        obs = pd.concat([adata.obs] * copies)
        obs.index = [f"{cell}-r{k}" for k in range(copies) for cell in adata.obs_names]
        x = sp.csr_matrix(adata.X, dtype=np.float32)
        with h5py.File(path, "w") as fh:
            fh.attrs["encoding-type"], fh.attrs["encoding-version"] = "anndata", "0.1.0"
            write_elem(fh, "obs", obs)
            write_elem(fh, "var", adata.var)
            per_block = max(1, block // adata.n_obs)
            write_elem(fh, "X", sp.vstack([x] * min(per_block, copies), format="csr"))
            matrix = sparse_dataset(fh["X"])
            for start in range(per_block, copies, per_block):
                matrix.append(sp.vstack([x] * min(per_block, copies - start), format="csr"))
            for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
                write_elem(fh, key, {})
        rows.append({**row.to_dict(), "path": path.name})
    pd.DataFrame(rows).to_csv(out_manifest, index=False)
    spec_file.write_text(json.dumps(spec))
    return out_manifest, copies * per_copy


def child(mode: str, manifest: Path, args: argparse.Namespace) -> dict:
    """One timed training run (in its own process, so that its peak memory is its own)."""
    from sentence_transformers import SentenceTransformerTrainer

    from mmgene.align import CorpusTrainingConfig, TrainingConfig, train_corpus
    from mmgene.align.modules.text_input import TextInput
    from mmgene.align.stream_train import train_stream
    from mmgene.corpus import CorpusOptions, read_corpus
    from mmgene.pairs.stream_config import StreamConfig

    loops: list[tuple[float, float]] = []
    texts = {"s": 0.0, "new": 0}
    train, embed = SentenceTransformerTrainer.train, TextInput._embed_cached

    def timed(self, *a, **k):
        t, cpu = time.perf_counter(), time.process_time()
        out = train(self, *a, **k)
        loops.append((time.perf_counter() - t, time.process_time() - cpu))
        return out

    def counted(self, batch):
        t, before = time.perf_counter(), len(self._cache)
        out = embed(self, batch)
        texts["s"] += time.perf_counter() - t
        texts["new"] += len(self._cache) - before
        return out

    SentenceTransformerTrainer.train, TextInput._embed_cached = timed, counted
    training = TrainingConfig(
        max_steps=args.steps, batch_size=args.batch_size, eval_steps=args.steps + 1, seed=args.seed, hard_negatives=0
    )
    t0 = time.perf_counter()
    corpus = read_corpus(manifest, CorpusOptions(backed=mode != "memory"))
    read_s = time.perf_counter() - t0
    cells = sum(ds.adata.n_obs for ds in corpus)
    t, cpu = time.perf_counter(), time.process_time()
    if mode == "memory":
        model = train_corpus(corpus, training=training, balance=CorpusTrainingConfig(members=1))
    else:
        model = train_stream(corpus, training=training, stream=StreamConfig(chunk_size=args.chunk_size, eval_cells=0))
    total_s, total_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    loop_s, loop_cpu_s = sum(w for w, _ in loops), sum(c for _, c in loops)
    rows = args.steps * args.batch_size
    return {
        "mode": mode, "cells": int(cells), "read_corpus_s": round(read_s, 1), "total_s": round(total_s, 1),
        "prepare_s": round(model.meta["stream"]["prepare_seconds"], 1) if "stream" in model.meta else None,
        "loop_s": round(loop_s, 1), "loop_cpu_s": round(loop_cpu_s, 1), "rows": rows, "cells_per_s": round(rows / loop_s, 1),
        "cells_per_cpu_s": round(rows / loop_cpu_s, 1), "outside_loop_cpu_s": round(total_cpu_s - loop_cpu_s, 1),
        "new_texts": texts["new"], "text_s": round(texts["s"], 1), "cells_per_s_without_text": round(rows / (loop_s - texts["s"]), 1),
        "end_to_end_cells_per_s": round(rows / (read_s + total_s), 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "vocab": model.meta["run"]["vocab_size"], "rows_per_epoch": int(model.meta["balance"]["rows_per_dataset"]) * len(corpus),
    }


def run_child(mode: str, manifest: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--manifest", str(manifest), "--steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size), "--seed", str(args.seed)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"bench_stream: the {mode} run failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000, help="cells of the streamed corpus (at least)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/mmgene-bench-stream"), help="where the replicated files are written")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--chunk-size", type=int, default=2048, help="cells read from disk at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="memory,stream-small,stream", help="which runs, comma-separated")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.manifest, args)))
        return {}

    from mmgene.data import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        sys.exit("bench_stream: ../shared/data not found")
    small = shared / "corpus" / "corpus.csv"
    print(f"machine: {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; {args.steps} steps of {args.batch_size} rows")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results: dict = {"steps": args.steps, "batch_size": args.batch_size, "chunk_size": args.chunk_size, "runs": []}
    for mode in modes:
        manifest = small
        if mode == "stream":
            t = time.perf_counter()
            manifest, cells = replicate_corpus(small, args.dir, args.cells)
            size = sum(p.stat().st_size for p in args.dir.glob("*.h5ad"))
            print(f"corpus: {cells:,} cells in {len(list(args.dir.glob('*.h5ad')))} backed files, {size / 1e9:.1f} GB "
                  f"({time.perf_counter() - t:.0f} s to write or find)")
        row = run_child(mode, manifest, args)
        results["runs"].append(row)
        prepare = f"pairs prepared in {row['prepare_s']:.0f} s" if row["prepare_s"] is not None else "pairs built in memory"
        print(f"{mode}: {row['cells']:,} cells; {prepare}; training loop {row['loop_s']:.1f} s = {row['cells_per_s']:,.1f} cells/s "
              f"({row['loop_cpu_s']:.1f} CPU s = {row['cells_per_cpu_s']:,.1f} cells per CPU second); whole run "
              f"{row['read_corpus_s'] + row['total_s']:.0f} s; peak memory {row['peak_rss_gb']:.2f} GB; {row['new_texts']:,} new "
              f"captions embedded in {row['text_s']:.1f} s of the loop ({row['cells_per_s_without_text']:,.1f} cells/s without them)")
    by = {r["mode"]: r for r in results["runs"]}
    if "memory" in by:
        for mode in ("stream-small", "stream"):
            if mode in by:
                ratio = by[mode]["cells_per_s"] / by["memory"]["cells_per_s"]
                cpu_ratio = by[mode]["cells_per_cpu_s"] / by["memory"]["cells_per_cpu_s"]
                bare = by[mode]["cells_per_s_without_text"] / by["memory"]["cells_per_s_without_text"]
                results[f"{mode}_vs_memory"] = {"wall": round(ratio, 3), "cpu": round(cpu_ratio, 3), "without_text": round(bare, 3)}
                print(f"{mode} cells/s = {ratio:.2f} x in-memory (per CPU second: {cpu_ratio:.2f} x; the machine is shared, so wall "
                      f"time varies with its load; without embedding new captions: {bare:.2f} x)")
    print()
    print("| run | cells | prepare s | loop s (CPU s) | cells/s | cells per CPU s | new captions (s) | cells/s without them | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        print(f"| {r['mode']} | {r['cells']:,} | {r['prepare_s'] if r['prepare_s'] is not None else '-'} | {r['loop_s']} ({r['loop_cpu_s']}) | "
              f"{r['cells_per_s']:,.1f} | {r['cells_per_cpu_s']:,.1f} | {r['new_texts']:,} ({r['text_s']}) | {r['cells_per_s_without_text']:,.1f} | "
              f"{r['peak_rss_gb']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
