"""``mmgene embed geneformer FILE --model FOLDER_OR_HF_ID``: Geneformer cell embeddings into obsm."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmgene.cli.app import overwrite_option
from mmgene.cli.embed import embed_app
from mmgene.cli.options import Dtype, Pooling, Version, device_option, json_option
from mmgene.cli.results import emit
from mmgene.cli.outputs import anndata_target, in_place_option, write_anndata


@embed_app.command("geneformer")
def embed_geneformer(
    file: Path = typer.Argument(..., help="An .h5ad file or .zarr store with raw counts and Ensembl ids."),
    model: str = typer.Option(..., "--model", "-m", help="Checkpoint folder, or a Hub id hf://owner/repo[/subfolder][@revision]."),
    layer: int = typer.Option(-1, help="Geneformer emb_layer: -1 second-to-last encoder layer (default), 0 last."),
    pooling: Pooling = typer.Option("mean", help="mean (gene tokens) or cls (<cls> token, V2 models only)."),
    batch_size: int = typer.Option(16, help="Cells per forward pass (sorted by length, padded per batch)."),
    device: str = device_option(),
    dtype: Optional[Dtype] = typer.Option(None, help="float32 (default), float16 or bfloat16 (fp32, fp16/half, bf16 also work)."),
    dictionaries: Optional[str] = typer.Option(None, help="Folder with Geneformer's .pkl dictionaries, or hf://owner/name on the Hub (default: hf://ctheodoris/Geneformer)."),
    dictionary_version: Optional[Version] = typer.Option(None, case_sensitive=False, help="V1 or V2 (default: from the model's vocabulary)."),
    revision: Optional[str] = typer.Option(None, help="Branch, tag or commit of a hub model."),
    key: str = typer.Option("X_geneformer", help="obsm key to write."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the AnnData (.h5ad or .zarr)."),
    in_place: bool = in_place_option(),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Embed cells with a Geneformer checkpoint into obsm['X_geneformer'] (EmbExtractor semantics)."""
    from mmgene.embed.geneformer import OK_COLUMN, geneformer
    from mmgene.io import read

    target = anndata_target(file, out, in_place=in_place, overwrite=overwrite)
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
    from mmgene.distributed import is_main

    if not is_main():  # another rank of a torchrun job: rank 0 gathered the vectors and writes
        return
    write_anndata(adata, target, file=file, overwrite=overwrite)
    entry = adata.uns["mmgene"][key]
    result = {"out": str(target), "key": key, "cells": adata.n_obs, "ok_column": OK_COLUMN, "record": entry}
    emit(result, lambda: (
        f"wrote obsm[{key!r}] ({adata.n_obs:,} x {entry['hidden_size']}; model {entry['model']}, layer {layer}, "
        f"{pooling} pooling, {entry['n_encoded']:,} cells encoded, {adata.n_obs - entry['n_encoded']:,} without "
        f"vocabulary genes in obs[{OK_COLUMN!r}]) to {target}"
    ), as_json=as_json)
