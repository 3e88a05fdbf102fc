"""Streamed corpora: pairs made chunk by chunk from backed files equal the in-memory path's, are
reshuffled every epoch with the seed, and never read more than a chunk of cells at once."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

HUMAN_GENES = ["CD3E", "CD3D", "CD8A", "MS4A1", "CD79A", "LYZ", "NKG7", "GNLY", "ACTB", "MALAT1", "IL7R", "CCR7"]
MOUSE_GENES = ["Cd3e", "Cd3d", "Cd8a", "Ms4a1", "Cd79a", "Lyz2", "Nkg7", "Gm12345", "Actb", "Malat1", "Il7r", "Ccr7"]


def _adata(genes, classes, per_class, seed):
    """Counts with each class expressing its own marker genes, ontology ids, and one unlabelled cell."""
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    rows, labels, ids = [], [], []
    for name, term, markers in classes:
        for _ in range(per_class):
            counts = rng.poisson(1.0, len(genes)).astype(np.float32)
            counts[markers] += rng.poisson(20.0, len(markers))
            counts[-1] += 5
            rows.append(counts)
            labels.append(name)
            ids.append(term)
    rows.append(rng.poisson(2.0, len(genes)).astype(np.float32) + 1)
    labels.append(None)
    ids.append("")
    obs = pd.DataFrame({"cell_type": labels, "cell_type_ontology_term_id": ids}, index=[f"c{i}" for i in range(len(rows))])
    var = pd.DataFrame({"gene_symbol": genes}, index=genes)
    return anndata.AnnData(X=sp.csr_matrix(np.vstack(rows)), obs=obs, var=var)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """Two backed files: 61 human cells of 2 classes, 76 mouse cells of 3 (one unlabelled cell each)."""
    root = tmp_path_factory.mktemp("corpus")
    human = _adata(HUMAN_GENES, [("T", "CL:0000084", [0, 1, 10]), ("B", "CL:0000236", [3, 4])], 30, 0)
    mouse = _adata(MOUSE_GENES, [("T cells", "CL:0000625", [0, 2, 11]), ("B cells", "CL:0000236", [3, 4]), ("NK", "CL:0000623", [6, 7])], 25, 1)
    lines = ["path,dataset,label_col,ontology_col,species,tissue"]
    for name, species, adata in (("human_pbmc", "human", human), ("mouse_pbmc", "mouse", mouse)):
        adata.write_h5ad(root / f"{name}.h5ad")
        lines.append(f"{name}.h5ad,{name},cell_type,cell_type_ontology_term_id,{species},blood")
    (root / "corpus.csv").write_text("\n".join(lines) + "\n")
    return root / "corpus.csv"


def _config(**pairs):
    from mmgene.align.config import AlignConfig
    from mmgene.pairs.config import PairsConfig

    return AlignConfig(pairs=PairsConfig(**{"panel_sizes": (4, 8), **pairs}))


def _stream(manifest, config, *, chunk_size=16, shuffle_chunks=2, rows=0):
    from mmgene.align.config import CorpusTrainingConfig
    from mmgene.align.stream_train import CorpusStream
    from mmgene.corpus import CorpusOptions, read_corpus
    from mmgene.pairs.stream_config import StreamConfig

    corpus = read_corpus(manifest, CorpusOptions(backed=True))
    assert all(ds.adata.isbacked for ds in corpus)
    return CorpusStream(
        corpus, inputs=("genes",), config=config, balance=CorpusTrainingConfig(rows_per_dataset=rows),
        stream=StreamConfig(chunk_size=chunk_size, shuffle_chunks=shuffle_chunks),
    )


def _key(row):
    cell = row["cell"]
    return row["obs_name"], row["caption"], tuple(cell["genes"]), tuple(np.round(cell["values"], 4)), str(row["label"]), row.get("negative")


def _in_memory(manifest, config, rows=0):
    from mmgene.align.config import CorpusTrainingConfig
    from mmgene.align.corpus_train import corpus_pairs
    from mmgene.corpus import read_corpus

    pairs, _ = corpus_pairs(read_corpus(manifest), inputs=("genes",), config=config, balance=CorpusTrainingConfig(rows_per_dataset=rows))
    return pairs


def _rows_as_trained(train, config):
    """The in-memory rows with the labels the loss reads ([label, negative's label] with negatives)."""
    cols = train.to_dict()
    out = []
    for j in range(len(train)):
        row = {k: cols[k][j] for k in ("obs_name", "caption", "cell", "label")}
        if config.pairs.negatives:
            row["negative"] = cols["negative"][j]
            row["label"] = [cols["label"][j], cols["negative_label"][j]]
        out.append(row)
    return out


CASES = {
    "defaults": ({}, {}),
    # negatives, 2 captions a cell, more rows than the human file has (rows repeat), odd chunks
    "negatives, repeats": ({"negatives": True, "captions_per_cell": 2}, {"rows": 150, "chunk_size": 7, "shuffle_chunks": 3}),
}
_BUILT: dict[str, tuple] = {}


def _built(manifest, case):
    """(config, in-memory pairs, stream) of a case, made once per session."""
    if case not in _BUILT:
        pairs, reading = CASES[case]
        config = _config(**pairs)
        _BUILT[case] = (config, _in_memory(manifest, config, rows=reading.get("rows", 0)), _stream(manifest, config, **reading))
    return _BUILT[case]


@pytest.mark.parametrize("case", list(CASES))
def test_each_epoch_streams_the_in_memory_rows_in_a_new_order(manifest, case):
    config, memory, stream = _built(manifest, case)
    expected = Counter(_key(r) for r in _rows_as_trained(memory["train"], config))
    train = stream.train_split([])
    orders = []
    for epoch in range(3):
        train.set_epoch(epoch)
        rows = list(train)
        assert Counter(_key(r) for r in rows) == expected
        orders.append([_key(r) for r in rows])
    assert len({tuple(o) for o in orders}) == 3  # three epochs, three orders
    facts = stream.facts
    assert facts.rows == len(memory["train"]) == sum(expected.values())
    assert facts.vocabulary == sorted({g for cell in memory["train"]["cell"] for g in cell["genes"]})
    assert facts.labels == sorted(set(memory["train"]["label"]))
    assert stream.classes.names == memory.classes and stream.marker_genes == memory.marker_genes
    negatives = config.pairs.negatives
    assert train.column_names == ["cell", "caption"] + (["negative"] if negatives else []) + ["label", "obs_name"]
    if negatives:
        assert facts.rows == 300 and max(Counter(r[0] for r in orders[0]).values()) > 2  # rows repeat as balanced


def test_two_ranks_read_disjoint_blocks_and_take_equal_rows_every_epoch(manifest, monkeypatch):
    """``world=2``: two shards (lanes), one per rank as accelerate shards them; each epoch deals the
    blocks anew, no block is read by both ranks, and both yield ``rows // 2`` rows of the epoch."""
    from mmgene.errors import ParameterError

    config, memory, stream = _built(manifest, "defaults")
    expected = Counter(_key(r) for r in _rows_as_trained(memory["train"], config))
    reads: list[tuple[int, int]] = []
    block_rows = stream.block_rows
    monkeypatch.setattr(stream, "block_rows", lambda i, c: reads.append((i, c)) or block_rows(i, c))
    train = stream.train_split([], world=2)
    assert train.n_shards == 2
    ranks = [train.shard(num_shards=2, index=r) for r in range(2)]
    quota = stream.facts.rows // 2
    deals = []
    for epoch in range(2):
        read, rows = [], []
        for rank in ranks:
            rank.set_epoch(epoch)
            reads.clear()
            rows.append([_key(r) for r in rank])
            read.append(set(reads))
        assert [len(r) for r in rows] == [quota, quota]
        assert not read[0] & read[1] and read[0] | read[1] == set(stream.blocks)
        assert set(rows[0] + rows[1]) <= set(expected)
        deals.append(read)
    assert deals[0] != deals[1]  # a new deal each epoch
    for seed in (0, 1, 2):
        lanes = stream.deal(seed, 2)
        load = [sum(len(stream.picks[b]) for b in lane) for lane in lanes]
        assert sorted(b for lane in lanes for b in lane) == sorted(stream.blocks)
        assert abs(load[0] - load[1]) <= max(len(p) for p in stream.picks.values())
    with pytest.raises(ParameterError, match=f"{len(stream.blocks)} blocks of cells, fewer than the 64 processes"):
        stream.train_split([], world=64)


def test_the_order_is_fixed_by_the_seed(manifest):
    from dataclasses import replace

    config, _, stream = _built(manifest, "defaults")
    first = [r["obs_name"] for r in stream.train_split([])]
    again = [r["obs_name"] for r in _stream(manifest, config).train_split([])]
    assert first == again
    other = replace(config, training=replace(config.training, seed=1))
    reseeded = [r["obs_name"] for r in _stream(manifest, other).train_split([])]
    assert reseeded != first


def test_reads_are_bounded_by_the_chunk_size(manifest, monkeypatch):
    from anndata._core.sparse_dataset import BaseCompressedSparseDataset

    from mmgene.align.config import CorpusTrainingConfig
    from mmgene.align.stream_train import CorpusStream
    from mmgene.corpus import CorpusOptions, read_corpus
    from mmgene.pairs.stream_config import StreamConfig

    corpus = read_corpus(manifest, CorpusOptions(backed=True))
    read = BaseCompressedSparseDataset.__getitem__
    spans: list[int] = []

    def recording(self, key):
        out = read(self, key)
        spans.append(out.shape[0])
        return out

    monkeypatch.setattr(BaseCompressedSparseDataset, "__getitem__", recording)
    stream = CorpusStream(corpus, inputs=("genes",), config=_config(), balance=CorpusTrainingConfig(), stream=StreamConfig(chunk_size=9))
    rows = sum(1 for _ in stream.train_split([]))
    assert rows == stream.facts.rows and stream.test_split() is not None
    assert spans and max(spans) == 9  # every read of the matrix on disk: never more than a chunk
    assert stream.largest_read == 9


def streamed_like_make_pairs(path, config, seed: int, chunk_size: int):
    """``(stream, make_pairs' rows, the stream's rows)`` of one file, after checking that the stream gives
    make_pairs' training rows column by column, in order."""
    import mmgene.io
    from mmgene.pairs import make_pairs
    from mmgene.pairs.stream import DatasetStream

    expected = make_pairs(mmgene.io.read(path), "cell_type", ontology_col="cell_type_ontology_term_id", config=config, seed=seed)
    stream = DatasetStream(
        mmgene.io.read(path, backed=True), "cell_type", ontology_col="cell_type_ontology_term_id", config=config, seed=seed,
        chunk_size=chunk_size,
    ).prepare()
    got: dict[str, list] = {}
    for c in range(stream.n_chunks):
        for k, v in stream.rows(c).items():
            got.setdefault(k, []).extend(v)
    train = expected["train"].to_dict()
    for column in ("cell", "caption", "negative", "label", "negative_label", "obs_name"):
        assert got[column] == train[column], column
    return stream, expected, got


def test_a_single_anndata_streams_make_pairs_rows_in_order(manifest, tmp_path):
    from mmgene.pairs.config import PairsConfig

    config = PairsConfig(negatives=True, panel_sizes=(4, 8))
    stream, expected, got = streamed_like_make_pairs(manifest.parent / "human_pbmc.h5ad", config, seed=5, chunk_size=8)
    train = expected["train"].to_dict()
    assert got["row"] == list(range(len(train["caption"])))
    assert stream.marker_genes == expected.marker_genes
    assert stream.read.largest == 8 and stream.read.reads == 2 * stream.n_chunks + stream.n_chunks
    again = stream.rows(3, np.array([0, 0]) + stream._train_in(3)[0] * 3)  # a chunk out of order, one row twice
    assert again["caption"] == [train["caption"][stream._train_in(3)[0] * 3]] * 2


@pytest.mark.filterwarnings("ignore:Writing zarr v2 data")
def test_a_zarr_store_is_read_lazily_and_streams_the_same_rows(manifest, tmp_path):
    import anndata as ad

    import mmgene.io
    from mmgene.pairs.stream import DatasetStream

    store = tmp_path / "human.zarr"
    ad.read_h5ad(manifest.parent / "human_pbmc.h5ad").write_zarr(store)
    lazy = mmgene.io.read(store, backed=True)
    assert type(lazy.X).__name__ == "_CSRDataset" and lazy.uns["mmgene"]["input"]["backed"] is True
    streams = [
        DatasetStream(data, "cell_type", chunk_size=10).prepare()
        for data in (lazy, mmgene.io.read(manifest.parent / "human_pbmc.h5ad", backed=True))
    ]
    assert streams[0].read.largest == 10
    for c in range(streams[0].n_chunks):
        assert streams[0].rows(c) == streams[1].rows(c)


def test_a_census_query_streams_from_a_soma_experiment(tmp_path):
    soma = pytest.importorskip("tiledbsoma")
    import pandas as pd
    import tiledbsoma.io

    from mmgene.align.config import CorpusTrainingConfig
    from mmgene.align.corpus_train import corpus_pairs
    from mmgene.align.stream_train import CorpusStream
    from mmgene.corpus import CensusQuery, CorpusOptions, DatasetSpec, read_corpus
    from mmgene.corpus.soma_rows import SomaRows
    from mmgene.pairs.stream_config import StreamConfig

    adata = _adata(HUMAN_GENES, [("T", "CL:0000084", [0, 1, 10]), ("B", "CL:0000236", [3, 4]), ("NK", "CL:0000623", [6, 7])], 14, 3)[:-1]
    adata.obs = pd.DataFrame(
        {"dataset_id": "d1", "assay": "10x", "cell_type": adata.obs["cell_type"].astype(str).to_numpy(),
         "cell_type_ontology_term_id": adata.obs["cell_type_ontology_term_id"].astype(str).to_numpy(),
         "tissue_general": "blood", "donor_id": "x"},
        index=adata.obs_names,
    )
    adata.var = pd.DataFrame({"feature_name": HUMAN_GENES}, index=HUMAN_GENES)
    uri = str(tmp_path / "experiment")
    tiledbsoma.io.from_anndata(uri, adata, measurement_name="RNA")
    spec = DatasetSpec(
        "census_blood", "cell_type", ontology_col="cell_type_ontology_term_id",
        census=CensusQuery("cell_type in ['T', 'B', 'NK']", uri=uri, max_cells_per_type=12, seed=2),
    )
    config = _config()
    memory, _ = corpus_pairs(read_corpus([spec]), inputs=("genes",), config=config, balance=CorpusTrainingConfig())
    with read_corpus([spec], CorpusOptions(backed=True)) as backed:
        rows = backed["census_blood"].adata
        assert isinstance(rows, SomaRows) and rows.n_obs == 36
        stream = CorpusStream(backed, inputs=("genes",), config=config, balance=CorpusTrainingConfig(), stream=StreamConfig(chunk_size=10))
        got = Counter(_key(r) for r in stream.train_split([]))
    assert got == Counter(_key(r) for r in _rows_as_trained(memory["train"], config))
    assert stream.largest_read == 10
    assert soma is not None


def test_gene_moments_do_not_depend_on_how_rows_are_read():
    import scipy.sparse as sp

    from mmgene.io.expression import DEFAULT_CHUNK
    from mmgene.pairs.build import GeneMoments

    rng = np.random.default_rng(0)
    n = DEFAULT_CHUNK + 700
    block = sp.random(n, 50, density=0.3, format="csr", dtype=np.float32, random_state=1)
    block.data = rng.random(block.data.size, dtype=np.float32) * 7
    rows = np.sort(rng.choice(n, 1500, replace=False))
    whole = GeneMoments(50)
    for lo, hi in ((0, DEFAULT_CHUNK), (DEFAULT_CHUNK, n)):  # as make_pairs reads: one block at a time
        sel = rows[(rows >= lo) & (rows < hi)]
        whole.add(sel, block[sel])
    whole.finish()
    pieces = GeneMoments(50)
    for lo in range(0, n, 37):  # as a stream reads: small chunks, across the block boundary
        sel = rows[(rows >= lo) & (rows < lo + 37)]
        if sel.size:
            pieces.add(sel, block[sel])
    pieces.finish()
    assert np.array_equal(whole.total, pieces.total) and np.array_equal(whole.total_sq, pieces.total_sq)
    scipy_sum = np.asarray(block[rows[rows < DEFAULT_CHUNK]].sum(axis=0), dtype=np.float64).ravel()
    scipy_sum += np.asarray(block[rows[rows >= DEFAULT_CHUNK]].sum(axis=0), dtype=np.float64).ravel()
    assert np.array_equal(whole.total, scipy_sum) and whole.n == 1500


def test_train_stream_trains_and_saves_a_model(manifest, tmp_path):
    from mmgene.align import ModelConfig, TrainingConfig, load
    from mmgene.align.stream_train import train_stream
    from mmgene.corpus import CorpusOptions, read_corpus
    from mmgene.pairs.stream_config import StreamConfig

    corpus = read_corpus(manifest, CorpusOptions(backed=True))
    out = tmp_path / "model"
    model = train_stream(
        corpus, model=ModelConfig(gene_bridge=False, gene_dim=16, dim=16, hidden=32), training=TrainingConfig(max_steps=3, batch_size=8),
        stream=StreamConfig(chunk_size=16, eval_cells=10), out=out,
    )
    assert model.meta["datasets"] == ["human_pbmc", "mouse_pbmc"] and model.meta["run"]["steps"] == 3
    assert model.meta["stream"]["chunk_size"] == 16 and model.meta["test_cells"] == 10
    assert model.meta["train_cells"] == 48 + 60 and model.meta["unlabelled_cells"] == 2
    # a streamed corpus cannot mine hard negatives (none by default) and encodes as a corpus does
    assert (model.config.training.hard_negatives, model.config.model.query_channel) == (0, 0.7)
    loaded = load(out)
    assert loaded.meta["dataset_classes"] == model.meta["dataset_classes"]
    # the training mean, read a chunk at a time, is the in-memory mean of each dataset's training cells
    from mmgene.align.corpus_train import human_view
    from mmgene.align.recentre import training_mean
    from mmgene.pairs.build import plan_pairs

    in_memory = read_corpus(manifest)
    whole = []
    for ds in in_memory:
        plan = plan_pairs(ds.adata, [ds.spec.label_col], ontology_col=ds.spec.ontology_col, config=model.config.pairs, seed=0)
        whole.append(human_view(ds)[plan.train])
    assert [w.n_obs for w in whole] == [49, 60]  # the training split (balancing drew rows of 48 of the 49)
    np.testing.assert_allclose(loaded.training_mean, training_mean(loaded, whole), rtol=1e-5, atol=1e-6)
    vectors = loaded.encode_cells(read_corpus(manifest)["human_pbmc"].adata[:4].copy())
    assert vectors.shape[0] == 4 and np.isfinite(vectors).all()


def test_train_stream_trains_one_model_by_default_and_an_ensemble_on_request(manifest, tmp_path):
    from mmgene.align import CorpusTrainingConfig, EnsembleModel, ModelConfig, TrainingConfig, load
    from mmgene.align.stream_train import train_stream
    from mmgene.corpus import CorpusOptions, read_corpus
    from mmgene.pairs.stream_config import StreamConfig

    corpus = read_corpus(manifest, CorpusOptions(backed=True))
    settings = {
        "model": ModelConfig(gene_bridge=False, gene_dim=16, dim=16, hidden=32), "training": TrainingConfig(max_steps=2, batch_size=8),
        "stream": StreamConfig(chunk_size=16, eval_cells=10),
    }
    model = train_stream(corpus, **settings, balance=CorpusTrainingConfig(members=2), out=tmp_path / "model")
    assert isinstance(model, EnsembleModel) and [m.config.training.seed for m in model.members] == [0, 1]
    assert [m.meta["stream"]["chunk_size"] for m in model.members] == [16, 16]
    cells = read_corpus(manifest)["human_pbmc"].adata[:6].copy()
    assert np.array_equal(load(tmp_path / "model").encode_cells(cells), model.encode_cells(cells))


def test_bad_settings_are_refused(manifest, tmp_path):
    from mmgene.align import TrainingConfig
    from mmgene.align.stream_train import train_stream
    from mmgene.corpus import CorpusOptions, read_corpus
    from mmgene.errors import ParameterError
    from mmgene.pairs.stream_config import StreamConfig

    with pytest.raises(ParameterError, match="chunk_size must be a whole number >= 1, got 0"):
        StreamConfig(chunk_size=0)
    with pytest.raises(ParameterError, match="eval_cells must be a whole number >= 0"):
        StreamConfig(eval_cells=-1)
    corpus = read_corpus(manifest, CorpusOptions(backed=True))
    with pytest.raises(ParameterError, match="hard negatives rewrite every training row"):
        train_stream(corpus, training=TrainingConfig(hard_negatives=2), out=tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_cli_trains_on_a_streamed_corpus_and_refuses_stream_options_alone(manifest, tmp_path):
    import json

    from hostile import assert_refused, run_cli_here

    out = tmp_path / "model"
    res = run_cli_here(
        "train", "--corpus", str(manifest), "--stream", "--chunk-size", "16", "--eval-cells", "8", "--out", str(out),
        "--max-steps", "2", "--batch-size", "8", "--no-gene-bridge", "--gene-dim", "16", "--dim", "16", "--hidden", "32", "--json",
    )
    assert res.returncode == 0, res.stderr
    meta = json.loads(res.stdout)
    assert meta["stream"]["chunk_size"] == 16 and meta["test_cells"] == 8 and meta["datasets"] == ["human_pbmc", "mouse_pbmc"]
    assert_refused(["train", "--corpus", manifest, "--chunk-size", "8", "--out", tmp_path / "m"], [tmp_path], contains="apply to --stream only")
    h5ad = manifest.parent / "human_pbmc.h5ad"
    assert_refused(["train", h5ad, "--label-col", "cell_type", "--stream", "--out", tmp_path / "m"], [tmp_path], contains="--corpus training only")


#: ``mmgene`` as ``python -m mmgene`` runs it, logging which lanes and blocks this rank reads
LOGGING_MMGENE = """
import json, os

from mmgene.align.stream_train import CorpusStream

log = open(f"{os.environ['READ_LOG']}.{os.environ['RANK']}", "w")
block_rows, generate_lanes = CorpusStream.block_rows, CorpusStream.generate_lanes


def logged_rows(self, i, chunk):
    print(json.dumps({"block": [i, chunk]}), file=log, flush=True)
    return block_rows(self, i, chunk)


def logged_lanes(self, lanes, seed, world):
    print(json.dumps({"lanes": lanes, "world": world}), file=log, flush=True)
    yield from generate_lanes(self, lanes, seed, world)


CorpusStream.block_rows, CorpusStream.generate_lanes = logged_rows, logged_lanes
from mmgene.cli import main

main()
"""


#: the two launchers a user may start ``mmgene train`` with, two CPU processes each
LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no"],
}


@pytest.mark.slow  # two fresh interpreters import torch, transformers and sentence-transformers
def test_launched_ranks_each_read_their_own_lane_of_a_streamed_corpus(manifest, tmp_path):
    """``accelerate launch --num_processes 2`` of ``mmgene train --corpus M --stream``: rank r reads lane
    r's blocks only (none is read by both: nothing is read once and sent out), and rank 0 alone writes the
    model, which loads with the steps asked for. test_consensus checks the same under ``torchrun``."""
    import json
    import os
    import subprocess
    import sys

    from mmgene.align import load

    (tmp_path / "mmgene_logging.py").write_text(LOGGING_MMGENE)
    out = tmp_path / "model"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MMGENE_QUIET": "1", "READ_LOG": str(tmp_path / "reads")}
    command = [sys.executable, *LAUNCHERS["accelerate"], str(tmp_path / "mmgene_logging.py")]
    command += ["train", "--corpus", str(manifest), "--stream", "--chunk-size", "8", "--eval-cells", "0", "--out", str(out), "--max-steps", "4"]
    command += ["--batch-size", "8", "--no-gene-bridge", "--gene-dim", "16", "--dim", "16", "--hidden", "32", "--device", "cpu"]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    logs = [[json.loads(line) for line in (tmp_path / f"reads.{r}").read_text().splitlines()] for r in range(2)]
    lanes = [[e["lanes"] for e in log if "lanes" in e] for log in logs]
    assert lanes[0][0] == [0] and lanes[1][0] == [1] and all(e.get("world", 2) == 2 for log in logs for e in log)
    blocks = [{tuple(e["block"]) for e in log if "block" in e} for log in logs]
    assert blocks[0] and blocks[1] and not blocks[0] & blocks[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mmgene_logging.py", "model", "reads.0", "reads.1"]
    model = load(out)
    assert model.meta["run"]["steps"] == 4 and model.meta["datasets"] == ["human_pbmc", "mouse_pbmc"]
    assert model.config.training.batch_size == 8
