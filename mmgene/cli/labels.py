"""``mmgene labels harmonise`` (author labels -> a reviewable Cell Ontology mapping CSV) and ``mmgene labels apply``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from mmgene.cli.app import app, overwrite_option
from mmgene.cli.options import json_option
from mmgene.cli.outputs import anndata_target, check_suffix, in_place_option, write_anndata
from mmgene.cli.results import emit, table_text

labels_app = typer.Typer(
    help="Author cell-type labels -> Cell Ontology terms, through a reviewable CSV.", no_args_is_help=True
)
app.add_typer(labels_app, name="labels")

SHOWN = ("author_label", "term_id", "term_name", "confidence", "method", "n_cells")


def _obs(path: Path) -> Any:
    """The cell table of an .h5ad/.zarr, without loading its matrix."""
    from mmgene.io import read

    return read(path, backed=path.suffix.lower() in (".h5ad", ".h5"), expression_needed=False).obs


def _label_column(obs: Any, column: str, source: str) -> Any:
    """``obs[column]``, refused when missing or when its labels are all numbers or true/false."""
    from mmgene.errors import MissingColumnError
    from mmgene.io.labels import require_names
    from mmgene.text.labels import label_text

    if column not in obs.columns:
        raise MissingColumnError(column, "obs", list(map(str, obs.columns)), source)
    text = label_text(obs[column])
    require_names(text[text != ""], f"obs[{column!r}] of {source}", "label harmonisation")
    return obs[column]


def _tables(source: Path, label_col: Optional[str], tissue: Optional[str], species: Optional[str], config: dict) -> Any:
    """One mapping table for a file, or one per dataset of a manifest (with a ``dataset`` column)."""
    import pandas as pd

    from mmgene.errors import ParameterError
    from mmgene.harmonise import HarmoniseConfig, harmonise_labels

    if source.suffix.lower() == ".csv":
        from mmgene.corpus import read_manifest

        tables = []
        for spec in read_manifest(source):
            if spec.path is None:
                raise ParameterError(
                    f"dataset {spec.dataset!r} is a Census query",
                    spec.where,
                    "harmonise files only: list .h5ad/.zarr paths in the manifest",
                )
            labels = _label_column(_obs(spec.path), label_col or spec.label_col, str(spec.path))
            cfg = HarmoniseConfig(
                tissue=tissue if tissue is not None else (spec.tissue or None),
                species=species or spec.species,
                **config,
            )
            tables.append(harmonise_labels(labels, config=cfg).assign(dataset=spec.dataset))
        table = pd.concat(tables, ignore_index=True)
        return table[["dataset", *[c for c in table.columns if c != "dataset"]]]
    if label_col is None:
        raise ParameterError(
            "no label column given", "option --label-col", "pass --label-col COLUMN (the obs column of author labels)"
        )
    labels = _label_column(_obs(source), label_col, str(source))
    return harmonise_labels(labels, config=HarmoniseConfig(tissue=tissue, species=species, **config))


@labels_app.command("harmonise")
def harmonise(
    source: Path = typer.Argument(
        ...,
        help="An .h5ad/.zarr file, or a corpus manifest (.csv): each dataset harmonised with its tissue, species.",
    ),
    label_col: Optional[str] = typer.Option(
        None, "--label-col", "-c", help="obs column of author labels (a manifest's own label_col when left out)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="The mapping CSV to write (review it, edit term_id, pass it to 'labels apply')."
    ),
    tissue: Optional[str] = typer.Option(
        None, help="Tissue of the cells, e.g. pancreas, PBMC (a manifest's own tissue when left out)."
    ),
    species: Optional[str] = typer.Option(
        None, help="human, mouse or another species: leaves out terms specific to another species (a manifest's own when left out)."
    ),
    min_confidence: float = typer.Option(0.3, help="Below this a label is left unmapped (empty term_id)."),
    text_model: bool = typer.Option(
        False, "--text-model", help="Also score similarity with the offline MiniLM model (slower)."
    ),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Map each distinct author label of SOURCE to a Cell Ontology term and write the mapping CSV."""
    from mmgene.atomic import check_output
    from mmgene.harmonise import write_mapping

    check_suffix(out, (".csv",), "the mapping is written as CSV: pass --out MAPPING.csv")
    check_output(out, overwrite=overwrite, inputs=[source])
    table = _tables(
        source, label_col, tissue, species, {"min_confidence": min_confidence, "use_text_model": text_model}
    )
    write_mapping(table, out, overwrite=overwrite)
    shown = [c for c in ("dataset", *SHOWN) if c in table.columns]
    unmapped = int((table["term_id"] == "").sum())
    result = {"out": str(out), "labels": len(table), "unmapped": unmapped, "mapping": table.to_dict(orient="records")}
    emit(result, lambda: (
        table_text(table[shown], 2)
        + f"\nwrote {len(table)} labels to {out} ({unmapped} unmapped); "
        f"review term_id, then: mmgene labels apply FILE --mapping {out}"
    ), as_json=as_json)


@labels_app.command("apply")
def apply(
    file: Path = typer.Argument(..., help="The .h5ad/.zarr whose cells get Cell Ontology ids."),
    mapping: Path = typer.Option(..., "--mapping", "-m", help="A (reviewed) mapping CSV from 'labels harmonise'."),
    label_col: str = typer.Option(..., "--label-col", "-c", help="obs column of author labels."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the new .h5ad/.zarr."),
    in_place: bool = in_place_option(),
    key: str = typer.Option(
        "cell_type_ontology_term_id", help="obs column for the ids (names go to <key without _ontology_term_id>_name)."
    ),
    dataset: Optional[str] = typer.Option(None, help="Which dataset's rows to use, for a mapping of a whole manifest."),
    overwrite: bool = overwrite_option(),
    as_json: bool = json_option(),
) -> None:
    """Write each cell's Cell Ontology id and name into obs, from a reviewed mapping."""
    from mmgene.harmonise import apply_mapping, read_mapping
    from mmgene.io import read

    # never over (nor inside a folder of) the reviewed mapping
    target = anndata_target(file, out, in_place=in_place, overwrite=overwrite, inputs=[mapping])
    table = read_mapping(mapping)  # checked (once) before the (possibly large) data is read
    adata = read(file, expression_needed=False)
    apply_mapping(adata, label_col, table, key_added=key, dataset=dataset)
    write_anndata(adata, target, file=file, overwrite=overwrite)
    entry = adata.uns["mmgene"][key]
    result = {
        "out": str(target), "key": key, "name_key": entry["name_key"],
        "mapped_cells": int(entry["n_mapped"]), "unmapped_cells": int(entry["n_unmapped"]),
    }
    emit(result, (
        f"wrote obs['{key}'] and obs['{entry['name_key']}'] to {target}: "
        f"{entry['n_mapped']:,} cells mapped, {entry['n_unmapped']:,} without a term"
    ), as_json=as_json)
