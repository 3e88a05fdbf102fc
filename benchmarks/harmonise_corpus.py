"""Accuracy of label harmonisation on the shared corpus: author labels -> curated Cell Ontology ids.

For every dataset of ``../shared/data/corpus/corpus.csv`` the author labels (``obs['cell_type']``) are
harmonised with the manifest's tissue and species as hints, and each distinct label's prediction is
compared with the hand-curated id of its cells (``obs['cell_type_ontology_term_id']``):

- ``exact``: the curated id;
- ``parent``: a direct is_a parent of the curated id (the bar counts it: the confidence and method say
  the answer is broader);
- ``ancestor``: a more distant ancestor; ``child``: more specific than the curated id; ``wrong``;
  ``unmapped``: below ``min_confidence``.

Accuracy is reported per distinct label per dataset and weighted by cells, as exact and
exact-or-parent (the issue's bar: >= 0.90).

    python benchmarks/harmonise_corpus.py [--manifest PATH] [--text-model] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402

from mmgene.data import shared_data_dir  # noqa: E402
from mmgene.harmonise import HarmoniseConfig, harmonise_labels  # noqa: E402
from mmgene.harmonise.vocabulary import vocabulary  # noqa: E402

AUTHOR_COL = "cell_type"
CURATED_COL = "cell_type_ontology_term_id"


def outcome(predicted: str, curated: str) -> str:
    """How a predicted id relates to the curated one."""
    if not predicted:
        return "unmapped"
    if predicted == curated:
        return "exact"
    vocab = vocabulary()
    distance = vocab.ancestors(curated).get(predicted)
    if distance == 1:
        return "parent"
    if distance is not None:
        return "ancestor"
    if curated in vocab.ancestors(predicted):
        return "child"
    return "wrong"


def evaluate(manifest: Path, use_text_model: bool = False) -> pd.DataFrame:
    """One row per (dataset, author label): prediction, curated id, outcome, confidence, cells."""
    import anndata as ad

    from mmgene.corpus import read_manifest

    rows = []
    for spec in read_manifest(manifest):
        if spec.path is None:
            continue
        obs = ad.read_h5ad(spec.path, backed="r").obs
        config = HarmoniseConfig(tissue=spec.tissue or None, species=spec.species, use_text_model=use_text_model)
        table = harmonise_labels(obs[AUTHOR_COL], config=config)
        curated = obs.groupby(AUTHOR_COL, observed=True)[CURATED_COL].agg(lambda s: s.astype(str).mode().iloc[0])
        for row in table.itertuples():
            truth = str(curated[row.author_label])
            rows.append(
                {
                    "dataset": spec.dataset,
                    "author_label": row.author_label,
                    "predicted": row.term_id,
                    "predicted_name": row.term_name,
                    "curated": truth,
                    "curated_name": vocabulary().labels.get(truth, "?"),
                    "outcome": outcome(row.term_id, truth),
                    "confidence": row.confidence,
                    "method": row.method,
                    "n_cells": row.n_cells,
                }
            )
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Exact and exact-or-parent accuracy per dataset and overall, per label and weighted by cells."""

    def rates(frame: pd.DataFrame) -> dict[str, float]:
        exact = frame["outcome"] == "exact"
        near = frame["outcome"].isin(["exact", "parent"])
        cells = frame["n_cells"]
        return {
            "labels": len(frame),
            "cells": int(cells.sum()),
            "exact": exact.mean(),
            "exact_or_parent": near.mean(),
            "exact_cells": (cells * exact).sum() / cells.sum(),
            "exact_or_parent_cells": (cells * near).sum() / cells.sum(),
        }

    out = [{"dataset": name, **rates(frame)} for name, frame in results.groupby("dataset", sort=False)]
    out.append({"dataset": "ALL", **rates(results)})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = shared_data_dir()
    default = shared / "corpus" / "corpus.csv" if shared else None
    parser.add_argument(
        "--manifest", type=Path, default=default, help="corpus manifest (default: ../shared/data/corpus/corpus.csv)"
    )
    parser.add_argument("--text-model", action="store_true", help="also score similarity with the offline MiniLM model")
    parser.add_argument("--json", type=Path, help="write the per-label results and the summary here")
    args = parser.parse_args(argv)
    if args.manifest is None:
        print("no manifest: ../shared/data is absent; pass --manifest", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = evaluate(args.manifest, args.text_model)
    seconds = time.perf_counter() - start
    with pd.option_context("display.width", 250, "display.max_colwidth", 42, "display.max_rows", 1000):
        print(results.drop(columns=["method"]).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        print()
        print(summary(results).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\n{len(results)} labels in {seconds:.1f} s (ontology {vocabulary().version})")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"results": results.to_dict(orient="records"), "summary": summary(results).to_dict(orient="records")},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
