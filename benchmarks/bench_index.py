"""Benchmark: mmgene's FAISS CellIndex against NumPy brute-force search (what mmcontext does), one run.

Data: 1,000,000 vectors of dimension 256 drawn around real PBMC embeddings. PBMC 3k counts are
normalised (1e4 per cell) and log1p-transformed, the 2,000 most variable genes are reduced to 256
principal components (sklearn, exact SVD), and each synthetic cell is

    c_i + u * (c_j - c_i) + noise,    j one of the 15 nearest neighbours of real cell i, u ~ U(0, 1),

with Gaussian noise whose per-component scale is ``--noise`` times the spread of real
neighbour-to-neighbour differences, so the points fill the manifold between real cells rather
than a uniform cloud. Queries are 1,000 further cells drawn the same way (never indexed).

Baseline: mmcontext's ``OmicsQueryAnnotator.query_with_text`` scores text queries by one dense
product ``query_emb @ data_emb.T`` over all cells (then stores every score per cell in Python
dicts). Here the same product runs per batch of 100 queries on unit vectors, followed by a
vectorised top-k (``np.argpartition`` + sort), which is a faster version of that exact search.
Recall@k of the index is measured against it.

Run (takes a few minutes on 2 cores)::

    OMP_NUM_THREADS=2 python benchmarks/bench_index.py
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "2")

import json  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def rss_gb() -> float:
    """Resident memory of this process now (GB)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    return float("nan")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def pbmc_pca(path: Path, n_components: int, seed: int) -> np.ndarray:
    """PCA of normalise-total + log1p PBMC 3k over the 2,000 most variable genes."""
    import scipy.sparse as sp
    from sklearn.decomposition import PCA

    import mmgene.io

    adata = mmgene.io.read(path)
    x = sp.csr_matrix(mmgene.io.expression(adata).matrix, dtype=np.float32)
    x = sp.csr_matrix(sp.diags(1e4 / np.asarray(x.sum(axis=1)).ravel()) @ x)
    x.data = np.log1p(x.data)
    mean = np.asarray(x.mean(axis=0)).ravel()
    var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
    top = np.sort(np.argsort(-var, kind="stable")[:2000])
    return PCA(n_components, svd_solver="full", random_state=seed).fit_transform(x[:, top].toarray()).astype(np.float32)


class Generator:
    """Draw synthetic cells between real cells and their neighbours, plus data-scaled Gaussian noise."""

    def __init__(self, cells: np.ndarray, noise: float, n_neighbours: int = 15) -> None:
        unit = cells / np.linalg.norm(cells, axis=1, keepdims=True)
        sims = unit @ unit.T
        np.fill_diagonal(sims, -np.inf)
        self.neighbours = np.argsort(-sims, axis=1)[:, :n_neighbours]
        diffs = cells[:, None, :] - cells[self.neighbours]
        self.scale = (noise * diffs.reshape(-1, cells.shape[1]).std(axis=0)).astype(np.float32)
        self.cells = cells

    def draw(self, n: int, seed: int, chunk: int = 100_000) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.cells.shape[1]), np.float32)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            i = rng.integers(0, len(self.cells), m)
            j = self.neighbours[i, rng.integers(0, self.neighbours.shape[1], m)]
            u = rng.random((m, 1), dtype=np.float32)
            block = self.cells[i] + u * (self.cells[j] - self.cells[i])
            block += rng.standard_normal((m, self.cells.shape[1]), dtype=np.float32) * self.scale
            out[start : start + m] = block
        return out


def numpy_brute_force(db: np.ndarray, queries: np.ndarray, k: int, batch: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k with NumPy (db and queries are unit rows)."""
    scores = np.empty((len(queries), k), np.float32)
    ids = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), batch):
        sims = queries[start : start + batch] @ db.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        ids[start : start + batch] = np.take_along_axis(part, order, axis=1)
        scores[start : start + batch] = np.take_along_axis(part_scores, order, axis=1)
    return scores, ids


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="indexed vectors")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--noise", type=float, default=1.0, help="noise scale, in units of real neighbour differences")
    parser.add_argument("--kinds", default="auto", help="comma-separated index kinds to time (auto, ivf, hnsw, ivfpq, flat)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None, help="pbmc3k.h5ad (default: ../shared/data)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)

    import faiss

    from mmgene.data import shared_data_dir
    from mmgene.index import CellIndex
    from mmgene.index.faiss_index import recall_at_k

    data = args.data or (shared_data_dir() or Path("missing")) / "pbmc3k.h5ad"
    if not data.exists():
        sys.exit(f"bench_index: {data} not found; pass --data pbmc3k.h5ad")
    threads = int(os.environ["OMP_NUM_THREADS"])
    faiss.omp_set_num_threads(threads)
    print(f"machine: {os.cpu_count()} CPUs, OMP_NUM_THREADS={threads}, faiss {faiss.__version__}, numpy {np.__version__}")

    t = time.perf_counter()
    cells = pbmc_pca(data, args.dim, args.seed)
    gen = Generator(cells, args.noise)
    db = gen.draw(args.n, args.seed)
    queries = gen.draw(args.queries, args.seed + 1)
    print(f"data: {len(cells)} PBMC 3k cells -> PCA-{args.dim}; {args.n:,} indexed + {args.queries:,} query vectors "
          f"drawn around them (noise {args.noise}) in {time.perf_counter() - t:.1f} s")

    # NumPy brute force (exact): unit rows, one matrix product per batch of queries
    t = time.perf_counter()
    db_unit = db / np.linalg.norm(db, axis=1, keepdims=True)
    q_unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    norm_s = time.perf_counter() - t
    t = time.perf_counter()
    truth_scores, truth = numpy_brute_force(db_unit, q_unit, args.k)
    numpy_s = time.perf_counter() - t
    numpy_qps = args.queries / numpy_s
    print(f"numpy brute force: {numpy_qps:,.1f} queries/s ({numpy_s:.2f} s for {args.queries} queries, k={args.k}; "
          f"normalising the vectors {norm_s:.2f} s; vectors {db_unit.nbytes / 1e9:.2f} GB)")
    del db_unit

    results = {"n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k, "threads": threads,
               "numpy_qps": round(numpy_qps, 2), "indexes": []}
    for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
        rss0 = rss_gb()
        t = time.perf_counter()
        index = CellIndex.from_vectors(db, kind=kind, seed=args.seed)
        total_s = time.perf_counter() - t
        rss_index = rss_gb() - rss0
        build_s = index.meta["build_seconds"]
        cal = index.params.calibrated
        index.search(q_unit[:10], args.k)  # warm up
        t = time.perf_counter()
        _, found = index.search(q_unit, args.k)
        search_s = time.perf_counter() - t
        qps = args.queries / search_s
        t = time.perf_counter()
        for q in q_unit[:200]:
            index.search(q[None, :], args.k)
        single_qps = 200 / (time.perf_counter() - t)
        recall = recall_at_k(found, truth)
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
            t = time.perf_counter()
            index.save(Path(tmp) / "idx")
            save_s = time.perf_counter() - t
            disk = sum(p.stat().st_size for p in (Path(tmp) / "idx").iterdir())
            t = time.perf_counter()
            loaded = CellIndex.load(Path(tmp) / "idx", mmap=True)
            load_s = time.perf_counter() - t
            _, again = loaded.search(q_unit, args.k)
            same = bool((again == found).all())
            del loaded
        row = {
            "kind": index.kind, "factory": index.meta["factory"], "build_s": round(build_s, 2),
            "calibration_s": round(total_s - build_s, 2), "search_param": cal.get("parameter"), "search_value": cal.get("value"),
            "calibrated_recall": cal.get("recall"), "recall_at_k": round(recall, 4), "qps": round(qps, 1),
            "single_query_qps": round(single_qps, 1), "speedup_vs_numpy": round(qps / numpy_qps, 1),
            "index_memory_gb": round(rss_index, 2), "disk_gb": round(disk / 1e9, 3), "save_s": round(save_s, 2),
            "mmap_load_s": round(load_s, 3), "mmap_results_identical": same,
        }
        results["indexes"].append(row)
        print(f"{index.meta['factory']}: build {build_s:.1f} s (+ calibration {total_s - build_s:.1f} s: "
              f"{cal.get('parameter')}={cal.get('value')}, recall {cal.get('recall')}), index memory {rss_index:.2f} GB, "
              f"disk {disk / 1e9:.2f} GB, mmap load {load_s:.3f} s")
        print(f"  recall@{args.k} vs exact {recall:.4f}; {qps:,.0f} queries/s batched = {qps / numpy_qps:.1f}x numpy; "
              f"{single_qps:,.0f} queries/s one at a time; results after save+mmap load identical: {same}")
        del index
    results["peak_rss_gb"] = round(peak_rss_gb(), 2)
    print(f"peak memory of the run: {results['peak_rss_gb']:.2f} GB")
    print()
    print(f"| index | recall@{args.k} | queries/s | vs NumPy | build s | memory GB |")
    print("|---|---|---|---|---|---|")
    print(f"| NumPy brute force (exact) | 1.000 | {numpy_qps:,.1f} | 1.0x | - | {args.n * args.dim * 4 / 1e9:.2f} |")
    for row in results["indexes"]:
        print(f"| {row['factory']} ({row['search_param']}={row['search_value']}) | {row['recall_at_k']:.3f} | {row['qps']:,.0f} | "
              f"{row['speedup_vs_numpy']:.1f}x | {row['build_s'] + row['calibration_s']:.1f} | {row['index_memory_gb']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
