"""NCBI E-utilities client for gene text: esearch (symbol -> gene id) and esummary (id -> record).

Polite and resumable by construction:

* sends ``tool``/``email`` (and ``api_key`` when given), and spaces requests to 3 per second, or 10 per
  second with a key, as NCBI asks;
* requests go through :class:`mmgene.net.http.HttpClient`: a connect/read timeout and a total deadline
  per attempt (connect and all reads), so a server that trickles bytes cannot hold it; 429, 5xx,
  timeouts, deadline overruns, dropped connections and truncated or unparsable bodies are retried with
  exponential backoff, waiting what ``Retry-After`` says (seconds or an HTTP date) when the server says
  it, never longer than ``max_backoff`` and never after the last attempt; other 4xx answers and
  redirects fail at once;
* the API key goes only to an https ``base_url`` (or plain http on this machine, for tests and local
  mirrors), never follows a redirect, and is redacted from every message in any encoding (raw,
  percent-encoded, base64);
* answers go to a sqlite cache (one transaction per batch of symbols), so a second run makes no request
  and a run that is killed resumes at the first batch it had not finished; the cache records its organism
  and refuses to answer for another.

Symbols are looked up in batches: one esearch ``("A"[sym] OR "B"[sym] ...) AND human[orgn]`` by POST (paged on
with ``retstart`` while it found more ids than it gave), then
esummary of the ids it returned by POST in batches of at most 200; each returned record is matched
back to the requested symbol by its official symbol, else by a unique alias. Only live records count
(status 0: not replaced, not discontinued). A symbol is cached as having no gene only when its batch was
answered in full: an esearch error (``esearchresult.ERROR``, sent with HTTP 200) fails the batch (a failed
search backend is tried again, like a rate-limit error), and when esummary gives no document for an id that
esearch found, the batch's unmatched symbols are asked again on the next run.

Each symbol is quoted, so that spaces, brackets, parentheses or a word like ``OR`` in a user's gene name
stay one term. An Entrez query cannot hold a double quote: a symbol with one is never sent (no gene has
one) and gets no record, as :func:`~mmgene.genes.text_sources.normalise_symbols` drops blank symbols.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from mmgene.errors import InputFileError, ParameterError, RemoteError, cause
from mmgene.genes.text_sources import GeneRecord, GeneTextSource, normalise_symbols
from mmgene.net.credentials import redact, register_secret, require_secure_origin
from mmgene.progress import progress
from mmgene.settings import settings
from mmgene.sqlite_retry import LOCK_WAIT, locked_fix, retry_locked

EUTILS = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
#: NCBI asks for POST beyond ~200 ids; we never send more than this many ids per esummary call.
MAX_SUMMARY_BATCH = 200
SEARCH_BATCH = 100
#: seconds one request may take in all (connect and every read); E-utilities answers are small
DEFAULT_DEADLINE = 60.0
#: seconds a process waits for another one holding the NCBI cache (e.g. creating the same fresh file)
CACHE_LOCK_WAIT = LOCK_WAIT
LOCKED_FIX = locked_fix("another cache path (cache_path=, --cache) or cache folder ($MMGENE_CACHE)")
_T = TypeVar("_T")


def entrez_symbol(symbol: str) -> str:
    """``symbol`` as one quoted Entrez gene-symbol term, ``"SYM"[sym]`` (it must hold no double quote)."""
    return f'"{symbol}"[sym]'


def searchable(symbols: Iterable[str]) -> tuple[list[str], list[str]]:
    """``symbols`` split into those an Entrez query can hold and those it cannot (with a double quote)."""
    symbols = list(symbols)
    return [s for s in symbols if '"' not in s], [s for s in symbols if '"' in s]


def _say_unsearchable(symbols: Sequence[str]) -> None:
    if symbols:
        from mmgene.progress import info

        from mmgene.errors import _preview

        info(f"mmgene: {len(symbols)} gene symbols hold a double quote, which an NCBI search cannot; they get no NCBI text: {_preview(symbols)}")


class RateLimiter:
    """At most ``rate`` request starts per second (thread-safe, monotonic clock)."""

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ParameterError(f"rate must be positive, got {rate}", "RateLimiter", "pass requests per second > 0")
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()
        self._sleep = sleep

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            self._sleep(delay)


class _Cache:
    """sqlite tables ``symbols(symbol -> gene id or NULL)`` and ``summaries(gene id -> JSON record)``, and
    ``meta(organism)``: symbols are looked up per organism, so one file never answers for two.

    Processes may share the file: every read and write waits out another one's lock for at most
    :data:`CACHE_LOCK_WAIT` seconds (see :mod:`mmgene.sqlite_retry`), then raises
    :class:`~mmgene.sqlite_retry.CacheLockedError`."""

    def __init__(self, path: Path, organism: str = "human") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock_wait = CACHE_LOCK_WAIT
        with self._readable():
            self.db = sqlite3.connect(str(path), timeout=self.lock_wait)
            try:
                cached = self._retry(lambda: self._create(organism))
            except BaseException:
                self.db.close()
                raise
        if cached != organism:
            self.db.close()
            raise InputFileError(
                f"this NCBI cache holds answers for organism {cached!r}, not {organism!r}", str(path),
                f"pass another cache path for {organism!r} (symbols of two organisms must not share a cache)",
            )

    def _create(self, organism: str) -> str:
        """Switch to WAL, create the tables, record ``organism`` in a new file; the organism the file holds."""
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS symbols (symbol TEXT PRIMARY KEY, gene_id TEXT, fetched TEXT)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS summaries (gene_id TEXT PRIMARY KEY, doc TEXT NOT NULL, fetched TEXT)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('organism', ?)", (organism,))
        self.db.commit()
        return str(self.db.execute("SELECT value FROM meta WHERE key = 'organism'").fetchone()[0])

    def _retry(self, op: Callable[[], _T]) -> _T:
        """``op()`` (one whole transaction or read), run again while another process holds the file."""
        return retry_locked(self.db, op, self.path, wait=self.lock_wait, what="NCBI cache", fix=LOCKED_FIX)

    @contextmanager
    def _readable(self) -> Iterator[None]:
        """sqlite and JSON failures of the cache file as one :class:`InputFileError` naming the file."""
        try:
            yield
        except (sqlite3.Error, ValueError) as exc:
            raise InputFileError(
                f"cannot use the NCBI cache ({cause(exc)})", str(self.path),
                "if the file is damaged, delete it (it only holds NCBI answers, fetched again); else check it is writable",
            ) from None

    def _select(self, sql: str, keys: Sequence[str]) -> list[tuple[Any, Any]]:
        """Rows of ``sql`` (with one ``{}`` for the placeholders) for ``keys``, 500 at a time."""
        rows: list[tuple[Any, Any]] = []
        for i in range(0, len(keys), 500):
            part = list(keys[i : i + 500])
            query = sql.format(",".join("?" * len(part)))
            with self._readable():
                rows += self._rows(query, part)
        return rows

    def _rows(self, query: str, params: Sequence[str]) -> list[tuple[Any, Any]]:
        return self._retry(lambda: self.db.execute(query, params).fetchall())

    def symbols(self, symbols: Sequence[str]) -> dict[str, str | None]:
        return dict(self._select("SELECT symbol, gene_id FROM symbols WHERE symbol IN ({})", symbols))

    def summaries(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = self._select("SELECT gene_id, doc FROM summaries WHERE gene_id IN ({})", ids)
        with self._readable():
            return {g: json.loads(d) for g, d in rows}

    def store(self, symbols: dict[str, str | None], docs: dict[str, dict[str, Any]]) -> None:
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        summary_rows = [(g, json.dumps(d, sort_keys=True), now) for g, d in docs.items()]
        symbol_rows = [(s, g, now) for s, g in symbols.items()]

        def write() -> None:
            with self.db:  # one transaction: a batch is cached entirely or not at all
                self.db.executemany("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?)", summary_rows)
                self.db.executemany("INSERT OR REPLACE INTO symbols VALUES (?, ?, ?)", symbol_rows)

        self._retry(write)

    def close(self) -> None:
        self.db.close()


def record_from_doc(doc: dict[str, Any]) -> GeneRecord:
    """An esummary gene document -> :class:`GeneRecord`."""
    return GeneRecord(
        symbol=str(doc.get("name") or ""),
        name=str(doc.get("description") or ""),
        aliases=str(doc.get("otheraliases") or ""),
        summary=str(doc.get("summary") or "").strip(),
        designations=str(doc.get("otherdesignations") or ""),
        gene_id=str(doc.get("uid") or ""),
        location=str(doc.get("maplocation") or ""),
    )


def _is_current(doc: dict[str, Any]) -> bool:
    """Whether an esummary gene document is a live record: status 0 (1 is replaced, 2 discontinued) and
    no other current id."""
    status = str(doc.get("status") or "").strip()
    current = str(doc.get("currentid") or "").strip()
    return status in ("", "0") and current in ("", "0", str(doc.get("uid", "")))


def _error_of(body: Any) -> str | None:
    """The error an E-utilities JSON answer carries: top-level ``error``, or ``esearchresult.ERROR`` (HTTP 200)."""
    if not isinstance(body, dict):
        return "not a JSON object"
    search = body.get("esearchresult")
    return body.get("error") or (search.get("ERROR") if isinstance(search, dict) else None)


class NCBIClient:
    """E-utilities client with rate limit, retries and a persistent cache.

    Parameters
    ----------
    base_url
        E-utilities root (tests point it at a loopback server).
    tool, email, api_key
        Sent with every request, as NCBI asks. ``api_key`` defaults to ``$NCBI_API_KEY`` and
        raises the rate limit from 3 to 10 requests per second; it never appears in errors.
    organism
        Restricts esearch (``human[orgn]``).
    rate
        Requests per second (default 3, or 10 with a key).
    timeout
        ``(connect, read)`` seconds any one connect or read may wait.
    deadline
        Seconds one attempt may take in all (default ``$MMGENE_HTTP_DEADLINE`` or 60).
    max_retries, backoff, max_backoff
        A failed request is tried again up to ``max_retries`` times, waiting ``backoff * 2**attempt``
        seconds or what ``Retry-After`` says (seconds or an HTTP date), at most ``max_backoff``.
    cache_path
        The sqlite file; default ``<settings.cache_dir>/ncbi/gene_<organism>.sqlite``.
    """

    def __init__(
        self,
        *,
        base_url: str = EUTILS,
        tool: str = "mmgene",
        email: str | None = None,
        api_key: str | None = None,
        organism: str = "human",
        rate: float | None = None,
        timeout: tuple[float, float] | float = (10.0, 60.0),
        deadline: float | None = None,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 120.0,
        cache_path: str | os.PathLike[str] | None = None,
        search_batch: int = SEARCH_BATCH,
        summary_batch: int = MAX_SUMMARY_BATCH,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from mmgene.net.http import HttpClient, RetryPolicy

        if not 1 <= summary_batch <= MAX_SUMMARY_BATCH:
            raise ParameterError(
                f"summary_batch must be between 1 and {MAX_SUMMARY_BATCH}, got {summary_batch}", "NCBIClient", "use at most 200 ids per esummary call"
            )
        if search_batch < 1 or max_retries < 0:
            raise ParameterError(
                f"search_batch must be >= 1 and max_retries >= 0 (got {search_batch}, {max_retries})", "NCBIClient",
                f"use e.g. search_batch={SEARCH_BATCH} (--batch-size) and max_retries=5 (--retries)",
            )
        if not base_url.lower().startswith(("https://", "http://")):
            raise ParameterError(f"NCBI base_url must be an http(s):// URL, got {redact(base_url)!r}", "base_url", f"e.g. {EUTILS}")
        self.base_url = base_url.rstrip("/")
        self.tool, self.email = tool, email or os.environ.get("NCBI_EMAIL")
        self.api_key = api_key if api_key is not None else os.environ.get("NCBI_API_KEY")
        register_secret(self.api_key)
        if self.api_key:
            require_secure_origin(self.base_url, "NCBI base_url", "the NCBI API key")
        self.organism = organism
        self.limiter = RateLimiter(rate or (10.0 if self.api_key else 3.0), sleep)
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.search_batch, self.summary_batch = search_batch, summary_batch
        self.http = HttpClient(
            policy=RetryPolicy(retries=max_retries, backoff=backoff, max_wait=max_backoff), timeout=timeout,
            deadline=deadline, default_deadline=DEFAULT_DEADLINE, sleep=sleep,
            headers={"User-Agent": f"{tool} (mmgene; https://github.com/mmgene)"},
        )
        self.deadline = self.http.deadline
        path = Path(cache_path) if cache_path else Path(settings.cache_dir) / "ncbi" / f"gene_{organism.replace(' ', '_')}.sqlite"
        self.cache = _Cache(path, organism)
        if not self.email:
            from mmgene.progress import info

            info("mmgene: NCBI asks clients to send an e-mail address with E-utilities requests; pass email= or set NCBI_EMAIL")
        #: HTTP requests sent by this client (retries included).
        self.requests_made = 0

    # -- HTTP ---------------------------------------------------------------------------------------
    def _params(self, extra: dict[str, str]) -> dict[str, str]:
        params = {"db": "gene", "retmode": "json", "tool": self.tool, **extra}
        if self.email:
            params["email"] = self.email
        if self.api_key:
            params["api_key"] = self.api_key
        return params

    def request(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        """POST ``params`` to ``<base_url>/<endpoint>`` and return the parsed JSON, retrying as documented.

        Redirects are not followed: the API key travels in the body and stays with ``base_url``.
        """
        from mmgene.net.http import TryAgain

        url = f"{self.base_url}/{endpoint}"

        def prepare() -> dict[str, Any]:
            self.limiter.wait()
            self.requests_made += 1
            return {}

        def accept(resp: Any) -> dict[str, Any]:
            if 300 <= resp.status_code < 400:
                raise RemoteError(
                    f"NCBI E-utilities answered HTTP {resp.status_code} (a redirect, not followed so the API key stays with base_url)",
                    redact(url),
                    f"point base_url at the final address{self._location(resp)}",
                )
            if resp.status_code >= 400:
                raise RemoteError(
                    f"NCBI E-utilities answered HTTP {resp.status_code}: {redact(resp.text)[:300]}",
                    redact(url),
                    "check the parameters (tool, email, api_key) and the symbols; see https://www.ncbi.nlm.nih.gov/books/NBK25497/",
                )
            try:
                body = resp.json()
            except ValueError as exc:
                raise TryAgain(f"unparsable or truncated JSON ({redact(exc)[:200]})") from None
            error = _error_of(body)
            if not error:
                return body
            problem = f"E-utilities error: {redact(error)[:200]}"
            # over the rate limit, or NCBI's "Search Backend failed": both pass with time
            if any(word in str(error).lower() for word in ("rate limit", "backend")):
                raise TryAgain(problem)
            raise RemoteError(problem, redact(url), "check the request; NCBI refused it")

        return self.http.request(
            "POST", url, data=self._params(params), allow_redirects=False, prepare=prepare, accept=accept,
            what="NCBI E-utilities", hint="try again later; finished batches are cached and will not be fetched again",
        )

    @staticmethod
    def _location(resp: Any) -> str:
        location = resp.headers.get("Location")
        return f" ({redact(location)[:200]})" if location else ""

    # -- E-utilities --------------------------------------------------------------------------------
    def esearch(self, symbols: Sequence[str]) -> list[str]:
        """Gene ids whose symbol is one of ``symbols`` in the organism (one request; none when no symbol
        can be searched: those with a double quote are left out)."""
        symbols, dropped = searchable(symbols)
        _say_unsearchable(dropped)
        if not symbols:
            return []
        terms = " OR ".join(entrez_symbol(s) for s in symbols)
        params = {"term": f"({terms}) AND {self.organism}[orgn]", "retmax": str(max(20, 10 * len(symbols)))}
        ids: dict[str, None] = {}
        received = 0
        # NCBI gives at most retmax ids a request: page on, so no symbol is cached as 'no gene' for want of an id
        while True:
            page, count = self._search_page(self.request("esearch.fcgi", params))
            ids.update(dict.fromkeys(page))
            received += len(page)
            if received >= count:
                return list(ids)
            if not page:
                raise RemoteError(
                    f"esearch reported {count} ids but gave {received}", f"{self.base_url}/esearch.fcgi",
                    "try again later; finished batches are cached and will not be fetched again",
                )
            params["retstart"] = str(received)

    def _search_page(self, body: dict[str, Any]) -> tuple[list[str], int]:
        """The ids of one esearch answer and how many the search found in all (``count``)."""
        result = body.get("esearchresult")
        where = f"{self.base_url}/esearch.fcgi"
        if not isinstance(result, dict):
            raise RemoteError("esearch answer has no 'esearchresult'", where, "check base_url points at E-utilities")
        page = result.get("idlist", [])
        count = str(result.get("count", len(page) if isinstance(page, list) else "")).strip()
        if not isinstance(page, list) or not all(isinstance(i, (str, int)) for i in page) or not count.isdigit():
            raise RemoteError(
                f"esearch answer has a malformed 'idlist' or 'count' ({redact(str(result)[:200])})", where,
                "check base_url points at E-utilities",
            )
        return [str(i) for i in page], int(count)

    def esummary(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Gene documents for ``ids`` (one POST per <= ``summary_batch`` ids)."""
        docs: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), self.summary_batch):
            part = list(ids[i : i + self.summary_batch])
            body = self.request("esummary.fcgi", {"id": ",".join(part)})
            result = body.get("result")
            if not isinstance(result, dict):
                raise RemoteError("esummary answer has no 'result'", f"{self.base_url}/esummary.fcgi", "check base_url points at E-utilities")
            for uid in result.get("uids", []):
                doc = result.get(str(uid))
                if isinstance(doc, dict) and not doc.get("error"):
                    docs[str(uid)] = doc
        return docs

    # -- the resumable fetch ------------------------------------------------------------------------
    def fetch(self, symbols: Iterable[str]) -> dict[str, GeneRecord | None]:
        """``{SYMBOL: record or None}`` for every symbol; cached batches cost no request."""
        wanted = normalise_symbols(symbols, "NCBIClient.fetch")
        known = self.cache.symbols(wanted)
        todo, dropped = searchable(s for s in wanted if s not in known)
        _say_unsearchable(dropped)
        batches = [todo[i : i + self.search_batch] for i in range(0, len(todo), self.search_batch)]
        for batch in progress(batches, total=len(batches), desc="NCBI gene text", unit="batch"):
            ids = self.esearch(batch)
            cached = self.cache.summaries(ids)
            docs = self.esummary([i for i in ids if i not in cached])
            found = self._match(batch, {**cached, **docs})
            if any(i not in cached and i not in docs for i in ids):  # some document failed: 'no gene' is not known
                found = {s: g for s, g in found.items() if g is not None}
            self.cache.store(found, docs)
            known.update(found)
        docs = self.cache.summaries(sorted({g for g in known.values() if g}))
        return {s: (record_from_doc(docs[g]) if g and g in docs else None) for s, g in ((s, known.get(s)) for s in wanted)}

    def _match(self, batch: Sequence[str], docs: dict[str, dict[str, Any]]) -> dict[str, str | None]:
        by_name: dict[str, str] = {}
        by_alias: dict[str, set[str]] = {}
        for uid in sorted(docs, key=lambda u: int(u) if u.isdigit() else 0):
            doc = docs[uid]
            if not _is_current(doc):
                continue
            by_name.setdefault(str(doc.get("name", "")).upper(), uid)
            for alias in str(doc.get("otheraliases") or "").split(","):
                if alias.strip():
                    by_alias.setdefault(alias.strip().upper(), set()).add(uid)
        out: dict[str, str | None] = {}
        for sym in batch:
            if sym in by_name:
                out[sym] = by_name[sym]
            elif len(by_alias.get(sym, ())) == 1:
                out[sym] = next(iter(by_alias[sym]))
            else:
                out[sym] = None
        return out

    def close(self) -> None:
        self.http.close()
        self.cache.close()


class NCBIGeneText(GeneTextSource):
    """Gene text from NCBI Gene (symbol, full name, aliases and the curated summary), like GenePT.

    Keyword arguments go to :class:`NCBIClient`.
    """

    def __init__(self, **client_kwargs: Any) -> None:
        self.client = NCBIClient(**client_kwargs)
        self.name = "ncbi-eutils"
        self.version = f"NCBI Gene via E-utilities, fetched {_dt.date.today().isoformat()} (cache {self.client.cache.path})"

    def records(self, symbols: Iterable[str] | None = None) -> dict[str, GeneRecord]:
        if symbols is None:
            raise ParameterError(
                "the NCBI source needs a list of gene symbols", "NCBIGeneText.texts", "pass the symbols to fetch (e.g. adata.var['gene_symbol'])"
            )
        return {s: r for s, r in self.client.fetch(symbols).items() if r is not None}

    def texts(self, symbols: Iterable[str] | None = None) -> dict[str, str]:
        return {s: r.text() for s, r in self.records(symbols).items()}
