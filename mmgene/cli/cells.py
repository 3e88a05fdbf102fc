"""``mmgene sentences FILE OUT`` and ``mmgene tokenize FILE OUT``: cells as text or Geneformer tokens.

Both write a Hugging Face ``datasets.Dataset`` folder (``save_to_disk``; ``OUT`` ending in
``.parquet`` writes one Parquet file instead), atomically, with one row per cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmgene.cli.app import app, overwrite_option
from mmgene.cli.options import Ties, Version, json_option
from mmgene.cli.results import emit


def _obs_columns(adata, names: list[str]):
    """The requested obs columns (checked), or None."""
    if not names:
        return None
    from mmgene.io import obs_column

    import pandas as pd

    return pd.DataFrame({name: obs_column(adata, name).to_numpy() for name in names}, index=adata.obs_names)


def _write_table(table, out: Path, overwrite: bool) -> None:
    """A pyarrow table as a datasets folder (or a .parquet file), written atomically."""
    from mmgene.atomic import atomic_path

    with atomic_path(out, overwrite=overwrite) as tmp:
        if out.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        else:
            from datasets import Dataset
            from datasets.table import InMemoryTable

            Dataset(InMemoryTable(table)).save_to_disk(str(tmp))


@app.command("sentences")
def sentences_command(
    file: Path = typer.Argument(..., help="An .h5ad file or .zarr store (counts or log1p data)."),
    out: Path = typer.Argument(..., help="Output: a datasets folder (save_to_disk), or a .parquet file."),
    top_k: Optional[int] = typer.Option(None, "--top-k", "-k", help="Keep the first K genes of each cell (default: all expressed genes)."),
    exclude: list[str] = typer.Option([], "--exclude", "-x", help="Gene to leave out: exact symbol, or prefix ending in '*' or '-' (MT-, RPL*). Repeatable."),
    ties: Ties = typer.Option("position", help="Order of equal values: position (matrix order), symbol (alphabetical) or random."),
    seed: int = typer.Option(0, help="Seed of the gene order when --ties random."),
    obs: list[str] = typer.Option([], "--obs", help="obs column to copy into the dataset (repeatable), e.g. --obs cell_type."),
    backed: bool = typer.Option(False, help="Open an .h5ad on disk and stream it (for files larger than memory)."),
    chunk_size: int = typer.Option(8192, help="Cells per streamed chunk."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Threads (default: every core, or MMGENE_N_JOBS); the output is the same for any value."),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Write cell sentences: expressed genes' symbols, most expressed first (Cell2Sentence)."""
    import numpy as np
    import pyarrow as pa

    from mmgene.atomic import check_output
    from mmgene.cells.sentences import iter_sentences
    from mmgene.cells.vocabulary import build_vocabulary
    from mmgene.io import expression, read

    check_output(out, overwrite=overwrite, inputs=[file])
    adata = read(file, backed=backed)
    extra = _obs_columns(adata, obs)
    view = expression(adata)
    vocab = build_vocabulary(view.var, exclude, ties, seed)
    texts: list[str] = []
    words = []
    for _, _, chunk, n_words in iter_sentences(view, vocab, top_k, chunk_size, n_jobs=jobs):
        texts.extend(chunk)
        words.append(n_words)
    n_words = np.concatenate(words)
    columns = {"cell_id": pa.array(view.obs_names.astype(str).tolist()), "cell_sentence": pa.array(texts, type=pa.large_string()), "n_genes": pa.array(n_words)}
    if extra is not None:
        for name in extra.columns:
            columns.setdefault(name, pa.array(extra[name].astype(str).to_numpy() if extra[name].dtype == "category" else extra[name].to_numpy(), from_pandas=True))
    _write_table(pa.table(columns), out, overwrite)
    result = {
        "out": str(out), "cells": len(texts), "mean_genes": float(n_words.mean()) if len(texts) else 0.0,
        "empty_cells": int((n_words == 0).sum()), "excluded_genes": int(vocab.n_excluded), "ties": ties,
    }
    emit(result, lambda: (
        f"wrote {result['cells']:,} cell sentences ({result['mean_genes']:.0f} genes on average, "
        f"{result['empty_cells']:,} empty; {result['excluded_genes']:,} genes excluded; ties by {ties}) to {out}"
    ), as_json=as_json)


@app.command("tokenize")
def tokenize_command(
    file: Path = typer.Argument(..., help="An .h5ad file or .zarr store with raw counts and Ensembl ids (or symbols)."),
    out: Path = typer.Argument(..., help="Output: a datasets folder (save_to_disk) with input_ids, length, cell_id, or a .parquet file."),
    dictionaries: Optional[str] = typer.Option(None, help="Folder with Geneformer's .pkl dictionaries, or hf://owner/name on the Hub (default: hf://ctheodoris/Geneformer)."),
    version: Version = typer.Option("V1", case_sensitive=False, help="V1 (2,048 genes) or V2 (<cls> + 4,094 genes + <eos>)."),
    obs: list[str] = typer.Option([], "--obs", help="obs column to copy into the dataset (repeatable), e.g. --obs cell_type."),
    backed: bool = typer.Option(False, help="Open an .h5ad on disk and stream it (for files larger than memory)."),
    chunk_size: int = typer.Option(4096, help="Cells per streamed chunk."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Threads (default: every core, or MMGENE_N_JOBS); the output is the same for any value."),
    all_cells: bool = typer.Option(False, "--all-cells", help="Encode every cell even when obs['filter_pass'] exists (Geneformer encodes only filter_pass == 1)."),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Write Geneformer rank-value encodings (TranscriptomeTokenizer's input_ids and length)."""
    from mmgene.atomic import check_output
    from mmgene.cells.dictionaries import load_dictionaries
    from mmgene.cells.rank_encoding import rank_encode
    from mmgene.io import read

    check_output(out, overwrite=overwrite, inputs=[file])
    adata = read(file, backed=backed, require="counts")
    extra = _obs_columns(adata, obs)
    dicts = load_dictionaries(dictionaries, version)
    enc = rank_encode(adata, dicts, chunk_size=chunk_size, n_jobs=jobs, filter_pass=False if all_cells else None)
    ds = enc.to_dataset(None if extra is None else extra.iloc[enc.cells])
    _write_table(ds.data.table, out, overwrite)
    result = {
        "out": str(out), "cells": len(enc), "version": dicts.version,
        "mean_length": float(enc.length.mean()) if len(enc) else 0.0, "cells_without_vocabulary_genes": len(enc.empty_cells),
    }
    emit(result, lambda: (
        f"wrote {result['cells']:,} cells ({dicts.version}, mean length {result['mean_length']:.0f}, "
        f"{result['cells_without_vocabulary_genes']:,} cells without vocabulary genes) to {out}"
    ), as_json=as_json)
