"""Length-sorted against unsorted batching for Geneformer embeddings on PBMC 3k.

Geneformer pads each batch to its longest cell. mmgene sorts cells by length first (as Geneformer's
EmbExtractor does), so a batch holds cells of similar length and little compute goes to padding; the
reference is the same batches taken in file order. Both must give the same vectors (the attention
mask hides the padding); this script checks that and prints cells/s for each and the speed-up.

The model is randomly initialised with Geneformer V1-10M's shape (6 layers, hidden 256, 4 heads,
FFN 512, the real V1 vocabulary of 25,426 tokens, 2,048 positions, ReLU): the weights do not change
the cost. ``--small`` uses 3 layers of width 64 instead; ``--model`` takes a real checkpoint.

    python benchmarks/bench_geneformer.py --device cpu --cells 200            # CPU: a subset
    python benchmarks/bench_geneformer.py --device cpu --small --repeats 2    # CPU: all cells, 3-layer model
    python benchmarks/bench_geneformer.py --device cuda            # all 2,638 cells

``--parallel`` measures data-parallel inference instead (:func:`mmgene.distributed.map_rows`, as
``mmgene embed geneformer`` runs under torchrun): every process embeds every N-th chunk of cells on its
own device and rank 0 gathers them in cell order. Rank 0 first embeds all cells alone for the
reference; the script prints cells/s in all and per device, the speed-up over one device, and whether
the gathered vectors are the same bits as the single run.

    torchrun --standalone --nproc_per_node 4 benchmarks/bench_geneformer.py --device cuda --parallel
    torchrun --standalone --nproc_per_node 2 benchmarks/bench_geneformer.py --device cpu --small --cells 400 --parallel
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--cells", type=int, default=None, help="evenly spaced subset of PBMC 3k (default: all 2,638)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dtype", default=None, help="float32 (default), float16, bfloat16")
    p.add_argument("--small", action="store_true", help="3 layers, hidden 64, FFN 128 (fast on CPU)")
    p.add_argument("--model", default=None, help="a real Geneformer V1 checkpoint folder instead of a random one")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=1, help="alternate sorted/unsorted runs this many times; best time of each")
    p.add_argument("--data", default=None, help="PBMC 3k .h5ad (default: ../shared/data/pbmc3k.h5ad)")
    p.add_argument("--parallel", action="store_true", help="data-parallel mode (run under torchrun; see above)")
    p.add_argument("--chunk-size", type=int, default=256, help="--parallel: cells per chunk dealt to a process")
    return p.parse_args()


def _random_model(folder: Path, small: bool) -> None:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    layers, hidden, heads, ffn = (3, 64, 4, 128) if small else (6, 256, 4, 512)
    config = BertConfig(
        vocab_size=25_426, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=ffn, max_position_embeddings=2048, hidden_act="relu", pad_token_id=0,
    )
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(folder)


def _run(module, seqs, *, batch_size, device, sort):
    import torch

    from mmgene.embed.geneformer_pool import embed_sequences

    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    X = embed_sequences(module, seqs, batch_size=batch_size, device=device, sort=sort)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return X, time.perf_counter() - t0


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _parallel(module, seqs, *, args, device, dtype, shape) -> None:
    """Data-parallel inference: the same chunks embedded by one process (rank 0), then by all ranks."""
    import numpy as np

    from mmgene import distributed
    from mmgene.embed.geneformer_pool import embed_sequences

    distributed.init()
    ranks, n = distributed.world_size(), len(seqs)

    def embed(start, stop):
        return embed_sequences(module, seqs[start:stop], batch_size=args.batch_size, device=device)

    reference, t_one = None, float("nan")
    if distributed.is_main():
        with distributed.local():  # one device alone, the same chunks
            _sync(device)
            t0 = time.perf_counter()
            reference = distributed.map_rows(n, embed, chunk_size=args.chunk_size)
            _sync(device)
            t_one = time.perf_counter() - t0
    distributed.barrier()
    t0 = time.perf_counter()
    vectors = distributed.map_rows(n, embed, chunk_size=args.chunk_size)
    _sync(device)
    distributed.barrier()
    t_all = time.perf_counter() - t0
    if not distributed.is_main():
        return
    same = bool(np.array_equal(vectors, reference, equal_nan=True))
    print(f"one device: {t_one:8.2f} s  {n / t_one:9.1f} cells/s")
    print(f"{ranks} devices: {t_all:8.2f} s  {n / t_all:9.1f} cells/s in all, {n / t_all / ranks:9.1f} per device")
    print(
        f"SUMMARY geneformer-parallel device={device.type} ranks={ranks} dtype={str(dtype).removeprefix('torch.')} "
        f"model={shape} cells={n} batch={args.batch_size} chunk={args.chunk_size} threads={args.threads} "
        f"one={n / t_one:.1f} cells/s all={n / t_all:.1f} cells/s per_device={n / t_all / ranks:.1f} cells/s "
        f"speedup={t_one / t_all:.2f}x same={'yes' if same else 'NO'}"
    )
    if not same:
        raise SystemExit("the gathered vectors differ from one process's")


def _padded_cost(lengths, batch_size, sort):
    """Positions computed (batch x longest) and attention pairs (batch x longest^2) over all batches."""
    from mmgene.embed.geneformer_pool import batch_plan

    plan = batch_plan(lengths, batch_size, sort=sort)
    return (sum(int(lengths[b].max()) * len(b) for b in plan), sum(int(lengths[b].max()) ** 2 * len(b) for b in plan))


def main() -> None:
    args = _args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import torch

    import mmgene.io
    from mmgene.cells import load_dictionaries, rank_encode
    from mmgene.data import shared_data_dir
    from mmgene.distributed import resolve_device
    from mmgene.embed.geneformer import resolve_dtype
    from mmgene.embed.geneformer_model import check_vocabulary, load_model

    from transformers.utils import logging as tlog

    tlog.disable_progress_bar()
    torch.set_num_threads(args.threads)
    shared = shared_data_dir()
    data = Path(args.data) if args.data else (shared / "pbmc3k.h5ad" if shared else None)
    if data is None or not data.exists():
        raise SystemExit("PBMC 3k not found: pass --data or set MMGENE_SHARED_DATA")
    adata = mmgene.io.read(data)
    if args.cells and args.cells < adata.n_obs:
        adata = adata[np.linspace(0, adata.n_obs - 1, args.cells).astype(int)].copy()
    dicts = load_dictionaries(shared / "geneformer_v1" if shared else None, version="V1")
    rank_encode(adata[:2].copy(), dictionaries=dicts)  # compile the numba kernels before timing
    t0 = time.perf_counter()
    enc = rank_encode(adata, dictionaries=dicts, filter_pass=False)
    t_tok = time.perf_counter() - t0
    keep = np.setdiff1d(np.arange(adata.n_obs), np.asarray(enc.empty_cells, dtype=np.int64))
    seqs = [enc.input_ids[i] for i in keep]
    lengths = np.asarray(enc.length)[keep]

    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.model) if args.model else Path(tmp) / "model"
        if not args.model:
            _random_model(folder, args.small)
        gf = load_model(folder, layer=-1)
        check_vocabulary(gf, dicts)
    module = gf.module.to(device=device, dtype=dtype)
    shape = f"{gf.n_layers}L/{gf.hidden_size}h"
    if args.parallel:
        _parallel(module, seqs, args=args, device=device, dtype=dtype, shape=shape)
        return

    _run(module, seqs[:2], batch_size=2, device=device, sort=True)  # warm-up (kernels, allocator)
    t_sorted = t_unsorted = float("inf")
    for _ in range(max(1, args.repeats)):  # alternate, so a change in machine load hits both
        X_sorted, t = _run(module, seqs, batch_size=args.batch_size, device=device, sort=True)
        t_sorted = min(t_sorted, t)
        X_unsorted, t = _run(module, seqs, batch_size=args.batch_size, device=device, sort=False)
        t_unsorted = min(t_unsorted, t)
    diff = float(np.abs(X_sorted - X_unsorted).max())
    scale = float(np.abs(X_sorted).max())
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    n = len(seqs)
    real = int(lengths.sum())
    (tok_sorted, att_sorted), (tok_unsorted, att_unsorted) = (_padded_cost(lengths, args.batch_size, s) for s in (True, False))
    pad_sorted, pad_unsorted = tok_sorted / real - 1, tok_unsorted / real - 1
    print(f"cells {n:,} (of {adata.n_obs:,}; {len(enc.empty_cells)} without vocabulary genes), tokens/cell "
          f"median {int(np.median(lengths))}, max {int(lengths.max())}; rank encoding {t_tok:.2f} s "
          f"({adata.n_obs / t_tok:,.0f} cells/s)")
    print(f"padding overhead: sorted {pad_sorted:.1%}, unsorted {pad_unsorted:.1%} of real tokens; unsorted/sorted "
          f"work: {tok_unsorted / tok_sorted:.2f}x positions, {att_unsorted / att_sorted:.2f}x attention pairs")
    print(f"sorted:   {t_sorted:8.2f} s  {n / t_sorted:9.1f} cells/s")
    print(f"unsorted: {t_unsorted:8.2f} s  {n / t_unsorted:9.1f} cells/s")
    ok = diff <= tol * max(1.0, scale)
    print(
        f"SUMMARY geneformer-bench device={device} dtype={str(dtype).removeprefix('torch.')} model={shape} "
        f"cells={n} batch={args.batch_size} threads={args.threads} sorted={n / t_sorted:.1f} cells/s (one device) "
        f"unsorted={n / t_unsorted:.1f} cells/s speedup={t_unsorted / t_sorted:.2f}x "
        f"max|diff|={diff:.2e} same={'yes' if ok else 'NO'}"
    )
    if not ok:
        raise SystemExit("sorted and unsorted batching gave different embeddings")


if __name__ == "__main__":
    main()
