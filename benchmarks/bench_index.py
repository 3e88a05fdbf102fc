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

``--scale`` measures the atlas-scale path instead (:func:`mmgene.index.build_streamed`): 10,000,000
synthetic vectors of dimension 256 written chunk by chunk to ``.npy`` shards under ``--dir`` (about
10 GB; the free disk is checked first and the largest size that fits is used, and said, when it is
short), an IVF-PQ index built from them in a stream (lists on disk), and queries with exact
re-ranking from the memory-mapped shards. It prints the peak memory of the process, bytes per vector
on disk, build time, queries/s and recall@10 against exact search (a chunked pass over the shards)
on a sample of queries::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_index.py --scale

The vectors form a mixture of ``--clusters`` cell types, each a centre plus variation along 8
directions of its own and a little isotropic noise (a low intrinsic dimension, as embeddings of cells
have); queries are further draws, never indexed.
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


class Mixture:
    """Synthetic cells: ``clusters`` centres, each with 8 directions of its own spread, plus noise."""

    def __init__(self, dim: int, clusters: int, seed: int, spread: float = 0.35, noise: float = 0.08) -> None:
        rng = np.random.default_rng(seed)
        self.centres = rng.standard_normal((clusters, dim), dtype=np.float32) / np.sqrt(dim)
        self.bases = rng.standard_normal((clusters, 8, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        self.noise = noise / np.sqrt(dim)
        self.seed = seed

    def draw(self, n: int, stream: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, stream])
        k = rng.integers(0, len(self.centres), n)
        z = rng.standard_normal((n, 8), dtype=np.float32)
        x = self.centres[k]
        for j in range(8):  # one direction at a time: no (n, 8, dim) temporary
            x += z[:, j : j + 1] * self.bases[k, j]
        x += rng.standard_normal(x.shape, dtype=np.float32) * self.noise
        return x


def write_shards(folder: Path, n: int, dim: int, shards: int, mixture: Mixture, chunk: int = 50_000) -> list[Path]:
    """``n`` vectors in ``shards`` .npy files, written chunk by chunk (header, then rows appended)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"n": n, "dim": dim, "shards": shards, "seed": mixture.seed, "clusters": len(mixture.centres), "generator": 2}
    paths = [folder / f"vectors_{i:03d}.npy" for i in range(shards)]
    spec_file = folder / "spec.json"
    if spec_file.exists() and json.loads(spec_file.read_text()) == spec and all(p.exists() for p in paths):
        return paths
    spec_file.unlink(missing_ok=True)
    bounds = np.linspace(0, n, shards + 1).astype(np.int64)
    stream = 0
    for path, a, b in zip(paths, bounds[:-1], bounds[1:]):
        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (int(b - a), dim)})
            for start in range(a, b, chunk):
                fh.write(mixture.draw(min(chunk, b - start), stream).astype("<f4").tobytes())
                stream += 1
    spec_file.write_text(json.dumps(spec))
    return paths


def exact_top_k(source, queries: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """Exact cosine top-k of unit ``queries`` over every vector of ``source``, chunk by chunk."""
    import faiss

    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    for start, x, _ in source.chunks(chunk):
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        d, i = faiss.knn(queries, x, k, metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(d, i + start)
    heap.finalize()
    return heap.I


def scale(args: argparse.Namespace) -> dict:
    """The ``--scale`` benchmark (see the module docstring)."""
    import shutil

    import faiss

    from mmgene.index import NpyShards, StreamBuild, build_streamed
    from mmgene.index.faiss_index import recall_at_k

    faiss.omp_set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    folder = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    n, dim = args.n, args.dim
    free = shutil.disk_usage(folder).free
    have = sum(p.stat().st_size for p in folder.glob("vectors_*.npy"))
    per_vector = dim * 4 + args.pq_m + 8 + 40  # vectors, codes + id, cell table and block files (generous)
    if n * per_vector > free + have:
        fits = int((free + have) * 0.9 // per_vector) // 1_000_000 * 1_000_000
        print(f"disk: {free / 1e9:.1f} GB free under {folder}, {n:,} vectors need {n * per_vector / 1e9:.1f} GB: "
              f"running {fits:,} vectors instead (the largest round size that fits)")
        n = fits
    else:
        print(f"disk: {free / 1e9:.1f} GB free under {folder}; {n:,} x {dim} float32 vectors need {n * dim * 4 / 1e9:.1f} GB")
    t = time.perf_counter()
    mixture = Mixture(dim, args.clusters, args.seed)
    paths = write_shards(folder / "vectors", n, dim, args.shards, mixture)
    print(f"vectors: {n:,} x {dim} in {len(paths)} .npy files ({time.perf_counter() - t:.0f} s to write or find)")
    source = NpyShards(paths)
    out = folder / "index"
    t = time.perf_counter()
    index = build_streamed(
        source, out, kind="ivfpq", nlist=args.nlist, pq_m=args.pq_m, seed=args.seed, overwrite=True,
        config=StreamBuild(chunk_size=args.chunk, rerank_candidates=args.candidates),
    )
    build_s = time.perf_counter() - t
    peak_build = peak_rss_gb()
    sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    index_bytes = sizes["index.ivfdata"] + sizes["index.faiss"]
    print(f"build: {build_s:.0f} s ({index.meta['factory']}, {index.params.train_size:,} training vectors); "
          f"peak memory so far {peak_build:.2f} GB; calibrated {index.params.calibrated.get('parameter')}="
          f"{index.params.calibrated.get('value')} (recall@10 {index.params.calibrated.get('recall')} with re-ranking)")
    print(f"disk: index.ivfdata {sizes['index.ivfdata'] / n:.1f} B/vector (codes {args.pq_m} B + id 8 B), index.faiss "
          f"{sizes['index.faiss'] / 1e6:.1f} MB, so {index_bytes / n:.1f} B/vector; cell ids (cells.parquet) {sizes['cells.parquet'] / n:.1f} B/vector")
    queries = mixture.draw(args.queries, 10**9)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    t = time.perf_counter()
    truth = exact_top_k(source, queries[: args.recall_queries], args.k, args.chunk)
    exact_s = time.perf_counter() - t
    results = {"n": n, "dim": dim, "factory": index.meta["factory"], "nprobe": index.params.nprobe, "build_s": round(build_s, 1),
               "index_bytes_per_vector": round(index_bytes / n, 2), "ids_bytes_per_vector": round(sizes["cells.parquet"] / n, 2),
               "exact_search_s": round(exact_s, 1), "searches": []}
    for rerank in (True, False):
        index.search(queries[:10], args.k, rerank=rerank)  # warm up
        t = time.perf_counter()
        _, found = index.search(queries, args.k, rerank=rerank)
        qps = len(queries) / (time.perf_counter() - t)
        recall = recall_at_k(found[: args.recall_queries], truth)
        label = f"re-ranked ({args.candidates}x{args.k} candidates)" if rerank else "PQ codes only"
        results["searches"].append({"rerank": rerank, "qps": round(qps, 1), "recall_at_k": round(recall, 4)})
        print(f"search, {label}: {qps:,.0f} queries/s (batch of {len(queries)}, nprobe={index.params.nprobe}), "
              f"recall@{args.k} {recall:.3f} against exact search on {args.recall_queries} queries ({exact_s:.0f} s)")
    results["peak_rss_gb"] = round(peak_rss_gb(), 2)
    print(f"peak memory of the run (ru_maxrss): {results['peak_rss_gb']:.2f} GB")
    if not args.keep:
        shutil.rmtree(out)
    return results


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
    scale_args = parser.add_argument_group("--scale: a streamed build at atlas scale")
    scale_args.add_argument("--scale", action="store_true", help="run the streamed-build benchmark (default 10,000,000 vectors)")
    scale_args.add_argument("--dir", type=Path, default=Path("/tmp/mmgene-bench-scale"), help="where vectors and index are written")
    scale_args.add_argument("--shards", type=int, default=10, help=".npy files the vectors are split into")
    scale_args.add_argument("--clusters", type=int, default=4096)
    scale_args.add_argument("--nlist", type=int, default=1024, help="inverted lists (a flat coarse quantiser: fewer lists add faster on few cores)")
    scale_args.add_argument("--pq-m", dest="pq_m", type=int, default=32, help="bytes of PQ code a vector")
    scale_args.add_argument("--candidates", type=int, default=10, help="re-ranked candidates per neighbour asked for")
    scale_args.add_argument("--chunk", type=int, default=100_000, help="vectors read at once")
    scale_args.add_argument("--recall-queries", dest="recall_queries", type=int, default=200)
    scale_args.add_argument("--keep", action="store_true", help="keep the index folder (the vectors are always kept for reruns)")
    args = parser.parse_args(argv)
    if args.scale:
        if "--n" not in (argv if argv is not None else sys.argv):
            args.n = 10_000_000
        results = scale(args)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return results

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
