"""Leave-one-dataset-out evaluation (mmgene.evaluate.cross_dataset) and `mmgene corpus cross-dataset`."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hostile import assert_refused

from mmgene.evaluate.cross_dataset import CrossDatasetConfig, _class_names, markdown, seen_terms, summarise

T_CELL, CD8_AB_T, B_CELL, NK, NEUTROPHIL = "CL:0000084", "CL:0000625", "CL:0000236", "CL:0000623", "CL:0000775"


def test_seen_terms_follow_is_a_both_ways():
    assert seen_terms([T_CELL, NK, B_CELL], [CD8_AB_T, B_CELL]) == {T_CELL, B_CELL}  # a descendant was trained
    assert seen_terms([CD8_AB_T, NEUTROPHIL], [T_CELL]) == {CD8_AB_T}  # an ancestor was trained
    assert seen_terms(["", "not an id"], [T_CELL]) == set()


def test_prompt_sets_use_ontology_names_and_the_authors_labels():
    obs = pd.DataFrame({"cell_type": ["T_CD8", "B", None, "B"]})
    ds = SimpleNamespace(
        adata=SimpleNamespace(obs=obs), keep=np.array([True, True, True, True]),
        labels=np.array(["CD8 T", "B cell", "CD8 T", "B cell"], dtype=object),
        ontology_ids=np.array([CD8_AB_T, B_CELL, CD8_AB_T, ""], dtype=object),
    )
    truth, classes, names = _class_names(ds, "ontology")
    assert list(truth) == [CD8_AB_T, B_CELL, CD8_AB_T, "B cell"]
    assert classes == ["B cell", B_CELL, CD8_AB_T] and names == ["B cell (author label)", "B cell", "CD8-positive, alpha-beta T cell"]  # one name per class
    truth, classes, names = _class_names(ds, "author")
    assert list(truth) == ["T_CD8", "B", "CD8 T", "B"] and classes == names == ["B", "CD8 T", "T_CD8"]
    truth, _, _ = _class_names(ds, "author", author_col="absent")
    assert list(truth) == list(ds.labels)


def test_prompts_say_the_held_out_datasets_species_and_tissue_only_when_told_to():
    from mmgene.evaluate.cross_dataset import CrossDatasetConfig, prompts_for

    lung = SimpleNamespace(species="mouse", spec=SimpleNamespace(tissue="lung"))
    said = prompts_for(lung, CrossDatasetConfig(origin_prompts=True))(["B cell"])[0]
    assert "a B cell from mouse lung" in said and not any("blood" in p for p in said)
    plain = prompts_for(lung, CrossDatasetConfig())(["B cell"])[0]  # annotate's default: no origin
    assert [p for p in said if "mouse lung" not in p] == plain
    no_tissue = SimpleNamespace(species="human", spec=SimpleNamespace(tissue=""))
    assert prompts_for(no_tissue, CrossDatasetConfig(origin_prompts=True))(["B cell"])[0] == plain


def _metrics(bal: float, auc: float) -> dict[str, float]:
    return {"balanced_accuracy": bal, "macro_f1": bal - 0.1, "macro_auroc": auc}


def test_summary_and_table():
    results = {
        "a": {"cells": 10, "mmgene": {"ontology": _metrics(0.8, 0.9), "author": _metrics(0.6, 0.8), "rejection": None,
                                       "mapper_classes": _metrics(0.9, 0.95)},
              "single": {"ontology": _metrics(0.5, 0.7), "author": _metrics(0.5, 0.7)}, "mapper": _metrics(0.7, float("nan")),
              "versus": {"single": {"difference": 0.3, "low": 0.1, "high": 0.5},
                         "mapper": {"difference": -0.0004, "low": -0.02, "high": 0.01}}},
        "b": {"cells": 1200, "mmgene": {"ontology": _metrics(0.6, 0.7), "author": _metrics(0.4, 0.6),
              "mixed_levels": {"exact_balanced_accuracy": 0.5, "balanced_partial_credit": 0.75},
              "rejection": {"unseen_called_unknown": 0.25, "unseen_cells": 8},
              "left_out_label": {"classes_left_out": 3, "others": {"left_out_called_unknown": 0.8, "rest_called_unknown": 0.1},
                                 "without_others": {"left_out_called_unknown": 0.5, "rest_called_unknown": 0.2}}}, "mapper": None},
    }
    summary = summarise(results)
    assert summary["mmgene/ontology"] == pytest.approx({"balanced_accuracy": 0.7, "macro_f1": 0.6, "macro_auroc": 0.8, "datasets": 2})
    assert summary["single/ontology"]["datasets"] == 1 and summary["mapper"]["datasets"] == 1
    table = markdown({"datasets": results}).splitlines()
    assert summary["mmgene/mixed_levels"] == {"exact_balanced_accuracy": 0.5, "balanced_partial_credit": 0.75, "datasets": 1}
    assert table[2] == (
        "| a | 10 | 0.800 / 0.900 | 0.500 / 0.700 | 0.700 / nan (0.900 / 0.950) "
        "| +0.300 (+0.100 to +0.500) / -0.000 (-0.020 to +0.010) | n/a | none unseen | n/a |"
    )
    assert summary["mmgene/mapper_classes"] == pytest.approx({"balanced_accuracy": 0.9, "macro_f1": 0.8, "macro_auroc": 0.95, "datasets": 1})
    assert table[3] == "| b | 1,200 | 0.600 / 0.700 | n/a | n/a | n/a / n/a | 0.500 / 0.750 | 0.25 of 8 | 0.80 / 0.10 (0.50 / 0.20) |"
    assert summary["mmgene/left_out_label"] == {
        "others": {"left_out_called_unknown": 0.8, "rest_called_unknown": 0.1},
        "without_others": {"left_out_called_unknown": 0.5, "rest_called_unknown": 0.2}, "datasets": 1,
    }


def test_proportion_error_is_the_total_variation_distance_of_the_class_shares():
    from mmgene.metrics import proportion_error

    assert proportion_error(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), 2) == 0.25
    assert proportion_error(np.array([0, 1, 2]), np.array([2, 0, 1]), 3) == 0.0  # every call wrong, the shares right
    assert proportion_error(np.array([0, 0]), np.array([1, 1]), 3) == 1.0
    assert np.isnan(proportion_error(np.array([], int), np.array([], int), 2))


def test_config_is_checked():
    with pytest.raises(ValueError, match="min_prob"):
        CrossDatasetConfig(min_prob=1.5)
    with pytest.raises(ValueError, match="others_margin"):
        CrossDatasetConfig(others_margin=-0.1)
    with pytest.raises(ValueError, match="min_left_out_cells"):
        CrossDatasetConfig(min_left_out_cells=0)


@pytest.fixture(scope="module")
def two_datasets(shared_dir):
    from mmgene.corpus import read_corpus
    from mmgene.corpus.sources import read_manifest

    specs = [s for s in read_manifest(shared_dir / "corpus" / "corpus.csv") if s.dataset in ("kang_ifnb_pbmc", "zilionis_mouse_lung")]
    return read_corpus(specs)


def test_leave_one_dataset_out_on_real_data(two_datasets, monkeypatch):
    """Hold out the mouse lung dataset, train on human PBMC (a few steps): NK cells and neutrophils
    are unseen, T cells are seen through CD4/CD8 T cells; the mapper scores only the seen classes."""
    import mmgene.evaluate.cross_dataset as module
    from mmgene.align import CorpusTrainingConfig, ModelConfig, TrainingConfig
    from mmgene.evaluate.cross_dataset import cross_dataset

    asked = []
    rejection_of = module._rejection
    monkeypatch.setattr(module, "_rejection", lambda *args: asked.append(args) or rejection_of(*args))
    report = cross_dataset(
        two_datasets, config=CrossDatasetConfig(datasets=("zilionis_mouse_lung",), reference=None),
        training=TrainingConfig(max_steps=3, eval_steps=0), balance=CorpusTrainingConfig(members=2),
        model=ModelConfig(gene_bridge=False),  # the bridge embeds every gene's text: most of the time, none of the report
    )
    entry = report["datasets"]["zilionis_mouse_lung"]
    assert entry["cells"] == 800 and entry["classes"] == 4 and "single" not in entry
    assert entry["train_seconds"] > 0  # both members' training time
    assert entry["mmgene"]["recentred"] is True  # annotate's default: 800 cells and a model that stores its training mean
    for prompt_set in ("ontology", "author"):
        metrics = entry["mmgene"][prompt_set]
        assert metrics["n"] == 800 and 0.0 <= metrics["balanced_accuracy"] <= 1.0 and 0.0 <= metrics["macro_auroc"] <= 1.0
        assert 0.0 <= metrics["proportion_error"] <= 1.0 and 0.0 <= metrics["called_unknown"] <= 1.0
        weighed = metrics["weigh_types"]  # annotate's weigh_types rule beside the default
        assert set(weighed) == {"accuracy", "balanced_accuracy", "macro_f1", "macro_auroc", "proportion_error", "called_unknown"}
        assert all(0.0 <= v <= 1.0 for v in weighed.values())
    rejection = entry["mmgene"]["rejection"]
    assert rejection["unseen_classes"] == ["natural killer cell", "neutrophil"] and rejection["unseen_cells"] == 400
    assert 0.0 <= rejection["unseen_called_unknown"] <= 1.0 and "rule" not in rejection
    model, cells, ds, seen, config = asked[0]  # the same fold model asked about B cells alone
    alone = rejection_of(model, cells, ds, {"CL:0000236"}, config)
    assert alone["rule"] == "others rule only: one seen class offered" and alone["unseen_cells"] == 600
    assert 0.0 <= alone["unseen_called_unknown"] <= 1.0 and 0.0 <= alone["seen_called_unknown"] <= 1.0
    left = entry["mmgene"]["left_out_label"]  # B, T, NK, neutrophil: none lies below another
    assert left["classes_left_out"] == 4
    for key in ("others", "without_others"):
        assert 0.0 <= left[key]["left_out_called_unknown"] <= 1.0 and 0.0 <= left[key]["rest_called_unknown"] <= 1.0
    # the others rule only adds unknown answers to annotate's rule
    assert left["others"]["left_out_called_unknown"] >= left["without_others"]["left_out_called_unknown"]
    assert left["others"]["rest_called_unknown"] >= left["without_others"]["rest_called_unknown"]
    mixed = entry["mmgene"]["mixed_levels"]  # B, T, NK, neutrophil and their direct parents
    assert mixed["labels"] == 8 and 0.0 <= mixed["exact_balanced_accuracy"] <= mixed["balanced_partial_credit"] <= 1.0
    assert entry["mapper"]["cells_scored"] == 400 and entry["mapper"]["n"] == 400  # B and T cells: the seen classes
    assert entry["mapper"]["classes_scored"] == ["CL:0000084", "CL:0000236"]
    like = entry["mmgene"]["mapper_classes"]  # mmgene asked the same two classes of the same cells
    assert like["n"] == 400 and list(like["per_class"]) == ["T cell", "B cell"] and 0.0 <= like["balanced_accuracy"] <= 1.0
    versus = entry["versus"]  # mmgene against the mapper on the same cells; no single-dataset model was asked for
    assert versus["single"] is None
    assert versus["mapper"]["difference"] == pytest.approx(like["balanced_accuracy"] - entry["mapper"]["balanced_accuracy"], abs=1e-12)
    assert versus["mapper"]["low"] <= versus["mapper"]["difference"] <= versus["mapper"]["high"]
    assert "_calls" not in json.dumps(report, default=str)  # the per-cell calls are not reported
    assert report["summary"]["mmgene/ontology"]["datasets"] == 1


def test_cli_refuses_a_corpus_of_one_dataset(tmp_path, shared_dir):
    manifest = tmp_path / "one.csv"
    manifest.write_text(
        "path,dataset,label_col,ontology_col,species,tissue\n"
        f"{shared_dir / 'corpus' / 'kang_ifnb_pbmc.h5ad'},kang,cell_type_name,cell_type_ontology_term_id,human,blood\n"
    )
    assert_refused(["corpus", "cross-dataset", manifest, "--max-steps", "2", "--out", tmp_path / "r.json"], [tmp_path], contains="at least two")


def _two_dataset_manifest(tmp_path, shared_dir):
    corpus = shared_dir / "corpus"
    manifest = tmp_path / "two.csv"
    manifest.write_text(
        "path,dataset,label_col,ontology_col,species,tissue\n"
        f"{corpus / 'kang_ifnb_pbmc.h5ad'},kang,cell_type_name,cell_type_ontology_term_id,human,blood\n"
        f"{corpus / 'zilionis_mouse_lung.h5ad'},zilionis,cell_type_name,cell_type_ontology_term_id,mouse,lung\n"
    )
    return manifest


def test_cli_refuses_unknown_dataset_names_before_training(tmp_path, shared_dir):
    manifest = _two_dataset_manifest(tmp_path, shared_dir)
    args = ["corpus", "cross-dataset", manifest, "--max-steps", "1", "--members", "1", "--out", tmp_path / "r.json"]
    line = assert_refused([*args, "--reference", "nope"], [tmp_path])
    assert line == (
        "mmgene: error: cannot train the single-dataset baseline on 'nope': the corpus has no such dataset (it has 'kang', "
        "'zilionis'). Where: option --reference. What to do: name datasets of the corpus (the dataset column of its manifest)."
    )
    line = assert_refused([*args, "--hold-out", "kang", "--hold-out", "nope"], [tmp_path])
    assert line == (
        "mmgene: error: cannot hold out 'nope': the corpus has no such dataset (it has 'kang', 'zilionis'). "
        "Where: option --hold-out. What to do: name datasets of the corpus (the dataset column of its manifest)."
    )


def test_cli_refuses_a_data_file_and_says_it_takes_a_manifest(tmp_path, shared_dir):
    data = shared_dir / "corpus" / "kang_ifnb_pbmc.h5ad"
    line = assert_refused(["corpus", "cross-dataset", data, "--out", tmp_path / "r.json"], [tmp_path, data])
    assert line == (
        "mmgene: error: cross-dataset takes a corpus manifest CSV, not a data file or folder (it has no --label-col). "
        f"Where: {data}. What to do: write a manifest CSV with the columns path, dataset, label_col, ontology_col, species, "
        "tissue and one row per dataset (paths relative to its folder), and pass it."
    )


def test_library_refuses_a_reference_the_corpus_lacks_unless_it_is_the_default():
    from mmgene.errors import ParameterError
    from mmgene.evaluate.cross_dataset import DEFAULT_REFERENCE, check_dataset_names, cross_dataset

    class Reached(Exception):
        pass

    class TwoDatasets:  # refused before any dataset is touched; touching one means the checks passed
        names = ["kang", "zilionis"]

        def __len__(self) -> int:
            return 2

        def __getitem__(self, name: str):
            raise Reached(name)

    with pytest.raises(ParameterError) as info:
        cross_dataset(TwoDatasets(), config=CrossDatasetConfig(reference="nope"))
    assert str(info.value) == (
        "cannot train the single-dataset baseline on 'nope': the corpus has no such dataset (it has 'kang', 'zilionis'). "
        "Where: CrossDatasetConfig.reference. What to do: name datasets of the corpus (the dataset column of its manifest)."
    )
    with pytest.raises(ParameterError, match="^cannot hold out 'x', 'y': the corpus has no such dataset"):
        cross_dataset(TwoDatasets(), config=CrossDatasetConfig(datasets=("x", "kang", "y", "x")))
    assert DEFAULT_REFERENCE == CrossDatasetConfig().reference == "pbmc3k"
    with pytest.raises(Reached, match="kang"):  # the default reference, absent: no baseline, and no refusal
        cross_dataset(TwoDatasets(), config=CrossDatasetConfig(datasets=("kang",), mapper=False))
    check_dataset_names(["kang", "zilionis"], TwoDatasets.names, "hold out", "here")  # known names pass


def test_a_training_class_answers_for_the_held_out_class_it_descends_from():
    from mmgene.evaluate.cross_dataset import covering_class

    assert covering_class(CD8_AB_T, [T_CELL, B_CELL]) == T_CELL
    assert covering_class(CD8_AB_T, [T_CELL, CD8_AB_T]) == CD8_AB_T
    assert covering_class(NEUTROPHIL, [T_CELL, B_CELL]) is None


def test_balanced_accuracy_difference_is_paired_and_stratified_by_class():
    from mmgene.metrics import balanced_accuracy_difference

    truth = ["a", "a", "b", "b"]
    same = balanced_accuracy_difference(truth, ["a", "b", "b", "b"], ["a", "b", "b", "b"])
    assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)  # every resample pairs the same calls
    assert same["level"] == 0.95 and same["resamples"] == 2000
    right = balanced_accuracy_difference(truth, truth, ["b", "b", "a", "a"])
    assert (right["difference"], right["low"], right["high"]) == (1.0, 1.0, 1.0)
    # a: first right twice, second once (+0.5); b: first once, second twice (-0.5)
    mixed = balanced_accuracy_difference(truth, ["a", "a", "b", "a"], ["a", "b", "b", "b"], resamples=500, seed=3)
    assert mixed["difference"] == 0.0 and mixed["low"] < 0.0 < mixed["high"]
    assert mixed == balanced_accuracy_difference(truth, ["a", "a", "b", "a"], ["a", "b", "b", "b"], resamples=500, seed=3)
    # the exact multinomial draw agrees with resampling each class's cells one by one
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    first = np.where(rng.random(400) < 0.8, y, rng.integers(0, 4, 400))
    second = np.where(rng.random(400) < 0.7, y, rng.integers(0, 4, 400))
    got = balanced_accuracy_difference(y, first, second)
    recall = lambda pred, cells: np.mean([np.mean(pred[c] == y[c]) for c in cells])  # noqa: E731
    members = [np.flatnonzero(y == k) for k in range(4)]
    assert got["difference"] == pytest.approx(recall(first, members) - recall(second, members), abs=1e-12)
    naive = [recall(first, d) - recall(second, d) for d in ([rng.choice(m, len(m)) for m in members] for _ in range(2000))]
    assert got["low"] == pytest.approx(np.quantile(naive, 0.025), abs=0.012)
    assert got["high"] == pytest.approx(np.quantile(naive, 0.975), abs=0.012)
    with pytest.raises(ValueError, match="same cells"):
        balanced_accuracy_difference(["a"], ["a", "b"], ["a"])


@pytest.mark.parametrize("settings", [{"resamples": 0}, {"resamples": 2.5}, {"level": 0}, {"level": 1.5}, {"level": 95}])
def test_balanced_accuracy_difference_refuses_an_interval_it_cannot_draw(settings):
    """resamples=0 raised IndexError; level=0 gave a zero-width "interval"; level 1.5 numpy's own error."""
    from mmgene.errors import ParameterError
    from mmgene.metrics import balanced_accuracy_difference

    name = next(iter(settings))
    with pytest.raises(ParameterError, match=f"^{name} must be"):
        balanced_accuracy_difference(["a", "b"], ["a", "b"], ["b", "b"], **settings)


def test_a_dataset_that_shares_no_gene_with_the_others_is_refused_before_training():
    """Such a dataset used to be scored (balanced accuracy 0.5, AUROC 0.5) by a model that read none of its genes."""
    from mmgene.errors import CorpusError
    from mmgene.evaluate.cross_dataset import cross_dataset

    class ThreeDatasets:
        names = ["pbmc", "lung", "odd"]
        symbols = {"pbmc": ["CD3E", "MS4A1", ""], "lung": ["CD3E", "SFTPC"], "odd": ["FOO1", "", "BAR2"]}

        def __len__(self) -> int:
            return 3

        def __getitem__(self, name: str):
            return SimpleNamespace(name=name, symbols=np.array(self.symbols[name], dtype=object))

    with pytest.raises(CorpusError) as info:
        cross_dataset(ThreeDatasets(), config=CrossDatasetConfig(datasets=("lung", "odd"), reference=None))
    assert str(info.value).startswith(
        "dataset 'odd' shares no gene with the other datasets of the corpus (2 genes with a human symbol, against 3 in the others)"
    )


def test_cli_refuses_to_write_the_report_over_a_dataset_of_the_corpus(tmp_path, shared_dir):
    """Only the manifest was checked: with --overwrite the report replaced one of the datasets it read."""
    for name in ("kang_ifnb_pbmc", "zilionis_mouse_lung"):
        (tmp_path / f"{name}.h5ad").symlink_to(shared_dir / "corpus" / f"{name}.h5ad")
    manifest = tmp_path / "two.csv"
    manifest.write_text(
        "path,dataset,label_col,ontology_col,species,tissue\n"
        "kang_ifnb_pbmc.h5ad,kang,cell_type_name,cell_type_ontology_term_id,human,blood\n"
        "zilionis_mouse_lung.h5ad,zilionis,cell_type_name,cell_type_ontology_term_id,mouse,lung\n"
    )
    target = tmp_path / "zilionis_mouse_lung.h5ad"
    args = ["corpus", "cross-dataset", manifest, "--hold-out", "kang", "--max-steps", "1", "--members", "1", "--no-mapper"]
    line = assert_refused([*args, "--out", target, "--overwrite"], [tmp_path])
    assert "the output is the input" in line and target.is_symlink()
