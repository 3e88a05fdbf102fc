"""How a general model answers blood labels at several levels of detail, on a PBMC dataset it never saw.

A general model is trained on every dataset of the manifest but the held-out one (`mmgene pretrain`'s
recipe, :func:`mmgene.pretrain.pretrain`, seed 0), or taken from ``--model``. The held-out cells are
then annotated (:func:`mmgene.query.annotate` with its defaults, told the cells are human blood; with
``--weigh-types`` also its ``weigh_types`` rule) once per label set. The sets are written as Azimuth and CellTypist write blood cell types (see ``LABEL_SETS``):
the level the shared corpus teaches, finer labels alone, finer labels with their parents, and a set
rich in shorthand.

A call is right when the Cell Ontology term its label is read as (:func:`mmgene.query.terms.label_terms`,
as annotate reads it) is the cell's curated term, above it or below it: "CD4 Naive" and "CD4 T" are both
right for a cell curated as a CD4-positive, alpha-beta T cell. It is wrong when it names, or lies below,
another of the dataset's curated types: the ontology puts the CD16 monocyte below the CD14-positive
monocyte, yet a dataset that curates both means them as two types, so "CD14 Mono" on a CD16 monocyte is
wrong. "Platelet" also counts for megakaryocytes (the ontology has platelets develop from
megakaryocytes, which is no is_a). A label read as no term is never right. Per set: right and wrong calls, each a share of the cells of a curated type averaged over
the types, and the share of all cells called unknown; for the CD4 T cells (the largest type of PBMC
data, and the one finer labels split) the same three.

    python benchmarks/finer_labels.py [--held-out pbmc3k] [--model FOLDER] [--weigh-types] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MANIFEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus" / "corpus.csv"
LEVEL_1 = ["CD14 Mono", "CD16 Mono", "CD4 T", "CD8 T", "NK", "B", "DC", "Platelet"]
FINER = ["CD14 Mono", "CD16 Mono", "CD4 Naive", "CD4 TCM", "CD8 TEM", "NK", "B naive", "B memory", "pDC", "cDC2", "Platelet"]
LABEL_SETS = {
    "level 1": LEVEL_1,
    "finer": FINER,
    "finer with parents": list(dict.fromkeys([*FINER[:2], "CD4 T", *FINER[2:4], "CD8 T", FINER[4], FINER[5], "B", *FINER[6:8], "DC", *FINER[8:]])),
    "shorthand": ["CD14 Mono", "CD16 Mono", "CD4 TCM", "CD4 TEM", "CD8 TEM", "CD4 CTL", "MAIT", "gdT", "NK", "B", "cDC1", "cDC2", "pDC", "HSPC", "Platelet"],
}
#: a called term -> curated terms it also counts for, where the ontology's relation is not is_a
#: (platelet develops from megakaryocyte).
ALSO_RIGHT = {"CL:0000233": {"CL:0000556"}}
CD4_T = "CL:0000624"


def _right(called: str, curated: str, types: list[str]) -> bool:
    """Whether a call of term ``called`` is right for a cell curated as ``curated`` (see the module docstring)."""
    from mmgene.text.ontology import term_ancestors

    if not called or not curated:
        return False
    if called == curated or curated in ALSO_RIGHT.get(called, ()):
        return True
    if any(called == t or t in term_ancestors(called) for t in types if t != curated):
        return False  # another of the dataset's types, or below one
    return called in term_ancestors(curated) or curated in term_ancestors(called)


def _score(adata, labels: list[str], model, origin, weigh_types: bool = False) -> dict:
    import numpy as np

    from mmgene.query import annotate
    from mmgene.query.terms import label_terms

    terms = dict(zip(labels, label_terms(labels, origin=origin)))
    annotate(adata, labels, model, species=origin.species, tissue=origin.tissue, weigh_types=weigh_types)
    called = adata.obs["mmgene_label"].astype(str).to_numpy()
    curated = adata.obs["cell_type_ontology_term_id"].astype(str).to_numpy()
    unknown = called == "unknown"
    types = sorted(set(curated.tolist()))
    right = np.array([not u and _right(terms.get(c, ""), t, types) for c, t, u in zip(called, curated, unknown)])
    wrong = ~right & ~unknown
    per_type = lambda v: float(np.mean([v[curated == t].mean() for t in types]))  # noqa: E731
    cd4 = curated == CD4_T
    return {
        "labels": labels,
        "terms": terms,
        "right": per_type(right),
        "wrong": per_type(wrong),
        "unknown": float(unknown.mean()),
        "cd4_t_cells": {"cells": int(cd4.sum()), "right": float(right[cd4].mean()), "wrong": float(wrong[cd4].mean()), "unknown": float(unknown[cd4].mean())} if cd4.any() else None,
        "calls": {k: int(v) for k, v in zip(*np.unique(called, return_counts=True))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--held-out", default="pbmc3k", help="a blood dataset of the manifest (default: pbmc3k)")
    parser.add_argument("--model", type=Path, default=None, help="a general model trained without the held-out dataset (default: train one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--weigh-types", action="store_true", help="annotate with weigh_types=True (each label's z-scores with a first pass's winners weighing alike)")
    args = parser.parse_args()

    import mmgene.align
    from mmgene.corpus import read_corpus
    from mmgene.corpus.sources import specs_from
    from mmgene.pretrain import PretrainConfig, pretrain
    from mmgene.text.origin import Origin

    specs = specs_from([args.manifest])
    held = [s for s in specs if s.dataset == args.held_out]
    if not held:
        raise SystemExit(f"{args.held_out!r} is not a dataset of {args.manifest}")
    if args.model is None:
        start = time.perf_counter()
        model = pretrain([s for s in specs if s.dataset != args.held_out], config=PretrainConfig(seed=args.seed)).model
        print(f"trained a general model without {args.held_out} in {time.perf_counter() - start:.0f} s")
    else:
        model = mmgene.align.load(args.model)
    adata = read_corpus(held)[0].adata
    origin = Origin("human", "blood")
    report = {"held_out": args.held_out, "cells": int(adata.n_obs), "weigh_types": args.weigh_types, "sets": {}}
    print("| label set | right | wrong | unknown | CD4 T cells: right / wrong / unknown |\n|---|---|---|---|---|")
    for name, labels in LABEL_SETS.items():
        scored = _score(adata.copy(), labels, model, origin, args.weigh_types)
        report["sets"][name] = scored
        cd4 = scored["cd4_t_cells"]
        cd4_text = f"{cd4['right']:.2f} / {cd4['wrong']:.2f} / {cd4['unknown']:.2f}" if cd4 else "n/a"
        print(f"| {name} | {scored['right']:.3f} | {scored['wrong']:.3f} | {scored['unknown']:.3f} | {cd4_text} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
