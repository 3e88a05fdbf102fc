"""The textbook-marker zero-shot baseline (mmgene.evaluate.marker_zero_shot)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.errors import ParameterError

GENES = ["MS4A1", "CD79A", "GNLY", "NKG7", "ACTB"]
# log1p values (not integers, so they are read as log1p data and used as they are)
LOG = np.array(
    [
        [1.5, 1.5, 0.0, 0.0, 2.5],  # B
        [1.5, 0.5, 0.0, 0.0, 2.5],  # B
        [0.0, 0.0, 1.5, 1.5, 2.5],  # NK
        [0.5, 0.0, 0.5, 1.5, 2.5],  # NK
        [0.0, 0.0, 0.0, 0.0, 2.5],  # a dendritic cell: none of these markers
    ]
)
LABELS = ["B cells", "B cells", "NK cells", "NK cells", "Dendritic cells"]


def _adata(matrix: np.ndarray, genes=GENES) -> ad.AnnData:
    return ad.AnnData(
        X=sp.csr_matrix(matrix.astype(np.float32)),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(matrix.shape[0])]),
        var=pd.DataFrame(index=list(genes)),
    )


def _z(col: np.ndarray) -> np.ndarray:
    return (col - col.mean()) / col.std()


def test_scores_are_mean_z_scores_of_the_table_markers_and_a_class_without_markers_is_never_called():
    from mmgene.evaluate import marker_zero_shot
    from mmgene.evaluate.marker_baseline import marker_scores

    adata = _adata(LOG)
    table = {"B cells": ["MS4A1", "CD79A"], "Dendritic cells": [], "NK cells": ["GNLY", "NKG7"]}
    scores, found = marker_scores(adata, table)
    b = (_z(LOG[:, 0]) + _z(LOG[:, 1])) / 2
    nk = (_z(LOG[:, 2]) + _z(LOG[:, 3])) / 2
    np.testing.assert_allclose(scores[:, 0], b, rtol=1e-6)
    np.testing.assert_allclose(scores[:, 2], nk, rtol=1e-6)
    np.testing.assert_allclose(scores[:, 1], min(b.min(), nk.min()) - 1.0, rtol=1e-6)
    assert found == table

    res = marker_zero_shot(adata, LABELS)  # the table of mmgene.text.markers
    assert res["markers"] == {"B cells": ["MS4A1", "CD79A"], "Dendritic cells": [], "NK cells": ["GNLY", "NKG7"]}
    # B: cells 0,1 top; NK: cells 2,3 top; the dendritic cell goes to NK (nk = -0.751 > b = -0.859)
    np.testing.assert_allclose([b[4], nk[4]], [-0.85904, -0.75125], atol=1e-5)
    assert res["per_class"]["B cells"]["recall"] == 1.0 and res["per_class"]["B cells"]["precision"] == 1.0
    assert res["per_class"]["NK cells"]["recall"] == 1.0 and res["per_class"]["NK cells"]["precision"] == pytest.approx(2 / 3)
    assert res["per_class"]["Dendritic cells"]["recall"] == 0.0
    assert res["per_class"]["Dendritic cells"]["auroc"] == 0.5
    assert res["per_class"]["B cells"]["auroc"] == 1.0 and res["per_class"]["NK cells"]["auroc"] == 1.0
    assert res["accuracy"] == pytest.approx(4 / 5)
    assert res["balanced_accuracy"] == pytest.approx(2 / 3)
    assert res["macro_auroc"] == pytest.approx((1.0 + 1.0 + 0.5) / 3)


def test_markers_the_data_lacks_are_reported_and_symbols_match_in_any_case():
    from mmgene.evaluate import marker_zero_shot

    adata = _adata(LOG[:, [0, 2, 3, 4]], genes=["ms4a1", "GNLY", "NKG7", "ACTB"])
    res = marker_zero_shot(adata, LABELS)
    assert res["markers_found"] == {"B cells": ["MS4A1"], "Dendritic cells": [], "NK cells": ["GNLY", "NKG7"]}
    assert res["markers"]["B cells"] == ["MS4A1", "CD79A"]


def test_counts_are_normalised_to_log1p_per_10000_first():
    from mmgene.evaluate.marker_baseline import marker_scores

    counts = np.array([[4, 0, 6], [1, 1, 8], [0, 3, 7]], dtype=np.float64)
    adata = _adata(counts, genes=["MS4A1", "GNLY", "ACTB"])
    scores, _ = marker_scores(adata, {"B": ["MS4A1"], "NK": ["GNLY"]})
    logged = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    np.testing.assert_allclose(scores[:, 0], _z(logged[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(scores[:, 1], _z(logged[:, 1]), rtol=1e-6)
    # read two cells at a time: the same scores (z-scores are taken over all cells, after reading)
    chunked, _ = marker_scores(adata, {"B": ["MS4A1"], "NK": ["GNLY"]}, chunk_size=2)
    np.testing.assert_allclose(chunked, scores, rtol=1e-12)


def test_given_markers_replace_the_table_and_no_marker_at_all_is_not_scored():
    from mmgene.evaluate import marker_zero_shot
    from mmgene.evaluate.marker_baseline import NoMarkerGenesError

    adata = _adata(LOG)
    res = marker_zero_shot(adata, LABELS, markers={"B cells": ["ACTB"], "NK cells": ["NKG7"]})
    assert res["markers"] == {"B cells": ["ACTB"], "Dendritic cells": [], "NK cells": ["NKG7"]}
    assert res["per_class"]["B cells"]["auroc"] == 0.5  # ACTB is the same in every cell
    with pytest.raises(NoMarkerGenesError, match="no marker gene of any class in the data"):
        marker_zero_shot(adata, LABELS, markers={"B cells": ["CD19"], "NK cells": ["NCAM1"]})


def test_a_marker_that_is_the_same_in_every_cell_counts_as_not_found():
    """ACTB's z-score is 0 in every cell: the B class won each cell whose NK markers score below
    average (cells 0, 1 and 4: B-cell recall 1.0 from a gene that says nothing)."""
    from mmgene.evaluate import marker_zero_shot
    from mmgene.evaluate.marker_baseline import NoMarkerGenesError, marker_scores

    adata = _adata(LOG)
    scores, found = marker_scores(adata, {"B cells": ["ACTB"], "NK cells": ["NKG7"]})
    assert found == {"B cells": [], "NK cells": ["NKG7"]}
    nk = _z(LOG[:, 3])
    np.testing.assert_allclose(scores, np.column_stack([np.full(5, nk.min() - 1.0), nk]), rtol=1e-6)
    res = marker_zero_shot(adata, LABELS, markers={"B cells": ["ACTB"], "NK cells": ["NKG7"]})
    assert res["markers_found"] == {"B cells": [], "Dendritic cells": [], "NK cells": ["NKG7"]}
    assert res["per_class"]["B cells"]["recall"] == 0.0 and res["per_class"]["NK cells"]["recall"] == 1.0
    with pytest.raises(NoMarkerGenesError, match="or none that varies between its cells"):
        marker_zero_shot(adata, LABELS, markers={"B cells": ["ACTB"]})


def test_bad_input_raises_clear_errors():
    from mmgene.evaluate import marker_zero_shot

    adata = _adata(LOG)
    with pytest.raises(ParameterError, match="5 cells but 4 labels"):
        marker_zero_shot(adata, LABELS[:4])
    with pytest.raises(ParameterError, match="labels not among the classes"):
        marker_zero_shot(adata, LABELS, classes=["B cells", "NK cells"])
    with pytest.raises(ParameterError, match="classes that are not scored"):
        marker_zero_shot(adata, LABELS, markers={"T cells": ["CD3E"]})
