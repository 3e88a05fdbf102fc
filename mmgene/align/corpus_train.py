"""Train aligned models on all datasets of a corpus (:func:`train_corpus`; by default several, as one ensemble).

Per dataset, pairs are made as for one AnnData (:func:`mmgene.pairs.make_pairs`, its own label and
ontology columns, its own held-out cells), from a copy of the data whose genes are the dataset's
*human* symbols (``CorpusDataset.symbols``; genes without one are dropped, so a mouse cell reads
"CD3E", not "Cd3e", and is normalised over the genes it shares with human data). The datasets'
training rows are then resampled so that datasets, and classes within a dataset, weigh equally
(:mod:`mmgene.align.balance`; a manifest's ``weight`` column changes a dataset's share). Classes are
global: two datasets' classes are one class when they have the same Cell Ontology id (else the same
cleaned label). The loss keeps a cell's ancestor and descendant classes out of its negatives
(:func:`mmgene.text.ontology.related_terms`). Everything after the pairs is
:func:`mmgene.align.fit.fit_pairs`, shared with :func:`mmgene.align.train`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmgene.align.balance import balanced_rows, dataset_quotas
from mmgene.align.config import (
    CORPUS_DEFAULTS, AlignConfig, CorpusTrainingConfig, ModelConfig, TrainerDefaults, TrainingConfig,
)
from mmgene.atomic import check_output
from mmgene.errors import ParameterError
from mmgene.pairs.config import PairsConfig
from mmgene.pairs.result import TrainingPairs
from mmgene.progress import info, warn
from mmgene.provenance import record_of
from mmgene.text.labels import clean_label, distinct_name
from mmgene.text.ontology import is_term_id


def human_view(ds: Any) -> Any:
    """A new AnnData of ``ds``'s expression matrix restricted to genes with a human symbol, whose
    ``var['gene_symbol']`` is that symbol (obs and obsm shared); the corpus's AnnData is untouched."""
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    from mmgene.io import expression

    view = expression(ds.adata)
    keep = np.asarray(ds.symbols != "")
    if not keep.any():
        raise ParameterError(
            "no gene of the dataset has a human symbol", f"dataset {ds.name!r}", "check its species and gene symbols"
        )
    matrix = view.take(cols=np.flatnonzero(keep))
    if not sp.issparse(matrix):
        matrix = sp.csr_matrix(np.asarray(matrix))
    symbols = np.asarray(ds.symbols[keep], dtype=object)
    var = pd.DataFrame({"gene_symbol": symbols}, index=pd.Index(symbols.astype(str)))
    obsm = {k: np.asarray(v) for k, v in ds.adata.obsm.items()}
    uns = {"mmgene": {"input": dict(record_of(ds.adata, "input"))}}  # error messages name the file
    return anndata.AnnData(X=sp.csr_matrix(matrix), obs=ds.adata.obs.copy(), var=var, obsm=obsm, uns=uns)


@dataclass
class GlobalClasses:
    """Classes across datasets: key (CL id, or ``label:<cleaned label>``), shown name, and text."""

    keys: list[str]
    names: list[str]
    texts: list[Any]

    def add(self, key: str, name: str, text: Any) -> int:
        """The global id of ``key`` (a new class when unseen; a clashing name gets the key appended)."""
        if key in self.keys:
            return self.keys.index(key)
        self.keys.append(key)
        self.names.append(distinct_name(name, key, self.names))
        self.texts.append(text)
        return len(self.keys) - 1

    @property
    def term_ids(self) -> list[str]:
        return [k if is_term_id(k) else "" for k in self.keys]


def class_key(label: str, term_id: str) -> str:
    """A class's identity across datasets: its Cell Ontology id, else its cleaned label."""
    return term_id if is_term_id(term_id) else "label:" + clean_label(label).lower()


def terms_of(ds: Any, labels: Sequence[str]) -> list[str]:
    """The Cell Ontology id most of the dataset's cells with each label carry ('' if none), curated
    or harmonised (:func:`mmgene.pairs.build.majority_terms`)."""
    from mmgene.pairs.build import majority_terms

    majority = majority_terms(ds.labels, ds.ontology_ids)
    return [majority.get(str(label), "") for label in labels]


def dataset_pairs(ds: Any, pairs: PairsConfig) -> PairsConfig:
    """``pairs`` for one dataset: its captions say the dataset's species and tissue (the config's tissue
    when the dataset names none)."""
    return dataclasses.replace(pairs, species=ds.species, tissue=ds.spec.tissue or pairs.tissue)


def _relabel(split: Any, mapping: np.ndarray, prefix: str) -> Any:
    """``split`` with class ids mapped to global ids and obs names prefixed by the dataset."""
    for column in ("label", "negative_label"):
        if column in split.column_names:
            values = mapping[np.asarray(split[column], dtype=np.int64)].tolist()
            split = split.remove_columns(column).add_column(column, values)
    names = [f"{prefix}:{n}" for n in split["obs_name"]]
    return split.remove_columns("obs_name").add_column("obs_name", names)


def _merge_markers(lists: Sequence[Sequence[str]], limit: int = 2000) -> list[str]:
    """Marker genes of all datasets, taken in turn from each list, without repeats."""
    out: dict[str, None] = {}
    for rank in range(max((len(x) for x in lists), default=0)):
        for genes in lists:
            if rank < len(genes):
                out.setdefault(genes[rank], None)
    return list(out)[:limit]


def corpus_pairs(
    corpus: Any, *, inputs: Sequence[str], config: AlignConfig, balance: CorpusTrainingConfig,
    left_out: dict[str, set[str]] | None = None,
) -> tuple[TrainingPairs, dict[str, Any]]:
    """The balanced training pairs of all datasets (global class ids) and what to record about them;
    ``left_out`` names, per dataset, cells whose training rows are dropped (contradicted labels)."""
    from mmgene.lazy import require

    require("datasets", "training pairs of a corpus")
    import datasets

    from mmgene.pairs import make_pairs

    seed = config.training.seed
    _warn_label_keyed(corpus)
    classes = GlobalClasses([], [], [])
    trains, tests, per_dataset, trained_cells, markers, unlabelled, cells = [], [], {}, {}, [], 0, 0
    for ds in corpus:
        info(f"pairs of dataset {ds.name!r}")
        pairs = make_pairs(
            human_view(ds), [ds.spec.label_col], ontology_col=ds.spec.ontology_col, inputs=inputs,
            config=dataset_pairs(ds, config.pairs), seed=seed,
        )
        terms = terms_of(ds, pairs.classes)
        mapping = np.array(
            [classes.add(class_key(n, t), _shown(n, t), text) for n, t, text in zip(pairs.classes, terms, pairs.class_text)],
            dtype=np.int64,
        )
        train = pairs["train"]
        if left_out and left_out.get(ds.name):
            dropped = left_out[ds.name]
            train = train.select([i for i, n in enumerate(train["obs_name"]) if n not in dropped])
        train = _relabel(train, mapping, ds.name)
        trains.append(train)
        if "test" in pairs and len(pairs["test"]):
            tests.append(_relabel(pairs["test"], mapping, ds.name))
        per_dataset[ds.name] = [classes.names[int(g)] for g in sorted(set(np.asarray(train["label"]).tolist()))]
        trained_cells[ds.name] = set(pairs["train"]["obs_name"])
        markers.append(pairs.marker_genes)
        unlabelled += pairs.unlabelled_cells
        cells += len(set(train["obs_name"]))
    sizes = [len(t) for t in trains]
    weights = [ds.spec.weight for ds in corpus]
    rows, quotas = dataset_quotas(sizes, weights, balance.rows_per_dataset)
    picked = balanced_rows([np.asarray(t["label"]) for t in trains], quotas, seed)
    train = datasets.concatenate_datasets([t.select(p.tolist()) for t, p in zip(trains, picked)])
    splits = {"train": train}
    if tests:
        splits["test"] = datasets.concatenate_datasets(tests)
    pairs = TrainingPairs(datasets.DatasetDict(splits), classes.names, classes.texts, unlabelled, _merge_markers(markers))
    record = {
        "datasets": corpus.names,
        "dataset_classes": per_dataset,
        "class_ids": classes.keys,
        "train_cells": cells,
        "trained_cells": trained_cells,
        "balance": {
            "rows_per_dataset": rows, "dataset_rows": dict(zip(corpus.names, sizes)), "mask_related": balance.mask_related,
            "dataset_weights": dict(zip(corpus.names, weights)),
            **contradicted_record(left_out),
        },
    }
    return pairs, record


def _warn_label_keyed(corpus: Any) -> None:
    """Say which datasets have no Cell Ontology ids while others have: their classes meet the others'
    only by an identical cleaned label, so "T cells" is neither merged with nor masked against CL:0000084."""
    without = [ds.name for ds in corpus if not any(is_term_id(str(t)) for t in pd.unique(ds.ontology_ids))]
    if without and len(without) < len(corpus):
        warn(
            f"dataset(s) {without} have no Cell Ontology ids: their classes are matched to the other datasets' only "
            "by label, and the loss does not keep their ancestor or descendant classes out of their negatives; "
            "give them an ontology column (mmgene labels harmonise, then labels apply), or train with mmgene pretrain, which harmonises"
        )


def _shown(label: str, term_id: str) -> str:
    """A global class's name: the ontology term's label, else the author label."""
    if is_term_id(term_id):
        from mmgene.text.ontology import term_text

        return term_text(term_id).label
    return label


def _obsm_dims(corpus: Any, inputs: Sequence[str]) -> list[int]:
    """Width of each obsm input, the same in every dataset (else a ParameterError)."""
    dims = []
    for key in (k for k in inputs if k != "genes"):
        widths = {ds.name: int(np.asarray(ds.adata.obsm[key]).shape[1]) for ds in corpus if key in ds.adata.obsm}
        if len(widths) != len(corpus) or len(set(widths.values())) != 1:
            raise ParameterError(
                f"obsm[{key!r}] must exist with one width in every dataset, got {widths}",
                "argument inputs",
                "compute the representation for every dataset the same way, or train on 'genes'",
            )
        dims.append(next(iter(widths.values())))
    return dims


def start_training(
    corpus: Any, inputs: Sequence[str], config: AlignConfig, balance: CorpusTrainingConfig | None,
    defaults: TrainerDefaults, out: str | os.PathLike[str] | None, overwrite: bool,
) -> tuple[AlignConfig, CorpusTrainingConfig, list[int]]:
    """The checks and settings both corpus trainers start with: ``config`` with the settings left to the
    trainer set to ``defaults``, the balance config, and the obsm inputs' widths (one per dataset, else
    a ParameterError); ``out`` must be writable and the corpus not empty. Sets torch's threads."""
    import torch

    from mmgene.settings import settings

    config = config.resolved(defaults)
    if out is not None:
        check_output(out, overwrite=overwrite, folder=True)
    if len(corpus) == 0:
        raise ParameterError("the corpus has no dataset", "argument corpus", "list at least one dataset")
    obsm_dims = _obsm_dims(corpus, inputs)
    torch.set_num_threads(max(1, settings.torch_threads))
    return config, (balance or CorpusTrainingConfig()).resolved(defaults), obsm_dims


def corpus_meta(corpus: Any, examples: TrainingPairs, record: dict[str, Any], related: Any, run: Any, seconds: float) -> dict[str, Any]:
    """What a model trained on a corpus records: its classes, datasets and each one's classes and
    label columns, how mouse genes were matched (``orthology``), the cells trained and held out, how
    rows were balanced, and the run. ``record``
    holds ``datasets``, ``dataset_classes``, ``class_ids``, ``train_cells`` and ``balance``."""
    related_pairs = int((related.sum() - len(related)) // 2) if related is not None else 0
    return {
        "classes": list(examples.classes),
        **{k: record[k] for k in ("datasets", "dataset_classes", "class_ids")},
        "label_cols": {ds.name: ds.spec.label_col for ds in corpus},
        "ontology_col": {ds.name: ds.spec.ontology_col for ds in corpus},
        "orthology": corpus.orthology.describe(),
        "unlabelled_cells": int(examples.unlabelled_cells),
        "train_cells": int(record["train_cells"]),
        "test_cells": int(len(examples["test"])) if "test" in examples else 0,
        "balance": {**record["balance"], "related_class_pairs": related_pairs},
        "run": run.summary,
        "temperature": run.temperature,
        "train_seconds": round(seconds, 1),
        "eval_history": run.evaluator.history if run.evaluator is not None else [],
    }


def train_corpus(
    corpus: Any,
    *,
    inputs: Sequence[str] = ("genes",),
    pairs: PairsConfig | None = None,
    model: ModelConfig | None = None,
    training: TrainingConfig | None = None,
    balance: CorpusTrainingConfig | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Any:
    """Train aligned text-cell models on every dataset of ``corpus`` (:func:`mmgene.corpus.read_corpus`):
    one :class:`~mmgene.align.model.AlignedModel`, or with ``balance.members`` > 1 (the default:
    ``CORPUS_DEFAULTS.members``) an :class:`~mmgene.align.ensemble.EnsembleModel` of models trained with
    seeds ``seed``, ``seed + 1``, ...

    ``pairs``, ``model`` and ``training`` are as for :func:`mmgene.align.train`; ``balance``
    (:class:`~mmgene.align.config.CorpusTrainingConfig`) sets the rows per dataset, the ontology
    mask and the members. The zero-shot evaluator during training scores the held-out cells of all
    datasets together, against all classes. The metadata names the datasets and each one's classes.
    """
    from mmgene.lazy import require

    require("torch", "training on a corpus")
    from mmgene.align.ensemble import train_members

    config, balance, obsm_dims = start_training(
        corpus, inputs, AlignConfig(pairs or PairsConfig(), model or ModelConfig(), training or TrainingConfig()),
        balance, CORPUS_DEFAULTS, out, overwrite,
    )
    left_out = contradicted_obs(corpus) if balance.drop_contradicted else None
    aligned = train_members(
        lambda member, text: _train_model(corpus, inputs, member, balance, obsm_dims, text, left_out), config, balance.members
    )
    if out is not None:
        aligned.save(out, overwrite=overwrite)
    return aligned


def contradicted_obs(corpus: Any, config: Any = None) -> dict[str, set[str]]:
    """Per dataset, the obs names of the cells whose label the other datasets contradict
    (:func:`mmgene.corpus.consensus.contradicted_cells`, with its ``ConsensusConfig``)."""
    from mmgene.corpus.consensus import contradicted_cells

    found = contradicted_cells(corpus, config)
    return {ds.name: set(np.asarray(ds.adata.obs_names)[ds.keep][found[ds.name]].astype(str)) for ds in corpus}


def contradicted_record(left_out: dict[str, set[str]] | None) -> dict[str, Any]:
    """What a model records of the cells left out for contradicted labels (``left_out`` None: none judged)."""
    return {
        "drop_contradicted": left_out is not None,
        "contradicted_cells": {name: len(cells) for name, cells in (left_out or {}).items()},
    }


def _train_model(
    corpus: Any, inputs: Sequence[str], config: AlignConfig, balance: CorpusTrainingConfig, obsm_dims: list[int], text: Any,
    left_out: dict[str, set[str]] | None = None,
) -> Any:
    """One model of :func:`train_corpus`, with its training mean, not saved; ``text`` is the members' shared
    text model; ``left_out`` the cells not trained on, per dataset."""
    from mmgene.align.fit import fit_pairs
    from mmgene.align.model import AlignedModel
    from mmgene.align.recentre import MEAN_KEY, training_cells, training_mean
    from mmgene.text.ontology import related_terms

    t0 = time.perf_counter()
    examples, record = corpus_pairs(corpus, inputs=inputs, config=config, balance=balance, left_out=left_out)
    related = related_terms(GlobalClasses(record["class_ids"], [], []).term_ids) if balance.mask_related else None
    run = fit_pairs(examples, inputs=inputs, config=config, obsm_dims=obsm_dims, related=related, shared_text=text)
    seconds = time.perf_counter() - t0
    aligned = AlignedModel(run.st, list(inputs), corpus_meta(corpus, examples, record, related, run, seconds), config)
    aligned.meta[MEAN_KEY] = training_mean(aligned, [training_cells(human_view(ds), record["trained_cells"][ds.name]) for ds in corpus])
    info(f"trained on {len(corpus)} datasets in {seconds:.0f} s")
    return aligned
