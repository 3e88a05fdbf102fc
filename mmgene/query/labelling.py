"""Label every cell from a list of names, with an "unknown" answer when no label is clearly best.

The rule
--------
Given similarities ``S`` (cells x labels; cosine between a cell and a label's vector):

1. **Zero-shot scores.** A label's vector is the mean of its prompt-ensemble embeddings, re-normalised
   (CLIP's prompt ensembling, :func:`mmgene.text.classes.class_vectors`). By default the ensemble is
   the one :mod:`mmgene.evaluate` measures: the cleaned label, its Cell Ontology names, and for common
   blood cell types the label with its marker genes ("a B cell expressing MS4A1 and CD79A"), each in
   several templates (:func:`mmgene.text.prompts.class_prompts`); ``prompts=[...'{label}'...]`` uses
   your templates (:data:`mmgene.text.prompts.PROMPTS` are simple ones). Text encoders give some
   labels a higher similarity to *every* cell, so each label's column is standardised over the cells
   of the dataset (``z = (s - mean) / std``, :func:`mmgene.text.classes.standardise`; a label with no
   spread scores 0): a cell scores high for a label when it is more similar to it than the dataset's
   other cells are; an ensemble's members are standardised each and their z-scores averaged
   (:meth:`mmgene.query.scoring.LabelSimilarities.standardised`). This is the calibration on the data; it needs at least
   :data:`mmgene.text.classes.MIN_CELLS_TO_STANDARDISE` cells.
2. **Probabilities.** ``p = softmax(z / temperature)`` over the labels (``temperature`` defaults to
   :data:`DEFAULT_TEMPERATURE`, fitted on datasets left out of training).
3. **Decision.** The label with the largest ``p`` wins unless ``p_max <= min_prob`` (no label is
   clearly best; scBERT's novel-type rule, cut-off 0.5; an exact tie of two labels, 0.5 each, is
   rejected) or its standardised score is below ``min_z`` (the cell is not more like the label than
   an average cell is); then the answer is ``"unknown"``.
   ``mmgene_score`` is ``p_max``.

With labelled cells (a reference), :func:`calibrate` fits both knobs from data instead: the
temperature by minimising the negative log-likelihood of the true labels (temperature scaling,
Guo et al. 2017), and one threshold per label at the ``alpha`` quantile of the scores that cells of
that label get for it (a split-conformal bound: about ``alpha`` of a known type's cells fall below
it, while a type absent from the label list falls below every label's threshold). The bound needs the
labelled cells to be like the cells annotated (the same data and batch); across datasets it does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from mmgene.config import check_key, check_range
from mmgene.errors import NonFiniteError, ParameterError
from mmgene.provenance import record_of
from mmgene.query.config import DEFAULT_TEMPERATURE, UNKNOWN, AnnotateConfig
from mmgene.query.scoring import label_similarities
from mmgene.query.terms import label_terms
from mmgene.text.classes import standardises
from mmgene.text.labels import missing_labels, spelling_key
from mmgene.text.origin import Origin


def _check_labels(labels: Sequence[str], unknown: str = UNKNOWN) -> list[str]:
    """The labels stripped; none empty, none repeated (up to case and blanks), none the ``unknown`` answer."""
    if labels is None or not isinstance(labels, (str, Iterable)):
        raise ParameterError(
            f"labels must be a list of names, got {type(labels).__name__}", "annotate(labels=...)", "pass e.g. ['B cell', 'NK cell']"
        )
    labels = [labels] if isinstance(labels, str) else list(labels)
    if len(labels) < 1:
        raise ParameterError("no labels given", "annotate(labels=...)", "pass at least one label, e.g. 'B cell' 'NK cell'")
    if missing_labels(labels).any():  # None or NaN would become the label 'None' or 'nan'
        raise ParameterError("a label is empty or missing (None, NaN)", "annotate(labels=...)", "remove empty or missing labels")
    clean = [str(x).strip() for x in labels]
    seen: dict[str, str] = {}
    for label in clean:
        if spelling_key(label) in seen:
            first = seen[spelling_key(label)]
            again = "twice" if first == label else f"twice ({first!r} and {label!r} differ only in case or blanks)"
            raise ParameterError(f"label {first!r} is given {again}", "annotate(labels=...)", "list each label once")
        seen[spelling_key(label)] = label
    check_unknown(unknown, clean, "annotate(labels=...)", "remove it from the labels")
    return clean


def check_unknown(unknown: Any, labels: Iterable[str], where: str, fix: str, *, labels_of: str = "") -> None:
    """Refuse an ``unknown`` answer that is no name, or that reads as one of ``labels`` (up to case and blanks):
    the cells called unknown and that label's cells would be one class of the answer. ``labels_of`` says
    whose labels they are (none: the caller's own choice of labels)."""
    if not isinstance(unknown, str) or not unknown.strip():
        raise ParameterError(
            f"unknown must be a non-empty name, got {unknown!r}", where, f"use a name of its own, e.g. the default {UNKNOWN!r}"
        )
    given = {spelling_key(label): label for label in labels}.get(spelling_key(unknown))
    if given is None:
        return
    said = f"{given!r} is" if given == unknown else f"{given!r} reads as {unknown!r},"
    if not labels_of:
        raise ParameterError(f"{said} the answer for unrecognised cells, not a label", where, fix)
    raise ParameterError(
        f"{said} both a label of {labels_of} and the answer for unrecognised cells (unknown={unknown!r}): the cells "
        "called unknown and the cells of that class would be one class of the answer", where, fix,
    )


def _check_terms(labels: Sequence[str], term_ids: Sequence[str]) -> None:
    """Refuse two labels that stand for one Cell Ontology term ("B cell", "B lymphocyte"): their scores
    are alike, so they would share that type's cells at about 0.5 each and lose them all to unknown."""
    first: dict[str, str] = {}
    for label, term in zip(labels, term_ids):
        if term and term in first:
            from mmgene.text.ontology import term_text

            raise ParameterError(
                f"labels {first[term]!r} and {label!r} both stand for {term} {term_text(term).label}: the model cannot "
                "tell them apart, and cells of that type would be split between them and called unknown",
                "annotate(labels=...)", "give each cell type once, or say what one of them means (--term LABEL=CL:ID)",
            )
        first.setdefault(term, label)


def _check_prompts(labels: Sequence[str], groups: Sequence[Sequence[str]]) -> None:
    """Refuse two labels whose prompts are the same ("Foo_cells" and "Foo cells" both read as "foo cell"):
    their scores are identical, so cells of that type would be split between them and called unknown."""
    first: dict[tuple[str, ...], str] = {}
    for label, group in zip(labels, groups):
        key = tuple(sorted(group))
        if key in first:
            raise ParameterError(
                f"labels {first[key]!r} and {label!r} have the same prompts ({group[0]!r}, ...): the model cannot tell them "
                "apart, and cells of that type would be split between them and called unknown", "annotate(labels=...)",
                "give each cell type once, or pass your own templates (prompts=['a {label}']) that keep the labels as written",
            )
        first[key] = label


def label_prompts(
    labels: Sequence[str], prompts: Sequence[str] | None = None, *, markers: bool = True, origin: Origin | None = None,
    definitions: bool = False,
) -> list[list[str]]:
    """The prompt texts of every label: :func:`mmgene.text.prompts.class_prompts` (names, Cell Ontology
    names, marker genes when ``markers``, the cells' ``origin`` when known, Cell Ontology definitions
    when ``definitions``) when ``prompts`` is
    ``None``, else each template with the label, as written, in its ``{label}``.
    :func:`mmgene.text.classes.class_vectors` turns them into label vectors."""
    from mmgene.text.prompts import check_templates, class_prompts, fill_templates

    labels = _check_labels(labels)
    if prompts is None:
        return class_prompts(labels, markers=markers, origin=origin, definitions=definitions)
    templates = check_templates(prompts, "annotate(prompts=...)")
    return [fill_templates(templates, [lab], origin, "annotate(prompts=...)") for lab in labels]


def _check_scores(scores: np.ndarray, where: str) -> None:
    """Refuse NaN or infinite scores (cells x labels): a NaN row has no winner, yet argmax would name the first label."""
    finite = np.isfinite(scores).all(axis=1)
    if not finite.all():
        raise NonFiniteError(
            f"{int((~finite).sum())} cells have NaN or infinite scores", f"{where}, first at row {int(np.flatnonzero(~finite)[0])}",
            "score cells that have a vector (drop the others), or check the model",
        )


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    fix = "use e.g. 1.0 for standardised scores"
    check_range(temperature, "temperature", "annotate(temperature=...)", 0.0, None, strict=True, fix=fix)
    z = np.asarray(scores, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Assignment:
    """Per-cell answer: ``label`` (or ``'unknown'``), ``score`` (p_max), ``best`` (the top label even when rejected), ``probs``."""

    label: np.ndarray
    score: np.ndarray
    best: np.ndarray
    probs: np.ndarray
    labels: list[str]

    def frame(self, index: Sequence[str] | None = None) -> pd.DataFrame:
        return pd.DataFrame({"label": self.label, "score": self.score, "best": self.best}, index=index)


def assign_labels(
    scores: np.ndarray,
    labels: Sequence[str],
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    min_prob: float = 0.5,
    thresholds: float | Sequence[float] | np.ndarray | None = None,
    unknown: str = UNKNOWN,
) -> Assignment:
    """Apply the decision rule to a (cells x labels) score matrix (see the module docstring).

    ``thresholds`` is one minimum score for all labels or one per label; cells whose best label
    scores below it, or whose ``p_max <= min_prob`` (``min_prob > 0``), are ``unknown``.
    """
    labels = _check_labels(labels, unknown)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(labels):
        raise ParameterError(f"scores have shape {s.shape} for {len(labels)} labels", "assign_labels", "pass a (cells x labels) matrix")
    min_prob = check_range(min_prob, "min_prob", "annotate(min_prob=...)", 0.0, 1.0, fix="use e.g. 0.5")
    _check_scores(s, "assign_labels(scores=...)")
    thr = None if thresholds is None else _check_thresholds(thresholds, len(labels))
    probs = softmax(s, temperature) if s.shape[0] else np.zeros_like(s)
    top = probs.argmax(axis=1) if s.shape[0] else np.zeros(0, int)
    p_max = probs[np.arange(len(top)), top]
    reject = p_max <= min_prob if min_prob > 0 else np.zeros(len(top), bool)
    if thr is not None:
        reject |= s[np.arange(len(top)), top] < thr[top]
    names = np.asarray(labels, dtype=object)
    best = names[top]
    label = np.where(reject, unknown, best).astype(object)
    return Assignment(label=label, score=p_max.astype(np.float32), best=best, probs=probs.astype(np.float32), labels=labels)


def _check_thresholds(thresholds: Any, n_labels: int) -> np.ndarray:
    """One finite minimum score, or one per label, as ``n_labels`` floats (NaN would switch the rule off)."""
    try:
        thr = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError):
        thr = np.full(0, np.nan)
    if thr.ndim > 1 or thr.size not in (1, n_labels) or not np.isfinite(thr).all():
        raise ParameterError(
            f"thresholds must be one finite number or {n_labels} (one per label), got {thresholds!r}", "assign_labels(thresholds=...)",
            "pass e.g. 0.0, a list with one number per label, or None for no threshold",
        )
    return np.broadcast_to(thr.reshape(-1), (n_labels,))


def assign_nested(
    scores: np.ndarray,
    hierarchy: Any,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    min_prob: float = 0.5,
    thresholds: float | Sequence[float] | np.ndarray | None = None,
    unknown: str = UNKNOWN,
) -> Assignment:
    """The decision rule for a label set whose labels lie below one another (``hierarchy``, a
    :class:`mmgene.text.hierarchy.LabelHierarchy`): the softmax as in :func:`assign_labels`, then each
    label's probability includes the labels below it, and the answer is the deepest label whose
    probability is above ``min_prob`` (below 0.5, on its probable path: :func:`~mmgene.text.hierarchy.deepest_confident`;
    ``unknown`` if none; also when the best label's score is below its threshold). ``probs`` are the
    inclusive probabilities, ``score`` the answer's."""
    from mmgene.text.hierarchy import deepest_confident, inclusive

    flat = assign_labels(scores, list(hierarchy.labels), temperature=temperature, min_prob=0.0, thresholds=thresholds, unknown=unknown)
    probs = inclusive(flat.probs, hierarchy)
    pick = deepest_confident(probs, hierarchy, min_prob) if len(probs) else np.zeros(0, int)
    names = np.asarray(flat.labels, dtype=object)
    reject = (pick < 0) | (flat.label == unknown)
    label = np.where(reject, unknown, names[np.maximum(pick, 0)]).astype(object)
    score = np.where(pick >= 0, probs[np.arange(len(pick)), np.maximum(pick, 0)], probs.max(axis=1) if len(probs) else 0.0)
    return Assignment(label=label, score=score.astype(np.float32), best=flat.best, probs=probs.astype(np.float32), labels=flat.labels)


@dataclass
class Calibration:
    """Temperature and per-label thresholds fitted on labelled cells (see :func:`calibrate`)."""

    temperature: float
    thresholds: np.ndarray
    alpha: float
    labels: list[str]
    n_cells: int


def calibrate(scores: np.ndarray, true_labels: Sequence[str], labels: Sequence[str], *, alpha: float = 0.05) -> Calibration:
    """Fit the softmax temperature (NLL) and per-label ``alpha``-quantile thresholds on labelled cells.

    Cells whose true label is not in ``labels`` are ignored; every label needs at least one cell.
    """
    from scipy.optimize import minimize_scalar

    labels = _check_labels(labels)
    alpha = check_range(alpha, "alpha", "calibrate(alpha=...)", 0.0, 1.0, strict=True, fix="use e.g. 0.05")
    s = np.asarray(scores, dtype=np.float64)
    truth = pd.Categorical(np.asarray(true_labels, dtype=object), categories=labels)
    codes = np.asarray(truth.codes)
    if s.shape != (len(codes), len(labels)):
        raise ParameterError(f"scores have shape {s.shape}, expected ({len(codes)}, {len(labels)})", "calibrate", "pass one row per labelled cell")
    _check_scores(s, "calibrate(scores=...)")
    keep = codes >= 0
    missing = [lab for i, lab in enumerate(labels) if not (codes == i).any()]
    if missing:
        raise ParameterError(f"no labelled cell of {missing[0]!r} to calibrate on", "calibrate", "give calibration cells of every label, or drop the label")
    s, codes = s[keep], codes[keep]

    def nll(log_t: float) -> float:
        z = s / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(codes)), codes] - np.log(np.exp(z).sum(axis=1))).mean())

    res = minimize_scalar(nll, bounds=(np.log(1e-4), np.log(1e3)), method="bounded", options={"xatol": 1e-4})
    own = s[np.arange(len(codes)), codes]
    thresholds = np.array([np.quantile(own[codes == i], alpha, method="lower") for i in range(len(labels))])
    return Calibration(float(np.exp(res.x)), thresholds, alpha, labels, int(len(codes)))


def centroid_scores(vectors: np.ndarray, ref_vectors: np.ndarray, ref_labels: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Cosine similarity of each cell to each label's reference centroid (mean of unit vectors, re-normalised)."""
    from mmgene.vectors import as_unit_vectors

    labels = _check_labels(labels)
    ref = as_unit_vectors(ref_vectors, where="reference vectors")
    codes = np.asarray(pd.Categorical(np.asarray(ref_labels, dtype=object), categories=labels).codes)
    if len(codes) != len(ref):
        raise ParameterError(f"{len(codes)} reference labels for {len(ref)} reference vectors", "centroid_scores", "pass one label per reference cell")
    sums = np.zeros((len(labels), ref.shape[1]), np.float64)
    np.add.at(sums, codes[codes >= 0], ref[codes >= 0])
    empty = [labels[i] for i in range(len(labels)) if not sums[i].any()]
    if empty:
        raise ParameterError(f"no reference cell is labelled {empty[0]!r}", "centroid_scores", "drop the label or add reference cells")
    centroids = as_unit_vectors(sums, labels, "label centroids")
    return as_unit_vectors(vectors, where="cell vectors") @ centroids.T


def checked_labels(
    labels: Sequence[str], config: AnnotateConfig, term_ids: Sequence[str] | None = None, *, calibrated: bool = False
) -> tuple[list[str], list[str]]:
    """The labels :func:`annotate` chooses among and their Cell Ontology ids ('' for none), checked before
    any model or cell is read (the CLI calls it before reading the file): at least two distinct labels,
    none naming a type another names, and no refinement of a ``calibrated`` (reference) run."""
    labels = _check_labels(labels, config.unknown)
    if len(labels) < 2:  # one label's softmax is 1 for every cell: no probability could reject one
        raise ParameterError(
            f"annotate chooses among labels, but only {labels[0]!r} was given", "annotate(labels=...)",
            "give two or more labels (e.g. 'B cell' 'T cell'); to rank cells by one description use `mmgene query` "
            "on an index, or mmgene.pl.query to colour them by it",
        )
    if config.refine and calibrated:
        raise ParameterError("refine and reference cannot be combined", "annotate(refine=..., reference=...)", "calibrate on a reference, or refine on the data, not both")
    term_ids = label_terms(labels, term_ids, config.origin)  # '' where a label has no term, as the caller said or as read
    _check_terms(labels, term_ids)
    return labels, term_ids


def annotate(
    adata: Any,
    labels: Sequence[str],
    model: Any,
    config: AnnotateConfig | None = None,
    *,
    term_ids: Sequence[str] | None = None,
    reference: tuple[Any, str] | None = None,
    key_added: str = "mmgene",
    copy: bool = False,
    **settings: Any,
) -> Any:
    """Zero-shot annotation of every cell against ``labels`` in a joint space.

    Writes ``obs['<key_added>_label']`` (categorical, with ``unknown``), ``obs['<key_added>_score']``
    (the winning label's probability) and ``obsm['<key_added>_probs']`` (a cells x labels table), and
    records the labels, prompts and rule in ``uns['mmgene']['<key_added>_label']``. With a model that
    reads genes, a cell that expresses none is ``unknown`` with a NaN score and NaN probabilities: the
    model has nothing of it to read, and its vector would be the same for every such cell.

    The rule's settings are an :class:`~mmgene.query.config.AnnotateConfig` (``config``), or single
    settings by name on top of it (``min_prob=0.9``): ``prompts``, ``markers``, ``species``, ``tissue``, ``temperature``,
    ``min_prob``, ``min_z``, ``standardize``, ``weigh_types``, ``recentre``, ``hierarchy``, ``others``, ``others_margin``, ``refine``,
    ``alpha``, ``unknown``.

    ``prompts=None`` uses the prompt ensemble that :mod:`mmgene.evaluate` measures (names, Cell
    Ontology names, and marker genes for common blood cell types when ``markers``; with ``tissue``
    (and ``species``) also "a <label> from <species> <tissue>"); pass templates with ``{label}`` to
    use your own.

    ``standardize`` (default: when there are at least 30 cells) z-scores each label's similarities
    over the dataset before the softmax; ``min_z`` applies to those z-scores (or to raw cosine
    similarities when not standardised). See the module docstring for the rule. ``weigh_types=True``
    takes those z-scores again with the labels that a first pass gives cells weighing alike
    (:func:`mmgene.text.classes.type_weights`): plain z-scores damp a label that fits much of the data
    (a type that is 43% of the cells scores about 1.2 for it, one that is 1% about 10), which helps rare
    types and costs the abundant one cells. On the leave-one-dataset-out folds it raised overall
    accuracy (0.808 -> 0.827, five immune datasets) and halved PBMC 3k's error in cell-type
    proportions, with fewer unknown cells, at 0.006 lower balanced accuracy (``docs/benchmarks.md``).
    It cannot be combined with ``refine``, which z-scores its starting scores again, unweighted.

    ``recentre`` (default: when the model stores a training mean and there are at least 30 cells) first
    moves the cells' mean learned vector onto the model's training mean (:mod:`mmgene.align.recentre`),
    which removes an offset that a new lab, chemistry or species puts on all cells alike; each cell's
    vector then depends on the other cells of ``adata``. Pass ``recentre=False`` for a sorted population.

    ``data_markers`` (default: for a model trained on a corpus, from 30 cells on) lets the model's gene
    channel also reach the genes that mark ``adata``'s own cells (:mod:`mmgene.align.data_genes`; no
    labels used): a model's channel covers only the genes that marked its training cells, so without it
    a prompt for a cell type of a tissue the model never saw cannot reach that type's genes.

    ``hierarchy=True`` (default) reads the labels as Cell Ontology terms (``term_ids``, else found by
    name or by the label harmoniser's rules, "CD4 T cells" included, with ``species`` and ``tissue`` as
    its hint, so "alpha" in pancreas is the pancreatic A cell; :mod:`mmgene.query.terms`): a label
    also answers for the model's training classes below it ("T cell" for the CD4- and CD8-positive T
    cells it learnt), and when labels lie below one another a parent's probability covers its
    descendants and the answer is the deepest confident label (:func:`assign_nested`). Labels without a
    term are scored as before.

    ``refine=True`` replaces the standardised similarities by scores refined with self-training on the
    data's own principal components (:mod:`mmgene.query.refine`): better on data unlike the model's
    training data, and each cell's label then depends on the other cells of ``adata``.

    ``reference=(labelled_adata, label_column)`` calibrates instead on labelled cells: raw cosine
    similarities, the temperature fitted by :func:`calibrate` and per-label ``alpha``-quantile
    thresholds (``temperature``, ``min_z`` and ``standardize`` are then not used). Reference cells
    whose label is not among ``labels`` are ignored; every label needs reference cells. The thresholds hold
    (about ``alpha`` of a type's cells below its own) for cells like the reference's: give labelled cells
    of the same data. From another dataset they need not: with PBMC 3k as the reference for Kang's PBMCs
    (a leave-one-dataset-out model) 75% of Kang's B cells fell below their threshold and were called unknown.

    ``others=True`` (default; not with ``reference``) also calls a cell ``unknown`` when a class the
    model was trained on (with a Cell Ontology id) that is not asked, nor above or below an asked
    label, is more similar to it than every label by more than ``others_margin``
    (:mod:`mmgene.query.others`): the B cells of a question about T and NK cells. That class is written
    to ``obs['<key_added>_nearest_other']``.
    """
    from mmgene.progress import info
    from mmgene.provenance import check_own_columns, check_record_slot, record
    from mmgene.query.space import (
        cells_for_labels, cells_without_genes, load_space, reads_genes, space_for_labels, space_name, uses_definitions,
    )

    check_key(key_added, "annotate(key_added=...)", "mmgene")
    config = (config or AnnotateConfig()).replace(**settings)
    check_record_slot(adata, "annotate(adata=...)")
    written = ("label", "score", "nearest_other") if config.others and reference is None else ("label", "score")
    check_own_columns(adata, [f"{key_added}_{part}" for part in written], f"{key_added}_label", "annotate(key_added=...)")
    check_own_columns(adata, [f"{key_added}_probs"], f"{key_added}_label", "annotate(key_added=...)", slot="obsm")
    _check_enough_cells(adata.n_obs, config, reference is not None)
    prompts, markers, temperature, min_prob, min_z = config.prompts, config.markers, config.temperature, config.min_prob, config.min_z
    refine, unknown = config.refine, config.unknown
    labels, term_ids = checked_labels(labels, config, term_ids, calibrated=reference is not None)
    adata = adata.copy() if copy else adata
    space = load_space(model)
    reading = reads_genes(space)
    silent = cells_without_genes(adata, reading)
    definitions = uses_definitions(space, config.definitions) and prompts is None
    prompts_of = partial(label_prompts, prompts=prompts, markers=markers, origin=config.origin, definitions=definitions)  # the labels' rule, for any class names
    groups = prompts_of(labels)
    _check_prompts(labels, groups)
    space, channel_added = space_for_labels(space, adata, config.data_markers)
    cells, recentred = cells_for_labels(space, adata, config.recentre)
    scored = label_similarities(
        space, cells, groups, labels, prompts_of=prompts_of, term_ids=term_ids, hierarchy=config.hierarchy,
    )
    sims = scored.similarities
    assign = partial(assign_nested, hierarchy=scored.hierarchy) if scored.hierarchy.nested else partial(assign_labels, labels=labels)
    extra: dict[str, Any] = {}
    if reference is not None:
        from mmgene.io import obs_column
        from mmgene.text.labels import label_text

        ref_adata, column = reference
        truth = label_text(obs_column(ref_adata, column))  # a missing label is "", which is no class
        held = set(truth.tolist()) - {""}
        absent = [lab for lab in labels if lab not in held]
        if absent:  # said here, where the column is known: calibrate only sees the labels
            from mmgene.errors import _preview

            raise ParameterError(
                f"the reference labels no cell {absent[0]!r}"
                + (f" (nor {_preview(absent[1:])})" if len(absent) > 1 else "")
                + f"; its labels are {_preview(sorted(held))}",
                f"obs[{column!r}] of the reference (--reference-column)",
                "write the labels as the reference column does, or give reference cells of every label",
            )
        ref_sims = label_similarities(
            space, cells_for_labels(space, ref_adata, config.recentre)[0], groups, labels, prompts_of=prompts_of,
            term_ids=scored.hierarchy.term_ids if config.hierarchy else None, hierarchy=config.hierarchy,
        ).similarities
        cal = calibrate(ref_sims, truth, labels, alpha=config.alpha)
        std = False
        result = assign(sims, temperature=cal.temperature, min_prob=min_prob, thresholds=cal.thresholds, unknown=unknown)
        rule = "softmax(s/T) over cosine similarities, T fitted on the reference (NLL); unknown if p_max <= min_prob or s_max < the label's alpha-quantile threshold"
        extra = {"reference_column": column, "reference_cells": cal.n_cells, "alpha": config.alpha,
                 "calibrated_temperature": cal.temperature, "thresholds": [float(t) for t in cal.thresholds]}
    elif refine:
        from mmgene.query.refine import expression_pcs, refine_scores

        std = True
        result = assign(refine_scores(scored.standardised(), expression_pcs(adata)), temperature=temperature, min_prob=min_prob, thresholds=min_z, unknown=unknown)
        rule = ("softmax(r/T) over scores refined by self-training on the data's principal components (mmgene.query.refine); "
                "unknown if p_max <= min_prob or r_max < min_z")
        extra = {"temperature": temperature, "min_z": min_z, "refined": True}
    else:
        std = standardises(len(cells), config.standardize)
        scores = scored.standardised(config.weigh_types) if std else sims.astype(np.float64)
        result = assign(scores, temperature=temperature, min_prob=min_prob, thresholds=min_z, unknown=unknown)
        z_of = "cosine similarities" if scored.members is None else "cosine similarities, each ensemble member's z-scores averaged and z-scored again"
        weighed = ", each label's winners of a first pass weighing alike in its z-scores" if config.weigh_types else ""
        rule = (f"softmax(z/T) over per-label standardised {z_of}{weighed}; unknown if p_max <= min_prob or z_max < min_z"
                if std else "softmax(s/T) over cosine similarities; unknown if p_max <= min_prob or s_max < min_z")
        extra = {"temperature": temperature, "min_z": min_z}
    if config.others and reference is None:
        extra.update(_reject_others(adata, space, cells, scored, result, config, labels, term_ids, key_added, prompts_of))
        rule += "; unknown if a trained class outside the labels beats every label's cosine by more than others_margin"
    elif "others" in record_of(adata, f"{key_added}_label"):
        # the nearest-other column of an earlier annotate under this key no longer matches the labels
        adata.obs.drop(columns=[f"{key_added}_nearest_other"], errors="ignore", inplace=True)
    if reading:
        result.label[silent], result.score[silent], result.probs[silent] = unknown, np.nan, np.nan
        extra["cells_without_genes"] = int(silent.sum())
        rule += "; unknown (score NaN) if the cell expresses no gene"
        if silent.any():
            info(f"{int(silent.sum())} of {adata.n_obs} cells express no gene: called {unknown!r}, score NaN")
    adata.obs[f"{key_added}_label"] = pd.Categorical(result.label, categories=[*labels, unknown])
    adata.obs[f"{key_added}_score"] = result.score
    adata.obsm[f"{key_added}_probs"] = pd.DataFrame(result.probs, index=adata.obs_names, columns=labels)
    counts = pd.Series(result.label).value_counts()
    record(
        adata, f"{key_added}_label", packages=("numpy",), model=space_name(space, model), labels=labels,
        prompts="mmgene.text.prompts.class_prompts" if prompts is None else list(prompts), markers=bool(markers) if prompts is None else False,
        origin=config.origin.phrase if prompts is None else "",
        prompts_per_label=[len(g) for g in groups], rule=rule, standardized=std, weigh_types=bool(config.weigh_types and std), recentred=recentred, data_markers=channel_added, definitions=definitions, min_prob=min_prob, unknown=unknown,
        # per label, in the order of ``labels`` (label names may hold '/', which h5ad keys cannot)
        label_counts=[int(counts.get(lab, 0)) for lab in labels], unknown_cells=int(counts.get(unknown, 0)),
        hierarchy=bool(config.hierarchy), term_ids=list(scored.hierarchy.term_ids), nested=scored.hierarchy.nested,
        expanded=[", ".join(group) for group in scored.expanded], **extra,
    )
    return adata if copy else None


def _check_enough_cells(n_cells: int, config: AnnotateConfig, calibrated: bool) -> None:
    """Refuse ``standardize=True`` on fewer than two cells (:func:`mmgene.text.classes.standardised_cells`
    says the same): a z-score over one cell is 0 for every label, so the cell would be unknown whatever it is."""
    if config.standardize and not calibrated and not config.refine and n_cells < 2:
        raise ParameterError(
            f"standardize needs at least two cells, the data has {n_cells}", "annotate(standardize=True)",
            "annotate more cells together, or pass standardize=False (raw cosine similarities)",
        )


def _reject_others(adata: Any, space: Any, cells: np.ndarray, scored: Any, result: Assignment, config: AnnotateConfig,
                   labels: list[str], term_ids: list[str], key_added: str,
                   prompts_of: Callable[[Sequence[str]], list[list[str]]]) -> dict[str, Any]:
    """Call ``unknown`` the cells a class outside the question fits better (:mod:`mmgene.query.others`;
    the labels' terms ``term_ids``, with or without the hierarchy); writes ``obs['<key_added>_nearest_other']``
    and returns what the record keeps."""
    from mmgene.query.others import nearest_other_for

    found = nearest_other_for(space, cells, scored.similarities, labels, [t for t in term_ids if t], prompts_of)
    rejected = found.rejects(config.others_margin)
    result.label = np.where(rejected, config.unknown, result.label).astype(object)
    adata.obs[f"{key_added}_nearest_other"] = pd.Categorical(np.where(rejected, found.nearest, None), categories=found.classes)
    return {"others": found.classes, "others_margin": config.others_margin, "unknown_by_others": int(rejected.sum())}
