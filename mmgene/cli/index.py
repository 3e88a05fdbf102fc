"""``mmgene index build``, ``mmgene index info``, ``mmgene query`` and ``mmgene annotate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from mmgene.cli.app import app, overwrite_option
from mmgene.cli.options import OFF, IndexKind, Weighting, config_option, json_option, label_col_given, number_or_off, old_spelling
from mmgene.cli.outputs import anndata_target, in_place_option, write_anndata
from mmgene.cli.results import counts_text, emit, table_text
from mmgene.config import overrides
from mmgene.model_files import model_on_disk
from mmgene.query.config import AnnotateConfig


def _rule(name: str, *flags: str, **kwargs: Any) -> Any:
    """An option for one setting of annotate's rule (default and help from :class:`AnnotateConfig`)."""
    return config_option(AnnotateConfig, name, *flags, **kwargs)


def no_rerank_option() -> bool:
    """``--no-rerank``: search a streamed index with its compressed codes, without the vector files it re-ranks from."""
    return typer.Option(
        False, "--no-rerank",
        help="Search a streamed index (index build --stream) with its compressed codes only, without re-scoring from the vector files it was built from (faster; needed when those files moved).",
    )


index_app = typer.Typer(help="Build and inspect FAISS indexes over cell embeddings.", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("build")
def index_build(
    file: Path = typer.Argument(..., help="An .h5ad file or .zarr store with the embedding in obsm."),
    embedding: str = typer.Option(..., "--embedding", "-e", help="obsm key of the vectors, e.g. X_genept_s."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (index.faiss, cells.parquet, meta.json)."),
    obs: Optional[list[str]] = typer.Option(None, "--obs", help="obs column to keep beside the cell ids (repeat; default: all)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Joint space of the vectors, used by text queries: an aligned model folder, hf://owner/name, genept-s or genept-w."),
    kind: IndexKind = typer.Option("auto", help="auto, flat (exact), ivf, ivfpq or hnsw."),
    nlist: Optional[int] = typer.Option(None, help="Inverted lists (ivf, ivfpq); default ~2*sqrt(cells)."),
    nprobe: Optional[int] = typer.Option(None, help="Lists searched per query (ivf, ivfpq); default calibrated."),
    pq_m: Optional[int] = typer.Option(None, "--pq-m", help="PQ sub-quantisers (ivfpq); default dim/8."),
    hnsw_m: Optional[int] = typer.Option(None, "--hnsw-m", help="Graph degree (hnsw); default 32."),
    ef_search: Optional[int] = typer.Option(None, "--ef-search", help="Search breadth (hnsw); default calibrated."),
    target_recall: Optional[float] = typer.Option(
        None, help="Recall@10 the calibration of nprobe / ef-search aims for, and below which it warns (ivf, ivfpq, hnsw; default 0.95)."
    ),
    seed: int = typer.Option(0, help="Seed for training samples and calibration queries."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Leave out cells without an embedding (NaN or all-zero rows) instead of stopping."),
    stream: bool = typer.Option(False, "--stream", help="Read the vectors from FILE in chunks and keep the inverted lists on disk (IVF-PQ unless --kind ivf): for more cells than memory holds."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="With --stream: vectors read at once (default 65536)."),
    rerank: Optional[bool] = typer.Option(None, "--rerank/--no-rerank", help="With --stream: re-score candidates exactly from FILE's vectors (FILE must stay where it is; default on)."),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Build a FAISS index over obsm[EMBEDDING] of FILE and write it to OUT."""
    from mmgene.atomic import check_output
    from mmgene.index import CellIndex
    from mmgene.io import read

    check_output(out, overwrite=overwrite, inputs=[file, *model_on_disk(model)])  # nor over the model the index names
    tuning = {"--nlist": nlist, "--nprobe": nprobe, "--pq-m": pq_m, "--hnsw-m": hnsw_m, "--ef-search": ef_search, "--target-recall": target_recall}
    recall = {"target_recall": target_recall} if target_recall is not None else {}
    if kind != "auto" and not stream:
        _check_kind_options(kind, tuning)
    if not stream and (chunk_size is not None or rerank is not None):
        from mmgene.errors import ParameterError

        raise ParameterError(
            "--chunk-size and --rerank/--no-rerank apply to --stream only", "mmgene index build", "add --stream, or leave them out",
        )
    if stream:
        from mmgene.errors import ParameterError
        from mmgene.index import AnnDataObsm, StreamBuild, build_streamed

        if skip_missing:
            raise ParameterError(
                "--stream builds its index from every cell, so --skip-missing cannot apply", "mmgene index build --stream",
                "drop --skip-missing, or build without --stream (in memory)",
            )
        if kind in ("flat", "hnsw"):
            raise ParameterError(
                f"--stream builds an IVF index, not --kind {kind}", "mmgene index build --stream",
                "use --kind ivfpq, ivf or auto, or build a flat or hnsw index in memory, without --stream",
            )
        _check_kind_options("ivfpq" if kind == "auto" else kind, tuning)
        source = AnnDataObsm([file], embedding, obs_columns=obs)
        if model is not None:  # else build_streamed takes the joint space FILE records for the vectors
            _check_model_dim(model, source.dim, file, embedding)
        index = build_streamed(
            source, out, kind="ivfpq" if kind == "auto" else kind, embedding_key=embedding,
            model=model, nlist=nlist, nprobe=nprobe, pq_m=pq_m, seed=seed, overwrite=overwrite, **recall,
            config=StreamBuild(
                **({"chunk_size": chunk_size} if chunk_size is not None else {}), **({"rerank": rerank} if rerank is not None else {}),
            ),
        )
        _report(index, out, as_json)
        return
    adata = read(file, backed=True, expression_needed=False)  # only obs and obsm are used
    if model is not None and embedding in adata.obsm:
        _check_model_dim(model, adata.obsm[embedding].shape[1], file, embedding)
    index = CellIndex.build(
        adata, embedding, obs_columns=obs, model=model, kind=kind, nlist=nlist, nprobe=nprobe, pq_m=pq_m,
        ef_search=ef_search, seed=seed, skip_missing=skip_missing, **recall,
        **({"M": hnsw_m} if hnsw_m is not None else {}),
    )
    if kind == "auto":  # the kind depends on the number of cells: checked before anything is written
        _check_kind_options(index.kind, tuning, f" (--kind auto chose it for {index.ntotal:,} cells)")
    index.save(out, overwrite=overwrite)
    _report(index, out, as_json)


#: options of `index build` that tune one kind of index -> the kinds they apply to
KIND_OPTIONS: dict[str, tuple[str, ...]] = {
    "--nlist": ("ivf", "ivfpq"), "--nprobe": ("ivf", "ivfpq"), "--pq-m": ("ivfpq",), "--hnsw-m": ("hnsw",), "--ef-search": ("hnsw",),
    "--target-recall": ("ivf", "ivfpq", "hnsw"),  # a flat index is exact: nothing to calibrate
}


def _check_kind_options(kind: str, given: dict[str, Any], note: str = "") -> None:
    """Refuse a tuning option that the index kind built does not use: it would be ignored without a word."""
    from mmgene.errors import ParameterError

    for option, kinds in KIND_OPTIONS.items():
        if given.get(option) is not None and kind not in kinds:
            raise ParameterError(
                f"{option} does not apply to --kind {kind}{note}, so it would be ignored", f"option {option}",
                f"choose --kind {' or '.join(kinds)}, or leave {option} out",
            )


def _check_model_dim(model: str, dim: int, file: Path, embedding: str) -> None:
    """Refuse ``-m MODEL`` for vectors of another dimension than the model's joint space, before building."""
    from mmgene.query.space import check_model_dim

    check_model_dim(model, dim, f"mmgene index build -m {model}: obsm[{embedding!r}] of {file}")


def _report(index: Any, path: Path, as_json: bool) -> None:
    """An index: its folder, cells, dimension, kind, embedding, model, columns, calibrated search and re-ranking."""
    rerank = index.rerank_status()
    result = {
        "index": str(path), "cells": int(index.ntotal), "skipped_cells": int(index.meta.get("skipped_cells") or 0),
        "dim": int(index.dim), "kind": index.kind, "factory": index.meta.get("factory"), "embedding": index.embedding_key,
        "model": index.model, "obs_columns": list(index.meta.get("obs_columns", [])), "search": index.params.calibrated or None,
        "rerank": rerank, "genes": _panel_summary(index.gene_panel),
    }
    emit(result, lambda: _describe(index, path, rerank), as_json=as_json)


def _panel_summary(panel: Any) -> Optional[dict[str, Any]]:
    """The recorded gene panel of an index as its count and species; None when it records none."""
    return None if panel is None else {"count": len(panel.symbols), "species": panel.species}


def _describe(index: Any, path: Path, rerank: Optional[dict[str, Any]]) -> str:
    cal = index.params.calibrated
    lines = [
        f"index:      {path}",
        f"cells:      {index.ntotal:,}" + (f" ({index.meta['skipped_cells']:,} without an embedding left out)" if index.meta.get("skipped_cells") else ""),
        f"dimension:  {index.dim}",
        f"kind:       {index.kind} ({index.meta.get('factory')}, cosine)",
        f"embedding:  {index.embedding_key}",
        f"model:      {index.model or 'none (only cell -> cell queries)'}",
        f"columns:    {', '.join(index.meta.get('obs_columns', [])) or 'none'}",
    ]
    panel = _panel_summary(index.gene_panel)
    if panel is not None:
        lines.append(f"genes:      {panel['count']:,} ({panel['species']}), compared with a query's by transfer")
    if cal:
        lines.append(f"search:     {cal['parameter']}={cal['value']}, recall@{cal['k']} {cal['recall']:.3f} on {cal['queries']} indexed cells")
    if rerank is not None:
        files = f"{len(rerank['files'])} file(s) ({', '.join(Path(f).name for f in rerank['files'][:3])}{', ...' if len(rerank['files']) > 3 else ''})"
        state = f"not available: {rerank['problem']}" if rerank["problem"] else "available"
        lines.append(f"rerank:     {rerank['candidates']} candidates a hit re-scored exactly from {files}; {state}")
    return "\n".join(lines)


@index_app.command("info")
def index_info(path: Path = typer.Argument(..., help="An index folder."), as_json: bool = json_option()) -> None:
    """Describe an index folder (and whether the vector files it re-ranks from are still in place)."""
    from mmgene.index import CellIndex

    _report(CellIndex.load(path, rerank=False), path, as_json)


@app.command("query")
def query(
    index_dir: Path = typer.Argument(..., help="An index folder written by `mmgene index build`."),
    texts: Optional[list[str]] = typer.Argument(None, help="Text queries, e.g. \"cytotoxic T cells\"."),
    k: int = typer.Option(20, "-k", "--k", help="Cells per query."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Joint space for the text (default: the index's)."),
    cell: Optional[list[str]] = typer.Option(None, "--cell", help="Find cells like this indexed cell id instead (repeat)."),
    genes: Optional[Path] = typer.Option(None, "--genes", help="AnnData of the indexed cells: add each hit's top contributing genes (GenePT-w indexes; the first use embeds the offline text of the hits' genes, then it is cached)."),
    top_genes: Optional[int] = typer.Option(None, help="Genes listed per hit with --genes (default 5)."),
    shard: Optional[list[Path]] = typer.Option(None, "--shard", help="Another index folder searched with INDEX_DIR as one index (repeat; text queries only)."),
    no_rerank: bool = no_rerank_option(),
    as_json: bool = json_option(),
) -> None:
    """Find the K cells most similar to each text (or to each --cell)."""
    from mmgene.errors import ParameterError, is_whole_number
    from mmgene.index import CellIndex, IndexShards
    from mmgene.query import cells_to_cells, text_to_cells

    if not texts and not cell:
        raise ParameterError("nothing to search for", "mmgene query", "give a text after the index folder, or --cell CELL_ID")
    if texts and cell:
        raise ParameterError("both texts and --cell were given, but a query searches for one or the other, so the texts would be ignored", "mmgene query",
            "search for the texts and for the cells in separate commands")
    if cell and model is not None:
        raise ParameterError("--model encodes text queries, so with --cell it would be ignored", "option --model", "leave --model out, or search for a text")
    if top_genes is not None and genes is None:
        raise ParameterError("--top-genes sets how many genes --genes lists, so without --genes it would be ignored", "option --top-genes", "add --genes FILE, or leave --top-genes out")
    if not is_whole_number(k, 1):
        raise ParameterError(f"-k must be at least 1, got {k}", "option -k", "ask for k >= 1 cells per query")
    if shard and (cell or genes is not None):
        raise ParameterError("--shard searches text queries only", "mmgene query --shard", "drop --cell and --genes, or query one index folder")
    index = IndexShards.load([index_dir, *shard], rerank=not no_rerank) if shard else CellIndex.load(index_dir, rerank=not no_rerank)
    if cell:
        table = cells_to_cells(index, cell, k=k)
    else:
        table = text_to_cells(index, texts, model=model, k=k)
        if genes is not None:
            from mmgene.io import read
            from mmgene.query.genes import explain_hits
            from mmgene.query.space import load_space

            table = explain_hits(
                table, read(genes), load_space(model or index.model), where=f"--genes {genes}", source=index.meta.get("source"),
                **({"top_n": top_genes} if top_genes is not None else {}),
            )
    table = table.drop(columns=["position"])
    result = {"index": str(index_dir), "k": k, "queries": list(cell or texts), "hits": table.to_dict(orient="records")}
    emit(result, lambda: table_text(table, 4), as_json=as_json)


def _terms_read(labels: list[str], term_ids: Any) -> dict[str, str]:
    """Each label's Cell Ontology id as annotate read it ('' for none; all '' without the hierarchy),
    and one line on stderr saying so, so that a label read as another term than meant is seen."""
    from mmgene.progress import info
    from mmgene.text.ontology import term_text

    terms = {str(label): str(t) for label, t in zip(labels, term_ids)}
    if any(terms.values()):
        read = [f"{label!r} as {t} {term_text(t).label}" if t else f"{label!r} as no term" for label, t in terms.items()]
        info("labels read as Cell Ontology terms: " + "; ".join(read))
    return terms


def _chosen_terms(labels: list[str], given: Optional[list[str]], origin: Any) -> Optional[list[str]]:
    """Every label's Cell Ontology id (read with the cells' ``origin``) with the ``--term LABEL=CL:ID``
    choices applied; None without any."""
    from mmgene.errors import ParameterError
    from mmgene.query.terms import chosen_terms

    if not given:
        return None
    chosen: dict[str, str] = {}
    for item in given:
        label, sep, term_id = item.rpartition("=")
        if not sep or not label.strip():
            raise ParameterError(f"--term {item!r} is not LABEL=CL:ID", "option --term", "write it as --term \"CD4 T cells=CL:0000624\" (or 'LABEL=' for no term)")
        chosen[label.strip()] = term_id.strip()
    return chosen_terms(labels, chosen, "option --term", origin)


@app.command("annotate")
def annotate(
    file: Path = typer.Argument(..., help="An .h5ad file (comes first; labels follow --labels)."),
    more_labels: Optional[list[str]] = typer.Argument(None, hidden=True),
    model: str = typer.Option(..., "--model", "-m", help="Joint space: an aligned model folder, hf://owner/name, genept-s or genept-w."),
    labels: list[str] = typer.Option(..., "--labels", "-l", help="Label names: --labels \"B cell\" \"NK cell\" ..."),
    term: Optional[list[str]] = typer.Option(
        None, "--term", metavar="LABEL=CL:ID",
        help="The Cell Ontology term a label stands for (repeat; 'LABEL=' for none). Other labels are read by name, synonym or the label harmoniser's rules.",
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the annotated .h5ad."),
    in_place: bool = in_place_option(),
    overwrite: bool = overwrite_option(),
    prompt: Optional[list[str]] = _rule("prompts", "--prompt", metavar="TEMPLATE"),
    markers: Optional[bool] = _rule("markers", "--markers/--no-markers"),
    species: Optional[str] = _rule("species"),
    tissue: Optional[str] = _rule("tissue"),
    temperature: Optional[float] = _rule("temperature"),
    min_prob: Optional[float] = _rule("min_prob"),
    min_z: Optional[str] = _rule("min_z", parser=number_or_off, metavar="FLOAT|none"),
    reference: Optional[Path] = typer.Option(None, help="Labelled cells of the same data (a labelled part of FILE's batch) to calibrate the temperature and per-label thresholds on; a reference from another dataset can call most of a type unknown."),
    reference_column: str = typer.Option("cell_type", help="obs column of --reference holding the labels."),
    alpha: Optional[float] = _rule("alpha"),
    refine: Optional[bool] = _rule("refine", "--refine/--no-refine"),
    standardize: Optional[bool] = _rule("standardize", "--standardize/--no-standardize"),
    weigh_types: Optional[bool] = _rule("weigh_types", "--weigh-types/--no-weigh-types"),
    recentre: Optional[bool] = _rule("recentre", "--recentre/--no-recentre"),
    data_markers: Optional[bool] = _rule("data_markers", "--data-markers/--no-data-markers"),
    definitions: Optional[bool] = _rule("definitions", "--definitions/--no-definitions"),
    hierarchy: Optional[bool] = _rule("hierarchy", "--hierarchy/--no-hierarchy"),
    others: Optional[bool] = _rule("others", "--others/--no-others"),
    others_margin: Optional[float] = _rule("others_margin"),
    key: str = typer.Option("mmgene", help="Writes obs['<key>_label'] and obs['<key>_score']."),
    as_json: bool = json_option(),
) -> None:
    """Zero-shot labels for every cell of FILE, with 'unknown' when no label is clearly best or none fits."""
    from mmgene.io import read
    from mmgene.query.labelling import annotate as run
    from mmgene.query.labelling import checked_labels

    rule = overrides(AnnotateConfig, {
        "prompts": tuple(prompt) if prompt else None, "markers": markers, "species": species, "tissue": tissue,
        "temperature": temperature, "min_prob": min_prob,
        "min_z": None if min_z == OFF else min_z, "alpha": alpha, "refine": refine, "standardize": standardize,
        "weigh_types": weigh_types, "recentre": recentre, "data_markers": data_markers, "definitions": definitions, "hierarchy": hierarchy, "others": others, "others_margin": others_margin,
    })
    if min_z == OFF:  # --min-z none: no such rule (an unset option keeps the default)
        rule = rule.replace(min_z=None)
    inputs = [*model_on_disk(model), *([reference] if reference is not None else [])]
    target = anndata_target(file, out, in_place=in_place, overwrite=overwrite, inputs=inputs)
    all_labels = [*labels, *(more_labels or [])]
    chosen = _chosen_terms(all_labels, term, rule.origin)
    checked_labels(all_labels, rule, chosen, calibrated=reference is not None)  # before a large file is read
    adata = read(file)
    ref = (read(reference), reference_column) if reference is not None else None
    run(adata, all_labels, model, rule, term_ids=chosen, reference=ref, key_added=key)
    terms = _terms_read(all_labels, adata.uns["mmgene"][f"{key}_label"].get("term_ids", []))
    write_anndata(adata, target, file=file, overwrite=overwrite)
    counts = adata.obs[f"{key}_label"].value_counts()
    result = {
        "out": str(target), "label_key": f"{key}_label", "score_key": f"{key}_score", "cells": adata.n_obs,
        "counts": {str(label): int(n) for label, n in counts.items()}, "terms": terms,
    }
    emit(result, lambda: f"wrote obs['{key}_label'], obs['{key}_score'] to {target}\n{counts_text(counts)}", as_json=as_json)


@app.command("transfer")
def transfer(
    index_dir: Path = typer.Argument(..., help="A labelled reference index (built with --obs LABEL_COLUMN)."),
    file: Path = typer.Argument(..., help="The .h5ad whose cells get labels (needs the index's obsm key, or its model)."),
    label_col: Optional[str] = typer.Option(None, "--label-col", "-c", help="Column of the index's cell table to transfer (required)."),
    label_column: Optional[str] = old_spelling("--label-column"),
    k: int = typer.Option(15, "-k", "--k", help="Reference neighbours per cell."),
    weighting: Weighting = typer.Option("distance", help="distance (inverse cosine distance) or uniform (majority vote)."),
    min_confidence: float = typer.Option(0.0, help="Below this share of the vote the cell is 'unknown'."),
    novelty_alpha: Optional[float] = typer.Option(None, help="Call cells 'unknown' when they lie farther from the reference than all but this share of reference cells."),
    key: Optional[str] = typer.Option(None, help="obs column to write (default: the label column + '_transferred')."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the .h5ad."),
    in_place: bool = in_place_option(),
    overwrite: bool = overwrite_option(),
    no_rerank: bool = no_rerank_option(),
    as_json: bool = json_option(),
) -> None:
    """kNN label transfer from a reference index to the cells of FILE, with a confidence per cell."""
    from mmgene.errors import ParameterError
    from mmgene.index import CellIndex
    from mmgene.io import read
    from mmgene.query import transfer_labels

    column = label_col_given(label_col, label_column, "--label-column")
    if column is None:
        raise ParameterError("no label column given", "option --label-col", "pass --label-col COLUMN (a column of the index's cell table)")
    target = anndata_target(file, out, in_place=in_place, overwrite=overwrite, inputs=[index_dir])
    adata = read(file)
    table = transfer_labels(
        CellIndex.load(index_dir, rerank=not no_rerank), adata, column, k=k, weighting=weighting, min_confidence=min_confidence,
        novelty_alpha=novelty_alpha, key_added=key,
    )
    key = table.attrs["key_added"]
    write_anndata(adata, target, file=file, overwrite=overwrite)
    counts = table["label"].value_counts()
    result = {
        "out": str(target), "label_key": key, "confidence_key": f"{key}_confidence", "cells": adata.n_obs,
        "mean_confidence": float(table["confidence"].mean()), "counts": {str(label): int(n) for label, n in counts.items()},
        "genes": table.attrs.get("genes"),
    }
    emit(result, lambda: (
        f"wrote obs['{key}'], obs['{key}_confidence'] to {target} (mean confidence {result['mean_confidence']:.3f})\n"
        + counts_text(counts)
    ), as_json=as_json)
