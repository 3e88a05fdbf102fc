"""``harmonise_labels``: a table mapping each distinct author label to a Cell Ontology term."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import MappingError, ParameterError, _preview
from mmgene.harmonise.config import HarmoniseConfig
from mmgene.harmonise.matching import Matcher
from mmgene.harmonise.table import COLUMNS, format_alternatives, read_mapping, spelled_alike, validate_mapping
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


def _config(config: Any) -> HarmoniseConfig:
    if config is None:
        return HarmoniseConfig()
    if not isinstance(config, HarmoniseConfig):
        raise ParameterError(
            f"config must be a HarmoniseConfig, got {type(config).__name__}",
            "harmonise_labels(config=...)",
            "pass HarmoniseConfig(tissue=..., species=...)",
        )
    return config


def _reviewed(mapping: Any, order: list[str]) -> dict[str, dict[str, Any]]:
    """The checked rows of a reviewed mapping by author label. Refused: a table of several datasets (a label
    may map differently in each), and a row whose label differs from one of the data only by case or blanks
    (the reviewer's choice would be dropped without a word)."""
    if isinstance(mapping, pd.DataFrame):
        source = mapping.attrs.get("source", "the mapping table")
        table = validate_mapping(mapping, source)
    elif isinstance(mapping, (str, os.PathLike)):
        source, table = str(mapping), read_mapping(mapping)
    else:
        raise ParameterError(
            f"mapping must be a table or the path of its CSV, got {type(mapping).__name__}",
            "harmonise_labels(mapping=...)",
            "pass the CSV written by write_mapping, or a DataFrame with author_label and term_id columns",
        )
    datasets = sorted(set(table["dataset"])) if "dataset" in table.columns else []
    if len(datasets) > 1:
        raise MappingError(
            f"the mapping covers {len(datasets)} datasets ({_preview(datasets)})",
            source,
            "pass the rows of one dataset: mapping[mapping['dataset'] == NAME]",
        )
    reviewed = {row["author_label"]: row for row in table.to_dict(orient="records")}
    present = set(order)
    close = [(a, b) for a, b in spelled_alike([x for x in order if x not in reviewed], reviewed) if b not in present]
    if close:
        raise MappingError(
            f"{len(close)} label(s) of the data are written otherwise in the mapping: "
            + ", ".join(f"{a!r} is written {b!r}" for a, b in close[:3]),
            source,
            "write author_label exactly as the data has it, or add a row for the data's spelling "
            "(labels must match exactly)",
        )
    return reviewed


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
        A reviewed table (or the path of its CSV, see :func:`read_mapping`) of one dataset: its rows are
        used as they are for the labels it lists; the others are matched. A row whose label differs from
        the data's only by case or blanks is refused (:class:`~mmgene.errors.MappingError`), not skipped.

    Returns
    -------
    A DataFrame with ``author_label, term_id, term_name, confidence (0..1), method, alternatives, n_cells,
    note`` (why the term was chosen).
    ``method`` is ``exact-name``, ``synonym``, ``abbreviation``, ``similarity``, ``ancestor``, ``user`` or
    ``unmapped`` (then ``term_id`` is empty); ``alternatives`` lists up to ``config.alternatives`` other
    terms as ``"CL:... name (score) | ..."``. Write it with :func:`write_mapping` for review.
    """
    config = _config(config)
    order, counts = _distinct(labels)
    reviewed = _reviewed(mapping, order) if mapping is not None else {}
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
