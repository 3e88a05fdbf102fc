"""kNN label transfer from a labelled reference index to query cells (scGPT-style reference mapping).

Each query cell takes the labels of its ``k`` nearest reference cells (cosine). ``weighting``:

* ``'uniform'``: majority vote;
* ``'distance'``: each neighbour votes with ``1 / (1 - cos + 1e-6)`` (inverse cosine distance).

``confidence`` is the winning label's share of the vote. A cell becomes ``unknown`` when the
confidence is below ``min_confidence``, or, with ``novelty_alpha``, when its mean similarity to its
neighbours is lower than that of all but ``novelty_alpha`` of reference cells to *their* neighbours
(the threshold is calibrated on up to ``calibration_cells`` reference cells, each searched without
itself), i.e. the cell lies off the reference: a type the reference does not have.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmgene.choices import WEIGHTINGS
from mmgene.config import check_range
from mmgene.copies import copy_in_memory
from mmgene.errors import MissingColumnError, ParameterError, is_whole_number
from mmgene.progress import info, warn
from mmgene.provenance import record_of
from mmgene.query.labelling import UNKNOWN, check_unknown


def _query_vectors(reference: Any, query: Any, model: Any) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The query cells' vectors, their names, and which cells they say nothing of: a NaN or all-zero row (a
    GenePT or Geneformer cell without genes), or a cell that expresses no gene when the vectors come from a model
    that reads genes (:func:`mmgene.query.space.cells_without_genes`)."""
    from mmgene.vectors import missing_rows
    from mmgene.query.space import cells_without_genes, load_space, reads_genes

    if hasattr(query, "obsm"):
        key = reference.embedding_key
        names = list(map(str, query.obs_names))
        if key is not None and key in query.obsm:
            vectors = np.asarray(query.obsm[key])
            made_by = record_of(query, key)
            genes_read = "genes" in list(made_by.get("inputs", [])) if isinstance(made_by, dict) else False
        elif model is not None or reference.model is not None:
            space = load_space(model if model is not None else reference.model)
            vectors, genes_read = space.encode_cells(query), reads_genes(space)
        elif key is None:  # an index of bare vectors (.npy) that names no model: nothing says where the query's are
            raise ParameterError(
                "the reference index was built from bare vectors and records neither an obsm key nor a model, so "
                "nothing says which of the query AnnData's vectors to compare with it", "transfer_labels(query=...)",
                "pass the query's vectors as an array in the index's space (in Python), or rebuild the index from an "
                "AnnData's obsm key (mmgene index build FILE --embedding KEY) or with its model (-m MODEL)",
            )
        else:
            raise MissingColumnError(str(key), "obsm", list(query.obsm.keys()))
        return vectors, names, missing_rows(vectors) | cells_without_genes(query, genes_read)
    arr = np.asarray(query)
    if arr.ndim == 1 and arr.size:  # one cell's vector, as CellIndex.search reads it (not one cell per number)
        arr = arr[None, :]
    return arr, [str(i) for i in range(len(arr))], missing_rows(arr)


def _reference_labels(reference: Any, label_column: str, unknown: Any) -> tuple[np.ndarray, list[str]]:
    """Each reference cell's code into the reference's labels (``-1``: none) and those labels as ``str`` (only
    labels some cell has; values that read alike as text, 1 and '1', are one label); refuses a column with no
    label, and an ``unknown`` answer that reads as one of them (the rejected cells would merge with that class)."""
    cats = pd.Categorical(reference.cells[label_column]).remove_unused_categories()  # missing labels get code -1
    texts = [str(c) for c in cats.categories]
    categories = list(dict.fromkeys(texts))  # labels that read alike (1 and '1') are one label: their votes add up
    merged = np.asarray([categories.index(t) for t in texts] + [-1], dtype=np.int64)
    codes = merged[np.asarray(cats.codes)]  # a missing label's code, -1, picks the -1 appended
    if not categories:
        raise ParameterError(
            f"the reference has no labels in {label_column!r}", "transfer_labels", "choose a labelled column"
        )
    fix = f"pass another name for unrecognised cells (the default is {UNKNOWN!r})"
    check_unknown(unknown, categories, "transfer_labels(unknown=...)", fix, labels_of=f"the reference's {label_column!r} column")
    return codes, categories


def _check_k(k: int, ntotal: int) -> None:
    """Refuse more neighbours than the reference holds: every query cell would take the whole reference as its
    neighbours, so its vote would be (nearly) the reference's own label counts, while ``k`` recorded says otherwise."""
    if k > ntotal:
        raise ParameterError(
            f"k={k} is more than the {ntotal:,} cells of the reference index: every query cell would take all of them "
            "as neighbours and get (nearly) the reference's most common label", "transfer_labels(k=...)",
            f"use k of at most {ntotal:,} (e.g. {min(15, ntotal)}), or a larger reference",
        )


def _no_labelled_neighbour(codes: np.ndarray, label_column: str, voters: np.ndarray, unknown: str) -> None:
    """Say how many query cells found only unlabelled reference cells among their neighbours (called ``unknown``),
    so that those calls are not mistaken for cells off the reference."""
    unlabelled = int((codes < 0).sum())
    if unlabelled and voters.any():
        info(
            f"{unlabelled:,} of {len(codes):,} reference cells have no label in {label_column!r} and do not vote; "
            f"{int(voters.sum()):,} query cells found no labelled neighbour: called {unknown!r}"
        )


def _panel_match(reference: Any, query: Any) -> dict[str, Any] | None:
    """How the query AnnData's genes meet those the reference index records (:mod:`mmgene.io.panel`), said on
    stderr when the two panels mostly differ or read as two species: the votes would still look confident.
    None when either side has no gene panel (an array query, an index of bare vectors)."""
    from mmgene.io.panel import GenePanel, compare_panels

    recorded = getattr(reference, "gene_panel", None)
    own = GenePanel.of(query, "the query AnnData") if hasattr(query, "obs") else None
    if recorded is None or own is None:
        return None
    match = compare_panels(recorded, own)
    note = match.note()
    if note:
        warn(f"transfer_labels: {note}")
    return match.record()


def _reference_name(reference: Any) -> str:
    """The reference as provenance names it: its index folder, else the file its vectors came from."""
    folder = getattr(reference, "folder", None)
    return str(folder or reference.meta.get("source") or reference)


def novelty_threshold(reference: Any, k: int, alpha: float, *, calibration_cells: int = 2000, seed: int = 0) -> float:
    """The ``alpha`` quantile of reference cells' mean similarity to their k nearest other reference cells."""
    from mmgene.query.search import _drop_own

    n = reference.ntotal
    if n < 2:  # no reference cell has another to be near: the threshold would be NaN, and reject no cell
        raise ParameterError(
            f"the novelty threshold compares reference cells with their neighbours, but the reference holds {n} cell(s)",
            "transfer_labels(novelty_alpha=...)", "use a reference of at least 2 cells, or novelty_alpha=None",
        )
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(n, min(calibration_cells, n), replace=False))
    scores, found = reference.search(reference.vectors(positions=pos), min(k + 1, n))
    scores, _ = _drop_own(scores, found, pos, min(k, n - 1))
    return float(np.quantile(np.nanmean(np.where(np.isfinite(scores), scores, np.nan), axis=1), alpha))


def transfer_labels(
    reference: Any,
    query: Any,
    label_column: str,
    *,
    k: int = 15,
    weighting: str = "distance",
    min_confidence: float = 0.0,
    novelty_alpha: float | None = None,
    calibration_cells: int = 2000,
    seed: int = 0,
    model: Any = None,
    key_added: str | None = None,
    unknown: str = UNKNOWN,
    copy: bool = False,
) -> Any:
    """Predict ``label_column`` of the reference's cell table for each query cell.

    ``query`` is an AnnData (vectors from ``obsm[reference.embedding_key]``, or embedded by
    ``model``) or an (n, d) array; ``k`` is at most the reference's cells. Returns a table indexed by query
    cell with ``label``, ``confidence``, ``best`` (the vote winner even when rejected; missing when no
    neighbour voted: unlabelled reference cells do not vote) and ``similarity`` (mean cosine to the
    neighbours); ``table.attrs['key_added']`` names the obs column written (``None`` for an array).

    With an AnnData, like every mmgene function that annotates one, it writes the result:
    ``obs[key_added]`` (categorical, with ``unknown``), ``obs[key_added + '_confidence']`` and
    provenance in ``uns['mmgene'][key_added]``; ``key_added`` defaults to ``<label_column>_transferred``.
    ``copy=True`` writes into a copy of ``query`` and returns that copy instead of the table.

    When the index records the genes its cells were read from and ``query`` is an AnnData, the two gene panels
    are compared (:mod:`mmgene.io.panel`): ``table.attrs['genes']`` holds the shared and total counts and the
    species, and stderr says so when the panels mostly differ or read as two species.
    """
    if weighting not in WEIGHTINGS:
        raise ParameterError(f"unknown weighting {weighting!r}", "transfer_labels(weighting=...)", f"use one of {WEIGHTINGS}")
    if not is_whole_number(k, 1):
        raise ParameterError(f"k must be a whole number of at least 1, got {k!r}", "transfer_labels(k=...)", "use e.g. 15")
    check_range(min_confidence, "min_confidence", "transfer_labels(min_confidence=...)", 0.0, 1.0, fix="use e.g. 0.5")
    if novelty_alpha is not None:
        check_range(novelty_alpha, "novelty_alpha", "transfer_labels(novelty_alpha=...)", 0.0, 1.0, strict=True,
                    fix="use e.g. 0.01, or None to switch it off")
        if not is_whole_number(calibration_cells, 1):
            raise ParameterError(f"calibration_cells must be a whole number of at least 1, got {calibration_cells!r}",
                                 "transfer_labels(calibration_cells=...)", "use e.g. 2000")
    if label_column not in reference.cells.columns:
        raise MissingColumnError(label_column, "the reference index's cell table", [c for c in reference.cells.columns if c != "cell_id"])
    codes, categories = _reference_labels(reference, label_column, unknown)
    _check_k(k, int(reference.ntotal))
    is_anndata = hasattr(query, "obs")
    if is_anndata:
        from mmgene.provenance import check_record_slot

        check_record_slot(query, "transfer_labels(query=...)")
    if copy and not is_anndata:
        raise ParameterError("copy=True needs an AnnData query", "transfer_labels(copy=True)", "pass an AnnData, or leave copy off for an array")
    key_added = (f"{label_column}_transferred" if key_added is None else key_added) if is_anndata else None
    if key_added is not None:
        from mmgene.config import check_key

        check_key(key_added, "transfer_labels(key_added=...)", f"{label_column}_transferred")
        from mmgene.provenance import check_own_columns

        check_own_columns(query, [key_added, f"{key_added}_confidence"], key_added, "transfer_labels(key_added=...)")
    vectors, names, silent = _query_vectors(reference, query, model)
    genes = _panel_match(reference, query)
    scores = np.full((len(vectors), k), np.nan, dtype=np.float32)
    pos = np.full((len(vectors), k), -1, dtype=np.int64)
    if (~silent).any() or not len(vectors):  # a silent cell has no neighbours, so no votes: unknown
        found_scores, found = reference.search(vectors[~silent], k)
        scores[~silent, : found.shape[1]], pos[~silent, : found.shape[1]] = found_scores, found
    if silent.any():
        info(f"{int(silent.sum())} of {len(vectors)} query cells have no vector or express no gene: called {unknown!r}")
    valid = pos >= 0
    nb_codes = np.where(valid, codes[np.where(valid, pos, 0)], -1)
    if weighting == "uniform":
        w = valid.astype(np.float64)
    else:
        w = np.where(valid, 1.0 / (1.0 - np.where(valid, scores, 0.0).astype(np.float64) + 1e-6), 0.0)
    w = np.where(nb_codes >= 0, w, 0.0)  # unlabelled neighbours do not vote
    n = len(pos)
    votes = np.zeros((n, len(categories)), np.float64)
    rows = np.repeat(np.arange(n), pos.shape[1])
    use = nb_codes.ravel() >= 0
    np.add.at(votes, (rows[use], nb_codes.ravel()[use]), w.ravel()[use])
    total = votes.sum(axis=1)
    _no_labelled_neighbour(codes, label_column, (total == 0) & valid.any(axis=1), unknown)
    top = votes.argmax(axis=1)
    confidence = np.divide(votes[np.arange(n), top], total, out=np.zeros(n), where=total > 0)
    found_count = valid.sum(axis=1)
    similarity = np.divide(np.where(valid, scores, 0.0).sum(axis=1), found_count, out=np.full(n, np.nan), where=found_count > 0)
    best = np.where(total > 0, np.asarray(categories, dtype=object)[top], None)  # no vote, no winner
    reject = (confidence < min_confidence) | (total == 0)
    threshold = None
    if novelty_alpha is not None:
        threshold = novelty_threshold(reference, k, novelty_alpha, calibration_cells=calibration_cells, seed=seed)
        reject |= similarity < threshold
    label = np.where(reject, unknown, best).astype(object)
    out = pd.DataFrame({"label": label, "confidence": confidence.astype(np.float32), "best": best, "similarity": similarity.astype(np.float32)}, index=pd.Index(names, name="cell_id"))
    out.attrs.update(k=k, weighting=weighting, novelty_threshold=threshold, labels=categories, key_added=key_added, genes=genes)
    if key_added is not None:
        from mmgene.provenance import record

        query = copy_in_memory(query) if copy else query
        query.obs[key_added] = pd.Categorical(label, categories=[*categories, unknown])
        query.obs[f"{key_added}_confidence"] = confidence.astype(np.float32)
        record(
            query, key_added, packages=("faiss-cpu",), reference=_reference_name(reference),
            reference_source=reference.meta.get("source"), label_column=label_column, k=k, weighting=weighting,
            min_confidence=min_confidence, novelty_alpha=novelty_alpha, novelty_threshold=threshold, genes=genes,
        )
    return query if copy else out
