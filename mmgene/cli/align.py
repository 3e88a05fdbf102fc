"""``mmgene train`` and ``mmgene evaluate``: fit an aligned text-cell model and score it zero-shot."""

from __future__ import annotations

from pathlib import Path

import typer

from mmgene.cli.app import app, overwrite_option


@app.command("train")
def train_command(
    file: Path = typer.Argument(..., help="AnnData (.h5ad) with expression and cell-type labels."),
    label_col: list[str] = typer.Option(..., "--label-col", help="obs column(s) with cell-type names; repeat for more."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    input_: list[str] = typer.Option(["genes"], "--input", help="What the omics tower reads: 'genes' and/or obsm keys (X_genept_w, X_pca, ...)."),
    ontology_col: str = typer.Option(None, "--ontology-col", help="obs column of Cell Ontology ids (CL:...) to enrich captions."),
    group_col: str = typer.Option(None, "--group-col", help="Split by this obs column (donor, batch) instead of by cell."),
    exclude: list[str] = typer.Option([], "--exclude", help="Leave this class out of training (repeatable)."),
    epochs: float = typer.Option(4.0, help="Training epochs."),
    max_steps: int = typer.Option(-1, help="Stop after this many steps (overrides epochs)."),
    batch_size: int = typer.Option(128, help="Pairs per batch."),
    learning_rate: float = typer.Option(2e-3, help="AdamW learning rate."),
    loss: str = typer.Option("clip", help="'clip' (symmetric InfoNCE, learnable temperature) or 'mnrl'."),
    train_text: bool = typer.Option(False, "--train-text/--freeze-text", help="Fine-tune the text transformer (slow)."),
    text_model: str = typer.Option(None, help="Text model folder, or a Hub id hf://owner/name[@revision] (default: offline MiniLM)."),
    gene_bridge: bool = typer.Option(True, "--gene-bridge/--no-gene-bridge", help="Let text reach genes whose NCBI names resemble it."),
    gene_channel: float = typer.Option(0.0, help="Weight of the explicit gene channel in the joint space (0: off; the PBMC benchmark uses 0.3)."),
    query_channel: float = typer.Option(None, help="Gene-channel weight when encoding with the trained model (default: --gene-channel; the PBMC benchmark uses 0.5)."),
    negatives: bool = typer.Option(False, "--negatives/--no-negatives", help="Add a random caption of another class to each training row."),
    hard_negatives: int = typer.Option(0, "--hard-negatives", min=0, help="K > 0: after each epoch, give each training row a caption of another class drawn from the K the model as trained so far scores closest (0: off)."),
    mine_every: int = typer.Option(0, "--mine-every", min=0, help="With --hard-negatives: steps between minings (0: one epoch)."),
    test_size: float = typer.Option(0.2, help="Held-out share of cells (or groups)."),
    seed: int = typer.Option(0, help="Random seed."),
    overwrite: bool = overwrite_option(),
) -> None:
    """Train a contrastive text-cell model and save it to --out."""
    import mmgene.io
    from mmgene.align import train
    from mmgene.atomic import check_output

    check_output(out, overwrite=overwrite, inputs=[file])
    adata = mmgene.io.read(file)
    model = train(
        adata,
        label_col,
        ontology_col=ontology_col,
        inputs=input_,
        out=out,
        overwrite=overwrite,
        text_model=text_model,
        train_text=train_text,
        loss=loss,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        negatives=negatives,
        hard_negatives=hard_negatives,
        mine_every=mine_every,
        test_size=test_size,
        group_col=group_col,
        exclude_labels=exclude,
        gene_bridge=gene_bridge,
        gene_channel=gene_channel,
        query_channel=query_channel,
        seed=seed,
    )
    hist = model.meta.get("eval_history") or []
    last = f"; held-out zero-shot balanced accuracy {hist[-1]['zero_shot_balanced_accuracy']:.3f}" if hist else ""
    typer.echo(f"wrote {out} ({model.meta['train_seconds']} s{last})")


@app.command("evaluate")
def evaluate_command(
    model: str = typer.Argument(..., help="Model folder written by `mmgene train`, or a Hub id hf://owner/name[@revision]."),
    file: Path = typer.Argument(..., help="Labelled AnnData (.h5ad) to evaluate on."),
    label_col: str = typer.Option(..., "--label-col", help="obs column with the true cell types."),
    out: Path = typer.Option(None, "--out", help="Write <out>.json and <out>.md (default: beside FILE)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also score the GenePT-s zero-shot baseline."),
    marker_baseline: bool = typer.Option(
        True, "--marker-baseline/--no-marker-baseline", help="Also score the textbook-marker baseline (mean z-scored marker expression)."
    ),
    ontology: bool = typer.Option(True, "--ontology/--no-ontology", help="Add Cell Ontology names to the prompts."),
    markers: bool = typer.Option(True, "--markers/--no-markers", help="Expand prompts with canonical marker genes (mmgene.evaluate.markers); --no-markers: names only."),
    standardize: bool = typer.Option(False, "--standardize", help="Z-score each class's scores over the cells before the argmax (uses no labels)."),
    refine: bool = typer.Option(
        False, "--refine", help="Refine every method's scores by self-training on FILE's own principal components (uses the cells, not their labels)."
    ),
    held_out: bool = typer.Option(False, "--held-out", help="Score only the cells the model held out (FILE must be its training file)."),
    overwrite: bool = overwrite_option(),
) -> None:
    """Zero-shot classification, retrieval and clustering of MODEL on FILE; prints the Markdown table."""
    import mmgene.io
    from mmgene.align import load
    from mmgene.evaluate import evaluate, markdown_report

    from mmgene.atomic import check_output
    from mmgene.evaluate.report import report_files

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
    report = evaluate(
        aligned, adata, label_col, out=target, overwrite=overwrite, baseline=baseline, marker_baseline=marker_baseline, ontology=ontology, markers=markers,
        standardize=standardize, refine=refine, dataset_name=name
    )
    typer.echo(markdown_report(report))
    typer.echo(f"wrote {', '.join(report['files'])}")
