"""Leave-one-dataset-out evaluation: bad input refused before training, and figures that stay honest
when a held-out dataset has unseen classes only, one class in a prompt set, or cells without an id.
Nothing here trains a model: training is replaced by a stand-in that fails the test if reached."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hostile import assert_refused

from mmgene.errors import ParameterError
from mmgene.evaluate.config import CrossDatasetConfig

T_CELL, CD8_AB_T, B_CELL, NK = "CL:0000084", "CL:0000625", "CL:0000236", "CL:0000623"


class Reached(Exception):
    """Training (or data) was reached: the checks before it let the input through."""


@pytest.fixture()
def no_training(monkeypatch):
    import mmgene.align

    def refuse(*args, **kwargs):
        raise Reached("train_corpus")

    monkeypatch.setattr(mmgene.align, "train_corpus", refuse)


class NamesOnly:
    """A corpus whose datasets may not be touched: a refusal must come from the names alone."""

    def __init__(self, *names: str) -> None:
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str):
        raise Reached(name)


def _dataset(ids: list[str], labels: list[str] | None = None) -> SimpleNamespace:
    labels = labels or [i or "mystery" for i in ids]
    return SimpleNamespace(
        adata=SimpleNamespace(obs=pd.DataFrame({"cell_type": labels})), keep=np.ones(len(ids), dtype=bool),
        labels=np.array(labels, dtype=object), ontology_ids=np.array(ids, dtype=object),
        species="human", spec=SimpleNamespace(tissue="blood"),
    )


def test_library_refuses_a_dataset_named_twice_a_text_and_a_corpus_of_one_before_any_data():
    from mmgene.evaluate.cross_dataset import cross_dataset

    with pytest.raises(ParameterError) as info:
        cross_dataset(NamesOnly("kang", "lung"), config=CrossDatasetConfig(datasets=("kang", "lung", "kang"), reference=None))
    assert str(info.value) == (
        "'kang' is named more than once among the datasets to hold out. Where: CrossDatasetConfig.datasets. "
        "What to do: name each dataset once."
    )
    with pytest.raises(ParameterError, match=r"^the datasets to hold out must be a sequence of names, got the text 'kang'"):
        cross_dataset(NamesOnly("kang", "lung"), config=CrossDatasetConfig(datasets="kang", reference=None))
    with pytest.raises(ParameterError) as info:
        cross_dataset(NamesOnly("kang"), config=CrossDatasetConfig(reference=None))
    assert str(info.value) == (
        "cannot hold out a dataset of a corpus of 1 ('kang'): no dataset is left to train on. "
        "Where: CrossDatasetConfig.datasets. What to do: name datasets of a corpus that has at least two."
    )


def _manifest(tmp_path, shared_dir):
    corpus = shared_dir / "corpus"
    manifest = tmp_path / "two.csv"
    manifest.write_text(
        "path,dataset,label_col,ontology_col,species,tissue\n"
        f"{corpus / 'kang_ifnb_pbmc.h5ad'},kang,cell_type_name,cell_type_ontology_term_id,human,blood\n"
        f"{corpus / 'zilionis_mouse_lung.h5ad'},lung,cell_type_name,cell_type_ontology_term_id,mouse,lung\n"
    )
    return manifest


def test_cli_refuses_a_dataset_held_out_twice_before_training(tmp_path, shared_dir, no_training):
    """It was trained and scored twice, the second fold's figures replacing the first's."""
    manifest = _manifest(tmp_path, shared_dir)
    (tmp_path / "r.json").write_text("{}\n")
    line = assert_refused(
        ["corpus", "cross-dataset", manifest, "--hold-out", "kang", "--hold-out", "kang", "--out", tmp_path / "new.json"],
        [tmp_path],
    )
    assert line == (
        "mmgene: error: 'kang' is named more than once among the datasets to hold out. Where: option --hold-out. "
        "What to do: name each dataset once."
    )


def test_cli_refuses_a_report_path_that_is_an_empty_folder_before_training(tmp_path, shared_dir, no_training):
    """An empty folder passed the output check and was refused only after every fold had trained."""
    manifest = _manifest(tmp_path, shared_dir)
    (tmp_path / "reports").mkdir()
    line = assert_refused(["corpus", "cross-dataset", manifest, "--out", tmp_path / "reports", "--overwrite"], [tmp_path])
    assert line == (
        f"mmgene: error: the output is a file, but a folder of that name exists. Where: {tmp_path / 'reports'}. "
        "What to do: choose a file path, e.g. inside that folder."
    )
    assert (tmp_path / "reports").is_dir()


def test_unseen_classes_are_reported_when_no_seen_class_can_be_offered():
    """The kidney and fetal neocortex of the shared corpus (one seen class each) read 'none unseen'."""
    from mmgene.evaluate.cross_dataset import _rejection, _unseen_text

    ds = _dataset([NK, NK, T_CELL, B_CELL])
    all_unseen = _rejection(None, None, ds, set(), CrossDatasetConfig())
    assert all_unseen == {
        "unseen_classes": ["B cell", "T cell", "natural killer cell"], "unseen_cells": 4, "cells_without_id": 0,
        "unseen_called_unknown": None, "seen_called_unknown": None, "unscored": "no seen class to offer",
    }
    assert _unseen_text(all_unseen) == "n/a of 4 (no seen class to offer)"
    saved = json.loads(json.dumps(all_unseen))  # a report read back from its JSON
    assert _unseen_text(saved) == "n/a of 4 (no seen class to offer)"


def test_one_seen_class_is_offered_alone_and_only_the_others_rule_rejects(monkeypatch):
    """The kidney and fetal neocortex have one seen class each: their unseen cells went unmeasured. One
    label has no p_max/z rule (its softmax is 1 everywhere; its z-scores reject half the cells), so
    the rate is the others rule's, and says so."""
    import mmgene.evaluate.cross_dataset as module

    ds = _dataset([NK, NK, T_CELL, B_CELL, B_CELL])
    offered = []

    def unknown_calls(model, cells, dataset, classes, config):
        offered.append([c for c, _ in classes])
        return None, np.array([True, False, True, False, True])

    monkeypatch.setattr(module, "_unknown_calls", unknown_calls)
    got = module._rejection(None, None, ds, {B_CELL}, CrossDatasetConfig())
    assert offered == [[B_CELL]]
    assert got == {
        "unseen_classes": ["T cell", "natural killer cell"], "unseen_cells": 3, "cells_without_id": 0,
        "unseen_called_unknown": 2 / 3, "seen_called_unknown": 0.5, "rule": "others rule only: one seen class offered",
    }
    assert module._unseen_text(got) == "0.67 of 3 (others rule only: one seen class offered)"


def test_one_offered_class_has_no_p_z_rule(monkeypatch):
    """Its softmax is 1 for every cell and its z-scores would call the less-like half unknown."""
    import mmgene.evaluate.cross_dataset as module

    sims = np.array([[0.9], [0.1], [0.5], [0.2]])
    monkeypatch.setattr(module, "_similarities", lambda model, cells, names, *rest: SimpleNamespace(
        similarities=sims, standardised=lambda **kw: (sims - sims.mean(0)) / sims.std(0)
    ))
    lead = np.array([-0.1, 0.3, 0.0, 0.05])
    monkeypatch.setattr("mmgene.query.others.nearest_other_for", lambda *a: SimpleNamespace(rejects=lambda m: lead > m))
    config = CrossDatasetConfig()
    by_rule, by_others = module._unknown_calls(None, np.zeros((4, 3)), _dataset([B_CELL] * 4), [(B_CELL, "B cell")], config)
    assert by_rule is None
    assert by_others.tolist() == [False, True, False, True]  # beaten by more than the margin


def test_cells_without_an_ontology_id_are_neither_seen_nor_unseen(monkeypatch):
    """They counted as unseen (a corpus without ontology ids had every class 'unseen') and their
    'unknown' calls entered the unseen rate."""
    import mmgene.evaluate.cross_dataset as module

    ds = _dataset([B_CELL, B_CELL, CD8_AB_T, CD8_AB_T, NK, NK, "", ""])
    offered = []

    def unknown_calls(model, cells, dataset, classes, config):
        offered.append([c for c, _ in classes])
        by_rule = np.array([False, False, False, True, True, False, True, True])
        return by_rule, np.zeros(8, dtype=bool)

    monkeypatch.setattr(module, "_unknown_calls", unknown_calls)
    got = module._rejection(None, None, ds, {B_CELL, CD8_AB_T}, CrossDatasetConfig())
    assert offered == [[B_CELL, CD8_AB_T]]
    assert got == {
        "unseen_classes": ["natural killer cell"], "unseen_cells": 2, "cells_without_id": 2,
        "unseen_called_unknown": 0.5, "seen_called_unknown": 0.25,
    }
    assert module._unseen_text(got) == "0.50 of 2; 2 cells without a Cell Ontology id"
    no_ids = module._rejection(None, None, _dataset(["", "", ""], ["a", "b", "b"]), set(), CrossDatasetConfig())
    assert no_ids["unseen_cells"] == 0 and no_ids["cells_without_id"] == 3 and no_ids["unseen_called_unknown"] is None


def test_a_prompt_set_of_one_class_is_not_scored_as_perfect(monkeypatch):
    """Two author labels of one Cell Ontology id: one label answered every cell, balanced accuracy 1.0."""
    import mmgene.evaluate.cross_dataset as module

    monkeypatch.setattr(module, "_similarities", lambda model, cells, names, *rest: SimpleNamespace(
        similarities=np.ones((len(cells), len(names))), standardised=lambda **kw: np.ones((len(cells), len(names)))
    ))
    ds = _dataset([CD8_AB_T] * 4, ["CD8 T", "CD8 T", "T_CD8", "T_CD8"])
    got = module._zero_shot(None, np.zeros((4, 3)), ds, "ontology", CrossDatasetConfig())
    assert got["n"] == 4 and np.isnan(got["balanced_accuracy"]) and np.isnan(got["macro_auroc"])
    assert got["unscored"] == (
        "1 class ('CD8-positive, alpha-beta T cell'): a question with fewer than two labels measures nothing"
    )
    from mmgene.evaluate.report import report_json

    assert json.loads(report_json(got))["balanced_accuracy"] is None  # null in a saved report, never NaN
    author = module._zero_shot(None, np.zeros((4, 3)), ds, "author", CrossDatasetConfig())
    assert "unscored" not in author and author["n"] == 4  # two author labels: scored


def test_the_summary_counts_only_datasets_that_were_scored():
    from mmgene.evaluate.cross_dataset import markdown, summarise

    def figures(bal: float) -> dict[str, float]:
        return {"balanced_accuracy": bal, "macro_f1": bal, "macro_auroc": bal}

    unscored = {**figures(float("nan")), "unscored": "1 class ('x'): a question with fewer than two labels measures nothing"}
    results = {
        "a": {"cells": 10, "mmgene": {"ontology": figures(0.8), "author": figures(0.6), "rejection": None}, "mapper": None},
        "b": {"cells": 20, "mmgene": {"ontology": unscored, "author": figures(0.4), "rejection": None}, "mapper": None,
              "mapper_unscored": "it can name 0 of the held-out dataset's 1 Cell Ontology classes, fewer than two"},
    }
    summary = summarise(results)
    assert summary["mmgene/ontology"] == {"balanced_accuracy": 0.8, "macro_f1": 0.8, "macro_auroc": 0.8, "datasets": 1}
    assert summary["mmgene/author"] == pytest.approx(
        {"balanced_accuracy": 0.5, "macro_f1": 0.5, "macro_auroc": 0.5, "datasets": 2}
    )
    row = markdown({"datasets": results}).splitlines()[3]
    assert row.startswith(
        "| b | 20 | n/a (fewer than two classes) | n/a | n/a (it can name 0 of the held-out dataset's 1 Cell Ontology classes, "
        "fewer than two) |"
    )


def test_mapper_says_why_it_scores_nothing_when_it_can_name_no_class(shared_dir):
    """Trained on PBMC, the fetal neocortex has no class the mapper can name: it said nothing (None)."""
    from mmgene.corpus import read_corpus
    from mmgene.corpus.sources import read_manifest
    from mmgene.evaluate.cross_dataset import _mapper

    wanted = ("pbmc68k_reduced", "camp_fetal_neocortex")
    corpus = read_corpus([s for s in read_manifest(shared_dir / "corpus" / "corpus.csv") if s.dataset in wanted])
    got = _mapper([corpus["pbmc68k_reduced"]], corpus["camp_fetal_neocortex"])
    assert got == (None, "it can name 0 of the held-out dataset's 3 Cell Ontology classes, fewer than two")


def test_the_report_records_the_seeds_and_the_mappers_silence(monkeypatch):
    """The training seeds were in no report: a figure could not be traced to the models that gave it."""
    import mmgene.align
    import mmgene.evaluate.cross_dataset as module
    from mmgene.align.config import AlignConfig, TrainingConfig

    def ensemble(seed: int) -> SimpleNamespace:
        members = [SimpleNamespace(config=AlignConfig(training=TrainingConfig(seed=seed + k))) for k in range(2)]
        return SimpleNamespace(members=members, config=members[0].config, meta={"train_seconds": 1.0})

    trained = []

    def train_corpus(corpus, **kwargs):
        trained.append(corpus.names)
        return ensemble(kwargs["training"].seed)

    datasets = {
        n: SimpleNamespace(
            name=n, symbols=np.array(["CD3E", "MS4A1"], dtype=object), ontology_ids=np.array([B_CELL, NK], dtype=object),
            n_cells=2, classes=["B", "NK"],
        )
        for n in ("kang", "lung")
    }
    corpus = type("Two", (), {"names": list(datasets), "orthology": None, "__len__": lambda self: 2,
                              "__getitem__": lambda self, n: datasets[n]})()
    monkeypatch.setattr(mmgene.align, "train_corpus", train_corpus)
    monkeypatch.setattr(module, "_subset", lambda corpus, names: SimpleNamespace(names=list(names)))
    monkeypatch.setattr(module, "_mapper", lambda train, held: (None, "no class"))
    figures = {"balanced_accuracy": 0.5, "macro_f1": 0.5, "macro_auroc": 0.5}
    scored = {"ontology": figures, "author": figures, "rejection": None}
    monkeypatch.setattr(module, "_evaluate_model", lambda *args, **kwargs: scored)
    report = module.cross_dataset(
        corpus, config=CrossDatasetConfig(datasets=("lung",), reference="kang"), training=TrainingConfig(seed=5)
    )
    assert trained == [["kang"], ["kang"]]  # the single-dataset baseline, then the fold without lung
    assert report["training"]["seeds"] == [5, 6] and report["training"]["training"]["seed"] == 5
    assert report["training"]["bootstrap_seed"] == 0
    entry = report["datasets"]["lung"]
    assert entry["seeds"] == [5, 6] and entry["mapper"] is None and entry["mapper_unscored"] == "no class"
