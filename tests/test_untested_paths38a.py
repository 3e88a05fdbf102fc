"""Paths the suite never ran: the consensus's gene limit and early returns, cells_to_cells's inputs,
vectors' odd shapes, vector sources' refusals and Fortran-ordered files, and IndexShards' helpers."""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mmgene.errors import InputFileError, IntegrityError, MissingColumnError, ParameterError, UnknownCellError
from test_train_corpus import HUMAN_GENES, _adata, _manifest

T_CELL, B_CELL = "CL:0000084", "CL:0000236"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- consensus: the gene limit
def _stats_reads(variances: dict[str, dict[str, float]]):
    """A ``_Reads`` whose gene statistics are given (std = sqrt of each gene's variance), and its datasets."""
    from mmgene.corpus.consensus import ConsensusConfig, _GeneStats, _Reads

    reads = _Reads(ConsensusConfig(), 1, Counter())
    datasets = []
    for name, genes in variances.items():
        symbols = np.array(list(genes), dtype=object)
        std = np.sqrt(np.array(list(genes.values())))
        reads._stats[name] = _GeneStats(np.zeros(len(symbols)), std, symbols)
        datasets.append(SimpleNamespace(name=name, symbols=symbols))
    return reads, datasets


@pytest.mark.parametrize("limit, expected", [
    (2, ["g1", "g4"]),  # each dataset's most variable gene
    (3, ["g1", "g2", "g4"]),  # then the first's second
    (4, ["g1", "g2", "g3", "g4"]),  # the second's second (g2) is taken already: the first's third is next
    (5, ["g1", "g2", "g3", "g4", "g6"]),  # all shared genes fit: sorted, not ranked
])
def test_more_shared_genes_than_the_limit_take_each_judged_datasets_most_variable_in_turn(limit, expected):
    from mmgene.corpus.consensus import _shared_genes

    reads, group = _stats_reads({
        "A": {"g1": 0.1, "g2": 0.5, "g3": 0.3, "g4": 0.9, "g5": 2.0},
        "B": {"g1": 0.8, "g2": 0.7, "g3": 0.1, "g6": 0.2},
    })
    others = [SimpleNamespace(name="o1"), SimpleNamespace(name="o2")]
    counts = Counter({"g1": 2, "g2": 2, "g3": 3, "g4": 2, "g5": 1, "g6": 2})  # g5: one other has it, not two
    assert _shared_genes(group, others, reads, limit, counts) == expected


def _fits(monkeypatch) -> list[tuple[tuple[int, int], list[str], np.ndarray]]:
    """Record the shape, classes and sample weights of every consensus regression."""
    from sklearn.linear_model import LogisticRegression

    fitted: list[tuple[tuple[int, int], list[str], np.ndarray]] = []
    fit = LogisticRegression.fit

    def recorded(self, X, y, sample_weight=None):
        fitted.append((X.shape, list(y), np.asarray(sample_weight)))
        return fit(self, X, y, sample_weight=sample_weight)

    monkeypatch.setattr(LogisticRegression, "fit", recorded)
    return fitted


def _corpus(tmp_path, entries):
    from mmgene.corpus import read_corpus

    return read_corpus(_manifest(tmp_path, entries))


def _blood(seed: int, per_class: int = 6, genes=HUMAN_GENES, classes=(("T", T_CELL, [0, 1, 2]), ("B", B_CELL, [3, 4]))):
    return _adata(list(genes), list(classes), per_class, seed)


def test_a_consensus_limited_to_three_genes_fits_on_three(tmp_path, monkeypatch):
    from mmgene.corpus.consensus import ConsensusConfig, contradicted_cells

    corpus = _corpus(tmp_path, [(f"d{i}", "human", _blood(i)) for i in range(3)])
    fitted = _fits(monkeypatch)
    found = contradicted_cells(corpus, ConsensusConfig(top_genes=3))
    assert [shape for shape, _, _ in fitted] == [(24, 3), (24, 3), (24, 3)]
    assert {name: int(cells.sum()) for name, cells in found.items()} == {"d0": 0, "d1": 0, "d2": 0}


def test_other_datasets_of_a_single_class_judge_nothing(tmp_path, monkeypatch):
    from mmgene.corpus.consensus import contradicted_cells

    only_t = (("T", T_CELL, [0, 1, 2]), ("T cell", T_CELL, [3, 4]))  # two labels, one Cell Ontology class
    corpus = _corpus(tmp_path, [("a", "human", _blood(0, classes=only_t)), ("b", "human", _blood(1, classes=only_t))])
    fitted = _fits(monkeypatch)
    found = contradicted_cells(corpus)
    assert fitted == []  # no regression: one class cannot contradict a label
    assert [found[n].tolist() for n in ("a", "b")] == [[False] * 12, [False] * 12]


def test_datasets_that_share_one_gene_judge_nothing(tmp_path, monkeypatch):
    from mmgene.corpus.consensus import contradicted_cells

    classes = (("T", T_CELL, [0, 1]), ("B", B_CELL, [3]))
    first = _blood(0, 4, genes=["CD3E", "CD3D", "CD8A", "MS4A1", "CD79A"], classes=classes)
    second = _blood(1, 4, genes=["CD3E", "LYZ", "NKG7", "GNLY", "ACTB"], classes=classes)
    corpus = _corpus(tmp_path, [("x", "human", first), ("y", "human", second)])
    fitted = _fits(monkeypatch)
    found = contradicted_cells(corpus)
    assert fitted == []  # one shared gene (CD3E) is no regression
    assert [found[n].tolist() for n in ("x", "y")] == [[False] * 8, [False] * 8]


def test_cells_without_an_ontology_id_are_left_out_and_take_no_share_of_their_datasets_weight(tmp_path, monkeypatch):
    """Each dataset weighed 1/(its sample's rows), blank ones included: a dataset with half its cells un-typed
    weighed half as much as the others."""
    from mmgene.corpus.consensus import contradicted_cells

    half_blank = _blood(2)
    ids = half_blank.obs["cell_type_ontology_term_id"].astype(str).to_numpy()
    ids[:6] = ""  # its T cells have a label but no id
    half_blank.obs["cell_type_ontology_term_id"] = ids
    corpus = _corpus(tmp_path, [("a", "human", _blood(0)), ("b", "human", _blood(1)), ("c", "human", half_blank)])
    fitted = _fits(monkeypatch)
    found = contradicted_cells(corpus)
    shape, classes, weights = fitted[0]  # a, judged by b (12 cells with an id) and c (6)
    assert shape == (18, 10) and classes == [T_CELL] * 6 + [B_CELL] * 12
    assert weights.tolist() == [0.75] * 12 + [1.5] * 6  # 9 each: b's and c's labelled cells weigh alike
    assert not any(cells.any() for cells in found.values())


# --------------------------------------------------------------------------- cells_to_cells
class _Space:
    """A joint space that embeds every cell as the first axis of 4."""

    def encode_text(self, texts):
        return np.tile(np.eye(4, dtype=np.float32)[1], (len(texts), 1))

    def encode_cells(self, adata):
        return np.tile(np.eye(4, dtype=np.float32)[0], (adata.n_obs, 1))

    def describe(self):
        return {"model": "axis", "inputs": ["genes"]}


@pytest.fixture()
def flat():
    from mmgene.index import CellIndex

    x = np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], np.float32)
    obs = pd.DataFrame({"ct": ["a", "a", "b", "c"]})
    return CellIndex.from_vectors(x, ["r0", "r1", "r2", "r3"], obs, kind="flat", embedding_key="X_e")


def _query_cells(key: str = "X_other"):
    import anndata

    adata = anndata.AnnData(np.ones((2, 3), np.float32))
    adata.obs_names = ["q0", "q1"]
    adata.obsm[key] = np.ones((2, 4), np.float32)
    return adata


def test_an_anndata_without_the_indexs_key_is_embedded_by_the_model_given(flat):
    from mmgene.query import cells_to_cells

    query = _query_cells()
    out = cells_to_cells(flat, query, k=2, model=_Space())
    assert out["query"].tolist() == ["q0", "q0", "q1", "q1"] and out["cell_id"].tolist() == ["r0", "r1"] * 2
    assert [round(float(v), 4) for v in out["score"]] == [1.0, 0.9939] * 2
    assert list(query.obsm) == ["X_other"]  # nothing written into the query


def test_an_anndata_without_the_indexs_key_and_no_model_names_the_key_and_its_obsm(flat):
    from mmgene.query import cells_to_cells

    with pytest.raises(MissingColumnError) as err:
        cells_to_cells(flat, _query_cells(), k=2)
    assert str(err.value) == "column 'X_e' does not exist in obsm. Where: obsm. What to do: choose one of: 'X_other'."


def test_cells_to_cells_reads_one_id_float_vectors_and_refuses_k_zero(flat):
    from mmgene.query import cells_to_cells

    one = cells_to_cells(flat, "r0", k=1)
    assert (one["query"].tolist(), one["cell_id"].tolist()) == (["r0"], ["r1"])  # itself left out
    by_vector = cells_to_cells(flat, np.array([[0.0, 0.0, 2.0, 0.0]]), k=1)
    assert (by_vector["cell_id"].tolist(), by_vector["score"].tolist()) == (["r3"], [1.0])
    with pytest.raises(ParameterError, match=r"k must be at least 1 \(a whole number\), got 0"):
        cells_to_cells(flat, ["r0"], k=0)


def test_vectors_of_unequal_length_are_refused_as_vectors_not_looked_up_as_cell_ids(flat):
    """They were looked up as the unknown cell '[1.0, 0.0, 0.0, 0.0]'."""
    from mmgene.query import cells_to_cells

    with pytest.raises(ParameterError, match=r"expected an array of real numbers \(ValueError: .*inhomogeneous") as err:
        cells_to_cells(flat, [[1.0, 0.0, 0.0, 0.0], [1.0, 0.0]], k=1)
    assert not isinstance(err.value, UnknownCellError) and "cells_to_cells(cells=...)" in str(err.value)
    with pytest.raises(UnknownCellError, match="cell 'nope' is not among"):  # a ragged list of ids stays ids
        cells_to_cells(flat, ["nope", ["r0", "r1"]], k=1)


def test_cells_to_cells_by_id_over_shards_says_ids_are_looked_up_in_one_folder(flat):
    """It failed with AttributeError: 'IndexShards' object has no attribute 'positions'."""
    from mmgene.index import CellIndex, IndexShards
    from mmgene.query import cells_to_cells

    axis3 = np.eye(4, dtype=np.float32)[[3]]
    other = CellIndex.from_vectors(axis3, ["s0"], pd.DataFrame({"ct": ["d"]}), kind="flat", embedding_key="X_e")
    shards = IndexShards([flat, other])
    with pytest.raises(ParameterError, match="cell ids are looked up in one index folder"):
        cells_to_cells(shards, ["r0"], k=1)
    out = cells_to_cells(shards, axis3, k=2)  # vectors are searched over both
    assert (out["cell_id"].tolist(), out["score"].tolist()) == (["s0", "r0"], [1.0, 0.0])  # a tie: the first position


# --------------------------------------------------------------------------- vectors
def test_missing_rows_is_all_false_for_what_is_not_a_2d_array_of_real_numbers():
    from mmgene.vectors import missing_rows

    assert missing_rows(np.array(["a", "b"])).tolist() == [False, False]  # 1-D text
    assert missing_rows(np.zeros((3, 2, 2))).tolist() == [False, False, False]
    assert missing_rows(2.0).tolist() == []
    assert missing_rows(np.array([["a", 1.0], [2.0, 3.0]], dtype=object)).tolist() == [False, False]  # not numbers
    assert missing_rows(np.array([[1.0, 1.0], [0.0, 0.0]], dtype=object)).tolist() == [False, True]


def test_missing_rows_reads_a_sparse_matrix_as_as_unit_vectors_does():
    """A sparse matrix was one object: an empty mask, not one entry per row."""
    import scipy.sparse as sp

    from mmgene.vectors import missing_rows

    x = sp.csr_matrix(np.array([[3.0, 4.0], [0.0, 0.0], [np.nan, 1.0]]))
    assert missing_rows(x).tolist() == [False, True, True]


def test_as_unit_vectors_reads_sparse_and_one_vector_and_keeps_no_rows():
    import scipy.sparse as sp

    from mmgene.vectors import as_unit_vectors

    dense = as_unit_vectors(sp.csr_matrix(np.array([[3.0, 4.0], [0.0, 2.0]])))
    assert dense.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [0.0, 1.0]]
    assert as_unit_vectors([3.0, 4.0]).tolist() == [[pytest.approx(0.6), pytest.approx(0.8)]]
    empty = as_unit_vectors(np.zeros((0, 3)))
    assert (empty.shape, empty.dtype, empty.flags.c_contiguous) == ((0, 3), np.float32, True)


@pytest.mark.parametrize("given, shape", [
    (np.zeros((2, 0)), "(2, 0)"), (np.zeros((2, 2, 2)), "(2, 2, 2)"), (3.0, "()"), ([], "(0,)"),
])
def test_as_unit_vectors_names_the_shape_it_was_given(given, shape):
    """An empty list was said to have shape (1, 0), the one row it is read as."""
    from mmgene.vectors import as_unit_vectors

    with pytest.raises(ParameterError) as err:
        as_unit_vectors(given, where="obsm['X']")
    assert str(err.value) == (
        f"expected a 2-D array of vectors, got shape {shape}. Where: obsm['X']. "
        "What to do: pass an (n_cells, dim) array or an obsm key."
    )


# --------------------------------------------------------------------------- .npy sources
def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def test_npy_shards_take_a_single_path_and_id_file_and_read_as_asked(tmp_path):
    from mmgene.index.sources import NpyShards

    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    (tmp_path / "ids.txt").write_text("a\nb\nc\nd\n")
    source = NpyShards(str(_npy(tmp_path / "x.npy", x)), ids=str(tmp_path / "ids.txt"))
    assert (len(source), source.dim) == (4, 3)
    empty = source.take([])
    assert (empty.shape, empty.dtype) == ((0, 3), np.float32)
    ids = source.ids_of([3, 1])
    assert (len(ids), ids[0], ids[1]) == (2, "d", "b")


def test_a_fortran_ordered_npy_file_reads_the_same_rows_as_a_c_ordered_one(tmp_path):
    from mmgene.index.sources import NpyShards

    x = np.arange(15, dtype=np.float64).reshape(5, 3)
    c_order = NpyShards([_npy(tmp_path / "c.npy", x)])
    f_order = NpyShards([_npy(tmp_path / "f.npy", np.asfortranarray(x))])
    assert f_order._arrays[0].flags.f_contiguous and not f_order._arrays[0].flags.c_contiguous
    chunks = [(first, block.tolist(), ids) for first, block, ids in f_order.chunks(2)]
    assert chunks == [(0, x[:2].tolist(), ["0", "1"]), (2, x[2:4].tolist(), ["2", "3"]), (4, x[4:].tolist(), ["4"])]
    assert f_order.take([4, 0, 4]).tolist() == x[[4, 0, 4]].tolist()
    assert f_order.fingerprint(0) == c_order.fingerprint(0)


def test_npy_shards_refuse_no_files_and_id_files_that_do_not_match(tmp_path):
    from mmgene.index.sources import NpyShards

    x = _npy(tmp_path / "x.npy", np.ones((2, 2), np.float32))
    with pytest.raises(ParameterError, match=r"^no \.npy file given\. Where: NpyShards\."):
        NpyShards([])
    with pytest.raises(ParameterError, match=r"^2 id files for 1 vector files\. Where: NpyShards\(ids=\.\.\.\)\."):
        NpyShards([x], ids=[tmp_path / "a.txt", tmp_path / "b.txt"])
    with pytest.raises(InputFileError, match=r"^file not found: .*missing\.txt\. Where: .*What to do: pass a text"):
        NpyShards([x], ids=[tmp_path / "missing.txt"])


@pytest.mark.parametrize("content, message", [
    (b"not an array", r"not a \.npy array \(ValueError: "),
    (b"", r"not a \.npy array \(EOFError: No data left in file\)"),  # was a raw EOFError
])
def test_a_file_that_is_no_npy_array_is_refused_and_left_as_it_was(tmp_path, content, message):
    from mmgene.index.sources import NpyShards

    path = tmp_path / "x.npy"
    path.write_bytes(content)
    before = _digest(path)
    with pytest.raises(InputFileError, match=message) as err:
        NpyShards(path)
    assert str(err.value).endswith("What to do: write the vectors with numpy.save.") and _digest(path) == before


def test_an_npz_archive_is_refused_as_no_npy_array(tmp_path):
    """np.load returned the archive, which failed with AttributeError: 'NpzFile' object has no attribute 'ndim'."""
    from mmgene.index.sources import NpyShards

    np.savez(tmp_path / "x.npz", a=np.ones((2, 2)))
    path = (tmp_path / "x.npz").rename(tmp_path / "x.npy")
    with pytest.raises(InputFileError) as err:
        NpyShards(path)
    assert str(err.value) == (
        f"an .npz archive, not a .npy array. Where: {path}. What to do: save each array of vectors with numpy.save."
    )


def test_an_id_file_that_is_not_utf8_is_refused_by_name(tmp_path):
    """It failed with a raw UnicodeDecodeError."""
    from mmgene.index.sources import NpyShards

    x = _npy(tmp_path / "x.npy", np.ones((2, 2), np.float32))
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"\xffa\nb\n")
    with pytest.raises(InputFileError, match=r"^the id file is not UTF-8 text \(UnicodeDecodeError: ") as err:
        NpyShards([x], ids=[ids])
    assert f"Where: {ids}." in str(err.value) and ids.read_bytes() == b"\xffa\nb\n"


# --------------------------------------------------------------------------- AnnData sources
def _h5ad(path: Path, n: int, dim: int, **obsm) -> Path:
    import anndata

    adata = anndata.AnnData(np.ones((n, 2), np.float32))
    adata.obs_names = [f"c{i}" for i in range(n)]
    adata.obsm["X_e"] = np.arange(n * dim, dtype=np.float32).reshape(n, dim)
    for key, value in obsm.items():
        adata.obsm[key] = value
    adata.write_h5ad(path)
    return path


def test_anndata_obsm_takes_a_single_path_and_refuses_files_of_different_widths(tmp_path):
    from mmgene.index.sources import AnnDataObsm

    one, two = _h5ad(tmp_path / "a.h5ad", 3, 2), _h5ad(tmp_path / "b.h5ad", 3, 4)
    source = AnnDataObsm(str(one), "X_e")
    assert (len(source), source.dim, source.ids_of([2])[0]) == (3, 2, "c2")
    with pytest.raises(ParameterError, match=r"^obsm\['X_e'\] has different widths \[2, 4\] in these files\."):
        AnnDataObsm([one, two], "X_e")


def test_anndata_obsm_refuses_an_empty_embedding(tmp_path):
    from mmgene.index.sources import AnnDataObsm

    path = _h5ad(tmp_path / "empty.h5ad", 0, 2)
    with pytest.raises(InputFileError) as err:
        AnnDataObsm(path, "X_e")
    assert str(err.value) == (
        f"obsm['X_e'] is not a non-empty 2-D array (shape (0, 2)). Where: {path}. "
        "What to do: store the embedding as a dense (cells, dim) array."
    )


@pytest.mark.parametrize("suffix", ["h5ad", "zarr"])
@pytest.mark.parametrize("key, kind", [("sparse", "csr_matrix"), ("table", "dataframe")])
def test_anndata_obsm_refuses_an_embedding_stored_as_a_group(tmp_path, suffix, key, kind):
    """A sparse or data-frame obsm failed with AttributeError: 'Group' object has no attribute 'shape'."""
    import anndata
    import scipy.sparse as sp

    from mmgene.index.sources import AnnDataObsm

    adata = anndata.AnnData(np.ones((3, 2), np.float32))
    adata.obsm["sparse"] = sp.csr_matrix(np.eye(3, 4, dtype=np.float32))
    adata.obsm["table"] = pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=adata.obs_names)
    path = tmp_path / f"a.{suffix}"
    with warnings.catch_warnings():  # anndata's notice that zarr v2 will stop being its default
        warnings.simplefilter("ignore", UserWarning)
        adata.write_h5ad(path) if suffix == "h5ad" else adata.write_zarr(path)
    with pytest.raises(InputFileError) as err:
        AnnDataObsm(path, key)
    assert str(err.value) == (
        f"obsm[{key!r}] is a {kind} stored as a group, not a dense 2-D array. Where: {path}. "
        "What to do: store the embedding as a dense (cells, dim) array."
    )


def test_an_hdf5_file_without_obs_is_refused_as_no_anndata(tmp_path):
    """It failed with a raw KeyError: "Unable to synchronously open object (object 'obs' doesn't exist)"."""
    import h5py

    from mmgene.index.sources import AnnDataObsm

    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_group("obsm").create_dataset("X_e", data=np.ones((2, 2)))
    before = _digest(path)
    with pytest.raises(InputFileError, match=r"^not an AnnData file: it has no obs table of cell names\. Where: "):
        AnnDataObsm(path, "X_e")
    assert _digest(path) == before


def test_open_group_refuses_a_missing_path_and_a_file_that_is_no_anndata(tmp_path):
    from mmgene.index.sources import _open_group

    with pytest.raises(InputFileError, match=r"^file not found: .*nope\.h5ad\. .*check the path of the AnnData file"):
        _open_group(tmp_path / "nope.h5ad")
    text = tmp_path / "x.h5ad"
    text.write_text("not hdf5")
    with pytest.raises(InputFileError, match=r"^not an AnnData file \(OSError: .*pass an \.h5ad file or a \.zarr store\.$"):
        _open_group(text)
    assert text.read_text() == "not hdf5"


def test_reopening_recorded_vectors_of_another_dimension_is_an_integrity_error(tmp_path):
    from mmgene.index.sources import NpyShards, open_recorded

    path = _npy(tmp_path / "x.npy", np.ones((3, 2), np.float32))
    record = NpyShards([path]).record()
    _npy(path, np.ones((3, 5), np.float32))
    with pytest.raises(IntegrityError) as err:
        open_recorded(record, "meta.json field 'rerank'")
    assert str(err.value) == (
        "the re-ranking vectors have dimension 5, the index records 2. Where: meta.json field 'rerank'. "
        "What to do: rebuild the index."
    )


# --------------------------------------------------------------------------- IndexShards
@pytest.fixture()
def shards(tmp_path):
    from mmgene.index import CellIndex

    x = np.eye(4, dtype=np.float32)
    a = CellIndex.from_vectors(x[:2], ["a0", "a1"], pd.DataFrame({"ct": ["x", "y"]}), kind="flat", embedding_key="X_e")
    b = CellIndex.from_vectors(x[2:], ["b0", "b1"], pd.DataFrame({"ct": ["z", "w"]}), kind="flat", embedding_key="X_e")
    return a.save(tmp_path / "a.index"), b.save(tmp_path / "b.index")


def test_shards_load_one_path_and_describe_themselves(shards):
    from mmgene.index import IndexShards

    one = IndexShards.load(str(shards[0]))
    assert (one.names, len(one)) == ([str(shards[0])], 2)
    both = IndexShards.load(list(shards))
    assert (len(both), both.model, both.embedding_key) == (4, None, "X_e")
    assert repr(both) == "IndexShards(2 shards, 4 cells, dim=4, model=None)"
    assert both.locate([0, 3]) == [(0, 0), (1, 1)]
    for bad in ([4], [-1]):
        with pytest.raises(ParameterError, match=r"^positions must be in \[0, 4\)\. Where: IndexShards\.locate\."):
            both.locate(bad)


def test_shards_answer_no_queries_with_an_empty_table(shards):
    from mmgene.index import IndexShards

    table = IndexShards.load(list(shards)).hits(np.zeros((0, 4), np.float32), k=2)
    assert table.empty and list(table.columns) == ["query", "rank", "cell_id", "score", "ct", "position"]


def test_shards_read_one_unnormalised_vector_as_one_query_and_refuse_text(shards):
    """One vector with normalize=False was refused as "query vectors have dimension 4, the shards have 4";
    text failed with a raw ValueError."""
    from mmgene.index import IndexShards

    both = IndexShards.load(list(shards))
    scores, positions = both.search(np.array([0.0, 0.0, 2.0, 0.0]), 2, normalize=False)
    assert (scores.tolist(), positions.tolist()) == ([[2.0, 0.0]], [[2, 0]])
    with pytest.raises(ParameterError, match=r"^query vectors have dimension 3, the shards have 4\."):
        both.search(np.ones(3), 1, normalize=False)
    with pytest.raises(ParameterError, match=r"^query vectors have shape \(1, 2, 4\), not \(n_queries, dim\), the shards"):
        both.search(np.ones((1, 2, 4)), 1, normalize=False)
    with pytest.raises(ParameterError, match=r"^expected an array of real numbers \(ValueError: could not convert"):
        both.search([["a", "b", "c", "d"]], 1, normalize=False)


def test_one_index_reads_one_unnormalised_vector_as_one_query_and_refuses_text():
    """CellIndex.search shares the shards' rule (mmgene.vectors.query_rows): one vector with normalize=False
    was refused as "query vectors have dimension 4, the index has 4"."""
    from mmgene.index import CellIndex

    index = CellIndex.from_vectors(np.eye(4, dtype=np.float32), ["c0", "c1", "c2", "c3"], pd.DataFrame({"ct": list("wxyz")}), kind="flat")
    scores, positions = index.search(np.array([0.0, 3.0, 0.0, 0.0]), 2, normalize=False)
    assert (scores.tolist()[0][0], positions.tolist()[0][0]) == (3.0, 1)
    with pytest.raises(ParameterError, match=r"^query vectors have dimension 3, the index has 4\."):
        index.search(np.ones(3), 1, normalize=False)
    with pytest.raises(ParameterError, match=r"^expected an array of real numbers"):
        index.search([["a", "b", "c", "d"]], 1, normalize=False)
