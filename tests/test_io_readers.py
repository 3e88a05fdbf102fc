"""mmgene.io.read takes what users have: Cell Ranger .h5 and matrix folders, and .loom files."""

from __future__ import annotations

import gzip

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from hostile import assert_refused, snapshot

from mmgene.errors import InputFileError
from mmgene.io import read

COUNTS = np.array([[0, 3, 1, 0], [2, 0, 0, 5], [1, 1, 4, 0]], dtype=np.int32)  # cells x genes
GENES = ["CD3E", "MS4A1", "LYZ", "NKG7"]
IDS = ["ENSG00000198851", "ENSG00000156738", "ENSG00000090382", "ENSG00000105374"]
BARCODES = ["AAAC-1", "AAAG-1", "AAAT-1"]


def _write_cellranger_h5(path):
    """Cell Ranger 3's layout: genes x cells CSC in /matrix, one antibody feature to leave out."""
    genes_by_cells = sp.csc_matrix(np.vstack([COUNTS.T, [[7, 7, 7]]]))
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["data"], m["indices"], m["indptr"] = genes_by_cells.data, genes_by_cells.indices, genes_by_cells.indptr
        m["shape"] = np.array(genes_by_cells.shape, dtype=np.int32)
        m["barcodes"] = np.array(BARCODES, dtype="S")
        feats = m.create_group("features")
        feats["id"] = np.array(IDS + ["CD3_TotalSeqB"], dtype="S")
        feats["name"] = np.array(GENES + ["CD3"], dtype="S")
        feats["feature_type"] = np.array(["Gene Expression"] * 4 + ["Antibody Capture"], dtype="S")
        feats["genome"] = np.array(["GRCh38"] * 5, dtype="S")
        feats["_all_tag_keys"] = np.array([b"genome"])


def _write_mtx_folder(folder, genes=GENES, ids=IDS):
    folder.mkdir()
    scipy.io.mmwrite(folder / "matrix.mtx", sp.coo_matrix(COUNTS.T))
    for name in ("matrix.mtx",):
        (folder / f"{name}.gz").write_bytes(gzip.compress((folder / name).read_bytes()))
        (folder / name).unlink()
    rows = "".join(f"{i}\t{g}\tGene Expression\n" for i, g in zip(ids, genes))
    (folder / "features.tsv.gz").write_bytes(gzip.compress(rows.encode()))
    (folder / "barcodes.tsv.gz").write_bytes(gzip.compress("".join(b + "\n" for b in BARCODES).encode()))


def _check(adata):
    assert list(adata.obs_names) == BARCODES
    assert list(adata.var_names) == GENES
    X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    np.testing.assert_array_equal(X, COUNTS)
    assert adata.uns["mmgene"]["input"]


def test_cell_ranger_h5_keeps_gene_expression_only(tmp_path):
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    _write_cellranger_h5(path)
    adata = read(path)
    _check(adata)
    assert list(adata.var["ensembl_id"]) == IDS


def test_cell_ranger_matrix_folder(tmp_path):
    folder = tmp_path / "filtered_feature_bc_matrix"
    _write_mtx_folder(folder)
    adata = read(folder)
    _check(adata)
    assert list(adata.var["ensembl_id"]) == IDS


def test_a_repeated_symbol_goes_to_the_gene_gencode_names_so(tmp_path):
    """10x's hg19 reference names a novel gene PSMA2 before the real one; var_names_make_unique numbers the
    second "PSMA2-1", and its symbol is PSMA2 while the first takes its Ensembl id."""
    folder = tmp_path / "filtered_gene_bc_matrices"
    ids = ["ENSG00000256646", "ENSG00000106588", IDS[2], IDS[3]]
    _write_mtx_folder(folder, ["PSMA2", "PSMA2", "LYZ", "NKG7"], ids)
    adata = read(folder)
    assert list(adata.var_names) == ["PSMA2", "PSMA2-1", "LYZ", "NKG7"]
    assert list(adata.var["gene_symbol"]) == ["ENSG00000256646", "PSMA2", "LYZ", "NKG7"]
    assert list(adata.var["ensembl_id"]) == ids and adata.uns["mmgene"]["input"]["repeated_symbols_settled"] == 2


def test_loom(tmp_path):
    pytest.importorskip("loompy")
    path = tmp_path / "cells.loom"
    source = ad.AnnData(sp.csr_matrix(COUNTS.astype(np.float32)), obs=pd.DataFrame(index=BARCODES), var=pd.DataFrame(index=GENES))
    source.write_loom(path)
    _check(read(path))


def test_foreign_formats_are_refused_clearly(tmp_path):
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    _write_cellranger_h5(path)
    with pytest.raises(InputFileError, match="cannot be opened backed"):
        read(path, backed=True)
    broken = tmp_path / "broken"
    _write_mtx_folder(broken)
    (broken / "barcodes.tsv.gz").write_bytes(gzip.compress(b"only-one\n"))
    with pytest.raises(InputFileError, match="not a readable Cell Ranger"):
        read(broken)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match="Cell Ranger matrix folder"):
        read(empty)


def test_the_cli_reads_a_cell_ranger_folder(tmp_path):
    from typer.testing import CliRunner

    from mmgene.cli.app import app

    folder = tmp_path / "filtered_feature_bc_matrix"
    _write_mtx_folder(folder)
    res = CliRunner().invoke(app, ["info", str(folder)])
    assert res.exit_code == 0, res.output
    assert "3" in res.output and "4" in res.output


# -- an unpacked Cell Ranger folder (matrix.mtx, features.tsv, barcodes.tsv) reads as the gzipped one --
FEATURES = "".join(f"{i}\t{g}\tGene Expression\n" for i, g in zip(IDS, GENES)) + "CD3_TotalSeqB\tCD3\tAntibody Capture\n"
V3_COUNTS = np.hstack([COUNTS, [[7], [7], [7]]])  # cells x features; the antibody column is left out


def _write_folder(folder, gzipped, legacy=False):
    """A Cell Ranger 3 folder (features.tsv with an antibody feature), or a Cell Ranger 2 one (genes.tsv,
    two columns, gene expression only); every file gzipped or none."""
    folder.mkdir()
    scipy.io.mmwrite(folder / "matrix.mtx", sp.coo_matrix((COUNTS if legacy else V3_COUNTS).T))
    if legacy:
        pd.DataFrame({"id": IDS, "name": GENES}).to_csv(folder / "genes.tsv", sep="\t", header=False, index=False)
    else:
        (folder / "features.tsv").write_text(FEATURES)
    pd.Series(BARCODES).to_csv(folder / "barcodes.tsv", header=False, index=False)
    if gzipped:
        for path in list(folder.iterdir()):
            path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
            path.unlink()
    return folder


def _assert_same(a, b):
    """Equal AnnData: the same matrix (format, dtype, values), obs, var and uns, and nothing else."""
    assert type(a.X) is type(b.X) and a.X.dtype == b.X.dtype and a.shape == b.shape
    assert (a.X != b.X).nnz == 0
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    assert a.uns == b.uns
    assert not a.layers and not b.layers and not a.obsm and not b.obsm and a.raw is None and b.raw is None


def _without_record(adata):
    """``adata`` with the parts of its input record that name the file or the time dropped."""
    entry = adata.uns["mmgene"]["input"]
    del entry["file"], entry["created"]
    return adata


@pytest.mark.parametrize("legacy", [False, True], ids=["cellranger3", "cellranger2"])
def test_an_unpacked_matrix_folder_reads_as_the_gzipped_one(tmp_path, legacy):
    plain = _write_folder(tmp_path / "plain", gzipped=False, legacy=legacy)
    packed = _write_folder(tmp_path / "packed", gzipped=True, legacy=legacy)
    before = snapshot([tmp_path])
    a, b = read(plain), read(packed)
    assert snapshot([tmp_path]) == before  # reading writes nothing
    assert a.uns["mmgene"]["input"]["file"] == str(plain) and b.uns["mmgene"]["input"]["file"] == str(packed)
    _assert_same(_without_record(a), _without_record(b))
    _check(a)
    assert list(a.var["gene_ids"]) == IDS and list(a.var["ensembl_id"]) == IDS
    assert ("feature_types" in a.var.columns) is not legacy
    assert a.X.dtype == np.float32


@pytest.mark.parametrize("legacy", [False, True], ids=["cellranger3", "cellranger2"])
def test_a_matrix_folder_reads_as_scanpys_reader_reads_it(tmp_path, legacy):
    """Where scanpy 1.11 reads the folder (Cell Ranger 3 gzipped, Cell Ranger 2 plain), mmgene's reader
    gives the same AnnData."""
    import scanpy as sc

    from mmgene.io.tenx import read_mtx_folder

    folder = _write_folder(tmp_path / "f", gzipped=not legacy, legacy=legacy)
    _assert_same(read_mtx_folder(folder), sc.read_10x_mtx(folder, var_names="gene_symbols", gex_only=True))


def test_a_broken_matrix_folder_is_refused_clearly(tmp_path):
    missing = _write_folder(tmp_path / "missing", gzipped=False)
    (missing / "barcodes.tsv").unlink()
    with pytest.raises(InputFileError) as err:
        read(missing)
    assert str(err.value) == (
        f"the Cell Ranger matrix folder has no barcodes.tsv(.gz). Where: {missing}. "
        "What to do: add barcodes.tsv(.gz) (Cell Ranger writes it beside matrix.mtx)."
    )
    doubled = _write_folder(tmp_path / "doubled", gzipped=False)
    (doubled / "features.tsv.gz").write_bytes(gzip.compress((doubled / "features.tsv").read_bytes()))
    with pytest.raises(InputFileError, match=r"holds both features\.tsv and features\.tsv\.gz; mmgene cannot tell"):
        read(doubled)
    short = _write_folder(tmp_path / "short", gzipped=False)
    (short / "features.tsv").write_text(FEATURES.split("\n", 1)[1])
    with pytest.raises(InputFileError) as err:
        read(short)
    assert err.value.what == "not a readable Cell Ranger matrix folder: features.tsv has 4 rows but matrix.mtx has 5 genes"
    truncated = _write_folder(tmp_path / "truncated", gzipped=True)
    (truncated / "matrix.mtx.gz").write_bytes((truncated / "matrix.mtx.gz").read_bytes()[:-12])
    with pytest.raises(InputFileError, match="not a readable Cell Ranger or .loom file"):
        read(truncated)


def test_the_cli_refuses_a_broken_matrix_folder_with_status_2(tmp_path):
    folder = _write_folder(tmp_path / "filtered_feature_bc_matrix", gzipped=False)
    (folder / "barcodes.tsv").write_text("only-one\n")
    message = assert_refused(["info", folder], [tmp_path], contains="barcodes.tsv has 1 rows but matrix.mtx has 3 cells")
    assert str(folder) in message
