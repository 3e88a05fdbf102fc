"""``mmgene demo``: the main job end to end, on the embedded default data or your own file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from mmgene.cli.app import app, overwrite_option
from mmgene.cli.options import json_option
from mmgene.cli.results import emit


@app.command()
def demo(
    file: Optional[Path] = typer.Argument(None, help="An .h5ad/.zarr file; default: scanpy's bundled pbmc68k_reduced."),
    label_col: Optional[str] = typer.Option(None, "--label-col", "-l", help="obs column with cell types."),
    out: Path = typer.Option(Path("mmgene-demo"), "--out", "-o", help="Output folder."),
    epochs: Optional[float] = typer.Option(None, help="Training epochs of the alignment model."),
    seed: int = typer.Option(0, help="Seed for the split, training and plots."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="A trained model (folder or hf://owner/name, e.g. from `mmgene pretrain`) to use instead of training one."
    ),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Sentences, GenePT, alignment training, FAISS index, text queries, annotation, report and plots."""
    from mmgene.demo import run

    result = run(file, label_col=label_col, out=out, epochs=epochs, seed=seed, model=model, overwrite=overwrite)
    summary = {
        "out": str(result.out), "seconds": result.seconds, "files": {name: str(path) for name, path in result.files.items()},
        "report": result.report,
    }
    emit(summary, lambda: _text(result, out), as_json=as_json)


def _text(result: Any, out: Path) -> str:
    """The demo's figures for people: zero-shot accuracy against the baselines, annotation, queries, files."""
    zs = result.report["zero_shot"]
    base = result.report.get("baseline") or {}
    demo = result.report["demo"]
    lines = [
        "",
        f"mmgene demo finished in {result.seconds:.0f} s: {demo['input']} ({demo['cells']:,} cells)",
        f"  zero-shot on {demo['held_out_cells']} held-out cells, text prompts only:",
        f"    mmgene     balanced accuracy {zs['balanced_accuracy']:.3f}  macro AUROC {zs['macro_auroc']:.3f}",
    ]
    if base:
        lines.append(f"    GenePT-s   balanced accuracy {base['balanced_accuracy']:.3f}  macro AUROC {base['macro_auroc']:.3f}")
    marker = result.report.get("marker_baseline") or {}
    if marker and not marker.get("scored", True):
        lines.append(f"    markers    not scored: {marker.get('reason', 'no marker gene found')}  (textbook marker genes, no model)")
    elif marker:
        lines.append(f"    markers    balanced accuracy {marker['balanced_accuracy']:.3f}  macro AUROC {marker['macro_auroc']:.3f}"
                     "  (textbook marker genes, no model)")
    ann = demo["annotation"]
    lines.append(
        f"  annotation with unknown rejection: held-out accuracy {ann['held_out_accuracy']:.3f}, "
        f"all cells {ann['accuracy']:.3f}, {ann['unknown']} cells 'unknown'"
    )
    for q, rows in list(demo["queries"].items())[:3]:
        top = ", ".join(str(r[demo["label_col"]]) for r in rows[:3])
        lines.append(f"  query {q!r}: {top}")
    lines.append("  wrote: " + ", ".join(sorted(p.name for p in result.files.values())) + f" in {out}/")
    return "\n".join(lines)
