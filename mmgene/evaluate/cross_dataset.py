"""Leave-one-dataset-out evaluation across a corpus: does zero-shot transfer to a dataset never seen?

For each held-out dataset, a model is trained on the other datasets (:func:`mmgene.align.train_corpus`)
and the held-out cells are scored zero-shot with text prompts made from the dataset's own class
names, once with the Cell Ontology names of its curated ids and once with the authors' labels (by
default, like annotate's, the prompts do not say the dataset's species and tissue; ``origin_prompts``). Every
figure has context beside it:

- ``single``: a model trained on one reference dataset only (PBMC 3k by default), scored the same way;
- ``mapper``: a supervised reference mapper, a logistic regression on the other datasets' cells
  (log-normalised expression over the genes the held-out dataset shares with them), whose classes are
  matched to the held-out dataset's through Cell Ontology ids. It can only name classes it was
  trained on, so it is scored on those classes' cells only; ``mapper_classes`` scores mmgene on the
  same cells with the same classes as labels, the like-for-like comparison.

``versus`` gives mmgene's balanced accuracy minus each baseline's on the same cells (Cell Ontology
prompts; against the mapper, ``mapper_classes``), with a 95% paired bootstrap interval over the
held-out cells (:func:`mmgene.metrics.balanced_accuracy_difference`): whether "above the baseline"
outlasts the luck of which cells a dataset has. The training seed's share of the noise is not in it.

Classes of the held-out dataset that no training dataset has, nor an ancestor or descendant of (by
Cell Ontology id and is_a), are *unseen*:
they are reported separately, with the share of their cells the model calls ``unknown`` when it is
offered only the seen classes, next to the share of seen-class cells wrongly called ``unknown``
(with one seen class annotate's p_max/z rule has nothing to choose between, so only the others rule
rejects and ``rule`` says so; with none, the unseen classes are named, their rates are ``None`` and
``unscored`` says why; cells without a Cell Ontology id are neither seen nor unseen).
A prompt set of fewer than two classes, and a mapper with fewer than two classes to name
(``mapper_unscored``), are not scored: one label is the answer for every cell, a perfect figure about
nothing. Each entry's ``seeds`` are its models' training seeds; ``training`` records the configs.
``left_out_label`` asks the same of every class in turn (``cells that are none of the known types``):
each class of the held-out dataset with at least ``min_left_out_cells`` cells and no ancestor or
descendant among the others is left out of the labels, and the shares of its cells and of the other
cells called ``unknown`` are averaged over the classes; with ``others`` (annotate's default) and
without. "Unknown" is annotate's rule: softmax over standardised similarities, unknown at or below
``min_prob`` or below ``min_z``, and with ``others`` also when a trained class outside the labels is
nearer by more than ``others_margin`` (:mod:`mmgene.query.others`).

Scoring is annotate's default rule, per cell and without refinement: the held-out cells recentred on
the model's training mean (``recentre``, :mod:`mmgene.align.recentre`; each entry's ``recentred`` says
whether they were), the model's gene channel widened by the genes that mark the held-out cells
(``data_markers``, :mod:`mmgene.align.data_genes`; each entry's ``data_markers`` says how many joined),
similarities from
:func:`mmgene.query.scoring.label_similarities` (with ``hierarchy`` a class also answers for the
model's training classes below it), each class's column z-scored over the held-out cells (an
ensemble's member by member and averaged, :meth:`~mmgene.query.scoring.LabelSimilarities.standardised`)
(``standardize``; the raw-cosine balanced accuracy and macro-F1 are reported beside as
``cosine_*``; for one model AUROC is the same for both), with ``proportion_error`` (how far the
predicted cell-type proportions are from the true ones) and ``called_unknown`` (annotate's p_max/z rule);
``weigh_types`` repeats the headline figures for annotate's ``weigh_types`` rule. ``mixed_levels`` asks a question that mixes
levels: the dataset's classes plus their direct is_a parents, answered with the deepest confident
term, and reports exact balanced accuracy beside ``balanced_partial_credit``, which gives an answer
that is an ancestor of the true term the share of the truth's path it covers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from typing import Any

import numpy as np

from mmgene.errors import ParameterError, _preview
from mmgene.evaluate.config import CrossDatasetConfig
from mmgene.progress import info

PROMPT_SETS = ("ontology", "author")


def seen_terms(held: Sequence[str], trained: Sequence[str]) -> set[str]:
    """The ids of ``held`` that training covers: the same term, an ancestor or a descendant of one
    of ``trained`` (a "T cell" class is seen when training had CD8-positive T cells, and vice versa)."""
    from mmgene.text.ontology import is_term_id, term_ancestors

    trained = {t for t in trained if is_term_id(t)}
    below = set().union(*(term_ancestors(t) for t in trained)) if trained else set()
    return {h for h in held if is_term_id(h) and (h in trained or h in below or term_ancestors(h) & trained)}


def _subset(corpus: Any, names: Sequence[str]) -> Any:
    from mmgene.corpus.corpus import Corpus

    return Corpus([corpus[n] for n in names], corpus.orthology)


def _class_names(ds: Any, prompt_set: str, author_col: str = "cell_type") -> tuple[np.ndarray, list[str], list[str]]:
    """``(truth per cell, class keys, class names for prompts)`` of one prompt set: the Cell Ontology
    names of the curated ids, or the authors' labels (``author_col`` when the data has it)."""
    from mmgene.text.labels import distinct_name, label_text
    from mmgene.text.ontology import term_text

    if prompt_set == "author":
        truth = ds.labels
        if author_col in ds.adata.obs.columns:
            truth = label_text(ds.adata.obs[author_col])[ds.keep]
            truth = np.where(truth != "", truth, ds.labels)
        classes = sorted(set(truth.tolist()))
        return truth, classes, classes
    truth = np.where(ds.ontology_ids != "", ds.ontology_ids, ds.labels)
    classes = sorted(set(truth.tolist()))
    shown: dict[str, str] = {}
    for c in sorted(classes, key=lambda c: not c.startswith("CL:")):  # a term keeps its name; a label like it is told apart
        term = c.startswith("CL:")
        shown[c] = distinct_name(term_text(c).label if term else c, c if term else "author label", list(shown.values()))
    return truth, classes, [shown[c] for c in classes]


def _origin(ds: Any, config: CrossDatasetConfig) -> Any:
    """The dataset's species and tissue with ``config.origin_prompts`` (as annotate is told them), else None."""
    from mmgene.text.origin import Origin

    return Origin(ds.species, ds.spec.tissue) if config.origin_prompts else None


def prompts_for(ds: Any, config: CrossDatasetConfig) -> Callable[[Sequence[str]], list[list[str]]]:
    """The default prompts (:func:`mmgene.text.prompts.class_prompts`) for class names of ``ds``, with
    their Cell Ontology definitions (``config.definitions``); with ``config.origin_prompts`` they also
    say the dataset's species and tissue."""
    from mmgene.text.prompts import class_prompts

    return partial(class_prompts, origin=_origin(ds, config), definitions=config.definitions)


def _similarities(
    model: Any, cells: np.ndarray, names: Sequence[str], term_ids: Sequence[str] | None, hierarchy: bool,
    prompts_of: Callable[[Sequence[str]], list[list[str]]],
) -> Any:
    """The library's scoring of ``cells`` against class ``names`` (:func:`mmgene.query.scoring.label_similarities`)."""
    from mmgene.query.scoring import label_similarities
    from mmgene.text.classes import unit_rows

    return label_similarities(
        model, unit_rows(cells), prompts_of(names), names, prompts_of=prompts_of, term_ids=term_ids, hierarchy=hierarchy
    )


def _term_ids(classes: Sequence[str], prompt_set: str, origin: Any) -> list[str]:
    """The classes' Cell Ontology ids for the ontology prompts; for the authors' labels, read from the
    labels as annotate reads them, told the cells' ``origin`` when it is (:func:`mmgene.query.terms.label_terms`)."""
    from mmgene.query.terms import label_terms
    from mmgene.text.ontology import is_term_id

    return [c if is_term_id(c) else "" for c in classes] if prompt_set == "ontology" else label_terms(classes, origin=origin)


def _zero_shot(
    model: Any, cells: np.ndarray, ds: Any, prompt_set: str, config: CrossDatasetConfig, only: Sequence[str] | None = None
) -> dict[str, Any]:
    """Metrics of annotate's rule with the dataset's classes as labels; with ``only``, just those
    classes are the labels and just their cells are scored (standardised over all held-out cells, as
    annotate asked those labels of the whole dataset would)."""
    from mmgene.metrics import classification_metrics

    from mmgene.text.classes import MIN_CELLS_TO_STANDARDISE

    truth, classes, names = _class_names(ds, prompt_set, config.author_col)
    if only is not None:
        names = [n for c, n in zip(classes, names) if c in only]
        classes = [c for c in classes if c in only]
    if len(classes) < 2:
        return _unscored(int(np.isin(truth, classes).sum()), names)
    scored = _similarities(model, cells, names, _term_ids(classes, prompt_set, _origin(ds, config)), config.hierarchy, prompts_for(ds, config))
    asked = np.isin(truth, classes)
    y = np.array([classes.index(t) for t in truth[asked]])
    cosine = classification_metrics(y, scored.similarities[asked], names)
    if not config.standardize or len(truth) < MIN_CELLS_TO_STANDARDISE:
        return {**cosine, "standardized": False, CALLS: _calls(truth[asked], classes, scored.similarities[asked])}
    z = scored.standardised()
    out = classification_metrics(y, z[asked], names)
    weighed = scored.standardised(weigh_types=True)
    return {
        **out, "standardized": True, CALLS: _calls(truth[asked], classes, z[asked]),
        "cosine_balanced_accuracy": cosine["balanced_accuracy"], "cosine_macro_f1": cosine["macro_f1"],
        "called_unknown": float(np.mean(_called_unknown(z[asked], scored, names, config))),
        "weigh_types": {
            **{m: v for m, v in classification_metrics(y, weighed[asked], names).items() if m in _SUMMARY_METRICS},
            "called_unknown": float(np.mean(_called_unknown(weighed[asked], scored, names, config))),
        },
    }


def _unscored(n: int, names: Sequence[str]) -> dict[str, Any]:
    """The figures of a prompt set with fewer than two classes: undefined (NaN, ``null`` in JSON), as
    a question with one label answers it for every cell and would score a perfect 1.0."""
    nan = float("nan")
    return {
        "n": n, "accuracy": nan, "balanced_accuracy": nan, "macro_f1": nan, "macro_auroc": nan, "proportion_error": nan,
        "unscored": f"{len(names)} class{'' if len(names) == 1 else 'es'} ({_preview(names)}): "
                    "a question with fewer than two labels measures nothing",
    }


#: what a prompt set's ``weigh_types`` entry repeats of :func:`mmgene.metrics.classification_metrics`
_SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auroc", "proportion_error")
#: the key under which a set of figures keeps its per-cell calls until the comparisons are made (not reported)
CALLS = "_calls"


def _calls(truth: np.ndarray, classes: Sequence[str], scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each scored cell's true class and the class it is given (the highest score), as class keys."""
    return np.asarray(truth, dtype=object), np.asarray(classes, dtype=object)[np.asarray(scores).argmax(1)]


def _versus(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> dict[str, float] | None:
    """mmgene's balanced accuracy minus a baseline's on the same cells, with its bootstrap interval
    over the cells (:func:`mmgene.metrics.balanced_accuracy_difference`); None without both."""
    from mmgene.metrics import balanced_accuracy_difference

    if not ours or not theirs or CALLS not in ours or CALLS not in theirs:
        return None
    (truth, first), (other_truth, second) = ours[CALLS], theirs[CALLS]
    if len(truth) != len(other_truth) or not (truth == other_truth).all():
        return None
    return balanced_accuracy_difference(truth, first, second, seed=BOOTSTRAP_SEED)


#: the seed of the paired bootstrap intervals of ``versus`` (recorded in a report's ``training``)
BOOTSTRAP_SEED = 0


def _comparisons(entry: dict[str, Any]) -> dict[str, Any]:
    """mmgene against each baseline of a held-out dataset (Cell Ontology prompts; the mapper on its own
    classes and cells); then drops the per-cell calls from ``entry``."""
    ours = entry["mmgene"]
    versus = {
        "single": _versus(ours.get("ontology"), (entry.get("single") or {}).get("ontology")),
        "mapper": _versus(ours.get("mapper_classes"), entry.get("mapper")),
    }
    for figures in (ours, entry.get("single") or {}):
        for value in figures.values():
            if isinstance(value, dict):
                value.pop(CALLS, None)
    if entry.get("mapper"):
        entry["mapper"].pop(CALLS, None)
    return versus


def _called_unknown(z: np.ndarray, scored: Any, names: Sequence[str], config: CrossDatasetConfig) -> np.ndarray:
    """Which rows of the z-scores ``z`` annotate's p_max/z rule calls ``unknown`` (nested labels: the deepest confident one)."""
    from mmgene.query.labelling import UNKNOWN, assign_labels, assign_nested

    if scored.hierarchy.nested:
        called = assign_nested(z, scored.hierarchy, min_prob=config.min_prob, thresholds=config.min_z).label
    else:
        called = assign_labels(z, list(names), min_prob=config.min_prob, thresholds=config.min_z).label
    return np.asarray(called) == UNKNOWN


def _mixed_levels(model: Any, cells: np.ndarray, ds: Any, config: CrossDatasetConfig) -> dict[str, Any] | None:
    """Annotate against the dataset's Cell Ontology classes plus their direct is_a parents, the deepest
    confident term per cell (:func:`mmgene.query.labelling.assign_nested`); scored exactly and with
    partial credit for an ancestor of the true term (:func:`mmgene.text.hierarchy.balanced_partial_credit`)."""
    from mmgene.query.labelling import UNKNOWN, assign_nested
    from mmgene.text.hierarchy import balanced_partial_credit, is_below
    from mmgene.text.ontology import is_term_id, term_parents, term_text

    truth, classes, _ = _class_names(ds, "ontology")
    held = [c for c in classes if is_term_id(c)]
    if len(held) < 2:
        return None
    terms = held + sorted({p for c in held for p in term_parents(c)} - set(held))
    names = [term_text(t).label for t in terms]
    if len(set(names)) < len(names):  # two terms with one label cannot both be prompts
        keep = [k for k, n in enumerate(names) if names.index(n) == k]
        terms, names = [terms[k] for k in keep], [names[k] for k in keep]
    scored = _similarities(model, cells, names, terms, True, prompts_for(ds, config))
    result = assign_nested(scored.standardised(), scored.hierarchy, min_prob=config.min_prob)
    answer = dict(zip(names, terms))
    predicted = [answer.get(str(a), "") for a in result.label]
    cells_held = np.isin(truth, held)
    truth_held, predicted_held = truth[cells_held], [p for p, k in zip(predicted, cells_held) if k]
    exact = np.array([t == p for t, p in zip(truth_held, predicted_held)])
    ancestor = np.array([bool(p) and is_below(t, p) for t, p in zip(truth_held, predicted_held)])
    per_class = lambda v: float(np.mean([v[truth_held == c].mean() for c in sorted(set(truth_held.tolist()))]))  # noqa: E731
    return {
        "labels": len(terms),
        "exact_balanced_accuracy": per_class(exact.astype(float)),
        "balanced_partial_credit": balanced_partial_credit(truth_held.tolist(), predicted_held),
        "answered_with_ancestor": float(ancestor.mean()),
        "unknown": float(np.mean(np.asarray(result.label)[cells_held] == UNKNOWN)),
    }


def _unknown_calls(
    model: Any, cells: np.ndarray, ds: Any, offered: Sequence[tuple[str, str]], config: CrossDatasetConfig
) -> tuple[np.ndarray | None, np.ndarray]:
    """Which cells of ``ds`` annotate calls ``unknown`` when offered the ``(term id, name)`` classes: by
    its p_max/z rule, and by the others rule (:mod:`mmgene.query.others`); annotate's default is either.
    One class offered has no p_max/z rule (None): its softmax is 1 for every cell and its z-scores
    would reject whichever half of the cells is less like it."""
    from mmgene.query.others import nearest_other_for

    ids, names = [c for c, _ in offered], [n for _, n in offered]
    prompts_of = prompts_for(ds, config)
    scored = _similarities(model, cells, names, ids, config.hierarchy, prompts_of)
    others = nearest_other_for(model, cells, scored.similarities, names, ids, prompts_of).rejects(config.others_margin)
    by_rule = _called_unknown(scored.standardised(), scored, names, config) if len(offered) > 1 else None
    return by_rule, others


#: the ``rule`` of a rejection rate measured with one seen class offered
ONE_SEEN_CLASS_RULE = "others rule only: one seen class offered"


def _rejection(model: Any, cells: np.ndarray, ds: Any, seen: set[str], config: CrossDatasetConfig) -> dict[str, Any] | None:
    """Share of unseen-class cells called ``unknown`` when only the seen classes are offered (None when
    every cell has a Cell Ontology id and none is of an unseen class). Cells without an id are neither
    seen nor unseen (``cells_without_id``). One seen class is asked alone and only the others rule can
    reject (``rule`` says so); with none there is no question to offer: the unseen classes are still
    named, their rates are ``None`` and ``unscored`` says why."""
    from mmgene.text.ontology import is_term_id

    truth, classes, names = _class_names(ds, "ontology")
    has_id = np.array([is_term_id(t) for t in truth], dtype=bool)
    unseen = has_id & np.array([t not in seen for t in truth], dtype=bool)
    without_id = int((~has_id).sum())
    if not unseen.any() and not without_id:
        return None
    out: dict[str, Any] = {
        "unseen_classes": sorted({n for c, n in zip(classes, names) if is_term_id(c) and c not in seen}),
        "unseen_cells": int(unseen.sum()),
        "cells_without_id": without_id,
        "unseen_called_unknown": None,
        "seen_called_unknown": None,
    }
    offered = [(c, n) for c, n in zip(classes, names) if c in seen]
    if not unseen.any():
        return {**out, "unscored": "no cell with a Cell Ontology id is of an unseen class"}
    if not offered:
        return {**out, "unscored": "no seen class to offer"}
    by_rule, by_others = _unknown_calls(model, cells, ds, offered, config)
    if by_rule is None:
        out["rule"] = ONE_SEEN_CLASS_RULE
    unknown = by_others if by_rule is None else by_rule | by_others
    known = has_id & ~unseen
    out["unseen_called_unknown"] = float(unknown[unseen].mean())
    out["seen_called_unknown"] = float(unknown[known].mean()) if known.any() else None
    return out


def _left_out_label(model: Any, cells: np.ndarray, ds: Any, config: CrossDatasetConfig) -> dict[str, Any] | None:
    """Each class left out of the labels in turn: shares of its cells and of the rest called ``unknown``."""
    from mmgene.text.hierarchy import is_below

    truth, classes, names = _class_names(ds, "ontology")
    left_out = [
        c for c in classes
        if (truth == c).sum() >= config.min_left_out_cells and not any(is_below(c, o) or is_below(o, c) for o in classes if o != c)
    ]
    if len(classes) < 3 or not left_out:
        return None
    rates: dict[str, dict[str, list[float]]] = {"others": {"left": [], "rest": []}, "without_others": {"left": [], "rest": []}}
    for c in left_out:
        by_rule, by_others = _unknown_calls(model, cells, ds, [(o, n) for o, n in zip(classes, names) if o != c], config)
        mine = truth == c
        for key, unknown in (("others", by_rule | by_others), ("without_others", by_rule)):
            rates[key]["left"].append(float(unknown[mine].mean()))
            rates[key]["rest"].append(float(unknown[~mine].mean()))
    out: dict[str, Any] = {"classes_left_out": len(left_out)}
    for key, r in rates.items():
        out[key] = {"left_out_called_unknown": float(np.mean(r["left"])), "rest_called_unknown": float(np.mean(r["rest"]))}
    return out


def covering_class(term: str, held: Sequence[str]) -> str | None:
    """The class of ``held`` a training class ``term`` answers for: the same term, else the most
    specific held class it descends from (a "CD8-positive T cell" prediction answers "T cell")."""
    from mmgene.text.ontology import term_ancestors

    if term in held:
        return term
    above = [h for h in held if h in term_ancestors(term)]
    return max(above, key=lambda h: (len(term_ancestors(h)), h)) if above else None


def _mapper(train: Sequence[Any], held: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The supervised reference mapper's metrics on ``held``'s seen classes (matched by Cell Ontology id
    and is_a: the probabilities of training classes that answer for one held class are summed), or
    ``(None, why)`` when it has fewer than two of them to name (it would name one class for every cell)."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    from mmgene.corpus.expression import log_expression
    from mmgene.metrics import classification_metrics

    genes = sorted(set(held.symbols.tolist()) & set().union(*(set(d.symbols.tolist()) for d in train)) - {""})
    labels = np.concatenate([d.ontology_ids for d in train])
    if len(genes) < 2:
        return None, f"{len(genes)} gene{'' if len(genes) == 1 else 's'} shared with the training datasets, fewer than two"
    if len(set(labels.tolist()) - {""}) < 2:
        return None, "the training datasets have fewer than two Cell Ontology classes"
    X = sp.vstack([log_expression(d, genes) for d in train]).tocsr()
    weights = np.concatenate([np.full(d.n_cells, 1.0 / d.n_cells) for d in train])  # datasets weigh equally
    fit = labels != ""
    clf = LogisticRegression(max_iter=300, class_weight="balanced")
    clf.fit(X[fit], labels[fit], sample_weight=weights[fit] * fit.sum() / weights[fit].sum())
    held_classes = sorted(set(held.ontology_ids.tolist()) - {""})
    answers = [covering_class(str(c), held_classes) for c in clf.classes_]
    seen = [h for h in held_classes if h in answers]
    if len(seen) < 2:
        return None, f"it can name {len(seen)} of the held-out dataset's {len(held_classes)} Cell Ontology classes, fewer than two"
    cells = np.isin(held.ontology_ids, seen)
    proba = clf.predict_proba(log_expression(held, genes)[np.flatnonzero(cells)])
    scores = np.stack([proba[:, [k for k, a in enumerate(answers) if a == h]].sum(axis=1) for h in seen], axis=1)
    y = np.array([seen.index(t) for t in held.ontology_ids[cells]])
    out = classification_metrics(y, scores, seen)
    out[CALLS] = _calls(held.ontology_ids[cells], seen, scores)
    out["classes_scored"] = seen
    out["cells_scored"] = int(cells.sum())
    out["genes"] = len(genes)
    return out, None


def _evaluate_model(
    model: Any, ds: Any, seen: set[str], config: CrossDatasetConfig, mapper_classes: Sequence[str] | None = None
) -> dict[str, Any]:
    from mmgene.align.corpus_train import human_view
    from mmgene.query.space import cells_for_labels, space_for_labels

    held = human_view(ds)[np.flatnonzero(ds.keep)]
    model, channel_added = space_for_labels(model, held, config.data_markers)
    cells, recentred = cells_for_labels(model, held, config.recentre)
    out: dict[str, Any] = {p: _zero_shot(model, cells, ds, p, config) for p in PROMPT_SETS}
    out["recentred"] = recentred
    out["data_markers"] = channel_added
    if mapper_classes:
        out["mapper_classes"] = _zero_shot(model, cells, ds, "ontology", config, only=mapper_classes)
    out["mixed_levels"] = _mixed_levels(model, cells, ds, config)
    out["rejection"] = _rejection(model, cells, ds, seen, config)
    out["left_out_label"] = _left_out_label(model, cells, ds, config)
    return out


#: the default single-dataset baseline, trained only when the corpus has it (any other reference must be in it).
DEFAULT_REFERENCE = CrossDatasetConfig.reference
#: what a reference dataset is for, in refusals.
BASELINE = "train the single-dataset baseline on"


def check_dataset_names(names: Sequence[str], datasets: Sequence[str], action: str, where: str) -> None:
    """Refuse the ``names`` that are not among a corpus's ``datasets`` (before any training), listing those."""
    unknown = [n for n in dict.fromkeys(names) if n not in datasets]
    if unknown:
        raise ParameterError(
            f"cannot {action} {_preview(unknown)}: the corpus has no such dataset (it has {_preview(datasets, 20)})",
            where,
            "name datasets of the corpus (the dataset column of its manifest)",
        )


def check_hold_out(names: Sequence[str], datasets: Sequence[str], where: str, corpus_where: str | None = None) -> None:
    """Refuse datasets to hold out that the corpus lacks, a name given twice (its fold would be trained
    twice and the second report replace the first) and a corpus of fewer than two datasets (nothing
    would be left to train on; ``corpus_where`` names it, else ``where``): before any training."""
    if isinstance(names, str):
        raise ParameterError(
            f"the datasets to hold out must be a sequence of names, got the text {names!r}", where,
            f"pass a tuple, e.g. ({names!r},)",
        )
    check_dataset_names(names, datasets, "hold out", where)
    twice = [n for n in dict.fromkeys(names) if list(names).count(n) > 1]
    if twice:
        raise ParameterError(
            f"{_preview(twice)} {'is' if len(twice) == 1 else 'are'} named more than once among the datasets to hold out",
            where, "name each dataset once",
        )
    if len(datasets) < 2:
        raise ParameterError(
            f"cannot hold out a dataset of a corpus of {len(datasets)} ({_preview(datasets)}): no dataset is left to train on",
            corpus_where or where, "name datasets of a corpus that has at least two",
        )


def check_shared_genes(corpus: Any, names: Sequence[str]) -> None:
    """Refuse to hold out a dataset that shares no human gene symbol with the rest of ``corpus``: a model
    trained on the rest could read none of its genes, and its figures would measure nothing."""
    from mmgene.errors import CorpusError

    symbols = {n: set(np.asarray(corpus[n].symbols, dtype=object).tolist()) - {""} for n in corpus.names}
    for name in names:
        rest = set().union(*(genes for other, genes in symbols.items() if other != name))
        if not symbols[name] & rest:
            raise CorpusError(
                f"dataset {name!r} shares no gene with the other datasets of the corpus ({len(symbols[name]):,} genes "
                f"with a human symbol, against {len(rest):,} in the others), so a model trained on them reads none of its genes",
                f"dataset {name!r}",
                "check its species and gene symbols (mouse genes are matched through an orthology table or by symbol), "
                "or leave it out of the datasets to hold out",
            )


def cross_dataset(
    corpus: Any,
    *,
    config: CrossDatasetConfig | None = None,
    pairs: Any = None,
    model: Any = None,
    training: Any = None,
    balance: Any = None,
) -> dict[str, Any]:
    """Leave-one-dataset-out zero-shot figures of ``corpus`` (see the module docstring).

    ``pairs``, ``model``, ``training`` and ``balance`` are the configs of :func:`mmgene.align.train_corpus`
    (defaults when ``None``: an ensemble of ``CORPUS_DEFAULTS.members`` models per fold). Datasets to
    hold out and a ``reference`` other than the default (``'pbmc3k'``, skipped when the corpus lacks it)
    must be datasets of ``corpus``, and a dataset held out must share genes with the others: refused
    before any training otherwise. Returns
    ``{"config", "datasets": {name: {...}}, "summary": {...}}``.
    """
    from mmgene.align import train_corpus

    config = config or CrossDatasetConfig()
    check_hold_out(config.datasets, corpus.names, "CrossDatasetConfig.datasets")
    names = list(config.datasets) or corpus.names
    if config.reference is not None and config.reference != DEFAULT_REFERENCE:  # the default: when the corpus has it
        check_dataset_names([config.reference], corpus.names, BASELINE, "CrossDatasetConfig.reference")
    check_shared_genes(corpus, names)
    train_kw = {"pairs": pairs, "model": model, "training": training, "balance": balance}
    single = None
    if config.reference is not None and config.reference in corpus.names:
        single = train_corpus(_subset(corpus, [config.reference]), **train_kw)
    results: dict[str, Any] = {}
    trained = single
    for name in names:
        rest = [n for n in corpus.names if n != name]
        info(f"leave-one-dataset-out: {name} held out, training on {len(rest)} datasets")
        held = corpus[name]
        held_ids = sorted(set(held.ontology_ids.tolist()))
        seen = seen_terms(held_ids, sorted(set().union(*(set(corpus[n].ontology_ids.tolist()) for n in rest))))
        aligned = train_corpus(_subset(corpus, rest), **train_kw)
        trained = aligned if trained is None else trained
        mapper, unscored = _mapper([corpus[n] for n in rest], held) if config.mapper else (None, None)
        entry: dict[str, Any] = {
            "cells": held.n_cells, "classes": len(held.classes), "train_seconds": aligned.meta.get("train_seconds"),
            "seeds": model_seeds(aligned),
            "mmgene": _evaluate_model(aligned, held, seen, config, mapper["classes_scored"] if mapper else None),
        }
        if single is not None and name != config.reference:
            reference_ids = sorted(set(corpus[config.reference].ontology_ids.tolist()))
            entry["single"] = _evaluate_model(single, held, seen_terms(held_ids, reference_ids), config)
        if config.mapper:
            entry["mapper"] = mapper
            if unscored:
                entry["mapper_unscored"] = unscored
        entry["versus"] = _comparisons(entry)
        results[name] = entry
    return {"config": asdict(config), "training": _training_record(trained), "datasets": results, "summary": summarise(results)}


def model_seeds(model: Any) -> list[int]:
    """The training seed of each model of ``model`` (an ensemble's members, in order; else its own)."""
    return [int(m.config.training.seed) for m in getattr(model, "members", [model])]


def _training_record(model: Any) -> dict[str, Any]:
    """How every model of the report was trained (they share their configs): the trained model's
    configs, its members' seeds and the bootstrap's seed of the ``versus`` intervals."""
    return {**model.config.to_dict(), "seeds": model_seeds(model), "bootstrap_seed": BOOTSTRAP_SEED}


def _mean(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN when there is none: e.g. no AUROC could be computed)."""
    finite = [v for v in values if v is not None and np.isfinite(v)]  # a saved report writes NaN as null
    return float(np.mean(finite)) if finite else float("nan")


def _means(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """Each metric's mean over ``rows`` (one per dataset, weighing alike) and ``datasets``: how many rows
    have the first metric (a prompt set of fewer than two classes has none and is not counted)."""
    out: dict[str, Any] = {m: _mean([r[m] for r in rows]) for m in metrics}
    out["datasets"] = sum(1 for r in rows if r[metrics[0]] is not None and np.isfinite(r[metrics[0]]))
    return out


#: the figures :func:`summarise` averages over the datasets
_HEADLINE = ("balanced_accuracy", "macro_f1", "macro_auroc")


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Mean balanced accuracy, macro-F1 and macro AUROC over datasets, per method and prompt set."""
    out: dict[str, Any] = {}
    for method, sets in (("mmgene", PROMPT_SETS), ("single", PROMPT_SETS), ("mapper", (None,))):
        for prompt_set in sets:
            rows = [r[method] if prompt_set is None else r[method][prompt_set] for r in results.values() if r.get(method)]
            if rows:
                out[method if prompt_set is None else f"{method}/{prompt_set}"] = _means(rows, _HEADLINE)
    like = [r["mmgene"]["mapper_classes"] for r in results.values() if r.get("mmgene", {}).get("mapper_classes")]
    if like:
        out["mmgene/mapper_classes"] = _means(like, _HEADLINE)
    mixed = [r["mmgene"]["mixed_levels"] for r in results.values() if r.get("mmgene", {}).get("mixed_levels")]
    if mixed:
        out["mmgene/mixed_levels"] = _means(mixed, ("exact_balanced_accuracy", "balanced_partial_credit"))
    left = [r["mmgene"]["left_out_label"] for r in results.values() if r.get("mmgene", {}).get("left_out_label")]
    if left:
        out["mmgene/left_out_label"] = {
            key: {m: _mean([r[key][m] for r in left]) for m in ("left_out_called_unknown", "rest_called_unknown")}
            for key in ("others", "without_others")
        }
        out["mmgene/left_out_label"]["datasets"] = len(left)
    return out


def _float(value: float | None) -> float:
    """A figure of a report, NaN where a saved one has ``null`` (JSON has no NaN)."""
    return float("nan") if value is None else float(value)


def markdown(report: dict[str, Any]) -> str:
    """The per-dataset table of a :func:`cross_dataset` report (Cell Ontology prompts), in memory or
    read back from its JSON."""
    lines = ["| held-out dataset | cells | mmgene bal. acc. / AUROC | single-dataset model "
             "| reference mapper (mmgene on its classes and cells) "
             "| mmgene minus single / minus mapper (95% interval over cells) "
             "| mixed levels: exact / partial credit | unseen cells called unknown "
             "| a left-out label's cells / the rest called unknown (without others) |",
             "|---|---|---|---|---|---|---|---|---|"]

    def pair(m: dict[str, Any] | None) -> str:
        if m and m.get("unscored"):
            return "n/a (fewer than two classes)"
        return f"{_float(m['balanced_accuracy']):.3f} / {_float(m['macro_auroc']):.3f}" if m else "n/a"

    def difference(d: dict[str, float] | None) -> str:
        return f"{d['difference']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f})" if d else "n/a"

    for name, r in report["datasets"].items():
        unseen = _unseen_text(r["mmgene"]["rejection"])
        mixed = r["mmgene"].get("mixed_levels")
        levels = f"{mixed['exact_balanced_accuracy']:.3f} / {mixed['balanced_partial_credit']:.3f}" if mixed else "n/a"
        like = r["mmgene"].get("mapper_classes")
        mapper_text = pair(r.get("mapper")) + (f" ({pair(like)})" if like and r.get("mapper") else "")
        if r.get("mapper_unscored"):
            mapper_text += f" ({r['mapper_unscored']})"
        versus = r.get("versus") or {}
        left = r["mmgene"].get("left_out_label")
        left_text = (
            f"{left['others']['left_out_called_unknown']:.2f} / {left['others']['rest_called_unknown']:.2f} "
            f"({left['without_others']['left_out_called_unknown']:.2f} / {left['without_others']['rest_called_unknown']:.2f})"
            if left else "n/a"
        )
        lines.append(
            f"| {name} | {r['cells']:,} | {pair(r['mmgene']['ontology'])} | {pair((r.get('single') or {}).get('ontology'))} "
            f"| {mapper_text} | {difference(versus.get('single'))} / {difference(versus.get('mapper'))} "
            f"| {levels} | {unseen} | {left_text} |"
        )
    return "\n".join(lines) + "\n"


def _unseen_text(rejection: dict[str, Any] | None) -> str:
    """The table's cell for the unseen classes: the share of their cells called unknown, or why none is."""
    if not rejection:
        return "none unseen"
    rate, cells, without = rejection["unseen_called_unknown"], rejection["unseen_cells"], rejection.get("cells_without_id", 0)
    text = f"n/a of {cells:,} ({rejection.get('unscored')})" if rate is None else f"{rate:.2f} of {cells:,}"
    if rate is not None and rejection.get("rule"):
        text += f" ({rejection['rule']})"
    return text + (f"; {without:,} cells without a Cell Ontology id" if without else "")
