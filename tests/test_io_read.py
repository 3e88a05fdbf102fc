"""mmgene.io.read: files, backed mode, zarr, where counts live, gene identifiers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mmgene.io
from mmgene.genes.ids import gene_table, id_kind, resolve_gene_ids, settle_repeats, split_joined

GENES = ["CD3E", "MS4A1", "NKG7", "LYZ", "GNLY"]
ENSEMBL = {"CD3E": "ENSG00000198851", "MS4A1": "ENSG00000156738", "NKG7": "ENSG00000105374", "LYZ": "ENSG00000090382", "GNLY": "ENSG00000115523"}


def make(X, var=None, **kw):
    import anndata as ad

    obs = pd.DataFrame(index=[f"cell{i}" for i in range(X.shape[0])])
    var = var if var is not None else pd.DataFrame(index=GENES)
    return ad.AnnData(X=X, obs=obs, var=var, **kw)


COUNTS = sp.csr_matrix(np.array([[0, 3, 1, 0, 7], [2, 0, 0, 5, 1], [1, 1, 1, 1, 1]], dtype=np.float32))


def test_counts_in_X():
    adata = mmgene.io.read(make(COUNTS.copy()))
    rec = adata.uns["mmgene"]["input"]
    assert (rec["matrix"], rec["kind"], rec["n_obs"], rec["n_vars"]) == ("X", "counts", 3, 5)
    assert list(adata.var["ensembl_id"]) == [ENSEMBL[g] for g in GENES]
    assert list(adata.var["gene_symbol"]) == GENES
    assert (rec["symbol_source"], rec["ensembl_source"]) == ("index", "gene table")
    assert rec["genes_with_ensembl"] == 5 and rec["genes_in_gene_table"] == 5
    assert rec["gene_table"].startswith("GENCODE v44")


def test_counts_in_layer_when_X_is_normalised():
    logged = COUNTS.copy()
    logged.data = np.log1p(logged.data)
    adata = mmgene.io.read(make(logged, layers={"counts": COUNTS.copy()}))
    assert adata.uns["mmgene"]["input"]["matrix"] == "layers['counts']"
    assert adata.uns["mmgene"]["input"]["kind"] == "counts"


def test_counts_in_raw_when_X_is_scaled():
    import anndata as ad

    base = make(COUNTS.copy())
    scaled = ad.AnnData(X=np.array(COUNTS.toarray()) - 2.0, obs=base.obs, var=base.var)
    scaled.raw = base
    adata = mmgene.io.read(scaled)
    assert adata.uns["mmgene"]["input"]["matrix"] == "raw.X"
    view = mmgene.io.expression(adata, require="counts")
    assert view.source == "raw.X" and view.kind == "counts"
    np.testing.assert_array_equal(next(view.chunks())[2].toarray(), COUNTS.toarray())


def test_log1p_accepted_unless_counts_required(pbmc68k):
    rec = pbmc68k.uns["mmgene"]["input"]
    assert (rec["matrix"], rec["kind"], rec["n_vars"]) == ("raw.X", "log1p", 765)
    assert rec["genes_with_symbol"] == 765
    from mmgene.errors import NotCountsError

    with pytest.raises(NotCountsError, match=r"found X: negative; raw.X: log1p"):
        mmgene.io.expression(pbmc68k, require="counts")


@pytest.mark.parametrize("column", ["gene_ids", "ensembl_id", "gene_id"])
def test_ensembl_index_with_symbol_column(column):
    var = pd.DataFrame({"feature_name": GENES}, index=[ENSEMBL[g] + ".7" for g in GENES])
    ids = resolve_gene_ids(var)
    assert (ids.symbol_source, ids.ensembl_source) == ("feature_name", "index")
    assert list(ids.ensembl) == [ENSEMBL[g] for g in GENES]  # version suffix stripped
    var2 = pd.DataFrame({column: [ENSEMBL[g] for g in GENES]}, index=[f"x{i}" for i in range(5)])
    ids2 = resolve_gene_ids(var2)
    assert (ids2.symbol_source, ids2.ensembl_source) == ("gene table", column)
    assert list(ids2.symbols) == GENES


def test_unknown_genes_left_empty():
    var = pd.DataFrame(index=["CD3E", "MS4A1", "NOT_A_GENE_1", "LYZ"])
    ids = resolve_gene_ids(var)
    assert list(ids.ensembl) == [ENSEMBL["CD3E"], ENSEMBL["MS4A1"], "", ENSEMBL["LYZ"]]
    assert ids.summary()["ensembl_rate"] == 0.75


def test_id_kind():
    assert id_kind(pd.Index(["ENSG00000198851", "ENSG00000156738.3"])) == "ensembl"
    assert id_kind(pd.Index(["cd3e", "Ms4a1", "xyz"])) == "symbol"
    assert id_kind(pd.Index(["a", "b", "c"])) is None
    table = gene_table()
    assert table.symbol_to_ensembl["TP53"] == "ENSG00000141510"
    assert table.ensembl_to_symbol["ENSG00000141510"] == "TP53"


def test_split_joined_reads_symbol_and_ensembl_either_way_round():
    symbols, ensembl = split_joined(
        ["PTPRC_ENSG00000081237", "ENSG00000105369|CD79A", "HLA-DRA_ENSG00000204287.3", "Ptprc:ENSMUSG00000026395",
         "CD3E", None, "ENSG00000141510.5", "RP11-442N24__B.1", "A_B_ENSG00000204287"]
    )
    assert list(symbols) == ["PTPRC", "CD79A", "HLA-DRA", "Ptprc", "CD3E", None, "ENSG00000141510.5", "RP11-442N24__B.1", "A_B_ENSG00000204287"]
    assert list(ensembl) == ["ENSG00000081237", "ENSG00000105369", "ENSG00000204287", "ENSMUSG00000026395", "", "", "", "", ""]


def test_joined_symbol_and_ensembl_names_read_as_both():
    """scater's uniquifyFeatureNames names (SYMBOL_ENSEMBL) count as the symbol, with the name's own Ensembl
    id (not the gene table's); in var_names alone, or in a gene_symbol column the data brings."""
    names = ["CD3E", "MS4A1_ENSG00000156738", "NKG7", "LYZ_ENSG00000999999", "GNLY"]
    adata = mmgene.io.read(make(COUNTS.copy(), var=pd.DataFrame(index=names)))
    assert list(adata.var["gene_symbol"]) == GENES
    assert list(adata.var["ensembl_id"]) == [ENSEMBL["CD3E"], ENSEMBL["MS4A1"], ENSEMBL["NKG7"], "ENSG00000999999", ENSEMBL["GNLY"]]
    assert adata.uns["mmgene"]["input"]["joined_names_split"] == 2
    brought = mmgene.io.read(make(COUNTS.copy(), var=pd.DataFrame({"gene_symbol": names}, index=names)))
    assert list(brought.var["gene_symbol"]) == GENES and list(brought.var_names) == names
    everything_joined = pd.DataFrame(index=[f"{ENSEMBL[g]}_{g}" for g in GENES])
    assert id_kind(everything_joined.index) == "symbol" and list(resolve_gene_ids(everything_joined).symbols) == GENES


#: real pairs from 10x's hg19 genes.tsv (PBMC 3k): the first "PSMA2" and "TAP2" are novel genes GENCODE
#: names by their ids; the expressed genes are the numbered copies
REPEATS = ["PSMA2", "PSMA2-1", "CD3E", "EFNA3", "EFNA3-1", "TAP2", "TAP2", "NKX2", "NKX2-1"]
REPEAT_IDS = ["ENSG00000256646", "ENSG00000106588", "ENSG00000198851", "ENSG00000143590", "ENSG00000251246",
              "ENSG00000250264", "ENSG00000204267.9", "", "ENSG00000136352"]


def test_settle_repeats_gives_a_repeated_symbol_to_the_gene_gencode_names_so():
    symbols, changed = settle_repeats(REPEATS, REPEAT_IDS)
    assert list(symbols) == ["ENSG00000256646", "PSMA2", "CD3E", "EFNA3", "EFNA4-EFNA3", "ENSG00000250264", "TAP2", "NKX2", "NKX2-1"]
    assert changed == 4  # NKX2-1 is a symbol of its own, not a copy of NKX2
    # a copy whose own symbol another gene has takes its id; without the data's ids nothing moves
    assert list(settle_repeats(["EFNA3", "EFNA3-1", "EFNA4-EFNA3"], ["ENSG00000143590", "ENSG00000251246", ""])[0]) == [
        "EFNA3", "ENSG00000251246", "EFNA4-EFNA3"]
    assert settle_repeats(["PSMA2", "PSMA2-1", "TAP2", "TAP2"], ["", "", "", ""])[1] == 0
    # mouse copies (Clcn4-2 is a gene of its own) have no human id to settle them
    assert list(settle_repeats(["Clcn4", "Clcn4-2"], ["ENSMUSG00000000605", "ENSMUSG00000047545"])[0]) == ["Clcn4", "Clcn4-2"]
    assert settle_repeats(["CD3E", "MS4A1"], ["", ""])[1] == 0


def test_read_settles_repeated_symbols_by_the_data_ensembl_ids():
    """As var_names_make_unique numbers them (the symbols in var_names) and as a data's gene_symbol column repeats them."""
    X = sp.csr_matrix(np.arange(18, dtype=np.float32).reshape(2, 9))
    numbered = make(X.copy(), var=pd.DataFrame({"ensembl_id": REPEAT_IDS}, index=REPEATS[:6] + ["TAP2-1", "NKX2", "NKX2-1"]))
    adata = mmgene.io.read(numbered)
    expected = ["ENSG00000256646", "PSMA2", "CD3E", "EFNA3", "EFNA4-EFNA3", "ENSG00000250264", "TAP2", "NKX2", "NKX2-1"]
    assert list(adata.var["gene_symbol"]) == expected
    assert adata.uns["mmgene"]["input"]["repeated_symbols_settled"] == 5  # "TAP2-1" became "TAP2" as well
    brought = mmgene.io.read(make(X.copy(), var=pd.DataFrame({"gene_symbol": REPEATS, "ensembl_id": REPEAT_IDS}, index=[f"g{i}" for i in range(9)])))
    assert list(brought.var["gene_symbol"]) == expected and list(brought.var["ensembl_id"]) == REPEAT_IDS
    # the data's ids from any column or the index: Ensembl ids in var_names, as CELLxGENE writes them
    indexed = [i or f"ENSG0000099999{k}" for k, i in enumerate(REPEAT_IDS)]
    by_index = mmgene.io.read(make(X.copy(), var=pd.DataFrame({"gene_symbol": REPEATS}, index=indexed)))
    assert list(by_index.var["gene_symbol"]) == expected
    assert mmgene.io.read(make(X.copy(), var=pd.DataFrame({"gene_symbol": REPEATS, "gene_ids": indexed}, index=[f"g{i}" for i in range(9)]))).var[
        "gene_symbol"].tolist() == expected


def test_h5ad_backed_and_zarr_give_identical_chunks(tmp_path):
    adata = make(COUNTS.copy())
    adata.write_h5ad(tmp_path / "a.h5ad")
    adata.write_zarr(tmp_path / "a.zarr")
    mem = mmgene.io.read(tmp_path / "a.h5ad")
    backed = mmgene.io.read(tmp_path / "a.h5ad", backed=True)
    zarr = mmgene.io.read(tmp_path / "a.zarr")
    dense = mmgene.io.read(make(COUNTS.toarray()))
    assert backed.isbacked and backed.uns["mmgene"]["input"]["backed"] is True
    assert mem.uns["mmgene"]["input"]["file"].endswith("a.h5ad")
    blocks = {}
    for name, a in [("mem", mem), ("backed", backed), ("zarr", zarr), ("dense", dense)]:
        parts = [c.toarray() for _, _, c in mmgene.io.expression(a).chunks(2)]
        blocks[name] = np.vstack(parts)
    for name, arr in blocks.items():
        np.testing.assert_array_equal(arr, COUNTS.toarray(), err_msg=name)


def test_chunks_cover_rows_exactly():
    view = mmgene.io.expression(make(COUNTS.copy()))
    assert [(a, b) for a, b, _ in view.chunks(2)] == [(0, 2), (2, 3)]


def test_pbmc3k(pbmc3k):
    rec = pbmc3k.uns["mmgene"]["input"]
    assert (rec["n_obs"], rec["n_vars"], rec["matrix"], rec["kind"]) == (2638, 32738, "X", "counts")
    assert (rec["symbol_source"], rec["ensembl_source"]) == ("index", "ensembl_id")
    assert rec["genes_with_ensembl"] == 32738
    # 10x's hg19 names 95 genes like another; the expressed PSMA2, UQCR11, NDUFB8 are numbered copies
    assert rec["repeated_symbols_settled"] == 109
    assert list(pbmc3k.var.loc[["PSMA2", "PSMA2-1", "UQCR11-1"], "gene_symbol"]) == ["ENSG00000256646", "PSMA2", "UQCR11"]
    # hg19-era ids: most, not all, are still current GENCODE v44 genes.
    assert 0.9 < rec["gene_table_rate"] < 1.0
    # its 87 lower-case names (XXyac-YX155B6.7, hsa-mir-7515; the C1orf/CXorf genes are human style) are
    # 0.3% of 32,738: human
    assert (rec["mouse_style_symbols"], rec["symbols_look_mouse"]) == (87, False)


def test_describe_pbmc3k(pbmc3k):
    from mmgene.io.describe import describe

    info = describe(pbmc3k)
    assert info["label_columns"] == {"cell_type": 8, "cell_type_cl_name": 8, "cell_type_ontology_term_id": 8}
    assert info["obsm"] == {} and info["has_raw"] is False


def test_read_without_expression_keeps_obs_and_obsm(tmp_path):
    import anndata as ad
    import numpy as np
    import pandas as pd

    import mmgene.io
    from mmgene.errors import MMGeneError

    a = ad.AnnData(np.zeros((3, 2), np.float32), obs=pd.DataFrame({"t": ["x", "y", "z"]}, index=["a", "b", "c"]), var=pd.DataFrame(index=["g0", "g1"]))
    a.obsm["X_e"] = np.eye(3, dtype=np.float32)
    a.write_h5ad(tmp_path / "e.h5ad")
    with pytest.raises(MMGeneError):
        mmgene.io.read(tmp_path / "e.h5ad")  # no expression, no gene ids
    b = mmgene.io.read(tmp_path / "e.h5ad", backed=True, expression_needed=False)
    assert b.obs["t"].tolist() == ["x", "y", "z"] and np.array_equal(b.obsm["X_e"], np.eye(3))
    rec = b.uns["mmgene"]["input"]
    assert rec["matrix"] == "not read" and rec["backed"] is True and rec["n_obs"] == 3


def test_log_normalised_chunks_and_symbols():
    """One log-normalisation (log1p of counts per TARGET_SUM, in the caller's dtype; log1p data as is)
    and one symbol per gene (case kept, '' where unknown, resolved when var has no gene_symbol)."""
    from mmgene.errors import NoGeneIdsError
    from mmgene.io.expression import TARGET_SUM, gene_symbols, log_normalise

    view = mmgene.io.expression(make(COUNTS.copy()))
    dense = COUNTS.toarray().astype(np.float64)
    expect = np.log1p(dense * (TARGET_SUM / dense.sum(1, keepdims=True)))
    for dtype in (np.float32, np.float64):
        blocks = [(a, b, m) for a, b, m in view.log_chunks(2, dtype=dtype)]
        assert [(a, b) for a, b, _ in blocks] == [(0, 2), (2, 3)] and all(m.dtype == dtype for _, _, m in blocks)
        got = sp.vstack([m for _, _, m in blocks]).toarray()
        np.testing.assert_allclose(got, expect, rtol=1e-6 if dtype == np.float32 else 1e-15)
        assert np.array_equal(view.log_normalise(COUNTS[1:], dtype=dtype).toarray(), got[1:])  # rows are independent
    stored_zero = sp.csr_matrix((np.array([0.0, 2.5], np.float32), np.array([0, 1]), np.array([0, 2])), shape=(1, 5))
    logged = log_normalise(stored_zero, "log1p", dtype=np.float64)
    assert logged.nnz == 1 and logged.dtype == np.float64 and logged[0, 1] == 2.5 and stored_zero.nnz == 2
    var = pd.DataFrame({"gene_symbol": ["Cd3e", None, "NKG7", "", "GNLY"]}, index=GENES)
    assert gene_symbols(var).tolist() == ["Cd3e", "", "NKG7", "", "GNLY"]
    assert mmgene.io.expression(make(COUNTS.copy(), var=var)).symbols().tolist() == ["Cd3e", "", "NKG7", "", "GNLY"]
    by_ensembl = pd.DataFrame(index=[ENSEMBL[g] for g in GENES])
    assert gene_symbols(by_ensembl).tolist() == GENES
    unknown = pd.DataFrame(index=[f"g{i}" for i in range(5)])
    with pytest.raises(NoGeneIdsError):
        gene_symbols(unknown)
    assert gene_symbols(unknown, or_names=True).tolist() == [f"g{i}" for i in range(5)]


def test_layer_picks_the_matrix_to_read():
    """``layer=`` reads exactly the named matrix, everywhere the expression is read."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import pytest
    import scipy.sparse as sp

    import mmgene.cells
    from mmgene.errors import MissingColumnError
    from mmgene.io import expression

    counts = sp.csr_matrix(np.array([[5, 0, 1], [0, 2, 7]], dtype=np.float32))
    other = sp.csr_matrix(np.array([[0, 3, 9], [4, 0, 0]], dtype=np.float32))
    adata = ad.AnnData(counts, var=pd.DataFrame(index=["CD3E", "LYZ", "MS4A1"]), obs=pd.DataFrame(index=["a", "b"]))
    adata.layers["spliced"] = other
    assert expression(adata).source == "X"
    assert expression(adata, layer="spliced").source == "layers['spliced']"
    assert mmgene.cells.sentences(adata, inplace=False) == ["CD3E MS4A1", "MS4A1 LYZ"]
    assert mmgene.cells.sentences(adata, layer="spliced", inplace=False) == ["MS4A1 LYZ", "CD3E"]
    with pytest.raises(MissingColumnError, match="'nope'.*choose one of: 'X', 'spliced'"):
        expression(adata, layer="nope")


def test_a_uns_mmgene_that_is_not_a_mapping_is_refused_clearly(tmp_path):
    """Something else's value in uns['mmgene'] (a string, say) is neither read as mmgene's records nor
    written over: reading refuses it with a DataError, and the CLI exits 2 leaving the file as it was."""
    from mmgene.errors import DataError
    from tests.hostile import assert_refused

    adata = make(COUNTS.copy(), uns={"mmgene": "my own note"})
    with pytest.raises(DataError) as refused:
        mmgene.io.read(adata)
    assert str(refused.value) == (
        "uns['mmgene'] holds a str, not mmgene's records (a mapping). Where: the AnnData in memory. What to do: rename "
        "or delete uns['mmgene'] (e.g. adata.uns['my_note'] = adata.uns.pop('mmgene')); mmgene keeps its records there."
    )
    assert adata.uns["mmgene"] == "my own note"
    path = tmp_path / "noted.h5ad"
    adata.write_h5ad(path)
    line = assert_refused(["info", path], [tmp_path])
    assert line == f"mmgene: error: uns['mmgene'] holds a str, not mmgene's records (a mapping). Where: {path}. What to do: " + refused.value.fix + "."


def test_reading_does_not_fail_on_a_foreign_uns_mmgene_it_only_names_the_data_by():
    """Naming the data in messages reads uns['mmgene']['input']['file']; something else's value there is no
    record (writing is refused elsewhere), so the expression is read and named by the default."""
    from mmgene.io.expression import expression
    from mmgene.provenance import input_file, record_of, records

    adata = make(COUNTS.copy(), uns={"mmgene": "my own note"})
    assert (records(adata), record_of(adata, "input"), input_file(adata, "x")) == ({}, {}, "x")
    assert expression(adata).origin == "the AnnData"  # was an AttributeError: 'str' object has no attribute 'get'
    adata.uns["mmgene"] = {"input": "not a mapping", "sentences": {"top_k": 3}}
    assert (record_of(adata, "input"), record_of(adata, "sentences"), input_file(adata, "y")) == ({}, {"top_k": 3}, "y")
    adata.uns["mmgene"] = {"input": {"file": "/data/x.h5ad"}}
    assert input_file(adata, "y") == "/data/x.h5ad" and expression(adata).origin == "/data/x.h5ad"


MOUSE = ["Cd3e", "Ms4a1", "Nkg7", "Lyz2", "0610005C13Rik", "Gm12345", "mt-Co1"]


HUMAN_40 = sorted(gene_table().symbol_to_ensembl)[1000:1040]


@pytest.mark.parametrize(
    ("names", "n_mouse", "mouse"),
    [
        (MOUSE, 7, True),
        ([g.upper() for g in MOUSE], 2, True),  # upper-cased mouse symbols: the RIKEN and Gm names still tell
        (["CD3E", "MS4A1", "C1orf112", "CXorf21", "CYorf15A", "GRIK2", "GM2A", "MT-CO1"], 0, False),
        ([*HUMAN_40, "hsa-mir-7515"], 1, False),  # one lower-case name in 41: under 5%
    ],
)
def test_symbols_written_as_mouse_genes_are_counted_and_named(names, n_mouse, mouse):
    ids = resolve_gene_ids(pd.DataFrame(index=names))
    assert (ids.n_mouse_style, ids.looks_mouse) == (n_mouse, mouse)
    assert ids.summary()["symbols_look_mouse"] is mouse


def test_mouse_symbols_are_said_to_be_read_as_human_genes_by_human_models_only(capsys, monkeypatch, tmp_path):
    """`read` records that the symbols look like mouse genes and says nothing; Geneformer's tokenizer (and
    GenePT's default vectors) say they read them as the human genes of the same symbol."""
    from mmgene.cells import rank_encode
    from mmgene.cells.rank_encoding import GeneformerDictionaries
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "quiet", False)
    counts = sp.csr_matrix(np.arange(1, 15, dtype=np.float32).reshape(2, len(MOUSE)))
    adata = mmgene.io.read(make(counts, var=pd.DataFrame(index=MOUSE)))
    assert adata.var.loc["Cd3e", "ensembl_id"] == ENSEMBL["CD3E"]  # the human CD3E
    assert adata.uns["mmgene"]["input"]["symbols_look_mouse"] is True and capsys.readouterr().err == ""
    tokens = {"<pad>": 0, "<mask>": 1, ENSEMBL["CD3E"]: 2, ENSEMBL["NKG7"]: 3}
    dicts = GeneformerDictionaries(tokens, {ENSEMBL["CD3E"]: 1.0, ENSEMBL["NKG7"]: 1.0}, {}, None, "V1")
    assert rank_encode(adata, dictionaries=dicts, n_jobs=1).input_ids[0].tolist() == [3, 2]
    assert (
        "its gene symbols read as mouse genes (7 written in mouse style): Geneformer's V1 vocabulary reads them as "
        "the human genes of the same symbol" in capsys.readouterr().err
    )
    from mmgene.embed import genept_w

    genept_w(adata)
    assert "GenePT's default gene vectors (the NCBI text of human genes) reads them as the human" in capsys.readouterr().err
    human = mmgene.io.read(make(COUNTS.copy()))
    rank_encode(human, dictionaries=dicts, n_jobs=1)
    genept_w(human)
    assert "mouse" not in capsys.readouterr().err
