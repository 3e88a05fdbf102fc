"""An index records the genes its cells were read from, and label transfer says when a query's differ."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from mmgene.io.panel import LOW_SHARED_SHARE, GenePanel, compare_panels

DIM = 8


def _cells(n: int, seed: int) -> np.ndarray:
    """Vectors around three centres, one per type of :func:`_types`."""
    centres = np.random.default_rng(99).normal(size=(3, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    return (centres[np.arange(n) % 3] + 0.1 * rng.normal(size=(n, DIM))).astype(np.float32)


def _types(n: int) -> list[str]:
    return [("B", "NK", "T")[i % 3] for i in range(n)]


def _anndata(genes: list[str], n: int, seed: int, prefix: str) -> ad.AnnData:
    counts = np.random.default_rng(seed).poisson(2.0, (n, len(genes))).astype(np.float32)
    obs = pd.DataFrame({"cell_type": _types(n)}, index=[f"{prefix}{i}" for i in range(n)])
    return ad.AnnData(counts, obs=obs, var=pd.DataFrame(index=genes), obsm={"X_emb": _cells(n, seed)})


HUMAN = ["CD3E", "MS4A1", "NKG7", "LYZ", "GNLY", "CD14", "IL7R", "CCR7"]
MOUSE = ["Cd3e", "Ms4a1", "Nkg7", "Lyz2", "Gnly", "Cd14", "Il7r", "Ccr7"]


# ---------------------------------------------------------------------- panels and their comparison
def test_a_panel_holds_upper_cased_symbols_without_blanks():
    var = pd.DataFrame({"gene_symbol": ["Cd3e", "MS4A1_ENSG00000156738", "", "ENSG00000000003", "nkg7"]}, index=list("abcde"))
    panel = GenePanel.of_var(var)  # a joined name reads as its symbol; an Ensembl id standing for one is kept
    assert panel == GenePanel(frozenset({"CD3E", "MS4A1", "ENSG00000000003", "NKG7"}), looks_mouse=True)  # 1 of 4 mouse style
    assert panel.species == "mouse"
    assert GenePanel.of_var(pd.DataFrame(index=HUMAN)).species == "human"
    assert GenePanel.of_var(pd.DataFrame(index=pd.Index([], dtype=str))) is None


def test_a_panel_round_trips_through_its_stored_form_sorted():
    panel = GenePanel.of_var(pd.DataFrame(index=["NKG7", "CD3E", "LYZ"]))
    stored = panel.to_meta()
    assert stored == {"symbols": ["CD3E", "LYZ", "NKG7"], "looks_mouse": False}
    assert GenePanel.from_meta(json.loads(json.dumps(stored))) == panel
    assert GenePanel.from_meta(None) is None


def test_two_panels_differ_below_half_of_the_smaller_one_shared():
    reference = GenePanel(frozenset(f"G{i}" for i in range(10)), False)
    half = compare_panels(reference, GenePanel(frozenset({"G0", "G1", "X2", "X3"}), False))
    assert (half.shared, half.reference_genes, half.query_genes, half.shared_share) == (2, 10, 4, 0.5)
    assert LOW_SHARED_SHARE == 0.5 and not half.panels_differ and half.note() is None
    less = compare_panels(reference, GenePanel(frozenset({"G0", "X1", "X2", "X3"}), False))
    assert less.shared_share == 0.25 and less.panels_differ
    assert less.note() == (
        "the query shares 1 genes with the reference (25% of the query's 4, 10% of the reference's 10), so their cells' "
        "vectors were made from mostly different genes. Nearest reference cells, and the labels they give, may be wrong "
        "even at high confidence: embed both datasets from their shared genes (adata[:, shared]) and rebuild the index"
    )
    subset = compare_panels(reference, GenePanel(frozenset({"G0", "G1"}), False))  # a query measured on a subset
    assert subset.shared_share == 1.0 and subset.note() is None


def test_two_species_are_said_even_on_the_same_symbols():
    match = compare_panels(GenePanel.of_var(pd.DataFrame(index=HUMAN)), GenePanel.of_var(pd.DataFrame(index=MOUSE)))
    assert (match.shared, match.species_differ, match.panels_differ) == (7, True, False)  # Lyz2 is not LYZ
    assert match.note().startswith(
        "the reference's genes read as human and the query's as mouse: cells are compared through genes of the same symbol. "
    )
    assert match.record() == {
        "shared_genes": 7, "reference_genes": 8, "query_genes": 8, "reference_species": "human", "query_species": "mouse",
    }


# ---------------------------------------------------------------------- what an index records
def test_an_index_built_from_an_anndata_records_its_genes_and_keeps_them_when_saved(tmp_path):
    from mmgene.index import CellIndex

    index = CellIndex.build(_anndata(HUMAN, 30, 0, "r"), "X_emb", obs_columns=["cell_type"])
    assert index.gene_panel == GenePanel(frozenset(HUMAN), False) and index.folder is None
    index.save(tmp_path / "idx")
    assert json.loads((tmp_path / "idx" / "meta.json").read_text())["genes"] == {"symbols": sorted(HUMAN), "looks_mouse": False}
    loaded = CellIndex.load(tmp_path / "idx")
    assert loaded.gene_panel == index.gene_panel and loaded.folder == tmp_path / "idx"


def test_an_index_of_bare_vectors_records_no_genes():
    from mmgene.index import CellIndex

    index = CellIndex.from_vectors(_cells(30, 0), [f"c{i}" for i in range(30)], pd.DataFrame({"cell_type": _types(30)}))
    assert index.gene_panel is None and "genes" not in index.meta


def test_a_stored_gene_panel_of_the_wrong_shape_is_refused_at_load(tmp_path):
    from mmgene.errors import MetadataError
    from mmgene.index import CellIndex

    CellIndex.build(_anndata(HUMAN, 30, 0, "r"), "X_emb").save(tmp_path / "idx")
    meta_path = tmp_path / "idx" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["genes"]["looks_mouse"] = "no"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(MetadataError, match=r"genes\.looks_mouse.*must be true or false"):
        CellIndex.load(tmp_path / "idx")
    meta["genes"] = {"symbols": ["CD3E"], "looks_mouse": False, "species": "human"}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(MetadataError, match=r"genes\.species.*is not a known field"):
        CellIndex.load(tmp_path / "idx")


def test_a_streamed_build_records_the_genes_of_its_files(tmp_path):
    from mmgene.index import AnnDataObsm, build_streamed

    _anndata(HUMAN[:5], 200, 1, "a").write_h5ad(tmp_path / "a.h5ad")
    _anndata(HUMAN[3:], 200, 2, "b").write_h5ad(tmp_path / "b.h5ad")
    source = AnnDataObsm([tmp_path / "a.h5ad", tmp_path / "b.h5ad"], "X_emb", obs_columns=["cell_type"])
    assert source.gene_panel() == GenePanel(frozenset(HUMAN), False)
    index = build_streamed(source, tmp_path / "idx", kind="ivf", nlist=2, nprobe=2, embedding_key="X_emb")
    assert index.gene_panel == GenePanel(frozenset(HUMAN), False)


def test_shards_have_the_union_of_their_panels_or_none(tmp_path):
    from mmgene.index import CellIndex, IndexShards

    one = CellIndex.build(_anndata(HUMAN[:4], 30, 0, "a"), "X_emb", obs_columns=["cell_type"])
    two = CellIndex.build(_anndata(HUMAN[2:], 30, 1, "b"), "X_emb", obs_columns=["cell_type"])
    assert IndexShards([one, two]).gene_panel == GenePanel(frozenset(HUMAN), False)
    bare = CellIndex.from_vectors(_cells(30, 2), [f"c{i}" for i in range(30)], pd.DataFrame({"cell_type": _types(30)}),
                                  embedding_key="X_emb")
    assert IndexShards([one, bare]).gene_panel is None


# ---------------------------------------------------------------------- label transfer
def _reference(tmp_path, genes=HUMAN):
    from mmgene.index import CellIndex

    CellIndex.build(_anndata(genes, 60, 0, "r"), "X_emb", obs_columns=["cell_type"]).save(tmp_path / "idx")
    return CellIndex.load(tmp_path / "idx")


def test_transfer_from_the_same_panel_says_nothing_and_records_the_match(tmp_path, capsys):
    from mmgene.query import transfer_labels

    query = _anndata(HUMAN[:6], 30, 5, "q")
    table = transfer_labels(_reference(tmp_path), query, "cell_type", k=5)
    assert "genes" not in capsys.readouterr().err
    assert list(table["label"]) == _types(30)
    record = query.uns["mmgene"]["cell_type_transferred"]
    assert record["genes"] == {"shared_genes": 6, "reference_genes": 8, "query_genes": 6, "reference_species": "human", "query_species": "human"}
    assert record["reference"] == str(tmp_path / "idx")  # the index folder, not the file its vectors came from
    assert table.attrs["genes"] == record["genes"]


def test_transfer_from_another_panel_or_species_says_so(tmp_path, capsys):
    from mmgene.query import transfer_labels

    reference = _reference(tmp_path)
    other = _anndata(["CD3E", "PTPRC", "HBB", "PPBP", "FCER1A", "CST3", "XIST", "MALAT1"], 30, 5, "q")
    transfer_labels(reference, other, "cell_type", k=5)
    err = capsys.readouterr().err
    assert "mmgene: warning: transfer_labels: the query shares 1 genes with the reference (12% of the query's 8, 12% of the reference's 8)" in err
    mouse = _anndata(MOUSE, 30, 6, "m")
    transfer_labels(reference, mouse, "cell_type", k=5)
    err = capsys.readouterr().err
    assert "the reference's genes read as human and the query's as mouse" in err and "shares" not in err
    assert mouse.uns["mmgene"]["cell_type_transferred"]["genes"]["query_species"] == "mouse"


def test_transfer_of_an_array_or_from_bare_vectors_compares_no_panels(tmp_path, capsys):
    from mmgene.index import CellIndex
    from mmgene.query import transfer_labels

    assert transfer_labels(_reference(tmp_path), _cells(10, 3), "cell_type", k=3).attrs["genes"] is None
    bare = CellIndex.from_vectors(_cells(60, 0), [f"c{i}" for i in range(60)], pd.DataFrame({"cell_type": _types(60)}),
                                  embedding_key="X_emb")
    table = transfer_labels(bare, _anndata(MOUSE, 30, 6, "m"), "cell_type", k=3)
    assert table.attrs["genes"] is None and "genes" not in capsys.readouterr().err


def test_the_cli_shows_the_recorded_genes_and_the_transfer_match(tmp_path):
    from hostile import run_cli_here

    _reference(tmp_path)
    info = run_cli_here("index", "info", tmp_path / "idx")
    assert "genes:      8 (human), compared with a query's by transfer" in info.stdout
    assert json.loads(run_cli_here("index", "info", tmp_path / "idx", "--json").stdout)["genes"] == {"count": 8, "species": "human"}
    _anndata(MOUSE, 30, 6, "m").write_h5ad(tmp_path / "q.h5ad")
    out = run_cli_here("transfer", tmp_path / "idx", tmp_path / "q.h5ad", "-c", "cell_type", "-k", "3", "-o", tmp_path / "o.h5ad", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["genes"]["query_species"] == "mouse"
    assert "read as human and the query's as mouse" in out.stderr


# ---------------------------------------------------------------------- the shared corpus
def test_the_shared_pbmc_panels_that_transfer_badly_are_the_ones_said_to_differ(shared_dir):
    from mmgene.io import read

    corpus = shared_dir / "corpus"

    def panel(name):  # as mmgene reads them (Kang's joined names read as their symbols)
        return GenePanel.of(read(corpus / name, backed=True, expression_needed=False))

    kang, symphony, pbmc3k = panel("kang_ifnb_pbmc.h5ad"), panel("symphony_pbmc_3chem.h5ad"), panel("../pbmc3k.h5ad")
    across = compare_panels(kang, symphony)
    assert (across.shared, across.reference_genes, across.query_genes, across.panels_differ) == (261, 1267, 1767, True)
    assert not compare_panels(pbmc3k, kang).panels_differ and compare_panels(pbmc3k, kang).note() is None
    lung = compare_panels(pbmc3k, panel("zilionis_mouse_lung.h5ad"))
    assert lung.species_differ and not lung.panels_differ
