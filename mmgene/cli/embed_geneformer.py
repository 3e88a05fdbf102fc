"""``mmgene embed geneformer FILE --model PATH_OR_HUB_ID``: Geneformer cell embeddings into obsm."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmgene.cli.embed import embed_app


def write_anndata(adata, out: Path) -> None:
    """Write ``.h5ad`` or ``.zarr`` atomically (a temp path renamed on success)."""
    from mmgene.atomic import atomic_path

    with atomic_path(out) as tmp:
        if out.suffix == ".zarr":
            adata.write_zarr(tmp)
        else:
            adata.write_h5ad(tmp)


@embed_app.command("geneformer")
def embed_geneformer(
    file: Path = typer.Argument(..., help="An .h5ad file or .zarr store with raw counts and Ensembl ids."),
    model: str = typer.Option(..., "--model", "-m", help="Checkpoint folder or hub id owner/repo[/subfolder]."),
    layer: int = typer.Option(-1, help="Geneformer emb_layer: -1 second-to-last encoder layer (default), 0 last."),
    pooling: str = typer.Option("mean", help="mean (gene tokens) or cls (<cls> token, V2 models only)."),
    batch_size: int = typer.Option(16, help="Cells per forward pass (sorted by length, padded per batch)."),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ..."),
    dtype: Optional[str] = typer.Option(None, help="float32 (default), float16 or bfloat16."),
    dictionaries: Optional[Path] = typer.Option(None, help="Folder with the Geneformer dictionary pickles."),
    dictionary_version: Optional[str] = typer.Option(None, help="V1 or V2 (default: from the model's vocabulary)."),
    revision: Optional[str] = typer.Option(None, help="Branch, tag or commit of a hub model."),
    key: str = typer.Option("X_geneformer", help="obsm key to write."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the AnnData (default: FILE, replaced atomically)."),
) -> None:
    """Embed cells with a Geneformer checkpoint into obsm['X_geneformer'] (EmbExtractor semantics)."""
    from mmgene.embed.geneformer import OK_COLUMN, geneformer
    from mmgene.io import read

    adata = read(file)
    geneformer(
        adata,
        model,
        layer=layer,
        pooling=pooling,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        dictionaries=dictionaries,
        version=dictionary_version,
        revision=revision,
        key_added=key,
    )
    target = out or file
    write_anndata(adata, target)
    entry = adata.uns["mmgene"][key]
    typer.echo(
        f"wrote obsm[{key!r}] ({adata.n_obs:,} x {entry['hidden_size']}; model {entry['model']}, layer {layer}, "
        f"{pooling} pooling, {entry['n_encoded']:,} cells encoded, {adata.n_obs - entry['n_encoded']:,} without "
        f"vocabulary genes in obs[{OK_COLUMN!r}]) to {target}"
    )
