"""Cell Ontology definitions in label prompts (mmgene.text.prompts.definition_prompts): on by default for
a model trained on a corpus (whose captions carried them), off for one AnnData's model, as annotate,
evaluate, the leave-one-dataset-out benchmark and the CLI say."""

from __future__ import annotations

import pytest

from tiny_models import as_corpus_model, tiny_model

ALPHA = "A type A enteroendocrine cell found in the periphery of the islets of Langerhans that secretes glucagon."


@pytest.fixture(scope="module")
def cells(_pbmc68k_cached):
    return _pbmc68k_cached.copy()


@pytest.fixture(scope="module")
def model(cells, tmp_path_factory):
    """A 4-step model of one AnnData (pbmc68k_reduced)."""
    return tiny_model(cells, tmp_path_factory.mktemp("definitions") / "model", gene_bridge=False)


@pytest.fixture(scope="module")
def corpus_model(model):
    return as_corpus_model(model)


def test_definition_prompts_as_training_captions_write_them():
    from mmgene.text.prompts import definition_prompts

    assert definition_prompts("pancreatic A cell") == [f"pancreatic A cell: {ALPHA}", ALPHA]
    assert definition_prompts("pancreatic A cells") == [f"pancreatic A cell: {ALPHA}", ALPHA]  # cleaned first
    assert definition_prompts("CD4 T cells") == []  # names no term as written
    assert definition_prompts("my odd cells") == []


def test_class_prompts_add_definitions_only_when_asked_with_the_ontology():
    from mmgene.text.prompts import class_prompts

    [plain] = class_prompts(["pancreatic A cell"])
    [with_defs] = class_prompts(["pancreatic A cell"], definitions=True)
    assert with_defs == [*plain, f"pancreatic A cell: {ALPHA}", ALPHA]
    assert class_prompts(["pancreatic A cell"], ontology=False, definitions=True) == class_prompts(["pancreatic A cell"], ontology=False)
    assert class_prompts(["my odd cells"], definitions=True) == class_prompts(["my odd cells"])


def test_default_rule_a_corpus_model(model, corpus_model):
    from mmgene.query.space import GenePTSpace, uses_definitions

    assert [uses_definitions(corpus_model, s) for s in (None, True, False)] == [True, True, False]
    assert [uses_definitions(model, s) for s in (None, True, False)] == [False, True, False]
    assert uses_definitions(GenePTSpace("s"), None) is False


def test_annotate_evaluate_and_the_benchmark_say_whether_prompts_carried_definitions(model, corpus_model, cells):
    from mmgene.evaluate import evaluate
    from mmgene.evaluate.cross_dataset import CrossDatasetConfig, prompts_for
    from mmgene.query.labelling import annotate

    labels = ["B cell", "natural killer cell", "CD14-positive monocyte"]
    general, own, templated = cells.copy(), cells.copy(), cells.copy()
    annotate(general, labels, corpus_model, others=False, data_markers=False)
    annotate(own, labels, model, others=False)
    annotate(templated, labels, corpus_model, others=False, data_markers=False, prompts=["a {label}"])
    assert general.uns["mmgene"]["mmgene_label"]["definitions"] is True
    assert own.uns["mmgene"]["mmgene_label"]["definitions"] is False
    assert templated.uns["mmgene"]["mmgene_label"]["definitions"] is False  # labels taken as written
    report = evaluate(corpus_model, cells, "bulk_labels", baseline=False, marker_baseline=False, data_markers=False)
    assert report["zero_shot"]["definitions"] is True
    assert evaluate(model, cells, "bulk_labels", baseline=False, marker_baseline=False)["zero_shot"]["definitions"] is False

    class Dataset:  # what prompts_for reads of a corpus dataset
        species, spec = "human", type("Spec", (), {"tissue": "pancreas"})

    [asked] = prompts_for(Dataset(), CrossDatasetConfig())(["pancreatic A cell"])
    assert asked[-1] == ALPHA
    [without] = prompts_for(Dataset(), CrossDatasetConfig(definitions=False))(["pancreatic A cell"])
    assert ALPHA not in without and asked[: len(without)] == without


def test_cli_definitions_flag_reaches_annotate(model, cells, tmp_path):
    import anndata

    from hostile import run_cli_here

    path = tmp_path / "cells.h5ad"
    small = cells[:60].copy()
    del small.uns["mmgene"]
    small.write_h5ad(path)
    for flag, expected in (("--definitions", True), ("--no-definitions", False)):
        out = tmp_path / f"annotated{flag}.h5ad"
        done = run_cli_here("annotate", path, "--model", model.meta["path"], "--labels", "B cell", "natural killer cell", "--out", out, flag)
        assert done.returncode == 0, done.stderr
        assert anndata.read_h5ad(out).uns["mmgene"]["mmgene_label"]["definitions"] is expected


def test_a_label_of_only_punctuation_gets_no_cell_ontology_text():
    """"..." cleans to "... cell", which was looked up as the root term "cell": its name and definition
    ("A material entity of anatomical origin ...") became the label's prompts."""
    from mmgene.text.prompts import class_names, definition_prompts

    assert class_names("...") == ["... cell"] and class_names("()") == ["() cell"]
    assert definition_prompts("...") == [] and definition_prompts("?") == []


def test_greek_letters_and_ids_in_other_forms_find_their_terms():
    """"γδ T cells" lost its Greek letters and got the prompts and definition of the plain T cell."""
    from mmgene.text.ontology import find_term, normalise_term_id
    from mmgene.text.prompts import class_names, definition_prompts

    assert find_term("γδ T cells").term_id == "CL:0000798"
    assert "gamma-delta T cell" in class_names("γδ T cells") and "T lymphocyte" not in class_names("γδ T cells")
    assert definition_prompts("γδ T cells")[0].startswith("gamma-delta T cell: ")
    for form in ("CL:0000236", " cl:0000236 ", "CL_0000236", "http://purl.obolibrary.org/obo/CL_0000236"):
        assert normalise_term_id(form) == "CL:0000236"
        assert class_names(form)[0] == "B cell"
    assert [normalise_term_id(v) for v in ("CL:236", "B cell", None, 236)] == [None, None, None, None]
    assert find_term(None) is None  # was an AttributeError


def test_class_prompts_refuse_a_blank_label_and_take_one_label_as_a_string():
    from mmgene.errors import ParameterError
    from mmgene.text.prompts import class_prompts

    for blank in ("", "  ", None):
        with pytest.raises(ParameterError, match=r"label 1 \(.*\) is missing or blank"):
            class_prompts(["B cell", blank])  # its prompts were the bare templates "a ", "a cell of type "
    assert class_prompts("B cell") == class_prompts(["B cell"])  # was one class per character
