"""The NCBI E-utilities client against a real HTTP server on 127.0.0.1 (tests/servers/ncbi_server.py)."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers.ncbi_server import GENES, Fault, NCBIServer, synthetic_genes

from mmgene.errors import ParameterError, RemoteError
from mmgene.genes.ncbi import NCBIClient, NCBIGeneText, RateLimiter
from mmgene.genes.sources import gene_text_source


def client(server: NCBIServer, tmp_path: Path, **kw) -> tuple[NCBIClient, list[float]]:
    sleeps: list[float] = []
    kw.setdefault("cache_path", tmp_path / "ncbi.sqlite")
    kw.setdefault("rate", 1000.0)
    kw.setdefault("backoff", 0.05)
    kw.setdefault("timeout", (2.0, 5.0))
    c = NCBIClient(base_url=server.url, email="test@example.org", sleep=sleeps.append, **kw)
    return c, sleeps


def test_fetch_maps_symbols_aliases_and_unknowns(tmp_path):
    with NCBIServer() as server:
        c, _ = client(server, tmp_path)
        got = c.fetch(["TP53", "cd3e", "CD20", "NOTAGENE1", "TP53"])
        assert list(got) == ["TP53", "CD3E", "CD20", "NOTAGENE1"]
        assert got["TP53"].gene_id == "7157" and got["TP53"].name == "tumor protein p53"
        assert got["TP53"].summary.startswith("This gene encodes a tumor suppressor protein")
        assert got["CD20"].symbol == "MS4A1"  # matched through its alias
        assert got["NOTAGENE1"] is None
        assert got["TP53"].text() == (
            "Gene symbol TP53. Full name: tumor protein p53. Also known as: BCC7, LFS1, P53, TRP53. "
            "Other designations: cellular tumor antigen p53; phosphoprotein p53. Location: 17p13.1. "
            "Summary: This gene encodes a tumor suppressor protein containing transcriptional activation, "
            "DNA binding, and oligomerization domains."
        )
        # one esearch + one esummary, both POST, with tool and email, organism-restricted
        assert [e for e, _ in server.requests] == ["esearch.fcgi", "esummary.fcgi"]
        assert server.methods == ["POST", "POST"]
        search = server.requests[0][1]
        assert search["tool"] == "mmgene" and search["email"] == "test@example.org" and search["db"] == "gene"
        assert search["term"] == '("TP53"[sym] OR "CD3E"[sym] OR "CD20"[sym] OR "NOTAGENE1"[sym]) AND human[orgn]'
        assert server.requests[1][1]["id"] == "7157,916,931"
        assert c.requests_made == 2


def test_second_run_makes_zero_requests(tmp_path):
    symbols = ["TP53", "CD14", "LYZ", "NKG7", "UNKNOWN9"]
    with NCBIServer() as server:
        first = client(server, tmp_path)[0].fetch(symbols)
        n = len(server.requests)
        again, _ = client(server, tmp_path)
        second = again.fetch(symbols)
        assert len(server.requests) == n and again.requests_made == 0
        assert second == first
        # a superset only fetches the new symbol
        third = client(server, tmp_path)[0].fetch([*symbols, "MS4A1"])
        assert third["MS4A1"].gene_id == "931"
        assert server.requests[n][1]["term"] == '("MS4A1"[sym]) AND human[orgn]'


def test_batches_post_at_most_200_ids(tmp_path):
    genes = synthetic_genes(450)
    with NCBIServer(genes=genes) as server:
        c, _ = client(server, tmp_path, search_batch=250)
        got = c.fetch([g["name"] for g in genes])
        assert all(r is not None for r in got.values()) and len(got) == 450
        summaries = [p for e, p in server.requests if e == "esummary.fcgi"]
        assert [len(p["id"].split(",")) for p in summaries] == [200, 50, 200]
        assert server.count("esearch.fcgi") == 2
        assert set(server.methods) == {"POST"}
    with pytest.raises(ParameterError, match="at most 200"):
        NCBIClient(summary_batch=201, cache_path=tmp_path / "x.sqlite")


def test_retries_429_500_timeout_truncated_badjson(tmp_path):
    faults = [
        Fault("429", "esearch.fcgi", 7),
        Fault("timeout", "esearch.fcgi", 1.0),
        Fault("500", "esummary.fcgi"),
        Fault("truncated", "esummary.fcgi"),
        Fault("badjson", "esummary.fcgi"),
    ]
    with NCBIServer(faults=faults) as server:
        c, sleeps = client(server, tmp_path, timeout=(2.0, 0.3), backoff=0.01, max_retries=5)
        got = c.fetch(["TP53", "LYZ"])
        assert got["TP53"].gene_id == "7157" and got["LYZ"].gene_id == "4069"
        assert server.count("esearch.fcgi") == 3 and server.count("esummary.fcgi") == 4
        assert c.requests_made == 7
        # Retry-After is honoured (7 s, slept through the injected sleep); the other waits follow the
        # exponential backoff, which counts on through the esearch's tries
        assert sleeps == [7, 0.02, 0.01, 0.02, 0.04]


def test_retry_after_http_date_and_cap(tmp_path):
    later = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30), usegmt=True)
    with NCBIServer(faults=[Fault("429")], retry_after_header=later) as server:
        c, sleeps = client(server, tmp_path, max_backoff=5.0)
        c.fetch(["CD14"])
        assert sleeps == [5.0]  # the HTTP date (30 s ahead) is read, and capped at max_backoff
    with NCBIServer(faults=[Fault("429")], retry_after_header="soon") as server:
        c, sleeps = client(server, tmp_path / "b", backoff=0.25)
        c.fetch(["CD14"])
        assert sleeps == [0.25]  # an unreadable Retry-After: the backoff applies


def test_gives_up_after_retries_without_leaking_the_key(tmp_path):
    with NCBIServer(faults=[Fault("500")] * 3) as server:
        c, _ = client(server, tmp_path, max_retries=2, api_key="SECRETKEY123")
        with pytest.raises(RemoteError, match="failed after 3 attempts") as err:
            c.fetch(["TP53"])
        assert "SECRETKEY123" not in str(err.value)
        assert server.requests[0][1]["api_key"] == "SECRETKEY123"
        assert server.count() == 3
        # nothing was cached for the failed batch: the next run asks again and succeeds
        assert client(server, tmp_path)[0].fetch(["TP53"])["TP53"].gene_id == "7157"


def test_client_errors_fail_at_once(tmp_path):
    with NCBIServer() as server:
        c = NCBIClient(base_url=server.url, email=None, cache_path=tmp_path / "c.sqlite", rate=1000, sleep=lambda s: None)
        c.email = None
        with pytest.raises(RemoteError, match="HTTP 400.*tool and email"):
            c.fetch(["TP53"])
        assert server.count() == 1


def test_rate_limit_defaults_and_spacing(tmp_path):
    assert NCBIClient(cache_path=tmp_path / "a.sqlite").limiter.interval == pytest.approx(1 / 3)
    assert NCBIClient(cache_path=tmp_path / "b.sqlite", api_key="k").limiter.interval == pytest.approx(1 / 10)
    limiter = RateLimiter(20.0)
    t = time.monotonic()
    for _ in range(6):
        limiter.wait()
    assert time.monotonic() - t >= 5 * 0.05 - 0.005
    with pytest.raises(ParameterError):
        RateLimiter(0)


def test_gene_text_source_ncbi(tmp_path):
    with NCBIServer() as server:
        src = gene_text_source("ncbi", base_url=server.url, email="a@b.c", cache_path=tmp_path / "s.sqlite", rate=1000)
        assert isinstance(src, NCBIGeneText) and src.name == "ncbi-eutils"
        texts = src.texts(["NKG7", "nope"])
        assert list(texts) == ["NKG7"]
        assert "Summary" not in texts["NKG7"]  # NKG7 has no summary in the server: no empty section
        with pytest.raises(ParameterError, match="needs a list of gene symbols"):
            src.texts(None)


def test_killed_run_resumes_without_refetching(tmp_path):
    """`mmgene genes fetch` is SIGKILLed mid-run; the rerun only fetches the batches it had not finished."""
    genes = synthetic_genes(50)
    symbols = [g["name"] for g in genes]
    cache, out = tmp_path / "kill.sqlite", tmp_path / "texts.json"
    env = {**os.environ, "MMGENE_QUIET": "1"}
    with NCBIServer(genes=genes) as server:
        cmd = [sys.executable, "-m", "mmgene", "genes", "fetch", *symbols, "--source", "ncbi", "--base-url", server.url,
               "--email", "t@e.st", "--cache", str(cache), "--batch-size", "10", "--rate", "1000", "--out", str(out)]
        # batches are esearch+esummary (committed after the esummary answer); kill the process when
        # the 3rd batch's esearch arrives, i.e. right after batch 2 was committed
        pid: dict[str, int] = {}
        server.on_request = lambda n: os.kill(pid["proc"], signal.SIGKILL) if n == 5 else None
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        pid["proc"] = proc.pid
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL and not out.exists()
        server.on_request = None
        done = {s for e, p in server.requests[:4] if e == "esearch.fcgi" for s in re.findall(r'"(\w+)"\[sym\]', p["term"])}
        assert len(done) == 20
        before = len(server.requests)
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr
        new = server.requests[before:]
        assert len(new) == 2 * 3  # batches 3, 4, 5 only
        asked_again = {s for e, p in new if e == "esearch.fcgi" for s in re.findall(r'"(\w+)"\[sym\]', p["term"])}
        assert len(asked_again) == 30 and not asked_again & done
        texts = json.loads(out.read_text())
        assert sorted(texts) == sorted(symbols) and texts["SYNG7"].startswith("Gene symbol SYNG7. Full name: synthetic gene 7.")
        assert "50 genes of 50 asked" in rerun.stdout and "6 requests" in rerun.stdout
        # a third run makes no request at all
        third = NCBIClient(base_url=server.url, email="t@e.st", cache_path=cache, search_batch=10)
        assert set(third.fetch(symbols)) == set(symbols)
        assert third.requests_made == 0 and len(server.requests) == before + 6


def test_real_gene_docs_cover_fixture():
    assert {g["name"] for g in GENES} >= {"TP53", "CD3E", "MS4A1"}
