"""Audit of the input readers and of where results are written: damaged or odd input is refused with
one clear line, and a user's files are never replaced or removed by mistake."""

from __future__ import annotations

import gzip
import os
import warnings

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hostile import assert_refused, run_cli, run_cli_here, snapshot
from test_io_readers import _write_cellranger_h5

from mmgene.atomic import atomic_path, stale_temporaries
from mmgene.errors import DuplicateGenesError, InputFileError, MatrixStructureError
from mmgene.io import expression, read

GENES = ["CD3E", "MS4A1", "LYZ", "NKG7"]
FIX_CORRUPT = "What to do: the matrix is corrupt: write it again from its source"


def _anndata(n_cells: int = 3, genes: list[str] = GENES, cells: list[str] | None = None) -> ad.AnnData:
    """``n_cells`` cells holding 3 counts of the first and third gene each, plus a label column."""
    X = sp.csr_matrix(
        (np.full(2 * n_cells, 3, np.float32), np.tile([0, 2], n_cells), np.arange(0, 2 * n_cells + 1, 2)),
        shape=(n_cells, len(genes)),
    )
    obs = pd.DataFrame({"cell_type": ["B cells", "NK cells"] * (n_cells // 2) + ["B cells"] * (n_cells % 2)},
                       index=cells or [f"c{i}" for i in range(n_cells)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # anndata warns of repeated names it is asked to hold
        return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))


def _damage_chunk(path, dataset: str, chunk: int) -> None:
    """Overwrite one compressed chunk of ``dataset`` in the HDF5 file ``path`` so that it cannot be decoded."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset : info.byte_offset + info.size] = b"\x55" * info.size
    path.write_bytes(bytes(raw))


def _late_damaged_h5ad(path):
    """3,000 cells whose X/data is stored in gzip chunks of 500 values; the last chunk (the values of
    cells 2,750 to 2,999) cannot be decoded."""
    _anndata(3000).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        data = f["X/data"][...]
        del f["X/data"]
        f["X"].create_dataset("data", data=data, chunks=(500,), compression="gzip")
    _damage_chunk(path, "X/data", 11)
    return path


def test_a_damaged_chunk_of_a_backed_h5ad_is_refused_naming_the_cells(tmp_path):
    """Read backed, a compressed chunk that fails to decode gave h5py's raw OSError (a traceback from the
    CLI) when its rows were streamed; read whole it was already an InputFileError."""
    path = _late_damaged_h5ad(tmp_path / "cells.h5ad")
    adata = read(path, backed=True)  # the first cells, which say what X holds, read fine
    with pytest.raises(InputFileError) as caught:
        expression(adata).validate()
    assert str(caught.value).startswith("cannot read cells 2,048 to 2,999 of X (OSError: Can't synchronously read data")
    assert str(caught.value).endswith(
        f"Where: {path}. What to do: the file is damaged (part of it cannot be decoded): copy it again from its source."
    )
    line = assert_refused(["info", path, "--backed"], [tmp_path], contains="cannot read cells 2,048 to 2,999 of X")
    assert "copy it again from its source" in line


def test_a_damaged_chunk_of_a_backed_zarr_store_is_refused(tmp_path):
    """zarr's codec error for a chunk file that is not what it claims escaped as a RuntimeError when the
    store was opened with its matrix left on disk."""
    path = tmp_path / "cells.zarr"
    _anndata(30).write_zarr(path)
    (path / "X" / "data" / "0").write_bytes(b"garbage" * 10)
    first_cells = r"^cannot read the first cells of X \(RuntimeError: error during blosc decompression"
    with pytest.raises(InputFileError, match=first_cells):
        read(path, backed=True)
    assert_refused(["info", path, "--backed"], [tmp_path], contains="cannot read the first cells of X")


def test_a_cell_ranger_h5_with_an_index_out_of_range_is_refused_before_scanpy_slices_it(tmp_path):
    """scanpy built the matrix unchecked and sliced out the antibody feature in compiled code, reading
    outside the array: the error (if any) counted hundreds of thousands of garbage indices."""
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    _write_cellranger_h5(path)
    with h5py.File(path, "r+") as f:
        indices = f["matrix/indices"][...]
        indices[0] = 99
        f["matrix/indices"][...] = indices
    with pytest.raises(MatrixStructureError) as caught:
        read(path)
    assert str(caught.value) == (
        "1 gene index of the sparse matrix outside 0..4 (5 genes), first 99 at cell 'AAAC-1' (row 0). "
        f"Where: {path}, matrix (CSR). {FIX_CORRUPT} (SciPy's matrix.check_format(full_check=True) names the problem)."
    )
    assert_refused(["info", path], [tmp_path], contains="1 gene index of the sparse matrix outside 0..4 (5 genes)")


def test_a_cell_ranger_h5_without_barcodes_is_called_an_incomplete_cell_ranger_file(tmp_path):
    """It was read as an .h5ad and refused with anndata's "unexpected keyword argument 'matrix'"."""
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    _write_cellranger_h5(path)
    with h5py.File(path, "r+") as f:
        del f["matrix/barcodes"]
    line = assert_refused(["info", path], [tmp_path])
    assert line == (
        "mmgene: error: not a readable Cell Ranger or .loom file "
        "(Exception: File is missing one or more required datasets.). "
        f"Where: {path}. What to do: check that the file is complete."
    )


def test_repeated_names_give_mmgenes_error_alone(tmp_path):
    """anndata's "names are not unique" warnings came before mmgene's own one-line error on stderr."""
    genes, cells = tmp_path / "genes.h5ad", tmp_path / "cells.h5ad"
    _anndata(genes=["CD3E", "CD3E", "LYZ", "NKG7"]).write_h5ad(genes)
    _anndata(cells=["c0", "c0", "c1"]).write_h5ad(cells)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(DuplicateGenesError, match=r"^1 gene names appear more than once in var_names \('CD3E'\)"):
            read(genes)
        assert list(read(cells).obs_names) == ["c0", "c0", "c1"]
    assert [str(w.message) for w in seen if "not unique" in str(w.message)] == []
    before = snapshot([tmp_path])
    done = run_cli("info", genes)
    assert done.returncode == 2 and snapshot([tmp_path]) == before
    assert done.stderr.splitlines() == [
        f"mmgene: error: 1 gene names appear more than once in var_names ('CD3E'). Where: var_names of {genes} (X). "
        "What to do: make them unique, e.g. adata.var_names_make_unique(), or index var by Ensembl id."
    ]


def test_a_gzipped_h5ad_is_refused_with_how_to_unpack_it(tmp_path):
    """It was "not an AnnData file (OSError: ... file signature not found)", with no word of gzip."""
    plain = tmp_path / "cells.h5ad"
    _anndata().write_h5ad(plain)
    packed = tmp_path / "cells.h5ad.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    line = assert_refused(["info", packed], [tmp_path])
    assert line == (
        "mmgene: error: the file is gzip-compressed; mmgene reads .h5ad, .h5 and .loom files unpacked. "
        f"Where: {packed}. What to do: unpack it first (gunzip -k cells.h5ad.gz); "
        "a Cell Ranger folder's .gz files are read as they are."
    )


def test_an_unreadable_file_is_refused_as_such(tmp_path, monkeypatch):
    """A file its user may not read was "not an AnnData file", told to pass an .h5ad. (Tests run as root,
    who reads every file, so the permission is denied by os.access here.)"""
    path = tmp_path / "cells.h5ad"
    _anndata().write_h5ad(path)
    real_access = os.access

    def access(p, mode, **kwargs):
        return False if str(p) == str(path) else real_access(p, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(InputFileError) as caught:
        read(path)
    assert str(caught.value) == (
        f"permission denied: this user may not read it. Where: {path}. "
        "What to do: make it readable (chmod u+r) or copy it somewhere readable."
    )


def _mapping(folder):
    path = folder / "mapping.csv"
    path.write_text("author_label,term_id\nB cells,CL:0000236\nNK cells,CL:0000623\n")
    return path


def test_in_place_never_turns_a_loom_or_cell_ranger_file_into_an_h5ad(tmp_path):
    """``labels apply FILE.loom --in-place`` replaced the .loom with .h5ad bytes (which mmgene then
    could not read as .loom); a Cell Ranger .h5 likewise lost its format."""
    pytest.importorskip("loompy")
    loom = tmp_path / "cells.loom"
    _anndata().write_loom(loom)
    h5 = tmp_path / "filtered_feature_bc_matrix.h5"
    _write_cellranger_h5(h5)
    mapping = _mapping(tmp_path)
    for file in (loom, h5):
        line = assert_refused(
            ["labels", "apply", file, "--mapping", mapping, "--label-col", "cell_type", "--in-place"], [tmp_path]
        )
        assert line == (
            "mmgene: error: the file is a Cell Ranger or .loom file, and the result is an AnnData (.h5ad), "
            f"so --in-place would replace it with another format. Where: {file}. "
            "What to do: pass --out NEW.h5ad to write the result beside it."
        )
    assert list(read(loom).obs_names) == ["c0", "c1", "c2"]  # still a .loom file


def test_an_out_spelled_zarr_in_capitals_is_written_as_a_zarr_store(tmp_path):
    """``--out NEW.ZARR`` passed the suffix check (case-insensitive) but got an .h5ad file, which
    mmgene then read as a .zarr store and refused."""
    data = tmp_path / "cells.h5ad"
    _anndata().write_h5ad(data)
    out = tmp_path / "labelled.ZARR"
    mapping = _mapping(tmp_path)
    done = run_cli_here("labels", "apply", data, "--mapping", mapping, "--label-col", "cell_type", "--out", out)
    assert done.returncode == 0, done.stderr
    assert out.is_dir()
    assert read(out, expression_needed=False).obs["cell_type_ontology_term_id"].astype(str).tolist() == [
        "CL:0000236", "CL:0000623", "CL:0000236"
    ]


def test_a_users_folder_named_like_a_staging_folder_is_never_removed(tmp_path):
    """Any folder named ``.NAME.<anything>.tmp`` beside an output was deleted as a leftover of a killed
    run, whatever it held; now only one holding nothing but a staged NAME (and .old) is."""
    mine = tmp_path / ".report.json.my-old-copy.tmp"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    stale = tmp_path / ".report.json.k1ll3d.tmp"
    stale.mkdir()
    (stale / "report.json").write_text("half")
    assert stale_temporaries(tmp_path / "report.json") == [stale]
    kept = snapshot([mine])
    with atomic_path(tmp_path / "report.json") as tmp:
        tmp.write_text("{}")
    assert snapshot([mine]) == kept and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".report.json.my-old-copy.tmp", "report.json"]


def test_a_folder_moved_aside_by_a_run_killed_between_its_renames_is_put_back(tmp_path):
    """The old folder output (an --in-place .zarr store: the user's input) waits in the staging folder's
    .old while the new one is renamed into place; a run killed between the two renames left the target
    missing, and the next run removed the staging folder with the old output in it."""
    target = tmp_path / "cells.zarr"
    stale = tmp_path / ".cells.zarr.k1ll3d.tmp"
    (stale / ".old").mkdir(parents=True)
    (stale / ".old" / "zarr.json").write_text("the user's store")
    (stale / "cells.zarr").mkdir()
    with atomic_path(target, in_place=True) as tmp:
        assert target.is_dir() and (target / "zarr.json").read_text() == "the user's store"
        tmp.mkdir()
        (tmp / "zarr.json").write_text("new")
    assert (target / "zarr.json").read_text() == "new" and not stale.exists()


def test_refinement_and_gene_weights_report_a_damaged_backed_file(tmp_path):
    """They read the matrix themselves (not through Expression.chunk): h5py's OSError escaped."""
    from mmgene.query.genes import gene_weights
    from mmgene.query.refine import expression_pcs

    path = _late_damaged_h5ad(tmp_path / "cells.h5ad")
    adata = read(path, backed=True)
    with pytest.raises(InputFileError, match=r"^cannot read 3,000 cells of X \(OSError"):
        gene_weights(adata, np.arange(3000), ["CD3E"])
    with pytest.raises(InputFileError, match=r"^cannot read the expression matrix of X \(OSError"):
        expression_pcs(adata)


def test_a_folder_output_over_an_existing_file_is_refused_clearly(tmp_path):
    """With overwrite, a folder staged for a path holding a file met os.replace's raw NotADirectoryError."""
    from mmgene.errors import OutputError

    target = tmp_path / "model"
    target.write_text("a file of the user's")
    with pytest.raises(OutputError, match="the output is a folder, but a file of that name exists"):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.mkdir()
            (tmp / "config.json").write_text("{}")
    assert target.read_text() == "a file of the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_damaged_h5ad_read_whole_is_told_to_copy_it_again(tmp_path):
    """It was told to "pass an .h5ad", which it is; a file of another kind keeps that advice."""
    path = _late_damaged_h5ad(tmp_path / "cells.h5ad")
    with pytest.raises(InputFileError) as caught:
        read(path)
    assert str(caught.value).startswith("not an AnnData file (")
    assert str(caught.value).endswith(
        "What to do: if it was written as one, it is damaged or incomplete: copy it again from its source "
        "(pass an .h5ad, a .zarr store, a Cell Ranger .h5 or matrix folder, or a .loom file)."
    )
    other = tmp_path / "cells.bin"
    other.write_text("cell,CD3E\nc1,3\n")
    with pytest.raises(InputFileError, match=r"What to do: pass an \.h5ad, a \.zarr store"):
        read(other)
