"""Hierarchy-aware answers: a parent's score covers its descendants (issue #18, item 4)."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest

from mmgene.errors import ParameterError
from mmgene.query import annotate
from mmgene.text.hierarchy import (
    LabelHierarchy,
    balanced_partial_credit,
    deepest_confident,
    expansions,
    inclusive,
    partial_credit,
    resolve_terms,
)
from mmgene.text.ontology import term_parents

T_CELL, CD4, CD8, B_CELL, NK, MATURE_AB_T, LEUKOCYTE = (
    "CL:0000084", "CL:0000624", "CL:0000625", "CL:0000236", "CL:0000623", "CL:0000791", "CL:0000738",
)

#: the fake space's text axes: a text is the unit vector of the name it equals (else the last axis)
AXES = ["CD4-positive, alpha-beta T cell", "CD8-positive, alpha-beta T cell", "B cell", "T cell", "natural killer cell"]


class FakeSpace:
    """A joint space whose training classes are CD4 T, CD8 T and B cells, and whose cells lie on one axis each."""

    name = "fake"
    meta = {"classes": AXES[:3], "class_ids": [CD4, CD8, B_CELL]}

    def encode_text(self, texts):
        out = np.zeros((len(texts), len(AXES) + 1), np.float32)
        for row, text in enumerate(texts):
            out[row, AXES.index(text) if text in AXES else len(AXES)] = 1.0
        return out

    def encode_cells(self, adata):
        return np.asarray(adata.obsm["fake"], np.float32)

    def describe(self):
        return {"name": self.name}


@pytest.fixture
def cells():
    """40 cells, ten each on the CD4 T, CD8 T, B and NK axes."""
    groups = [0, 1, 2, 4]
    vectors = np.zeros((40, len(AXES) + 1), np.float32)
    for k, axis in enumerate(groups):
        vectors[k * 10 : (k + 1) * 10, axis] = 1.0
    adata = anndata.AnnData(np.zeros((40, 1), np.float32), obs=pd.DataFrame(index=[f"c{i}" for i in range(40)]))
    adata.obsm["fake"] = vectors
    return adata


def _answers(adata):
    labels = adata.obs["mmgene_label"].astype(str).to_numpy()
    return [sorted(set(labels[k * 10 : (k + 1) * 10])) for k in range(4)]


def test_resolve_terms_by_name_and_given_ids():
    assert resolve_terms(["T cell", "NK cells", "my cluster 3"]) == [T_CELL, NK, ""]
    assert resolve_terms(["a", "b"], [CD8, ""]) == [CD8, ""]
    with pytest.raises(ParameterError, match="not a Cell Ontology id"):
        resolve_terms(["a"], ["T cell"])
    with pytest.raises(ParameterError, match="1 term ids for 2 labels"):
        resolve_terms(["a", "b"], [CD8])


def test_label_terms_read_what_users_type_through_the_harmonisers_rules_only():
    from mmgene.query.terms import label_terms

    typed = ["CD4 T cells", "CD14+ Monocytes", "T_CD8", "B cells", "proliferating cells", "my cluster 3", ""]
    assert resolve_terms(typed) == ["", "", "", B_CELL, "", "", ""]  # names and synonyms alone
    # rules (abbreviations, marker spellings) read the first three; a similarity guess ("proliferating
    # cells" is closest to "cycling T cell") is not taken, nor is a label that names no cell type
    assert label_terms(typed) == [CD4, "CL:0001054", CD8, B_CELL, "", "", ""]
    assert label_terms(["CD4 T cells", "x"], ["", NK]) == ["", NK]  # given ids win, '' included
    assert label_terms(["CD4 Naive", "CD8 Naive"]) == ["CL:0000895", "CL:0000900"]  # a rule, not a guess


def test_chosen_terms_override_some_labels_and_refuse_what_is_no_label_or_term():
    from mmgene.query.terms import chosen_terms

    labels = ["CD4 T cells", "alpha", "my cluster"]
    # "alpha" alone is a synonym of a retinal ganglion cell; the user says it is the pancreatic A cell
    assert chosen_terms(labels, {}) == [CD4, "CL:0004117", ""]
    assert chosen_terms(labels, {"alpha": "CL:0000171", "CD4 T cells": ""}) == ["", "CL:0000171", ""]
    with pytest.raises(ParameterError, match="'beta' is not one of the labels") as err:
        chosen_terms(labels, {"beta": "CL:0000169"}, "option --term")
    assert err.value.where == "option --term"
    with pytest.raises(ParameterError, match="the term of 'alpha': .*unknown to cellxgene-ontology-guide"):
        chosen_terms(labels, {"alpha": "CL:9999999"})
    with pytest.raises(ParameterError, match="the term of 'alpha': 'pancreas' is not a Cell Ontology id"):
        chosen_terms(labels, {"alpha": "pancreas"})


def test_annotate_reads_a_typed_label_as_its_term_so_its_subtypes_are_not_others(cells):
    """"CD4 T cells" is the model's CD4-positive, alpha-beta T cell: the model's CD8 T cells stay others,
    and the label's term is recorded."""
    annotate(cells, ["CD4 T cells", "B cells", "NK cells"], FakeSpace(), prompts=["{label}"], min_z=None, min_prob=0.0)
    record = cells.uns["mmgene"]["mmgene_label"]
    assert record["term_ids"] == [CD4, B_CELL, NK]
    assert record["others"] == ["CD8-positive, alpha-beta T cell"]  # not the asked CD4 T cell class
    assert _answers(cells)[1] == ["unknown"]  # the CD8 T cells: a trained class outside the question


def test_annotate_keeps_a_label_the_caller_gave_no_term_out_of_the_others_rule_with_or_without_hierarchy(cells):
    """term_ids '' means no term: "T cells" is then not read as T cell again, so the model's CD4 and CD8
    T cells are others; read (no term_ids), it covers them and there are none."""
    for hierarchy in (True, False):
        annotate(cells, ["T cells", "B cells", "NK cells"], FakeSpace(), term_ids=["", B_CELL, NK], hierarchy=hierarchy,
                 prompts=["{label}"], min_z=None, min_prob=0.0)
        assert cells.uns["mmgene"]["mmgene_label"]["others"] == AXES[:2]
        annotate(cells, ["T cells", "B cells", "NK cells"], FakeSpace(), hierarchy=hierarchy, prompts=["{label}"], min_z=None, min_prob=0.0)
        assert cells.uns["mmgene"]["mmgene_label"]["others"] == []


def test_label_terms_take_the_cells_species_and_tissue_as_the_harmonisers_hint(cells):
    from mmgene.query.terms import label_terms
    from mmgene.text.origin import Origin

    labels = ["alpha", "beta", "CD4 T cells"]
    # without a hint "alpha" is a synonym of the mouse alpha retinal ganglion cell and "beta" only a guess
    assert label_terms(labels) == ["CL:0004117", "", CD4]
    assert label_terms(labels, origin=Origin("human")) == ["", "", CD4]  # no mouse-only term, no rule
    assert label_terms(labels, origin=Origin("human", "pancreas")) == ["CL:0000171", "CL:0000169", CD4]
    annotate(cells, labels, FakeSpace(), prompts=["{label}"], min_z=None, min_prob=0.0, species="human", tissue="pancreas")
    assert cells.uns["mmgene"]["mmgene_label"]["term_ids"] == ["CL:0000171", "CL:0000169", CD4]


def test_label_hierarchy_finds_the_labels_below_each_label():
    tree = LabelHierarchy.of(["leukocyte", "T cell", "CD8", "B cell"], [LEUKOCYTE, T_CELL, CD8, B_CELL])
    assert tree.below == ((1, 2, 3), (2,), (), ())
    assert tree.nested
    assert not LabelHierarchy.of(["B", "NK"], [B_CELL, NK]).nested
    assert not LabelHierarchy.of(["x", "y"], ["", ""]).nested


def test_expansions_take_the_vocabulary_below_a_label_but_not_below_a_listed_descendant():
    vocab = [("CD4 T", CD4), ("CD8 T", CD8), ("B", B_CELL), ("T", T_CELL)]
    tree = LabelHierarchy.of(["leukocyte", "T cell", "CD8"], [LEUKOCYTE, T_CELL, CD8])
    # leukocyte: B (not below a listed label); CD4 and CD8 sit below the listed "T cell"; "T" is listed
    assert expansions(tree, vocab) == [["B"], ["CD4 T"], []]
    assert expansions(LabelHierarchy.of(["x"], [""]), vocab) == [[]]


def test_expansions_leave_out_a_class_below_two_unrelated_labels():
    """The ontology puts "CD14-low, CD16-positive monocyte" below both "CD14-positive monocyte" and
    "non-classical monocyte": asked both, neither answers for it (else the CD14 label scores the CD16
    monocytes too); asked one, or with their common parent, it is that label's."""
    cd14, non_classical, cd16_class, monocyte = "CL:0001054", "CL:0000875", "CL:0002396", "CL:0000576"
    vocab = [("CD16 monocytes", cd16_class), ("CD8 T", CD8)]
    both = LabelHierarchy.of(["CD14 monocytes", "CD16 monocytes", "T cell"], [cd14, non_classical, T_CELL])
    assert expansions(both, vocab) == [[], [], ["CD8 T"]]
    assert expansions(LabelHierarchy.of(["CD14 monocytes", "T cell"], [cd14, T_CELL]), vocab) == [["CD16 monocytes"], ["CD8 T"]]
    parent = LabelHierarchy.of(["monocyte", "non-classical"], [monocyte, non_classical])
    assert expansions(parent, vocab) == [[], ["CD16 monocytes"]]
    same = LabelHierarchy.of(["T cell", "T cells"], [T_CELL, T_CELL])  # one term twice: both answer for it
    assert expansions(same, vocab) == [["CD8 T"], ["CD8 T"]]


def test_inclusive_probabilities_add_the_labels_below():
    tree = LabelHierarchy.of(["leukocyte", "T cell", "CD8", "B cell"], [LEUKOCYTE, T_CELL, CD8, B_CELL])
    probs = np.array([[0.1, 0.2, 0.6, 0.1], [0.05, 0.05, 0.1, 0.8]])
    np.testing.assert_allclose(inclusive(probs, tree), [[1.0, 0.8, 0.6, 0.1], [1.0, 0.15, 0.1, 0.8]])
    # the deepest label above 0.5: CD8 for the first cell, B cell for the second; none above 0.95 but leukocyte
    assert deepest_confident(inclusive(probs, tree), tree, 0.5).tolist() == [2, 3]
    assert deepest_confident(inclusive(probs, tree), tree, 0.95).tolist() == [0, 0]
    assert deepest_confident(inclusive(probs, tree), tree, 1.0).tolist() == [-1, -1]


def test_partial_credit_counts_an_ancestor_as_partly_right():
    credit = partial_credit([CD8, CD8, CD8, CD8, T_CELL, CD8, CD8], [CD8, MATURE_AB_T, T_CELL, B_CELL, CD8, "unknown", ""])
    assert credit[0] == 1.0
    assert 0 < credit[2] < credit[1] < 1  # the nearer ancestor covers more of the truth's path
    assert credit[3:].tolist() == [0.0, 0.0, 0.0, 0.0]  # unrelated, a descendant, unknown, nothing
    assert MATURE_AB_T in term_parents(CD8)
    # balanced: each true class weighs the same whatever its size
    assert balanced_partial_credit([CD8, CD8, B_CELL], [CD8, CD8, NK]) == 0.5
    assert balanced_partial_credit([CD8, B_CELL], [CD8, B_CELL]) == 1.0


def test_annotate_lets_a_parent_answer_for_the_model_classes_below_it(cells):
    annotate(cells, ["T cell", "B cell", "natural killer cell"], FakeSpace(), prompts=["{label}"])
    assert _answers(cells) == [["T cell"], ["T cell"], ["B cell"], ["natural killer cell"]]
    record = cells.uns["mmgene"]["mmgene_label"]
    assert record["term_ids"] == [T_CELL, B_CELL, NK]
    assert record["expanded"] == ["CD4-positive, alpha-beta T cell, CD8-positive, alpha-beta T cell", "", ""]
    assert record["nested"] is False


def test_annotate_without_hierarchy_scores_labels_only_by_their_own_text(cells):
    labels = ["T cell", "B cell", "natural killer cell"]
    with_tree = annotate(cells, labels, FakeSpace(), prompts=["{label}"], copy=True)
    annotate(cells, labels, FakeSpace(), prompts=["{label}"], hierarchy=False)
    answers = _answers(cells)
    assert answers[2] == ["B cell"] and answers[3] == ["natural killer cell"]
    record = cells.uns["mmgene"]["mmgene_label"]
    assert record["expanded"] == ["", "", ""] and record["term_ids"] == ["", "", ""]
    # no text is near "T cell" without the model's classes: its column has no spread, so T cells get
    # less probability for it than when the label covers the CD4 and CD8 T cells the model knows
    t_without = cells.obsm["mmgene_probs"]["T cell"].iloc[:20].to_numpy()
    t_with = with_tree.obsm["mmgene_probs"]["T cell"].iloc[:20].to_numpy()
    assert (t_with > t_without + 0.1).all()


def test_annotate_returns_the_deepest_confident_term_of_a_mixed_level_question(cells):
    labels = ["T cell", "CD8-positive, alpha-beta T cell", "B cell", "natural killer cell"]
    annotate(cells, labels, FakeSpace(), prompts=["{label}"])
    assert _answers(cells) == [["T cell"], ["CD8-positive, alpha-beta T cell"], ["B cell"], ["natural killer cell"]]
    probs = cells.obsm["mmgene_probs"]
    # a parent's probability covers its descendants: on CD8 cells "T cell" holds at least CD8's share
    cd8 = probs.iloc[10:20]
    assert (cd8["T cell"] >= cd8["CD8-positive, alpha-beta T cell"]).all()
    np.testing.assert_allclose(probs.iloc[:, [0, 2, 3]].sum(axis=1), 1.0, rtol=1e-5)
    assert cells.uns["mmgene"]["mmgene_label"]["nested"] is True
    # the score is the answer's inclusive probability
    np.testing.assert_allclose(cells.obs["mmgene_score"].iloc[10:20], cd8["CD8-positive, alpha-beta T cell"], rtol=1e-6)


def test_the_cli_annotates_with_the_library_defaults():
    """The CLI reads its defaults and help from AnnotateConfig (a light module), so they cannot drift."""
    import typer.main

    from mmgene.cli.app import app

    command = typer.main.get_command(app).commands["annotate"]
    params = {p.name: p for p in command.params}
    # unset options are None, so AnnotateConfig's own defaults apply; the help shows them
    assert all(params[name].default is None for name in ("temperature", "min_prob", "min_z", "others", "others_margin", "refine"))
    assert params["temperature"].help == "Softmax temperature over the standardised similarities (default: 0.5)."
    assert params["others_margin"].help == "By how much (cosine) that class must beat every label (default: 0.04)."


def test_annotate_takes_a_config_and_single_settings_on_top(cells):
    from mmgene.query.config import AnnotateConfig

    strict = AnnotateConfig(prompts="{label}", min_prob=0.99, others=False)
    assert strict.prompts == ("{label}",)
    annotate(cells, ["T cell", "B cell", "natural killer cell"], FakeSpace(), strict)
    record = cells.uns["mmgene"]["mmgene_label"]
    assert record["min_prob"] == 0.99 and "others" not in record and list(record["prompts"]) == ["{label}"]
    annotate(cells, ["T cell", "B cell", "natural killer cell"], FakeSpace(), strict, min_prob=0.2, unknown="none of these")
    record = cells.uns["mmgene"]["mmgene_label"]
    assert record["min_prob"] == 0.2 and record["unknown"] == "none of these"
    assert "none of these" in list(cells.obs["mmgene_label"].cat.categories)
    with pytest.raises(ParameterError, match=r"unknown annotate settings \['min_probability'\]"):
        annotate(cells, ["T cell"], FakeSpace(), min_probability=0.2)


@pytest.mark.parametrize(
    "settings, message",
    [({"temperature": 0}, "temperature must be a number above 0"), ({"min_prob": 1.5}, "min_prob must be a number from 0.0 to 1.0"),
     ({"alpha": 1.0}, "alpha must be a number from 0.0 to 1.0 \\(both excluded\\)"), ({"unknown": " "}, "unknown must be a non-empty name"),
     ({"min_prob": True}, "min_prob must be a number")],
)
def test_annotate_config_refuses_bad_settings(settings, message):
    from mmgene.query.config import AnnotateConfig

    with pytest.raises(ParameterError, match=message):
        AnnotateConfig(**settings)


def test_annotate_calls_cells_of_a_trained_class_outside_the_question_unknown(cells):
    """B cells asked about T and NK cells: the model knows B cells, which fit them better than any label."""
    # the other rules off (min_z, min_prob): the B cells are rejected by the nearer B cell class alone
    annotate(cells, ["T cell", "natural killer cell"], FakeSpace(), prompts=["{label}"], min_z=None, min_prob=0.0)
    assert _answers(cells) == [["T cell"], ["T cell"], ["unknown"], ["natural killer cell"]]
    nearest = cells.obs["mmgene_nearest_other"]
    assert list(nearest.cat.categories) == ["B cell"]  # CD4 and CD8 T cells lie below "T cell": not others
    assert nearest.iloc[20:30].tolist() == ["B cell"] * 10 and nearest.iloc[:20].isna().all() and nearest.iloc[30:].isna().all()
    record = cells.uns["mmgene"]["mmgene_label"]
    assert record["others"] == ["B cell"] and record["unknown_by_others"] == 10 and record["others_margin"] == 0.04
    assert "others_margin" in record["rule"]
    # without the rule the B cells get one of the asked labels
    annotate(cells, ["T cell", "natural killer cell"], FakeSpace(), prompts=["{label}"], min_z=None, min_prob=0.0, others=False)
    assert "unknown" not in _answers(cells)[2]
    assert "mmgene_nearest_other" not in cells.obs  # the earlier run's column, written by mmgene, is gone
    cells.obs["other_key_nearest_other"] = "mine"  # a column mmgene did not write stays
    annotate(cells, ["T cell", "B cell"], FakeSpace(), key_added="other_key", others=False)
    assert (cells.obs["other_key_nearest_other"] == "mine").all()
    assert "others" not in cells.uns["mmgene"]["mmgene_label"]


def test_other_classes_leave_out_the_labels_their_ancestors_and_descendants():
    from mmgene.query.others import other_classes

    vocab = [("CD4 T", CD4), ("CD8 T", CD8), ("B", B_CELL), ("leuko", LEUKOCYTE), ("NK", NK)]
    assert other_classes(vocab, ["T cell"], [T_CELL]) == ["B", "NK"]
    assert other_classes(vocab, ["CD8 T", "B cell"], [CD8, B_CELL]) == ["CD4 T", "NK"]  # leukocyte is above both
    assert other_classes(vocab, ["my cluster"], []) == ["CD4 T", "CD8 T", "B", "leuko", "NK"]
    # a class named as a label, cleaned ("CD19+ B" -> "CD19+ B cell"), is that label even without a term id
    assert other_classes([("CD19+ B", ""), ("Dendritic", "")], ["CD19+ B cell", "dendritic cell"], []) == []


def test_space_vocabulary_reads_saved_ids_and_finds_missing_ones_by_name():
    from mmgene.query.scoring import space_vocabulary

    class Meta:
        def __init__(self, meta):
            self.meta = meta

    # a saved id wins over the name; an empty one is found by name; neither: the class has no id
    saved = Meta({"classes": ["B cells", "CD8 T cells", "my cluster"], "class_ids": [CD8, "", ""]})
    assert space_vocabulary(saved) == [("B cells", CD8)]
    assert space_vocabulary(Meta({"classes": ["B cells", "NK cells"]})) == [("B cells", B_CELL), ("NK cells", NK)]
    # a corpus model's key of a class without an id is not an id, and is not looked up by name
    assert space_vocabulary(Meta({"classes": ["B cells"], "class_ids": ["label:b cell"]})) == []
    assert space_vocabulary(Meta({"classes": ["B cells"], "class_ids": ["CL:0000236", "extra"]})) == [("B cells", B_CELL)]
    assert space_vocabulary(object()) == []


def test_nearest_other_measures_how_far_the_best_label_trails():
    from mmgene.query.others import nearest_other

    cells = np.array([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.6, 0.0, 0.8, 0.0]], np.float32)
    sims = np.array([[0.1, 0.3], [0.5, 0.2]])
    found = nearest_other(FakeSpace(), cells, sims, ["CD4-positive, alpha-beta T cell", "B cell"], lambda names: [[n] for n in names])
    np.testing.assert_allclose(found.lead, [0.7, 0.1], rtol=1e-6)
    assert found.nearest.tolist() == ["CD4-positive, alpha-beta T cell", "B cell"]
    assert found.rejects(0.04).tolist() == [True, True] and found.rejects(0.2).tolist() == [True, False]
    none = nearest_other(FakeSpace(), cells, sims, [], lambda names: [[n] for n in names])
    assert not none.rejects(0.0).any() and none.nearest.tolist() == ["", ""]


@pytest.mark.parametrize("margin", [-0.1, 2.5, True, "0.1", float("nan")])
def test_annotate_refuses_a_bad_others_margin(cells, margin):
    with pytest.raises(ParameterError, match="others_margin"):
        annotate(cells, ["T cell"], FakeSpace(), others_margin=margin)


def test_given_ids_are_read_in_their_usual_forms_and_missing_or_unknown_ones_are_told_apart():
    given = ["cl:0000084", "CL_0000624", "http://purl.obolibrary.org/obo/CL_0000625", float("nan"), None, " "]
    assert resolve_terms(list("abcdef"), given) == [T_CELL, CD4, CD8, "", "", ""]
    with pytest.raises(ParameterError, match="'CL:9999999' is not in the Cell Ontology"):
        resolve_terms(["a"], ["CL:9999999"])  # was taken, and then related to no other label
    with pytest.raises(ParameterError, match="got a string"):
        resolve_terms("T cell")  # was read as six labels, one per character


def test_partial_credit_refuses_lists_of_different_lengths_and_skips_cells_without_truth():
    with pytest.raises(ParameterError, match="2 true terms for 1 predictions"):
        partial_credit([CD8, T_CELL], [CD8])  # was scored as if the missing prediction were wrong
    with pytest.raises(ParameterError, match="2 true terms for 3 predictions"):
        balanced_partial_credit([CD8, T_CELL], [CD8, T_CELL, B_CELL])
    # a cell without a true term (NaN from a pandas column) has no class: it was a TypeError
    assert balanced_partial_credit([CD8, float("nan"), None, B_CELL], [CD8, CD8, CD8, B_CELL]) == 1.0
