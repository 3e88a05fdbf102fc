"""Text encoders: the offline MiniLM and OpenAI embeddings against a loopback /v1/embeddings server."""

from __future__ import annotations

import numpy as np
import pytest
from servers.openai_server import OpenAIServer, expected_vector

from mmgene.text.encoders import EmbeddingCache, OpenAIEncoder, SentenceTransformerEncoder, _weights_fingerprint, text_encoder
from mmgene.errors import ParameterError, RemoteError

TEXTS = ["T-cell receptor CD3 epsilon chain", "lysozyme, an antibacterial enzyme", "B-lymphocyte antigen CD20"]


@pytest.fixture(scope="module")
def minilm():
    return text_encoder("minilm")


def test_minilm_vectors_are_normalised_and_cached(minilm, tmp_path):
    enc = SentenceTransformerEncoder("minilm", cache=tmp_path / "emb.sqlite")
    enc._model = minilm.model  # share the loaded weights (loading takes seconds)
    vecs = enc.encode([*TEXTS, TEXTS[0]])
    assert vecs.shape == (4, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(vecs[0], vecs[3]) and enc.n_encoded == 3  # a repeated text is embedded once
    # the same texts in the model directly (no cache) give the same vectors up to float rounding
    direct = minilm.model.encode(TEXTS, normalize_embeddings=True)
    assert np.allclose(vecs[:3], direct, atol=1e-6)
    # a fresh encoder on the same cache: no model load, no encoding, identical bits
    again = SentenceTransformerEncoder("minilm", cache=tmp_path / "emb.sqlite")
    assert np.array_equal(again.encode(TEXTS), vecs[:3])
    assert again.n_encoded == 0 and again._model is None and again.dim == 384
    assert EmbeddingCache(tmp_path / "emb.sqlite").count("st:sentence-transformers/all-MiniLM-L6-v2") == 3


def test_minilm_meaning(minilm):
    q, t, b = minilm.encode(["T cell", "T-cell receptor CD3 epsilon chain", "B-lymphocyte antigen CD20"])
    assert q @ t > q @ b


def test_encode_bad_input(minilm):
    with pytest.raises(ParameterError, match="one string"):
        minilm.encode("a text")
    with pytest.raises(ParameterError, match="#1 is empty"):
        minilm.encode(["ok", "  "])
    with pytest.raises(ParameterError, match="#0 is int"):
        minilm.encode([3])
    assert minilm.encode([]).shape == (0, 384)


def test_local_folder_key_follows_the_weights(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights-1")
    a = SentenceTransformerEncoder(folder).cache_key
    (folder / "model.safetensors").write_bytes(b"weights-2")
    _weights_fingerprint.cache_clear()
    b = SentenceTransformerEncoder(folder).cache_key
    assert a.startswith("st:local:") and a != b
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert SentenceTransformerEncoder(f"hf://org/model@{commit}").cache_key == f"st:org/model@{commit}"


def test_openai_encoder_batches_and_normalises(tmp_path):
    with OpenAIServer() as server:
        enc = text_encoder("openai:tiny-embed", api_key=server.api_key, base_url=server.base_url, batch_size=3, cache=tmp_path / "o.sqlite")
        texts = [f"gene text {i}" for i in range(7)]
        vecs = enc.encode(texts)
        assert [len(r["input"]) for r in server.requests] == [3, 3, 1]
        assert all(r["model"] == "tiny-embed" and r["encoding_format"] == "float" for r in server.requests)
        for text, vec in zip(texts, vecs):
            raw = expected_vector("tiny-embed", text, 12)
            assert np.allclose(vec, raw / np.linalg.norm(raw), atol=1e-6)
        assert enc.dim == 12 and enc.name == "openai:tiny-embed"
        # cached: a new encoder makes no request
        again = OpenAIEncoder("tiny-embed", api_key=server.api_key, base_url=server.base_url, cache=tmp_path / "o.sqlite")
        assert np.array_equal(again.encode(texts[::-1]), vecs[::-1]) and len(server.requests) == 3


def test_openai_dimensions_are_sent_and_keyed(tmp_path):
    with OpenAIServer() as server:
        enc = OpenAIEncoder("text-embedding-3-small", dimensions=8, api_key=server.api_key, base_url=server.base_url, cache=tmp_path / "d.sqlite")
        vec = enc.encode(["CD14 molecule"])
        assert vec.shape == (1, 8) and server.requests[0]["dimensions"] == 8
        raw = expected_vector("text-embedding-3-small", "CD14 molecule", 8)
        assert np.allclose(vec[0], raw / np.linalg.norm(raw), atol=1e-6)
        full = OpenAIEncoder("text-embedding-3-small", api_key="k", base_url=server.base_url)
        assert enc.cache_key != full.cache_key and full.dim == 1536
        assert enc.cache_key == f"openai:text-embedding-3-small:8@{server.base_url}"


def test_openai_retries_honour_retry_after(tmp_path):
    import time

    with OpenAIServer(faults=[("429", 1.2), ("500", 0)]) as server:
        enc = OpenAIEncoder("tiny-embed", api_key=server.api_key, base_url=server.base_url, max_retries=3, cache=False)
        t = time.monotonic()
        vec = enc.encode(["lysozyme"])
        assert time.monotonic() - t >= 1.2  # the client's own first backoff is under a second
        assert len(server.requests) == 3 and vec.shape == (1, 12)


def test_openai_interrupted_run_keeps_finished_batches(tmp_path):
    texts = [f"text {i}" for i in range(6)]
    with OpenAIServer() as server:
        enc = OpenAIEncoder("tiny-embed", api_key=server.api_key, base_url=server.base_url, batch_size=2, max_retries=0, cache=tmp_path / "r.sqlite")
        server.faults = [("ok", 0), ("500", 0)]
        with pytest.raises(RemoteError):
            enc.encode(texts)  # batch 1 answered, batch 2 fails
        assert len(server.requests) == 2
        before = len(server.requests)
        vecs = enc.encode(texts)
        assert [len(r["input"]) for r in server.requests[before:]] == [2, 2]  # texts 2..5 only
        assert vecs.shape == (6, 12)


def test_openai_failures_are_remote_errors_without_the_key(tmp_path):
    with OpenAIServer(faults=[("500", 0)] * 3) as server:
        enc = OpenAIEncoder("tiny-embed", api_key=server.api_key, base_url=server.base_url, max_retries=1, cache=False)
        with pytest.raises(RemoteError, match="HTTP 500") as err:
            enc.encode(["x"])
        assert server.api_key not in str(err.value) and len(server.requests) == 2
    with OpenAIServer() as server:
        wrong = OpenAIEncoder("tiny-embed", api_key="sk-wrong-key", base_url=server.base_url, cache=False)
        with pytest.raises(RemoteError, match="HTTP 401") as err:
            wrong.encode(["x"])
        assert "sk-wrong-key" not in str(err.value)
        missing = OpenAIEncoder("no-such-model", api_key=server.api_key, base_url=server.base_url, cache=False)
        with pytest.raises(RemoteError, match="HTTP 404.*no-such-model"):
            missing.encode(["x"])


def test_openai_configuration_errors(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ParameterError, match="no OpenAI API key"):
        OpenAIEncoder("tiny-embed", base_url="http://127.0.0.1:9/v1", cache=False).encode(["x"])
    with pytest.raises(ParameterError, match="batch_size"):
        OpenAIEncoder(batch_size=5000)
    with pytest.raises(ParameterError, match="needs a model name"):
        text_encoder("openai:")


def _open_caches(paths: list[str], barrier, results) -> None:
    """Open each fresh cache in turn, all processes at once (the barrier), and report each outcome."""
    for path in paths:
        barrier.wait()
        try:
            cache = EmbeddingCache(path)
            cache.put("m", ["h"], np.ones((1, 2), dtype=np.float32))
            results.put((path, "ok"))
        except Exception as exc:  # reported to the parent, which asserts on it
            results.put((path, repr(exc)))


def test_processes_opening_a_new_cache_together_wait_for_each_other(tmp_path):
    # every rank of a torchrun job opens the same fresh cache at once; sqlite refuses concurrent WAL
    # switches without waiting, which once failed a rank with 'database is locked'. Eight processes
    # open sixteen fresh caches together, one after another (starting processes is the slow part).
    import multiprocessing
    from collections import Counter

    ctx = multiprocessing.get_context("spawn")
    paths = [str(tmp_path / f"emb{trial}.sqlite") for trial in range(16)]
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_open_caches, args=(paths, barrier, results)) for _ in range(8)]
    for proc in procs:
        proc.start()
    outcomes = Counter(results.get(timeout=120) for _ in range(8 * len(paths)))
    for proc in procs:
        proc.join()
    assert outcomes == Counter({(path, "ok"): 8 for path in paths})
    assert [EmbeddingCache(path).count("m") for path in paths] == [1] * len(paths)
