"""``harmonise_labels``: a table mapping each distinct author label to a Cell Ontology term."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import ParameterError
from mmgene.harmonise.config import HarmoniseConfig
from mmgene.harmonise.matching import Matcher
from mmgene.harmonise.table import COLUMNS, format_alternatives, read_mapping, validate_mapping
from mmgene.text.labels import label_text


def _distinct(labels: Any) -> tuple[list[str], dict[str, int]]:
    """Distinct non-missing labels in order of first appearance, and cells per label."""
    if getattr(labels, "ndim", 1) != 1:  # a DataFrame or a 2-D array: which column holds the labels?
        raise ParameterError(
            f"labels must be one value per cell, got a table of shape {getattr(labels, 'shape', '?')}",
            "harmonise_labels(labels=...)",
            "pass one column, e.g. adata.obs['cell_type']",
        )
    text = label_text(labels)
    text = text[text != ""]
    counts = pd.Series(text, dtype=object).value_counts(sort=False)
    order = list(pd.unique(text))
    return order, {str(k): int(v) for k, v in counts.items()}


def harmonise_labels(
    labels: Sequence[Any] | np.ndarray | pd.Series,
    *,
    config: HarmoniseConfig | None = None,
    mapping: pd.DataFrame | str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Map author cell-type labels to Cell Ontology terms, one row per distinct label.

    Parameters
    ----------
    labels
        Per-cell labels (an ``obs`` column) or the distinct labels; missing ones (None, NaN, blank) are skipped.
    config
        Tissue and species hints, thresholds (:class:`HarmoniseConfig`).
    mapping
        A reviewed table (or the path of its CSV, see :func:`read_mapping`): its rows are used as they
        are for the labels it lists; the others are matched.

    Returns
    -------
    A DataFrame with ``author_label, term_id, term_name, confidence (0..1), method, alternatives, n_cells,
    note`` (why the term was chosen).
    ``method`` is ``exact-name``, ``synonym``, ``abbreviation``, ``similarity``, ``ancestor``, ``user`` or
    ``unmapped`` (then ``term_id`` is empty); ``alternatives`` lists up to ``config.alternatives`` other
    terms as ``"CL:... name (score) | ..."``. Write it with :func:`write_mapping` for review.
    """
    config = config or HarmoniseConfig()
    order, counts = _distinct(labels)
    reviewed: dict[str, dict[str, Any]] = {}
    if mapping is not None:
        table = (
            read_mapping(mapping)
            if not isinstance(mapping, pd.DataFrame)
            else validate_mapping(mapping, "the mapping table")
        )
        reviewed = {row["author_label"]: row for row in table.to_dict(orient="records")}
    matcher = Matcher(config) if any(label not in reviewed for label in order) else None
    rows = []
    for label in order:
        if label in reviewed:
            row = dict(reviewed[label])
        else:
            found = matcher.match(label)
            row = {
                "author_label": label,
                "term_id": found.term_id,
                "term_name": matcher.vocab.labels.get(found.term_id, ""),
                "confidence": round(float(found.confidence), 3),
                "method": found.method,
                "alternatives": format_alternatives(found.alternatives, matcher.vocab.labels),
                "note": found.note,
            }
        row["n_cells"] = counts[label]
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype({"confidence": float, "n_cells": int})
