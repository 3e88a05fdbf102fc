"""The general model in one recipe: a corpus, its labels harmonised to the Cell Ontology, default training.

:func:`pretrain` reads a corpus (:func:`mmgene.corpus.read_corpus`: a manifest CSV with file and
Census rows, ``.h5ad``/``.zarr`` files, folders, or :class:`~mmgene.corpus.DatasetSpec` objects),
gives every dataset without an ontology column Cell Ontology ids for its author labels
(:func:`harmonise_corpus`: the rows of a reviewed mapping CSV first, :func:`mmgene.harmonise.harmonise_labels`
for the rest), and trains on all of it with :func:`mmgene.align.train_corpus` and the library's
default configs (:mod:`mmgene.align.config`: an ensemble of ``CORPUS_DEFAULTS.members`` models); only
the seed, the number of members, whether cells of contradicted labels are left out
(``drop_contradicted``) and, for quick runs, a step limit are chosen here. Cells whose author label has no term are
left out unless ``PretrainConfig.keep_unmapped`` (then they form classes of their own, named by the label).

The same sources, mapping and seed give the same weights, byte for byte, on the same machine and
library versions (checked by ``tests/test_pretrain.py``). The model's ``mmgene_align.json`` records the
recipe under ``recipe``: the sources, every dataset with its gene match share and label source, the
Census queries, the mapping (file checksum and the table used per dataset), the orthology, this
config and the seed, next to the training configs that :func:`~mmgene.align.train_corpus` saves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mmgene.align.config import CORPUS_DEFAULTS
from mmgene.config import check_whole, setting
from mmgene.errors import LabelError, MappingError, ParameterError, _preview

#: obs column that receives the harmonised Cell Ontology ids (its names go to ``mmgene_cell_type_name``).
HARMONISED_KEY = "mmgene_cell_type_ontology_term_id"
#: columns of the mapping table kept in the recipe, per harmonised dataset.
RECIPE_COLUMNS = ("author_label", "term_id", "term_name", "confidence", "method", "n_cells")

Source = str | os.PathLike[str]


@dataclass(frozen=True)
class PretrainConfig:
    """What :func:`pretrain` lets one choose; everything else is the library's default."""

    seed: int = setting(0, "Random seed of the split, the pairs, the initial weights and the training order")
    max_steps: int | None = setting(None, "Stop training after this many steps (none: the training config's epochs)")
    mapping: Source | None = setting(
        None, "Reviewed label mapping CSV (mmgene labels harmonise); its rows win over automatic matching"
    )
    orthology: Source | None = setting(
        None, "Mouse -> human orthology table (CSV or MGI report); none: case-insensitive symbol match"
    )
    min_confidence: float | None = setting(
        None, "Automatic matches below this confidence stay unmapped (none: the harmoniser's default)"
    )
    keep_unmapped: bool = setting(
        False, "Train on cells whose author label has no Cell Ontology term, as classes of their own (else left out)"
    )
    members: int | None = setting(
        None,
        "Models trained with seeds seed, seed+1, ... and used as one ensemble "
        f"(none: the corpus trainer's default, {CORPUS_DEFAULTS.members})",
    )
    drop_contradicted: bool | None = setting(
        None,
        "Leave out of training the cells whose label the corpus's other datasets of the same species contradict "
        f"(mmgene.corpus.consensus; none: the corpus trainer's default, {CORPUS_DEFAULTS.drop_contradicted})",
    )

    def __post_init__(self) -> None:
        check_whole(self.seed, "seed", "PretrainConfig.seed", "pass 0 or another whole number")
        if self.max_steps is not None:
            check_whole(self.max_steps, "max_steps", "PretrainConfig.max_steps", "pass a step count >= 1, or none", 1)
        if self.min_confidence is not None:
            self.harmonise_config()  # HarmoniseConfig checks the value
        self.corpus_config()  # CorpusTrainingConfig checks members

    def harmonise_config(self, tissue: str | None = None, species: str | None = None) -> Any:
        """The harmoniser's config for one dataset (its defaults, but for tissue, species and min_confidence)."""
        from mmgene.config import overrides
        from mmgene.harmonise import HarmoniseConfig

        return overrides(HarmoniseConfig, {"tissue": tissue, "species": species, "min_confidence": self.min_confidence})

    def training_config(self) -> Any:
        """:class:`~mmgene.align.config.TrainingConfig` with its defaults but this seed and step limit."""
        from mmgene.align.config import TrainingConfig
        from mmgene.config import overrides

        return overrides(TrainingConfig, {"seed": self.seed, "max_steps": self.max_steps})

    def corpus_config(self) -> Any:
        """:class:`~mmgene.align.config.CorpusTrainingConfig` with its defaults but these members and
        ``drop_contradicted``."""
        from mmgene.align.config import CorpusTrainingConfig
        from mmgene.config import overrides

        return overrides(CorpusTrainingConfig, {"members": self.members, "drop_contradicted": self.drop_contradicted})

    def to_dict(self) -> dict[str, Any]:
        """Plain data (paths as text) for the recipe."""
        return {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in asdict(self).items()}


@dataclass
class PretrainResult:
    """The trained model, where it was saved (``None``: not saved) and the recipe it records."""

    model: Any
    out: Path | None
    recipe: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """One JSON-ready object: the output, the seed, per dataset what was kept, and training figures."""
        from mmgene.align.ensemble import eval_histories

        meta = self.model.meta
        held_out = [h[-1].get("zero_shot_balanced_accuracy") if h else None for h in eval_histories(meta)]
        return {
            "out": str(self.out) if self.out is not None else None,
            "seed": self.recipe["seed"],
            "datasets": [
                {k: d[k] for k in ("dataset", "species", "tissue", "n_cells", "share_matched", "labels_from")}
                | {k: d["labels"][k] for k in ("unmapped_labels", "cells_dropped") if k in d["labels"]}
                for d in self.recipe["datasets"]
            ],
            "classes": len(meta.get("classes", [])),
            "train_cells": meta.get("train_cells"),
            "test_cells": meta.get("test_cells"),
            "train_seconds": meta.get("train_seconds"),
            "held_out_balanced_accuracy": held_out if "members" in meta else held_out[0],  # an ensemble: each member's
        }


def _mapping_rows(table: Any, dataset: str) -> Any:
    """The rows of a reviewed mapping that apply to ``dataset`` (all rows of a table without a ``dataset`` column)."""
    if table is None:
        return None
    if "dataset" in table.columns:
        table = table[table["dataset"] == dataset].drop(columns="dataset")
    return table if len(table) else None


def _check_mapping_datasets(table: Any, source: Source, names: Sequence[str], typed: Sequence[str] = ()) -> None:
    """A mapping written for a manifest must name only datasets of this corpus that are harmonised, not
    ``typed`` ones (with an ontology column, whose ids are used as they are): either would be ignored."""
    if table is None or "dataset" not in table.columns:
        return
    unknown = sorted(set(table["dataset"]) - set(names))
    if unknown:
        raise MappingError(
            f"the mapping has rows for dataset(s) {_preview(unknown)} that the corpus does not list",
            os.fspath(source),
            f"use the corpus's dataset ids ({_preview(names)}) in the mapping's dataset column",
        )
    ignored = sorted(set(table["dataset"]) & set(typed))
    if ignored:
        raise MappingError(
            f"the mapping has rows for dataset(s) {_preview(ignored)}, whose ontology column gives their Cell Ontology "
            "ids, so the rows would be ignored",
            os.fspath(source),
            "drop those rows, or leave the dataset's ontology column out to harmonise its labels with the mapping",
        )


def _harmonise_dataset(ds: Any, table: Any, config: PretrainConfig) -> tuple[Any, dict[str, Any]]:
    """``ds`` with harmonised ontology ids in ``obs[HARMONISED_KEY]`` (cells of unmapped labels left out
    unless ``keep_unmapped``), and what was done, for the recipe."""
    import numpy as np

    from mmgene.corpus import CorpusDataset
    from mmgene.harmonise import apply_mapping, harmonise_labels

    rows = _mapping_rows(table, ds.name)
    mapped = harmonise_labels(ds.labels, config=config.harmonise_config(ds.spec.tissue or None, ds.species), mapping=rows)
    terms = dict(zip(mapped["author_label"], mapped["term_id"]))
    ids = np.array([terms[label] for label in ds.labels], dtype=object)
    has_term = ids != ""
    unmapped = sorted(label for label, term in terms.items() if not term)
    keep = has_term | config.keep_unmapped
    if len(set(ds.labels[keep].tolist())) < 2:
        raise LabelError(
            f"dataset {ds.name!r} keeps fewer than 2 labelled classes after harmonisation "
            f"(unmapped: {_preview(unmapped)})",
            ds.spec.location,
            "map its labels in a reviewed mapping (--mapping, from mmgene labels harmonise), or keep unmapped labels (--keep-unmapped)",
        )
    adata = ds.adata if keep.all() else ds.adata[np.flatnonzero(ds.keep)[keep]].copy()
    apply_mapping(adata, ds.spec.label_col, mapped, key_added=HARMONISED_KEY)
    cell_keep = ds.keep if keep.all() else np.ones(adata.n_obs, dtype=bool)
    harmonised = CorpusDataset(
        replace(ds.spec, ontology_col=HARMONISED_KEY), adata, ds.symbols, cell_keep, ds.labels[keep], ids[keep], ds.n_dropped
    )
    report = {
        "labels": len(terms),
        "mapped_labels": len(terms) - len(unmapped),
        "unmapped_labels": unmapped,
        "from_mapping": sorted(set(rows["author_label"]) & set(terms)) if rows is not None else [],
        "cells_unmapped": int((~has_term).sum()),
        "cells_dropped": int((~keep).sum()),
        "table": mapped[list(RECIPE_COLUMNS)].to_dict(orient="records"),
    }
    return harmonised, report


def harmonise_corpus(corpus: Any, config: PretrainConfig | None = None) -> tuple[Any, dict[str, dict[str, Any]]]:
    """A corpus whose datasets all carry Cell Ontology ids, and per dataset where its labels' ids come from.

    Datasets with an ontology column are kept as they are (``labels_from: 'ontology column'``). The
    others are harmonised (``'harmonisation'``): the reviewed ``config.mapping`` rows for the dataset (all
    rows when the mapping has no ``dataset`` column) are used as they are, the other labels matched
    with the dataset's tissue and species. The corpus given is not changed, except that a dataset
    whose cells are all kept gets ``obs[HARMONISED_KEY]`` in its in-memory AnnData.
    """
    from mmgene.corpus import Corpus

    config = config or PretrainConfig()
    table = None
    if config.mapping is not None:
        from mmgene.harmonise import read_mapping

        table = read_mapping(config.mapping)
        _check_mapping_datasets(table, config.mapping, corpus.names, [ds.name for ds in corpus if ds.spec.ontology_col])
    datasets, reports = [], {}
    for ds in corpus:
        if ds.spec.ontology_col:
            datasets.append(ds)
            reports[ds.name] = {
                "labels_from": "ontology column",
                "labels": {"ontology_col": ds.spec.ontology_col, "cells_without_id": int((ds.ontology_ids == "").sum())},
            }
            continue
        harmonised, report = _harmonise_dataset(ds, table, config)
        datasets.append(harmonised)
        reports[ds.name] = {"labels_from": "harmonisation", "labels": report}
    return Corpus(datasets, corpus.orthology), reports


def _source_paths(sources: Any, specs: Sequence[Any]) -> list[Path]:
    """What the corpus reads on this machine: the sources named, the data files, and local SOMA
    experiments of Census rows (the output must lie outside all of them)."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    paths = [Path(s) for s in items if isinstance(s, (str, os.PathLike))]
    experiments = [Path(s.census.uri) for s in specs if s.census is not None and s.census.uri and "://" not in s.census.uri]
    return paths + [s.path for s in specs if s.path is not None] + experiments


def _recipe(
    sources: Any, corpus: Any, reports: dict[str, dict[str, Any]], config: PretrainConfig, columns: dict[str, str | None]
) -> dict[str, Any]:
    """What :func:`pretrain` saves in the model's metadata under ``recipe`` (module docstring); ``columns``
    are the label and ontology columns, species and tissue given for files and folders."""
    from mmgene import __version__

    summary = corpus.summary()
    datasets = []
    for ds, row in zip(corpus, summary.to_dict(orient="records")):
        spec = ds.spec
        entry = {
            "dataset": ds.name,
            "source": spec.source,
            "species": ds.species,
            "tissue": spec.tissue,
            "label_col": spec.label_col,
            "weight": spec.weight,
            "n_cells": ds.n_cells,
            "n_unlabelled": ds.n_dropped,
            "n_genes": ds.n_genes,
            "n_matched": ds.n_matched,
            "share_matched": round(float(row["share_matched"]), 4),
            "matched_by": row["matched_by"],
            "labels_from": reports[ds.name]["labels_from"],
            "labels": reports[ds.name]["labels"],
        }
        if spec.census is not None:
            entry["census"] = asdict(spec.census)
        datasets.append(entry)
    mapping = None
    if config.mapping is not None:
        from mmgene.hub.chunks import sha256_file

        mapping = {"file": os.fspath(config.mapping), "sha256": sha256_file(config.mapping)}
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    recipe = {
        "mmgene_version": __version__,
        "sources": [os.fspath(s) if isinstance(s, (str, os.PathLike)) else s.dataset for s in items],
        "seed": config.seed,
        "columns": {name: value for name, value in columns.items() if value is not None},
        "config": config.to_dict(),
        "orthology": corpus.orthology.describe(),
        "mapping": mapping,
        "datasets": datasets,
    }
    return json.loads(json.dumps(recipe, default=str))  # as saved in mmgene_align.json (tuples as lists)


def pretrain(
    sources: Source | Sequence[Source] | Sequence[Any],
    out: Source | None = None,
    *,
    config: PretrainConfig | None = None,
    label_col: str | None = None,
    ontology_col: str | None = None,
    species: str | None = None,
    tissue: str | None = None,
    overwrite: bool = False,
) -> PretrainResult:
    """Build the general model: read ``sources`` as a corpus, harmonise its labels, train, save to ``out``.

    ``sources`` and the keyword columns are as for :func:`mmgene.corpus.read_corpus` (``label_col``,
    ``ontology_col``, ``species``, ``tissue`` for files and folders only). ``out`` is checked before
    any data is read (an existing output only with ``overwrite``, and a folder only if mmgene wrote it).
    Returns the model, the output and the recipe (also in ``model.meta['recipe']``).
    """
    from mmgene.align import train_corpus
    from mmgene.atomic import check_output
    from mmgene.corpus import CorpusOptions, read_corpus
    from mmgene.corpus.sources import specs_from
    from mmgene.progress import info

    config = config or PretrainConfig()
    if not isinstance(config, PretrainConfig):
        raise ParameterError(f"config must be a PretrainConfig, got {type(config).__name__}", "pretrain(config=...)")
    specs = specs_from(sources, label_col=label_col, ontology_col=ontology_col, species=species, tissue=tissue)
    if config.mapping is not None:
        from mmgene.harmonise import read_mapping

        _check_mapping_datasets(
            read_mapping(config.mapping), config.mapping, [s.dataset for s in specs], [s.dataset for s in specs if s.ontology_col]
        )
    if out is not None:
        extra = [p for p in (config.mapping, config.orthology) if p is not None]
        check_output(out, overwrite=overwrite, inputs=[*_source_paths(sources, specs), *extra], folder=True)
    corpus = read_corpus(specs, CorpusOptions(orthology=config.orthology))
    corpus, reports = harmonise_corpus(corpus, config)
    for name, report in reports.items():
        labels = report["labels"]
        if labels.get("unmapped_labels"):
            what = "left out" if labels["cells_dropped"] else "kept as their own classes"
            info(
                f"{name}: {len(labels['unmapped_labels'])} label(s) without a Cell Ontology term "
                f"({_preview(labels['unmapped_labels'])}), {labels['cells_unmapped']:,} cells {what}"
            )
    model = train_corpus(corpus, training=config.training_config(), balance=config.corpus_config())
    columns = {"label_col": label_col, "ontology_col": ontology_col, "species": species, "tissue": tissue}
    recipe = _recipe(sources, corpus, reports, config, columns)
    model.meta["recipe"] = recipe
    if out is not None:
        model.save(out, overwrite=overwrite)
    return PretrainResult(model, Path(out) if out is not None else None, recipe)


__all__ = ["HARMONISED_KEY", "PretrainConfig", "PretrainResult", "harmonise_corpus", "pretrain"]
