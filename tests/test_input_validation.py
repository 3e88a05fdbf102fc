"""Corrupt sparse structure, bad values anywhere in the matrix, and degenerate labels are refused.

Each test crafts its broken input itself: a sparse matrix's arrays set directly (SciPy's constructor
would check or repair them), or an .h5ad written by anndata whose raw HDF5 arrays are then replaced
with h5py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hostile import assert_refused, run_cli

import mmgene.io
from mmgene.align.config import TrainingConfig
from mmgene.cells import sentences
from mmgene.errors import (
    DataError,
    LabelError,
    MatrixStructureError,
    NegativeValuesError,
    NonFiniteError,
    NotCountsError,
    ParameterError,
)
from mmgene.io.describe import describe
from mmgene.pairs.config import PairsConfig

GENES = ["CD3E", "MS4A1", "NKG7", "LYZ", "GNLY"]
# cell0: MS4A1 3, LYZ 1; cell1: CD3E 2, GNLY 5; cell2: NKG7 4
DATA = [3, 1, 2, 5, 4]
INDICES = [1, 3, 0, 4, 2]
INDPTR = [0, 2, 4, 5]
GOOD_SENTENCES = ["MS4A1 LYZ", "GNLY CD3E", "NKG7"]


def csr(data=DATA, indices=INDICES, indptr=INDPTR, shape=(3, 5)) -> sp.csr_matrix:
    """A CSR matrix holding exactly these arrays (no check, no repair)."""
    m = sp.csr_matrix(shape, dtype=np.float32)
    m.data = np.asarray(data, np.float32)
    m.indices = np.asarray(indices, np.int32)
    m.indptr = np.asarray(indptr, np.int32)
    return m


def anndata(matrix, labels=None) -> ad.AnnData:
    n = matrix.shape[0]
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n)])
    if labels is not None:
        obs["cell_type"] = labels
    return ad.AnnData(matrix, obs=obs, var=pd.DataFrame(index=GENES))


def write_with_arrays(path: Path, matrix, **arrays) -> Path:
    """Write ``matrix`` as an .h5ad, then replace the named raw arrays of ``X`` (indices, indptr, data)."""
    anndata(matrix).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        for name, values in arrays.items():
            del f["X"][name]
            f["X"].create_dataset(name, data=np.asarray(values, np.float32 if name == "data" else np.int32))
    return path


# --- item 8: structure ------------------------------------------------------------------------------

CORRUPT = {
    "column index == n_vars": (
        dict(indices=[1, 3, 0, 5, 2]),
        "1 gene index of the sparse matrix outside 0..4 (5 genes), first 5 at cell 'cell1' (row 1)",
    ),
    "negative column index": (
        dict(indices=[-1, 3, 0, 4, 2]),
        "1 gene index of the sparse matrix outside 0..4 (5 genes), first -1 at cell 'cell0' (row 0)",
    ),
    "indptr decreasing": (
        dict(indptr=[0, 4, 2, 5]),
        "the sparse matrix's indptr decreases at 1 cell, first at cell 'cell1' (row 1): from 4 to 2",
    ),
    "indptr[-1] != nnz": (dict(indptr=[0, 2, 4, 4]), "the sparse matrix's indptr ends at 4 but 5 entries are stored"),
    "indptr[0] != 0": (dict(indptr=[1, 2, 4, 5]), "the sparse matrix's indptr starts at 1, not 0"),
    "len(indptr) != n_rows + 1": (dict(indptr=[0, 2, 5]), "the sparse matrix's indptr has 3 entries for 3 cells; it needs 4"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_csr_in_memory_is_refused_before_any_kernel(case):
    arrays, message = CORRUPT[case]
    matrix = csr(**{"data": DATA, "indices": INDICES, "indptr": INDPTR, **arrays})
    for run in (lambda a: mmgene.io.read(a), lambda a: sentences(a, inplace=False), lambda a: mmgene.io.expression(a)):
        with pytest.raises(MatrixStructureError) as err:
            run(anndata(matrix))
        assert err.value.what == message
        assert err.value.where == "the AnnData in memory, X (CSR)" or err.value.where == "the AnnData, X (CSR)"


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_csr_file_is_refused_by_the_api_and_the_cli(case, tmp_path):
    arrays, message = CORRUPT[case]
    path = write_with_arrays(tmp_path / "bad.h5ad", csr(), **arrays)
    for backed in (False, True):
        with pytest.raises(MatrixStructureError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
            describe(mmgene.io.read(path, backed=backed))
        with pytest.raises(MatrixStructureError):
            sentences(mmgene.io.read(path, backed=backed), inplace=False)
    out = tmp_path / "out.parquet"
    for args in (["info", path], ["info", path, "--backed"], ["sentences", path, out], ["sentences", path, out, "--backed"]):
        line = assert_refused(args, [tmp_path], contains=message)
        assert f"Where: {path}, X (CSR)" in line
    assert not out.exists()


def test_corrupt_csc_is_refused_and_valid_csc_matches_csr(tmp_path):
    csc = csr().tocsc()
    assert sentences(anndata(csc), inplace=False) == GOOD_SENTENCES
    anndata(csc).write_h5ad(tmp_path / "csc.h5ad")
    assert sentences(mmgene.io.read(tmp_path / "csc.h5ad", backed=True), inplace=False) == GOOD_SENTENCES
    bad = csc.copy()
    bad.indices = np.array([1, 0, 3, 0, 1], np.int32)  # gene NKG7 (column 2) names cell 3 of 3
    with pytest.raises(MatrixStructureError) as err:
        mmgene.io.read(anndata(bad))
    assert err.value.what == "1 cell index of the sparse matrix outside 0..2 (3 cells), first 3 at gene 'NKG7' (column 2)"
    bad = csc.copy()
    bad.indptr = np.array([0, 1, 0, 3, 4, 5], np.int32)
    with pytest.raises(MatrixStructureError, match=r"indptr decreases at 1 gene, first at gene 'MS4A1' \(column 1\): from 1 to 0"):
        mmgene.io.read(anndata(bad))
    bad = csc.copy()
    bad.data = np.array([3, 2, 4, np.nan, 5], np.float32)  # LYZ (column 3) of cell0
    with pytest.raises(NonFiniteError, match="first at row 0: cell 'cell0', gene 'LYZ'"):
        mmgene.io.read(anndata(bad))


# Ties make storage order visible: with ties='position', equal values keep the gene order.
TIED = np.array([[1, 0, 5, 0, 1], [2, 2, 0, 2, 0], [0, 3, 0, 0, 3]], np.float32)
TIED_SENTENCES = ["NKG7 CD3E GNLY", "CD3E MS4A1 LYZ", "MS4A1 GNLY"]


def reversed_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The same matrix with every row's entries stored in reverse column order."""
    order = np.concatenate([np.arange(b - 1, a - 1, -1) for a, b in zip(matrix.indptr[:-1], matrix.indptr[1:])])
    return csr(matrix.data[order], matrix.indices[order], matrix.indptr, matrix.shape)


def test_unsorted_rows_give_exactly_the_sorted_result_and_the_input_is_untouched(tmp_path):
    tidy = sp.csr_matrix(TIED)
    messy = reversed_rows(tidy)
    before = (messy.data.copy(), messy.indices.copy(), messy.indptr.copy())
    a = anndata(messy)
    for ties in ("position", "symbol"):
        assert sentences(a, inplace=False, ties=ties) == sentences(anndata(tidy), inplace=False, ties=ties)
    assert sentences(a, inplace=False) == TIED_SENTENCES
    assert sentences(a, inplace=False, chunk_size=1, n_jobs=1) == TIED_SENTENCES
    chunks = [c for _, _, c in mmgene.io.expression(a).chunks(2)]
    assert all(c.has_sorted_indices for c in chunks)
    np.testing.assert_array_equal(sp.vstack(chunks).toarray(), TIED)
    assert a.X is messy
    for kept, now in zip(before, (messy.data, messy.indices, messy.indptr)):
        np.testing.assert_array_equal(kept, now)
    path = write_with_arrays(tmp_path / "messy.h5ad", tidy, data=messy.data, indices=messy.indices)
    assert sentences(mmgene.io.read(path, backed=True), inplace=False) == TIED_SENTENCES


def test_repeated_entries_within_a_row_are_summed(tmp_path):
    # cell0: MS4A1 stored twice (2 + 3 = 5) around LYZ 4: summed, MS4A1 comes first
    dup = csr([2, 4, 3, 1], [1, 3, 1, 0], [0, 3, 4], (2, 5))
    summed = np.array([[0, 5, 0, 4, 0], [1, 0, 0, 0, 0]], np.float32)
    a = anndata(dup)
    assert sentences(a, inplace=False) == ["MS4A1 LYZ", "CD3E"] == sentences(anndata(sp.csr_matrix(summed)), inplace=False)
    np.testing.assert_array_equal(next(mmgene.io.expression(a).chunks())[2].toarray(), summed)
    np.testing.assert_array_equal(a.X.indices, [1, 3, 1, 0])  # the user's matrix keeps its entries
    path = write_with_arrays(tmp_path / "dup.h5ad", sp.csr_matrix(summed), data=dup.data, indices=dup.indices, indptr=dup.indptr)
    assert sentences(mmgene.io.read(path, backed=True), inplace=False) == ["MS4A1 LYZ", "CD3E"]


def test_rank_encoding_of_unsorted_and_repeated_entries_equals_the_canonical_matrix(geneformer_v1_dir):
    from mmgene.cells import load_dictionaries, rank_encode

    v1 = load_dictionaries(geneformer_v1_dir)
    tidy = sp.csr_matrix(TIED)
    expect = [row.tolist() for row in rank_encode(anndata(tidy), v1).input_ids]
    assert [row.tolist() for row in rank_encode(anndata(reversed_rows(tidy)), v1).input_ids] == expect
    dup = csr([2, 4, 3, 1], [1, 3, 1, 0], [0, 3, 4], (2, 5))
    summed = sp.csr_matrix(np.array([[0, 5, 0, 4, 0], [1, 0, 0, 0, 0]], np.float32))
    assert [r.tolist() for r in rank_encode(anndata(dup), v1).input_ids] == [r.tolist() for r in rank_encode(anndata(summed), v1).input_ids]
    with pytest.raises(MatrixStructureError, match="first 5 at cell 'cell1'"):
        rank_encode(anndata(csr(indices=[1, 3, 0, 5, 2])), v1)


# --- item 9: every row's values ---------------------------------------------------------------------

N_CELLS, BAD_ROW = 1200, 1100


def counts(empty_head: bool, bad: float | None = None) -> np.ndarray:
    """1,200 cells of counts (the first 1,000 empty when ``empty_head``), ``bad`` at cell1100's NKG7."""
    dense = np.random.default_rng(0).integers(0, 6, size=(N_CELLS, len(GENES))).astype(np.float32)
    if empty_head:
        dense[:1000] = 0
    dense[BAD_ROW, 2] = 3 if bad is None else bad
    return dense


def test_first_thousand_empty_cells_are_valid_input(tmp_path):
    dense = counts(empty_head=True)
    a = mmgene.io.read(anndata(sp.csr_matrix(dense)))
    assert a.uns["mmgene"]["input"]["kind"] == "counts"
    expect = [""] * 1000 + sentences(anndata(sp.csr_matrix(dense[1000:])), inplace=False)
    assert sentences(a, inplace=False) == expect
    anndata(sp.csr_matrix(dense)).write_h5ad(tmp_path / "late.h5ad")
    backed = mmgene.io.read(tmp_path / "late.h5ad", backed=True)
    assert describe(backed)["kind"] == "counts"
    assert sentences(backed, inplace=False) == expect
    for args in (["info", tmp_path / "late.h5ad"], ["info", tmp_path / "late.h5ad", "--backed"]):
        out = run_cli(*args)
        assert out.returncode == 0 and "X (raw counts)" in out.stdout, out.stderr
    out = run_cli("sentences", tmp_path / "late.h5ad", tmp_path / "s.parquet")
    assert out.returncode == 0, out.stderr
    assert pd.read_parquet(tmp_path / "s.parquet")["cell_sentence"].tolist() == expect


BAD_VALUES = {
    "nan": (np.nan, NonFiniteError, "1 NaN or infinite values in X"),
    "inf": (np.inf, NonFiniteError, "1 NaN or infinite values in X"),
    "negative": (-1.0, NegativeValuesError, "1 negative values in X"),
    "fraction": (0.5, NotCountsError, "1 non-integer values in X, where raw counts are required"),
}
WHERE_BAD = "first at row 1100: cell 'cell1100', gene 'NKG7'"


@pytest.mark.parametrize("empty_head", [False, True], ids=["counts-before", "empty-before"])
@pytest.mark.parametrize("name", list(BAD_VALUES))
def test_a_bad_value_in_row_1100_is_reported_by_the_api(name, empty_head, tmp_path):
    value, error, what = BAD_VALUES[name]
    matrix = sp.csr_matrix(counts(empty_head, value))
    with pytest.raises(error) as err:
        mmgene.io.read(anndata(matrix))
    assert err.value.what.startswith(what) and err.value.where == f"the AnnData in memory, X, {WHERE_BAD}"
    anndata(matrix).write_h5ad(tmp_path / "bad.h5ad")
    path = str(tmp_path / "bad.h5ad")
    with pytest.raises(error) as err:
        describe(mmgene.io.read(path, backed=True))
    assert err.value.what.startswith(what) and err.value.where == f"{path}, X, {WHERE_BAD}"
    with pytest.raises(error, match=WHERE_BAD):
        sentences(mmgene.io.read(path, backed=True), inplace=False)
    with pytest.raises(error, match="'cell1100'"):  # what genept, pairs and the cell inputs read
        for _ in mmgene.io.expression(mmgene.io.read(path, backed=True)).chunks(64):
            pass
    dense = anndata(counts(empty_head, value))  # a dense X is checked row by row too
    with pytest.raises(error, match="'cell1100'"):
        mmgene.io.read(dense)


@pytest.mark.parametrize("name", list(BAD_VALUES))
def test_a_bad_value_in_row_1100_is_reported_by_the_cli(name, tmp_path):
    value, _, what = BAD_VALUES[name]
    path = tmp_path / "bad.h5ad"
    anndata(sp.csr_matrix(counts(False, value))).write_h5ad(path)
    out = tmp_path / "sentences.parquet"
    for args in (["info", path], ["info", path, "--backed"], ["sentences", path, out], ["sentences", path, out, "--backed"]):
        line = assert_refused(args, [tmp_path], contains=what)
        assert WHERE_BAD in line
    assert not out.exists()


def test_tokenize_reports_a_bad_value_in_row_1100(geneformer_v1_dir):
    from mmgene.cells import load_dictionaries, rank_encode

    v1 = load_dictionaries(geneformer_v1_dir)
    for value, error, _ in BAD_VALUES.values():
        with pytest.raises(error, match="'cell1100'"):
            rank_encode(anndata(sp.csr_matrix(counts(False, value))), v1)


# --- item 10: labels --------------------------------------------------------------------------------

#: 4 missing labels: NaN, None, "" and blank
RAW_LABELS = ["B cells", np.nan, "NK cells", None, "", "B cells", "  ", "NK cells"] * 5


def labelled_data(labels=RAW_LABELS) -> ad.AnnData:
    dense = np.random.default_rng(1).integers(0, 4, size=(len(labels), len(GENES))).astype(np.float32)
    dense[:, 1] += np.array([5.0 if str(v).startswith("B") else 0.0 for v in labels], np.float32)  # MS4A1 marks B cells
    return mmgene.io.read(anndata(sp.csr_matrix(dense), np.array(labels, dtype=object)))


def test_missing_labels_are_dropped_and_counted(monkeypatch, capsys):
    from mmgene.io.labels import usable_labels
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "quiet", False)
    keep, labels, n = usable_labels(RAW_LABELS, "obs['cell_type']", "test")
    assert n == 20 and int(keep.sum()) == 20 and sorted(set(labels)) == ["B cells", "NK cells"]
    assert "test: dropped 20 of 40 cells with no label in obs['cell_type'] (None, NaN, empty or blank)" in capsys.readouterr().err
    cat = pd.Series(pd.Categorical(["a", None, " ", "b"]))
    assert usable_labels(cat, "x", "test")[2] == 2
    assert describe(labelled_data())["label_columns"] == {"cell_type": 2}
    assert describe(labelled_data())["unlabelled_cells"] == {"cell_type": 20}


def test_pairs_leave_out_cells_without_a_label(monkeypatch, capsys):
    from mmgene.pairs import make_pairs
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "quiet", False)
    a = labelled_data()
    pairs = make_pairs(a, "cell_type", config=PairsConfig(captions_per_cell=1, marker_share=0.0, test_size=0.25), seed=0)
    assert pairs.classes == ["B cells", "NK cells"] and pairs.unlabelled_cells == 20
    assert "making training pairs: dropped 20 of 40 cells with no label in obs['cell_type']" in capsys.readouterr().err
    unlabelled = {f"cell{i}" for i, v in enumerate(RAW_LABELS) if v is None or (isinstance(v, float)) or not str(v).strip()}
    used = set(pairs["train"]["obs_name"]) | set(pairs["test"]["obs_name"])
    assert len(used) == 20 and not used & unlabelled
    assert not any("nan" in c.lower() or c.strip() == "" for c in pairs["train"]["caption"])


ONE_CLASS = ["B cells", np.nan, "B cells", "", "B cells", "  ", None, "B cells"] * 3
ONE_CLASS_MESSAGE = "needs at least 2 classes, but the labels hold only 'B cells' after dropping 12 cells with no label"


def test_one_class_after_dropping_is_refused_by_pairs_and_train():
    from mmgene.pairs import make_pairs

    with pytest.raises(LabelError, match=ONE_CLASS_MESSAGE):
        make_pairs(labelled_data(ONE_CLASS), "cell_type")
    from mmgene.align import train

    with pytest.raises(LabelError) as err:
        train(labelled_data(ONE_CLASS), "cell_type", training=TrainingConfig(max_steps=1))
    assert err.value.what == "the model needs at least two classes in training, got ['B cells'] (after leaving out 12 cells with no label)"
    assert err.value.where == "obs['cell_type']"


class FakeModel:
    """Stands in for an aligned model: B cells near [1, 0], NK cells near [0, 1], as are their prompts."""

    def describe(self):
        return {"model": "fake", "inputs": ["genes"]}

    def encode_cells(self, adata):
        b = adata.obs["cell_type"].astype(str).str.startswith("B").to_numpy()
        return np.where(b[:, None], [[1.0, 0.1]], [[0.1, 1.0]]).astype(np.float32)

    def encode_text(self, texts):
        return np.array([[1.0, 0.0] if " B" in f" {t}" else [0.0, 1.0] for t in texts], np.float32)


def test_evaluate_drops_unlabelled_cells_and_refuses_one_class(tmp_path):
    from mmgene.evaluate import evaluate

    kwargs = dict(baseline=False, marker_baseline=False, ontology=False, markers=False)
    report = evaluate(FakeModel(), labelled_data(), "cell_type", **kwargs)
    assert report["unlabelled_cells"] == 20 and report["n_cells"] == 20
    assert report["zero_shot"]["classes"] == ["B cells", "NK cells"] and report["zero_shot"]["accuracy"] == 1.0
    with pytest.raises(LabelError, match=ONE_CLASS_MESSAGE):
        evaluate(FakeModel(), labelled_data(ONE_CLASS), "cell_type", **kwargs)
    from mmgene.evaluate.classify import label_codes, zero_shot

    res = zero_shot(np.eye(2, dtype=np.float32)[[0, 1, 0, 1]], ["B cells", "NK cells", None, " "], FakeModel().encode_text, markers=False, ontology=False)
    assert res["unlabelled_cells"] == 2 and res["classes"] == ["B cells", "NK cells"] and res["n"] == 2
    with pytest.raises(LabelError, match="have no label"):
        label_codes(["B cells", np.nan], 2)
    with pytest.raises(LabelError, match="needs at least 2 classes"):
        label_codes(["B cells", "B cells"], 2)


class RecordingModel(FakeModel):
    """FakeModel that keeps every text it was asked to encode."""

    def __init__(self):
        self.texts = []

    def encode_text(self, texts):
        self.texts += list(texts)
        return super().encode_text(texts)


def test_evaluate_says_the_origin_only_when_given_and_refuses_unknown_settings():
    from mmgene.evaluate import EvaluateConfig, evaluate, markdown_report

    plain = ["B cell", "a B cell", "a cell of type B cell", "single-cell transcriptome of a B cell"]
    config = EvaluateConfig(baseline=False, marker_baseline=False, ontology=False, markers=False)
    neutral, told = RecordingModel(), RecordingModel()
    report = evaluate(neutral, labelled_data(), "cell_type", config)
    assert neutral.texts[:4] == plain and not any("blood" in t for t in neutral.texts)
    assert report["origin"] == "" and "Prompts say where" not in markdown_report(report)
    report = evaluate(told, labelled_data(), "cell_type", config, species="human", tissue="blood")
    assert told.texts[:5] == [*plain, "a B cell from human blood"]
    assert report["origin"] == "human blood" and report["zero_shot"]["accuracy"] == 1.0
    assert 'Prompts say where the cells come from: "a <label> from human blood" among them.' in markdown_report(report)
    with pytest.raises(ParameterError) as err:
        evaluate(FakeModel(), labelled_data(), "cell_type", config, species="human", tisue="blood")
    assert err.value.what == "unknown evaluate settings ['tisue']" and err.value.where == "evaluate(...)"


class LineageModel(FakeModel):
    """A model trained on "B cell" and "CD8-positive, alpha-beta T cell": its T cells lie near the CD8 T
    prompts ([0, 1, 0]) and far from a plain "T cell" prompt ([0, 0, 1])."""

    meta = {"classes": ["B cell", "CD8-positive, alpha-beta T cell"], "class_ids": ["CL:0000236", "CL:0000625"]}

    def encode_text(self, texts):
        return np.array([[1.0, 0, 0] if " B" in f" {t}" else [0, 1.0, 0] if "CD8" in t else [0, 0, 1.0] for t in texts], np.float32)

    def encode_cells(self, adata):
        b = adata.obs["cell_type"].astype(str).str.startswith("B").to_numpy()
        return np.where(b[:, None], [[1.0, 0.1, 0]], [[0.1, 1.0, 0]]).astype(np.float32)


def test_evaluate_scores_with_annotates_rule_hierarchy_and_z_scores():
    """A "T cell" label answers for the model's CD8 T-cell class (hierarchy on, the default); off, every
    T cell goes to "B cell". Z-scores apply from 30 cells on, as in annotate."""
    from mmgene.evaluate import evaluate, markdown_report

    t_or_b = ["B cell" if i % 2 else "T cell" for i in range(20)]
    kwargs = dict(baseline=False, marker_baseline=False, ontology=False, markers=False)
    report = evaluate(LineageModel(), labelled_data(t_or_b), "cell_type", **kwargs)
    zs = report["zero_shot"]
    assert zs["accuracy"] == 1.0 and zs["hierarchy"] is True and zs["standardized"] is False
    assert zs["answers_for"] == {"T cell": ["CD8-positive, alpha-beta T cell"]}
    md = markdown_report(report)
    assert '"T cell" also answers for the model\'s training classes below it in the Cell Ontology: CD8-positive, alpha-beta T cell.' in md
    assert "Raw cosine similarities, not z-scored (`standardize` off, or fewer than 30 cells; mmgene and GenePT-s)." in md
    flat = evaluate(LineageModel(), labelled_data(t_or_b), "cell_type", hierarchy=False, **kwargs)["zero_shot"]
    assert flat["accuracy"] == 0.5 and flat["per_class"]["T cell"]["recall"] == 0.0 and flat["answers_for"] == {}
    assert evaluate(LineageModel(), labelled_data(t_or_b * 2), "cell_type", **kwargs)["zero_shot"]["standardized"] is True
    assert evaluate(LineageModel(), labelled_data(t_or_b * 2), "cell_type", standardize=False, **kwargs)["zero_shot"]["standardized"] is False


@pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")
def test_report_json_writes_nan_metrics_as_null(tmp_path):
    from mmgene.evaluate import evaluate
    from mmgene.evaluate.report import report_json

    def strict(text):
        def refuse(token):
            raise ValueError(f"bare {token} in JSON")

        return json.loads(text, parse_constant=refuse)

    assert strict(report_json({"a": float("nan"), "b": [np.float32("inf"), np.float64(1.5)], "c": {"d": -np.inf}})) == {
        "a": None, "b": [None, 1.5], "c": {"d": None}
    }
    # one true class among two candidates: no class has both positives and negatives, so macro AUROC is NaN
    one = labelled_data(["B cells", None, "B cells", "B cells"])
    report = evaluate(FakeModel(), one, "cell_type", classes=["B cells", "NK cells"], out=tmp_path / "r",
                      baseline=False, marker_baseline=False, ontology=False, markers=False)
    assert np.isnan(report["zero_shot"]["macro_auroc"])
    saved = strict((tmp_path / "r.json").read_text())
    assert saved["zero_shot"]["macro_auroc"] is None and saved["unlabelled_cells"] == 1


def test_pairs_layout_drops_unlabelled_cells_and_refuses_one_class(toy_chunks):
    from mmgene.hub.layouts import build_dataset

    a, kwargs = toy_chunks
    dd = build_dataset(a, "pairs", label_key="cell_type", n_negatives=1, splits={"train": 0.5, "test": 0.5}, **kwargs)
    cells = {c for split in dd.values() for c in split["cell_id"]}
    labelled = {name for name, v in zip(a.obs_names, RAW_LABELS) if isinstance(v, str) and v.strip()}
    assert cells == labelled
    assert not any(c is None or "nan" in c for split in dd.values() for c in split["caption"])
    single = build_dataset(a, "single", label_key="cell_type", **kwargs)
    captions = [c for split in single.values() for c in split["caption"]]
    assert len(captions) == 40 and captions.count(None) == 20
    one = a.copy()
    one.obs["cell_type"] = ONE_CLASS + ["B cells"] * 16
    with pytest.raises(LabelError, match=r"needs at least 2 classes, but the cells \(after dropping 12 cells with no label\) have a single caption"):
        build_dataset(one, "pairs", label_key="cell_type", **kwargs)


@pytest.fixture
def toy_chunks():
    from mmgene.hub.chunks import ChunkFile

    a = labelled_data()
    chunk = ChunkFile(index=0, name="chunk_0.h5ad", path=Path("chunk_0.h5ad"), start=0, stop=a.n_obs, sha256="0" * 64, size=0, format="h5ad", var_sha256="0" * 64)
    return a, dict(sentences=[""] * a.n_obs, chunks=[chunk], links={chunk.name: "file:///chunk_0.h5ad"})


# --- keys that an .h5ad or .zarr file cannot keep --------------------------------------------------------


@pytest.mark.parametrize("key", ["", " ", "a/b", 3])
def test_writers_refuse_a_key_a_file_cannot_keep_before_touching_the_data(key):
    from mmgene.embed.genept import genept_s, genept_w
    from mmgene.harmonise.table import apply_mapping
    from mmgene.query import annotate

    adata = anndata(csr(), labels=["a", "b", "a"])
    calls = {
        "sentences": lambda: sentences(adata, key_added=key),
        "genept_w": lambda: genept_w(adata, key_added=key),
        "genept_s": lambda: genept_s(adata, key_added=key),
        "apply_mapping": lambda: apply_mapping(adata, "cell_type", "no-such-table.csv", key_added=key),
        "annotate": lambda: annotate(adata, ["a", "b"], "no-such-model", key_added=key),
    }
    for name, call in calls.items():
        with pytest.raises(ParameterError, match="cannot name an AnnData key: it must be a non-empty name without '/'") as err:
            call()
        assert f"{name}(key_added=...)" in str(err.value)
    assert list(adata.obs.columns) == ["cell_type"] and not adata.obsm and not adata.uns


def test_an_empty_key_leaves_the_file_it_would_write_in_place_byte_identical(tmp_path):
    path = tmp_path / "cells.h5ad"
    anndata(csr()).write_h5ad(path)
    assert_refused(["embed", "genept-w", path, "--in-place", "--key", ""], [tmp_path], contains="cannot name an AnnData key")


def test_a_file_with_a_group_where_obsm_needs_an_array_is_refused_cleanly(tmp_path):
    path = tmp_path / "nested.h5ad"
    anndata(csr()).write_h5ad(path)
    with h5py.File(path, "a") as handle:  # what a key "a/b" left in files written before keys were checked
        handle["obsm"].create_group("a").create_dataset("b", data=np.zeros((3, 2)))
    assert_refused(["info", path], [tmp_path], contains="not an AnnData file")


def test_a_matrix_of_text_is_refused_and_half_precision_is_read():
    counts = np.array([[0, 3, 1, 0], [2, 0, 0, 5], [1, 1, 4, 0]], dtype=np.float32)
    var = pd.DataFrame(index=["CD3E", "MS4A1", "NKG7", "LYZ"])
    text = ad.AnnData(X=counts.astype(object), var=var)
    with pytest.raises(DataError, match="X holds object values, not numbers"):
        sentences(text, inplace=False)
    half = ad.AnnData(X=counts.astype(np.float16), var=var)
    assert sentences(half, inplace=False) == sentences(ad.AnnData(X=counts, var=var), inplace=False)
    assert sentences(half, inplace=False)[1] == "LYZ CD3E"


def _damaged(path: Path, damage: str) -> Path:
    anndata(csr()).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        if damage == "no X":
            del f["X"]
        elif damage == "unknown encoding":
            f["X"].attrs["encoding-type"] = "weird_matrix"
        elif damage == "shape disagrees with obs":
            f["X"].attrs["shape"] = np.array([2, 5])  # indptr still fits the 3 cells of obs
        else:  # "no indices"
            del f["X"]["indices"]
    return path


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no X", "no matrix holds|not an AnnData file"),
        ("unknown encoding", "not an AnnData file"),
        ("shape disagrees with obs", "the sparse matrix is 2 x 5, but the AnnData has 3 cells x 5 genes|not an AnnData file"),
        ("no indices", "the sparse matrix on disk has no 'indices' array|not an AnnData file"),
    ],
)
def test_a_damaged_h5ad_is_refused_cleanly_read_whole_or_backed(damage, message, tmp_path):
    """Read backed, a file without X, with a matrix encoding anndata does not know, or with a matrix
    whose shape disagrees with obs gave a raw KeyError/ValueError traceback (read whole, the unknown
    encoding did too); a missing array was named by h5py's whole message."""
    path = _damaged(tmp_path / "bad.h5ad", damage)
    for args in (["info", path], ["info", path, "--backed"]):
        line = assert_refused(args, [tmp_path])
        assert re.search(message, line), line
        assert f"Where: {path}" in line


def test_a_cell_ranger_h5_missing_a_dataset_is_refused_cleanly(tmp_path):
    """scanpy raises a bare Exception for a Cell Ranger .h5 that lacks a dataset: it came out as a traceback."""
    counts = sp.csc_matrix(np.arange(15, dtype=np.int32).reshape(5, 3))  # genes x cells, as Cell Ranger stores it
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["data"], g["indices"], g["indptr"], g["shape"] = counts.data, counts.indices, counts.indptr, np.array(counts.shape)
        g["barcodes"] = np.array([b"AAAC-1", b"AAAG-1", b"AAAT-1"])
        features = g.create_group("features")
        features["id"] = np.array([f"ENSG{i:011d}".encode() for i in range(5)])
        features["feature_type"] = np.array([b"Gene Expression"] * 5)
        features["genome"] = np.array([b"GRCh38"] * 5)  # no features/name
    assert_refused(["info", path], [tmp_path], contains="not a readable Cell Ranger")


def test_a_file_read_whole_though_asked_backed_is_recorded_as_read_whole(tmp_path):
    """An .h5ad without X cannot stay on disk (anndata's backed mode needs X): it is read whole, and the
    input record says so (it said backed)."""
    counts = sp.csr_matrix(np.array([[0, 3, 1], [2, 0, 5]], dtype=np.float32))
    adata = ad.AnnData(X=counts, var=pd.DataFrame(index=["CD3E", "MS4A1", "LYZ"]))
    adata.raw = adata.copy()
    path = tmp_path / "raw_only.h5ad"
    adata.write_h5ad(path)
    with h5py.File(path, "r+") as f:
        del f["X"]
    back = mmgene.io.read(path, backed=True)
    assert not back.isbacked and back.uns["mmgene"]["input"]["backed"] is False
    adata.write_h5ad(tmp_path / "whole.h5ad")
    assert mmgene.io.read(tmp_path / "whole.h5ad", backed=True).uns["mmgene"]["input"]["backed"] is True
