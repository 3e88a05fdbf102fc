"""Classes as vectors (mmgene.text.classes): prompt ensembling, the one standardisation, zero-shot scores."""

from __future__ import annotations

import numpy as np
import pytest

from mmgene.errors import DataError, NonFiniteError, ParameterError
from mmgene.text.classes import MIN_SPREAD, class_vectors, standardise, type_weights, zero_shot_scores


def test_class_vectors_are_renormalised_means_of_unit_prompt_vectors():
    table = {"a": [3.0, 0.0], "a cell": [0.0, 2.0], "b": [1.0, 1.0]}
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return np.array([table[t] for t in texts], np.float32)

    vecs = class_vectors(encode, [["a", "a cell"], ["b"]])
    assert calls == [["a", "a cell", "b"]]  # one encoder call for every prompt
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(vecs, [[np.sqrt(0.5), np.sqrt(0.5)], [np.sqrt(0.5), np.sqrt(0.5)]], rtol=1e-6)
    with pytest.raises(ParameterError, match="at least one prompt"):
        class_vectors(encode, [["a"], []])
    with pytest.raises(DataError, match="all zeros"):
        class_vectors(lambda t: np.zeros((len(t), 2), np.float32), [["a"], ["b"]])
    with pytest.raises(NonFiniteError, match="NaN"):
        class_vectors(lambda t: np.full((len(t), 2), np.nan, np.float32), [["a"], ["b"]])
    with pytest.raises(ParameterError, match="one vector per text"):
        class_vectors(lambda t: np.ones((1, 2), np.float32), [["a"], ["b"]])


def test_standardise_has_one_rule_at_zero_spread():
    scores = np.array([[1.0, 0.5, 0.3], [2.0, 0.5, 0.3], [3.0, 0.5, 0.3]], np.float32)
    z = standardise(scores)
    assert z.dtype == np.float64
    np.testing.assert_allclose(z[:, 0], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)], rtol=1e-6)
    # constant columns (whose float32 mean need not equal the value) and rounding-sized spreads are 0
    assert (z[:, 1:] == 0).all()
    rounding = np.array([[0.0], [MIN_SPREAD / 2], [MIN_SPREAD]])
    assert (standardise(rounding) == 0).all()
    assert (standardise(np.array([[0.2, 0.9]])) == 0).all()  # one cell has no spread
    # the arithmetic stays in the input's precision: float32 scores give float32 z-scores, widened
    f32 = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    expected = ((f32 - f32.mean(0)) / f32.std(0)).astype(np.float64)
    np.testing.assert_array_equal(standardise(f32), expected)


def test_standardise_of_a_stack_averages_each_models_z_scores():
    # two models' scores of three cells for two classes; each column is z-scored within its model,
    # the two models' z-scores are averaged and the average is z-scored again
    stack = np.array([[[1.0, 0.0], [3.0, 0.0], [5.0, 1.0]], [[0.0, 2.0], [0.0, 4.0], [1.0, 6.0]]])
    low, mid, high = -(np.sqrt(1.5) + np.sqrt(0.5)) / 2, -np.sqrt(0.5) / 2, (np.sqrt(1.5) + np.sqrt(2.0)) / 2
    averaged = np.array([[low, low], [mid, mid], [high, high]])  # its columns' means are 0 already
    expected = averaged / np.sqrt((low**2 + mid**2 + high**2) / 3)
    np.testing.assert_allclose(standardise(stack), expected, rtol=1e-12)
    assert standardise(stack).dtype == np.float64
    # not the z-scores of the models' mean: a model with a wide spread would outweigh the other
    assert not np.allclose(standardise(stack.mean(0)), expected)
    np.testing.assert_allclose(standardise(stack[:1]), standardise(stack[0]), rtol=1e-12)


def test_type_weights_make_every_winning_class_weigh_alike():
    # three cells of class 0 and one of class 1: plain z-scores give the one cell sqrt(3) for its class
    # and the three only sqrt(1/3) for theirs (sqrt((1 - p) / p) for a class that is a share p of the cells)
    scores = np.array([[0.0, 3.0], [0.0, 3.0], [0.0, 3.0], [3.0, 0.0]])
    np.testing.assert_allclose(standardise(scores)[:, 1], [np.sqrt(1 / 3)] * 3 + [-np.sqrt(3)], rtol=1e-12)
    np.testing.assert_allclose(standardise(scores)[3, 0], np.sqrt(3), rtol=1e-12)
    weights = type_weights(standardise(scores))
    np.testing.assert_allclose(weights, [1 / 3, 1 / 3, 1 / 3, 1.0], rtol=1e-12)
    # weighed so, both groups count alike: each class's own cells score 1 and the others -1
    np.testing.assert_allclose(standardise(scores, weights), [[-1, 1], [-1, 1], [-1, 1], [1, -1]], rtol=1e-12)
    # a class that wins no cell takes no part in the weights; weights only scale each class's column
    three = np.array([[0.0, 3.0, 0.1], [0.0, 3.0, 0.2], [0.0, 3.0, 0.3], [3.0, 0.0, 0.4]])
    np.testing.assert_allclose(type_weights(three), [1 / 3, 1 / 3, 1 / 3, 1.0], rtol=1e-12)
    assert type_weights(np.zeros((0, 2))).shape == (0,)


def test_weighted_standardise_matches_the_plain_rule_at_equal_weights_and_checks_its_weights():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(40, 3)).astype(np.float32)
    np.testing.assert_allclose(standardise(scores, np.full(40, 2.5)), standardise(scores), rtol=1e-5, atol=1e-6)
    weights = rng.uniform(0.1, 1.0, size=40)
    share = weights / weights.sum()
    mean = share @ scores.astype(np.float64)
    expected = (scores - mean) / np.sqrt(share @ (scores - mean) ** 2)
    np.testing.assert_allclose(standardise(scores, weights), expected, rtol=1e-12)
    stack = rng.normal(size=(2, 40, 3))
    np.testing.assert_allclose(
        standardise(stack, weights), standardise(np.mean([standardise(m, weights) for m in stack], axis=0), weights), rtol=1e-12
    )
    flat = np.ones((40, 1))  # no spread under any weights: 0, the one zero-spread rule
    assert (standardise(flat, weights) == 0).all()
    for bad in (np.ones(39), -weights, np.zeros(40), np.where(np.arange(40) == 3, np.nan, weights)):
        with pytest.raises(ParameterError, match="weights must be 40 finite, non-negative numbers"):
            standardise(scores, bad)


def test_zero_shot_scores_are_cosines_of_unit_cells():
    cells = np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0]], np.float32)  # a zero cell scores 0
    vecs = np.eye(2, dtype=np.float32)
    np.testing.assert_allclose(zero_shot_scores(cells, vecs), [[1, 0], [0, 0], [np.sqrt(0.5), np.sqrt(0.5)]], rtol=1e-6)
    np.testing.assert_array_equal(zero_shot_scores(cells, vecs, standardize=True), standardise(zero_shot_scores(cells, vecs)))
    with pytest.raises(ParameterError, match="two cells"):
        zero_shot_scores(cells[:1], vecs, standardize=True)


def test_prompt_templates_share_one_placeholder():
    from mmgene.text.prompts import PLACEHOLDER, PROMPT_TEMPLATES, PROMPTS, check_templates, class_prompts

    assert PLACEHOLDER == "{label}" and all(PLACEHOLDER in t for t in (*PROMPT_TEMPLATES, *PROMPTS))
    assert check_templates([]) == [PLACEHOLDER] and check_templates("a {label}") == ["a {label}"]
    with pytest.raises(ParameterError, match="placeholder"):
        class_prompts(["B cells"], templates=("a {}",), ontology=False, markers=False)


def test_captions_say_where_cells_come_from_only_when_the_tissue_is_known():
    from mmgene.text.captions import class_text
    from mmgene.text.origin import Origin

    names = ["NK cell", "a NK cell", "a cell of type NK cell", "single-cell transcriptome of a NK cell", "this is a NK cell"]
    assert class_text(["NK"], None, Origin("mouse", " lung ")).name_captions()[:8] == [
        names[0], names[1], "a NK cell from mouse lung", names[2], names[3], names[4], "a lung NK cell", "an example of a NK cell",
    ]
    # blood is said as the PBMC captions always said it
    blood = class_text(["NK"], None, Origin("human", "blood")).name_captions()
    assert "a NK cell from human blood" in blood and "a peripheral blood NK cell" in blood
    # no tissue: no caption names a species or tissue (a species alone is not enough)
    for origin in (None, Origin(), Origin("human", "")):
        captions = class_text(["NK"], None, origin).name_captions()
        assert captions[:6] == [*names, "an example of a NK cell"] and len(captions) == 12
        assert not any("human" in c or "blood" in c or " from " in c for c in captions)


def test_prompts_say_the_origin_only_when_given():
    from mmgene.text.origin import Origin
    from mmgene.text.prompts import class_prompts

    plain = class_prompts(["B cells"], ontology=False, markers=False)
    assert plain == [["B cell", "a B cell", "a cell of type B cell", "single-cell transcriptome of a B cell"]]
    lung = class_prompts(["B cells"], ontology=False, markers=False, origin=Origin("mouse", "lung"))
    assert lung == [[*plain[0], "a B cell from mouse lung"]]
    # a template with the origin slot is skipped, not filled with nothing, when the tissue is unknown
    assert class_prompts(["B cells"], templates=("a {label} from {origin}", "{label}"), ontology=False, markers=False) == [["B cell"]]


def test_class_text_reads_ids_in_their_usual_forms_and_refuses_no_values():
    from mmgene.text.captions import class_text

    for form in ("cl:0000236", "CL_0000236", "http://purl.obolibrary.org/obo/CL_0000236"):
        text = class_text(["B"], form)  # was "not a Cell Ontology id"
        assert text.term_id == "CL:0000236" and "B lymphocyte" in text.names
    with pytest.raises(ParameterError, match="no label value"):
        class_text([])  # was an IndexError


def test_a_label_that_is_a_cell_ontology_id_is_captioned_by_its_term():
    """A label column of ids (--label-col cell_type_ontology_term_id) gave captions such as "a CL:0000236"."""
    from mmgene.text.captions import class_text

    text = class_text(["CL:0000236"])
    assert text.term_id == "CL:0000236" and text.label == "CL:0000236"
    assert text.names[0] == "B cell" and not any("CL" in n for n in text.names)
    assert class_text(["cl_0000236"]).names == text.names
    assert not any("CL:" in c for c in text.name_captions())
    assert class_text(["CL:0000236"], "CL:0000084").names[0] == "T cell"  # the ontology column wins


def test_one_table_of_species_spellings_serves_corpus_and_harmoniser():
    from mmgene.corpus.sources import species_name
    from mmgene.errors import CorpusError
    from mmgene.harmonise.config import HarmoniseConfig
    from mmgene.text.origin import species_word

    assert [species_word(v) for v in ("Homo  Sapiens", " hs", "Mus_musculus", "MM", "Danio rerio")] == [
        "human", "human", "mouse", "mouse", "danio rerio"
    ]
    assert [species_name(v, "here") for v in ("hsapiens", "Mus musculus")] == ["human", "mouse"]
    assert HarmoniseConfig(species="mmusculus").species == "mouse" and HarmoniseConfig(species="Zebrafish").species == "zebrafish"
    with pytest.raises(CorpusError, match="unknown species 'Danio rerio'"):
        species_name("Danio rerio", "here")
