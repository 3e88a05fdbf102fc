"""Training pairs: label cleaning, ontology text, gene mentions, splits, captions, negatives."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.errors import MissingColumnError, ParameterError
from mmgene.pairs.config import PairsConfig


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("CD14+ Monocytes", "CD14+ monocyte"),
        ("CD4+/CD45RO+ Memory", "CD4+ CD45RO+ memory T cell"),
        ("CD4+/CD25 T Reg", "CD4+ CD25 regulatory T cell"),
        ("CD19+ B", "CD19+ B cell"),
        ("CD56+ NK", "CD56+ NK cell"),
        ("CD34+", "CD34+ cell"),
        ("Dendritic", "dendritic cell"),
        ("Dendritic cells", "dendritic cell"),
        ("Megakaryocytes", "megakaryocyte"),
        ("CD8+/CD45RA+ Naive Cytotoxic", "CD8+ CD45RA+ naive cytotoxic T cell"),
        ("NK cells", "NK cell"),
        ("natural killer cell", "natural killer cell"),
        # shorthand read from mmgene.text.shorthand: plurals, "T Reg"/"T-reg"/"Tregs", mid-label
        ("Tregs", "regulatory T cell"),
        ("T-reg", "regulatory T cell"),
        ("pDCs", "plasmacytoid dendritic cell"),
        ("CD1c+ mDC", "CD1c+ myeloid dendritic cell"),
        ("HSC", "hematopoietic stem cell"),
        ("Mono 2", "monocyte 2 cell"),
        ("MK", "megakaryocyte"),
        ("DC activated", "dendritic cell activated cell"),
        ("NKT", "NKT cell"),
        ("Monocyte-derived", "monocyte-derived cell"),
        # a qualifier after the cell noun is kept as written: no "pancrea", no "... lineage cell"
        ("stromal cell of pancreas", "stromal cell of pancreas"),
        ("Stromal cells of pancreas", "stromal cell of pancreas"),
        ("lymphocyte of B lineage", "lymphocyte of B lineage"),
        ("cell of skeletal muscle", "cell of skeletal muscle"),
        ("dendritic cell, human", "dendritic cell, human"),
        ("B cell, CD19-positive", "B cell, CD19-positive"),
        ("type II NK T cell secreting interleukin-4", "type II NK T cell secreting interleukin-4"),
        ("neuroblast (sensu Vertebrata)", "neuroblast (sensu vertebrata)"),
        ("B cells (activated)", "B cell (activated)"),
        ("CD8+CD28- T(reg)", "CD8+CD28- t(reg) cell"),  # a ")" with no "(" word before it: no qualifier
        ("x )", "x ) cell"),
        # only the head noun is plural: modifiers ending in s stay, "-us"/"-is" words are not plurals
        ("squamous epithelial cells", "squamous epithelial cell"),
        ("Langerhans cells", "langerhans cell"),
        ("kidney loop of Henle thick ascending limb epithelial cell", "kidney loop of henle thick ascending limb epithelial cell"),
        ("Osteoclasts", "osteoclast"),
        ("Thyrotrophs", "thyrotroph"),
        # markers after the cell noun or lineage letter go before it
        ("Mono_CD14", "CD14 monocyte"),
        ("T_CD8", "CD8 T cell"),
        ("NK_CD56+", "CD56+ NK cell"),
        ("Mono 2", "monocyte 2 cell"),
        ("Memory_CD4", "memory CD4 T cell"),
        ("B naive", "naive B cell"),
        ("NK_CD56bright", "CD56bright NK cell"),
        ("NK Proliferating", "proliferating NK cell"),
        ("T_CD4_naive", "CD4 naive T cell"),
        ("B 2", "B 2 cell"),
    ],
)
def test_clean_label(raw, clean):
    from mmgene.text.labels import clean_label

    assert clean_label(raw) == clean


def test_clean_label_keeps_cell_ontology_names():
    """A Cell Ontology name is already plain text: cleaned, it still finds its own term (two in three did
    before qualifiers and modifiers were left alone; the rest are mostly fungal and plant names)."""
    pytest.importorskip("cellxgene_ontology_guide")
    from mmgene.text.labels import clean_label
    from mmgene.text.ontology import _parser, find_term, term_text

    parser = _parser()
    terms = sorted({t for t in parser.get_term_label_to_id_map("CL").values() if t.startswith("CL:") and not parser.is_term_deprecated(t)})
    found = [getattr(find_term(clean_label(term_text(t).label)), "term_id", None) == t for t in terms]
    assert len(terms) > 3000
    assert np.mean(found) > 0.96
    for name in ("stromal cell of pancreas", "lymphocyte of B lineage", "Langerhans cell", "squamous epithelial cell", "osteoclast"):
        assert find_term(clean_label(name)).label == name


def test_ontology_terms_offline():
    from mmgene.text.ontology import find_term, term_text

    nk = term_text("CL:0000623")
    assert nk.label == "natural killer cell" and "NK cell" in nk.synonyms
    assert nk.description.startswith("A lymphocyte that can spontaneously kill")
    assert find_term("B cells").term_id == "CL:0000236"
    assert find_term("Treg").term_id == "CL:0000815"
    assert find_term("no such cell type at all") is None
    # a marker's minus sign is part of the name: "CD16- monocyte" is the CD16-negative classical
    # monocyte, and "CD16 monocyte" (Azimuth's "CD16 Mono") must not be read as it
    assert find_term("CD16- monocyte").term_id == "CL:0002057"
    assert find_term("CD16-negative monocyte").term_id == "CL:0002057"
    assert find_term("CD16 monocyte") is None
    from mmgene.text.prompts import class_names

    assert class_names("CD16 Mono") == class_names("Mono_CD16") == ["CD16 monocyte"]
    with pytest.raises(ParameterError, match="not a Cell Ontology id"):
        term_text("CL:12")
    with pytest.raises(ParameterError, match="unknown"):
        term_text("CL:9999999")


def test_gene_mentions_symbols_aliases_and_negation():
    from mmgene.align.mentions import build_mention_index, find_mentions

    syms = ["CD19", "CD14", "NCAM1", "IL2RA", "PTPRC", "CD4", "CD8A", "CD34", "MS4A1", "HLA-DRA", "CD79A"]
    ix = build_mention_index(syms)

    def named(text):
        return [syms[i] for i in find_mentions(text, ix)]

    assert named("CD19+ B") == ["CD19"]
    assert named("CD56+ NK") == ["NCAM1"]  # NCBI alias
    assert named("CD4+/CD45RA+/CD25- Naive T") == ["CD4", "PTPRC"]  # isoform -> PTPRC, CD25- negated
    assert named("A monocyte that expresses CD14 and is negative for the lineage markers CD3, CD19, and CD20.") == ["CD14"]
    assert named("lineage negative (CD3-negative, CD19-negative)") == []
    assert named("a cell expressing HLA-DRA, CD79A and MS4A1") == ["HLA-DRA", "CD79A", "MS4A1"]
    assert named("T cell") == []
    assert named("CD19+ CD19-positive B cell") == ["CD19"]  # no repeats


def test_gene_mentions_take_words_as_words():
    from mmgene.align.mentions import build_mention_index, find_mentions

    # NCBI aliases: HAS for HAS1, KILLER for TNFRSF10B, DELTA for DLL1, VIA for SEMA6A, REG for REG1A
    syms = ["HAS1", "TNFRSF10B", "DLL1", "SEMA6A", "REG1A", "CD8A", "MS4A1", "CD14"]
    ix = build_mention_index(syms)

    def named(text):
        return [syms[i] for i in find_mentions(text, ix)]

    assert named("natural killer cell") == []
    assert named("A cell that has a nucleus with three to five lobes, via its granules") == []
    assert named("pancreatic delta cell") == named("CD4+/CD25 T Reg") == []
    assert named("a cell expressing KILLER and HAS") == ["TNFRSF10B", "HAS1"]  # written as symbols: still genes
    assert named("cd8a+ cells expressing ms4a1, not cd14-") == ["CD8A", "MS4A1"]  # a digit: a symbol in any case


def test_split_by_cell_is_seeded_and_disjoint():
    from mmgene.pairs import split_cells

    adata = ad.AnnData(np.zeros((10, 1), dtype=np.float32))
    train, test = split_cells(adata, test_size=0.2, seed=0)
    assert len(train) == 8 and len(test) == 2 and not set(train) & set(test)
    expected = np.sort(np.random.default_rng(0).permutation(10)[8:])
    assert test.tolist() == expected.tolist()
    again = split_cells(adata, test_size=0.2, seed=0)
    assert again[1].tolist() == test.tolist()
    with pytest.raises(ParameterError, match="test_size"):
        split_cells(adata, test_size=1.5)


def test_split_by_group_never_leaks():
    from mmgene.pairs import split_cells

    groups = np.repeat(["d1", "d2", "d3", "d4", "d5"], [30, 10, 25, 20, 15])
    adata = ad.AnnData(np.zeros((100, 1), dtype=np.float32), obs=pd.DataFrame({"donor": groups}, index=[f"c{i}" for i in range(100)]))
    for seed in range(5):
        train, test = split_cells(adata, test_size=0.2, seed=seed, group_col="donor")
        assert set(groups[train]).isdisjoint(groups[test])
        assert len(test) >= 20 and len(train) + len(test) == 100
    with pytest.raises(MissingColumnError):
        split_cells(adata, group_col="batch")
    adata.obs["one"] = "x"
    with pytest.raises(ParameterError, match="single group"):
        split_cells(adata, group_col="one")


def _tiny_counts():
    # 6 cells x 5 genes; genes A..E; two classes
    X = np.array(
        [
            [10, 0, 1, 0, 5],
            [8, 1, 0, 0, 4],
            [9, 0, 0, 1, 6],
            [0, 12, 0, 3, 5],
            [1, 9, 2, 0, 4],
            [0, 11, 0, 2, 6],
        ],
        dtype=np.float32,
    )
    obs = pd.DataFrame(
        {
            "cell_type": ["B cells"] * 3 + ["NK cells"] * 3,
            "cl": ["CL:0000236"] * 3 + ["CL:0000623"] * 3,
            "donor": ["d1", "d2", "d3", "d1", "d2", "d3"],
        },
        index=[f"cell{i}" for i in range(6)],
    )
    var = pd.DataFrame({"gene_symbol": ["MS4A1", "NKG7", "CD3E", "GNLY", "ACTB"]}, index=["MS4A1", "NKG7", "CD3E", "GNLY", "ACTB"])
    return ad.AnnData(sp.csr_matrix(X), obs=obs, var=var)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_genes_match_the_lexsort_definition(dtype):
    """Each row's k largest positive entries, highest first, ties by column: as a lexsort of the chunk orders them."""
    from mmgene.cells.inputs import top_genes
    from mmgene.cells.ranking import lexsort_rows

    rng = np.random.default_rng(0)
    dense = rng.integers(0, 4, size=(60, 40)).astype(dtype) * dtype(0.5)  # many ties and zeros
    dense[5] = 0  # an empty row
    dense[7, :3] = [1e-3, 2.0 / 3.0, 2.0 / 3.0]  # values that are not halves
    block = sp.csr_matrix(dense)
    for k in (1, 3, 40):
        got = top_genes(block, k)
        order = lexsort_rows(block.indptr, block.data, block.indices)
        rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))[order]
        for r in range(block.shape[0]):
            expected = order[rows == r][:k]
            lo, hi = got.indptr[r], got.indptr[r + 1]
            assert got.indices[lo:hi].tolist() == block.indices[expected].tolist()
            np.testing.assert_array_equal(got.data[lo:hi], block.data[expected])
    three = top_genes(block, 3)
    assert three.shape == block.shape and three.indptr[6] == three.indptr[5]  # the empty row stays empty


def test_cell_inputs_values_and_order():
    from mmgene.cells.inputs import cell_inputs, top_genes

    adata = _tiny_counts()
    cells = cell_inputs(adata, max_genes=2)
    total = 16.0
    assert cells[0]["genes"] == ["MS4A1", "ACTB"]
    arrays = cell_inputs(adata, max_genes=2, as_arrays=True)
    assert isinstance(arrays[0]["genes"], np.ndarray) and isinstance(arrays[0]["values"], np.ndarray)
    assert [(c["genes"].tolist(), c["values"].tolist()) for c in arrays] == [(c["genes"], c["values"]) for c in cells]
    np.testing.assert_allclose(cells[0]["values"], np.round(np.log1p(np.array([10, 5]) / total * 1e4), 4), rtol=1e-6)
    m = top_genes(sp.csr_matrix(np.array([[1.0, 3.0, 3.0, 0.0]])), 2)
    assert m.indices.tolist() == [1, 2]  # ties keep column order
    with pytest.raises(MissingColumnError):
        cell_inputs(adata, inputs=["X_missing"])
    with pytest.raises(ParameterError):
        cell_inputs(adata, inputs=[])


def test_specific_genes_are_above_average():
    from mmgene.pairs import specific_genes

    adata = _tiny_counts()
    genes = specific_genes(adata, np.array([0, 3]), np.arange(6), k=2)
    X = adata.X.toarray()
    logx = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    excess = np.where(X > 0, logx - logx.mean(0), 0)
    names = np.asarray(adata.var_names)
    for got, row in zip(genes, [0, 3]):
        order = [g for g in np.argsort(-excess[row], kind="stable") if excess[row, g] > 0][:2]
        assert got == names[order].tolist()


def test_make_pairs_columns_captions_negatives_and_exclusion():
    from mmgene.pairs import make_pairs

    adata = _tiny_counts()
    config = PairsConfig(negatives=True, test_size=0.34, captions_per_cell=4)
    pairs = make_pairs(adata, "cell_type", ontology_col="cl", config=config, seed=3)
    assert list(pairs["train"].column_names) == ["cell", "caption", "negative", "label", "negative_label", "obs_name"]
    assert pairs.classes == ["B cells", "NK cells"]
    train = pairs["train"]
    assert len(train) == 4 * len(set(train["obs_name"]))
    captions = {0: set(), 1: set()}
    for row in train:
        captions[row["label"]].add(row["caption"])
        # the negative is a caption of the other class
        assert row["negative_label"] == 1 - row["label"]
        other = pairs.class_text[row["negative_label"]]
        assert row["negative"] in other.all_captions()
    texts = pairs.class_text[1]
    assert "natural killer cell" in texts.names and "NK cell" in texts.names
    assert any("spontaneously kill" in d for d in texts.definitions)
    # same seed, same dataset
    again = make_pairs(adata, "cell_type", ontology_col="cl", config=config, seed=3)
    assert again["train"]["caption"] == train["caption"]
    assert set(pairs["test"]["obs_name"]).isdisjoint(train["obs_name"])

    unseen = make_pairs(adata, "cell_type", config=PairsConfig(exclude_labels=["NK cells"], test_size=0.34), seed=0)
    assert set(unseen["train"]["label"]) == {0}

    grouped = make_pairs(adata, "cell_type", config=PairsConfig(group_col="donor", test_size=0.3), seed=1)
    train_donors = {adata.obs.loc[n, "donor"] for n in grouped["train"]["obs_name"]}
    test_donors = {adata.obs.loc[n, "donor"] for n in grouped["test"]["obs_name"]}
    assert train_donors.isdisjoint(test_donors)


def test_make_pairs_bad_input():
    from mmgene.pairs import make_pairs

    adata = _tiny_counts()
    with pytest.raises(MissingColumnError):
        make_pairs(adata, "celltype")
    with pytest.raises(ParameterError, match="do not exist"):
        make_pairs(adata, "cell_type", config=PairsConfig(exclude_labels=["T cells"]))
    with pytest.raises(ParameterError, match="no cell is left"):
        make_pairs(adata, "cell_type", config=PairsConfig(exclude_labels=["NK cells", "B cells"]))
    with pytest.raises(ParameterError, match="marker_share"):
        PairsConfig(marker_share=2.0)
    with pytest.raises(ParameterError, match="Cell Ontology"):
        make_pairs(adata, "cell_type", ontology_col="donor")


def test_variable_genes_and_panel_augmentation():
    from mmgene.pairs import make_pairs
    from mmgene.pairs.build import variable_genes

    adata = _tiny_counts()
    X = adata.X.toarray()
    logx = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    expected = [adata.var_names[g] for g in np.argsort(-logx.var(0), kind="stable")]
    assert variable_genes(adata, np.arange(6)) == expected
    config = PairsConfig(panel_share=1.0, panel_sizes=(2,), captions_per_cell=2, test_size=0.34)
    pairs = make_pairs(adata, "cell_type", config=config, seed=0)
    panel = set(expected[:2])
    assert all(set(c["genes"]) <= panel for c in pairs["train"]["cell"])
    assert any(len(c["genes"]) > 2 for c in pairs["test"]["cell"])  # test rows keep every gene
    with pytest.raises(ParameterError, match="panel_share"):
        PairsConfig(panel_share=-0.1)


def test_a_class_takes_the_ontology_id_most_of_its_cells_carry():
    from mmgene.pairs.build import majority_terms

    labels = np.array(["a", "a", "a", "b", "b", "c", "d", "d"], dtype=object)
    ids = np.array(["CL:2", "CL:1", "CL:2", "", "CL:3", "", "CL:5", "CL:4"], dtype=object)
    # cells without an id do not vote; a tie goes to the first id in sorted order; "c" has none
    assert majority_terms(labels, ids) == {"a": "CL:2", "b": "CL:3", "d": "CL:4"}
    assert majority_terms(np.array([], dtype=object), np.array([], dtype=object)) == {}


def test_pairs_config_origin_reaches_the_captions():
    from mmgene.pairs.build import plan_pairs

    adata = _tiny_counts()
    plan = plan_pairs(adata, "cell_type", ontology_col=None, config=PairsConfig(species=" mouse", tissue="lung "), seed=0)
    assert PairsConfig(species=" mouse", tissue="lung ").origin.phrase == "mouse lung"
    for text in plan.texts:
        assert f"a {text.names[0]} from mouse lung" in text.name_captions() and f"a lung {text.names[0]}" in text.name_captions()
    plain = plan_pairs(adata, "cell_type", ontology_col=None, config=PairsConfig(), seed=0)
    assert not any(" from " in c for t in plain.texts for c in t.name_captions())


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"captions_per_cell": 1.5}, "captions_per_cell must be a whole number"),  # was a TypeError in make_pairs
        ({"captions_per_cell": 0}, "captions_per_cell must be a whole number"),
        ({"max_genes": 0}, "max_genes must be a whole number"),
        ({"panel_sizes": (0,)}, "each panel size must be a whole number"),  # was "the omics tower has nothing to read"
        ({"panel_sizes": (500, -1)}, "each panel size must be a whole number"),
        ({"panel_sizes": (2.5,)}, "each panel size must be a whole number"),  # was truncated to 2
        ({"panel_sizes": ()}, "needs at least one panel size"),  # panel_share 0.3 was silently ignored
        ({"test_size": float("nan")}, "test_size must be a number"),
        ({"test_size": 1.0}, "test_size must be below 1"),
    ],
)
def test_pairs_config_refuses_settings_that_cannot_make_pairs(settings, message):
    with pytest.raises(ParameterError, match=message):
        PairsConfig(**settings)


def test_pairs_config_keeps_valid_panels():
    assert PairsConfig(panel_sizes=[np.int64(5), 7]).panel_sizes == (5, 7)
    assert PairsConfig(panel_sizes=(), panel_share=0.0).panel_sizes == ()


def test_make_pairs_leaves_out_cells_without_counts():
    """A labelled cell with zero counts gives the omics tower nothing to read: it used to train as the
    same empty input under every caption of its class. It is left out of both splits, as a cell without
    a label is; no training cell with a gene left is a DataError."""
    from mmgene.errors import DataError
    from mmgene.pairs import make_pairs

    adata = _tiny_counts()
    X = adata.X.toarray()
    X[[1, 4]] = 0
    adata.X = sp.csr_matrix(X)
    config = PairsConfig(test_size=0.34)
    pairs = make_pairs(adata, "cell_type", config=config, seed=0)
    used = set(pairs["train"]["obs_name"]) | set(pairs["test"]["obs_name"])
    assert used == {"cell0", "cell2", "cell3", "cell5"}
    assert all(len(c["genes"]) for c in pairs["train"]["cell"]) and all(len(c["genes"]) for c in pairs["test"]["cell"])
    from mmgene.pairs.splits import split_cells

    train, _ = split_cells(adata, test_size=0.34, seed=0)
    X = _tiny_counts().X.toarray()
    X[train] = 0  # only the test cells have counts
    adata.X = sp.csr_matrix(X)
    with pytest.raises(DataError, match="no training cell expresses a gene"):
        make_pairs(adata, "cell_type", config=config, seed=0)


class _FixedModel:
    """Encodes cells by their ``at`` entry and captions by a table: similarities the test sets exactly."""

    def __init__(self, captions: dict[str, list[float]]):
        self.captions = captions

    def encode_text(self, texts):
        return np.array([self.captions[t] for t in texts], dtype=np.float32)

    def encode_inputs(self, cells):
        return np.array([c["at"] for c in cells], dtype=np.float32)


def test_mining_skips_related_classes_and_draws_among_what_is_left():
    import datasets

    from mmgene.pairs import mine_hard_negatives

    # classes: 0 CD4 T cell, 1 T cell (related to 0 and 2), 2 CD8 T cell, 3 B cell
    captions = {0: ["cd4"], 1: ["t", "a t"], 2: ["cd8"], 3: ["b"]}
    model = _FixedModel({"cd4": [1, 0, 0], "t": [0.9, 0.1, 0], "a t": [0.8, 0.2, 0], "cd8": [0.5, 0.5, 0], "b": [0, 0, 1]})
    cells = [{"at": [1, 0, 0]}, {"at": [0.9, 0.1, 0]}, {"at": [0, 0, 1]}]
    rows = datasets.Dataset.from_dict({"cell": cells, "caption": ["x", "y", "z"], "label": [0, 1, 3]})
    related = np.zeros((4, 4), dtype=bool)
    related[[0, 1, 1, 2], [1, 0, 2, 1]] = True
    plain = mine_hard_negatives(rows, model, captions, top_k=1)
    assert plain["negative"] == ["t", "cd4", "cd4"] and plain["negative_label"] == [1, 0, 0]  # B ties: the first listed
    skipping = mine_hard_negatives(rows, model, captions, top_k=1, related=related)
    assert skipping["negative"] == ["cd8", "b", "cd4"] and skipping["negative_label"] == [2, 3, 0]
    for seed in range(6):  # the T cell row has one allowed caption: top_k=3 draws it every time
        assert mine_hard_negatives(rows, model, captions, top_k=3, seed=seed, related=related)["negative"][1] == "b"
    everything = np.ones((4, 4), dtype=bool)  # no unrelated class left: the row keeps its closest other caption
    assert mine_hard_negatives(rows, model, captions, top_k=1, related=everything)["negative"] == ["t", "cd4", "cd4"]


def test_captions_without_origin_name_the_type_only():
    from mmgene.text.captions import class_text
    from mmgene.text.origin import Origin

    lung = class_text(["NK"], "CL:0000623", Origin("mouse", "lung"))
    unknown = class_text(["NK"], "CL:0000623")
    assert lung.all_captions(with_origin=False) == unknown.all_captions()
    assert "a NK from mouse lung" in lung.all_captions() and "a lung NK" in lung.all_captions()
    assert not any("lung" in c or "mouse" in c for c in lung.all_captions(with_origin=False))
    assert len(lung.all_captions()) - len(lung.all_captions(with_origin=False)) == 2 * len(lung.names)
