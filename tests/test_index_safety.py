"""Index folders are checked when loaded: meta.json against its schema, cells.parquet against the
checksum of its cell ids, index.faiss against meta.json. Each case builds a small index from random
vectors with the public API, tampers with one file and expects a clear refusal."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hostile import assert_refused

from mmgene.errors import InputFileError, IntegrityError, MetadataError, MMGeneError, ParameterError

N, DIM = 200, 16


def vectors(n: int = N, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def build(kind: str = "flat", n: int = N, dim: int = DIM, **params):
    from mmgene.index import CellIndex

    ids = [f"cell{i:03d}" for i in range(n)]
    obs = pd.DataFrame({"cell_type": [f"type{i % 4}" for i in range(n)]})
    return CellIndex.from_vectors(vectors(n, dim), ids, obs, kind=kind, embedding_key="X_test", **params)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """One pristine folder per kind; each test copies the one it tampers with."""
    root = tmp_path_factory.mktemp("pristine")
    return {kind: build(kind, **extra).save(root / kind) for kind, extra in {"flat": {}, "ivf": {"nlist": 4}}.items()}


def copy(saved: dict[str, Path], tmp_path: Path, kind: str = "flat") -> Path:
    return Path(shutil.copytree(saved[kind], tmp_path / "idx"))


def edit_meta(path: Path, change: Callable[[dict], object]) -> None:
    meta = json.loads((path / "meta.json").read_text())
    change(meta)
    (path / "meta.json").write_text(json.dumps(meta))


def edit_cells(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    cells = pd.read_parquet(path / "cells.parquet")
    change(cells).reset_index(drop=True).to_parquet(path / "cells.parquet", index=False)


def load(path: Path):
    from mmgene.index import CellIndex

    return CellIndex.load(path)


def test_a_saved_folder_round_trips_with_its_checksum(saved):
    from mmgene.index.folder import CHECKSUM_ALGORITHM, cell_ids_sha256

    meta = json.loads((saved["flat"] / "meta.json").read_text())
    assert meta["format_version"] == 2
    assert meta["cells_checksum"] == {
        "algorithm": CHECKSUM_ALGORITHM, "rows": N, "sha256": cell_ids_sha256([f"cell{i:03d}" for i in range(N)]),
    }
    for kind in saved:
        again = load(saved[kind])
        assert again.ntotal == N and again.cell_ids[7] == "cell007"


def test_checksum_is_unambiguous_and_order_sensitive():
    from mmgene.index.folder import cell_ids_sha256

    assert cell_ids_sha256(["ab", "c"]) != cell_ids_sha256(["a", "bc"])
    assert cell_ids_sha256(["a\nb"]) != cell_ids_sha256(["a", "b"])
    assert cell_ids_sha256(["a", "b"]) != cell_ids_sha256(["b", "a"])
    assert cell_ids_sha256(["a", "b"]) == cell_ids_sha256(("a", "b"))


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(meta: dict) -> None:
        target = meta
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _drop(*keys):
    def change(meta: dict) -> None:
        target = meta
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


META_CASES = {
    "string where int": ("flat", _set("dim", "16"), "'dim' must be an integer >= 1, got '16'"),
    "string param": ("ivf", _set("params", "nlist", "4"), "'params.nlist' must be an integer >= 1 or null"),
    "bool where int": ("flat", _set("ntotal", True), "'ntotal' must be an integer"),
    "negative nprobe": ("ivf", _set("params", "nprobe", -3), "'params.nprobe' must be an integer >= 1 or null, got -3"),
    "nprobe above nlist": ("ivf", _set("params", "nprobe", 5), "'params.nprobe' must be at most params.nlist=4"),
    "unknown metric": ("flat", _set("metric", "L2"), "'metric' must be one of"),
    "unknown kind": ("flat", _set("kind", "lsh"), "'kind' must be one of 'flat', 'ivf', 'ivfpq', 'hnsw', got 'lsh'"),
    "recall out of range": ("flat", _set("params", "target_recall", 1.5), "'params.target_recall' must be a number in (0, 1]"),
    "recall not finite": ("flat", _set("params", "target_recall", float("nan")), "'params.target_recall'"),
    "missing field": ("flat", _drop("ntotal"), "'ntotal' is missing"),
    "missing param": ("flat", _drop("params", "seed"), "'params.seed' is missing"),
    "unknown param": ("flat", _set("params", "nprobes", 3), "'params.nprobes' is not a known field"),
    "params not an object": ("flat", _set("params", [1, 2]), "'params' must be an object"),
    "obs_columns not strings": ("flat", _set("obs_columns", [1]), "'obs_columns' must be a list of str values"),
    "kinds disagree": ("flat", _set("params", "kind", "hnsw"), "'params.kind' is 'hnsw' but field 'kind' is 'flat'"),
    "factory disagrees": ("ivf", _set("factory", "IVF8,Flat"), "'factory' is 'IVF8,Flat' but params describe 'IVF4,Flat'"),
    "checksum missing": ("flat", _drop("cells_checksum"), "'cells_checksum' is missing"),
    "checksum not hex": ("flat", _set("cells_checksum", "sha256", "xyz"), "'cells_checksum.sha256' must be a string matching"),
    "checksum rows": ("flat", _set("cells_checksum", "rows", N - 1), "'cells_checksum.rows' is 199 but field 'ntotal' is 200"),
    "old format": ("flat", _set("format_version", 1), "format_version 1 was written before"),
    "newer format": ("flat", _set("format_version", 4), "written by a newer mmgene"),
    "on-disk version without on-disk fields": ("flat", _set("format_version", 3), "'format_version' must be 2 without 'storage' or 'rerank', got 3"),
    "null model is fine, number is not": ("flat", _set("model", 5), "'model' must be a string or null, got 5"),
}


@pytest.mark.parametrize("case", list(META_CASES))
def test_meta_json_breaking_the_schema_is_refused(saved, tmp_path, case):
    kind, change, expected = META_CASES[case]
    path = copy(saved, tmp_path, kind)
    edit_meta(path, change)
    with pytest.raises(MetadataError) as info:
        load(path)
    message = str(info.value)
    assert expected in message, message
    assert "meta.json" in message and str(path / "meta.json") in message
    fix = "upgrade mmgene" if case == "newer format" else "rebuild the index with `mmgene index build`"
    assert fix in message


def test_meta_json_that_is_not_an_index_or_not_json(saved, tmp_path):
    path = copy(saved, tmp_path)
    (path / "meta.json").write_text("[1, 2]")
    with pytest.raises(InputFileError, match="not a mmgene-cell-index folder"):
        load(path)
    (path / "meta.json").write_text("{not json")
    with pytest.raises(MetadataError, match="meta.json is not valid JSON"):
        load(path)


def _duplicate_row(cells: pd.DataFrame) -> pd.DataFrame:
    cells.iloc[5] = cells.iloc[4]
    return cells


def _rename(cells: pd.DataFrame) -> pd.DataFrame:
    cells.loc[10, "cell_id"] = "someone_else"
    return cells


CELLS_CASES = {
    "shuffled": (lambda c: c.sample(frac=1.0, random_state=0), "rows were reordered, replaced or renamed"),
    "truncated": (lambda c: c.iloc[:-1], f"cells.parquet has {N - 1} rows but the index holds {N} vectors"),
    "row appended twice": (lambda c: pd.concat([c, c.iloc[[3]]]), f"cells.parquet has {N + 1} rows"),
    "duplicated row": (_duplicate_row, "cell id 'cell004' appears more than once"),
    "id changed": (_rename, "rows were reordered, replaced or renamed"),
    "ids as numbers": (lambda c: c.assign(cell_id=np.arange(len(c))), "do not match meta.json field 'cells_checksum'"),
    "column dropped": (lambda c: c[["cell_id"]], "field 'obs_columns' records ['cell_type']"),
    "no id column": (lambda c: c.rename(columns={"cell_id": "id"}), "cells.parquet has no column 'cell_id'"),
}


@pytest.mark.parametrize("case", list(CELLS_CASES))
def test_a_tampered_sidecar_is_refused(saved, tmp_path, case):
    change, expected = CELLS_CASES[case]
    path = copy(saved, tmp_path)
    edit_cells(path, change)
    with pytest.raises(IntegrityError) as info:
        load(path)
    message = str(info.value)
    assert expected in message, message
    assert str(path / "cells.parquet") in message and "rebuild the index with `mmgene index build`" in message


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ({"n": N - 50}, f"index.faiss has ntotal={N - 50} but meta.json field 'ntotal' records {N}"),
        ({"dim": 8}, f"index.faiss has dim=8 but meta.json field 'dim' records {DIM}"),
        ({"kind": "ivf", "nlist": 4}, "index.faiss has kind=ivf but meta.json field 'kind' records flat"),
    ],
)
def test_a_faiss_file_that_disagrees_with_meta_json_is_refused(saved, tmp_path, other, expected):
    path = copy(saved, tmp_path)
    foreign = build(**other).save(tmp_path / "other")
    shutil.copyfile(foreign / "index.faiss", path / "index.faiss")
    for mmap in (True, False):
        with pytest.raises(IntegrityError) as info:
            type(build()).load(path, mmap=mmap)
        message = str(info.value)
        assert expected in message and str(path / "index.faiss") in message, message


def test_an_ivf_file_with_other_lists_is_refused(saved, tmp_path):
    path = copy(saved, tmp_path, "ivf")
    shutil.copyfile(build("ivf", nlist=2).save(tmp_path / "other") / "index.faiss", path / "index.faiss")
    with pytest.raises(IntegrityError, match="index.faiss has params.nlist=2 but meta.json field 'params.nlist' records 4"):
        load(path)


def test_parameters_are_checked_by_the_same_rules_when_building():
    with pytest.raises(ParameterError, match="nprobe must be an integer >= 1 or null, got -1"):
        build("ivf", nlist=4, nprobe=-1)
    with pytest.raises(ParameterError, match=r"target_recall must be a number in \(0, 1\], got 1.5"):
        build(target_recall=1.5)
    with pytest.raises(ParameterError, match="M must be an integer >= 2"):
        build("hnsw", M=1)
    with pytest.raises(ParameterError, match="seed must be an integer"):
        build(seed="0")


def test_save_refuses_metadata_it_could_not_load_again(tmp_path):
    index = build()
    index.meta["model"] = 5
    with pytest.raises(ParameterError, match="CellIndex.meta field 'model' must be a string or null"):
        index.save(tmp_path / "idx")
    assert not (tmp_path / "idx").exists()
    index.meta["model"] = "genept-s"
    assert load(index.save(tmp_path / "idx")).model == "genept-s"


def test_grown_index_is_saved_with_a_new_checksum(saved, tmp_path):
    index = load(saved["flat"])
    index.add(vectors(3, seed=1), ["new0", "new1", "new2"])
    again = load(index.save(tmp_path / "grown"))
    assert again.ntotal == N + 3 and list(again.cell_ids[-3:]) == ["new0", "new1", "new2"]


def test_refusals_are_mmgene_errors():
    assert issubclass(MetadataError, InputFileError) and issubclass(IntegrityError, MMGeneError)


@pytest.mark.parametrize("command", [["index", "info"], ["query"]])
def test_cli_refuses_a_tampered_folder_in_one_line(saved, tmp_path, command):
    path = copy(saved, tmp_path)
    edit_cells(path, lambda c: c.sample(frac=1.0, random_state=1))
    args = [*command, path] + (["T cells"] if command == ["query"] else [])
    line = assert_refused(args, [tmp_path], contains="cells.parquet")
    assert "cells_checksum" in line and "mmgene index build" in line


def test_cli_refuses_a_bad_meta_json_in_one_line(saved, tmp_path):
    path = copy(saved, tmp_path, "ivf")
    edit_meta(path, _set("params", "nprobe", -3))
    line = assert_refused(["query", path, "--cell", "cell001"], [tmp_path], contains="meta.json")
    assert "params.nprobe" in line


def test_cli_refuses_options_it_would_ignore(saved, tmp_path):
    """`index build` took --nprobe for a flat index, --hnsw-m or --ef-search for an IVF one, and --chunk-size or
    --no-rerank without --stream, and ignored them; `query` searched --cell and dropped the texts given with it,
    and ignored --model with --cell, --top-genes without --genes, and answered -k 0 with no hits. Each is
    refused now (exit 2, one line, nothing written)."""
    import anndata as ad

    obs = pd.DataFrame({"cell_type": [f"t{i % 3}" for i in range(N)]}, index=[f"cell{i:03d}" for i in range(N)])
    ad.AnnData(obs=obs, obsm={"X_test": vectors()}).write_h5ad(tmp_path / "a.h5ad")
    build_args = ["index", "build", tmp_path / "a.h5ad", "-e", "X_test", "--out", tmp_path / "idx"]
    refusals = {
        ("--kind", "flat", "--nprobe", "4"): "--nprobe does not apply to --kind flat",
        ("--nlist", "4"): f"--nlist does not apply to --kind flat (--kind auto chose it for {N} cells)",
        ("--kind", "ivf", "--nlist", "4", "--hnsw-m", "8"): "--hnsw-m does not apply to --kind ivf",
        ("--kind", "ivf", "--pq-m", "4"): "--pq-m does not apply to --kind ivf",
        ("--kind", "hnsw", "--ef-search", "20", "--nlist", "4"): "--nlist does not apply to --kind hnsw",
        ("--stream", "--kind", "ivf", "--ef-search", "20"): "--ef-search does not apply to --kind ivf",
        ("--stream", "--hnsw-m", "8"): "--hnsw-m does not apply to --kind ivfpq",
        ("--chunk-size", "64",): "--chunk-size and --rerank/--no-rerank apply to --stream only",
        ("--no-rerank",): "--chunk-size and --rerank/--no-rerank apply to --stream only",
        ("--kind", "flat", "--target-recall", "0.9"): "--target-recall does not apply to --kind flat",
    }
    for extra, expected in refusals.items():
        assert_refused([*build_args, *extra], [tmp_path], contains=expected)
    path = copy(saved, tmp_path)
    for extra, expected in {
        ("T cells", "--cell", "cell001"): "the texts would be ignored",
        ("--cell", "cell001", "-m", "genept-s"): "--model encodes text queries",
        ("--cell", "cell001", "--top-genes", "3"): "--top-genes sets how many genes --genes lists",
        ("--cell", "cell001", "-k", "0"): "-k must be at least 1, got 0",
    }.items():
        assert_refused(["query", path, *extra], [tmp_path], contains=expected)


@pytest.mark.parametrize("name", ["index.faiss", "cells.parquet", "meta.json"])
def test_a_link_leading_out_of_the_folder_is_refused(saved, tmp_path, name):
    """An index folder is read from itself: a file linked from elsewhere was followed without a word (a pipe in
    its place blocked the load forever). A link inside the folder is still read."""
    import os

    path = copy(saved, tmp_path)
    shutil.move(path / name, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", path / name)
    with pytest.raises(IntegrityError, match=f"{name} is a link to .*elsewhere, outside the index folder") as info:
        load(path)
    assert str(path / name) in str(info.value)
    (path / name).unlink()
    shutil.move(tmp_path / "elsewhere", path / "inside")
    os.symlink("inside", path / name)
    assert load(path).ntotal == N
    (path / name).unlink()
    os.mkfifo(path / name)
    with pytest.raises(InputFileError, match=f"{name} is not a plain file"):
        load(path)
