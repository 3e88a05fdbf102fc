"""An OpenAI ``/v1/embeddings`` stand-in on 127.0.0.1 for tests (no internet).

Answers like the real API: Bearer-token check (401), at most 2,048 inputs and no empty strings (400),
``dimensions`` (only for ``text-embedding-3-*`` models), ``encoding_format`` ``float`` or ``base64``,
``data[i].index`` in request order. Vectors are deterministic: a seeded normal draw from the sha256 of
(model, text), so tests can compute the expected vector. Faults for the next requests: ``429`` with
``Retry-After``, ``500``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import numpy as np

from .loopback import serve_http, stop_http

MODEL_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536, "tiny-embed": 12}


def expected_vector(model: str, text: str, dim: int) -> np.ndarray:
    """The raw (unnormalised) vector the server returns for ``text``."""
    seed = int.from_bytes(hashlib.sha256(f"{model}\n{text}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32)


@dataclass
class OpenAIServer:
    api_key: str = "sk-test-secret"
    faults: list[tuple[str, float]] = field(default_factory=list)  # ('429', retry_after), ('500', 0) or ('ok', 0)
    #: JSON bodies of every request received (faults included)
    requests: list[dict] = field(default_factory=list)

    def __enter__(self) -> OpenAIServer:
        server = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                server._handle(self, raw)

        self.httpd = serve_http(Handler)
        return self

    def __exit__(self, *exc) -> None:
        stop_http(self.httpd)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _handle(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return self._error(h, 400, "invalid JSON body")
        with self._lock:
            self.requests.append(body)
            fault = self.faults.pop(0) if self.faults else None
        if h.path.rstrip("/") != "/v1/embeddings":
            return self._error(h, 404, f"unknown path {h.path}")
        if h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(h, 401, "Incorrect API key provided", "invalid_api_key")
        if fault is not None and fault[0] != "ok":
            kind, arg = fault
            if kind == "429":
                return self._error(h, 429, "Rate limit reached", "rate_limit_exceeded", {"Retry-After": f"{arg:g}"})
            return self._error(h, 500, "The server had an error while processing your request")
        model = body.get("model")
        if model not in MODEL_DIMS:
            return self._error(h, 404, f"The model `{model}` does not exist", "model_not_found")
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or len(inputs) > 2048:
            return self._error(h, 400, "input must be a string or a list of 1 to 2048 strings")
        if any(not isinstance(t, str) or not t for t in inputs):
            return self._error(h, 400, "'$.input' is invalid: empty strings are not allowed")
        dim = MODEL_DIMS[model]
        if "dimensions" in body:
            if not (model.startswith("text-embedding-3") or model == "tiny-embed") or not 1 <= int(body["dimensions"]) <= dim:
                return self._error(h, 400, f"This model does not support dimensions={body['dimensions']}")
            dim = int(body["dimensions"])
        fmt = body.get("encoding_format", "float")
        data = []
        for i, text in enumerate(inputs):
            vec = expected_vector(model, text, dim)
            emb = base64.b64encode(vec.astype("<f4").tobytes()).decode() if fmt == "base64" else vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(t.split()) for t in inputs)
        return self._send(h, 200, {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _error(self, h, status: int, message: str, code: str | None = None, headers: dict | None = None) -> None:
        self._send(h, status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}, headers)

    @staticmethod
    def _send(h, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
