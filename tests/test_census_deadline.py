"""Opening a CELLxGENE Census release gives up after the HTTP deadline.

cellxgene_census fetches its mirror and release directories with ``requests.get`` and no timeout, so a
server that took the connection and never answered hung ``mmgene corpus``/``pretrain`` for ever. Here
the directories are served on 127.0.0.1 (no internet): a server that stalls (for at most ``STALL`` s,
so that no test can hang), one that answers 404 or garbage, and one that knows no such release.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from servers.loopback import serve_http, stop_http
from servers.trickle_server import TrickleServer

from mmgene.corpus.census import CensusQuery, open_source
from mmgene.errors import CorpusError
from mmgene.settings import settings

pytest.importorskip("cellxgene_census")
pytestmark = pytest.mark.timeout(120)

#: seconds the stalling server holds a request before it hangs up without an answer
STALL = 20.0
FILTER = "cell_type == 'B cell'"
WHERE = "Where: CELLxGENE Census stable (Homo sapiens), obs_value_filter \"cell_type == 'B cell'\"."
OLD_FIX = ("What to do: check the network connection and the release name, or read a local SOMA experiment "
           "(the query's uri).")
MIRRORS = {"default": "local", "local": {"provider": "S3", "base_uri": "s3://nowhere/", "region": "us-west-2"}}
RELEASE = {"release_build": "2099-01-01", "soma": {"uri": "s3://nowhere/soma/"}}


@pytest.fixture
def stalling() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a server that takes each request and answers nothing (until the test ends)."""
    done = threading.Event()

    class Stall(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            done.wait(STALL)
            self.close_connection = True

    httpd = serve_http(Stall)
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        done.set()  # the stalled requests end (cellxgene_census's thread with them)
        stop_http(httpd)


def _point_directories(monkeypatch: pytest.MonkeyPatch, mirrors: str, release: str) -> None:
    import cellxgene_census._release_directory as releases

    monkeypatch.setattr(releases, "CELL_CENSUS_MIRRORS_DIRECTORY_URL", mirrors)
    monkeypatch.setattr(releases, "CELL_CENSUS_RELEASE_DIRECTORY_URL", release)


def _refusal(query: CensusQuery | None = None) -> str:
    with pytest.raises(CorpusError) as caught:
        open_source(query or CensusQuery(FILTER))
    return str(caught.value)


@pytest.mark.parametrize("stalled", ["mirrors", "release"])
def test_a_release_directory_that_never_answers_is_refused_after_the_deadline(stalled, stalling, monkeypatch):
    monkeypatch.setattr(settings, "http_deadline", 1.0)
    with TrickleServer(files={"mirrors.json": json.dumps(MIRRORS).encode()}) as server:
        mirrors = f"{stalling}/mirrors.json" if stalled == "mirrors" else f"{server.url}/files/mirrors.json"
        _point_directories(monkeypatch, mirrors, f"{stalling}/release.json")
        message = _refusal()
    assert message == (
        "the CELLxGENE Census release 'stable' did not answer within 1 s. " + WHERE + " What to do: check the network "
        "connection, allow more time with MMGENE_HTTP_DEADLINE=<seconds> (now 1), or read a local SOMA experiment "
        "(the query's uri)."
    )


def test_a_handle_opened_after_the_deadline_is_closed(monkeypatch):
    """``open_soma`` finishing late: its handle is closed, not left open behind the refusal."""
    import cellxgene_census

    release, closed = threading.Event(), threading.Event()

    class Handle:
        def close(self) -> None:
            closed.set()

        def __getitem__(self, key: str) -> object:
            raise KeyError(key)

    def late_open(census_version: str) -> Handle:
        release.wait(STALL)
        return Handle()

    monkeypatch.setattr(cellxgene_census, "open_soma", late_open)
    monkeypatch.setattr(settings, "http_deadline", 0.5)
    try:
        message = _refusal(CensusQuery(FILTER, census_version="2099-01-01"))
    finally:
        release.set()
    assert message.startswith("the CELLxGENE Census release '2099-01-01' did not answer within 0.5 s.")
    assert closed.wait(10)


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({}, "HTTPError: 404 Client Error: Not Found for url: {url}/files/mirrors.json"),
        ({"mirrors.json": b"<html>not json"}, "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
        (
            {"mirrors.json": json.dumps(MIRRORS).encode(), "release.json": json.dumps({"2099-01-01": RELEASE}).encode()},
            'ValueError: The "stable" Census version is not valid. Use get_census_version_directory() to retrieve '
            "available versions.",
        ),
    ],
    ids=["404", "garbage", "unknown-release"],
)
def test_a_failing_release_directory_keeps_its_error(files, problem, monkeypatch):
    """An answer that is an error (not a stall) is reported as before."""
    monkeypatch.setattr(settings, "http_deadline", 30.0)
    with TrickleServer(files=files) as server:
        _point_directories(monkeypatch, f"{server.url}/files/mirrors.json", f"{server.url}/files/release.json")
        message = _refusal()
    expected = f"cannot open the CELLxGENE Census release 'stable' ({problem.format(url=server.url)})."
    assert message == f"{expected} {WHERE} {OLD_FIX}"
