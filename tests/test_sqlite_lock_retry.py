"""The NCBI gene-text cache waits out another connection's sqlite lock (mmgene/sqlite_retry.py), and says
clearly which file stayed locked when the lock outlasts its bound."""

from __future__ import annotations

import sqlite3
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from servers.ncbi_server import GENES, NCBIServer

from mmgene.genes import ncbi
from mmgene.genes.ncbi import NCBIClient

DOCS = {g["name"]: g for g in GENES}
TP53_TEXT = (
    "Gene symbol TP53. Full name: tumor protein p53. Also known as: BCC7, LFS1, P53, TRP53. "
    "Other designations: cellular tumor antigen p53; phosphoprotein p53. Location: 17p13.1. "
    "Summary: This gene encodes a tumor suppressor protein containing transcriptional activation, "
    "DNA binding, and oligomerization domains."
)


def _client(server: NCBIServer, cache: Path) -> NCBIClient:
    return NCBIClient(
        base_url=server.url, email="test@example.org", cache_path=cache, rate=1000.0, sleep=lambda s: None
    )


def _dump(cache: Path) -> dict[str, list[tuple]]:
    """Every row of every table of the cache file, read by a connection of its own."""
    db = sqlite3.connect(str(cache))
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall()) for t in ("meta", "symbols", "summaries")}
    finally:
        db.close()


def _hold(cache: Path, begin: str, held: threading.Event, seconds: float) -> None:
    """Take a write lock on ``cache`` from another connection, and release it after ``seconds``."""
    db = sqlite3.connect(str(cache), isolation_level=None)
    db.execute(begin)
    held.set()
    threading.Event().wait(seconds)
    db.execute("COMMIT")
    db.close()


def test_a_fresh_ncbi_cache_waits_for_another_connections_write_lock(tmp_path):
    """Another connection holds a write lock on the new file: switching it to WAL failed at once with
    'cannot use the NCBI cache (OperationalError: database is locked)'."""
    cache = tmp_path / "ncbi.sqlite"
    held = threading.Event()
    holder = threading.Thread(target=_hold, args=(cache, "BEGIN IMMEDIATE", held, 0.3))
    holder.start()
    try:
        assert held.wait(30)
        with NCBIServer() as server:
            client = _client(server, cache)
            got = client.fetch(["TP53", "NOTAGENE1"])
            client.close()
    finally:
        holder.join()
    assert got["TP53"].text() == TP53_TEXT and got["NOTAGENE1"] is None
    dump = _dump(cache)
    assert dump["meta"] == [("organism", "human")]
    assert [row[:2] for row in dump["symbols"]] == [("NOTAGENE1", None), ("TP53", "7157")]
    assert [row[0] for row in dump["summaries"]] == ["7157"]


def test_a_lock_that_is_never_released_is_a_clear_error_and_the_cache_is_left_intact(tmp_path, monkeypatch):
    from mmgene.errors import InputFileError, MMGeneError
    from mmgene.sqlite_retry import CacheLockedError

    monkeypatch.setattr(ncbi, "CACHE_LOCK_WAIT", 0.2)
    cache = tmp_path / "ncbi.sqlite"
    expected = (
        "the NCBI cache stayed locked by another process for more than 0.2 s (OperationalError: database is locked). "
        f"Where: {cache}. What to do: wait for the other process using it (e.g. another mmgene run) to finish and "
        "run again, or give this run another cache path (cache_path=, --cache) or cache folder ($MMGENE_CACHE)."
    )
    with NCBIServer() as server:
        first = _client(server, cache)
        assert first.fetch(["TP53", "CD14"])["CD14"].gene_id == "929"
        before = _dump(cache)
        holder = sqlite3.connect(str(cache), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(CacheLockedError) as opening:
                _client(server, cache)  # a new client records its organism: a write
            with pytest.raises(CacheLockedError) as storing:
                first.fetch(["LYZ"])  # fetched from the server, then refused by the cache
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        first.close()
        assert isinstance(opening.value, InputFileError) and isinstance(opening.value, MMGeneError)
        assert str(opening.value) == expected and str(storing.value) == expected
        assert _dump(cache) == before
        again = _client(server, cache)
        assert again.fetch(["TP53"])["TP53"].text() == TP53_TEXT and again.requests_made == 0
        again.close()


TRIALS = 80


def _set_start(start) -> None:
    start.value = time.time() + 0.01


def _create_and_store(folder: str, index: int, barrier, start, results) -> None:
    """In a fresh process: for each trial, open the trial's new cache at the same instant as the other
    process (both wait at a barrier, then spin to a shared start time) and store one gene in it."""
    symbol = ("TP53", "CD14")[index]
    doc = DOCS[symbol]
    NCBIClient(email="t@e.st", cache_path=Path(folder) / "warm-up.sqlite").close()  # imports done before the race
    for trial in range(TRIALS):
        barrier.wait(60)
        while time.time() < start.value:
            pass
        try:
            client = NCBIClient(email="t@e.st", cache_path=Path(folder) / f"trial{trial}.sqlite")
            client.cache.store({symbol: doc["uid"]}, {doc["uid"]: doc})
            client.close()
            results.put((trial, index, "ok"))
        except Exception as exc:  # reported to the parent, which asserts on it
            results.put((trial, index, repr(exc)))


def test_two_processes_creating_the_same_fresh_cache_both_succeed(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Value("d", 0.0), ctx.Queue()
    barrier = ctx.Barrier(2, action=partial(_set_start, start))
    args = [(str(tmp_path), i, barrier, start, results) for i in range(2)]
    procs = [ctx.Process(target=_create_and_store, args=a) for a in args]
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=120) for _ in range(2 * TRIALS))
    for proc in procs:
        proc.join(60)
    assert outcomes == [(trial, i, "ok") for trial in range(TRIALS) for i in range(2)]
    for trial in range(TRIALS):
        dump = _dump(tmp_path / f"trial{trial}.sqlite")
        assert dump["meta"] == [("organism", "human")]
        assert [row[:2] for row in dump["symbols"]] == [("CD14", "929"), ("TP53", "7157")]
        assert [row[0] for row in dump["summaries"]] == ["7157", "929"]
