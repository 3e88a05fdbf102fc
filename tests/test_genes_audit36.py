"""Audit of the gene-level code: NCBI cache and esearch paging, gene lists from an .h5ad, the default table cache."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from servers.ncbi_server import GENES, NCBIServer, synthetic_genes
from typer.testing import CliRunner

from mmgene.cli.app import app
from mmgene.errors import InputFileError, RemoteError
from mmgene.genes.ncbi import NCBIClient

runner = CliRunner()


def client(server: NCBIServer, cache: Path, **kw) -> NCBIClient:
    return NCBIClient(base_url=server.url, email="t@e.st", cache_path=cache, rate=1000.0, backoff=0.01, sleep=lambda s: None, **kw)


class PagingServer(NCBIServer):
    """Like NCBI: esearch gives at most ``retmax`` ids from ``retstart`` on, and the full ``count``."""

    def _esearch(self, params: dict[str, str]) -> dict:
        body = super()._esearch(params)
        result = body["esearchresult"]
        start, size = int(params.get("retstart", 0)), int(params.get("retmax", 20))
        result["count"] = str(len(result["idlist"]))
        result["idlist"] = result["idlist"][start : start + size]
        return body


class StringIdServer(NCBIServer):
    """A broken mirror whose esearch ``idlist`` is a string, not a list."""

    def _esearch(self, params: dict[str, str]) -> dict:
        body = super()._esearch(params)
        body["esearchresult"]["idlist"] = ",".join(body["esearchresult"]["idlist"])
        return body


def test_a_damaged_ncbi_cache_is_an_input_file_error_and_is_left_alone(tmp_path):
    cache = tmp_path / "ncbi.sqlite"
    cache.write_bytes(b"not a database " * 100)  # was a raw sqlite3.DatabaseError
    with NCBIServer() as server, pytest.raises(InputFileError) as err:
        client(server, cache)
    assert str(err.value) == (
        "cannot use the NCBI cache (DatabaseError: file is not a database). "
        f"Where: {cache}. What to do: if the file is damaged, delete it (it only holds NCBI answers, fetched again); "
        "else check it is writable."
    )
    assert cache.read_bytes() == b"not a database " * 100


def test_an_ncbi_cache_never_answers_for_another_organism(tmp_path):
    """A human run then a mouse run on one --cache: the mouse symbol 'Tp53' got the human TP53 record."""
    cache = tmp_path / "ncbi.sqlite"
    with NCBIServer() as server:
        assert client(server, cache).fetch(["TP53"])["TP53"].gene_id == "7157"
        n = len(server.requests)
        with pytest.raises(InputFileError, match="this NCBI cache holds answers for organism 'human', not 'mouse'") as err:
            client(server, cache, organism="mouse").fetch(["Tp53"])
        assert str(cache) in str(err.value) and len(server.requests) == n
        again = client(server, cache)
        assert again.fetch(["TP53"])["TP53"].gene_id == "7157" and again.requests_made == 0


def test_esearch_pages_past_retmax_so_no_gene_is_lost(tmp_path):
    """25 genes carry the alias SHARED and the gene named SHARED has the highest id: a single-symbol search
    (retmax 20) gave the first 20 ids only, and SHARED was cached as having no gene."""
    genes = [{**g, "otheraliases": "SHARED"} for g in synthetic_genes(25)]
    genes.append({**synthetic_genes(1, start_uid=990000)[0], "name": "SHARED", "otheraliases": ""})
    with PagingServer(genes=genes) as server:
        got = client(server, tmp_path / "ncbi.sqlite").fetch(["SHARED"])
        assert got["SHARED"].gene_id == "990000" and got["SHARED"].symbol == "SHARED"
        searches = [p for e, p in server.requests if e == "esearch.fcgi"]
        assert [(p["retmax"], p.get("retstart")) for p in searches] == [("20", None), ("20", "20")]
        assert [len(p["id"].split(",")) for e, p in server.requests if e == "esummary.fcgi"] == [26]


def test_a_malformed_esearch_idlist_is_a_remote_error_and_nothing_is_cached(tmp_path):
    cache = tmp_path / "ncbi.sqlite"
    with StringIdServer(genes=list(GENES)) as server:
        with pytest.raises(RemoteError, match=r"esearch answer has a malformed 'idlist' or 'count'") as err:
            client(server, cache).fetch(["TP53"])  # was read as the ids '7', '1', '5', '7' and TP53 as no gene
        assert f"{server.url}/esearch.fcgi" in str(err.value)
    with NCBIServer() as server:
        assert client(server, cache).fetch(["TP53"])["TP53"].gene_id == "7157"


def _h5ad(path: Path, symbols: list[object]) -> Path:
    ids = ["ENSG00000198851", "ENSG00000000003", "ENSG00000090382"][: len(symbols)]
    var = pd.DataFrame({"gene_symbol": pd.array(symbols, dtype=object)}, index=ids)
    ad.AnnData(np.ones((2, len(symbols)), np.float32), var=var).write_h5ad(path)
    return path


def test_a_gene_without_a_symbol_in_an_h5ad_is_not_gene_nan(tmp_path):
    """var['gene_symbol'] NaN was read as the string 'nan', and NAN is a real gene in NCBI's table."""
    h5 = _h5ad(tmp_path / "cells.h5ad", ["CD3E", np.nan, "LYZ"])
    out = tmp_path / "texts.json"
    res = runner.invoke(app, ["genes", "fetch", "--genes-from", str(h5), "--source", "offline", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert (json.loads(res.stdout)["asked"], sorted(json.loads(out.read_text()))) == (2, ["CD3E", "LYZ"])


def test_an_h5ad_without_any_symbol_is_refused_not_read_as_every_gene(tmp_path):
    from hostile import assert_refused

    h5 = _h5ad(tmp_path / "cells.h5ad", ["", ""])
    for command in (["genes", "fetch", "--source", "offline", "-o", tmp_path / "g.json"], ["genes", "embed", "offline", "-o", tmp_path / "e.parquet"]):
        line = assert_refused([*command, "--genes-from", h5], [tmp_path], contains="no gene of the matrix has a symbol")
        assert f"var['gene_symbol'] of {h5}" in line


class HashEncoder:
    """A tiny deterministic encoder (no model download)."""

    name = cache_key = "hash-encoder-audit36"
    backend = ""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return np.array([[len(t), sum(map(ord, t)) % 97 + 1, 1.0] for t in texts], np.float32)


def test_a_damaged_default_gene_vectors_cache_is_made_again(tmp_path, monkeypatch):
    from mmgene.genes import default_gene_vectors
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "cache_dir", str(tmp_path))
    first = default_gene_vectors(HashEncoder(), genes=["LYZ", "CD3E"])
    (cached,) = (tmp_path / "gene_vectors").iterdir()
    cached.write_bytes(b"half a parquet file")  # was an error telling the user to pass another file
    enc = HashEncoder()
    again = default_gene_vectors(enc, genes=["LYZ", "CD3E"])
    assert enc.calls == 1 and list(again.symbols) == ["CD3E", "LYZ"]
    np.testing.assert_array_equal(again.vectors, first.vectors)
    third = HashEncoder()
    assert default_gene_vectors(third, genes=["LYZ", "CD3E"]).meta == again.meta and third.calls == 0  # cached again
