"""The main job end to end: from an AnnData to a trained joint space, an index, answers and a report.

``mmgene demo`` runs :func:`run` on the embedded default (scanpy's ``pbmc68k_reduced``) or on a user's
file. Each step uses the public API, so the demo doubles as a worked example of it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.atomic import atomic_path, check_output
from mmgene.config import check_whole
from mmgene.errors import MMGeneError, ParameterError
from mmgene.model_files import model_on_disk
from mmgene.progress import info

#: species and tissue of the embedded default (scanpy's pbmc68k_reduced: human PBMC), said in its captions and prompts
DEFAULT_ORIGIN = ("human", "blood")
#: questions asked of every dataset (plain language, as a biologist would type them).
DEFAULT_QUERIES = ("cytotoxic T cells", "B cells", "monocytes", "natural killer cells", "dendritic cells")
DEFAULT_LABEL_COL = "bulk_labels"
JOINT_KEY = "X_mmgene"


@dataclass
class DemoResult:
    """Where the demo wrote its outputs, and the headline numbers."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _pick_label_col(adata: Any, label_col: str | None) -> str:
    from mmgene.io import obs_column
    from mmgene.io.describe import label_columns

    if label_col is not None:
        obs_column(adata, label_col)
        return label_col
    if DEFAULT_LABEL_COL in adata.obs.columns:
        return DEFAULT_LABEL_COL
    found = label_columns(adata.obs)
    if not found:
        raise ParameterError(
            "no obs column looks like cell-type labels", "obs of the input", "pass --label-col with the column holding cell types"
        )
    return next(iter(found))


def _write_report(report: dict[str, Any], out: Path, label_col: str) -> None:
    """report.json (everything) and report.md (evaluation tables, queries, annotation, plots)."""
    from mmgene.evaluate.report import markdown_report, report_json

    demo = report["demo"]
    lines = [f"# mmgene demo: {demo['input']}", "",
             f"{demo['cells']:,} cells x {demo['genes']:,} genes; labels from `obs['{label_col}']`; "
             + (f"alignment model trained on {demo['train_cells']} cells in {demo['train_seconds']} s, " if demo["train_cells"]
                else f"alignment model `{demo['model']}` (trained on other data), ")
             + f"evaluated on {demo['held_out_cells']} held-out cells with text prompts only.", "",
             markdown_report(report), "## Text queries (top 5 cells)", ""]
    for q, rows in demo["queries"].items():
        found = ", ".join(f"{r[label_col]} ({r['score']:.2f})" for r in rows)
        lines.append(f"- **{q}**: {found}")
    ann = demo["annotation"]
    lines += ["", "## Zero-shot annotation of all cells, with unknown rejection", "",
              f"Rule: {ann['rule']}. Accuracy on held-out cells {ann['held_out_accuracy']:.3f}, on all cells "
              f"{ann['accuracy']:.3f} (counting 'unknown' as wrong); {ann['unknown']} cells 'unknown'; "
              f"accuracy of the cells that got a label: {ann['accuracy_of_called']}.", "",
              "![joint space, true labels](umap_true.png) ![joint space, predicted](umap_predicted.png)", "",
              "![confusion matrix](confusion.png) ![query score](query_umap.png)", ""]
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(report_json(report))  # strict JSON: NaN metrics as null
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines))


def _step(name: str, t0: float) -> None:
    info(f"[{time.perf_counter() - t0:6.1f} s] {name}")


def _plots(
    adata: Any, labels: np.ndarray, predicted: np.ndarray, model: Any, text: str, out: Path, *, label_col: str, seen: str, seed: int
) -> dict[str, Path]:
    """The joint space's UMAP (``obsm['X_umap_mmgene']``, by scanpy) and the report's four PNGs, drawn by :mod:`mmgene.pl`."""
    import matplotlib.pyplot as plt
    import scanpy as sc

    from mmgene import pl

    sc.pp.neighbors(adata, use_rep=JOINT_KEY, metric="cosine", key_added="mmgene_neighbors", random_state=seed)
    sc.tl.umap(adata, neighbors_key="mmgene_neighbors", key_added="X_umap_mmgene", random_state=seed)
    panels = [plt.subplots(figsize=(6.5, 5))[1] for _ in range(2)]  # one file each
    pl.labels(adata, labels, predicted, basis="umap_mmgene", ax=panels, show=False,
              title=(f"joint space, true {label_col}", "joint space, zero-shot label"))
    figures = {
        "umap_true.png": panels[0].figure,
        "umap_predicted.png": panels[1].figure,
        "confusion.png": pl.confusion(adata, labels, predicted, return_fig=True,
                                      title=f"annotation with unknown rejection, all cells ({seen} seen in training)"),
        "query_umap.png": pl.query(adata, model, text, basis="umap_mmgene", use_rep=JOINT_KEY, return_fig=True,
                                   title=f"cosine similarity to {text!r}"),
    }
    written = {}
    for name, fig in figures.items():
        written[name] = pl.savefig(fig, out / name, dpi=110)
        plt.close(fig)
    return written


def run(
    file: str | os.PathLike[str] | Any | None = None,
    *,
    label_col: str | None = None,
    out: str | os.PathLike[str] = "mmgene-demo",
    queries: Sequence[str] = DEFAULT_QUERIES,
    epochs: float | None = None,
    seed: int = 0,
    model: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> DemoResult:
    """Run the whole pipeline and write model, index, annotated AnnData, report and plots to ``out``.

    Parameters
    ----------
    file
        An .h5ad/.zarr path or AnnData; ``None`` uses scanpy's bundled ``pbmc68k_reduced``.
    label_col
        obs column with cell types (default: ``bulk_labels`` or the first label-like column).
    out
        Output folder, built beside it and renamed into place only when the demo succeeds (a failed run
        leaves nothing); an existing one is replaced only with ``overwrite`` and only if mmgene wrote it.
    queries
        Text queries answered against the index.
    epochs
        Training epochs for the alignment model (default: :class:`~mmgene.align.config.TrainingConfig`'s).
    model
        A trained model (folder or ``hf://owner/name``, e.g. from ``mmgene pretrain``) to use instead of
        training one: every cell is then scored as unseen and annotation uses the default rule (no
        calibration on training cells).
    """
    import mmgene.data
    from mmgene import align
    from mmgene.align.config import TrainingConfig
    from mmgene.config import overrides
    from mmgene.io import read
    from mmgene.io.labels import usable_labels

    t0 = time.perf_counter()
    inputs = [file] if isinstance(file, (str, os.PathLike)) else []
    out = Path(out)
    # Every argument is checked before any work and before anything is written: the output folder, the
    # training settings, the given model (loaded here). The folder is then built in a staging folder
    # beside ``out`` and renamed onto it only when the whole demo has succeeded (mmgene.atomic), so a
    # failed or stopped run leaves nothing behind (an output it was to replace stays as it was).
    if model is not None and epochs is not None:
        raise ParameterError(
            "epochs apply to training, and a given model is not trained", "argument epochs", "leave out --epochs or --model"
        )
    queries = _checked_queries(queries)
    check_whole(seed, "seed", "argument seed", "pass e.g. 0")
    inputs += model_on_disk(model)
    check_output(out, overwrite=overwrite, inputs=inputs)
    # the library's defaults, but for the seed and epochs given
    training = overrides(TrainingConfig, {"seed": seed, "epochs": epochs}) if model is None else None
    model_path = out / "model" if model is None else model
    if model is not None:
        model = align.load(model)
    result = DemoResult(out)

    adata = read(mmgene.data.pbmc68k() if file is None else file)
    species, tissue = DEFAULT_ORIGIN if file is None else ("", "")  # a user's file: captions and prompts do not guess
    label_col = _pick_label_col(adata, label_col)
    keep, labels, _ = usable_labels(adata.obs[label_col], f"obs[{label_col!r}]", "the demo")
    given_held_out = None
    if model is not None:
        _check_shared_genes(adata, model)
        given_held_out = _given_model_held_out(adata, model)[keep]  # a split of this file as read
    if not keep.all():
        adata = adata[keep].copy()
        if given_held_out is not None and given_held_out.all():  # or of its labelled cells, as the demo trains
            given_held_out = _given_model_held_out(adata, model)
    _step(f"read {adata.n_obs:,} cells x {adata.n_vars:,} genes, labels from obs[{label_col!r}]", t0)

    with atomic_path(out, overwrite=overwrite, inputs=inputs) as staged:
        staged.mkdir()
        plan = _Plan(label_col, model, model_path, training, tuple(queries), species, tissue, seed, given_held_out)
        result.report = _pipeline(adata, labels, plan, staged, result.files, t0)
    result.files = {name: out / path.relative_to(staged) for name, path in result.files.items()}
    result.seconds = time.perf_counter() - t0
    _step(f"done -> {out}", t0)
    return result


def _checked_queries(queries: str | Sequence[str]) -> tuple[str, ...]:
    """The text queries as a tuple (one text is one query, not one per character); none, or a blank or
    non-text one, is a ParameterError, before any work."""
    queries = (queries,) if isinstance(queries, str) else tuple(queries)
    bad = [q for q in queries if not isinstance(q, str) or not q.strip()]
    if not queries or bad:
        raise ParameterError(
            f"the demo needs one or more non-empty text queries, got {list(queries)!r}",
            "argument queries",
            f"pass texts such as {list(DEFAULT_QUERIES[:2])}",
        )
    return queries


@dataclass(frozen=True)
class _Plan:
    """What :func:`run` settled before any work: the label column, the model given (loaded) or None and
    where the model will be (the output folder's ``model``, or the one given), the training settings of
    a model to train, the queries, the captions' species and tissue, and the seed."""

    label_col: str
    model: Any
    model_path: Any
    training: Any
    queries: tuple[str, ...]
    species: str
    tissue: str
    seed: int
    given_held_out: np.ndarray | None = None


def _check_shared_genes(adata: Any, model: Any) -> None:
    """Refuse, before any work, a given model that reads genes none of which the data has: every cell
    would get the same vector, and the figures would score nothing."""
    from mmgene.errors import GeneIdError
    from mmgene.io import expression

    if "genes" not in model.inputs:
        return
    vocab = {str(g).upper() for g in model.genes}
    symbols = {str(s).upper() for s in expression(adata).symbols() if s}
    if not symbols & vocab:
        raise GeneIdError(
            f"none of the data's {len(symbols)} gene symbols is among the model's {len(vocab)} genes "
            f"(the data has e.g. {', '.join(sorted(symbols)[:3]) or 'no symbols'})",
            f"var of the input against the model {model.meta.get('path', '')}",
            "give a model trained on the same kind of gene symbols (human symbols such as CD3E), or train one here",
        )


def _given_model_held_out(adata: Any, model: Any) -> np.ndarray:
    """Which cells a given model never saw: the test side of its recorded split when ``adata`` holds its
    training cells (:func:`mmgene.evaluate.heldout.held_out_mask`, which refuses them in another order or
    a model trained on all of them: training cells would be scored as held out), else every cell."""
    from mmgene.evaluate.heldout import held_out_mask
    from mmgene.pairs.splits import cell_ids_record

    split = model.meta.get("split") or {}
    if not split.get("obs_set_sha256") or split["obs_set_sha256"] != cell_ids_record(adata.obs_names)["obs_set_sha256"]:
        return np.ones(adata.n_obs, dtype=bool)  # trained elsewhere: every cell is new to it
    return held_out_mask(adata, model.meta, instead="leave out --model to train a model here")


def _pipeline(adata: Any, labels: np.ndarray, plan: _Plan, staged: Path, files: dict[str, Path], t0: float) -> dict[str, Any]:
    """The demo's steps, writing into ``staged`` (renamed to the output folder afterwards): the report,
    with the written files added to ``files``. The paths the outputs record name where they will be
    (``plan.model_path``)."""
    from mmgene import align, cells, evaluate, query
    from mmgene.align.card import render_model_card
    from mmgene.embed.genept import genept_w
    from mmgene.genes.default import default_gene_vectors
    from mmgene.index import CellIndex
    from mmgene.io import expression
    from mmgene.pairs.config import PairsConfig
    from mmgene.text.labels import clean_label

    label_col, model, model_path, queries, seed = plan.label_col, plan.model, plan.model_path, plan.queries, plan.seed
    cells.sentences(adata, top_k=200)
    _step("cell sentences -> obs['cell_sentence']", t0)

    genes = adata.uns["mmgene"]["input"]
    symbols = [s for s in expression(adata).var["gene_symbol"].astype(str) if s]
    vectors = default_gene_vectors(genes=symbols)
    genept_w(adata, gene_vectors=vectors)
    _step(f"GenePT-w from offline gene text ({vectors.dim}-d) -> obsm['X_genept_w']", t0)

    if model is None:
        pairs = PairsConfig(species=plan.species, tissue=plan.tissue)
        model = align.train(adata, label_col, pairs=pairs, training=plan.training, out=staged / "model")
        # the model lives at out/model once the folder is renamed: its path and its card's loading code say so
        model.meta["path"] = str(model_path)
        (staged / "model" / "README.md").write_text(render_model_card(model, str(model_path)), encoding="utf-8")
        files["model"] = staged / "model"
        held_out = np.isin(adata.obs_names, model.test_obs_names)
        _step(f"trained the alignment model on {int((~held_out).sum())} cells -> {model_path}", t0)
    else:
        held_out = plan.given_held_out  # its recorded test cells, when trained on this file; else every cell
        _step(f"loaded the alignment model {model_path}", t0)

    test = adata[held_out].copy()
    report = evaluate.evaluate(
        model, test, label_col, dataset_name=f"{genes.get('file')}, held-out cells", seed=seed, species=plan.species, tissue=plan.tissue
    )
    _step("zero-shot evaluation of held-out cells against the GenePT-s and marker baselines", t0)

    adata.obsm[JOINT_KEY] = model.encode_cells(adata)
    index = CellIndex.build(adata, JOINT_KEY, obs_columns=[label_col], model=str(model_path))
    index.save(staged / "index")
    files["index"] = staged / "index"
    hits = query.text_to_cells(index, list(queries), model=model, k=10)
    _step(f"FAISS index ({index.kind}) and {len(queries)} text queries", t0)

    names = sorted(set(labels))
    cleaned = {n: clean_label(n) for n in names}
    reference = None
    if not held_out.all():
        reference = adata[~held_out].copy()
        reference.obs["_label_text"] = [cleaned[x] for x in labels[~held_out]]
    # Temperature and per-label thresholds calibrated on the training cells, when the model was trained
    # here (see mmgene.query.labelling); a given model has none of this data's cells to calibrate on.
    ref = (reference, "_label_text") if reference is not None else None
    query.annotate(adata, list(cleaned.values()), model, reference=ref, species=plan.species, tissue=plan.tissue)
    predicted = adata.obs["mmgene_label"].astype(str).to_numpy()
    back = {v: k for k, v in cleaned.items()}
    predicted_orig = np.array([back.get(p, p) for p in predicted])
    n_unknown = int((predicted == "unknown").sum())
    _step(f"zero-shot annotation: {n_unknown} cells 'unknown' -> obs['mmgene_label'], obs['mmgene_score']", t0)

    seen = "none" if held_out.all() else f"{(~held_out).mean():.0%}"
    files.update(_plots(adata, labels, predicted_orig, model, queries[0], staged, label_col=label_col, seen=seen, seed=seed))
    _step("plots", t0)

    adata.obs = adata.obs.astype({c: str for c in adata.obs.columns if adata.obs[c].dtype == object})
    with atomic_path(staged / "annotated.h5ad") as tmp:
        adata.write_h5ad(tmp)
    files["annotated.h5ad"] = staged / "annotated.h5ad"

    accuracy = float((predicted_orig == labels).mean())
    known = predicted != "unknown"
    report["demo"] = {
        "input": str(genes.get("file")),
        "cells": int(adata.n_obs),
        "genes": int(adata.n_vars),
        "label_col": label_col,
        "train_cells": int((~held_out).sum()),
        "held_out_cells": int(held_out.sum()),
        "train_seconds": model.meta.get("train_seconds"),
        "model": str(model_path),
        "annotation": {
            "rule": "softmax over label similarities, " + (
                "standardised over the cells, default temperature and thresholds" if reference is None
                else "temperature and per-label thresholds calibrated on the training cells"
            ),
            "held_out_accuracy": round(float((predicted_orig[held_out] == labels[held_out]).mean()), 4),
            "accuracy": round(accuracy, 4),
            "unknown": n_unknown,
            "accuracy_of_called": round(float((predicted_orig[known] == labels[known]).mean()), 4) if known.any() else None,
        },
        "queries": {
            q: hits[hits["query"] == q].head(5)[["cell_id", label_col, "score"]].to_dict("records") for q in queries
        },
    }
    _write_report(report, staged, label_col)
    files["report.json"] = staged / "report.json"
    files["report.md"] = staged / "report.md"
    return report


__all__ = ["DemoResult", "run", "DEFAULT_QUERIES", "MMGeneError"]
