"""The ONNX Runtime backend of the sentence-transformers encoder: torch's vectors, exported once and cached.

The real MiniLM is exported once for this module (about 20 s of CPU; the tests that need it are marked
slow) into a folder of its own; the other tests need no export (a failing one is simulated) or no model.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from mmgene.errors import MMGeneError, ModelError, ParameterError  # noqa: E402
from mmgene.settings import settings  # noqa: E402
from mmgene.text import onnx_backend  # noqa: E402
from mmgene.text.encoders import ONNX_FROM, SentenceTransformerEncoder, TextEncoder  # noqa: E402

GENES = [
    "CD3E", "CD3D", "CD4", "CD8A", "CD8B", "IL7R", "CCR7", "SELL", "LEF1", "TCF7", "FOXP3", "IL2RA", "GZMB",
    "GZMK", "PRF1", "NKG7", "GNLY", "KLRD1", "MS4A1", "CD79A", "CD79B", "CD19", "PAX5", "LYZ", "CD14", "FCGR3A",
    "S100A8", "S100A9", "CST3", "FCER1A", "ITGAX", "PPBP", "PF4", "HBB", "MKI67", "TOP2A", "ACTB", "GAPDH",
    "MALAT1", "TP53",
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """A cache folder for this module, into which MiniLM is exported once (float32)."""
    folder = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "cache_dir", str(folder))
        SentenceTransformerEncoder("minilm", cache=False, backend="onnx").encode(["warm-up: export the model"])
    return folder


@pytest.fixture
def in_onnx_cache(onnx_cache, monkeypatch):
    monkeypatch.setattr(settings, "cache_dir", str(onnx_cache))
    return onnx_cache


@pytest.fixture(scope="module")
def gene_texts():
    from mmgene.genes.offline_text import OfflineGeneText

    texts = OfflineGeneText().texts(GENES)
    assert len(texts) == len(GENES)
    return [texts[g] for g in GENES]


@pytest.mark.slow  # the module's one export of MiniLM: ~20 s of CPU, int8 ~10 s more
def test_onnx_gives_torch_vectors_on_real_gene_texts(in_onnx_cache, gene_texts):
    torch_vecs = SentenceTransformerEncoder("minilm", cache=False, backend="torch").encode(gene_texts)
    enc = SentenceTransformerEncoder("minilm", cache=False, backend="onnx", threads=1)
    onnx_vecs = enc.encode(gene_texts)
    assert onnx_vecs.shape == (40, 384) and onnx_vecs.dtype == np.float32
    cos = np.sum(torch_vecs * onnx_vecs, axis=1)
    assert cos.min() > 0.9999 and np.abs(torch_vecs - onnx_vecs).max() < 1e-4
    # same model, same vectors up to rounding: one cache key, one provenance name
    assert enc.cache_key == "st:sentence-transformers/all-MiniLM-L6-v2" and "onnx" not in enc.name
    # a batch of one text (no padding) gives the same vector as that text inside a padded batch
    alone = SentenceTransformerEncoder("minilm", cache=False, backend="onnx").encode(gene_texts[23:24])
    assert np.abs(alone[0] - onnx_vecs[23]).max() < 1e-5


@pytest.mark.slow  # the module's one export of MiniLM: ~20 s of CPU, int8 ~10 s more
def test_the_export_is_cached_and_reused(in_onnx_cache, monkeypatch, gene_texts):
    files = list(in_onnx_cache.glob("onnx/*/model.onnx"))
    assert len(files) == 1 and files[0].stat().st_size > 80e6  # float32 MiniLM, one file, no external data
    stamp = files[0].stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_backend, "export", no_export)
    vecs = SentenceTransformerEncoder("minilm", cache=False, backend="onnx").encode(gene_texts[:3])
    assert vecs.shape == (3, 384)
    assert files[0].stat().st_mtime_ns == stamp and list(in_onnx_cache.glob("onnx/*/model.onnx")) == files
    assert not list(in_onnx_cache.glob("onnx/*/.*.tmp"))  # nothing staged was left behind


@pytest.mark.slow  # the module's one export of MiniLM: ~20 s of CPU, int8 ~10 s more
def test_int8_is_a_separate_opt_in_with_its_own_cache_key(in_onnx_cache, gene_texts):
    torch_vecs = SentenceTransformerEncoder("minilm", cache=False, backend="torch").encode(gene_texts)
    enc = SentenceTransformerEncoder("minilm", cache=False, backend="onnx-int8")
    vecs = enc.encode(gene_texts)
    cos = np.sum(torch_vecs * vecs, axis=1)
    # only Q/K/V are quantised: close to torch (the worst of PBMC 3k's 13,971 gene texts: 0.998), yet
    # not torch's vectors
    assert 0.995 < cos.min() < 0.9999 and cos.mean() > 0.998
    assert enc.cache_key.endswith("|onnx-int8") and enc.name.endswith("[onnx-int8]")
    sizes = sorted(p.stat().st_size for p in in_onnx_cache.glob("onnx/*/model.onnx"))
    # int8 beside the float32 export: 18 projections of 384 x 384 weights take a byte a weight instead of 4
    assert len(sizes) == 2 and sizes[1] - sizes[0] > 0.9 * 18 * 384 * 384 * 3


@pytest.mark.slow  # reads the module's export of MiniLM
def test_int8_quantises_only_the_query_key_and_value_projections(in_onnx_cache):
    """The 18 projections chosen are the three 384 x 384 MatMuls of each block that read one shared
    input; the output and both feed-forward projections each read their own and stay float32."""
    import onnx

    SentenceTransformerEncoder("minilm", cache=False, backend="onnx-int8").encode(["quantised on first use"])
    int8, path = sorted(in_onnx_cache.glob("onnx/*/model.onnx"), key=lambda p: p.stat().st_size)
    chosen = onnx_backend.attention_projections(path)
    graph = onnx.load(str(path)).graph
    shapes = {i.name: tuple(i.dims) for i in graph.initializer}
    nodes = {n.name: n for n in graph.node}
    assert len(chosen) == 18 and {shapes[nodes[c].input[1]] for c in chosen} == {(384, 384)}
    assert Counter(nodes[c].input[0] for c in chosen) == Counter({t: 3 for t in {nodes[c].input[0] for c in chosen}})
    others = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in shapes and n.name not in chosen]
    assert Counter(shapes[n.input[1]] for n in others) == {(384, 384): 6, (384, 1536): 6, (1536, 384): 6}
    # the quantised file has integer MatMuls exactly for those 18
    quantised = onnx.load(str(int8)).graph
    assert Counter(n.op_type for n in quantised.node)["MatMulInteger"] == 18
    assert sum(n.op_type == "MatMul" and n.input[1] in {i.name for i in quantised.initializer} for n in quantised.node) == 18


@pytest.mark.slow  # reads the module's export of MiniLM
def test_auto_embeds_big_jobs_in_int8_and_reuses_float_vectors_first(in_onnx_cache, gene_texts, monkeypatch, tmp_path):
    from mmgene.text import encoders

    monkeypatch.setattr(encoders, "ONNX_FROM", 20)
    cache = tmp_path / "emb.sqlite"
    torch_vecs = SentenceTransformerEncoder("minilm", cache=cache, backend="torch").encode(gene_texts)
    SentenceTransformerEncoder("minilm", cache=cache, backend="torch").encode(gene_texts[:10])
    store = encoders.EmbeddingCache(cache)
    store.db.execute("DELETE FROM embeddings WHERE sha NOT IN (%s)" % ",".join("?" * 10), [encoders.text_hash(t) for t in gene_texts[:10]])
    store.db.commit()
    auto = SentenceTransformerEncoder("minilm", cache=cache)
    vecs = auto.encode(gene_texts)
    # the 10 float32 vectors in the cache are reused as they are; the 30 others are embedded in int8
    assert auto.n_encoded == 30 and auto.store_key == "st:sentence-transformers/all-MiniLM-L6-v2|onnx-int8"
    assert np.array_equal(vecs[:10], torch_vecs[:10])
    cos = np.sum(vecs[10:] * torch_vecs[10:], axis=1)
    assert 0.995 < cos.min() and not np.array_equal(vecs[10:], torch_vecs[10:])
    assert store.count("st:sentence-transformers/all-MiniLM-L6-v2") == 10
    assert store.count("st:sentence-transformers/all-MiniLM-L6-v2|onnx-int8") == 30
    again = SentenceTransformerEncoder("minilm", cache=cache)
    assert np.array_equal(again.encode(gene_texts), vecs) and again.n_encoded == 0
    # torch alone never takes int8 vectors: it embeds the 30 again
    plain = SentenceTransformerEncoder("minilm", cache=cache, backend="torch")
    assert np.array_equal(plain.encode(gene_texts), torch_vecs) and plain.n_encoded == 30


def test_auto_runs_onnx_for_big_jobs_on_the_cpu_only():
    enc = SentenceTransformerEncoder("minilm", cache=False, device="cpu")
    assert enc.backend == "auto" and not enc._use_onnx
    enc._start(ONNX_FROM - 1)
    assert not enc._use_onnx
    enc._start(ONNX_FROM)
    assert enc._use_onnx and enc.store_key.endswith("|onnx-int8") and enc.cache_key == enc.store_key.removesuffix("|onnx-int8")
    gpu = SentenceTransformerEncoder("minilm", cache=False, device="cuda")
    gpu._start(10 * ONNX_FROM)
    assert not gpu._use_onnx
    torch_only = SentenceTransformerEncoder("minilm", cache=False, backend="torch", device="cpu")
    torch_only._start(10 * ONNX_FROM)
    assert not torch_only._use_onnx


def test_a_model_that_cannot_be_exported(tmp_path, monkeypatch, capsys):
    """'auto' falls back to torch with one line on stderr; an explicit 'onnx' is an error; nothing is cached."""
    monkeypatch.setattr(settings, "cache_dir", str(tmp_path))
    monkeypatch.setattr(settings, "quiet", False)

    def failing_export(st_model, target):
        raise ModelError("the text model cannot be exported to ONNX (test)", "backend='onnx'", "use backend='torch'")

    monkeypatch.setattr(onnx_backend, "export", failing_export)
    auto = SentenceTransformerEncoder("minilm", cache=False, device="cpu")
    auto._start(ONNX_FROM)
    vec = auto._encode(["lysozyme"])
    expected = SentenceTransformerEncoder("minilm", cache=False, backend="torch")._encode(["lysozyme"])
    assert np.array_equal(vec, expected) and not auto._use_onnx
    assert "runs with torch (the text model cannot be exported to ONNX (test))" in capsys.readouterr().err
    with pytest.raises(ModelError, match="cannot be exported"):
        SentenceTransformerEncoder("minilm", cache=False, backend="onnx")._encode(["lysozyme"])
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_bad_backend_and_threads():
    from mmgene.genes import default_gene_vectors

    with pytest.raises(ParameterError, match=r"unknown text encoder backend 'tensorrt'.*auto, torch, onnx, onnx-int8"):
        SentenceTransformerEncoder("minilm", backend="tensorrt")
    with pytest.raises(MMGeneError, match="unknown text encoder backend 'ONNX'"):
        default_gene_vectors(genes=["CD3E"], backend="ONNX")
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ParameterError, match="threads must be a whole number"):
            SentenceTransformerEncoder("minilm", threads=bad)


class HashEncoder(TextEncoder):
    """A model-free encoder (a text's vector from its hash) to watch the progress lines."""

    name, cache_key, dim = "hash encoder", "test:hash", 4

    def _encode(self, texts):
        return np.asarray([[1.0, len(t), t.count("1"), t.count("2")] for t in texts], dtype=np.float32)


def test_progress_lines_every_10_percent_when_not_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(settings, "quiet", False)
    enc = HashEncoder(cache=False)
    enc.encode([f"text {i}" for i in range(1234)])
    lines = capsys.readouterr().err.splitlines()  # pytest's stderr is not a terminal
    done = [124 * k for k in range(1, 10)] + [1234]
    assert lines == [f"mmgene: embedded {d:,} of 1,234 texts ({100 * d // 1234}%) with hash encoder" for d in done]
    assert [100 * d // 1234 for d in done] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    enc.encode([f"other {i}" for i in range(999)])  # a small job: no lines
    monkeypatch.setattr(settings, "quiet", True)
    enc.encode([f"third {i}" for i in range(2000)])  # quiet: no lines
    assert capsys.readouterr().err == ""
