"""``mmgene embed ...``: the command group that cell-embedding commands register on."""

from __future__ import annotations

import typer

from mmgene.cli.app import app

embed_app = typer.Typer(help="Compute cell embeddings into obsm (GenePT-w, GenePT-s, Geneformer, a trained mmgene model).", no_args_is_help=True)
app.add_typer(embed_app, name="embed")
