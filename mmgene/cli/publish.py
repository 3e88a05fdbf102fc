"""``mmgene publish FILE --repo-id ... --layout ... --share ...``: AnnData -> Hugging Face dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from mmgene.cli.app import app, overwrite_option


@app.command("publish")
def publish_command(
    file: Path = typer.Argument(..., help="AnnData file (.h5ad or .zarr)."),
    repo_id: str = typer.Option(..., "--repo-id", help="Dataset repository, 'namespace/name'."),
    layout: str = typer.Option("single", "--layout", help="single | pairs | multiplets."),
    share: str = typer.Option("hub", "--share", help="Where the AnnData chunk files go: hub | webdav | nextcloud | http."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write everything to --out instead of uploading."),
    out: Path = typer.Option(None, "--out", help="Staging folder (default for --dry-run: ./<name>-dataset)."),
    share_url: str = typer.Option(None, "--share-url", help="webdav/nextcloud: the account's WebDAV root; http: the public base URL."),
    share_folder: str = typer.Option(None, "--share-folder", help="Folder for the chunk files on the share (default mmgene; hub: chunks)."),
    share_root: Path = typer.Option(None, "--share-root", help="http: local folder the web server publishes at --share-url."),
    public_url: str = typer.Option(None, "--public-url", help="webdav: where the folder is readable without credentials."),
    share_user: str = typer.Option(None, "--share-user", help="webdav/nextcloud user (default $MMGENE_SHARE_USER; password only from $MMGENE_SHARE_PASSWORD)."),
    chunk_limit: int = typer.Option(None, "--chunk-limit", help="nextcloud: files of this many bytes or more use chunked upload (default 1 GiB)."),
    label_key: str = typer.Option(None, "--label-key", help="obs column with labels; captions are made from it."),
    caption_key: str = typer.Option(None, "--caption-key", help="obs column with free-text captions."),
    caption_template: str = typer.Option("{label}", "--caption-template", help="Caption made from a label, e.g. 'A {label} cell.'"),
    split_by: str = typer.Option(None, "--split-by", help="obs column whose groups never straddle splits (donor, sample ...)."),
    top_k: int = typer.Option(100, "--top-k", help="Genes per cell sentence."),
    chunk_size: int = typer.Option(10_000, "--chunk-size", help="Cells per AnnData chunk file."),
    chunk_format: str = typer.Option("h5ad", "--format", help="Chunk file format: h5ad | zarr."),
    negatives: int = typer.Option(1, "--negatives", help="pairs/multiplets: negative captions per cell."),
    cell_negatives: int = typer.Option(1, "--cell-negatives", help="multiplets: negative cells per row."),
    seed: int = typer.Option(0, "--seed", help="Seed for splits and negatives."),
    public: bool = typer.Option(False, "--public", help="Make the repository public (default: private)."),
    license: str = typer.Option("cc-by-4.0", "--license", help="License id for the card."),
    backed: bool = typer.Option(False, "--backed", help="Stream the .h5ad matrix from disk instead of loading it."),
    overwrite: bool = overwrite_option(),
) -> None:
    """Publish an AnnData as a Hugging Face dataset with a card and AnnData share links.

    Tokens come from HF_TOKEN or `hf auth login`; share passwords from MMGENE_SHARE_PASSWORD.
    """
    from mmgene.hub.publishing import publish

    options: dict = {}
    if share in ("webdav", "nextcloud", "http"):
        options["url"] = share_url
    if share_folder is not None:
        options["folder"] = share_folder
    if share == "http":
        options["root"] = share_root
    if share == "webdav" and public_url:
        options["public_url"] = public_url
    if share in ("webdav", "nextcloud") and share_user:
        options["user"] = share_user
    if share == "nextcloud" and chunk_limit is not None:
        options["chunk_limit"] = chunk_limit
    result = publish(
        file, repo_id, layout=layout, share=share, share_options=options, out=out, overwrite=overwrite, dry_run=dry_run,
        private=not public, chunk_size=chunk_size, chunk_format=chunk_format, top_k=top_k, label_key=label_key,
        caption_key=caption_key, caption_template=caption_template, split_by=split_by, n_negatives=negatives,
        n_cell_negatives=cell_negatives, seed=seed, license=license, backed=backed,
    )
    rows = ", ".join(f"{k}: {len(v)}" for k, v in result.dataset.items())
    typer.echo(f"{'dry run' if result.dry_run else 'published'} {result.repo_id} ({result.layout}; {rows}; "
               f"{len(result.chunks)} chunk file(s))")
    if result.out is not None:
        typer.echo(f"files: {result.out}")
    if result.commit_url:
        typer.echo(f"commit: {result.commit_url}")
    typer.echo(f"example share link: {result.chunks[0]['link']}")
