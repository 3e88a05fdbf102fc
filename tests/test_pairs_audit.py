"""Audit of the (cell, caption) training pairs: unlabelled cells beside an ontology column, spellings of
one label, CELLxGENE's ``unknown`` id, a corpus dataset with no training rows, and gene mentions of
symbols with a dot. Inputs are the shared corpus's real datasets (baron: 175 human pancreas cells)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmgene.errors import DataError, LabelError
from mmgene.pairs.config import PairsConfig

ONTOLOGY = "cell_type_ontology_term_id"
BARON_IDS = {
    "activated_stellate": "CL:0002410",
    "alpha": "CL:0000171",
    "beta": "CL:0000169",
    "delta": "CL:0000173",
    "macrophage": "CL:0000235",
}
PLAIN = PairsConfig(marker_share=0.0, panel_share=0.0, captions_per_cell=1)


@pytest.fixture(scope="module")
def _baron(shared_dir):
    import anndata as ad

    return ad.read_h5ad(shared_dir / "corpus" / "baron_pancreas_human.h5ad")


@pytest.fixture
def baron(_baron):
    """The 175 baron cells with plain string label and id columns a test may rewrite."""
    adata = _baron.copy()
    for column in ("cell_type", ONTOLOGY):
        adata.obs[column] = adata.obs[column].astype(object)
    return adata


def _used(pairs) -> set[str]:
    return set(pairs["train"]["obs_name"]) | set(pairs["test"]["obs_name"])


def test_unlabelled_cells_beside_an_ontology_column_leave_each_class_its_own_id(baron):
    """A cell with no label (NaN) used to shift every label against its id: an IndexError."""
    from mmgene.pairs import make_pairs

    missing = baron.obs_names[[3, 100]]
    baron.obs.loc[missing, "cell_type"] = np.nan
    pairs = make_pairs(baron, "cell_type", ontology_col=ONTOLOGY, config=PLAIN, seed=0)
    assert pairs.classes == sorted(BARON_IDS)
    assert [t.term_id for t in pairs.class_text] == [BARON_IDS[c] for c in pairs.classes]
    assert pairs.unlabelled_cells == 2
    assert _used(pairs) == set(baron.obs_names) - set(missing)


def test_labels_differing_only_in_case_or_blanks_are_refused(baron):
    """" Alpha" and "alpha " were classes of their own beside "alpha", with the same captions: each
    other's contrastive negatives. Refused, as evaluation refuses them."""
    from mmgene.pairs import make_pairs

    alpha = np.flatnonzero(baron.obs["cell_type"] == "alpha")
    baron.obs.loc[baron.obs_names[alpha[:10]], "cell_type"] = " Alpha"
    with pytest.raises(LabelError) as caught:
        make_pairs(baron, "cell_type", ontology_col=ONTOLOGY, config=PLAIN, seed=0)
    assert str(caught.value).startswith(
        "making training pairs found ' Alpha' and 'alpha' as two classes: they differ only in case or blanks. "
        "Where: obs['cell_type']."
    )


def test_cellxgene_unknown_ids_leave_cells_out_of_the_pairs_as_out_of_the_corpus(baron, tmp_path):
    """CELLxGENE's id ``unknown`` marks a cell nobody typed: read_corpus leaves it out, and so must the
    pairs (they refused the whole dataset: "'unknown' is not a Cell Ontology id")."""
    from test_train_corpus import HUMAN_GENES, _adata, _manifest

    from mmgene.align.config import AlignConfig, CorpusTrainingConfig
    from mmgene.align.corpus_train import corpus_pairs
    from mmgene.corpus import read_corpus
    from mmgene.pairs import make_pairs

    macrophages = baron.obs_names[baron.obs["cell_type"] == "macrophage"][:4]
    untyped = baron.obs_names[baron.obs["cell_type"] == "beta"][:3]
    baron.obs.loc[macrophages, ONTOLOGY] = "unknown"
    baron.obs.loc[untyped, ["cell_type", ONTOLOGY]] = "unknown"
    pairs = make_pairs(baron, "cell_type", ontology_col=ONTOLOGY, config=PLAIN, seed=0)
    assert pairs.classes == sorted(BARON_IDS)
    assert [t.term_id for t in pairs.class_text] == [BARON_IDS[c] for c in pairs.classes]
    assert pairs.unlabelled_cells == 7
    assert _used(pairs) == set(baron.obs_names) - set(macrophages) - set(untyped)

    classes = [("T", "CL:0000084", [0, 1, 2]), ("B", "CL:0000236", [3, 4]), ("unknown", "unknown", [6])]
    corpus = read_corpus(_manifest(tmp_path, [("d", "human", _adata(HUMAN_GENES, classes, 6, 0))]))
    config = AlignConfig(pairs=PLAIN)
    balance = CorpusTrainingConfig(rows_per_dataset=12)
    got, record = corpus_pairs(corpus, inputs=("genes",), config=config, balance=balance)
    assert got.classes == ["B cell", "T cell"] and record["class_ids"] == ["CL:0000236", "CL:0000084"]
    names = set(got["train"]["obs_name"]) | set(got["test"]["obs_name"])
    assert names == {f"d:c{i}" for i in range(12)}


def test_a_corpus_dataset_with_no_training_rows_is_refused_by_name_not_a_zero_division(tmp_path):
    from test_train_corpus import HUMAN_GENES, MOUSE_GENES, _adata, _manifest

    from mmgene.align.balance import balanced_rows
    from mmgene.align.config import AlignConfig, CorpusTrainingConfig
    from mmgene.align.corpus_train import corpus_pairs
    from mmgene.corpus import read_corpus

    with pytest.raises(DataError, match=r"no training rows.*Where: dataset 2 of 3, in corpus order"):
        balanced_rows([np.array([0, 1]), np.array([], dtype=np.int64), np.array([2])], 4)
    classes = [("T", "CL:0000084", [0, 1, 2]), ("B", "CL:0000236", [3, 4])]
    corpus = read_corpus(_manifest(tmp_path, [
        ("human", "human", _adata(HUMAN_GENES, classes, 6, 0)), ("mouse", "mouse", _adata(MOUSE_GENES, classes, 6, 1)),
    ]))
    everyone = {"mouse": {f"c{i}" for i in range(12)}}  # every mouse cell contradicted
    with pytest.raises(DataError, match="dataset 2 of 2"):
        corpus_pairs(
            corpus, inputs=("genes",), config=AlignConfig(pairs=PLAIN), balance=CorpusTrainingConfig(), left_out=everyone
        )


def test_gene_mentions_read_symbols_with_a_dot(shared_dir):
    """Marker captions name the dataset's genes, "RP11-290F20.3" (kang) among them: the dot split the
    symbol in two, so the text tower never linked the caption to that gene. A full stop still ends a clause."""
    import anndata as ad

    from mmgene.align.mentions import build_mention_index, find_mentions
    from mmgene.text.captions import MARKER_TEMPLATES

    kang = ad.read_h5ad(shared_dir / "corpus" / "kang_ifnb_pbmc.h5ad", backed="r")
    symbols = [str(s) for s in kang.var["gene_symbol"]]
    index = build_mention_index(symbols, use_aliases=False)
    want = [symbols.index("RP11-290F20.3"), symbols.index("LYZ")]
    for template in MARKER_TEMPLATES:
        caption = template.format(name="monocyte", genes="RP11-290F20.3 and LYZ", plus="RP11-290F20.3+ LYZ+")
        assert find_mentions(caption, index) == want, caption
    assert find_mentions("a monocyte with high RP11-290F20.3. It is LYZ-negative", index) == want[:1]
    assert find_mentions("negative for LYZ. Expresses RP11-290F20.3.", index) == want[:1]
