"""Benchmark: mmgene's SOMA read path against tiledbsoma's ``axis_query().to_anndata``, one run.

mmgene reads a Census query (or a local SOMA experiment) on the calling thread: ``obs``, ``var`` and the
selected rows of ``X`` through the arrays' own ``read``, the CSR matrix built by scipy
(:mod:`mmgene.corpus.census`). tiledbsoma's ``to_anndata`` reads them in a thread pool and builds the
matrix with its multi-threaded ``fastercsx``; mmgene left it after it crashed a test process (a
segfault, twice; TileDB-SOMA #4437). This measures what that costs, on the same cells, in one process:

1. the whole selection at once (:func:`mmgene.corpus.census_anndata`, caps applied; the reference reads
   the same ``soma_joinid`` values with ``to_anndata``);
2. the selection streamed in chunks of ``--chunk`` cells (:class:`mmgene.corpus.soma_rows.SomaRows`
   slices, as streamed training reads them; the reference runs ``to_anndata`` per chunk).

Data: a local SOMA experiment written by ``tiledbsoma.io.from_anndata`` from ``--cells`` synthetic cells
x ``--genes`` genes (Poisson counts at ``--density``, CSR float32), Census's obs columns. Both paths'
matrices are checked equal. Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_soma_read.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _experiment(folder: Path, cells: int, genes: int, density: float, seed: int) -> str:
    import anndata
    import pandas as pd
    import scipy.sparse as sp
    import tiledbsoma.io

    rng = np.random.default_rng(seed)
    matrix = sp.random(cells, genes, density=density, format="csr", dtype=np.float32, random_state=rng)
    matrix.data = rng.poisson(3.0, matrix.nnz).astype(np.float32) + 1
    types = np.array(["B cell", "T cell", "natural killer cell", "monocyte"])[rng.integers(0, 4, cells)]
    obs = pd.DataFrame(
        {"dataset_id": "d1", "assay": "10x", "cell_type": types, "cell_type_ontology_term_id": "CL:0000000",
         "tissue_general": "blood", "donor_id": "x"},
        index=[f"c{i}" for i in range(cells)],
    )
    names = [f"GENE{j}" for j in range(genes)]
    uri = str(folder / "experiment")
    tiledbsoma.io.from_anndata(uri, anndata.AnnData(matrix, obs=obs, var=pd.DataFrame({"feature_name": names}, index=names)), measurement_name="RNA")
    return uri


def _reference(uri: str, joinids: np.ndarray):
    import tiledbsoma

    with tiledbsoma.Experiment.open(uri) as exp, exp.axis_query("RNA", obs_query=tiledbsoma.AxisQuery(coords=(joinids,))) as query:
        return query.to_anndata(X_name="data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=60_000)
    parser.add_argument("--genes", type=int, default=5_000)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from mmgene.corpus import CensusQuery
    from mmgene.corpus.census import census_anndata
    from mmgene.corpus.soma_rows import SomaRows

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        uri = _experiment(Path(tmp), args.cells, args.genes, args.density, args.seed)
        print(f"experiment: {args.cells:,} cells x {args.genes:,} genes, density {args.density} ({time.perf_counter() - t:.1f} s to write)")
        query = CensusQuery("cell_type != 'monocyte'", uri=uri, max_cells_per_type=args.cells // 5, seed=args.seed)

        t = time.perf_counter()
        ours = census_anndata(query)
        ours_s = time.perf_counter() - t
        joinids = ours.obs["soma_joinid"].to_numpy()
        t = time.perf_counter()
        theirs = _reference(uri, joinids)
        theirs_s = time.perf_counter() - t
        assert (ours.X != theirs.X).nnz == 0, "the two reads differ"
        print(f"whole selection ({ours.n_obs:,} cells, {ours.X.nnz:,} values): mmgene {ours_s:.2f} s, "
              f"to_anndata {theirs_s:.2f} s, ratio {ours_s / theirs_s:.2f}")

        rows = SomaRows(query)
        try:
            t = time.perf_counter()
            ours_chunks = [rows[a : a + args.chunk].X for a in range(0, rows.n_obs, args.chunk)]
            ours_s = time.perf_counter() - t
        finally:
            rows.close()
        t = time.perf_counter()
        theirs_chunks = [_reference(uri, joinids[a : a + args.chunk]).X for a in range(0, len(joinids), args.chunk)]
        theirs_s = time.perf_counter() - t
        assert all((a != b).nnz == 0 for a, b in zip(ours_chunks, theirs_chunks))
        print(f"streamed in {len(ours_chunks)} chunks of {args.chunk:,}: mmgene {ours_s:.2f} s, "
              f"to_anndata per chunk {theirs_s:.2f} s, ratio {ours_s / theirs_s:.2f}")


if __name__ == "__main__":
    main()
