"""Audit fixes: streamed training leaves out cells that express no gene, as in-memory training does; a
``.zarr`` store whose sparse expression matrix lacks chunk files is refused instead of read as zeros."""

from __future__ import annotations

import os
import shutil
from collections import Counter

import numpy as np
import pytest

HUMAN_GENES = ["CD3E", "CD3D", "CD8A", "MS4A1", "CD79A", "LYZ", "NKG7", "GNLY", "ACTB", "MALAT1"]
MOUSE_GENES = ["Cd3e", "Cd3d", "Cd8a", "Ms4a1", "Cd79a", "Lyz2", "Nkg7", "Gzma", "Actb", "Malat1"]
#: the all-zero rows of each file: human's 8..11 fill the third chunk of 4 cells; mouse's are scattered.
ZERO_ROWS = {"human_pbmc": [1, 8, 9, 10, 11, 17], "mouse_pbmc": [0, 13, 26]}
CHUNK = 4


def _adata(genes, zero_rows, seed):
    """Two classes of 14 labelled cells, each class expressing its markers; ``zero_rows`` hold no count."""
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    labels = ["T", "B"] * 14
    counts = rng.poisson(1.0, (len(labels), len(genes))).astype(np.float32) + np.eye(1, len(genes), 9, dtype=np.float32) * 4
    for i, label in enumerate(labels):
        counts[i, [0, 1] if label == "T" else [3, 4]] += rng.poisson(15.0, 2)
    counts[zero_rows] = 0
    terms = {"T": "CL:0000084", "B": "CL:0000236"}
    obs = pd.DataFrame(
        {"cell_type": labels, "cell_type_ontology_term_id": [terms[x] for x in labels]}, index=[f"c{i}" for i in range(len(labels))]
    )
    return anndata.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame({"gene_symbol": genes}, index=genes))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("empty_cells")
    lines = ["path,dataset,label_col,ontology_col,species,tissue"]
    for name, species, genes, seed in (("human_pbmc", "human", HUMAN_GENES, 0), ("mouse_pbmc", "mouse", MOUSE_GENES, 1)):
        _adata(genes, ZERO_ROWS[name], seed).write_h5ad(root / f"{name}.h5ad")
        lines.append(f"{name}.h5ad,{name},cell_type,cell_type_ontology_term_id,{species},blood")
    (root / "corpus.csv").write_text("\n".join(lines) + "\n")
    return root / "corpus.csv"


def _config():
    from mmgene.align.config import AlignConfig
    from mmgene.pairs.config import PairsConfig

    return AlignConfig(pairs=PairsConfig(panel_sizes=(4, 8)))


def _key(row):
    cell = row["cell"]
    return row["obs_name"], row["caption"], tuple(cell["genes"]), tuple(np.round(cell["values"], 4)), str(row["label"])


def test_streamed_training_leaves_out_cells_that_express_no_gene_as_in_memory(manifest, monkeypatch, capsys):
    from mmgene.align.config import CorpusTrainingConfig
    from mmgene.align.corpus_train import corpus_pairs
    from mmgene.align.stream_train import CorpusStream
    from mmgene.corpus import CorpusOptions, read_corpus
    from mmgene.pairs.stream_config import StreamConfig
    from mmgene.settings import settings

    config, balance = _config(), CorpusTrainingConfig()
    monkeypatch.setattr(settings, "quiet", False)
    memory, record = corpus_pairs(read_corpus(manifest), inputs=("genes",), config=config, balance=balance)
    capsys.readouterr()
    stream = CorpusStream(
        read_corpus(manifest, CorpusOptions(backed=True)), inputs=("genes",), config=config, balance=balance,
        stream=StreamConfig(chunk_size=CHUNK, shuffle_chunks=2),
    )
    log = capsys.readouterr().err
    # every all-zero row is left out of both splits (a whole chunk of them too), and said so
    assert [d.empty_cells for d in stream.datasets] == [6, 3]
    assert "6 labelled cells express no gene with a symbol (zero counts) and are left out of the pairs: 'c1', 'c8', 'c9' and 3 more" in log
    assert "3 labelled cells express no gene with a symbol (zero counts) and are left out of the pairs: 'c0', 'c13', 'c26'" in log
    assert "streamed pairs of dataset 'human_pbmc': 18 training cells (6 training or test cells left out for expressing no gene)" in log
    assert "streamed pairs of dataset 'mouse_pbmc': 19 training cells (3 training or test cells left out for expressing no gene)" in log
    # 22 training cells of each file before (4 and 3 of them empty), 3 captions a cell, 55 rows a dataset
    assert stream.dataset_rows == {"human_pbmc": 18 * 3, "mouse_pbmc": 19 * 3} and stream.facts.rows == 110
    zero = {f"{name}:c{i}" for name, rows in ZERO_ROWS.items() for i in rows}
    rows = list(stream.train_split([]))
    assert len(rows) == 110 and not zero & {r["obs_name"] for r in rows} and all(r["cell"]["genes"] for r in rows)
    # the rows, their classes and the marker genes are the in-memory path's
    assert Counter(_key(r) for r in rows) == Counter(_key(r) for r in memory["train"])
    assert stream.marker_genes == memory.marker_genes
    test = stream.test_split()
    assert len(test) == len(memory["test"]) == (6 - 2) + 6 and all(cell["genes"] for cell in test["cell"])  # 2 test cells empty
    assert record["train_cells"] == sum(len(d.plan.train) for d in stream.datasets) == 18 + 19


def test_a_single_stream_of_a_file_with_empty_cells_makes_the_rows_of_make_pairs(manifest):
    from test_stream import streamed_like_make_pairs

    from mmgene.pairs.config import PairsConfig

    path = manifest.parent / "mouse_pbmc.h5ad"  # empty cells scattered, none a whole chunk
    config = PairsConfig(negatives=True, panel_sizes=(4, 8), test_size=0.25)
    stream, expected, got = streamed_like_make_pairs(path, config, seed=3, chunk_size=CHUNK)
    assert stream.empty_cells == 3 and (len(stream.plan.train), len(stream.plan.test)) == (18, 7)  # 28 cells, 3 of them empty
    assert len(got["caption"]) == 3 * 18
    assert stream.test_cells(stream.plan.test) == expected["test"]["cell"]


# ---------------------------------------------------------------------------------------------- zarr


def _counts(n_cells=40, n_genes=6, empty=10):
    """Counts whose first ``empty`` cells hold none (zarr never writes the chunks that are all zero)."""
    counts = np.random.default_rng(0).poisson(2.0, (n_cells, n_genes)).astype(np.float32) + 1
    counts[:empty] = 0
    return counts


def _write_sparse(path, counts, chunk=8):
    """``counts`` as a CSR AnnData in a .zarr store whose arrays are chunked by ``chunk`` entries."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp
    import zarr
    from anndata.io import write_elem

    genes = HUMAN_GENES[: counts.shape[1]]
    obs = pd.DataFrame(index=[f"c{i}" for i in range(len(counts))])
    adata = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=genes))
    write_elem(zarr.open_group(str(path), mode="w", zarr_format=2), "/", adata, dataset_kwargs={"chunks": (chunk,)})
    return path


def _snapshot(path):
    return sorted((str(p.relative_to(path)), p.read_bytes()) for p in path.rglob("*") if p.is_file())


@pytest.mark.filterwarnings("ignore:Writing zarr v2 data")
@pytest.mark.parametrize(
    "array, chunk, said",
    [
        ("data", "3", "1 of the 23 chunks of X/data are missing"),
        ("indices", "0", "1 of the 23 chunks of X/indices are missing"),
        ("indptr", "3", "at least 1 of the 6 chunks of X/indptr are missing"),  # chunk 0 is absent legitimately (empty cells)
    ],
)
@pytest.mark.parametrize("backed", [False, True])
def test_a_zarr_store_missing_a_chunk_of_its_sparse_matrix_is_refused(tmp_path, array, chunk, said, backed):
    import mmgene.io
    from mmgene.errors import InputFileError

    store = _write_sparse(tmp_path / "a.zarr", _counts())
    os.remove(store / "X" / array / chunk)
    before = _snapshot(store)
    with pytest.raises(InputFileError) as err:
        mmgene.io.read(store, backed=backed)
    message = str(err.value)
    assert said in message and "zarr would read them as zeros" in message and "copy it again from its source" in message
    assert err.value.where == f"{store}/X/{array}"
    assert _snapshot(store) == before


@pytest.mark.filterwarnings("ignore:Writing zarr v2 data")
@pytest.mark.parametrize("backed", [False, True])
def test_an_intact_zarr_store_reads_with_the_chunks_zarr_never_wrote(tmp_path, backed):
    """zarr skips a chunk that holds only zeros: the leading chunk of indptr when the first cells hold no
    count, a block of zeros in a dense X; such a store is intact and reads as written."""
    import anndata as ad
    import scipy.sparse as sp

    import mmgene.io

    counts = _counts()
    sparse = _write_sparse(tmp_path / "sparse.zarr", counts)
    assert not (sparse / "X" / "indptr" / "0").exists() and (sparse / "X" / "indptr" / "1").exists()
    dense = tmp_path / "dense.zarr"
    ad.AnnData(X=counts, var={"gene_symbol": HUMAN_GENES[:6]}).write_zarr(dense, chunks=(4, 6))
    assert sorted(p.name for p in (dense / "X").iterdir() if not p.name.startswith(".")) == [f"{i}.0" for i in range(2, 10)]
    for store in (sparse, dense):
        adata = mmgene.io.read(store, backed=backed)
        got = adata.X[:] if backed and store == sparse else adata.X
        np.testing.assert_array_equal(got.toarray() if sp.issparse(got) else np.asarray(got), counts)
