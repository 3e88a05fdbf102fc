"""Data-parallel training and inference with two CPU processes (gloo on 127.0.0.1).

The loss test and the inference test start two processes with ``torch.multiprocessing`` (their
workers are the ``_*_worker`` functions below; each joins the group through the environment, as
under torchrun); the training test runs ``mmgene train`` under
``python -m torch.distributed.run --nproc_per_node 2``, as a user would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmgene.errors import InputFileError, MMGeneError, OutputError, ParameterError  # noqa: E402

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "MMGENE_QUIET": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _join(rank: int, world: int, port: int) -> None:
    """Become rank ``rank`` of ``world`` as torchrun would make it (environment), then start the group."""
    os.environ.update(ENV)
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from mmgene import distributed

    assert distributed.init() and distributed.rank() == rank and distributed.world_size() == world


def _spawn(worker, *args) -> None:
    """Run ``worker(rank, port, *args)`` in two processes; forked where possible (they start in no time
    with torch already imported; one torch thread each), else spawned."""
    import multiprocessing

    import torch.multiprocessing as mp

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    mp.start_processes(worker, args=(_free_port(), *args), nprocs=2, start_method=method, join=True)


# --- the contrastive loss over the global batch --------------------------------------------------


class _Towers(torch.nn.Module):
    """Two towers sharing a layer (as the gene table is shared), run once per column, and a head that
    takes no part (as the text head's gene-bridge layer without a bridge): what DDP must cope with."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.shared = torch.nn.Linear(6, 8)
        self.cell = torch.nn.Linear(8, 5)
        self.text = torch.nn.Linear(8, 5)
        self.unused = torch.nn.Linear(2, 2)

    def forward(self, features):
        hidden = torch.tanh(self.shared(features["x"]))
        head = self.cell if "cell" in features else self.text
        return {"sentence_embedding": torch.nn.functional.normalize(head(hidden), dim=-1)}


def _loss_data(n: int = 128):
    rng = np.random.default_rng(3)
    x = [torch.tensor(rng.normal(size=(n, 6)), dtype=torch.float32) for _ in range(3)]
    own = rng.integers(0, 5, n)
    labels = torch.tensor(np.stack([own, (own + rng.integers(1, 5, n)) % 5], axis=1))  # (class, negative's class)
    related = np.zeros((5, 5), dtype=bool)
    related[0, 1] = related[1, 0] = True  # classes 0 and 1 are ancestor and descendant
    return x, labels, related


def _loss_and_grads(model, loss_fn, rows: slice):
    x, labels, _ = _loss_data()
    features = [{"x": x[0][rows], "cell": True}, {"x": x[1][rows]}, {"x": x[2][rows]}]
    value = loss_fn(features, labels[rows])
    value.backward()
    module = getattr(model, "module", model)
    grads = {name: p.grad.numpy().copy() for name, p in module.named_parameters() if p.grad is not None}
    grads["logit_scale"] = loss_fn.logit_scale.grad.numpy().copy()
    return float(value.detach()), grads


def _loss_worker(rank: int, port: int, out: str) -> None:
    _join(rank, 2, port)
    from torch.nn.parallel import DistributedDataParallel

    from mmgene.align.loss import SymmetricInfoNCELoss

    _, _, related = _loss_data()
    model = DistributedDataParallel(_Towers(), static_graph=True)
    rows = slice(64 * rank, 64 * (rank + 1))  # rank r holds rows 64r..64r+63 of the global batch of 128
    with torch.no_grad():  # the same loss without the gather sees only this rank's 64 rows
        x, labels, _ = _loss_data()
        local = SymmetricInfoNCELoss(model, temperature=0.1, related=related, gather_across_ranks=False)
        alone = float(local([{"x": x[0][rows], "cell": True}, {"x": x[1][rows]}, {"x": x[2][rows]}], labels[rows]))
    value, grads = _loss_and_grads(model, SymmetricInfoNCELoss(model, temperature=0.1, related=related), rows)
    # ranks with different numbers of rows (3 and 5): gathered in rank order, each row's gradient back home
    from mmgene.distributed import gather_with_grad

    mine = torch.arange(3 + 2 * rank, dtype=torch.float32).add(10 * rank).requires_grad_()
    gathered = gather_with_grad(mine)
    (gathered * torch.arange(1, 9, dtype=torch.float32)).sum().backward()
    np.savez(Path(out) / f"rank{rank}.npz", value=value, alone=alone, gathered=gathered.detach().numpy(), back=mine.grad.numpy(), **grads)


def test_two_ranks_of_64_give_the_loss_and_gradients_of_one_batch_of_128(tmp_path):
    from mmgene.align.loss import SymmetricInfoNCELoss

    _spawn(_loss_worker, str(tmp_path))
    model = _Towers()
    _, _, related = _loss_data()
    value, grads = _loss_and_grads(model, SymmetricInfoNCELoss(model, temperature=0.1, related=related), slice(0, 128))
    assert set(grads) == {"shared.weight", "shared.bias", "cell.weight", "cell.bias", "text.weight", "text.bias", "logit_scale"}
    for rank in (0, 1):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert float(got["value"]) == pytest.approx(value, rel=1e-6)
        for name, grad in grads.items():  # DDP's average over ranks of each rank's gradient
            np.testing.assert_allclose(got[name], grad, rtol=1e-5, atol=1e-7, err_msg=f"rank {rank}: {name}")
        # without the gather a rank sees only its own 64 rows' negatives: another loss
        assert abs(float(got["alone"]) - value) > 0.05
        assert got["gathered"].tolist() == [0, 1, 2, 10, 11, 12, 13, 14]
        # each row's gradient is the sum of both ranks' (the same loss on both): 2 x its weight
        assert got["back"].tolist() == ([2, 4, 6] if rank == 0 else [8, 10, 12, 14, 16])


# --- data-parallel inference ---------------------------------------------------------------------


def _inference_worker(rank: int, port: int, paths: dict) -> None:
    _join(rank, 2, port)
    import mmgene.io
    from mmgene import distributed
    from mmgene.align import load
    from mmgene.embed import genept_s
    from mmgene.settings import settings

    distributed.CHUNK_SIZE = paths["chunk"]
    settings.cache_dir = paths["cache"]  # a text-embedding cache of their own: the vectors are computed here
    out = Path(paths["out"])
    adata = mmgene.io.read(paths["cells"])
    model = load(paths["model"])
    cells = model.encode_cells(adata, key_added="X_mmgene")
    recentred = model.encode_cells(adata, recentre=True)  # the cells' mean is taken over every rank's chunks
    distributed.write_rows(adata.n_obs, lambda a, b: model.encode_cells(adata[a:b]), out / "shards")
    genept_s(adata, top_k=10)
    result = {"rank": rank, "encode_cells": cells is None, "obsm": sorted(adata.obsm)}
    from mmgene.align.config import TrainingConfig
    from mmgene.align.fit import device_arguments

    result["per_rank_batch"] = device_arguments(TrainingConfig(batch_size=64))["per_device_train_batch_size"]
    try:
        device_arguments(TrainingConfig(batch_size=129))
    except ParameterError as exc:
        result["odd_batch"] = str(exc)
    if paths.get("geneformer"):
        from mmgene.embed.geneformer import geneformer

        counts = mmgene.io.read(paths["counts"])
        geneformer(counts, paths["geneformer"], dictionaries=paths["dictionaries"], batch_size=8, device="cpu")
        result["geneformer"] = "X_geneformer" in counts.obsm
        if rank == 0:
            np.save(out / "geneformer.npy", counts.obsm["X_geneformer"])
    if rank == 0:
        np.save(out / "encode_cells.npy", cells)
        np.save(out / "recentred.npy", recentred)
        np.save(out / "genept_s.npy", adata.obsm["X_genept_s"])
    (out / f"rank{rank}.json").write_text(json.dumps(result))


@pytest.fixture(scope="module")
def small_pbmc68k(tmp_path_factory, _pbmc68k_cached):
    """120 cells of scanpy's pbmc68k_reduced, written to a file, and an (untrained) aligned model for them."""
    from mmgene.align.config import ModelConfig
    from mmgene.align.model import AlignedModel, build_model

    folder = tmp_path_factory.mktemp("pbmc68k")
    adata = _pbmc68k_cached[np.linspace(0, _pbmc68k_cached.n_obs - 1, 120).astype(int)].copy()
    adata.write_h5ad(folder / "cells.h5ad")
    st = build_model(list(adata.var_names), ModelConfig(gene_dim=16, dim=16, hidden=32, gene_bridge=False), max_genes=64)
    AlignedModel(st, ["genes"], {"learned_mean": np.linspace(-0.5, 0.5, 16).tolist()}).save(folder / "model")
    return folder


def test_two_processes_encode_exactly_what_one_process_does(small_pbmc68k, tmp_path, monkeypatch, request):
    """encode_cells, write_rows shards, GenePT-s and (with the shared data) Geneformer: each rank
    encodes every other chunk of 25 cells, rank 0 gathers them in cell order; the bits of one process."""
    import mmgene.io
    from mmgene import distributed
    from mmgene.align import load
    from mmgene.data import shared_data_dir
    from mmgene.embed import genept_s
    from mmgene.settings import settings

    # one process first (the forked ranks then start with numba's kernels compiled and the models imported)
    monkeypatch.setattr(distributed, "CHUNK_SIZE", 25)
    monkeypatch.setattr(settings, "cache_dir", str(tmp_path / "cache-one"))
    threads = torch.get_num_threads()
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    torch.set_num_threads(1)
    adata = mmgene.io.read(small_pbmc68k / "cells.h5ad")
    one = load(small_pbmc68k / "model").encode_cells(adata)
    one_recentred = load(small_pbmc68k / "model").encode_cells(adata, recentre=True)
    genept_s(adata, top_k=10)
    paths = {"cells": str(small_pbmc68k / "cells.h5ad"), "model": str(small_pbmc68k / "model"), "chunk": 25}
    paths.update(out=str(tmp_path / "two"), cache=str(tmp_path / "cache-two"))
    (tmp_path / "two").mkdir()
    counts, shared = None, shared_data_dir()
    if shared is not None:  # Geneformer needs raw counts with Ensembl ids and the V1 dictionaries
        import transformers

        from mmgene.embed.geneformer import geneformer

        pbmc3k = request.getfixturevalue("pbmc3k")
        counts = pbmc3k[np.linspace(0, pbmc3k.n_obs - 1, 60).astype(int)].copy()
        counts.write_h5ad(tmp_path / "counts.h5ad")
        config = transformers.BertConfig(
            vocab_size=25_426, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=2048, hidden_act="relu", pad_token_id=0,
        )
        torch.manual_seed(0)
        transformers.BertForMaskedLM(config).save_pretrained(tmp_path / "gf")
        paths.update(counts=str(tmp_path / "counts.h5ad"), geneformer=str(tmp_path / "gf"), dictionaries=str(shared / "geneformer_v1"))
        geneformer(counts, tmp_path / "gf", dictionaries=shared / "geneformer_v1", batch_size=8, device="cpu")

    _spawn(_inference_worker, paths)
    ranks = [json.loads((tmp_path / "two" / f"rank{r}.json").read_text()) for r in (0, 1)]
    # only rank 0 got the vectors and wrote them into its AnnData; rank 1 got None and left its own as it was
    assert [r["encode_cells"] for r in ranks] == [False, True]
    assert "X_mmgene" in ranks[0]["obsm"] and "X_genept_s" in ranks[0]["obsm"]
    assert not {"X_mmgene", "X_genept_s"} & set(ranks[1]["obsm"])
    # training splits the global batch over the ranks, and refuses one that does not split
    assert [r["per_rank_batch"] for r in ranks] == [32, 32]
    assert all("batch_size=129 does not split evenly over 2 processes" in r["odd_batch"] for r in ranks)
    two = np.load(tmp_path / "two" / "encode_cells.npy")
    assert two.shape == (120, 16) and two.dtype == np.float32
    np.testing.assert_array_equal(two, one)
    np.testing.assert_array_equal(np.load(tmp_path / "two" / "recentred.npy"), one_recentred)
    assert np.abs(one_recentred - one).max() > 0.05
    np.testing.assert_array_equal(distributed.read_rows(tmp_path / "two" / "shards"), one)
    parts = [(a, b) for a, b, _ in distributed.iter_rows(tmp_path / "two" / "shards")]
    assert parts == [(0, 25), (25, 50), (50, 75), (75, 100), (100, 120)]
    np.testing.assert_array_equal(np.load(tmp_path / "two" / "genept_s.npy"), adata.obsm["X_genept_s"])
    if counts is not None:
        assert [r["geneformer"] for r in ranks] == [True, False]
        np.testing.assert_array_equal(np.load(tmp_path / "two" / "geneformer.npy"), counts.obsm["X_geneformer"])


# --- data-parallel training with torchrun --------------------------------------------------------


def _losses(model) -> list[tuple[int, int, float]]:
    """(trainer run, step, loss) of each logged step."""
    from mmgene.align.training_log import records

    return [(int(r["run"]), int(r["step"]), float(r["loss"])) for r in records(model.st) if "loss" in r]


#: ``mmgene`` as ``python -m mmgene`` runs it, with the cell head's dropout off: no random numbers are
#: drawn during training, so one process and two ranks differ only in float arithmetic
NO_DROPOUT_MMGENE = """
from mmgene.align.modules.cell_head import CellHead

CellHead.__init__.__defaults__ = (0.0,)
from mmgene.cli import main

main()
"""


@pytest.mark.slow  # two fresh interpreters import torch, transformers and sentence-transformers
def test_torchrun_trains_one_model_with_the_loss_curve_of_one_process(pbmc68k, tmp_path, monkeypatch, request):
    """``torchrun --nproc_per_node 2 mmgene train``: 2 ranks x 32 rows are the global batch of 64 of a
    single process, in two rounds (hard negatives mined between them, each rank encoding its share of
    the cells); only rank 0 writes the model and its log, which load and match that process's."""
    import mmgene.io
    from mmgene.align import load, train
    from mmgene.align.config import ModelConfig, TrainingConfig
    from mmgene.align.modules.cell_head import CellHead
    from mmgene.pairs.config import PairsConfig

    data = tmp_path / "pbmc68k.h5ad"
    pbmc68k.write_h5ad(data)
    (tmp_path / "mmgene_no_dropout.py").write_text(NO_DROPOUT_MMGENE)
    out = tmp_path / "model"
    options = ["--max-genes", "64", "--captions-per-cell", "1", "--gene-dim", "16", "--dim", "16", "--hidden", "32"]
    options += ["--gene-dropout", "0", "--no-gene-bridge", "--max-steps", "4", "--batch-size", "64", "--seed", "0", "--device", "cpu"]
    options += ["--hard-negatives", "2", "--mine-every", "2", "--test-size", "0"]  # no evaluation: the test's time
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(tmp_path / "mmgene_no_dropout.py")]
    command += ["train", str(data), "--label-col", "bulk_labels", "--out", str(out), *options]
    done = subprocess.run(command, check=False, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count(f"wrote {out}") == 1  # rank 0 reports, rank 1 does not
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mmgene_no_dropout.py", "model", "pbmc68k.h5ad"]  # nothing staged is left
    two = load(out)
    assert two.config.training.batch_size == 64

    monkeypatch.setattr(CellHead.__init__, "__defaults__", (0.0,))
    threads = torch.get_num_threads()
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    one = train(
        mmgene.io.read(data),
        "bulk_labels",
        pairs=PairsConfig(max_genes=64, captions_per_cell=1, test_size=0.0),
        model=ModelConfig(gene_dim=16, dim=16, hidden=32, gene_dropout=0.0, gene_bridge=False),
        training=TrainingConfig(max_steps=4, batch_size=64, seed=0, device="cpu", hard_negatives=2, mine_every=2),
    )
    curve_one, curve_two = _losses(one), _losses(two)
    assert [c[:2] for c in curve_two] == [c[:2] for c in curve_one] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    np.testing.assert_allclose([c[2] for c in curve_two], [c[2] for c in curve_one], rtol=1e-4)
    cells = mmgene.io.read(data)[:50]
    np.testing.assert_allclose(two.encode_cells(cells), one.encode_cells(cells), atol=1e-4)
    np.testing.assert_allclose(two.training_mean, one.training_mean, atol=1e-4)  # every rank took the mean of all training cells


# --- the helpers alone ---------------------------------------------------------------------------


def test_one_process_maps_rows_in_chunks_and_writes_shards_atomically(tmp_path, monkeypatch):
    from mmgene import distributed

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (distributed.rank(), distributed.world_size(), distributed.is_main(), distributed.launched()) == (0, 1, True, False)
    assert distributed.chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert distributed.shard(list(range(7)), 1, 3) == [1, 4]
    assert distributed.my_share([3, 1, 2]) == [3, 1, 2] and distributed.gather_objects({"a": [1]}) == [{"a": [1]}]  # alone: all, one
    calls = []

    def rows(a, b):
        calls.append((a, b))
        return np.arange(a, b, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)

    got = distributed.map_rows(10, rows, chunk_size=4)
    assert calls == [(0, 4), (4, 8), (8, 10)]
    np.testing.assert_array_equal(got[:, 0], np.arange(10))
    assert distributed.map_rows(0, lambda a, b: np.zeros((0, 3))).shape == (0, 3)
    folder = distributed.write_rows(10, rows, tmp_path / "vectors", chunk_size=4)
    assert sorted(p.name for p in folder.iterdir()) == [".mmgene-output", "part-00000.npy", "part-00001.npy", "part-00002.npy", "shards.json"]
    np.testing.assert_array_equal(distributed.read_rows(folder), got)
    with pytest.raises(OutputError):
        distributed.write_rows(10, rows, folder, chunk_size=4)  # exists: only with overwrite
    # a manifest that skips rows, or names a file outside the folder, is refused
    manifest = json.loads((folder / "shards.json").read_text())
    manifest["parts"][1]["file"] = "../x.npy"
    (folder / "shards.json").write_text(json.dumps(manifest))
    with pytest.raises(InputFileError, match="consecutive parts"):
        distributed.read_rows(folder)
    with pytest.raises(ParameterError, match="chunk_size"):
        distributed.chunks(10, 0)


def test_bad_launch_settings_are_refused(monkeypatch):
    from mmgene import distributed
    from mmgene.align.config import TrainingConfig
    from mmgene.align.fit import device_arguments

    with pytest.raises(ParameterError, match="device must be one of"):
        TrainingConfig(device="tpu")
    with pytest.raises(ParameterError, match="precision must be one of"):
        TrainingConfig(precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="needs a CUDA GPU"):
            device_arguments(TrainingConfig(precision="bf16"))
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            device_arguments(TrainingConfig(device="cuda"))
        assert device_arguments(TrainingConfig())["use_cpu"] is True
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ParameterError, match="MASTER_ADDR is not set"):
        distributed.init()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(MMGeneError, match="WORLD_SIZE='two'"):
        distributed.world_size()
