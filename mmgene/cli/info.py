"""``mmgene info FILE``: what mmgene sees in an AnnData."""

from __future__ import annotations

from pathlib import Path

import typer

from mmgene.cli.app import app
from mmgene.cli.options import json_option
from mmgene.cli.results import emit


@app.command()
def info(
    file: Path = typer.Argument(..., help="An .h5ad file or .zarr store."),
    backed: bool = typer.Option(False, help="Open the .h5ad on disk instead of loading it."),
    as_json: bool = json_option(),
) -> None:
    """Cells, genes, counts found, gene ids and mapping rate, label-like obs columns, obsm keys."""
    from mmgene.io import read
    from mmgene.io.describe import describe

    summary = describe(read(file, backed=backed))
    emit(summary, lambda: _text(summary), as_json=as_json)


def _text(summary: dict) -> str:
    """The summary as aligned lines for people."""
    unlabelled = summary.get("unlabelled_cells", {})
    labels = ", ".join(
        f"{k} ({v}" + (f"; {unlabelled[k]:,} cells unlabelled" if k in unlabelled else "") + ")" for k, v in summary["label_columns"].items()
    ) or "none"
    obsm = ", ".join(f"{k} {v}" for k, v in summary["obsm"].items()) or "none"
    lines = [
        f"file:           {summary['file']}",
        f"cells:          {summary['n_obs']:,}",
        f"genes:          {summary['n_vars']:,}",
        f"expression:     {summary['matrix']} ({'raw counts' if summary['kind'] == 'counts' else 'log1p-normalised'})",
        f"gene symbols:   from {summary['symbol_source']}, {summary['genes_with_symbol']:,} genes ({summary['symbol_rate']:.1%})",
        f"Ensembl ids:    from {summary['ensembl_source']}, {summary['genes_with_ensembl']:,} genes ({summary['ensembl_rate']:.1%})",
        f"gene table:     {summary['gene_table']}: {summary['genes_in_gene_table']:,} genes known ({summary['gene_table_rate']:.1%})",
        f"label columns:  {labels}",
        f"obsm:           {obsm}",
    ]
    renamed = [
        f"{n:,} {what}"
        for n, what in (
            (summary.get("joined_names_split", 0), "joined names read as a symbol and an Ensembl id"),
            (summary.get("repeated_symbols_settled", 0), "repeated symbols settled by Ensembl id"),
        )
        if n
    ]
    if renamed:
        lines.insert(7, f"gene names:     {'; '.join(renamed)}")
    if summary.get("symbols_look_mouse"):
        from mmgene.genes.ids import LOOKED_UP, MOUSE_STYLE_EXAMPLES

        looked_up = summary["ensembl_source"] == LOOKED_UP
        lines.insert(5, (
            f"species:        mouse, by its symbols ({summary['mouse_style_symbols']:,} in mouse style: {MOUSE_STYLE_EXAMPLES})"
            + ("; the Ensembl ids are the human genes of the same symbol" if looked_up else "")
        ))
    return "\n".join(lines)
