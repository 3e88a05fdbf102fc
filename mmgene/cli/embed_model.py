"""``mmgene embed model FILE --model MODEL``: a trained mmgene model's joint-space cell vectors into obsm.

What an index needs for text queries through that model (``mmgene index build NEW.h5ad -e X_mmgene``
finds the model in the vectors' provenance). The cells are recentred on the model's training mean as
``annotate`` recentres them (:func:`mmgene.query.space.recentres`), so a text query meets the cells
where annotate scores labels against them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from mmgene.cli.app import overwrite_option
from mmgene.cli.embed import embed_app
from mmgene.cli.options import json_option
from mmgene.cli.outputs import anndata_target, in_place_option, write_anndata
from mmgene.cli.results import emit


def _trained_model(spec: str) -> Any:
    """The aligned model (or ensemble) ``spec`` names; GenePT spaces have commands of their own."""
    from mmgene.errors import ParameterError
    from mmgene.query.space import load_space, space_name

    space = load_space(spec)
    if not hasattr(space, "training_mean"):
        raise ParameterError(
            f"{space_name(space, spec)} is not a trained mmgene model", "option --model",
            "pass a folder written by `mmgene train` or `mmgene pretrain` (or hf://owner/name); for GenePT vectors "
            "use `mmgene embed genept-w` or `mmgene embed genept-s`",
        )
    return space


@embed_app.command("model")
def model_command(
    file: Path = typer.Argument(..., help="An .h5ad file or .zarr store (raw counts, or log1p data)."),
    model: str = typer.Option(..., "--model", "-m", help="A trained mmgene model: a folder from `mmgene train`/`pretrain`, or hf://owner/name."),
    key: str = typer.Option("X_mmgene", help="obsm key to write."),
    recentre: Optional[bool] = typer.Option(
        None, "--recentre/--no-recentre",
        help="Move the cells' mean learned vector onto the model's training mean first, as annotate does (default: when the model stores one and there are at least 30 cells; off for a sorted population).",
    ),
    batch_size: int = typer.Option(256, help="Cells per forward pass."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the AnnData (.h5ad or .zarr)."),
    in_place: bool = in_place_option(),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """A trained mmgene model's cell vectors into obsm['X_mmgene'], for an index that text queries search."""
    from mmgene.config import check_key
    from mmgene.distributed import is_main
    from mmgene.errors import ParameterError, is_whole_number
    from mmgene.io import read
    from mmgene.provenance import check_own_columns, check_record_slot
    from mmgene.query.space import recentres

    check_key(key, "option --key", "X_mmgene")
    if not is_whole_number(batch_size, 1):
        raise ParameterError(f"--batch-size must be a whole number of at least 1, got {batch_size}", "option --batch-size", "use e.g. 256")
    target = anndata_target(file, out, in_place=in_place, overwrite=overwrite)
    adata = read(file)
    check_record_slot(adata, str(file))
    check_own_columns(adata, [key], key, "option --key", slot="obsm")
    space = _trained_model(model)
    moved = recentres(space, adata.n_obs, recentre)
    space.encode_cells(adata, key_added=key, recentre=moved, batch_size=batch_size)
    if not is_main():  # another rank of a torchrun job: rank 0 gathered the vectors and writes
        return
    write_anndata(adata, target, file=file, overwrite=overwrite)
    entry = adata.uns["mmgene"][key]
    dim = int(adata.obsm[key].shape[1])
    emit(
        {"out": str(target), "key": key, "cells": adata.n_obs, "dim": dim, "model": entry.get("model"), "recentred": moved},
        f"wrote obsm[{key!r}] ({adata.n_obs:,} x {dim}; {entry.get('model')}"
        + (", recentred on its training mean" if moved else "") + f") to {target}",
        as_json=as_json,
    )
