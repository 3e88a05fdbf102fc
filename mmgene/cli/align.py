"""``mmgene train`` and ``mmgene evaluate``: fit an aligned text-cell model and score it zero-shot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

from mmgene.align.config import DEVICES, PRECISIONS, CorpusTrainingConfig, ModelConfig, TrainingConfig
from mmgene.cli.app import app, overwrite_option
from mmgene.cli.options import Loss, config_option, json_option
from mmgene.cli.results import emit
from mmgene.config import overrides
from mmgene.errors import ParameterError
from mmgene.evaluate.config import EvaluateConfig
from mmgene.pairs.config import PairsConfig
from mmgene.pairs.stream_config import StreamConfig


@app.command("train")
def train_command(
    file: Path = typer.Argument(None, help="AnnData (.h5ad) with expression and cell-type labels (or use --corpus)."),
    label_col: list[str] = typer.Option(
        [], "--label-col", help="obs column(s) with cell-type names; repeat for more (one, for a --corpus folder or file)."
    ),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    corpus: Path = typer.Option(
        None,
        "--corpus",
        help="Train one model on every dataset of a corpus: a manifest CSV (path,dataset,label_col,ontology_col,species,tissue), "
        "or a folder/file with --label-col. Instead of FILE.",
    ),
    input_: list[str] = typer.Option(["genes"], "--input", help="What the omics tower reads: 'genes' and/or obsm keys (X_genept_w, X_pca, ...)."),
    ontology_col: str = typer.Option(None, "--ontology-col", help="obs column of Cell Ontology ids (CL:...) to enrich captions."),
    orthology: Path = typer.Option(
        None, "--orthology",
        help="With --corpus: mouse -> human orthology table (CSV with mouse and human symbol columns, or MGI's "
        "HOM_MouseHumanSequence.rpt) that maps the mouse datasets' genes; default: case-insensitive symbol match.",
    ),
    # PairsConfig
    captions_per_cell: int | None = config_option(PairsConfig, "captions_per_cell"),
    marker_share: float | None = config_option(PairsConfig, "marker_share"),
    negatives: bool | None = config_option(PairsConfig, "negatives", "--negatives/--no-negatives"),
    test_size: float | None = config_option(PairsConfig, "test_size"),
    group_col: str | None = config_option(PairsConfig, "group_col"),
    exclude_labels: list[str] | None = config_option(PairsConfig, "exclude_labels", "--exclude"),
    max_genes: int | None = config_option(PairsConfig, "max_genes"),
    panel_share: float | None = config_option(PairsConfig, "panel_share"),
    panel_sizes: list[int] | None = config_option(PairsConfig, "panel_sizes", "--panel-size"),
    species: str | None = config_option(PairsConfig, "species"),
    tissue: str | None = config_option(PairsConfig, "tissue"),
    # ModelConfig
    text_model: str | None = config_option(ModelConfig, "text_model"),
    train_text: bool | None = config_option(ModelConfig, "train_text", "--train-text/--freeze-text"),
    gene_dim: int | None = config_option(ModelConfig, "gene_dim"),
    hidden: int | None = config_option(ModelConfig, "hidden"),
    dim: int | None = config_option(ModelConfig, "dim"),
    gene_dropout: float | None = config_option(ModelConfig, "gene_dropout"),
    use_aliases: bool | None = config_option(ModelConfig, "use_aliases", "--use-aliases/--no-aliases"),
    gene_bridge: bool | None = config_option(ModelConfig, "gene_bridge", "--gene-bridge/--no-gene-bridge"),
    gene_channel: float | None = config_option(ModelConfig, "gene_channel"),
    query_channel: float | None = config_option(ModelConfig, "query_channel"),
    # TrainingConfig
    loss: Loss | None = config_option(TrainingConfig, "loss"),
    temperature: float | None = config_option(TrainingConfig, "temperature"),
    epochs: float | None = config_option(TrainingConfig, "epochs"),
    max_steps: int | None = config_option(TrainingConfig, "max_steps"),
    batch_size: int | None = config_option(TrainingConfig, "batch_size"),
    learning_rate: float | None = config_option(TrainingConfig, "learning_rate"),
    hard_negatives: int | None = config_option(TrainingConfig, "hard_negatives", "--hard-negatives", min=0),
    mine_every: int | None = config_option(TrainingConfig, "mine_every", "--mine-every", min=0),
    eval_steps: int | None = config_option(TrainingConfig, "eval_steps", min=0),
    seed: int | None = config_option(TrainingConfig, "seed"),
    device: Literal[DEVICES] | None = config_option(TrainingConfig, "device"),  # type: ignore[valid-type]
    precision: Literal[PRECISIONS] | None = config_option(TrainingConfig, "precision"),  # type: ignore[valid-type]
    # CorpusTrainingConfig (--corpus only)
    rows_per_dataset: int | None = config_option(CorpusTrainingConfig, "rows_per_dataset", min=0),
    mask_related: bool | None = config_option(CorpusTrainingConfig, "mask_related", "--mask-related/--no-mask-related"),
    members: int | None = config_option(CorpusTrainingConfig, "members", min=1),
    drop_contradicted: bool | None = config_option(
        CorpusTrainingConfig, "drop_contradicted", "--drop-contradicted/--keep-contradicted"
    ),
    # StreamConfig (--corpus --stream only)
    stream: bool = typer.Option(
        False, "--stream", help="With --corpus: read the datasets from disk in chunks, pairs made on the fly (mmgene.align.train_stream), for corpora larger than memory."
    ),
    chunk_size: int | None = config_option(StreamConfig, "chunk_size", min=1),
    shuffle_chunks: int | None = config_option(StreamConfig, "shuffle_chunks", min=1),
    eval_cells: int | None = config_option(StreamConfig, "eval_cells", min=0),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Train a contrastive text-cell model and save it to --out (settings: mmgene.align.config; the
    Trainer's log goes to OUT/training_log.jsonl)."""
    # every option named after a config field; the ones given override that config's defaults
    given = {k: v for k, v in locals().items() if v is not None and v != []}
    from mmgene.atomic import check_output

    if (file is None) == (corpus is None):
        raise ParameterError(
            "give exactly one of FILE and --corpus" + (f", got both ({file} and {corpus})" if file else ", got neither"),
            "mmgene train",
            "pass an AnnData FILE with --label-col, or --corpus MANIFEST",
        )
    configs = {
        "pairs": overrides(PairsConfig, given),
        "model": overrides(ModelConfig, given),
        "training": overrides(TrainingConfig, given),
    }
    if query_channel is not None and not configs["model"].channel_on:
        raise ParameterError(
            "--query-channel weighs the gene channel, which this model does not have (--no-gene-bridge or --gene-channel 0)",
            "option --query-channel",
            "leave --query-channel out, or keep the gene bridge and a --gene-channel above 0",
        )
    if eval_steps and configs["pairs"].test_size == 0:
        raise ParameterError(
            "--eval-steps sets how often the held-out cells are scored, but --test-size 0 holds none out",
            "option --eval-steps",
            "leave --eval-steps out, or hold cells out with --test-size (e.g. 0.2)",
        )
    streamed = overrides(StreamConfig, given) if stream else None
    if streamed is None and (chunk_size, shuffle_chunks, eval_cells) != (None, None, None):
        raise ParameterError("--chunk-size, --shuffle-chunks and --eval-cells apply to --stream only", "mmgene train", "add --stream (with --corpus), or leave them out")
    if corpus is not None:
        model = _train_corpus(
            corpus, label_col, ontology_col, input_, configs, overrides(CorpusTrainingConfig, given), out, overwrite, streamed, orthology
        )
    else:
        if orthology is not None:
            raise ParameterError(
                "--orthology maps the genes of a corpus's mouse datasets to human symbols; one AnnData is trained on its own genes",
                "option --orthology of mmgene train FILE",
                "leave --orthology out, or train on a corpus (--corpus MANIFEST, folder or file) to match mouse genes to human ones",
            )
        if (rows_per_dataset, mask_related, members, drop_contradicted) != (None,) * 4 or stream:
            raise ParameterError(
                "--rows-per-dataset, --mask-related, --members, --drop-contradicted and --stream apply to --corpus training only",
                "mmgene train FILE",
                "leave them out, or train on a corpus with --corpus",
            )
        if not label_col:
            raise ParameterError("no label column given", "option --label-col", "pass --label-col COLUMN (the obs column of cell types)")
        check_output(out, overwrite=overwrite, inputs=[file], folder=True)
        import mmgene.io
        from mmgene.align import train  # imports torch and sentence-transformers: after the cheap checks

        adata = mmgene.io.read(file)
        model = train(adata, label_col, ontology_col=ontology_col, inputs=input_, **configs, out=out, overwrite=overwrite)
    from mmgene.align.training_log import FILE
    from mmgene.distributed import is_main

    if not is_main():  # under torchrun only rank 0 saved the model and reports
        return
    from mmgene.align.ensemble import eval_histories

    runs = eval_histories(model.meta)
    scores = [f"{h[-1]['zero_shot_balanced_accuracy']:.3f}" for h in runs if h]
    last = f"; held-out zero-shot balanced accuracy {', '.join(scores)}" + (" (members)" if len(runs) > 1 else "") if scores else ""
    logs = [str(p) for p in [out / FILE, *sorted(out.glob(f"member-*/{FILE}"))] if p.is_file()]
    result = {"model": str(out), "training_log": (logs[0] if len(logs) == 1 else logs) if logs else None, **model.meta}
    result.pop("path", None)
    emit(result, f"wrote {out} ({model.meta['train_seconds']} s{last})", as_json=as_json)


def _train_corpus(
    corpus: Path,
    label_col: list[str],
    ontology_col: str | None,
    inputs: list[str],
    configs: dict[str, Any],
    balance: CorpusTrainingConfig,
    out: Path,
    overwrite: bool,
    stream: StreamConfig | None = None,
    orthology: Path | None = None,
) -> Any:
    """``mmgene train --corpus``: read the corpus (a manifest, or files with one --label-col), its mouse
    genes matched through ``orthology`` when given (as ``mmgene pretrain --orthology``), and train on
    all of it; with ``stream``, read it backed and train on pairs made chunk by chunk."""
    from mmgene.align import train_corpus, train_stream
    from mmgene.atomic import check_output
    from mmgene.corpus import CorpusOptions, read_corpus

    if len(label_col) > 1:
        raise ParameterError(
            f"--corpus takes at most one --label-col, got {label_col}", "option --label-col", "pass one column (a manifest names its own)"
        )
    check_output(out, overwrite=overwrite, inputs=[corpus, *([orthology] if orthology is not None else [])], folder=True)
    options = CorpusOptions(orthology=orthology, backed=stream is not None)
    with read_corpus(corpus, options, label_col=label_col[0] if label_col else None, ontology_col=ontology_col) as data:
        if stream is not None:
            return train_stream(data, inputs=inputs, **configs, balance=balance, stream=stream, out=out, overwrite=overwrite)
        return train_corpus(data, inputs=inputs, **configs, balance=balance, out=out, overwrite=overwrite)


@app.command("evaluate")
def evaluate_command(
    model: str = typer.Argument(..., help="Model folder written by `mmgene train`, or a Hub id hf://owner/name[@revision]."),
    file: Path = typer.Argument(..., help="Labelled AnnData (.h5ad) to evaluate on."),
    label_col: str = typer.Option(..., "--label-col", help="obs column with the true cell types."),
    out: Path = typer.Option(None, "--out", help="Write <out>.json and <out>.md (default: beside FILE)."),
    baseline: bool | None = config_option(EvaluateConfig, "baseline", "--baseline/--no-baseline"),
    marker_baseline: bool | None = config_option(EvaluateConfig, "marker_baseline", "--marker-baseline/--no-marker-baseline"),
    ontology: bool | None = config_option(EvaluateConfig, "ontology", "--ontology/--no-ontology"),
    markers: bool | None = config_option(EvaluateConfig, "markers", "--markers/--no-markers"),
    species: str | None = config_option(EvaluateConfig, "species"),
    tissue: str | None = config_option(EvaluateConfig, "tissue"),
    standardize: bool | None = config_option(EvaluateConfig, "standardize", "--standardize/--no-standardize"),
    weigh_types: bool | None = config_option(EvaluateConfig, "weigh_types", "--weigh-types/--no-weigh-types"),
    recentre: bool | None = config_option(EvaluateConfig, "recentre", "--recentre/--no-recentre"),
    data_markers: bool | None = config_option(EvaluateConfig, "data_markers", "--data-markers/--no-data-markers"),
    definitions: bool | None = config_option(EvaluateConfig, "definitions", "--definitions/--no-definitions"),
    hierarchy: bool | None = config_option(EvaluateConfig, "hierarchy", "--hierarchy/--no-hierarchy"),
    refine: bool | None = config_option(EvaluateConfig, "refine", "--refine/--no-refine"),
    held_out: bool = typer.Option(False, "--held-out", help="Score only the cells the model held out (FILE must be its training file)."),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Zero-shot classification, retrieval and clustering of MODEL on FILE; prints the Markdown table."""
    import mmgene.io
    from mmgene.align import load
    from mmgene.evaluate import evaluate, markdown_report

    from mmgene.atomic import check_output
    from mmgene.evaluate.report import report_files

    config = overrides(EvaluateConfig, {
        "baseline": baseline, "marker_baseline": marker_baseline, "ontology": ontology, "markers": markers,
        "species": species, "tissue": tissue, "standardize": standardize, "recentre": recentre, "data_markers": data_markers, "definitions": definitions, "hierarchy": hierarchy, "refine": refine,
        "weigh_types": weigh_types,
    })
    if out is not None and out.name in ("", ".", ".."):  # '.' has no name to put .json and .md after
        raise ParameterError(
            f"--out {str(out)!r} names a folder, but it is the start of the report's file names (<out>.json, <out>.md)",
            "option --out", "pass a name, e.g. --out eval or --out reports/eval (writes eval.json and eval.md)",
        )
    target = out if out is not None else file.with_name(file.stem + ".mmgene_eval")
    for path in report_files(target):
        check_output(path, overwrite=overwrite, inputs=[file, model])
    aligned = load(model)
    adata = mmgene.io.read(file)
    name = file.name
    if held_out:
        from mmgene.evaluate.heldout import held_out as held_out_cells

        adata = held_out_cells(adata, aligned.meta)
        name = f"{file.name} (held-out {adata.n_obs} cells)"
    report = evaluate(aligned, adata, label_col, config, out=target, overwrite=overwrite, dataset_name=name)
    emit(report, lambda: f"{markdown_report(report)}\nwrote {', '.join(report['files'])}", as_json=as_json)
