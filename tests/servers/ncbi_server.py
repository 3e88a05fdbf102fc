"""An NCBI E-utilities stand-in on 127.0.0.1 for tests (no internet).

Speaks the JSON of ``esearch.fcgi`` (``db=gene``, ``term=("A"[sym] OR B[sym]) AND human[orgn]``) and
``esummary.fcgi`` (``id=1,2,3``; GET or POST form), refuses requests without ``tool``/``email`` or with
more than 200 ids (HTTP 400, like NCBI asks clients not to), and can be told to misbehave on the next
requests: ``429`` (with ``Retry-After``), ``500``, ``timeout`` (answers late), ``truncated`` (promises more
bytes than it sends and hangs up), ``badjson`` (a cut JSON body with a correct length), and, like servers
that quote a bad request back, ``echo`` (HTTP 400) and ``echo-rate`` (a retryable rate-limit error) whose
message repeats the ``api_key`` as received (form-encoded), decoded, ``quote``-d and in base64.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from .loopback import serve_http, stop_http

#: a few real genes (abridged NCBI summaries) used by the tests
GENES = [
    {"uid": "7157", "name": "TP53", "description": "tumor protein p53", "otheraliases": "BCC7, LFS1, P53, TRP53",
     "summary": "This gene encodes a tumor suppressor protein containing transcriptional activation, DNA binding, and oligomerization domains.",
     "otherdesignations": "cellular tumor antigen p53|phosphoprotein p53", "maplocation": "17p13.1"},
    {"uid": "916", "name": "CD3E", "description": "CD3 epsilon subunit of T-cell receptor complex", "otheraliases": "IMD18, T3E, TCRE",
     "summary": "The protein encoded by this gene is the CD3-epsilon polypeptide, which together with CD3-gamma, -delta and -zeta, and the T-cell receptor alpha/beta and gamma/delta heterodimers, forms the T-cell receptor-CD3 complex.",
     "otherdesignations": "T-cell surface antigen T3/Leu-4 epsilon chain", "maplocation": "11q23.3"},
    {"uid": "929", "name": "CD14", "description": "CD14 molecule", "otheraliases": "",
     "summary": "The protein encoded by this gene is a surface antigen that is preferentially expressed on monocytes/macrophages.",
     "otherdesignations": "monocyte differentiation antigen CD14", "maplocation": "5q31.3"},
    {"uid": "931", "name": "MS4A1", "description": "membrane spanning 4-domains A1", "otheraliases": "B1, Bp35, CD20, CVID5, LEU-16",
     "summary": "This gene encodes a member of the membrane-spanning 4A gene family; it is a B-lymphocyte surface molecule.",
     "otherdesignations": "B-lymphocyte antigen CD20", "maplocation": "11q12.2"},
    {"uid": "4818", "name": "NKG7", "description": "natural killer cell granule protein 7", "otheraliases": "GIG-1, GMP-17, p15-TIA-1",
     "summary": "", "otherdesignations": "granule membrane protein of 17 kDa", "maplocation": "19q13.41"},
    {"uid": "4069", "name": "LYZ", "description": "lysozyme", "otheraliases": "LYZF1, LZM",
     "summary": "This gene encodes human lysozyme, whose natural substrate is the bacterial cell wall peptidoglycan.",
     "otherdesignations": "1,4-beta-N-acetylmuramidase C", "maplocation": "12q15"},
]


def synthetic_genes(n: int, start_uid: int = 900001) -> list[dict]:
    """``n`` made-up genes SYNG1..SYNGn with ids from ``start_uid`` (for batching tests)."""
    return [
        {"uid": str(start_uid + i), "name": f"SYNG{i + 1}", "description": f"synthetic gene {i + 1}", "otheraliases": "",
         "summary": f"Synthetic gene number {i + 1} used to test batching.", "otherdesignations": "", "maplocation": "1p1"}
        for i in range(n)
    ]


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (timeouts, killed processes) are expected here, not errors."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@dataclass
class Fault:
    kind: str  # '429', '500', 'timeout', 'truncated', 'badjson', 'echo', 'echo-rate'
    endpoint: str = ""  # '' = any endpoint
    arg: float = 0.0  # Retry-After seconds for 429, delay for timeout


@dataclass
class NCBIServer:
    genes: list[dict] = field(default_factory=lambda: list(GENES))
    faults: list[Fault] = field(default_factory=list)
    #: (endpoint, params) of every request received, faults included
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: called with the request number (1-based) as each request arrives
    on_request: Callable[[int], None] | None = None
    retry_after_header: str | None = None
    methods: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.by_uid = {g["uid"]: g for g in self.genes}

    # -- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> NCBIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server._handle(self, parse_qs(urlsplit(self.path).query), "GET")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                self.raw_body = body
                params = parse_qs(urlsplit(self.path).query)
                params.update(parse_qs(body))
                server._handle(self, params, "POST")

        self.httpd = serve_http(Handler, _QuietServer)
        return self

    def __exit__(self, *exc) -> None:
        stop_http(self.httpd)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/entrez/eutils"

    def count(self, endpoint: str | None = None) -> int:
        return sum(1 for e, _ in self.requests if endpoint is None or e == endpoint)

    # -- answers ------------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, raw: dict[str, list[str]], method: str) -> None:
        endpoint = urlsplit(h.path).path.rsplit("/", 1)[-1]
        params = {k: v[0] for k, v in raw.items()}
        with self._lock:
            self.requests.append((endpoint, params))
            self.methods.append(method)
            n = len(self.requests)
            fault = None
            for i, f in enumerate(self.faults):
                if f.endpoint in ("", endpoint):
                    fault = self.faults.pop(i)
                    break
        if self.on_request is not None:
            self.on_request(n)
        try:
            self._answer(h, endpoint, params, fault)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            h.close_connection = True

    def _answer(self, h: BaseHTTPRequestHandler, endpoint: str, params: dict[str, str], fault: Fault | None) -> None:
        if fault is not None and fault.kind == "429":
            return self._send(h, 429, {"error": "API rate limit exceeded"}, {"Retry-After": self.retry_after_header or f"{fault.arg:g}"})
        if fault is not None and fault.kind == "500":
            return self._send(h, 500, {"error": "internal server error"})
        if fault is not None and fault.kind == "timeout":
            time.sleep(fault.arg)
        if fault is not None and fault.kind in ("echo", "echo-rate"):
            message = self._echo(getattr(h, "raw_body", "") or urlsplit(h.path).query, params.get("api_key", ""))
            if fault.kind == "echo":
                return self._send(h, 400, {"error": f"invalid request: {message}"})
            return self._send(h, 200, {"error": f"API rate limit exceeded; {message}"})
        if params.get("db") != "gene" or params.get("retmode") != "json":
            return self._send(h, 400, {"error": "db=gene and retmode=json are required"})
        if not params.get("tool") or not params.get("email"):
            return self._send(h, 400, {"error": "tool and email are required"})
        if endpoint == "esearch.fcgi":
            body = self._esearch(params)
        elif endpoint == "esummary.fcgi":
            ids = [i for i in params.get("id", "").split(",") if i]
            if len(ids) > 200:
                return self._send(h, 400, {"error": f"too many ids ({len(ids)}); use at most 200"})
            body = self._esummary(ids)
        else:
            return self._send(h, 404, {"error": f"unknown endpoint {endpoint}"})
        if fault is not None and fault.kind in ("truncated", "badjson"):
            data = json.dumps(body).encode()
            cut = data[: len(data) // 2]
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data) if fault.kind == "truncated" else len(cut)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(cut)
            h.wfile.flush()
            h.close_connection = True
            return None
        return self._send(h, 200, body)

    @staticmethod
    def _echo(raw: str, key: str) -> str:
        """The api_key as a careless server quotes it: as sent (form-encoded), decoded, quoted, base64."""
        sent = re.search(r"(?:^|&)api_key=([^&]*)", raw)
        token = base64.b64encode(f"api_key={key}".encode()).decode()
        return f"key {sent.group(1) if sent else ''} | {key} | {quote(key, safe='')} | {token}"

    def _esearch(self, params: dict[str, str]) -> dict:
        term = params.get("term", "")
        symbols = [q or bare for q, bare in re.findall(r'"([^"]*)"\[sym\]|([^\s()"]+)\[sym\]', term)]  # "A B"[sym] or A[sym]
        organism = re.findall(r"(\w+)\[orgn\]", term)
        ids: list[str] = []
        missing: list[str] = []
        for sym in symbols:
            hits = [g["uid"] for g in self.genes if sym.upper() == g["name"].upper()
                    or sym.upper() in [a.strip().upper() for a in g["otheraliases"].split(",") if a.strip()]]
            if organism and organism[0] != "human":
                hits = []
            if hits:
                ids.extend(h for h in hits if h not in ids)
            else:
                missing.append(f"{sym}[sym]")
        result: dict = {"count": str(len(ids)), "retmax": str(len(ids)), "retstart": "0", "idlist": ids, "translationset": [],
                        "querytranslation": term}
        if missing:
            result["errorlist"] = {"phrasesnotfound": missing, "fieldsnotfound": []}
        return {"header": {"type": "esearch", "version": "0.3"}, "esearchresult": result}

    def _esummary(self, ids: list[str]) -> dict:
        result: dict = {"uids": []}
        for uid in ids:
            result["uids"].append(uid)
            gene = self.by_uid.get(uid)
            if gene is None:
                result[uid] = {"uid": uid, "error": "cannot get document summary"}
            else:
                result[uid] = {**gene, "status": 0, "currentid": "", "chromosome": "",
                               "organism": {"scientificname": "Homo sapiens", "commonname": "human", "taxid": 9606}}
        return {"header": {"type": "esummary", "version": "0.3"}, "result": result}

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
