"""``mmgene corpus info``: what a corpus (a manifest, or files and folders) holds, dataset by dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from mmgene.align.config import CorpusTrainingConfig
from mmgene.cli.app import app
from mmgene.cli.options import config_option, json_option
from mmgene.cli.results import emit
from mmgene.evaluate.config import CrossDatasetConfig

corpus_app = typer.Typer(
    help="Corpora: several AnnData sources (a manifest CSV, files, folders) read as one.", no_args_is_help=True
)
app.add_typer(corpus_app, name="corpus")

COLUMNS = ("dataset", "species", "tissue", "cells", "genes", "matched", "label column", "classes", "weight")


def _rows(summary: Any) -> list[tuple[str, ...]]:
    return [
        (
            r.dataset,
            r.species,
            r.tissue or "-",
            f"{r.n_cells:,}" + (f" (+{r.n_unlabelled:,} unlabelled)" if r.n_unlabelled else ""),
            f"{r.n_genes:,}",
            f"{r.n_matched:,} ({r.share_matched:.1%})",
            r.label_col,
            str(r.n_classes),
            f"{r.weight:g}",
        )
        for r in summary.itertuples()
    ]


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(COLUMNS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(COLUMNS, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


@corpus_app.command("info")
def info(
    sources: list[Path] = typer.Argument(..., help="A manifest CSV, or .h5ad/.zarr files and folders of them."),
    label_col: Optional[str] = typer.Option(
        None, "--label-col", help="obs column of cell-type labels (files and folders only)."
    ),
    ontology_col: Optional[str] = typer.Option(
        None, "--ontology-col", help="obs column of Cell Ontology ids (files and folders only)."
    ),
    species: Optional[str] = typer.Option(
        None, help="Species of the files: human (default) or mouse (files and folders only)."
    ),
    tissue: Optional[str] = typer.Option(None, help="Tissue of the files (files and folders only)."),
    orthology: Optional[Path] = typer.Option(
        None,
        help="Mouse -> human orthology table (CSV with mouse and human symbol columns, or MGI's HOM_MouseHumanSequence.rpt).",
    ),
    backed: bool = typer.Option(False, help="Open .h5ad files on disk instead of loading them."),
    as_json: bool = json_option(),
) -> None:
    """Per dataset: species, tissue, cells, genes, share of genes matched to human symbols, label column, classes, training weight."""
    from mmgene.corpus import CorpusOptions, read_corpus

    corpus = read_corpus(
        sources,
        CorpusOptions(orthology=orthology, backed=backed),
        label_col=label_col,
        ontology_col=ontology_col,
        species=species,
        tissue=tissue,
    )
    summary = corpus.summary()
    n_cells = int(summary["n_cells"].sum())
    result = {
        "datasets": json.loads(summary.to_json(orient="records")), "cells": n_cells, "orthology": corpus.orthology.describe()
    }
    emit(result, lambda: (
        _table(_rows(summary))
        + f"\n{len(corpus)} dataset{'s' if len(corpus) != 1 else ''}, {n_cells:,} cells"
        + (f"; mouse genes matched by {corpus.orthology.source}" if any(ds.species == "mouse" for ds in corpus) else "")
    ), as_json=as_json)


def _check_not_a_folder(out: Path) -> None:
    """Refuse a report path that is an (empty) folder before the training, not after it: the report is a
    file and never replaces a folder (check_output lets an empty folder pass, as a new folder output)."""
    from mmgene.errors import OutputError

    if out.is_dir():
        raise OutputError("the output is a file, but a folder of that name exists", str(out), "choose a file path, e.g. inside that folder")


@corpus_app.command("cross-dataset")
def cross_dataset_command(
    manifest: Path = typer.Argument(..., help="A corpus manifest CSV (path, dataset, label_col, ontology_col, species, tissue)."),
    hold_out: list[str] = typer.Option([], "--hold-out", help="Dataset to hold out (repeatable; default: each in turn)."),
    reference: Optional[str] = typer.Option(None, help="Dataset of the single-dataset baseline model (default: pbmc3k)."),
    mapper: bool = typer.Option(True, "--mapper/--no-mapper", help="Also fit the supervised reference mapper."),
    recentre: Optional[bool] = config_option(CrossDatasetConfig, "recentre", "--recentre/--no-recentre"),
    data_markers: Optional[bool] = config_option(CrossDatasetConfig, "data_markers", "--data-markers/--no-data-markers"),
    definitions: Optional[bool] = config_option(CrossDatasetConfig, "definitions", "--definitions/--no-definitions"),
    max_steps: Optional[int] = typer.Option(None, help="Training steps per model (default: the training config's epochs)."),
    seed: Optional[int] = typer.Option(None, help="Training seed (default: the training config's)."),
    members: Optional[int] = config_option(CorpusTrainingConfig, "members", min=1),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the report as JSON here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report."),
    as_json: bool = json_option(),
) -> None:
    """Leave-one-dataset-out zero-shot evaluation, with a single-dataset model and a reference mapper beside it."""
    from mmgene.align import TrainingConfig
    from mmgene.atomic import atomic_path, check_output
    from mmgene.config import overrides
    from mmgene.corpus import read_corpus
    from mmgene.corpus.sources import read_manifest
    from mmgene.errors import ParameterError
    from mmgene.evaluate.cross_dataset import BASELINE, check_dataset_names, check_hold_out, cross_dataset, markdown
    from mmgene.evaluate.report import report_json

    if manifest.suffix.lower() != ".csv":
        raise ParameterError(
            "cross-dataset takes a corpus manifest CSV, not a data file or folder (it has no --label-col)",
            str(manifest),
            "write a manifest CSV with the columns path, dataset, label_col, ontology_col, species, tissue and one row per "
            "dataset (paths relative to its folder), and pass it",
        )
    specs = read_manifest(manifest)  # the datasets' names, checked before any data is read
    # the report may not replace (or sit inside) the manifest or one of the datasets it reads
    inputs = [manifest, *(p for p in (s.path if s.path is not None else s.census.uri for s in specs) if p is not None)]  # type: ignore[union-attr]
    if out is not None:
        check_output(out, overwrite=overwrite, inputs=inputs)
        _check_not_a_folder(out)
    names = [s.dataset for s in specs]
    check_hold_out(hold_out, names, "option --hold-out", corpus_where=str(manifest))
    if reference is not None:
        check_dataset_names([reference], names, BASELINE, "option --reference")
    config = overrides(CrossDatasetConfig, {"datasets": tuple(hold_out) or None, "reference": reference, "mapper": mapper, "recentre": recentre, "data_markers": data_markers, "definitions": definitions})
    report = cross_dataset(
        read_corpus(specs), config=config, training=overrides(TrainingConfig, {"max_steps": max_steps, "seed": seed}),
        balance=overrides(CorpusTrainingConfig, {"members": members}),
    )
    text = report_json(report)
    if out is not None:
        with atomic_path(out, overwrite=overwrite, inputs=inputs) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
    emit(report, lambda: markdown(report), as_json=as_json)
