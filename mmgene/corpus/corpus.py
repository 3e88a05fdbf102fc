"""Many AnnData sources read as one corpus, each dataset keeping its own genes, labels and metadata.

No matrices are concatenated: every dataset keeps its AnnData (read through :func:`mmgene.io.read`,
which checks the matrix and fills ``var['gene_symbol']``) and its own gene set. What makes datasets
comparable is one human gene symbol per gene (``CorpusDataset.symbols``, also written to
``var['human_symbol']`` of the expression matrix's gene table): the upper-cased symbol for human data,
the ortholog's symbol for mouse data (:mod:`mmgene.corpus.orthology`), ``""`` when none matches. When
two genes of a dataset get the same human symbol, the first (in var order) keeps it and the others
are left unmatched, so symbols stay unique within a dataset. A dataset listed as human (files are,
by default) whose symbols read as mouse genes (:mod:`mmgene.genes.ids`) is an error.

Cells without a label (see :mod:`mmgene.io.labels`) are left out of the corpus and counted; a dataset
with fewer than two labelled classes is an error. Several datasets are small fixed-size subsets, so a
sampler should weigh datasets, not cells: :meth:`Corpus.sizes` and ``CorpusDataset.class_counts``
give what it needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmgene.corpus.orthology import OrthologyMap, upper_symbols
from mmgene.corpus.sources import DatasetSpec, located, specs_from
from mmgene.errors import CorpusError, MMGeneError, ParameterError, _preview
from mmgene.io.labels import usable_labels
from mmgene.text.labels import label_text

TASK = "corpus"


@dataclass(frozen=True)
class CorpusOptions:
    """How a corpus is read (shared by all its datasets)."""

    #: mouse -> human orthology table (CSV/TSV or MGI report); ``None``: case-insensitive symbol match.
    orthology: str | os.PathLike[str] | None = None
    #: open ``.h5ad`` files read-only on disk (``.zarr`` with sparse matrices on disk, Census queries as
    #: :class:`~mmgene.corpus.soma_rows.SomaRows`) instead of loading them: for streamed training.
    backed: bool = False
    #: ``'counts'`` to insist on raw integer counts in every dataset (Geneformer); ``None`` accepts log1p.
    require: str | None = None
    #: an open CELLxGENE Census handle for Census datasets without a local ``uri``.
    census: Any = None


@dataclass
class CorpusDataset:
    """One dataset: its spec, AnnData, human symbol per gene, and labels of the cells kept."""

    spec: DatasetSpec
    adata: Any
    #: human symbol per gene of the expression matrix (``mmgene.io.expression(adata).var``), ``""`` if none.
    symbols: np.ndarray
    #: per cell of ``adata``: True where the cell has a usable label (the cells the corpus holds).
    keep: np.ndarray
    #: label of each kept cell, as text.
    labels: np.ndarray
    #: Cell Ontology id of each kept cell (``""`` when missing or when the dataset has no ontology column).
    ontology_ids: np.ndarray
    #: cells left out for having no label.
    n_dropped: int

    @property
    def name(self) -> str:
        return self.spec.dataset

    @property
    def species(self) -> str:
        return self.spec.species

    @property
    def n_cells(self) -> int:
        """Cells in the corpus (labelled ones)."""
        return int(self.keep.sum())

    @property
    def n_genes(self) -> int:
        return len(self.symbols)

    @property
    def n_matched(self) -> int:
        """Genes with a human symbol."""
        return int((self.symbols != "").sum())

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels.tolist()))

    @property
    def class_counts(self) -> pd.Series:
        """Cells per class, largest first (ties by name)."""
        counts = pd.Series(self.labels).value_counts()
        return counts.sort_index().sort_values(ascending=False, kind="stable")

    def tissue(self) -> np.ndarray:
        """Tissue of each kept cell: the spec's, else ``obs['tissue_general']`` (Census), else ``""``."""
        if self.spec.tissue or "tissue_general" not in self.adata.obs.columns:
            return np.full(self.n_cells, self.spec.tissue, dtype=object)
        return label_text(self.adata.obs["tissue_general"])[self.keep]


class Corpus:
    """Datasets in the order given, each with its own genes and labels (see the module docstring)."""

    def __init__(self, datasets: Sequence[CorpusDataset], orthology: OrthologyMap) -> None:
        self.datasets = list(datasets)
        self.orthology = orthology

    def __iter__(self) -> Iterator[CorpusDataset]:
        return iter(self.datasets)

    def __len__(self) -> int:
        return len(self.datasets)

    def __getitem__(self, key: str | int) -> CorpusDataset:
        if isinstance(key, int):
            return self.datasets[key]
        for ds in self.datasets:
            if ds.name == key:
                return ds
        raise ParameterError(
            f"no dataset {key!r} in the corpus", "argument dataset", f"choose one of {', '.join(self.names)}"
        )

    @property
    def names(self) -> list[str]:
        return [ds.name for ds in self.datasets]

    def close(self) -> None:
        """Close what a backed corpus holds open: its ``.h5ad`` files and the SOMA experiments its Census
        rows opened (``CorpusOptions(backed=True)``; datasets in memory need nothing). ``with
        read_corpus(...) as corpus:`` closes them on leaving the block."""
        for ds in self.datasets:
            _close_source(ds.adata)

    def __enter__(self) -> Corpus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def labels(self, dataset: str | int) -> np.ndarray:
        """Labels of the kept cells of one dataset, in its obs order."""
        return self[dataset].labels

    def sizes(self) -> dict[str, int]:
        """Cells per dataset (for samplers that weigh datasets, not cells)."""
        return {ds.name: ds.n_cells for ds in self.datasets}

    def gene_report(self) -> pd.DataFrame:
        """One row per dataset: dataset, species, n_genes, n_matched, share_matched, matched_by."""
        rows = [
            {
                "dataset": ds.name,
                "species": ds.species,
                "n_genes": ds.n_genes,
                "n_matched": ds.n_matched,
                "share_matched": ds.n_matched / ds.n_genes if ds.n_genes else 0.0,
                "matched_by": "human symbol" if ds.species == "human" else self.orthology.source,
            }
            for ds in self.datasets
        ]
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """The gene report plus tissue, cells kept and dropped, label column, classes and training weight per dataset."""
        extra = pd.DataFrame(
            [
                {
                    "tissue": ds.spec.tissue,
                    "n_cells": ds.n_cells,
                    "n_unlabelled": ds.n_dropped,
                    "label_col": ds.spec.label_col,
                    "ontology_col": ds.spec.ontology_col or "",
                    "n_classes": len(ds.classes),
                    "classes": ds.classes,
                    "source": ds.spec.source,
                    "weight": ds.spec.weight,
                }
                for ds in self.datasets
            ]
        )
        report = self.gene_report()
        return pd.concat([report[["dataset", "species"]], extra, report.drop(columns=["dataset", "species"])], axis=1)

    def concat_obs(self) -> pd.DataFrame:
        """One row per kept cell of every dataset (no matrices): dataset, species, tissue, label,
        ontology_id, cell (its obs name) and row (its position in the dataset's AnnData). Indexed by
        ``"<dataset>:<cell>"``."""
        parts = []
        for ds in self.datasets:
            cells = ds.adata.obs_names[ds.keep].astype(str)
            parts.append(
                pd.DataFrame(
                    {
                        "dataset": ds.name,
                        "species": ds.species,
                        "tissue": ds.tissue(),
                        "label": ds.labels,
                        "ontology_id": ds.ontology_ids,
                        "cell": cells,
                        "row": np.flatnonzero(ds.keep),
                    },
                    index=ds.name + ":" + cells,
                )
            )
        obs = pd.concat(parts)
        for column in ("dataset", "species", "tissue"):
            order = list(dict.fromkeys(obs[column]))
            obs[column] = pd.Categorical(obs[column], categories=order)
        return obs


def _close_source(adata: Any) -> None:
    """Close a backed AnnData's file or a :class:`~mmgene.corpus.soma_rows.SomaRows`'s experiment."""
    if getattr(adata, "isbacked", False) and getattr(adata, "file", None) is not None:
        adata.file.close()
    elif callable(close := getattr(adata, "close", None)):
        close()


def _read(spec: DatasetSpec, options: CorpusOptions) -> Any:
    from mmgene.io import read

    if spec.census is not None and options.backed:  # rows read when sliced, as a backed file's
        from mmgene.corpus.soma_rows import SomaRows

        return read(SomaRows(spec.census, options.census), require=options.require)
    if spec.census is not None:
        from mmgene.corpus.census import census_anndata

        return read(census_anndata(spec.census, options.census), require=options.require)  # type: ignore[arg-type]
    return read(spec.path, backed=options.backed, require=options.require)  # type: ignore[arg-type]


def _labelled(spec: DatasetSpec, adata: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Which cells have a label, their labels and ontology ids, and how many have none (a blank label, or
    CELLxGENE's id ``unknown``: both reported on stderr)."""
    from mmgene.io import obs_column
    from mmgene.io.labels import require_classes
    from mmgene.progress import info

    where, task = f"obs[{spec.label_col!r}] of {spec.source}", f"{TASK} dataset {spec.dataset!r}"
    keep, labels, n_dropped = usable_labels(obs_column(adata, spec.label_col), where, task, min_classes=False)
    if spec.ontology_col:
        all_ids = label_text(obs_column(adata, spec.ontology_col))
        unannotated = keep & (all_ids == UNANNOTATED_ID)
        if unannotated.any():
            info(
                f"{task}: dropped {int(unannotated.sum()):,} of {len(keep):,} cells whose obs[{spec.ontology_col!r}] is "
                f"{UNANNOTATED_ID!r} (CELLxGENE's id for a cell its authors did not type)"
            )
            labels = labels[~unannotated[keep]]
            keep = keep & ~unannotated
            n_dropped += int(unannotated.sum())
        ontology = all_ids[keep]
        _check_ontology_ids(spec, ontology)
    else:
        ontology = np.full(int(keep.sum()), "", dtype=object)
    require_classes(labels, where, task, n_dropped)
    return keep, labels, ontology, n_dropped


#: the CELLxGENE schema's cell type id for a cell its authors did not type: such a cell has no label.
UNANNOTATED_ID = "unknown"


def _check_ontology_ids(spec: DatasetSpec, ids: np.ndarray) -> None:
    """Refuse ids (of the labelled cells) that are malformed or not in the shipped Cell Ontology, before
    any training reads them (as :func:`mmgene.text.ontology.term_text` would, late); a blank id means
    "no id" and is kept (the class's other cells, or its label, name it)."""
    from mmgene.text.ontology import is_known_term, is_term_id, ontology_version

    counts = pd.Series(ids, dtype=object).value_counts(sort=False)
    bad = counts[[v != "" and not is_known_term(v) for v in counts.index]]
    if bad.empty:
        return
    bad = bad.sort_values(ascending=False, kind="stable")
    shown = [
        f"{v!r} ({n:,} cell{'s' if n != 1 else ''}, {'not in the Cell Ontology' if is_term_id(v) else 'not of the form CL:0000000'})"
        for v, n in bad.iloc[:5].items()
    ]
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    raise CorpusError(
        f"dataset {spec.dataset!r} has {int(bad.sum()):,} cells whose Cell Ontology id in obs[{spec.ontology_col!r}] is malformed "
        f"or unknown to the Cell Ontology {ontology_version()}: {', '.join(shown)}{more}",
        f"obs[{spec.ontology_col!r}] of {spec.source}",
        "correct the ids (e.g. CL:0000236), blank out the ones you do not know, or leave ontology_col blank for this "
        "dataset and map its labels instead: `mmgene labels harmonise` writes a reviewable mapping, which "
        "`mmgene pretrain --mapping` applies",
    )


def _check_species(spec: DatasetSpec, adata: Any) -> None:
    """Refuse a dataset listed as human whose gene symbols read as mouse genes (as :func:`mmgene.io.read`
    records it): each symbol would count as a human one, and its cells would be captioned human."""
    from mmgene.genes.ids import MOUSE_STYLE_EXAMPLES
    from mmgene.provenance import record_of

    found = record_of(adata, "input")
    if spec.species != "human" or not found.get("symbols_look_mouse"):
        return
    raise CorpusError(
        f"dataset {spec.dataset!r} is listed as human, but its gene symbols read as mouse genes "
        f"({int(found.get('mouse_style_symbols', 0)):,} of {int(found.get('n_vars', 0)):,} written in mouse style: "
        f"{MOUSE_STYLE_EXAMPLES}), so every symbol would count as a human one and its cells would be called human",
        f"the gene symbols of {spec.source}",
        "set its species to mouse (the manifest's species column; --species mouse or species='mouse' for files, "
        "which are human by default); if it is human data, write its gene symbols in upper case",
    )


def _raw_symbols(adata: Any, options: CorpusOptions) -> tuple[pd.DataFrame, pd.Series]:
    """The expression matrix's gene table and its symbols (as :func:`mmgene.io.read` filled them)."""
    from mmgene.io import expression

    var = expression(adata, require=options.require).var  # type: ignore[arg-type]
    return var, upper_symbols(var["gene_symbol"])


def _first_only(symbols: np.ndarray) -> np.ndarray:
    """Blank every repeat of a symbol after its first occurrence."""
    out = np.asarray(symbols, dtype=object).copy()
    out[pd.Series(out).duplicated().to_numpy() & (out != "")] = ""
    return out


def _symbol_match(loaded: list[tuple[DatasetSpec, Any, pd.DataFrame, pd.Series]]) -> OrthologyMap:
    """The default mouse -> human map: GENCODE's human symbols and the corpus's own human symbols."""
    from mmgene.genes.ids import gene_table

    human = [s for spec, _, _, syms in loaded if spec.species == "human" for s in syms if s]
    table = gene_table()
    reference = set(table.symbol_to_ensembl) | set(human)
    return OrthologyMap.symbol_match(reference, f" against {table.version} and the corpus's human symbols")


def _dataset(
    spec: DatasetSpec,
    adata: Any,
    var: pd.DataFrame,
    symbols: pd.Series,
    cells: tuple[Any, ...],
    orthology: OrthologyMap,
) -> CorpusDataset:
    """One read dataset with its human symbols (also written to ``var['human_symbol']``) and provenance;
    a :class:`CorpusError` when none of its genes has one (it would add cells without expression)."""
    from mmgene.provenance import record

    keep, labels, ontology, n_dropped = cells
    human = symbols.to_numpy(dtype=object) if spec.species == "human" else orthology.to_human(symbols)
    human = _first_only(human)
    matched_by = "human symbol" if spec.species == "human" else orthology.source
    if not (human != "").any():
        table = "; if you pass an orthology table, its mouse column must hold these symbols"
        raise CorpusError(
            f"none of the {len(human):,} genes of dataset {spec.dataset!r} ({spec.species}) matched a human gene "
            f"symbol (matched by {matched_by}; genes {_preview(var.index, 3)})",
            spec.location,
            "check the dataset's species and give var a column of gene symbols (e.g. var['gene_symbol'])"
            + (table if spec.species == "mouse" else ""),
        )
    var["human_symbol"] = human
    ds = CorpusDataset(spec, adata, human, keep, labels, ontology, n_dropped)
    record(
        adata,
        "corpus",
        dataset=spec.dataset,
        species=spec.species,
        label_col=spec.label_col,
        n_cells=ds.n_cells,
        n_unlabelled=n_dropped,
        n_genes=ds.n_genes,
        n_matched=ds.n_matched,
        matched_by=matched_by,
    )
    return ds


def read_corpus(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Sequence[DatasetSpec],
    options: CorpusOptions | None = None,
    *,
    label_col: str | None = None,
    ontology_col: str | None = None,
    species: str | None = None,
    tissue: str | None = None,
) -> Corpus:
    """Read a corpus from a manifest CSV, from ``.h5ad``/``.zarr`` files and folders (then
    ``label_col`` is required; ``ontology_col``, ``species`` (default human) and ``tissue`` apply to
    every file), or from :class:`DatasetSpec` objects (Census queries among them).

    Every dataset is read and checked before the corpus is returned; an error names the manifest
    line (or file) and what to fix.
    """
    from mmgene.progress import progress

    options = options or CorpusOptions()
    specs = specs_from(sources, label_col=label_col, ontology_col=ontology_col, species=species, tissue=tissue)
    table = OrthologyMap.from_file(options.orthology) if options.orthology is not None else None  # before reading data
    loaded, opened = [], []
    try:
        for spec in progress(specs, desc="reading corpus", unit="dataset"):
            try:
                adata = _read(spec, options)
                opened.append(adata)
                _check_species(spec, adata)
                keep, labels, ontology, n_dropped = _labelled(spec, adata)
                var, symbols = _raw_symbols(adata, options)
            except MMGeneError as exc:
                raise located(exc, spec.location) from exc
            loaded.append((spec, adata, var, symbols, (keep, labels, ontology, n_dropped)))
        orthology = table or _symbol_match([item[:4] for item in loaded])
        datasets = [_dataset(*item, orthology) for item in loaded]
    except BaseException:  # a refused dataset: close what the datasets read so far hold open (backed)
        for source in opened:
            _close_source(source)
        raise
    return Corpus(datasets, orthology)
