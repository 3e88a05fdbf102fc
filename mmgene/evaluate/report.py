"""One call that evaluates a joint space (an aligned model, or any :class:`~mmgene.query.space.JointSpace`)
on a labelled AnnData and writes JSON and Markdown reports.

Sections: zero-shot classification from text prompts (overall, per class, centroid level), retrieval
in both directions, k-means ARI/AMI of the joint space, the GenePT-s zero-shot baseline with the
same prompts (cell sentences and prompts both embedded by the baseline's text encoder, MiniLM by
default) and the textbook-marker baseline (:mod:`mmgene.evaluate.marker_baseline`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.evaluate.config import EvaluateConfig
from mmgene.provenance import input_file

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auroc", "proportion_error")


def genept_s_zero_shot(
    adata: Any,
    labels: Sequence[str],
    classes: Sequence[str],
    prompts: Sequence[Sequence[str]],
    encoder: Any = "minilm",
    standardize: bool | None = None,
    refine: np.ndarray | None = None,
    weigh_types: bool = False,
) -> dict[str, Any]:
    """The GenePT-s baseline: cell sentences and prompts embedded by the same text encoder, cosine argmax
    (of per-class standardised or refined scores with ``standardize``, ``weigh_types`` or ``refine``, as
    in :func:`mmgene.evaluate.zero_shot`)."""
    from mmgene.embed.genept import genept_s
    from mmgene.evaluate.classify import zero_shot
    from mmgene.text.encoders import text_encoder

    enc = text_encoder(encoder)
    work = adata.copy()
    genept_s(work, encoder=enc, on_empty="zero")
    res = zero_shot(np.asarray(work.obsm["X_genept_s"]), labels, enc.encode, classes=classes, prompts=prompts, standardize=standardize, refine=refine, weigh_types=weigh_types)
    res["encoder"] = enc.name
    return res


def _marker_baseline(adata: Any, labels: Sequence[str], classes: Sequence[str], ontology: bool,
                     refine: np.ndarray | None) -> dict[str, Any]:
    """The textbook-marker baseline's metrics, or, when no class has a marker gene in the data, an entry
    that says it was not scored (``scored`` False and the ``reason``), so that the report still finishes."""
    from mmgene.evaluate.marker_baseline import NoMarkerGenesError, marker_zero_shot, not_scored

    try:
        return marker_zero_shot(adata, labels, classes, ontology=ontology, refine=refine)
    except NoMarkerGenesError as exc:
        return not_scored(exc)


def _plain(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars and arrays as Python ones, NaN and infinities as
    ``None`` (JSON has no NaN; a bare ``NaN`` token breaks strict parsers), paths as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def report_json(report: dict[str, Any]) -> str:
    """A report as strict JSON text: undefined metrics (NaN) become ``null``, never a bare ``NaN``."""
    return json.dumps(_plain(report), indent=2, allow_nan=False)


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, (float, np.floating)) and np.isfinite(x) else "–"


def markdown_report(report: dict[str, Any]) -> str:
    """A Markdown summary of :func:`evaluate`'s result."""
    lines = [f"## Zero-shot evaluation: {report['dataset']} ({report['n_cells']} cells, `{report['label_col']}`)", ""]
    if report.get("origin"):
        lines += [f"Prompts say where the cells come from: \"a <label> from {report['origin']}\" among them.", ""]
    zs = report["zero_shot"]
    if zs.get("refined"):
        lines += ["Scores refined by self-training on the data's own principal components (`refine=True`; every row).", ""]
    elif zs.get("standardized") and zs.get("weigh_types"):
        lines += ["Each class's similarities z-scored over the cells, the classes a first pass finds weighing alike, before the argmax "
                  "(annotate's `weigh_types` rule; mmgene and GenePT-s).", ""]
    elif zs.get("standardized"):
        lines += ["Each class's similarities z-scored over the cells before the argmax (annotate's rule; mmgene and GenePT-s).", ""]
    else:
        lines += ["Raw cosine similarities, not z-scored (`standardize` off, or fewer than 30 cells; mmgene and GenePT-s).", ""]
    if zs.get("recentred"):
        lines += ["The model's cell vectors recentred on its training mean first (annotate's rule, `recentre`; its rows and the retrieval).", ""]
    if zs.get("data_markers"):
        lines += [f"{zs['data_markers']} genes that mark these cells joined the model's gene channel (annotate's rule, `data_markers`; summed over an ensemble's members).", ""]
    for cls, names in (zs.get("answers_for") or {}).items():
        lines += [f"\"{cls}\" also answers for the model's training classes below it in the Cell Ontology: {', '.join(names)}.", ""]
    lines += [
        "| method | accuracy | balanced accuracy | macro-F1 | macro AUROC | proportion error | centroid accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [("mmgene aligned model", zs)]
    if report.get("baseline"):
        rows.append((f"GenePT-s zero-shot ({report['baseline'].get('encoder', '')})", report["baseline"]))
    marker = report.get("marker_baseline") or {}
    scored = marker.get("scored", True)  # a report saved before 'scored' existed was scored
    if marker and scored:
        rows.append(("textbook marker genes (mean z-score)", marker))
    for name, res in rows:
        vals = " | ".join(_fmt(res.get(k, float("nan"))) for k in HEADLINE)  # a report saved before a metric existed lacks it
        centroid = res["centroid"]["accuracy"] if "centroid" in res else float("nan")
        lines.append(f"| {name} | {vals} | {_fmt(centroid)} |")
    if not scored:
        lines += ["", f"The textbook-marker baseline could not be scored ({marker.get('reason', 'no marker gene found')})."]
    lines += [
        "",
        "| class | n | recall | precision | F1 | AUROC | GenePT-s AUROC | marker AUROC | markers found |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = (report.get("baseline") or {}).get("per_class", {})
    for cls, m in zs["per_class"].items():
        table, found = marker.get("markers", {}).get(cls, []), marker.get("markers_found", {}).get(cls, [])
        genes = ((", ".join(found) or "none") + (f" (of {', '.join(table)})" if len(found) < len(table) else "")) if table else "–"
        lines.append(
            f"| {cls} | {m['n']} | {_fmt(m['recall'])} | {_fmt(m['precision'])} | {_fmt(m['f1'])} | "
            f"{_fmt(m.get('auroc', float('nan')))} | {_fmt(base.get(cls, {}).get('auroc', float('nan')))} | "
            f"{_fmt(marker.get('per_class', {}).get(cls, {}).get('auroc', float('nan')))} | {genes if marker else '–'} |"
        )
    ret = report.get("retrieval", {})
    if ret:
        lines += ["", "| retrieval | recall@1 | recall@5 | recall@10 | MRR |", "|---|---|---|---|---|"]
        for direction, m in ret.items():
            lines.append(f"| {direction} | {_fmt(m['recall@1'])} | {_fmt(m['recall@5'])} | {_fmt(m['recall@10'])} | {_fmt(m['mrr'])} |")
    if report.get("clustering"):
        c = report["clustering"]
        lines += ["", f"Joint space k-means (k = {c['n_clusters']}): ARI {_fmt(c['ari'])}, AMI {_fmt(c['ami'])}."]
    return "\n".join(lines) + "\n"


def report_files(out: str | os.PathLike[str]) -> list[Path]:
    """``<out>.json`` and ``<out>.md`` (``out`` may end in either suffix)."""
    stem = Path(out)
    stem = stem.with_suffix("") if stem.suffix in (".json", ".md") else stem
    return [stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")]


def evaluate(
    model: Any,
    adata: Any,
    label_col: str,
    config: EvaluateConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    classes: Sequence[str] | None = None,
    dataset_name: str | None = None,
    baseline_encoder: Any = "minilm",
    **settings: Any,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``adata``: a joint space (:class:`~mmgene.query.space.JointSpace`, such as
    an aligned model) or anything :func:`mmgene.query.load_space` takes (a model folder, ``hf://...``,
    ``'genept-s'``).

    Writes ``<out>.json`` and ``<out>.md`` when ``out`` is given (a path without suffix, or ending in
    ``.json``; existing files are replaced only with ``overwrite=True``). Returns the report dict (``zero_shot``, ``retrieval``, ``clustering``, ``baseline``: GenePT-s,
    ``marker_baseline``: textbook marker genes, see :func:`mmgene.evaluate.marker_zero_shot`).

    The settings are an :class:`~mmgene.evaluate.config.EvaluateConfig` (``config``), or single settings
    by name on top of it (``refine=True``): ``baseline``, ``marker_baseline``, ``ontology``, ``markers``,
    ``species``, ``tissue``, ``standardize``, ``weigh_types``, ``recentre``, ``hierarchy``, ``refine``, ``seed``. ``markers`` expands the
    prompts with marker genes (:mod:`mmgene.text.markers`); ``species`` and ``tissue`` add "a <label> from
    <species> <tissue>" to them, as annotate's do. The model's scores are annotate's
    (:func:`mmgene.query.scoring.label_similarities`): with ``hierarchy`` a class whose Cell Ontology term
    lies above some of the model's training classes also answers for them (the report's ``answers_for``),
    and ``standardize`` (default: at 30 cells or more) z-scores each class's scores over the cells before
    the argmax, for the baselines too; ``recentre`` (default: at 30 cells or more, with a model that stores
    a training mean) first moves the cells onto the model's training mean (:mod:`mmgene.align.recentre`;
    the report's ``recentred``). ``refine`` refines the scores of the model
    and of both baselines by self-training on the data's own principal components
    (:mod:`mmgene.query.refine`; it uses the cells, never their labels).
    """
    from mmgene.atomic import atomic_path, check_output
    from mmgene.evaluate.classify import labelled_cells, zero_shot
    from mmgene.evaluate.clustering import kmeans_scores
    from mmgene.evaluate.retrieval import retrieval_metrics
    from mmgene.query.scoring import label_similarities
    from mmgene.query.space import cells_for_labels, load_space, space_for_labels, uses_definitions
    from mmgene.query.terms import label_terms
    from mmgene.text.classes import unit_rows
    from mmgene.text.prompts import class_prompts

    config = (config or EvaluateConfig()).replace(**settings)
    files = report_files(out) if out is not None else []
    for path in files:
        check_output(path, overwrite=overwrite)
    model = load_space(model)
    adata, labels, unlabelled = labelled_cells(adata, label_col, min_classes=classes is None)
    classes = list(classes) if classes is not None else sorted(set(labels.tolist()))
    definitions = uses_definitions(model, config.definitions) and config.ontology
    prompts_of = partial(class_prompts, ontology=config.ontology, markers=config.markers, origin=config.origin, definitions=definitions)
    prompts = prompts_of(classes)
    model, channel_added = space_for_labels(model, adata, config.data_markers)
    cells, recentred = cells_for_labels(model, adata, config.recentre)
    features = None
    if config.refine:
        from mmgene.query.refine import expression_pcs

        features = expression_pcs(adata)
    about = model.describe()
    scored = label_similarities(
        model, unit_rows(cells), prompts, classes, hierarchy=config.hierarchy, prompts_of=prompts_of,
        term_ids=label_terms(classes, origin=config.origin) if config.hierarchy else None,  # only the hierarchy reads them
    )
    zs = zero_shot(
        cells, labels, model.encode_text, classes=classes, prompts=prompts, standardize=config.standardize, refine=features,
        similarities=scored.similarities, standardised=scored.standardised(config.weigh_types),
    )
    zs["weigh_types"] = bool(config.weigh_types and zs["standardized"])  # refine never weighs: EvaluateConfig refuses the pair
    zs["hierarchy"] = config.hierarchy
    zs["recentred"] = recentred
    zs["data_markers"] = channel_added
    zs["definitions"] = definitions
    zs["answers_for"] = {c: names for c, names in zip(classes, scored.expanded) if names}
    index = {c: i for i, c in enumerate(classes)}
    flat = [p for group in prompts for p in group]
    text_labels = [k for k, group in enumerate(prompts) for _ in group]
    retrieval = retrieval_metrics(cells, [index[v] for v in labels], model.encode_text(flat), text_labels)
    clustering = kmeans_scores(cells, labels, seed=config.seed) if len(set(labels.tolist())) > 1 else None
    report: dict[str, Any] = {
        "dataset": dataset_name or input_file(adata, "AnnData"),
        "n_cells": int(adata.n_obs),
        "label_col": label_col,
        "unlabelled_cells": unlabelled,
        "model": str(about.get("model", "")),
        "inputs": list(about.get("inputs", [])),
        "origin": config.origin.phrase,
        "zero_shot": zs,
        "retrieval": retrieval,
        "clustering": clustering,
        "baseline": genept_s_zero_shot(adata, labels, classes, prompts, baseline_encoder, config.standardize, features, config.weigh_types) if config.baseline else None,
        "marker_baseline": (_marker_baseline(adata, labels, classes, config.ontology, features)
                            if config.marker_baseline else None),
    }
    if files:
        with atomic_path(files[0], overwrite=overwrite) as tmp:
            tmp.write_text(report_json(report), encoding="utf-8")
        with atomic_path(files[1], overwrite=overwrite) as tmp:
            tmp.write_text(markdown_report(report), encoding="utf-8")
        report["files"] = [str(f) for f in files]
    return report
