"""Benchmark: encoding an AnnData's cells with an aligned model, mmgene against its previous path.

PBMC 3k (real 10x counts; scanpy's pbmc68k_reduced without ``../shared``) is stacked to ``--cells``
cells. A fresh two-tower model over its genes (random weights: the cost of encoding does not depend on
them; no gene-text bridge, which only the text side reads) encodes them three ways in one process,
each from the AnnData to the vectors:

- ``reference``: mmgene's previous path: the omics tower's inputs as lists (``cell_inputs``) with each
  cell's top 256 genes chosen by a lexsort of the chunk, then ``SentenceTransformer.encode(cells,
  task="cell")`` with the gene bag computed as a gather of every gene's embedding, weighted and summed
  (``(w[..., None] * E[ids]).sum(1)``);
- ``st.encode``: the inputs as lists, then the plain sentence-transformers call, with this version's
  top genes and gene bag (``F.embedding_bag``): what a user of the plain API gets;
- ``mmgene``: ``AlignedModel.encode_cells``, which also builds the inputs as arrays and hands them on
  as arrays (sentence-transformers' length estimate walks a list element by element).

All three must agree to 1e-5. Prints cells/s (wall and CPU) and the ratios; the last line,
``SUMMARY bench-encode ...``, collects them. Run: ``python benchmarks/bench_encode.py --cells 50000``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MMGENE_QUIET", "1")

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

import mmgene.cells.inputs  # noqa: E402
import mmgene.data  # noqa: E402
import mmgene.io  # noqa: E402
from mmgene.align.model import AlignedModel, build_model  # noqa: E402
from mmgene.align.modules.gene_table import GeneTable  # noqa: E402
from mmgene.cells.inputs import cell_inputs  # noqa: E402
from mmgene.cells.ranking import lexsort_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pbmc3k.h5ad"


def data(path: Path, n_cells: int) -> ad.AnnData:
    """``path`` (or pbmc68k_reduced when it is missing) stacked to ``n_cells`` cells."""
    base = mmgene.io.read(path) if path.exists() else mmgene.data.pbmc68k()
    reps = -(-n_cells // base.n_obs)
    return ad.concat({str(k): base for k in range(reps)}, index_unique="-")[:n_cells].copy()


def gathered_bag(self: GeneTable, ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The reference gene bag: every gene's embedding gathered, weighted and summed."""
    return (weight.unsqueeze(-1) * self.embedding(ids)).sum(1)


def lexsorted_top_genes(block: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The reference choice of each row's ``k`` largest entries: one lexsort of the chunk."""
    block = block.tocsr()
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    order = lexsort_rows(block.indptr, block.data, block.indices)
    rank = np.arange(order.size) - np.repeat(block.indptr[:-1], np.diff(block.indptr))
    keep = order[rank < k]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=block.shape[0]))])
    return sp.csr_matrix((block.data[keep], block.indices[keep], indptr), shape=block.shape)


def timed(fn, repeats: int = 2) -> tuple[np.ndarray, float, float]:
    """The output and the best (wall, CPU) seconds of ``repeats`` runs."""
    best: tuple[float, float] | None = None
    out = None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        clock = (time.perf_counter() - t, time.process_time() - c)
        best = clock if best is None or clock[0] < best[0] else best
    assert best is not None
    return np.asarray(out, dtype=np.float32), best[0], best[1]


def setup(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, ad.AnnData, list[str]]:
    """The parsed arguments (with ``--cells``, ``--data`` and ``--threads`` added), the stacked cells
    and the genes a fresh model over them reads (each cell's top 256)."""
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    adata = data(args.data, args.cells)
    vocab = sorted({g for c in cell_inputs(adata, ["genes"], max_genes=256) for g in c["genes"]})
    return args, adata, vocab


def main() -> None:
    args, adata, vocab = setup(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    model = AlignedModel(build_model(vocab, max_genes=256), ["genes"])
    print(f"{adata.n_obs:,} cells, {len(vocab):,} genes in the vocabulary, {args.threads} thread(s)")

    def plain() -> np.ndarray:
        cells = cell_inputs(adata, ["genes"], max_genes=256)
        return model.st.encode(cells, task="cell", batch_size=256, convert_to_numpy=True, show_progress_bar=False)

    ours = GeneTable._bag, mmgene.cells.inputs.top_genes
    GeneTable._bag, mmgene.cells.inputs.top_genes = gathered_bag, lexsorted_top_genes
    try:
        ref, ref_wall, ref_cpu = timed(plain)
    finally:
        GeneTable._bag, mmgene.cells.inputs.top_genes = ours
    st_out, st_wall, st_cpu = timed(plain)
    mm_out, mm_wall, mm_cpu = timed(lambda: model.encode_cells(adata))
    for name, out in (("st.encode", st_out), ("mmgene", mm_out)):
        diff = float(np.abs(out - ref).max())
        assert diff < 1e-5, f"{name} differs from the reference by {diff}"
    n = adata.n_obs
    ratios = {}
    for name, wall, cpu in (("reference", ref_wall, ref_cpu), ("st.encode", st_wall, st_cpu), ("mmgene", mm_wall, mm_cpu)):
        ratios[name] = ref_wall / wall
        print(f"  {name:<10}{n / wall:>9,.0f} cells/s wall ({wall:6.1f} s) {n / cpu:>9,.0f} cells/s CPU   x{ref_wall / wall:.2f} wall, x{ref_cpu / cpu:.2f} CPU")
    print(f"  largest difference to the reference: {max(float(np.abs(o - ref).max()) for o in (st_out, mm_out)):.1e}")
    print(f"\nSUMMARY bench-encode cells={n} st_encode={ratios['st.encode']:.2f} mmgene={ratios['mmgene']:.2f}")


if __name__ == "__main__":
    main()
