"""Publishing and fetching AnnData chunks: mmgene against pooch, and a dry-run publish of PBMC 3k.

Part 1 (reference: ``pooch.retrieve`` with ``known_hash``): download one file from a loopback HTTP
server, verified by sha256, first cleanly, then with the connection dropped halfway through the first
attempt. mmgene resumes with ``Range`` from the bytes it has; pooch (retried once) starts over. Prints
the best time of each and the mmgene/pooch ratios. (The server logs the injected drop to stderr.)

Part 2: ``mmgene publish pbmc3k.h5ad --layout pairs --dry-run`` stage by stage (needs ../shared/data).

    .venv/bin/python benchmarks/bench_hub.py [--mb 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def bench_fetch(mb: int, repeats: int) -> None:
    import pooch

    pooch.get_logger().setLevel("WARNING")
    from servers.http_folder_server import FolderServer

    from mmgene.hub.download import fetch

    tmp = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    data = os.urandom(mb * 1024 * 1024)
    sha = hashlib.sha256(data).hexdigest()
    (tmp / "www").mkdir()
    (tmp / "www" / "chunk.h5ad").write_bytes(data)
    rows = []
    with FolderServer(tmp / "www") as server:
        url = f"{server.url}/chunk.h5ad"
        for fault in (None, "truncate"):
            for tool in ("mmgene", "pooch"):
                times = []
                for r in range(repeats):
                    cache = tmp / f"cache-{tool}-{fault}-{r}"
                    if fault:
                        server.faults["chunk.h5ad"] = [fault]
                    start = time.perf_counter()
                    if tool == "mmgene":
                        fetch(url, sha, cache_dir=cache, backoff=0)
                    else:
                        pooch.retrieve(url, known_hash=f"sha256:{sha}", path=cache, progressbar=False,
                                       downloader=_pooch_with_retry(pooch))
                    times.append(time.perf_counter() - start)
                server.faults.pop("chunk.h5ad", None)
                rows.append((fault or "clean", tool, min(times)))
    print(f"\nfetch one {mb} MiB file over loopback HTTP, sha256-verified (best of {repeats})")
    print(f"{'case':<10} {'tool':<8} {'seconds':>8}")
    for case, tool, t in rows:
        print(f"{case:<10} {tool:<8} {t:8.3f}")
    by = {(c, t): s for c, t, s in rows}
    for case in ("clean", "truncate"):
        print(f"{case}: mmgene/pooch time ratio = {by[(case, 'mmgene')] / by[(case, 'pooch')]:.2f}")


def _pooch_with_retry(pooch):
    """pooch has no retry in ``retrieve``; retry the whole download once, as a user would."""
    base = pooch.HTTPDownloader(progressbar=False)

    def download(url, output_file, pooch_obj, check_only=False):
        try:
            return base(url, output_file, pooch_obj, check_only=check_only)
        except Exception:  # noqa: BLE001 - the dropped connection
            return base(url, output_file, pooch_obj, check_only=check_only)

    return download


def bench_publish() -> None:
    from mmgene.data import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        print("\n(part 2 skipped: ../shared/data/pbmc3k.h5ad not found)")
        return
    import mmgene.cells
    import mmgene.io
    from mmgene.hub.chunks import write_chunks
    from mmgene.hub.publishing import publish

    out = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    t0 = time.perf_counter()
    adata = mmgene.io.read(shared / "pbmc3k.h5ad")
    t1 = time.perf_counter()
    mmgene.cells.sentences(adata, top_k=100, inplace=False)
    t2 = time.perf_counter()
    write_chunks(adata, out / "only-chunks", chunk_size=1000)
    t3 = time.perf_counter()
    result = publish(shared / "pbmc3k.h5ad", "me/pbmc3k", layout="pairs", label_key="cell_type", dry_run=True,
                     out=out / "dry-run", chunk_size=1000, top_k=100)
    t4 = time.perf_counter()
    rows = sum(len(d) for d in result.dataset.values())
    print(f"\nmmgene publish pbmc3k.h5ad --layout pairs --dry-run ({adata.n_obs} cells, {rows} rows, "
          f"{len(result.chunks)} chunk files)")
    print(f"read {t1 - t0:.2f} s | cell sentences {t2 - t1:.2f} s | chunk files {t3 - t2:.2f} s | "
          f"whole publish (all stages) {t4 - t3:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bench_fetch(args.mb, args.repeats)
    bench_publish()


if __name__ == "__main__":
    main()
