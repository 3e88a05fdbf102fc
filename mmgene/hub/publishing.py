"""The whole publishing flow: AnnData -> chunk files -> share links -> dataset -> card -> the Hub.

``publish`` stages everything in one folder laid out exactly as the Hub repository will be::

    README.md                       the rendered dataset card (YAML metadata + text)
    chunks.json                     chunk files: cells, bytes, sha256, gene fingerprint, share link
    data/<split>-00000-of-00001.parquet
    chunks/chunk-00000.h5ad ...     the AnnData chunk files

With ``dry_run=True`` it stops there (links are ``file://`` URIs of the staged chunks) and nothing
leaves the machine. Otherwise the chunks are shared through the chosen backend, then README, manifest
and data files are pushed in one commit to a dataset repository that is private unless
``private=False``. Tokens and passwords are read from the environment or huggingface_hub's login only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmgene.errors import ParameterError, RemoteError
from mmgene.hub.card import render_dataset_card
from mmgene.atomic import atomic_path, check_output
from mmgene.hub.chunks import FORMATS, ChunkFile, chunk_name, write_chunks
from mmgene.hub.credentials import hub_token, redact
from mmgene.hub.layouts import DEFAULT_SPLITS, LAYOUTS, build_dataset
from mmgene.hub.share import SHARE_KINDS, ShareBackend, SharedFile, make_share
from mmgene.progress import info, progress_enabled
from mmgene.provenance import package_versions

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


@dataclass
class PublishResult:
    """What :func:`publish` made: the dataset, card text, chunk files and links, and where they went."""

    repo_id: str
    layout: str
    dataset: Any
    card: str
    chunks: list[dict[str, Any]]
    shared: list[SharedFile]
    out: Path | None
    dry_run: bool
    commit_url: str | None = None
    files: list[str] = field(default_factory=list)


def _source_name(adata: Any, data: Any) -> str:
    if isinstance(data, (str, os.PathLike)):
        return Path(data).name
    entry = adata.uns.get("mmgene", {}).get("input", {}) if hasattr(adata, "uns") else {}
    return str(entry.get("file") or "an in-memory AnnData") if isinstance(entry, Mapping) else "an in-memory AnnData"


def _embedding_rows(adata: Any, keys: Sequence[str]) -> list[dict[str, Any]]:
    """How each included ``obsm`` embedding was made, from mmgene's provenance (or scanpy's ``uns``)."""
    prov = adata.uns.get("mmgene", {}) if hasattr(adata, "uns") else {}
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
        rows.append({"key": key, "dims": dims, "method": method, "model": model, "layer": layer, "pooling": pooling})
    return rows


def _example_row(row: Mapping[str, Any]) -> str:
    def short(value: Any) -> Any:
        if isinstance(value, str):
            words = value.split(" ")
            return " ".join(words[:12]) + " ..." if len(words) > 12 else value
        if isinstance(value, list):
            return [round(v, 4) if isinstance(v, float) else v for v in value[:4]] + (["..."] if len(value) > 4 else [])
        if isinstance(value, float):
            return round(value, 4)
        return value

    return json.dumps({k: short(v) for k, v in row.items()}, indent=2, ensure_ascii=False)


def _file_uri(path: Path) -> str:
    return path.resolve().as_uri()


def publish(
    data: Any,
    repo_id: str,
    *,
    layout: str = "single",
    share: str | ShareBackend = "hub",
    share_options: Mapping[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    private: bool = True,
    chunk_size: int = 10_000,
    chunk_format: str = "h5ad",
    top_k: int = 100,
    label_key: str | None = None,
    caption_key: str | None = None,
    caption_template: str = "{label}",
    split_by: str | None = None,
    splits: Mapping[str, float] = DEFAULT_SPLITS,
    n_negatives: int = 1,
    n_cell_negatives: int = 1,
    obs_keys: Sequence[str] | None = None,
    obsm_keys: Sequence[str] | None = None,
    seed: int = 0,
    license: str = "cc-by-4.0",
    pretty_name: str | None = None,
    description: str | None = None,
    source_citation: str | None = None,
    token: str | None = None,
    backed: bool = False,
) -> PublishResult:
    """Publish an AnnData as a Hugging Face dataset (see the module docstring).

    Parameters
    ----------
    data
        Path to .h5ad/.zarr or an AnnData.
    repo_id
        ``user/name`` of the dataset repository.
    layout
        ``'single'``, ``'pairs'`` or ``'multiplets'`` (see :mod:`mmgene.hub.layouts`).
    share, share_options
        ``'hub'``, ``'webdav'``, ``'nextcloud'``, ``'http'`` (options go to :func:`~mmgene.hub.share.make_share`)
        or a ready :class:`~mmgene.hub.share.ShareBackend`.
    out
        Staging folder (kept); with ``dry_run`` the default is ``./<name>-dataset``. It is written
        atomically, and an existing one is replaced only with ``overwrite`` and only if mmgene wrote it.
    obsm_keys
        Embeddings to include as ``emb_<key>`` columns (default: those made by mmgene, per ``uns['mmgene']``).
    token
        Hub token; by default ``$HF_TOKEN`` or huggingface_hub's login. Never written anywhere.
    backed
        Open an .h5ad file backed (``'r'``): the matrix is streamed chunk by chunk instead of loaded.
    """
    import mmgene.cells
    import mmgene.io

    if layout not in LAYOUTS:
        raise ParameterError(f"unknown layout {layout!r}", "layout", f"use one of {', '.join(LAYOUTS)}")
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ParameterError(f"repo id {repo_id!r} is not 'namespace/name'", "repo_id", "pass e.g. 'me/pbmc-cells'")
    if isinstance(share, str) and share not in SHARE_KINDS:
        raise ParameterError(f"unknown share backend {share!r}", "share", f"use one of {', '.join(SHARE_KINDS)}")
    if chunk_format not in FORMATS:
        raise ParameterError(f"unknown chunk format {chunk_format!r}", "chunk_format", f"use one of {', '.join(FORMATS)}")
    if chunk_size < 1:
        raise ParameterError(f"chunk_size must be at least 1, got {chunk_size}", "chunk_size", "pass a positive number of cells")
    if top_k is not None and top_k < 1:
        raise ParameterError(f"top_k must be at least 1, got {top_k}", "top_k", "pass a positive number of genes")
    if "{label}" not in caption_template:
        raise ParameterError(
            f"the caption template {caption_template!r} has no {{label}} placeholder, so every caption would be the same",
            "caption_template", "pass e.g. 'A {label} cell.'",
        )
    name = repo_id.split("/")[1]
    if out is None and dry_run:
        out = Path(f"{name}-dataset")
    if out is not None:
        check_output(out, overwrite=overwrite, inputs=[data] if isinstance(data, (str, os.PathLike)) else [])
    if not dry_run and not hub_token(token):  # also registers the token as a secret before anything can print it
        raise ParameterError(
            "no Hugging Face token found", "HF_TOKEN / huggingface_hub login",
            "export HF_TOKEN=... or run `hf auth login` (or use --dry-run to write everything locally)",
        )
    # the share settings are checked even in a dry run; nothing connects until share() is called
    backend = share if isinstance(share, ShareBackend) else make_share(share, repo_id=repo_id, private=private, **dict(share_options or {}))
    share_kind = backend.kind
    if hasattr(data, "obs") and not getattr(data, "isbacked", False):
        data = data.copy()  # read() annotates its input; keep the caller's object (and re-runs) unchanged
    adata = mmgene.io.read(data, backed=backed)

    if obsm_keys is None:
        made = adata.uns.get("mmgene", {})
        obsm_keys = [k for k in adata.obsm if k in made]
    view = mmgene.io.expression(adata)
    sentences = mmgene.cells.sentences(adata, top_k=top_k, inplace=False)
    lengths = [len(s.split()) if s else 0 for s in sentences]
    dataset_options = dict(
        sentences=sentences, label_key=label_key, caption_key=caption_key, caption_template=caption_template,
        split_by=split_by, splits=splits, n_negatives=n_negatives, n_cell_negatives=n_cell_negatives,
        obs_keys=obs_keys, obsm_keys=obsm_keys, seed=seed,
    )
    _rehearse(adata, layout, chunk_size, chunk_format, dataset_options)

    with ExitStack() as stack:
        if out is None:
            stage = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mmgene-publish-")))
        else:
            stage = stack.enter_context(atomic_path(out, overwrite=overwrite))
            stage.mkdir()
        final = stage if out is None else Path(out).resolve()
        chunks = write_chunks(adata, stage / "chunks", chunk_size=chunk_size, format=chunk_format)
        if dry_run:
            shared = [SharedFile(c.name, c.sha256, c.size, _file_uri(final / "chunks" / c.name), False) for c in chunks]
        else:
            shared = backend.share(chunks)
        try:
            links = {s.name: s.link for s in shared}
            dd = build_dataset(adata, layout, chunks=chunks, links=links, **dataset_options)
            files = _write_data(dd, stage)
            manifest = {
                "repo_id": repo_id, "layout": layout, "share": share_kind, "n_cells": int(adata.n_obs),
                "n_genes": int(adata.n_vars), "var_sha256": chunks[0].var_sha256,
                "chunks": [dict(c.to_dict(), link=links[c.name]) for c in chunks],
            }
            (stage / "chunks.json").write_text(json.dumps(manifest, indent=2) + "\n")
            example_split = next(iter(dd))
            values = _card_values(
                adata=adata, repo_id=repo_id, layout=layout, dd=dd, chunks=chunks, links=links, share_kind=share_kind,
                view=view, top_k=top_k, lengths=lengths, split_by=split_by, seed=seed, n_negatives=n_negatives,
                n_cell_negatives=n_cell_negatives, obsm_keys=obsm_keys, chunk_size=chunk_size, chunk_format=chunk_format,
                private=private, dry_run=dry_run, license=license, pretty_name=pretty_name or name,
                description=description, source_name=_source_name(adata, data), source_citation=source_citation,
                label_key=label_key, caption_key=caption_key, example_split=example_split,
                versions=package_versions("anndata"),
            )
            card = render_dataset_card(
                values, license=license, n_rows=sum(len(d) for d in dd.values()), pretty_name=pretty_name or name,
                configs=[{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in dd]}],
            )
            card_text = str(card)
            (stage / "README.md").write_text(card_text)
            commit_url = None
            if not dry_run:
                commit_url = _push(stage, repo_id, private, token, layout)
                info(f"mmgene: published {repo_id} ({'private' if private else 'public'}): {commit_url}")
            else:
                info(f"mmgene: dry run; everything is in {final}")
        except BaseException:
            if not dry_run:  # a failed run leaves no new chunk file on the share
                backend.withdraw([s.name for s in shared if s.uploaded])
            raise
    return PublishResult(
        repo_id=repo_id, layout=layout, dataset=dd, card=card_text,
        chunks=manifest["chunks"], shared=shared, out=None if out is None else final, dry_run=dry_run,
        commit_url=commit_url, files=["README.md", "chunks.json", *files],
    )


def _rehearse(adata: Any, layout: str, chunk_size: int, chunk_format: str, options: Mapping[str, Any]) -> None:
    """Build the dataset once with stand-in chunk files, so every layout argument is checked before
    anything is written or uploaded."""
    stand_ins = [
        ChunkFile(i, chunk_name(i, chunk_format), Path(), start, min(start + chunk_size, adata.n_obs), "", 0, chunk_format, "")
        for i, start in enumerate(range(0, adata.n_obs, chunk_size))
    ]
    build_dataset(adata, layout, chunks=stand_ins, links={c.name: "" for c in stand_ins}, **options)


def _write_data(dd: Any, stage: Path) -> list[str]:
    data_dir = stage / "data"
    data_dir.mkdir(exist_ok=True)
    import datasets

    if not progress_enabled():
        datasets.disable_progress_bars()
    files = []
    for split, ds in dd.items():
        rel = f"data/{split}-00000-of-00001.parquet"
        ds.to_parquet(str(stage / rel))
        files.append(rel)
    return files


def _push(stage: Path, repo_id: str, private: bool, token: str | None, layout: str) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=hub_token(token))
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, repo_type="dataset", folder_path=str(stage),
            allow_patterns=["README.md", "chunks.json", "data/*.parquet"], delete_patterns=["data/*.parquet"],
            commit_message=f"mmgene publish ({layout} layout)",
        )
    except HfHubHTTPError as exc:
        raise RemoteError(f"pushing to the Hub failed: {redact(exc)}", repo_id, "check HF_TOKEN (write access) and the repo id") from None
    return str(commit.commit_url)


def _card_values(*, adata, repo_id, layout, dd, chunks: list[ChunkFile], links, share_kind, view, top_k, lengths,
                 split_by, seed, n_negatives, n_cell_negatives, obsm_keys, chunk_size, chunk_format, private, dry_run,
                 license, pretty_name, description, source_name, source_citation, label_key, caption_key,
                 example_split, versions) -> dict[str, Any]:
    import numpy as np

    from mmgene.io import obs_column
    from mmgene.io.labels import label_text

    split_table = []
    for split, ds in dd.items():
        cells = len(set(ds["cell_id"])) if layout == "pairs" else len(ds)
        split_table.append({"name": split, "rows": len(ds), "cells": cells})
    columns = []
    for col in dd[example_split].column_names:
        if col in COLUMN_MEANINGS:
            meaning = COLUMN_MEANINGS[col]
        elif col.startswith("negative_cell_idx_"):
            meaning = "position in the source AnnData of that negative cell"
        elif col.startswith("negative_cell_"):
            meaning = "sentence of another cell with a different caption"
        elif col.startswith("negative_"):
            meaning = "a caption of a different kind of cell"
        elif col.startswith("emb_"):
            meaning = f"initial embedding `obsm['{col[4:]}']` (float32)"
        else:
            meaning = f"cell metadata from `obs['{col.removeprefix('obs_') if col.startswith('obs_') else col}']`"
        columns.append({"name": col, "meaning": meaning})
    if caption_key:
        caption_origin = f"free-text captions from `obs['{caption_key}']`"
    elif label_key:
        caption_origin = f"captions from the labels in `obs['{label_key}']`"
    else:
        caption_origin = "no captions"
    n_labels = len(set(label_text(obs_column(adata, label_key))) - {""}) if label_key else 0
    if description is None:
        description = (
            f"{adata.n_obs} cells of {source_name} as cell sentences with {caption_origin}"
            + (f" ({n_labels} distinct labels)" if n_labels else "")
            + f", in the `{layout}` layout, with each cell's AnnData file linked."
        )
    embeddings = _embedding_rows(adata, list(adata.obsm))
    for row in embeddings:
        row["where"] = f"`emb_{row['key']}` column and `obsm`" if row["key"] in obsm_keys else "`obsm` of the AnnData files"
    how = ("Compute more with `mmgene embed genept-w|genept-s|geneformer`; mmgene records the model, layer and "
           "pooling of each in `uns['mmgene']`.")
    if embeddings:
        intro = "Per-cell embeddings that come with the data, and how each was made:\n\n" + how
    else:
        intro = "The AnnData files carry no per-cell embeddings. " + how
    if dry_run:
        access = ("This card comes from a dry run: links are `file://` paths on the machine that ran it; there, "
                  "`mmgene.hub.fetch_anndata(row, allow_file=True)` reads them (local files are never read otherwise).")
    elif private:
        access = ("The dataset is private: `load_dataset` and `fetch_anndata` read the token from `HF_TOKEN` or "
                  "`hf auth login` (it is sent to the Hub only, never put in a link).")
    else:
        access = "The dataset is public; no token is needed."
    arr = np.asarray(lengths)
    example = dict(dd[example_split][0])
    return {
        "pretty_name": pretty_name,
        "description": description,
        "source_name": source_name,
        "n_cells": adata.n_obs,
        "n_genes": adata.n_vars,
        "layout": layout,
        "layout_explanation": LAYOUT_EXPLANATIONS[layout].format(n_negatives=n_negatives, n_cell_negatives=n_cell_negatives),
        "split_table": split_table,
        "split_explanation": f"by the groups of `obs['{split_by}']`" if split_by else "per cell",
        "seed": seed,
        "columns": columns,
        "expression_source": view.source,
        "expression_kind": "raw counts" if view.kind == "counts" else "log1p-normalised values",
        "ties": "alphabetically by symbol",
        "top_k": top_k if top_k is not None else "all",
        "sentence_min": int(arr.min()),
        "sentence_max": int(arr.max()),
        "sentence_mean": round(float(arr.mean()), 1),
        "example_row": _example_row(example),
        "example_link": links[chunks[int(example["chunk"])].name],
        "n_chunks": len(chunks),
        "chunk_format": "h5ad" if chunk_format == "h5ad" else "zarr.zip",
        "chunk_size": chunk_size,
        "share_kind": {"hub": "the Hugging Face Hub (files in this repository)", "webdav": "a WebDAV folder",
                       "nextcloud": "Nextcloud public links", "http": "a plain HTTP folder"}.get(share_kind, share_kind)
        + (" (dry run: local files)" if dry_run else ""),
        "var_sha256": chunks[0].var_sha256,
        "chunks": [c.to_dict() for c in chunks],
        "embeddings_intro": intro,
        "embeddings": embeddings,
        "repo_id": repo_id,
        "example_split": example_split,
        "text_column": "anchor" if layout == "multiplets" else "cell_sentence",
        "access_note": access,
        "mmgene_version": versions["mmgene"],
        "anndata_version": versions["anndata"],
        "created": dt.date.today().isoformat(),
        "source_citation": source_citation or f"cite the study that produced `{source_name}`.",
        "license": license,
    }
