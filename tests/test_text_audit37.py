"""Vector checks, class vectors, z-scores, prompt templates and the label hierarchy refuse what they cannot use."""

import numpy as np
import pytest

from mmgene.errors import NonFiniteError, ParameterError
from mmgene.text.classes import class_vectors, standardise, zero_shot_scores
from mmgene.text.hierarchy import LabelHierarchy, deepest_confident, inclusive
from mmgene.text.prompts import check_templates, class_prompts
from mmgene.vectors import as_unit_vectors, missing_rows

T_CELL, CD8_T, B_CELL = "CL:0000084", "CL:0000625", "CL:0000236"


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, bool])
def test_missing_rows_finds_zero_rows_of_integer_and_boolean_arrays(dtype):
    x = np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0]], dtype=dtype)
    assert missing_rows(x).tolist() == [True, False, True]


def test_missing_rows_reads_rows_as_float32_as_as_unit_vectors_does():
    x = np.array([[1e-50, 0.0], [1e300, 1.0], [np.nan, 1.0], [0.5, 0.5]])
    assert missing_rows(x).tolist() == [True, True, True, False]
    assert missing_rows(np.array([[0, 0], [1, 2]], dtype=object)).tolist() == [True, False]


def test_rows_too_large_or_too_small_for_float32_squares_keep_their_direction():
    big = np.array([[3e20, 4e20], [3.0, 4.0]], dtype=np.float32)
    small = np.array([[3e-30, 4e-30]], dtype=np.float32)
    expected = np.array([[0.6, 0.8]], dtype=np.float32)
    np.testing.assert_allclose(as_unit_vectors(big), np.vstack([expected, expected]), rtol=1e-6)
    np.testing.assert_allclose(as_unit_vectors(small), expected, rtol=1e-6)


@pytest.mark.parametrize("bad", [np.array([["a", "b"]]), [[1.0, 2.0], [3.0]], np.array([[1 + 1j, 0j]])])
def test_vectors_that_are_not_real_numbers_are_a_parameter_error(bad):
    with pytest.raises(ParameterError, match="expected an array of real numbers"):
        as_unit_vectors(bad, where="obsm['X']")


def _encode(texts):
    return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


@pytest.mark.parametrize("prompts", [["a B cell", "a T cell"], "a B cell", [["a B cell"], "a T cell"]])
def test_class_vectors_refuse_a_string_for_a_class_s_prompts(prompts):
    with pytest.raises(ParameterError, match="got a string"):
        class_vectors(_encode, prompts)
    vecs = class_vectors(_encode, (g for g in [["ab"], ["abcd"]]))  # lists from a generator are still read
    np.testing.assert_allclose(vecs, np.array([[2, 1], [4, 1]]) / np.sqrt([[5], [17]]), rtol=1e-6)




def test_standardise_refuses_nan_scores_instead_of_zeroing_their_columns():
    scores = np.array([[0.1, 0.5], [0.2, 0.1], [np.nan, 0.3], [0.4, 0.2]])
    with pytest.raises(NonFiniteError, match=r"1 scores are NaN or infinite.*first at \(cell, class\) \(2, 0\)"):
        standardise(scores)
    with pytest.raises(NonFiniteError, match=r"first at \(model, cell, class\) \(1, 0, 1\)"):
        standardise(np.stack([np.zeros((2, 2)), np.array([[0.0, np.inf], [1.0, 1.0]])]))
    cells = np.array([[1.0, 0.0], [0.0, 1.0], [np.nan, 0.0]])
    with pytest.raises(NonFiniteError):
        zero_shot_scores(cells, np.eye(2), standardize=True)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{label}}", "only as text"),
        ("a {label} with {x}", r"cannot be filled \(KeyError"),
        ("a {label} {0}", r"cannot be filled \(IndexError"),
        ("a {label}}", r"cannot be filled \(ValueError"),
    ],
)
def test_templates_that_cannot_name_a_label_are_refused(template, problem):
    with pytest.raises(ParameterError, match=problem):
        check_templates([template], "annotate(prompts=...)")
    with pytest.raises(ParameterError, match=problem):
        class_prompts(["B cell"], templates=[template], ontology=False, markers=False)
    # text braces and the origin slot still pass
    assert check_templates(["a {label} {{x}}", "a {label} from {origin}"]) == ["a {label} {{x}}", "a {label} from {origin}"]
    assert class_prompts(["{label}"], templates=["a {label} {{x}}"], ontology=False, markers=False) == [["a {label} cell {x}"]]


def test_label_hierarchy_needs_one_term_per_label():
    with pytest.raises(ParameterError, match="1 term ids for 2 labels"):
        LabelHierarchy.of(["T cell", "CD8 T cell"], [T_CELL])


def test_probabilities_need_one_column_per_label():
    tree = LabelHierarchy.of(["T", "CD8", "B"], [T_CELL, CD8_T, B_CELL])
    for probs in (np.array([[0.2, 0.5]]), np.array([[0.2, 0.5, 0.1, 0.2]])):
        with pytest.raises(ParameterError, match=r"probabilities of shape \(1, \d\) for 3 labels"):
            inclusive(probs, tree)
    with pytest.raises(ParameterError, match=r"probabilities of shape \(1, 2\) for 3 labels"):
        deepest_confident(np.array([[0.7, 0.5]]), tree, 0.5)
    assert inclusive(np.array([[0.2, 0.5, 0.3]]), tree).tolist() == [[0.7, 0.5, 0.3]]
    assert deepest_confident(np.array([[0.7, 0.6, 0.3]]), tree, 0.5).tolist() == [1]


@pytest.mark.parametrize("min_prob", [float("nan"), -0.1, 1.5, "0.5"])
def test_deepest_confident_refuses_a_min_prob_that_is_no_probability(min_prob):
    tree = LabelHierarchy.of(["T", "CD8"], [T_CELL, CD8_T])
    with pytest.raises(ParameterError, match="min_prob must be a"):
        deepest_confident(np.array([[0.7, 0.6]]), tree, min_prob)


def test_annotate_templates_fill_the_cells_origin_or_say_it_is_needed():
    from mmgene.errors import ParameterError
    from mmgene.query.labelling import label_prompts
    from mmgene.text.origin import Origin

    templates = ["a {label} from {origin}", "a {label}"]
    assert label_prompts(["B cell", "T cell"], templates, origin=Origin("mouse", "lung")) == [
        ["a B cell from mouse lung", "a B cell"], ["a T cell from mouse lung", "a T cell"],
    ]
    assert label_prompts(["B cell"], templates) == [["a B cell"]]  # a template that needs an origin is skipped without one
    with pytest.raises(ParameterError, match="species and tissue") as err:
        label_prompts(["B cell"], ["a {label} from {origin}"])
    assert err.value.where == "annotate(prompts=...)"


def test_class_prompts_say_an_origin_is_needed_when_every_template_needs_one():
    from mmgene.text.origin import Origin

    with pytest.raises(ParameterError, match="species and tissue") as err:
        class_prompts(["B cell"], templates=["a {label} from {origin}"])
    assert err.value.where == "class_prompts(templates=...)"
    blood = Origin("human", "blood")
    prompts = class_prompts(["B cell"], templates=["a {label} from {origin}"], ontology=False, markers=False, origin=blood)
    assert prompts == [["a B cell from human blood"]]


def test_type_weights_of_no_class_is_a_parameter_error():
    from mmgene.text.classes import type_weights

    with pytest.raises(ParameterError, match="at least one class"):
        type_weights(np.zeros((3, 0)))
    assert type_weights(np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])).tolist() == [0.5, 1.0, 0.5]
