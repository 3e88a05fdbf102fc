"""Leave-one-dataset-out zero-shot figures over the shared corpus (issue #18's bars).

For each of the eight datasets of ``../shared/data/corpus/corpus.csv``: train on the other seven
(``mmgene.align.train_corpus``, the library's default configuration: an ensemble), score the
held-out cells zero-shot with Cell Ontology names and with the authors' labels as prompts, and print
them beside a model trained on PBMC 3k alone (the same recipe) and a supervised reference mapper
(logistic regression on the other datasets' cells). No refinement. Bars: mean balanced accuracy over the five immune datasets >= 0.80,
each above both baselines; training on all eight datasets under 10 minutes.

    python benchmarks/cross_dataset.py [--max-steps N] [--seed S] [--members M] [--keep-contradicted] [--hold-out NAME ...] [--json report.json]
    python benchmarks/cross_dataset.py --merge part1.json part2.json   # one table from runs of disjoint hold-outs
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

IMMUNE = ("pbmc3k", "pbmc68k_reduced", "kang_ifnb_pbmc", "symphony_pbmc_3chem", "zilionis_mouse_lung")
MANIFEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus" / "corpus.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--max-steps", type=int, default=None, help="training steps per model (default: the config's epochs)")
    parser.add_argument("--hold-out", nargs="+", action="extend", default=[], help="datasets to hold out, after one flag or each after its own (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="write the whole report here")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every model (TrainingConfig.seed)")
    parser.add_argument("--members", type=int, default=None, help="models per ensemble (default: the library's, mmgene.align.config.CORPUS_DEFAULTS; 1: one model)")
    parser.add_argument("--skip-full-training", action="store_true", help="do not time training on every dataset")
    parser.add_argument("--keep-contradicted", action="store_true", help="train on every cell (CorpusTrainingConfig.drop_contradicted=False)")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, help="print one table from the reports of earlier runs")
    args = parser.parse_args()
    if args.merge:
        _merge(args.merge)
        return

    from mmgene.align import CorpusTrainingConfig, TrainingConfig, train_corpus
    from mmgene.config import overrides
    from mmgene.corpus import read_corpus
    from mmgene.evaluate.cross_dataset import CrossDatasetConfig, cross_dataset
    from mmgene.evaluate.report import report_json

    corpus = read_corpus([args.manifest])
    training = overrides(TrainingConfig, {"max_steps": args.max_steps, "seed": args.seed})
    balance = overrides(CorpusTrainingConfig, {"members": args.members, "drop_contradicted": False if args.keep_contradicted else None})
    if not args.skip_full_training:
        start = time.perf_counter()
        train_corpus(corpus, training=training, balance=balance)
        print(f"training on all {len(corpus)} datasets: {time.perf_counter() - start:.0f} s (bar: < 600 s)")
    report = cross_dataset(corpus, config=CrossDatasetConfig(datasets=tuple(args.hold_out)), training=training, balance=balance)
    _print(report)
    if args.json:
        args.json.write_text(report_json(report) + "\n")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _difference(d: dict | None) -> str:
    """A difference with its 95% interval over the held-out cells."""
    return "n/a" if not d else f"{d['difference']:+.3f}, 95% interval over cells {d['low']:+.3f} to {d['high']:+.3f}"


def _print(report: dict) -> None:
    from mmgene.evaluate.cross_dataset import markdown

    print(markdown(report))
    for key, label in (("balanced_accuracy", "annotate's rule"), ("cosine_balanced_accuracy", "raw cosines")):
        immune = [report["datasets"][n]["mmgene"]["ontology"].get(key) for n in IMMUNE if n in report["datasets"]]
        immune = [v for v in immune if v is not None]
        if immune:
            print(f"mean balanced accuracy over {len(immune)} immune datasets (Cell Ontology prompts, {label}): "
                  f"{sum(immune) / len(immune):.3f} (bar: >= 0.80)")
    _print_weigh_types(report)
    for name in [n for n in IMMUNE if n in report["datasets"]]:
        entry = report["datasets"][name]
        ours = entry["mmgene"]["ontology"]["balanced_accuracy"]
        single = (entry.get("single") or {}).get("ontology", {}).get("balanced_accuracy")
        mapper = (entry.get("mapper") or {}).get("balanced_accuracy")
        like = (entry["mmgene"].get("mapper_classes") or {}).get("balanced_accuracy")
        versus = entry.get("versus") or {}
        print(f"{name}: mmgene {_num(ours)}; single-dataset model {_num(single)} (mmgene minus it {_difference(versus.get('single'))}); "
              f"mapper {_num(mapper)} against mmgene on the mapper's classes and cells {_num(like)} "
              f"(difference {_difference(versus.get('mapper'))})")
    left = [report["datasets"][n]["mmgene"].get("left_out_label") for n in IMMUNE if n in report["datasets"]]
    left = [v for v in left if v]
    for key in ("others", "without_others") if left else ():
        cells = sum(v[key]["left_out_called_unknown"] for v in left) / len(left)
        rest = sum(v[key]["rest_called_unknown"] for v in left) / len(left)
        print(f"a left-out label over {len(left)} immune datasets ({key.replace('_', ' ')}): "
              f"{cells:.3f} of its cells and {rest:.3f} of the rest called unknown")
    print(json.dumps(report["summary"], indent=1))


def _print_weigh_types(report: dict) -> None:
    """annotate's default z-scores beside its ``weigh_types`` rule, Cell Ontology prompts, per immune
    dataset and on average: balanced accuracy, accuracy, error of the cell-type proportions, unknown."""
    keys = ("balanced_accuracy", "accuracy", "proportion_error", "called_unknown")
    rows = {n: report["datasets"][n]["mmgene"]["ontology"] for n in IMMUNE if n in report["datasets"]}
    rows = {n: r for n, r in rows.items() if "weigh_types" in r}
    for label, pick in (("default z-scores", lambda r: r), ("weigh_types", lambda r: r["weigh_types"])):
        if rows:
            means = [sum(pick(r)[k] for r in rows.values()) / len(rows) for k in keys]
            cells = "; ".join(f"{n} " + " / ".join(f"{pick(r)[k]:.3f}" for k in keys) for n, r in rows.items())
            print(f"{label}, {' / '.join(keys)}: immune mean " + " / ".join(f"{m:.3f}" for m in means) + f" ({cells})")


def _merge(paths: list[Path]) -> None:
    from mmgene.evaluate.cross_dataset import summarise

    datasets: dict = {}
    for path in paths:
        datasets.update(json.loads(path.read_text())["datasets"])
    _print({"datasets": datasets, "summary": summarise(datasets)})


if __name__ == "__main__":
    main()
