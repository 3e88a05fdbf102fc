"""A manifest's ``weight`` column: a dataset's share of training rows against the others' (issue 18: weigh
datasets, not cells; equal unless the user says otherwise)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from hostile import assert_refused, run_cli_here
from test_stream import _config, _in_memory, _key, _rows_as_trained, _stream
from test_train_corpus import HUMAN_GENES, MOUSE_GENES, _adata

HEADER = "path,dataset,label_col,ontology_col,species,tissue,weight"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two files: 24 human cells of 2 classes, 36 mouse cells of 3."""
    root = tmp_path_factory.mktemp("weighted")
    human = _adata(HUMAN_GENES, [("T", "CL:0000084", [0, 1, 2]), ("B", "CL:0000236", [3, 4])], 12, 0)
    mouse = _adata(MOUSE_GENES, [("T cells", "CL:0000625", [0, 1, 2]), ("B cells", "CL:0000236", [3, 4]), ("NK", "CL:0000623", [6, 7])], 12, 1)
    human.write_h5ad(root / "human_pbmc.h5ad")
    mouse.write_h5ad(root / "mouse_pbmc.h5ad")
    return root


def _weighted(root, human: str, mouse: str, name: str = "corpus.csv"):
    rows = [HEADER, f"human_pbmc.h5ad,human_pbmc,cell_type,cell_type_ontology_term_id,human,blood,{human}",
            f"mouse_pbmc.h5ad,mouse_pbmc,cell_type,cell_type_ontology_term_id,mouse,blood,{mouse}"]
    path = root / name
    path.write_text("\n".join(rows) + "\n")
    return path


def test_the_manifest_reads_weights_and_a_blank_weight_is_1(files):
    from mmgene.corpus import read_corpus
    from mmgene.corpus.sources import read_manifest

    specs = read_manifest(_weighted(files, "0.5", ""))
    assert [(s.dataset, s.weight) for s in specs] == [("human_pbmc", 0.5), ("mouse_pbmc", 1.0)]
    assert [s.weight for s in read_manifest(_weighted(files, " 2 ", "1e-1"))] == [2.0, 0.1]
    corpus = read_corpus(_weighted(files, "3", "1"))
    assert corpus.summary()["weight"].tolist() == [3.0, 1.0]


@pytest.mark.parametrize(("text", "shown"), [("0", "0.0"), ("-1", "-1.0"), ("nan", "nan"), ("inf", "inf"), ("1e400", "inf"), ("half", "'half'")])
def test_a_weight_that_is_not_a_positive_number_is_refused_with_its_line(files, text, shown):
    from mmgene.corpus.sources import read_manifest
    from mmgene.errors import CorpusError

    manifest = _weighted(files, "1", text, name="bad.csv")
    with pytest.raises(CorpusError) as refused:
        read_manifest(manifest)
    assert refused.value.what == f"a dataset's weight must be a number above 0, got {shown}"
    assert refused.value.where == f"line 3 of {manifest}, column 'weight'"
    assert "leave a dataset out by deleting its row" in refused.value.fix


def test_a_spec_refuses_a_bad_weight_given_in_python():
    from mmgene.corpus.sources import DatasetSpec
    from mmgene.errors import CorpusError

    assert DatasetSpec("d", "cell_type", path="x.h5ad", weight=2).weight == 2.0
    for bad in (0, -0.5, float("nan"), True, "2"):
        with pytest.raises(CorpusError, match=r"^a dataset's weight must be a number above 0, got "):
            DatasetSpec("d", "cell_type", path="x.h5ad", weight=bad)


def test_weighted_rows_round_half_to_even_and_keep_one_row():
    from mmgene.align.balance import balanced_rows, weighted_rows

    assert weighted_rows(10, [1, 3]) == [5, 15]  # the same 20 rows an epoch, shared 1 : 3
    assert weighted_rows(10, [2, 2]) == weighted_rows(10, [1, 1]) == [10, 10]  # equal weights change nothing
    assert weighted_rows(10, [0.5]) == [10]  # a lone dataset keeps its rows
    assert weighted_rows(10, [1, 1000]) == [1, 20]  # at least one row
    assert weighted_rows(7, [1, 2, 4]) == [3, 6, 12]  # 7 * (1, 2, 4) / (7 / 3), rounded
    assert weighted_rows(10, [1e308, 1e308]) == [10, 10] and weighted_rows(10, []) == []  # no overflow
    labels = [np.array([0, 0, 0, 1]), np.array([2, 3, 3, 3, 4])]
    picked = balanced_rows(labels, [5, 9], seed=1)
    assert [len(p) for p in picked] == [5, 9]
    assert np.bincount(labels[0][picked[0]]).tolist() == [3, 2]
    assert np.bincount(labels[1][picked[1]], minlength=5)[2:].tolist() == [3, 3, 3]
    same = balanced_rows(labels, 7, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(same, balanced_rows(labels, [7, 7], seed=1)))  # one count is every count
    from mmgene.errors import ParameterError

    with pytest.raises(ParameterError, match=r"^rows per dataset must be at least 1 for each of the 2 datasets, got \[5\]"):
        balanced_rows(labels, [5], seed=1)
    with pytest.raises(ParameterError, match=r"got \[5, 0\]"):
        balanced_rows(labels, [5, 0], seed=1)


def test_corpus_pairs_give_each_dataset_its_weighted_rows_and_record_the_weights(files):
    from mmgene.align.config import AlignConfig, CorpusTrainingConfig
    from mmgene.align.corpus_train import corpus_pairs
    from mmgene.corpus import read_corpus
    from mmgene.pairs.config import PairsConfig

    config = AlignConfig(pairs=PairsConfig(marker_share=0.0, panel_share=0.0))
    pairs, record = corpus_pairs(read_corpus(_weighted(files, "1", "3")), inputs=("genes",), config=config,
                                 balance=CorpusTrainingConfig(rows_per_dataset=12))
    dataset = np.array([n.split(":")[0] for n in pairs["train"]["obs_name"]])
    labels = np.asarray(pairs["train"]["label"])
    assert Counter(dataset.tolist()) == {"human_pbmc": 6, "mouse_pbmc": 18}
    assert sorted(Counter(labels[dataset == "human_pbmc"].tolist()).values()) == [3, 3]
    assert sorted(Counter(labels[dataset == "mouse_pbmc"].tolist()).values()) == [6, 6, 6]
    assert record["balance"]["rows_per_dataset"] == 12
    assert record["balance"]["dataset_weights"] == {"human_pbmc": 1.0, "mouse_pbmc": 3.0}
    unweighted, plain = corpus_pairs(read_corpus(_weighted(files, "", "")), inputs=("genes",), config=config,
                                     balance=CorpusTrainingConfig(rows_per_dataset=12))
    assert len(unweighted["train"]) == 24 and plain["balance"]["dataset_weights"] == {"human_pbmc": 1.0, "mouse_pbmc": 1.0}


def test_a_streamed_corpus_streams_the_weighted_in_memory_rows(files):
    config = _config()
    manifest = _weighted(files, "1.5", "0.5", name="stream.csv")
    memory = _in_memory(manifest, config, rows=20)
    expected = Counter(_key(r) for r in _rows_as_trained(memory["train"], config))
    stream = _stream(manifest, config, rows=20)
    assert stream.dataset_weights == {"human_pbmc": 1.5, "mouse_pbmc": 0.5}
    assert Counter(_key(r) for r in stream.train_split([])) == expected
    assert Counter(n.split(":")[0] for n in memory["train"]["obs_name"]) == {"human_pbmc": 30, "mouse_pbmc": 10}


def test_cli_corpus_info_shows_the_weight_and_a_bad_weight_exits_2_touching_nothing(files, tmp_path):
    manifest = _weighted(files, "0.5", "", name="info.csv")
    res = run_cli_here("corpus", "info", manifest)
    assert res.returncode == 0, res.stderr
    header, human, mouse = res.stdout.splitlines()[:3]
    assert header.split()[-1] == "weight" and human.split()[-1] == "0.5" and mouse.split()[-1] == "1"
    bad = _weighted(files, "0.5", "many", name="bad_cli.csv")
    out = tmp_path / "model"
    line = assert_refused(["train", "--corpus", bad, "--out", out], [files, tmp_path])
    assert line == (f"mmgene: error: a dataset's weight must be a number above 0, got 'many'. Where: line 3 of {bad}, "
                    "column 'weight'. What to do: write a positive number such as 0.5, 1 or 2 (blank in a manifest: 1); leave a "
                    "dataset out by deleting its row.")
    assert not out.exists()
