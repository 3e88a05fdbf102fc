"""``mmgene pretrain``: the general model from a corpus, in one reproducible recipe (:mod:`mmgene.pretrain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from mmgene.cli.app import app, overwrite_option
from mmgene.cli.options import json_option
from mmgene.cli.results import emit
from mmgene.config import field_help
from mmgene.pretrain import PretrainConfig


def _setting(name: str, *flags: str, **kwargs: Any) -> Any:
    """An option for field ``name`` of PretrainConfig: unset is None (its default applies); help from the field."""
    return typer.Option(None, *flags, help=field_help(PretrainConfig, name), show_default=False, **kwargs)


def _lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for d in summary["datasets"]:
        text = f"  {d['dataset']}: {d['n_cells']:,} cells, {d['share_matched']:.1%} of genes matched, Cell Ontology ids from {d['labels_from']}"
        if d.get("unmapped_labels"):
            fate = f"{d['cells_dropped']:,} cells left out" if d["cells_dropped"] else "kept as their own classes"
            text += f"; unmapped: {', '.join(d['unmapped_labels'])} ({fate})"
        lines.append(text)
    held_out = summary["held_out_balanced_accuracy"]
    scores = [v for v in (held_out if isinstance(held_out, list) else [held_out]) if v is not None]
    members = " (members)" if isinstance(held_out, list) else ""
    score = f"; held-out zero-shot balanced accuracy {', '.join(f'{v:.3f}' for v in scores)}{members}" if scores else ""
    lines.append(
        f"wrote {summary['out']}: {len(summary['datasets'])} datasets, {summary['classes']} classes, "
        f"{summary['train_cells']:,} training cells, seed {summary['seed']}, {summary['train_seconds']} s{score}"
    )
    return lines


@app.command("pretrain")
def pretrain_command(
    sources: list[Path] = typer.Argument(
        ..., help="A corpus manifest CSV (file and Census rows), or .h5ad/.zarr files and folders of them."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write."),
    seed: Optional[int] = _setting("seed", min=0),
    max_steps: Optional[int] = _setting("max_steps", min=1),
    mapping: Optional[Path] = _setting("mapping", "--mapping", "-m"),
    orthology: Optional[Path] = _setting("orthology"),
    min_confidence: Optional[float] = _setting("min_confidence"),
    keep_unmapped: Optional[bool] = _setting("keep_unmapped", "--keep-unmapped/--drop-unmapped"),
    members: Optional[int] = _setting("members", min=1),
    drop_contradicted: Optional[bool] = _setting("drop_contradicted", "--drop-contradicted/--keep-contradicted"),
    label_col: Optional[str] = typer.Option(None, "--label-col", help="obs column of cell-type labels (files and folders only)."),
    ontology_col: Optional[str] = typer.Option(
        None, "--ontology-col", help="obs column of Cell Ontology ids (files and folders only; without one labels are harmonised)."
    ),
    species: Optional[str] = typer.Option(None, help="Species of the files: human (default) or mouse (files and folders only)."),
    tissue: Optional[str] = typer.Option(None, help="Tissue of the files (files and folders only)."),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Corpus -> Cell Ontology labels -> one model trained with the library's defaults, deterministic for --seed."""
    from mmgene.config import overrides
    from mmgene.pretrain import pretrain

    config = overrides(
        PretrainConfig,
        {
            "seed": seed,
            "max_steps": max_steps,
            "mapping": mapping,
            "orthology": orthology,
            "min_confidence": min_confidence,
            "keep_unmapped": keep_unmapped,
            "members": members,
            "drop_contradicted": drop_contradicted,
        },
    )
    result = pretrain(
        sources, out, config=config, label_col=label_col, ontology_col=ontology_col, species=species, tissue=tissue,
        overwrite=overwrite,
    )
    from mmgene.distributed import is_main

    if not is_main():  # under torchrun only rank 0 saved the model and reports
        return
    summary = result.summary()
    emit(summary, lambda: "\n".join(_lines(summary)), as_json=as_json)
