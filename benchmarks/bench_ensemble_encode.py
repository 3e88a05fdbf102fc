"""Benchmark: encoding an AnnData's cells with an ensemble, mmgene against its members one by one.

PBMC 3k (real 10x counts; scanpy's pbmc68k_reduced without ``../shared``) is stacked to ``--cells``
cells. ``--members`` fresh two-tower models over its genes (default: the corpus default; random weights, seeds 0, 1, ...: the cost of encoding
does not depend on them; each with a training mean, so cells can be recentred) form an ensemble, which
encodes them two ways in one process, with recentring (annotate's default) and without:

- ``reference``: each member's own ``AlignedModel.encode_cells``, one after the other, the vectors
  joined: mmgene's previous path, where every member made the chunks' inputs (each cell's top genes)
  again, twice with recentring (once for the dataset's mean, once to encode);
- ``mmgene``: ``EnsembleModel.encode_cells``, where each chunk's inputs are made once and read by every
  member (``mmgene.align.cell_chunks``).

Then the ensemble is saved and loaded back (its frozen text model kept and loaded once) and embeds
the prompts of 24 cell types (``class_prompts``, what ``annotate`` embeds for its labels) from cold
caches, two ways:

- ``reference``: every member with a text cache of its own, so each runs the text transformer on every
  prompt (mmgene's previous behaviour);
- ``mmgene``: the members share the text cache of their shared text model (``TextInput.share_cache``),
  so each prompt runs through the transformer once.

Both must give the same bits. Prints cells/s, prompts/s and the ratios; the last line, ``SUMMARY
bench-ensemble-encode ...``, collects them. Run: ``python benchmarks/bench_ensemble_encode.py --cells 20000``.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MMGENE_QUIET", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_encode import setup  # noqa: E402

from mmgene.align.config import CORPUS_DEFAULTS  # noqa: E402
from mmgene.align.ensemble import EnsembleModel  # noqa: E402
from mmgene.align.model import AlignedModel, build_model, load  # noqa: E402
from mmgene.align.modules.text_input import TextInput  # noqa: E402
from mmgene.text.prompts import class_prompts  # noqa: E402


def members(vocab: list[str], n: int) -> list[AlignedModel]:
    """``n`` fresh models over ``vocab``, seeds 0..n-1, each with a random training mean."""
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        model = AlignedModel(build_model(vocab, max_genes=256), ["genes"])
        width = model._cell_head().out_dim
        model.meta["learned_mean"] = np.random.default_rng(seed).normal(0, 0.1, width).tolist()
        out.append(model)
    return out


CELL_TYPES = [
    "T cell", "CD4-positive, alpha-beta T cell", "CD8-positive, alpha-beta T cell", "regulatory T cell", "B cell",
    "plasma cell", "natural killer cell", "classical monocyte", "non-classical monocyte", "macrophage", "dendritic cell",
    "plasmacytoid dendritic cell", "neutrophil", "mast cell", "platelet", "erythrocyte", "hematopoietic stem cell",
    "type B pancreatic cell", "pancreatic A cell", "endothelial cell", "fibroblast", "kidney proximal tubule cell",
    "radial glial cell", "neuron",
]


def empty_text_caches(ensemble: EnsembleModel, shared: bool) -> None:
    """Cold text caches: one that the members share (mmgene) or one each (the reference)."""
    towers = [next(m for m in member.st.modules() if isinstance(m, TextInput)) for member in ensemble.members]
    first: OrderedDict = OrderedDict()
    for tower in towers:
        tower._cache = first if shared else OrderedDict()


def best_of(fn, repeats: int = 2) -> tuple[np.ndarray, float]:
    """The output and the best wall seconds of ``repeats`` runs."""
    best, out = math.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return np.asarray(out), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=CORPUS_DEFAULTS.members, help="models in the ensemble (default: the corpus default)")
    args, adata, vocab = setup(parser)
    ensemble = EnsembleModel(members(vocab, args.members))
    n = adata.n_obs
    print(f"{n:,} cells, {len(vocab):,} genes in the vocabulary, {args.members} members, {args.threads} thread(s)")
    ratios = {}
    for recentre in (True, False):
        ref, ref_wall = best_of(lambda: ensemble._joined([m.encode_cells(adata, recentre=recentre) for m in ensemble.members]))
        ours, our_wall = best_of(lambda: ensemble.encode_cells(adata, recentre=recentre))
        assert np.array_equal(ours, ref), f"the ensemble's vectors differ from its members' (recentre={recentre})"
        ratios[recentre] = ref_wall / our_wall
        print(f"  recentre={recentre!s:<5} reference {n / ref_wall:>8,.0f} cells/s ({ref_wall:6.1f} s)   "
              f"mmgene {n / our_wall:>8,.0f} cells/s ({our_wall:6.1f} s)   x{ratios[recentre]:.2f}, the same bits")
    with tempfile.TemporaryDirectory() as tmp:
        ensemble.save(Path(tmp) / "ensemble")
        loaded = load(Path(tmp) / "ensemble")
    prompts = [p for group in class_prompts(CELL_TYPES) for p in group]

    def cold(shared: bool) -> np.ndarray:
        empty_text_caches(loaded, shared)
        return loaded.encode_text(prompts)

    ref, ref_wall = best_of(lambda: cold(False))
    ours, our_wall = best_of(lambda: cold(True))
    assert np.array_equal(ours, ref), "the ensemble's text vectors differ with a shared cache"
    ratios["text"] = ref_wall / our_wall
    print(f"  prompts        reference {len(prompts) / ref_wall:>8,.0f} prompts/s ({ref_wall:6.2f} s)   "
          f"mmgene {len(prompts) / our_wall:>8,.0f} prompts/s ({our_wall:6.2f} s)   x{ratios['text']:.2f}, the same bits ({len(prompts)} prompts)")
    print(f"\nSUMMARY bench-ensemble-encode cells={n} members={args.members} recentred={ratios[True]:.2f} plain={ratios[False]:.2f} "
          f"prompts={ratios['text']:.2f}")


if __name__ == "__main__":
    main()
