"""The dataset card of a publish run: its values, computed from the settings and what was staged.

:func:`dataset_card` fills ``mmgene/_cards/dataset_card.md`` (through :mod:`mmgene.cards`) with
the layout and its columns explained, the splits, how the cell sentences and embeddings were made,
the chunk files with their checksums, and how to read the data back.

Text that comes from the data (the source file's name, obs column names and obsm keys, the
provenance of embeddings) is shown as it is but can add nothing to the card: names go in code spans
(:func:`mmgene.cards.code_span`, on one line, fenced past any backticks they hold), and provenance text
in table cells has its Markdown and HTML characters escaped (:func:`mmgene.cards.plain_text`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmgene.cards import code_span, plain_text
from mmgene.hub.chunks import ChunkFile
from mmgene.hub.config import PublishConfig
from mmgene.provenance import records

#: what a card says a split rule guarantees: by groups (True) or per cell (False)
SPLIT_NOTES = {
    True: "no group appears in two splits.",
    False: "the cells of one donor or sample can fall in different splits, so a model tested on the test split "
           "may have seen its donors (publish with `--split-by` to keep such groups apart).",
}

LAYOUT_EXPLANATIONS = {
    "single": (
        "One row per cell: its cell sentence, its caption (when captions were given), the cell's "
        "metadata from `obs`, and the link to its AnnData file. Use it to fine-tune or prompt language "
        "models on cell sentences, or as a catalogue of cells."
    ),
    "pairs": (
        "Cell-caption pairs for a binary matching objective: each cell appears once with its own "
        "caption (`label` 1) and {n_negatives} time(s) with a caption of a different kind of cell drawn "
        "at random (`label` 0). Use it with a classification or contrastive loss that takes labelled pairs."
    ),
    "multiplets": (
        "One row per cell for contrastive training (e.g. sentence-transformers' "
        "MultipleNegativesRankingLoss): `anchor` is the cell sentence, `positive` its caption, "
        "`negative_1..{n_negatives}` are captions of other kinds of cells, and "
        "`negative_cell_1..{n_cell_negatives}` are sentences of other cells with a different caption."
    ),
}

COLUMN_MEANINGS = {
    "sample_idx": "row id, unique across all splits and chunks",
    "cell_idx": "the cell's position in the source AnnData",
    "chunk": "index of the AnnData chunk file holding the cell",
    "cell_id": "the cell's `obs_names` entry (select it in the chunk file)",
    "cell_sentence": "gene symbols ranked by expression",
    "anchor": "the cell sentence",
    "caption": "text describing the cell",
    "positive": "the cell's caption",
    "label": "1 if the caption belongs to the cell, 0 for a drawn negative",
    "share_link": "download link of the AnnData chunk file",
    "chunk_sha256": "sha256 of that file",
}

SHARE_DESCRIPTIONS = {
    "hub": "the Hugging Face Hub (files in this repository)", "webdav": "a WebDAV folder",
    "nextcloud": "Nextcloud public links", "http": "a plain HTTP folder",
}


@dataclass
class Staged:
    """What a publish run has made by the time the card is written."""

    repo_id: str
    dataset: Any
    """The ``datasets.DatasetDict``."""
    chunks: list[ChunkFile]
    links: dict[str, str]
    """Chunk file name -> share link."""
    share_kind: str
    dry_run: bool
    source_name: str
    """The input file's name, or how the in-memory AnnData is called."""


@dataclass
class Sentences:
    """How the cell sentences of the rows were made: the matrix they rank and their lengths in words."""

    view: Any
    """The :class:`~mmgene.io.Expression` they were ranked on."""
    lengths: Sequence[int]


def dataset_card(config: PublishConfig, adata: Any, staged: Staged, sentences: Sentences) -> str:
    """The rendered dataset card (YAML metadata + text)."""
    from mmgene.cards import render_dataset_card

    dd = staged.dataset
    name = config.card.pretty_name or staged.repo_id.split("/")[1]
    card = render_dataset_card(
        card_values(config, adata, staged, sentences), license=config.card.license, n_rows=sum(len(d) for d in dd.values()),
        pretty_name=name, configs=[{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in dd]}],
    )
    return str(card)


def embedding_rows(adata: Any, keys: Sequence[str]) -> list[dict[str, Any]]:
    """How each ``obsm`` embedding was made, from mmgene's provenance (or scanpy's ``uns``)."""
    prov = records(adata)
    rows = []
    for key in keys:
        entry = prov.get(key, {}) if isinstance(prov, Mapping) else {}
        dims = int(adata.obsm[key].shape[1])
        if entry:
            method = entry.get("method", "recorded by mmgene")
            model = entry.get("model") or entry.get("encoder") or "n/a"
            layer = entry.get("layer", "n/a (text embedding)" if "GenePT" in str(method) else "n/a")
            pooling = entry.get("pooling") or (
                "expression-weighted mean of gene vectors, L2-normalised" if method == "GenePT-w"
                else "sentence embedding of the cell sentence" if method == "GenePT-s" else "n/a"
            )
        elif key == "X_pca" and "pca" in adata.uns:
            params = adata.uns["pca"].get("params", {})
            method, model = "PCA (scanpy.pp.pca)", f"{dims} components" + (f", zero_center={params.get('zero_center')}" if params else "")
            layer, pooling = "n/a", "n/a"
        elif key == "X_umap" and "umap" in adata.uns:
            method, model, layer, pooling = "UMAP (scanpy.tl.umap)", "n/a", "n/a", "n/a"
        else:
            method, model, layer, pooling = "not recorded in the AnnData", "unknown", "unknown", "unknown"
        described = {"method": method, "model": model, "layer": layer, "pooling": pooling}
        rows.append({"key": key, "dims": dims, **{name: plain_text(text) for name, text in described.items()}})
    return rows


def _example_row(row: Mapping[str, Any]) -> str:
    """One row as the card's JSON example: long texts and vectors shortened, a NaN or infinity as ``null``
    (JSON has no such number, and the block must stay valid JSON)."""

    def number(value: float) -> float | None:
        return round(value, 4) if math.isfinite(value) else None

    def short(value: Any) -> Any:
        if isinstance(value, str):
            words = value.split(" ")
            return " ".join(words[:12]) + " ..." if len(words) > 12 else value
        if isinstance(value, list):
            return [number(v) if isinstance(v, float) else v for v in value[:4]] + (["..."] if len(value) > 4 else [])
        if isinstance(value, float):
            return number(value)
        return value

    return json.dumps({k: short(v) for k, v in row.items()}, indent=2, ensure_ascii=False, allow_nan=False)


def _column_meaning(col: str) -> str:
    if col in COLUMN_MEANINGS:
        return COLUMN_MEANINGS[col]
    if col.startswith("negative_cell_idx_"):
        return "position in the source AnnData of that negative cell"
    if col.startswith("negative_cell_"):
        return "sentence of another cell with a different caption"
    if col.startswith("negative_"):
        return "a caption of a different kind of cell"
    if col.startswith("emb_"):
        return f"initial embedding {_obs_part('obsm', col[4:])} (float32)"
    return f"cell metadata from {_obs_part('obs', col.removeprefix('obs_'))}"


def _obs_part(part: str, key: str) -> str:
    """``obs['key']`` (or ``obsm``) as one code span, whatever ``key`` holds."""
    return code_span(f"{part}['{key}']")


def published_cells(dd: Any, layout: str) -> Any:
    """Positions in the source AnnData of the cells that have rows (``pairs``/``multiplets`` leave out
    cells without a caption), sorted."""
    import numpy as np

    column = "cell_idx" if layout == "pairs" else "sample_idx"
    return np.unique(np.concatenate([np.asarray(ds[column], dtype=np.int64) for ds in dd.values()]))


def _description(config: PublishConfig, adata: Any, source_name: str, n_published: int | None = None) -> str:
    from mmgene.io import obs_column
    from mmgene.text.labels import label_text

    layout = config.dataset
    if layout.caption_key:
        caption_origin = f"free-text captions from {_obs_part('obs', layout.caption_key)}"
    elif layout.label_key:
        caption_origin = f"captions from the labels in {_obs_part('obs', layout.label_key)}"
    else:
        caption_origin = "no captions"
    n_labels = len(set(label_text(obs_column(adata, layout.label_key))) - {""}) if layout.label_key else 0
    n_published = adata.n_obs if n_published is None else n_published
    cells = (f"{adata.n_obs} cells" if n_published == adata.n_obs
             else f"{n_published} of the {adata.n_obs} cells (those without a caption have no row)")
    return (
        f"{cells} of {code_span(source_name)} as cell sentences with {caption_origin}"
        + (f" ({n_labels} distinct labels)" if n_labels else "")
        + f", in the `{layout.layout}` layout, with each cell's AnnData file linked."
    )


def _access_note(staged: Staged, private: bool) -> str:
    if staged.dry_run:
        return ("This card comes from a dry run: links are `file://` paths on the machine that ran it; there, "
                "`mmgene.hub.fetch_anndata(row, allow_file=True)` reads them (local files are never read otherwise).")
    if private:
        return ("The dataset is private: `load_dataset` and `fetch_anndata` read the token from `HF_TOKEN` or "
                "`hf auth login` (it is sent to the Hub only, never put in a link).")
    return "The dataset is public; no token is needed."


def card_values(config: PublishConfig, adata: Any, staged: Staged, sentences: Sentences) -> dict[str, Any]:
    """Every placeholder of the dataset card template, from the settings and what was staged."""
    import numpy as np

    from mmgene.provenance import package_versions

    layout, chunking, card = config.dataset, config.chunks, config.card
    dd, chunks = staged.dataset, staged.chunks
    example_split = next(iter(dd))
    split_table = []
    for split, ds in dd.items():
        cells = len(set(ds["cell_id"])) if layout.layout == "pairs" else len(ds)
        split_table.append({"name": split, "rows": len(ds), "cells": cells})
    columns = [{"name": col, "meaning": _column_meaning(col)} for col in dd[example_split].column_names]
    obsm_keys = layout.obsm_keys or ()
    embeddings = embedding_rows(adata, list(adata.obsm))
    for row in embeddings:
        in_rows = row["key"] in obsm_keys
        row["where"] = f"{code_span('emb_' + row['key'])} column and `obsm`" if in_rows else "`obsm` of the AnnData files"
    how = ("Compute more with `mmgene embed genept-w|genept-s|geneformer`; mmgene records the model, layer and "
           "pooling of each in `uns['mmgene']`.")
    if embeddings:
        intro = "Per-cell embeddings that come with the data, and how each was made:\n\n" + how
    else:
        intro = "The AnnData files carry no per-cell embeddings. " + how
    published = published_cells(dd, layout.layout)
    lengths = np.asarray(sentences.lengths)[published]  # the sentences the rows hold, not those of dropped cells
    view = sentences.view
    example = dict(dd[example_split][0])
    versions = package_versions("anndata")
    return {
        "pretty_name": card.pretty_name or staged.repo_id.split("/")[1],
        "description": card.description if card.description is not None
        else _description(config, adata, staged.source_name, len(published)),
        "n_published": len(published),
        "source_name": staged.source_name,  # the template writes it as a code span
        "n_cells": adata.n_obs,
        "n_genes": adata.n_vars,
        "layout": layout.layout,
        "layout_explanation": LAYOUT_EXPLANATIONS[layout.layout].format(
            n_negatives=layout.n_negatives, n_cell_negatives=layout.n_cell_negatives
        ),
        "split_table": split_table,
        "split_explanation": f"by the groups of {_obs_part('obs', layout.split_by)}" if layout.split_by else "per cell",
        "split_note": SPLIT_NOTES[bool(layout.split_by)],
        "seed": layout.seed,
        "columns": columns,
        "expression_source": view.source,
        "expression_kind": "raw counts" if view.kind == "counts" else "log1p-normalised values",
        "ties": "alphabetically by symbol",
        "top_k": chunking.top_k if chunking.top_k is not None else "all",
        "sentence_min": int(lengths.min()),
        "sentence_max": int(lengths.max()),
        "sentence_mean": round(float(lengths.mean()), 1),
        "example_row": _example_row(example),
        "example_link": staged.links[chunks[int(example["chunk"])].name],
        "n_chunks": len(chunks),
        "chunk_format": "h5ad" if chunking.chunk_format == "h5ad" else "zarr.zip",
        "chunk_size": chunking.chunk_size,
        "share_kind": SHARE_DESCRIPTIONS.get(staged.share_kind, staged.share_kind) + (" (dry run: local files)" if staged.dry_run else ""),
        "var_sha256": chunks[0].var_sha256,
        "chunks": [c.to_dict() for c in chunks],
        "embeddings_intro": intro,
        "embeddings": embeddings,
        "repo_id": staged.repo_id,
        "example_split": example_split,
        "text_column": "anchor" if layout.layout == "multiplets" else "cell_sentence",
        "access_note": _access_note(staged, config.sharing.private),
        "mmgene_version": versions["mmgene"],
        "anndata_version": versions["anndata"],
        "created": dt.date.today().isoformat(),
        "source_citation": card.source_citation or f"cite the study that produced {code_span(staged.source_name)}.",
        "license": card.license,
    }
