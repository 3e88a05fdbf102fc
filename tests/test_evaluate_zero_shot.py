"""Zero-shot metrics, prompts, retrieval and the report, with exact expected values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmgene.align.config import ModelConfig, TrainingConfig
from mmgene.errors import ParameterError
from mmgene.pairs.config import PairsConfig

try:
    from test_query import encoder, small  # noqa: F401  (session fixtures: offline MiniLM, 120 PBMC 3k cells)
except ImportError:  # tests collected as a package
    from tests.test_query import encoder, small  # noqa: F401


def test_classification_metrics_exact():
    from mmgene.metrics import classification_metrics

    y = np.array([0, 0, 0, 1, 1, 2])
    scores = np.array(
        [[0.9, 0.1, 0.0], [0.8, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.9, 0.0], [0.3, 0.6, 0.1], [0.1, 0.2, 0.95]]
    )
    m = classification_metrics(y, scores, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    # F1: a = 2*1*(2/3)/(1+2/3) = 0.8; b: precision 2/3, recall 1 -> 0.8; c = 1
    assert m["macro_f1"] == pytest.approx((0.8 + 0.8 + 1.0) / 3)
    # a: positives {0.9, 0.8, 0.2} vs negatives {0.1, 0.3, 0.1} -> 8 of 9 pairs ordered
    assert m["per_class"]["a"]["auroc"] == pytest.approx(8 / 9)
    # b: positives {0.9, 0.6}, negatives {0.1, 0.3, 0.7, 0.2} -> 7 of 8 pairs ordered
    assert m["per_class"]["b"]["auroc"] == pytest.approx(7 / 8)
    assert m["macro_auroc"] == pytest.approx((8 / 9 + 7 / 8 + 1) / 3)
    assert m["per_class"]["c"]["n"] == 1


def test_zero_shot_with_a_perfect_text_encoder():
    from mmgene.evaluate import zero_shot

    classes = ["B cells", "NK cells"]
    cells = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], dtype=np.float32)

    def encode(texts):
        return np.array([[1.0, 0.0] if "B" in t else [0.0, 1.0] for t in texts], dtype=np.float32)

    res = zero_shot(cells, ["B cells", "B cells", "NK cells"], encode, classes=classes)
    assert res["balanced_accuracy"] == 1.0 and res["macro_auroc"] == 1.0
    assert res["centroid"]["accuracy"] == 1.0
    assert res["centroid"]["predicted"] == {"B cells": "B cells", "NK cells": "NK cells"}
    assert "a B cell" in res["prompts"]["B cells"] and "a natural killer cell" in res["prompts"]["NK cells"]
    with pytest.raises(ParameterError, match="labels"):
        zero_shot(cells, ["B cells", "B cells"], encode)
    with pytest.raises(ParameterError, match="not among the classes"):
        zero_shot(cells, ["B cells", "B cells", "T cells"], encode, classes=classes)


def test_standardized_scores_fix_a_class_that_is_near_every_cell():
    from mmgene.evaluate import zero_shot
    from mmgene.text.classes import zero_shot_scores

    classes = ["B cells", "NK cells"]
    # every cell is closer to the NK prompt than to the B prompt, the B cells only less so
    cells = np.array([[0.6, 0.8], [0.1, np.sqrt(0.99)], [0.5, np.sqrt(0.75)]], dtype=np.float32)

    def encode(texts):
        return np.array([[1.0, 0.0] if "B" in t else [0.0, 1.0] for t in texts], dtype=np.float32)

    labels = ["B cells", "NK cells", "B cells"]
    plain = zero_shot(cells, labels, encode, classes=classes)
    std = zero_shot(cells, labels, encode, classes=classes, standardize=True)
    assert plain["balanced_accuracy"] == 0.5 and std["balanced_accuracy"] == 1.0
    assert std["macro_auroc"] == plain["macro_auroc"] == 1.0 and std["standardized"] and not plain["standardized"]
    z = zero_shot_scores(cells, np.eye(2, dtype=np.float32), standardize=True)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-5)
    with pytest.raises(ParameterError, match="two cells"):
        zero_shot_scores(cells[:1], np.eye(2, dtype=np.float32), standardize=True)
    with pytest.raises(ParameterError, match="two cells"):
        zero_shot(cells[:1], labels[:1], encode, classes=classes, standardize=True)


def test_weigh_types_keeps_an_abundant_class_from_being_damped():
    """Seven B cells and three NK cells: plain z-scores lift the rare class so far that a B cell nearer
    the B prompt (0.7 against 0.5) is called NK; with the two classes weighing alike it is not."""
    from mmgene.evaluate import zero_shot
    from mmgene.evaluate.config import EvaluateConfig
    from mmgene.query.config import AnnotateConfig

    classes = ["B cells", "NK cells"]
    sims = np.array([[0.9, 0.3]] * 6 + [[0.7, 0.5]] + [[0.3, 0.9]] * 2 + [[0.4, 0.8]])
    labels = ["B cells"] * 7 + ["NK cells"] * 3

    def encode(texts):
        return np.array([[1.0, 0.0] if "B" in t else [0.0, 1.0] for t in texts], dtype=np.float32)

    kw = {"classes": classes, "similarities": sims, "standardize": True}
    plain, weighed = zero_shot(sims, labels, encode, **kw), zero_shot(sims, labels, encode, weigh_types=True, **kw)
    assert plain["accuracy"] == 0.9 and plain["proportion_error"] == pytest.approx(0.1)
    assert weighed["accuracy"] == 1.0 and weighed["proportion_error"] == 0.0
    for config in (AnnotateConfig, EvaluateConfig):
        with pytest.raises(ParameterError, match="refine and weigh_types cannot be combined"):
            config(refine=True, weigh_types=True)


def test_zero_shot_takes_given_similarities_and_annotates_default_rule():
    """Given similarities replace the cosines; the default z-scores from 30 cells on (annotate's rule)."""
    from mmgene.evaluate import zero_shot

    classes = ["B cells", "NK cells"]
    labels = ["B cells", "NK cells"] * 15
    cells = np.tile(np.eye(2, dtype=np.float32), (15, 1))

    def encode(texts):
        return np.array([[1.0, 0.0] if "B" in t else [0.0, 1.0] for t in texts], dtype=np.float32)

    assert zero_shot(cells[:4], labels[:4], encode, classes=classes)["standardized"] is False
    assert zero_shot(cells, labels, encode, classes=classes)["standardized"] is True
    flipped = zero_shot(cells, labels, encode, classes=classes, similarities=cells[:, ::-1])
    assert flipped["accuracy"] == 0.0 and flipped["centroid"]["accuracy"] == 1.0  # the centroid level keeps the prompt vectors
    with pytest.raises(ParameterError) as err:
        zero_shot(cells, labels, encode, classes=classes, similarities=cells[:3])
    assert err.value.what == "similarities have shape (3, 2), expected (30, 2) (cells x classes)"
    # z-scores given by the caller (an ensemble's, member by member) replace z-scoring the similarities
    given = zero_shot(cells, labels, encode, classes=classes, similarities=cells, standardised=-cells.astype(np.float64))
    assert given["standardized"] is True and given["accuracy"] == 0.0
    assert zero_shot(cells, labels, encode, classes=classes, similarities=cells, standardize=False, standardised=-cells)["accuracy"] == 1.0
    with pytest.raises(ParameterError) as err:
        zero_shot(cells, labels, encode, classes=classes, similarities=cells, standardised=cells[:3])
    assert err.value.what == "standardised have shape (3, 2), expected (30, 2) (cells x classes)"
    assert err.value.where == "argument standardised"


def test_prompts_clean_names_and_keep_markers():
    from mmgene.text.prompts import class_names, class_prompts

    assert class_names("CD56+ NK")[0] == "CD56+ NK cell"
    assert "CD56+ natural killer cell" in class_names("CD56+ NK")
    assert all(n.startswith("CD8") for n in class_names("CD8 T cells"))  # never a bare "T cell"
    assert class_names("Dendritic", ontology=False) == ["dendritic cell"]
    prompts = class_prompts(["Megakaryocytes"], templates=("{label}", "a {label}"), ontology=True, markers=False)
    assert prompts == [["megakaryocyte", "a megakaryocyte", "megacaryocyte", "a megacaryocyte", "megalocaryocyte", "a megalocaryocyte", "megalokaryocyte", "a megalokaryocyte"]]


def test_marker_gene_prompt_expansion():
    from mmgene.text.markers import marker_genes, marker_names
    from mmgene.text.prompts import class_prompts

    assert class_prompts(["NK cells"], templates=("{label}",), ontology=False, markers=True) == [
        ["NK cell", "NK cell expressing GNLY and NKG7", "NK cell, marker genes GNLY and NKG7"]
    ]
    assert class_prompts(["Megakaryocytes"], templates=("a {label}",), ontology=False, markers=True) == [
        ["a megakaryocyte", "a megakaryocyte expressing PPBP", "a megakaryocyte, marker genes PPBP"]
    ]
    # the most specific entry wins: FCGR3A+ before other monocytes, naive before cytotoxic; plain CD4/CD8
    # T cells and dendritic cells keep plain prompts
    assert marker_genes(["CD4 T cell"]) == () and marker_genes(["dendritic cell"]) == ()
    assert class_prompts(["CD8 T cells"], templates=("{label}",), ontology=False, markers=True) == [["CD8 T cell"]]
    assert marker_genes(["CD8+ cytotoxic T cell"]) == ("CD8A",)
    assert marker_genes(["CD8+ CD45RA+ naive cytotoxic T cell"]) == ("CCR7",)
    assert marker_genes(["CD4+ CD45RA+ CD25- naive T cell"]) == ("CCR7",)
    assert marker_genes(["CD4+ CD45RO+ memory T cell"]) == ("IL7R", "S100A4")
    assert marker_genes(["CD4+ CD25 regulatory T cell"]) == ("FOXP3", "IL2RA") == marker_genes(["Treg"])
    assert marker_genes(["CD34+ cell"]) == ("CD34",) and marker_genes(["CD34- cell"]) == ()
    assert marker_genes(["memory B cell"]) == ("MS4A1", "CD79A")  # "memory" alone is not a T-cell subset
    assert marker_genes(["FCGR3A+ monocyte"]) == ("FCGR3A", "MS4A7")
    assert marker_genes(["CD14+ monocyte"]) == ("CD14", "LYZ")
    assert marker_genes(["CD19+ B cell"]) == ("MS4A1", "CD79A")
    assert marker_genes(["CD56+ natural killer cell"]) == ("GNLY", "NKG7")
    # whole words only: "NK" inside another word, or an unknown type, gets nothing
    assert marker_genes(["hepatocyte"]) == () and marker_genes(["PINK1 neuron"]) == ()
    assert marker_genes([]) == () and marker_names([]) == [] and marker_names(["hepatocyte"]) == []
    assert class_prompts(["NK cells"], templates=("{label}",), ontology=False, markers=False) == [["NK cell"]]
    assert class_prompts(["NK cells"], templates=("{label}",), ontology=False) == [  # on by default
        ["NK cell", "NK cell expressing GNLY and NKG7", "NK cell, marker genes GNLY and NKG7"]
    ]
    assert marker_names(["B cell"], phrases=("{name} with {genes}",)) == ["B cell with MS4A1 and CD79A"]
    # the genes are named in a way the text tower's gene-mention route finds
    from mmgene.align.mentions import build_mention_index, find_mentions

    index = build_mention_index(["GNLY", "NKG7", "MS4A1"], use_aliases=False)
    assert find_mentions("a NK cell expressing GNLY and NKG7", index) == [0, 1]


def test_retrieval_metrics_exact():
    from mmgene.evaluate import retrieval_metrics

    cells = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    texts = np.array([[1, 0], [0, 1]], dtype=np.float32)
    r = retrieval_metrics(cells, [0, 1, 1], texts, [0, 1])
    # cell->text: cell0 rank1; cell1 sims (0.8 to class0, 0.6 to class1) -> rank 2; cell2 rank 1
    assert r["cell->text"]["recall@1"] == pytest.approx(2 / 3)
    assert r["cell->text"]["mrr"] == pytest.approx((1 + 0.5 + 1) / 3)
    # text->cell: text0 relevant cell0 (1.0) vs negatives {0.8, 0} -> rank 1;
    # text1 relevant cell1 (0.6) and cell2 (1.0) vs negative cell0 (0) -> rank 1 each
    assert r["text->cell"]["recall@1"] == 1.0 and r["text->cell"]["mrr"] == 1.0
    with pytest.raises(ParameterError):
        retrieval_metrics(cells, [0, 1], texts, [0, 1])


def test_markdown_report_lists_every_class():
    from mmgene.evaluate import markdown_report

    zs = {
        "accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.4, "macro_auroc": 0.75, "proportion_error": 0.25,
        "centroid": {"accuracy": 1.0},
        "per_class": {"B cells": {"n": 2, "recall": 1.0, "precision": 0.5, "f1": 0.667, "auroc": 0.75}},
    }
    report = {
        "dataset": "toy", "n_cells": 2, "label_col": "cell_type", "zero_shot": zs,
        "baseline": {**zs, "encoder": "minilm", "per_class": {"B cells": {"auroc": 0.5}}},
        "retrieval": {"cell->text": {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "mrr": 1.0}},
        "clustering": {"ari": 0.25, "ami": 0.5, "n_clusters": 2},
        "marker_baseline": {
            **zs, "macro_auroc": 0.625, "per_class": {"B cells": {"auroc": 0.625}},
            "markers": {"B cells": ["MS4A1", "CD79A"]}, "markers_found": {"B cells": ["CD79A"]},
        },
    }
    md = markdown_report(report)
    assert "| mmgene aligned model | 0.500 | 0.500 | 0.400 | 0.750 | 0.250 | 1.000 |" in md
    assert "| textbook marker genes (mean z-score) | 0.500 | 0.500 | 0.400 | 0.625 | 0.250 | 1.000 |" in md
    older = {**report, "zero_shot": {k: v for k, v in zs.items() if k != "proportion_error"}}  # a report saved before it existed
    assert "| mmgene aligned model | 0.500 | 0.500 | 0.400 | 0.750 | – | 1.000 |" in markdown_report(older)
    assert "| B cells | 2 | 1.000 | 0.500 | 0.667 | 0.750 | 0.500 | 0.625 | CD79A (of MS4A1, CD79A) |" in md
    assert "ARI 0.250, AMI 0.500" in md
    json.dumps(report)


def test_evaluate_writes_json_and_markdown_with_baseline(tmp_path, pbmc3k_path):
    """A 3-step model on 80 cells: the report has every section and both files."""
    import mmgene.io
    from mmgene.align import train
    from mmgene.evaluate import evaluate

    adata = mmgene.io.read(pbmc3k_path)
    adata = adata[np.sort(np.random.default_rng(1).choice(adata.n_obs, 80, replace=False))].copy()
    model = train(
        adata,
        "cell_type",
        pairs=PairsConfig(max_genes=64, test_size=0.0),
        model=ModelConfig(gene_dim=16, dim=16, gene_bridge=False),
        training=TrainingConfig(max_steps=2, batch_size=16),
    )
    report = evaluate(model, adata, "cell_type", out=tmp_path / "rep", baseline=True, dataset_name="pbmc3k-80")
    saved = json.loads((tmp_path / "rep.json").read_text())
    assert saved["n_cells"] == 80 and saved["dataset"] == "pbmc3k-80"
    assert set(saved["retrieval"]) == {"cell->text", "text->cell"}
    assert 0.0 <= saved["baseline"]["macro_auroc"] <= 1.0
    assert saved["clustering"]["n_clusters"] == len(set(adata.obs["cell_type"]))
    md = (tmp_path / "rep.md").read_text()
    assert "GenePT-s zero-shot" in md and "text->cell" in md and "textbook marker genes" in md
    assert saved["marker_baseline"]["markers_found"]["B cells"] == ["MS4A1", "CD79A"]
    assert report["files"] == [str(tmp_path / "rep") + ".json", str(tmp_path / "rep") + ".md"]
    assert not saved["zero_shot"]["refined"]
    refined = evaluate(model, adata, "cell_type", refine=True)
    assert refined["zero_shot"]["refined"] and refined["baseline"]["refined"] and refined["marker_baseline"]["refined"]
    assert refined["retrieval"] == report["retrieval"]  # refinement touches the zero-shot scores only


def test_metrics_of_a_class_without_cells_are_undefined_not_zero():
    """A class asked of data that has none of it showed recall 0.000 (read as a type the model missed),
    and sklearn warned "y_pred contains classes not in y_true"."""
    import warnings

    from mmgene.metrics import classification_metrics

    y = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.1, 0.9, 0.0], [0.2, 0.8, 0.0]])  # one a-cell called c
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(y, scores, ["a", "b", "c"])
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    c = m["per_class"]["c"]
    assert c["n"] == 0 and np.isnan(c["recall"]) and np.isnan(c["f1"]) and c["precision"] == 0.0
    assert "auroc" not in c
    m = classification_metrics(y, scores[:, :2].copy(), ["a", "b"])
    assert m["per_class"]["a"]["precision"] == 1.0
    never_called = classification_metrics(y, np.tile([1.0, 0.0], (4, 1)), ["a", "b"])["per_class"]["b"]
    assert np.isnan(never_called["precision"]) and never_called["recall"] == 0.0 and never_called["f1"] == 0.0


def test_evaluate_reads_cell_ontology_id_labels_as_their_terms(small):  # noqa: F811
    """A label column of ids (cell_type_ontology_term_id) was prompted as "a CL:0000236 cell": on PBMC 3k
    an aligned model scored accuracy 0.21 by ids and 0.91 by the same cells' names."""
    from mmgene.evaluate import evaluate

    by_name = evaluate("genept-s", small, "cell_type_cl_name", baseline=False, marker_baseline=False)
    by_id = evaluate("genept-s", small, "cell_type_ontology_term_id", baseline=False, marker_baseline=False)
    prompts = by_id["zero_shot"]["prompts"]
    assert not [p for group in prompts.values() for p in group if "CL:" in p]
    assert prompts["CL:0000236"] == by_name["zero_shot"]["prompts"]["B cell"]
    assert by_id["zero_shot"]["accuracy"] == pytest.approx(by_name["zero_shot"]["accuracy"], abs=0.05)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0, 1, 2, 1], "evaluate reads cell-type names, but the labels are all numbers or true/false ('0', '1', '2')"),
        ([True, False, True, False], "evaluate reads cell-type names, but the labels are all numbers or true/false ('False', 'True')"),
        (["B cells", " b cells", "NK cells", "NK cells"], "evaluate found ' b cells' and 'B cells' as two classes: they differ only in case or blanks"),
    ],
)
def test_evaluate_refuses_labels_that_are_no_names_or_one_name_twice(values, message):
    """Such columns were scored: "a 0 cell" against "a 1 cell" (accuracy 0.16 on pbmc68k_reduced's codes)."""
    import anndata as ad
    import pandas as pd
    from scipy import sparse

    from mmgene.errors import LabelError
    from mmgene.evaluate.classify import labelled_cells

    adata = ad.AnnData(sparse.csr_matrix(np.ones((4, 2), np.float32)), obs=pd.DataFrame({"y": values}, index=list("abcd")))
    with pytest.raises(LabelError) as info:
        labelled_cells(adata, "y")
    assert str(info.value).startswith(message) and info.value.where == "obs['y']"
