"""The whole publishing flow: AnnData -> chunk files -> share links -> dataset -> card -> the Hub.

``publish`` stages everything in one folder laid out exactly as the Hub repository will be::

    README.md                       the rendered dataset card (YAML metadata + text)
    chunks.json                     chunk files: cells, bytes, sha256, gene fingerprint, share link
    data/<split>-00000-of-00001.parquet
    chunks/chunk-00000-<sha>.h5ad   the AnnData chunk files (named by their content)

With ``dry_run=True`` it stops there (links are ``file://`` URIs of the staged chunks) and nothing
leaves the machine. Otherwise the chunks are shared through the chosen backend, then README, manifest
and data files are pushed in one commit to a dataset repository that is private unless
``private=False``. Tokens and passwords are read from the environment or huggingface_hub's login only.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmgene.atomic import atomic_path, check_output
from mmgene.errors import DataError, ParameterError, RemoteError
from mmgene.hub.chunks import ChunkFile, chunk_name, write_chunks
from mmgene.hub.config import PublishConfig
from mmgene.hub.dataset_card import Sentences, Staged, dataset_card
from mmgene.hub.layouts import build_dataset
from mmgene.hub.share import ShareBackend, SharedFile, check_hub_endpoint, check_repo_id, hub_api, make_share
from mmgene.net.credentials import hub_token, redact
from mmgene.progress import info, progress_enabled
from mmgene.provenance import record_of, records


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
    config: PublishConfig | None = None
    """The settings it ran with (``obsm_keys`` resolved)."""


def _source_name(adata: Any, data: Any) -> str:
    if isinstance(data, (str, os.PathLike)):
        return Path(data).name
    entry = record_of(adata, "input")
    return str(entry.get("file") or "an in-memory AnnData") if isinstance(entry, Mapping) else "an in-memory AnnData"


def _file_uri(path: Path) -> str:
    return path.resolve().as_uri()


def publish(
    data: Any,
    repo_id: str,
    config: PublishConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    token: str | None = None,
    **settings: Any,
) -> PublishResult:
    """Publish an AnnData as a Hugging Face dataset (see the module docstring).

    Parameters
    ----------
    data
        Path to .h5ad/.zarr or an AnnData.
    repo_id
        ``user/name`` of the dataset repository.
    config
        A :class:`~mmgene.hub.config.PublishConfig` (default: every setting at its default).
    out
        Staging folder (kept); with ``dry_run`` the default is ``./<name>-dataset``. It is written
        atomically, and an existing one is replaced only with ``overwrite`` and only if mmgene wrote it.
    dry_run
        Stop once everything is staged; links are ``file://`` URIs and nothing leaves the machine.
    token
        Hub token; by default ``$HF_TOKEN`` or huggingface_hub's login. Never written anywhere.
    **settings
        Single settings by name, applied on top of ``config``: ``layout``, ``label_key``, ``caption_key``,
        ``caption_template``, ``split_by``, ``splits``, ``n_negatives``, ``n_cell_negatives``, ``obs_keys``,
        ``obsm_keys``, ``seed`` (:class:`~mmgene.hub.config.LayoutConfig`); ``chunk_size``,
        ``chunk_format``, ``top_k``, ``backed`` (:class:`~mmgene.hub.config.ChunkConfig`); ``license``,
        ``pretty_name``, ``description``, ``source_citation`` (:class:`~mmgene.hub.config.CardConfig`);
        ``share``, ``share_options``, ``private`` (:class:`~mmgene.hub.config.ShareConfig`). Each is
        checked before anything is read or written.
    """
    import mmgene.cells
    import mmgene.io
    from mmgene.io.read import check_unique_cells

    config = (config or PublishConfig()).replace(**settings)
    check_repo_id(repo_id)
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
    if not dry_run:
        check_hub_endpoint()  # the token goes with every write: never over plain http to another machine
    sharing, chunking = config.sharing, config.chunks
    # the share settings are checked even in a dry run; nothing connects until share() is called
    options = dict(sharing.share_options)
    if sharing.share == "hub" and token and "token" not in options:  # the chunk files go to the Hub with the same token
        options["token"] = token
    backend = (
        sharing.share if isinstance(sharing.share, ShareBackend)
        else make_share(sharing.share, repo_id=repo_id, private=sharing.private, **options)
    )
    if hasattr(data, "obs") and not getattr(data, "isbacked", False):
        data = data.copy()  # read() annotates its input; keep the caller's object (and re-runs) unchanged
    given_genes = _gene_id_columns(data) if hasattr(data, "var") else None
    adata = mmgene.io.read(data, backed=chunking.backed)
    where = data if isinstance(data, (str, os.PathLike)) else "the AnnData"
    check_unique_cells(adata.obs_names, f"obs_names of {where}")
    _check_keys(adata, str(where))

    if config.dataset.obsm_keys is None:
        made = records(adata)
        config = replace(config, dataset=replace(config.dataset, obsm_keys=[k for k in adata.obsm if k in made]))
    layout = config.dataset
    view = mmgene.io.expression(adata)
    sentences = mmgene.cells.sentences(adata, top_k=chunking.top_k, inplace=False)
    lengths = [len(s.split()) if s else 0 for s in sentences]
    _rehearse(adata, config, sentences)
    # the chunk files carry the user's gene tables, not the ids mmgene.io.read filled in or settled
    _restore_gene_id_columns(adata, given_genes if given_genes is not None else _gene_id_columns_on_disk(data, adata))

    with ExitStack() as stack:
        if out is None:
            stage = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mmgene-publish-")))
        else:
            stage = stack.enter_context(atomic_path(out, overwrite=overwrite))
            stage.mkdir()
        final = stage if out is None else Path(out).resolve()
        chunks = write_chunks(adata, stage / "chunks", chunk_size=chunking.chunk_size, format=chunking.chunk_format)
        if dry_run:
            shared = [SharedFile(c.name, c.sha256, c.size, _file_uri(final / "chunks" / c.name), False) for c in chunks]
        else:
            shared = backend.share(chunks)
        try:
            links = {s.name: s.link for s in shared}
            dd = build_dataset(adata, layout, sentences=sentences, chunks=chunks, links=links)
            files = _write_data(dd, stage)
            manifest = {
                "repo_id": repo_id, "layout": layout.layout, "share": backend.kind, "n_cells": int(adata.n_obs),
                "n_genes": int(adata.n_vars), "var_sha256": chunks[0].var_sha256,
                "chunks": [dict(c.to_dict(), link=links[c.name]) for c in chunks],
            }
            (stage / "chunks.json").write_text(json.dumps(manifest, indent=2) + "\n")
            staged = Staged(repo_id, dd, chunks, links, backend.kind, dry_run, _source_name(adata, data))
            card_text = dataset_card(config, adata, staged, Sentences(view, lengths))
            (stage / "README.md").write_text(card_text)
            commit_url = None
            if not dry_run:
                commit_url = _push(stage, repo_id, sharing.private, token, layout.layout)
                info(f"mmgene: published {repo_id} ({'private' if sharing.private else 'public'}): {commit_url}")
            else:
                info(f"mmgene: dry run; everything is in {final}")
        except BaseException:
            if not dry_run:  # a failed run leaves no new chunk file on the share
                backend.withdraw([s.name for s in shared if s.uploaded])
            raise
    return PublishResult(
        repo_id=repo_id, layout=layout.layout, dataset=dd, card=card_text,
        chunks=manifest["chunks"], shared=shared, out=None if out is None else final, dry_run=dry_run,
        commit_url=commit_url, files=["README.md", "chunks.json", *files], config=config,
    )


def _check_keys(adata: Any, where: str) -> None:
    """Refuse column names that are not text (``obs[0]``): AnnData files cannot store them, so writing the
    chunk files would fail half-way; say so before anything is written."""
    frames = {"obs": adata.obs, "var": adata.var}
    if adata.raw is not None:
        frames["raw.var"] = adata.raw.var
    for part, frame in frames.items():
        bad = [c for c in frame.columns if not isinstance(c, str)]
        if bad:
            raise DataError(
                f"{part} has column names that are not text: {', '.join(repr(c) for c in bad[:5])}",
                f"{part} of {where}", f"rename them, e.g. adata.{part}.columns = adata.{part}.columns.astype(str)",
            )
    for part in ("obsm", "layers"):
        bad = [k for k in getattr(adata, part).keys() if not isinstance(k, str)]
        if bad:
            raise DataError(f"{part} has keys that are not text: {', '.join(repr(k) for k in bad[:5])}", f"{part} of {where}",
                            "rename them to strings")


#: the gene-id columns :func:`mmgene.io.read` fills in (where missing) or settles (repeated symbols)
_GENE_ID_COLUMNS = ("gene_symbol", "ensembl_id")


def _gene_id_columns(adata: Any) -> dict[str, dict[str, Any]]:
    """The gene-id columns of ``var`` and ``raw.var`` as the user gave them (copies), by frame."""
    frames = {"var": adata.var, **({"raw.var": adata.raw.var} if adata.raw is not None else {})}
    return {part: {c: frame[c].copy() for c in _GENE_ID_COLUMNS if c in frame.columns} for part, frame in frames.items()}


def _gene_id_columns_on_disk(data: Any, adata: Any) -> dict[str, dict[str, Any]] | None:
    """The gene-id columns of an .h5ad/.zarr file as stored, read without its matrices; ``None`` for
    other formats (Cell Ranger, .loom), whose AnnData exists only as mmgene.io.read made it."""
    import anndata as ad

    path = Path(data)
    try:
        if path.suffix.lower() == ".zarr" or path.is_dir():
            import zarr

            store: Any = zarr.open_group(str(path), mode="r")
            close = None
        elif path.suffix.lower() in (".h5ad", ".h5", ".hdf5") or path.is_file():
            import h5py

            store = h5py.File(path, "r")
            close = store.close
        else:  # pragma: no cover - read() accepted nothing else
            return None
        try:
            if "var" not in store or "X" not in store:
                return None
            read = ad.io.read_elem
            frames = {"var": read(store["var"])}
            if adata.raw is not None and "raw" in store and "var" in store["raw"]:
                frames["raw.var"] = read(store["raw"]["var"])
        finally:
            if close is not None:
                close()
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return {part: {c: frame[c] for c in _GENE_ID_COLUMNS if c in frame.columns} for part, frame in frames.items()}


def _restore_gene_id_columns(adata: Any, given: dict[str, dict[str, Any]] | None) -> None:
    """Put back the gene-id columns as the user gave them (dropping those mmgene.io.read added), so the
    published AnnData files hold the user's ``var`` unchanged; ``None``: keep them as read."""
    if given is None:
        return
    frames = {"var": adata.var, **({"raw.var": adata.raw.var} if adata.raw is not None else {})}
    for part, frame in frames.items():
        columns = given.get(part, {})
        for column in _GENE_ID_COLUMNS:
            if column in columns and len(columns[column]) == len(frame):
                frame[column] = columns[column].values  # by position: var names may repeat; keeps a categorical
            elif column in frame.columns and column not in columns:
                del frame[column]


def _rehearse(adata: Any, config: PublishConfig, sentences: list[str]) -> None:
    """Build the dataset once with stand-in chunk files, so every layout setting is checked against the
    data before anything is written or uploaded."""
    size, fmt = config.chunks.chunk_size, config.chunks.chunk_format
    stand_ins = [
        ChunkFile(i, chunk_name(i, fmt), Path(), start, min(start + size, adata.n_obs), "", 0, fmt, "")
        for i, start in enumerate(range(0, adata.n_obs, size))
    ]
    build_dataset(adata, config.dataset, sentences=sentences, chunks=stand_ins, links={c.name: "" for c in stand_ins})


def _write_data(dd: Any, stage: Path) -> list[str]:
    data_dir = stage / "data"
    data_dir.mkdir(exist_ok=True)
    from mmgene.lazy import require

    require("datasets", "publishing a dataset")
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
    from mmgene.lazy import require

    require("huggingface_hub.errors", "publishing to the Hub")
    from huggingface_hub.errors import HfHubHTTPError

    api = hub_api(token)
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
