"""``mmgene embed genept-w FILE`` and ``mmgene embed genept-s FILE``: GenePT cell embeddings into obsm."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmgene.cli.app import overwrite_option
from mmgene.cli.embed import embed_app
from mmgene.cli.options import OnEmpty, json_option
from mmgene.cli.results import emit
from mmgene.cli.outputs import anndata_target, in_place_option, write_anndata


def _report(adata, key: str, target: Path, as_json: bool) -> None:
    """What was written: obsm[key] and its provenance record (``uns['mmgene'][key]``)."""
    entry = adata.uns["mmgene"][key]
    genes = f", {entry['genes_matched']:,} of {entry['genes_total']:,} genes matched" if "genes_matched" in entry else ""
    empty = f"; {entry['n_empty_cells']:,} cells with nothing to embed (NaN rows, obs[{entry['obs_n_genes']!r}] == 0)" if entry["n_empty_cells"] else ""
    emit(
        {"out": str(target), "key": key, "cells": adata.n_obs, "record": entry},
        f"wrote obsm[{key!r}] ({adata.n_obs:,} x {entry['dimension']}; {entry['encoder']}{genes}{empty}) to {target}",
        as_json=as_json,
    )


@embed_app.command("genept-w")
def genept_w_command(
    file: Path = typer.Argument(..., help="An .h5ad file or .zarr store (raw counts, or log1p data)."),
    gene_vectors: Optional[Path] = typer.Option(None, "--gene-vectors", "-g", help="From `mmgene genes embed` (default: offline text + MiniLM)."),
    encoder: str = typer.Option("minilm", help="Encoder for the default gene vectors."),
    key: str = typer.Option("X_genept_w", help="obsm key to write."),
    on_empty: OnEmpty = typer.Option("nan", help="Cells without a matched gene: nan, zero or raise."),
    chunk_size: int = typer.Option(2048, help="Cells per chunk."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the AnnData (.h5ad or .zarr)."),
    in_place: bool = in_place_option(),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """GenePT-w: expression-weighted average of gene vectors per cell into obsm['X_genept_w']."""
    from mmgene.embed.genept import genept_w
    from mmgene.io import read

    target = anndata_target(file, out, in_place=in_place, overwrite=overwrite)
    adata = read(file)
    genept_w(adata, gene_vectors=gene_vectors, encoder=encoder, key_added=key, on_empty=on_empty, chunk_size=chunk_size)
    write_anndata(adata, target, file=file, overwrite=overwrite)
    _report(adata, key, target, as_json)


@embed_app.command("genept-s")
def genept_s_command(
    file: Path = typer.Argument(..., help="An .h5ad file or .zarr store (raw counts, or log1p data)."),
    encoder: str = typer.Option("minilm", help="minilm (offline), a model folder, hf://owner/name[@revision], or openai:<model>."),
    top_k: int = typer.Option(100, help="Genes per sentence (0: all expressed genes)."),
    key: str = typer.Option("X_genept_s", help="obsm key to write."),
    on_empty: OnEmpty = typer.Option("nan", help="Cells without an expressed gene: nan, zero or raise."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the AnnData (.h5ad or .zarr)."),
    in_place: bool = in_place_option(),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """GenePT-s: embed each cell's ranked-gene sentence into obsm['X_genept_s']."""
    from mmgene.embed.genept import genept_s
    from mmgene.io import read

    target = anndata_target(file, out, in_place=in_place, overwrite=overwrite)
    adata = read(file)
    genept_s(adata, encoder=encoder, top_k=top_k or None, key_added=key, on_empty=on_empty)
    from mmgene.distributed import is_main

    if not is_main():  # another rank of a torchrun job: rank 0 gathered the vectors and writes
        return
    write_anndata(adata, target, file=file, overwrite=overwrite)
    _report(adata, key, target, as_json)
