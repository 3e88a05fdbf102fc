"""Cells whose label the other datasets contradict (mmgene.corpus.consensus) and training without them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hostile import assert_refused, run_cli_here
from test_train_corpus import HUMAN_GENES, MOUSE_GENES, _adata, _manifest

T_CELL, CD8_T, B_CELL, NK, LEUKOCYTE, NEUTROPHIL = (
    "CL:0000084", "CL:0000625", "CL:0000236", "CL:0000623", "CL:0000738", "CL:0000775",
)


def test_terms_overlap_when_one_cell_can_be_both():
    from mmgene.text.ontology import term_descendants, terms_overlap

    assert terms_overlap(T_CELL, CD8_T) and terms_overlap(CD8_T, T_CELL)  # ancestor and descendant
    assert terms_overlap("CL:0000815", "CL:0000624")  # regulatory T and CD4 T share CD4+ regulatory T cells
    assert not terms_overlap("CL:0000624", CD8_T)  # CD4 and CD8 alpha-beta T cells
    assert not terms_overlap(B_CELL, T_CELL)
    assert not terms_overlap("CD8 T", CD8_T) and not terms_overlap("CL:9999999", "CL:9999999")
    assert CD8_T in term_descendants(T_CELL) and T_CELL in term_descendants(T_CELL)


def test_a_label_is_judged_only_where_the_others_can_tell_it_from_its_datasets_other_labels():
    from mmgene.corpus.consensus import _sides

    can_be, only_rival = _sides(CD8_T, [CD8_T, B_CELL], [T_CELL, B_CELL, NK])
    assert can_be.tolist() == [0] and only_rival.tolist() == [1]  # NK is neither: it is no label of the dataset
    # the others know neutrophils only as leukocytes, which B cells are too: not judged
    assert _sides(NEUTROPHIL, [NEUTROPHIL, B_CELL], [LEUKOCYTE, B_CELL]) is None
    assert _sides(NEUTROPHIL, [NEUTROPHIL, B_CELL], [B_CELL]) is None  # nothing the others know can be it


def _swapped(seed: int, swap: int):
    """CD8 T cells (markers 0-2) and B cells (3-4); the first ``swap`` T-expressing cells labelled B."""
    adata = _adata(HUMAN_GENES, [("CD8 T", CD8_T, [0, 1, 2]), ("B", B_CELL, [3, 4])], 12, seed)
    for column, value in (("cell_type", "B"), ("cell_type_ontology_term_id", B_CELL)):
        values = adata.obs[column].astype(str).to_numpy()
        values[:swap] = value
        adata.obs[column] = values
    return adata


@pytest.fixture()
def judged_manifest(tmp_path):
    first = _adata(HUMAN_GENES, [("T", T_CELL, [0, 1, 2]), ("B", B_CELL, [3, 4])], 12, 0)
    second = _adata(HUMAN_GENES, [("T", T_CELL, [0, 1, 2]), ("B", B_CELL, [3, 4])], 12, 2)
    mouse = _adata(MOUSE_GENES, [("T", T_CELL, [0, 1, 2]), ("B", B_CELL, [3, 4])], 12, 3)
    mouse.obs["cell_type"] = np.where(np.arange(mouse.n_obs) < 3, "B", mouse.obs["cell_type"].astype(str))
    mouse.obs["cell_type_ontology_term_id"] = np.where(
        np.arange(mouse.n_obs) < 3, B_CELL, mouse.obs["cell_type_ontology_term_id"].astype(str)
    )
    entries = [("first", "human", first), ("second", "human", second), ("swapped", "human", _swapped(4, 3)), ("mouse", "mouse", mouse)]
    return _manifest(tmp_path, entries)


@pytest.fixture()
def judged_corpus(judged_manifest):
    from mmgene.corpus import read_corpus

    return read_corpus(judged_manifest)


def test_the_cells_other_datasets_call_another_of_their_datasets_types_are_contradicted(judged_corpus):
    from mmgene.corpus.consensus import contradicted_cells

    found = contradicted_cells(judged_corpus)
    assert set(found) == {"first", "second", "swapped", "mouse"}
    assert np.flatnonzero(found["swapped"]).tolist() == [0, 1, 2]  # T-cell expression, labelled B
    assert not found["first"].any() and not found["second"].any()
    assert not found["mouse"].any()  # its mislabelled cells have no other mouse dataset to judge them
    assert [len(found[n]) for n in ("first", "second", "swapped", "mouse")] == [24, 24, 24, 24]


def test_training_pairs_leave_out_the_contradicted_cells_and_record_how_many(judged_corpus):
    from mmgene.align.config import AlignConfig, CorpusTrainingConfig
    from mmgene.align.corpus_train import contradicted_obs, corpus_pairs

    left_out = contradicted_obs(judged_corpus)
    assert left_out == {"first": set(), "second": set(), "swapped": {"c0", "c1", "c2"}, "mouse": set()}
    config = AlignConfig()
    kept, record = corpus_pairs(judged_corpus, inputs=["genes"], config=config, balance=CorpusTrainingConfig(), left_out=left_out)
    everything, unfiltered = corpus_pairs(judged_corpus, inputs=["genes"], config=config, balance=CorpusTrainingConfig())
    dropped = {"swapped:c0", "swapped:c1", "swapped:c2"}
    assert dropped & set(everything["train"]["obs_name"])  # some were training cells
    assert not dropped & set(kept["train"]["obs_name"])
    assert {"first", "second", "swapped", "mouse"} == {n.split(":")[0] for n in kept["train"]["obs_name"]}
    assert record["balance"]["contradicted_cells"] == {"first": 0, "second": 0, "swapped": 3, "mouse": 0}
    assert (record["balance"]["drop_contradicted"], unfiltered["balance"]["drop_contradicted"]) == (True, False)
    assert unfiltered["balance"]["contradicted_cells"] == {}


def test_cli_trains_without_the_contradicted_cells_on_request(judged_manifest, tmp_path):
    import json

    out = tmp_path / "model"
    args = ["train", "--corpus", judged_manifest, "--out", out, "--max-steps", "2", "--batch-size", "8", "--members", "1", "--no-gene-bridge"]
    res = run_cli_here(*args, "--drop-contradicted")
    assert res.returncode == 0, res.stderr
    meta = json.loads((out / "mmgene_align.json").read_text())
    assert meta["balance"]["contradicted_cells"] == {"first": 0, "second": 0, "swapped": 3, "mouse": 0}
    assert meta["balance"]["drop_contradicted"] is True
    h5ad = tmp_path / "first.h5ad"
    assert_refused(
        ["train", h5ad, "--label-col", "cell_type", "--drop-contradicted", "--out", tmp_path / "m"], [tmp_path], contains="--corpus"
    )


def test_a_reference_sample_keeps_every_class_and_fills_its_quota():
    from mmgene.corpus.consensus import balanced_sample

    labels = np.array(["a"] * 10 + ["b"] * 3 + ["c"])
    taken = {}
    for quota in (3, 5, 6, 8, 14, 20):
        rows = balanced_sample(labels, quota, np.random.default_rng(0))
        assert rows.tolist() == sorted(set(rows.tolist()))
        taken[quota] = [int((labels[rows] == c).sum()) for c in "abc"]
    # an equal share each, a small class's spare share to the others, what is left over to the largest first
    assert taken == {3: [1, 1, 1], 5: [2, 2, 1], 6: [3, 2, 1], 8: [4, 3, 1], 14: [10, 3, 1], 20: [10, 3, 1]}
    again = balanced_sample(labels, 8, np.random.default_rng(0))
    assert again.tolist() == balanced_sample(labels, 8, np.random.default_rng(0)).tolist()


def test_a_bounded_consensus_reads_fewer_cells_in_fewer_regressions_and_finds_the_same_cells(judged_corpus, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from mmgene.corpus.consensus import ConsensusConfig, contradicted_cells

    fitted: list[tuple[int, int]] = []
    fit = LogisticRegression.fit

    def counted(self, X, y, sample_weight=None):
        fitted.append(X.shape)
        return fit(self, X, y, sample_weight=sample_weight)

    monkeypatch.setattr(LogisticRegression, "fit", counted)
    whole = contradicted_cells(judged_corpus)
    # one regression per human dataset, on every cell of the other two
    assert [rows for rows, _ in fitted] == [48, 48, 48]
    fitted.clear()
    chunked = contradicted_cells(judged_corpus, ConsensusConfig(chunk_cells=5))
    assert all(np.array_equal(whole[n], chunked[n]) for n in whole)
    fitted.clear()
    bounded = contradicted_cells(judged_corpus, ConsensusConfig(reference_cells=24, max_groups=2, chunk_cells=7))
    # groups dealt by name: (first, swapped) judged by 12 of second's cells, second by 12 of first's and 12 of
    # swapped's (one sample a dataset, sized for the regression that learns from two)
    assert [rows for rows, _ in fitted] == [12, 24]
    assert np.flatnonzero(bounded["swapped"]).tolist() == [0, 1, 2]
    assert not bounded["first"].any() and not bounded["second"].any() and not bounded["mouse"].any()


def _judging_worker(rank: int, port: int, manifest: str, out: str) -> None:
    """Rank ``rank`` of two: judge the corpus (whole, bounded to two groups, then inside
    ``distributed.local()``) and write what it fitted and found."""
    import contextlib
    import json

    from sklearn.linear_model import LogisticRegression
    from test_distributed import _join

    _join(rank, 2, port)
    from mmgene.corpus import read_corpus
    from mmgene.corpus.consensus import ConsensusConfig, contradicted_cells

    fitted: list[int] = []
    fit = LogisticRegression.fit
    LogisticRegression.fit = lambda self, X, y, sample_weight=None: fitted.append(len(X)) or fit(self, X, y, sample_weight=sample_weight)
    from mmgene import distributed

    corpus = read_corpus(manifest)
    report = {}
    for name, config in (("whole", None), ("bounded", ConsensusConfig(reference_cells=24, max_groups=2, chunk_cells=7)), ("local", None)):
        fitted.clear()
        with distributed.local() if name == "local" else contextlib.nullcontext():
            found = contradicted_cells(corpus, config)
        report[name] = {"fitted": list(fitted), "found": {n: np.flatnonzero(v).tolist() for n, v in found.items()}}
    Path(out, f"{rank}.json").write_text(json.dumps(report))


def test_launched_ranks_share_the_regressions_out_and_all_get_every_verdict(judged_manifest, tmp_path):
    """Two ranks (gloo): the groups are dealt one by one (rank 0: first and swapped, rank 1: second; bounded,
    rank 0 the group (first, swapped), rank 1 second's), and both find what one process finds; inside
    ``distributed.local()`` each rank judges everything itself."""
    import json

    pytest.importorskip("torch")
    from test_distributed import _spawn

    from mmgene.corpus import read_corpus
    from mmgene.corpus.consensus import ConsensusConfig, contradicted_cells

    _spawn(_judging_worker, str(judged_manifest), str(tmp_path))
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    assert [r["whole"]["fitted"] for r in ranks] == [[48, 48], [48]]
    assert [r["bounded"]["fitted"] for r in ranks] == [[12], [24]]
    assert [r["local"]["fitted"] for r in ranks] == [[48, 48, 48], [48, 48, 48]]
    assert ranks[0]["local"]["found"] == ranks[1]["local"]["found"] == ranks[0]["whole"]["found"]
    corpus = read_corpus(judged_manifest)
    for name, config in (("whole", None), ("bounded", ConsensusConfig(reference_cells=24, max_groups=2, chunk_cells=7))):
        alone = {n: np.flatnonzero(v).tolist() for n, v in contradicted_cells(corpus, config).items()}
        assert alone == {"first": [], "second": [], "swapped": [0, 1, 2], "mouse": []}
        assert ranks[0][name]["found"] == ranks[1][name]["found"] == alone


@pytest.mark.parametrize("field, value", [("max_groups", 1), ("reference_cells", 0), ("chunk_cells", 0), ("top_genes", 1.5)])
def test_a_consensus_config_refuses_limits_it_cannot_keep(field, value):
    from mmgene.corpus.consensus import ConsensusConfig
    from mmgene.errors import ParameterError

    with pytest.raises(ParameterError, match=f"{field} must be a whole number"):
        ConsensusConfig(**{field: value})


def test_a_streamed_corpus_is_judged_alike_and_trains_without_the_same_rows(judged_manifest, tmp_path):
    from collections import Counter

    from test_stream import _key, _rows_as_trained

    from mmgene.align.config import AlignConfig, CorpusTrainingConfig, TrainingConfig
    from mmgene.align.corpus_train import contradicted_obs, corpus_pairs
    from mmgene.align.stream_train import CorpusStream, train_stream
    from mmgene.corpus import CorpusOptions, read_corpus
    from mmgene.corpus.consensus import ConsensusConfig
    from mmgene.pairs.stream_config import StreamConfig

    left_out = contradicted_obs(read_corpus(judged_manifest))
    backed = read_corpus(judged_manifest, CorpusOptions(backed=True))
    assert all(ds.adata.isbacked for ds in backed)
    assert contradicted_obs(backed, ConsensusConfig(chunk_cells=5)) == left_out  # read from disk 5 cells at a time
    config = AlignConfig()
    memory, _ = corpus_pairs(read_corpus(judged_manifest), inputs=["genes"], config=config, balance=CorpusTrainingConfig(), left_out=left_out)
    stream = CorpusStream(
        backed, inputs=["genes"], config=config, balance=CorpusTrainingConfig(), stream=StreamConfig(chunk_size=7), left_out=left_out
    )
    rows = list(stream.train_split([]))
    assert Counter(_key(r) for r in rows) == Counter(_key(r) for r in _rows_as_trained(memory["train"], config))
    assert not {"swapped:c0", "swapped:c1", "swapped:c2"} & {r["obs_name"] for r in rows}

    model = train_stream(
        backed, training=TrainingConfig(max_steps=2, batch_size=8), balance=CorpusTrainingConfig(drop_contradicted=True),
        stream=StreamConfig(chunk_size=7), out=tmp_path / "streamed",
    )
    assert model.meta["balance"]["contradicted_cells"] == {"first": 0, "second": 0, "swapped": 3, "mouse": 0}
    assert model.meta["balance"]["drop_contradicted"] is True


def test_launched_ranks_train_a_streamed_corpus_without_the_contradicted_cells(judged_manifest, tmp_path):
    """``torchrun --nproc_per_node 2 -m mmgene train --corpus M --stream --drop-contradicted``: the ranks judge
    their shares, both leave out the same cells (else their lanes would differ), each reads its own lane's
    blocks only, and rank 0 writes the model. (test_stream launches the same under ``accelerate launch``.)"""
    import json
    import os
    import subprocess
    import sys

    from test_stream import LAUNCHERS, LOGGING_MMGENE

    inputs = {p.name for p in tmp_path.iterdir()}  # the manifest and its files
    (tmp_path / "mmgene_logging.py").write_text(LOGGING_MMGENE)
    out = tmp_path / "model"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MMGENE_QUIET": "1", "READ_LOG": str(tmp_path / "reads")}
    command = [sys.executable, *LAUNCHERS["torchrun"], str(tmp_path / "mmgene_logging.py")]
    command += ["train", "--corpus", str(judged_manifest), "--stream", "--drop-contradicted", "--chunk-size", "7", "--eval-cells", "0"]
    command += ["--out", str(out), "--max-steps", "2", "--batch-size", "8", "--no-gene-bridge", "--gene-dim", "16", "--dim", "16"]
    command += ["--hidden", "32", "--device", "cpu"]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((out / "mmgene_align.json").read_text())
    assert meta["balance"]["contradicted_cells"] == {"first": 0, "second": 0, "swapped": 3, "mouse": 0}
    assert meta["run"]["steps"] == 2
    logs = [[json.loads(line) for line in (tmp_path / f"reads.{r}").read_text().splitlines()] for r in range(2)]
    lanes = [[e["lanes"] for e in log if "lanes" in e] for log in logs]
    assert lanes[0][0] == [0] and lanes[1][0] == [1] and all(e.get("world", 2) == 2 for log in logs for e in log)
    blocks = [{tuple(e["block"]) for e in log if "block" in e} for log in logs]
    assert blocks[0] and blocks[1] and not blocks[0] & blocks[1]  # nothing is read once and sent out
    assert sorted({p.name for p in tmp_path.iterdir()} - inputs) == ["mmgene_logging.py", "model", "reads.0", "reads.1"]


def test_a_census_corpus_is_judged_alike_from_its_soma_experiments(tmp_path):
    pytest.importorskip("tiledbsoma")
    import pandas as pd
    import tiledbsoma.io
    from test_stream import HUMAN_GENES as STREAM_GENES
    from test_stream import _adata as stream_adata

    from mmgene.corpus import CensusQuery, CorpusOptions, DatasetSpec, read_corpus
    from mmgene.corpus.consensus import ConsensusConfig, contradicted_cells
    from mmgene.corpus.soma_rows import SomaRows

    specs = []
    for k in range(3):
        adata = stream_adata(STREAM_GENES, [("T", T_CELL, [0, 1, 10]), ("B", B_CELL, [3, 4]), ("NK", NK, [6, 7])], 14, k)[:-1]
        labels = adata.obs["cell_type"].astype(str).to_numpy()
        ids = adata.obs["cell_type_ontology_term_id"].astype(str).to_numpy()
        if k == 2:  # three T cells labelled B
            labels[:3], ids[:3] = "B", B_CELL
        adata.obs = pd.DataFrame(
            {"dataset_id": f"d{k}", "assay": "10x", "cell_type": labels, "cell_type_ontology_term_id": ids,
             "tissue_general": "blood", "donor_id": "x"},
            index=adata.obs_names,
        )
        adata.var = pd.DataFrame({"feature_name": STREAM_GENES}, index=STREAM_GENES)
        tiledbsoma.io.from_anndata(str(tmp_path / f"experiment{k}"), adata, measurement_name="RNA")
        query = CensusQuery("cell_type in ['T', 'B', 'NK']", uri=str(tmp_path / f"experiment{k}"))
        specs.append(DatasetSpec(f"census{k}", "cell_type", ontology_col="cell_type_ontology_term_id", census=query))
    in_memory = contradicted_cells(read_corpus(specs))
    with read_corpus(specs, CorpusOptions(backed=True)) as backed:
        assert all(isinstance(ds.adata, SomaRows) for ds in backed)
        from_disk = contradicted_cells(backed, ConsensusConfig(chunk_cells=10))
    assert {n: np.flatnonzero(v).tolist() for n, v in from_disk.items()} == {n: np.flatnonzero(v).tolist() for n, v in in_memory.items()}
    assert np.flatnonzero(from_disk["census2"]).tolist() == [0, 1, 2]  # the T cells labelled B, and no other
