"""``mmgene publish FILE --repo-id ... --layout ... --share ...``: AnnData -> Hugging Face dataset.

Every setting option defaults to ``None`` (not given), so the library's default applies; its help
and shown default come from :mod:`mmgene.hub.config`, so the CLI holds no second copy of either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from mmgene.cli.app import app, overwrite_option
from mmgene.cli.options import ChunkFormat, Layout, ShareKind, json_option, label_col_given, old_spelling
from mmgene.cli.results import emit
from mmgene.errors import ParameterError
from mmgene.hub.config import default, setting_help


#: share options -> the share backends that use them; given for another backend, one would be silently ignored
SHARE_OPTIONS: dict[str, tuple[str, ...]] = {
    "--share-url": ("webdav", "nextcloud", "http"), "--share-folder": ("hub", "webdav", "nextcloud"),
    "--share-root": ("http",), "--public-url": ("webdav",), "--share-user": ("webdav", "nextcloud"),
    "--chunk-limit": ("nextcloud",),
}
#: layout options -> the layouts that use them
LAYOUT_OPTIONS: dict[str, tuple[str, ...]] = {"--negatives": ("pairs", "multiplets"), "--cell-negatives": ("multiplets",)}


def check_options_apply(kind: str, layout: str, given: dict[str, Any]) -> None:
    """Refuse an option that the chosen share backend or layout does not use: ignoring it would, for one,
    put the chunk files on the Hub although a --share-url was given."""
    for option, kinds in (*SHARE_OPTIONS.items(), *LAYOUT_OPTIONS.items()):
        chosen, what = (kind, "share") if option in SHARE_OPTIONS else (layout, "layout")
        if given.get(option) is not None and chosen not in kinds:
            default_note = " (the default)" if given.get(f"--{what}") is None else ""
            raise ParameterError(
                f"{option} does not apply to the {chosen!r} {what}{default_note}, so it would be ignored",
                f"option {option}", f"choose --{what} {' or '.join(kinds)}, or leave {option} out",
            )
    if given.get("--caption-template") is not None and given.get("--caption-key") is not None:
        raise ParameterError(
            "--caption-template makes captions from --label-col, but --caption-key takes captions as they are, so it would be ignored",
            "options --caption-template/--caption-key", "pass one of them",
        )


@app.command("publish")
def publish_command(
    file: Path = typer.Argument(..., help="AnnData file (.h5ad or .zarr)."),
    repo_id: str = typer.Option(..., "--repo-id", help="Dataset repository, 'namespace/name'."),
    layout: Optional[Layout] = typer.Option(None, "--layout", help=setting_help("layout")),
    share: Optional[ShareKind] = typer.Option(None, "--share", help=setting_help("share")),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write everything to --out instead of uploading."),
    out: Path = typer.Option(None, "--out", help="Staging folder (default for --dry-run: ./<name>-dataset)."),
    share_url: str = typer.Option(None, "--share-url", help="webdav/nextcloud: the account's WebDAV root; http: the public base URL."),
    share_folder: str = typer.Option(None, "--share-folder", help="Folder for the chunk files on the share (default mmgene; hub: chunks)."),
    share_root: Path = typer.Option(None, "--share-root", help="http: local folder the web server publishes at --share-url."),
    public_url: str = typer.Option(None, "--public-url", help="webdav: where the folder is readable without credentials."),
    share_user: str = typer.Option(None, "--share-user", help="webdav/nextcloud user (default $MMGENE_SHARE_USER; password only from $MMGENE_SHARE_PASSWORD)."),
    chunk_limit: int = typer.Option(None, "--chunk-limit", help="nextcloud: files of this many bytes or more use chunked upload (default 1 GiB)."),
    label_col: Optional[str] = typer.Option(None, "--label-col", help=setting_help("label_key")),
    label_key: Optional[str] = old_spelling("--label-key"),
    caption_key: Optional[str] = typer.Option(None, "--caption-key", help=setting_help("caption_key")),
    caption_template: Optional[str] = typer.Option(None, "--caption-template", help=setting_help("caption_template")),
    split_by: Optional[str] = typer.Option(None, "--split-by", help=setting_help("split_by")),
    top_k: Optional[int] = typer.Option(None, "--top-k", help=setting_help("top_k")),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help=setting_help("chunk_size")),
    chunk_format: Optional[ChunkFormat] = typer.Option(None, "--format", help=setting_help("chunk_format")),
    negatives: Optional[int] = typer.Option(None, "--negatives", help=setting_help("n_negatives")),
    cell_negatives: Optional[int] = typer.Option(None, "--cell-negatives", help=setting_help("n_cell_negatives")),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help=setting_help("seed")),
    public: Optional[bool] = typer.Option(
        None, "--public", help=f"Make the repository public (default: {'private' if default('private') else 'public'})."
    ),
    license: Optional[str] = typer.Option(None, "--license", help=setting_help("license")),
    backed: Optional[bool] = typer.Option(None, "--backed", help=setting_help("backed")),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Publish an AnnData as a Hugging Face dataset with a card and AnnData share links.

    Tokens come from HF_TOKEN or `hf auth login`; share passwords from MMGENE_SHARE_PASSWORD.
    """
    from mmgene.hub.publishing import publish

    kind = share or default("share")
    check_options_apply(kind, layout or default("layout"), {
        "--share": share, "--layout": layout, "--share-url": share_url, "--share-folder": share_folder, "--share-root": share_root,
        "--public-url": public_url, "--share-user": share_user, "--chunk-limit": chunk_limit, "--negatives": negatives,
        "--cell-negatives": cell_negatives, "--caption-template": caption_template, "--caption-key": caption_key,
    })
    options: dict[str, Any] = {}
    if kind in ("webdav", "nextcloud", "http"):
        options["url"] = share_url
    if share_folder is not None:
        options["folder"] = share_folder
    if kind == "http":
        options["root"] = share_root
    if kind == "webdav" and public_url:
        options["public_url"] = public_url
    if kind in ("webdav", "nextcloud") and share_user:
        options["user"] = share_user
    if kind == "nextcloud" and chunk_limit is not None:
        options["chunk_limit"] = chunk_limit
    given = {
        "layout": layout, "share": share, "label_key": label_col_given(label_col, label_key, "--label-key"), "caption_key": caption_key,
        "caption_template": caption_template, "split_by": split_by, "top_k": top_k, "chunk_size": chunk_size,
        "chunk_format": chunk_format, "n_negatives": negatives, "n_cell_negatives": cell_negatives, "seed": seed,
        "private": None if public is None else not public, "license": license, "backed": backed,
    }
    settings = {name: value for name, value in given.items() if value is not None}
    result = publish(file, repo_id, out=out, overwrite=overwrite, dry_run=dry_run, share_options=options, **settings)
    rows = {str(k): len(v) for k, v in result.dataset.items()}
    report = {
        "repo_id": result.repo_id, "dry_run": result.dry_run, "layout": result.layout, "rows": rows,
        "private": result.config.sharing.private if result.config is not None else None,
        "out": str(result.out) if result.out is not None else None, "commit_url": result.commit_url,
        "files": list(result.files), "chunks": result.chunks,
    }
    lines = [f"{'dry run' if result.dry_run else 'published'} {result.repo_id} ({result.layout}; "
             + ", ".join(f"{k}: {n}" for k, n in rows.items()) + f"; {len(result.chunks)} chunk file(s))"]
    if result.out is not None:
        lines.append(f"files: {result.out}")
    if result.commit_url:
        lines.append(f"commit: {result.commit_url}")
    lines.append(f"example share link: {result.chunks[0]['link']}")
    emit(report, "\n".join(lines), as_json=as_json)
