"""Hard negatives: for each cell, a caption of another class that the current model finds close.

Random negatives are mostly easy (a monocyte against "a B cell"); mining with the model being trained
picks the other-class captions it confuses most, e.g. "CD8 T cell" for a CD4 T cell. Across datasets
the loss keeps related classes (a class's Cell Ontology ancestors and descendants) out of a cell's
negatives, so mining skips them too: a "T cell" caption drawn for a CD4 T cell would be masked away and
the row would train without a negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmgene.errors import ParameterError


def mine_hard_negatives(
    dataset: Any, model: Any, captions_by_label: dict[int, list[str]], top_k: int = 3, seed: int = 0, related: Any = None
) -> Any:
    """Return ``dataset`` (a pairs split with ``cell``, ``caption``, ``label``) with ``negative`` and
    ``negative_label`` (its class) columns.

    Each row's negative is drawn (seeded) from the ``top_k`` captions of *other* labels most similar to
    the row's cell under ``model`` (an :class:`~mmgene.align.AlignedModel`, scoring as it encodes: eval
    mode, no gene dropout). Ties go to the caption listed first. Existing ``negative`` columns are replaced.
    ``related`` (class x class booleans, the loss's mask) also keeps a row's related classes out of its
    draw; a row whose every other class is related draws among them (the loss then masks its negative),
    and a row with fewer than ``top_k`` allowed captions draws among those it has.
    """
    for column in ("cell", "caption", "label"):
        if column not in dataset.column_names:
            raise ParameterError(f"the dataset has no {column!r} column", "argument dataset", "pass a split made by make_pairs")
    if top_k < 1:
        raise ParameterError(f"top_k must be at least 1, got {top_k}", "argument top_k", "pass top_k=1 (the closest caption) or more")
    if len(captions_by_label) < 2:
        raise ParameterError(
            "hard negatives need captions of at least two labels",
            "argument captions_by_label",
            "pass {label id: [captions]} for two or more classes",
        )
    pool = [(int(lab), cap) for lab, caps in captions_by_label.items() for cap in caps]
    pool_labels = np.array([p[0] for p in pool])
    text = model.encode_text([p[1] for p in pool])
    cells = model.encode_inputs(dataset["cell"])
    sim = cells @ text.T
    labels = np.asarray(dataset["label"])
    sim[labels[:, None] == pool_labels[None, :]] = -np.inf
    if int(np.isfinite(sim).sum(1).min()) < 1:
        raise ParameterError(
            "some rows have no caption of another label", "argument captions_by_label", "give every other class at least one caption"
        )
    if related is not None:
        blocked = np.asarray(related, dtype=bool)[labels][:, pool_labels]
        allowed = np.where(blocked, -np.inf, sim)
        keeps_one = np.isfinite(allowed).any(1)  # else: only related classes are left, and the loss masks them
        sim[keeps_one] = allowed[keeps_one]
    choices = np.minimum(top_k, np.isfinite(sim).sum(1))
    top = np.argsort(-sim, axis=1, kind="stable")[:, : int(choices.max())]
    rng = np.random.default_rng(seed)
    pick = top[np.arange(len(top)), rng.integers(0, choices)]
    negatives = [pool[j][1] for j in pick]
    dataset = dataset.remove_columns([c for c in ("negative", "negative_label") if c in dataset.column_names])
    dataset = dataset.add_column("negative", negatives).add_column("negative_label", pool_labels[pick].tolist())
    order = ["cell", "caption", "negative"] + [c for c in dataset.column_names if c not in ("cell", "caption", "negative")]
    return dataset.select_columns(order)
