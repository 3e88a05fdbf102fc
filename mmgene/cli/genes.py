"""``mmgene genes fetch`` (gene text) and ``mmgene genes embed`` (gene vectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmgene.cli.app import app, overwrite_option
from mmgene.cli.options import TextBackend, json_option
from mmgene.cli.results import emit
from mmgene.errors import InputFileError, ParameterError

genes_app = typer.Typer(help="Gene text (NCBI, offline table, file) and GenePT gene vectors.", no_args_is_help=True)
app.add_typer(genes_app, name="genes")


def _symbols(symbols: list[str], genes_from: Optional[Path]) -> list[str] | None:
    """Symbols from the command line and/or a file (.h5ad/.zarr: its genes; else one symbol per line)."""
    blank = [i for i, s in enumerate(symbols, 1) if not s.strip()]
    if blank:  # '' is no gene: fetched, it would end as a file of text for 0 genes and exit 0
        raise ParameterError(
            f"gene symbol {blank[0]} of {len(symbols)} on the command line is empty", "argument SYMBOLS",
            "pass gene symbols such as CD3E MS4A1 (quote none of them as ''), or --genes-from FILE",
        )
    out = list(symbols)
    if genes_from is not None:
        if genes_from.suffix.lower() in (".h5ad", ".zarr", ".h5"):
            from mmgene.io import expression, read
            from mmgene.io.expression import gene_symbols

            view = expression(read(genes_from, backed=genes_from.suffix.lower() != ".zarr"))
            # a gene without a symbol ('' here) is left out, never read as the gene 'NAN'
            listed = [s for s in gene_symbols(view.var, origin=str(genes_from)) if s]
            if not listed:  # no genes asked is not all genes
                raise InputFileError(
                    "no gene of the matrix has a symbol", f"var['gene_symbol'] of {genes_from}",
                    "put gene symbols in var['gene_symbol'] (or var_names), or pass a text file with one symbol per line",
                )
            out.extend(listed)
        else:
            if not genes_from.is_file():
                raise InputFileError(f"gene list not found: {genes_from}", str(genes_from), "pass a text file with one symbol per line or an .h5ad")
            try:
                listed = [line.strip() for line in genes_from.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
            except UnicodeDecodeError as exc:
                raise InputFileError(
                    f"the gene list is not UTF-8 text ({exc.reason} at byte {exc.start})", str(genes_from),
                    "pass a text file with one symbol per line or an .h5ad",
                ) from None
            if not listed:  # no genes asked is not all genes
                raise InputFileError("the gene list is empty", str(genes_from), "write one gene symbol per line, or leave out --genes-from for every gene")
            out.extend(listed)
    return out or None


@genes_app.command("fetch")
def fetch(
    symbols: list[str] = typer.Argument(None, help="Gene symbols (or use --genes-from)."),
    genes_from: Optional[Path] = typer.Option(None, "--genes-from", help="An .h5ad/.zarr (its genes) or a text file, one symbol per line."),
    source: str = typer.Option("ncbi", help="ncbi (E-utilities), offline (NCBI's gene table, shipped) or a JSON/TSV file."),
    out: Path = typer.Option(..., "--out", "-o", help="JSON file {SYMBOL: text} (GenePT's format)."),
    email: Optional[str] = typer.Option(None, envvar="NCBI_EMAIL", help="Your e-mail, sent to NCBI as it asks."),
    tool: Optional[str] = typer.Option(None, help="Tool name sent to NCBI (default mmgene)."),
    base_url: Optional[str] = typer.Option(None, help="E-utilities root URL (default NCBI's)."),
    cache: Optional[Path] = typer.Option(None, help="sqlite cache (default under the mmgene cache folder)."),
    batch_size: Optional[int] = typer.Option(None, help="Symbols per esearch request (default 100)."),
    rate: Optional[float] = typer.Option(None, help="Requests per second (default 3, or 10 with an API key in $NCBI_API_KEY, never a flag)."),
    retries: Optional[int] = typer.Option(None, help="Retries per request on 429/5xx/timeouts (default 5)."),
    timeout: Optional[float] = typer.Option(None, help="Read timeout per request, seconds (default 60)."),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Fetch gene text into a JSON file; NCBI answers are cached, so reruns make no request."""
    import json

    from mmgene.atomic import atomic_path, check_output
    from mmgene.config import check_range
    from mmgene.genes.sources import gene_text_source

    ncbi_options = {
        "--base-url": ("base_url", base_url), "--tool": ("tool", tool), "--cache": ("cache_path", cache),
        "--batch-size": ("search_batch", batch_size), "--rate": ("rate", rate), "--retries": ("max_retries", retries),
        "--timeout": ("timeout", None if timeout is None else (10.0, timeout)),
    }
    given = {option: pair for option, pair in ncbi_options.items() if pair[1] is not None}
    if source != "ncbi" and given:  # NCBI's options mean nothing to another source: refuse them rather than ignore them
        raise ParameterError(
            f"{', '.join(given)}: options of --source ncbi, which --source {source!r} does not use",
            "options of mmgene genes fetch", "leave those options out, or pass --source ncbi",
        )
    if timeout is not None:  # requests takes no timeout <= 0: it would fail at the first request, as a traceback
        check_range(timeout, "--timeout", "option --timeout", 0.0, None, strict=True, fix="pass seconds, e.g. 60")
    check_output(out, overwrite=overwrite, inputs=[p for p in (genes_from, cache) if p is not None])
    wanted = _symbols(symbols or [], genes_from)
    kwargs = dict(given.values(), email=email) if source == "ncbi" else {}  # the key: $NCBI_API_KEY only
    src = gene_text_source(source, **kwargs)
    texts = src.texts(wanted)
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(texts, indent=1, sort_keys=True, ensure_ascii=False), encoding="utf-8")
    result = {
        "out": str(out), "genes": len(texts), "asked": len({s.upper() for s in wanted}) if wanted else None,
        "source": src.name, "version": src.version, "requests": src.client.requests_made if hasattr(src, "client") else None,
    }
    asked = f" of {result['asked']} asked" if wanted else ""
    made = f"; {result['requests']} requests" if result["requests"] is not None else ""
    emit(result, f"wrote text for {len(texts):,} genes{asked} ({src.name}: {src.version}{made}) to {out}", as_json=as_json)


@genes_app.command("embed")
def embed(
    texts: str = typer.Argument("offline", help="A JSON/TSV gene text file, or 'offline' for NCBI's gene table (shipped)."),
    out: Path = typer.Option(..., "--out", "-o", help="Gene vectors file: .parquet or .safetensors."),
    encoder: str = typer.Option("minilm", help="minilm (offline), a model folder, hf://owner/name[@revision], or openai:<model>."),
    genes_from: Optional[Path] = typer.Option(None, "--genes-from", help="Only these genes: an .h5ad/.zarr or a text file."),
    dimensions: Optional[int] = typer.Option(
        None, min=1, help="Output dimensions of an openai:text-embedding-3 encoder; a local encoder's size is fixed (any other value is refused)."
    ),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible API root (default $OPENAI_BASE_URL; openai: encoders only)."),
    backend: TextBackend = typer.Option(
        "auto", help="How a sentence-transformers encoder runs: auto (onnx-int8 for 1,000 texts or more), torch, onnx "
        "(float32, torch's vectors), or onnx-int8 (int8 Q/K/V; least cosine 0.998 to torch on gene texts, cached apart)."
    ),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Embed gene text with a text encoder into a GenePT gene vectors table."""
    from mmgene.atomic import check_output
    from mmgene.text.encoders import text_encoder
    from mmgene.genes.sources import gene_text_source
    from mmgene.genes.user_text import UserGeneText
    from mmgene.genes.vectors import GeneVectors
    from mmgene.genes.vectors import vectors_suffix

    vectors_suffix(out)  # the file's kind, before minutes of embedding rather than after

    openai = encoder.startswith("openai:")
    if openai and backend != "auto":
        raise ParameterError(
            f"--backend {backend} runs a local model; {encoder} is embedded by the OpenAI API", "option --backend",
            "leave --backend out for openai: encoders",
        )
    if not openai and base_url is not None:
        raise ParameterError(
            f"--base-url is the root of an OpenAI-compatible API; {encoder} runs locally", "option --base-url",
            "leave --base-url out, or pass --encoder openai:<model>",
        )
    check_output(out, overwrite=overwrite, inputs=[genes_from] if genes_from is not None else [])
    src = gene_text_source(texts)
    if isinstance(src, UserGeneText):  # a file by the source's own rule: 'offline' is the shipped table, not ./offline
        check_output(out, overwrite=overwrite, inputs=[src.path])

    kwargs: dict = {"dimensions": dimensions, "base_url": base_url} if openai else {"backend": backend}
    enc = text_encoder(encoder, **kwargs)
    if not openai and dimensions is not None and dimensions != enc.dim:  # before any text is embedded
        raise ParameterError(
            f"--dimensions {dimensions}: {enc.name} always gives {enc.dim}-dimensional vectors (only OpenAI's "
            "text-embedding-3 models can return shorter ones)", "option --dimensions",
            f"leave --dimensions out (or pass {enc.dim}) for this encoder, or use --encoder openai:text-embedding-3-small",
        )
    vectors = GeneVectors.from_texts(src.texts(_symbols([], genes_from)), enc, source=src)
    vectors.save(out, overwrite=overwrite)
    result = {"out": str(out), "genes": len(vectors), "dim": int(vectors.dim), "encoder": enc.name, "text_source": src.name}
    emit(result, f"wrote {len(vectors):,} gene vectors ({vectors.dim} dims, {enc.name}, text {src.name}) to {out}", as_json=as_json)
