"""Geneformer dictionaries: the real V1 files, the restricted unpickler, folder layouts and bad sources."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil

import numpy as np
import pytest

from mmgene.cells import load_dictionaries
from mmgene.cells.dictionaries import UnsafePickleError, safe_load_pickle
from mmgene.errors import InputFileError, MMGeneError, ParameterError

V1_SHA = {
    "token_dictionary.pkl": "ab9dc40973fa5224d77b793e2fd114cacf3d08423ed9c4c49caf0ba9c7f218f1",
    "gene_median_dictionary.pkl": "b3b589bb5ec75040d05fc44dd6bf0184cf87f3c362cf158d196a6ed3b7fe5f39",
    "gene_name_id_dict.pkl": "55e67962e79c0039a6c32d43c5c99f38e51964bbcfa32f736150ee1e285c438c",
}


def test_real_v1(geneformer_v1_dir):
    d = load_dictionaries(geneformer_v1_dir, "V1")
    assert d.version == "V1" and d.vocab_size == 25426 and len(d.medians) == 25424 and len(d.name_to_id) == 40248
    assert (d.pad_id, d.mask_id, d.cls_id, d.eos_id) == (0, 1, None, None)
    assert d.max_length == 2048 and d.max_genes == 2048 and d.ensembl_mapping is None
    assert d.token_ids["ENSG00000000003"] == 2 and type(d.token_ids["ENSG00000000003"]) is int
    assert d.medians["ENSG00000000003"] == pytest.approx(2.001186019549122) and type(d.medians["ENSG00000000003"]) is float
    assert d.name_to_id["MT-TF"] == "ENSG00000210049"
    assert d.sha256 == V1_SHA


def test_repository_layout_and_new_names(geneformer_v1_dir, tmp_path):
    sub = tmp_path / "Geneformer" / "geneformer" / "gene_dictionaries_30m"
    sub.mkdir(parents=True)
    for old, new in [("token_dictionary", "token_dictionary_gc30M"), ("gene_median_dictionary", "gene_median_dictionary_gc30M")]:
        shutil.copy(geneformer_v1_dir / f"{old}.pkl", sub / f"{new}.pkl")
    d = load_dictionaries(tmp_path / "Geneformer")
    assert d.vocab_size == 25426 and d.name_to_id == {}


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/mmgene-pwned",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = "/tmp/mmgene-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    bad = tmp_path / "token_dictionary.pkl"
    bad.write_bytes(pickle.dumps({"<pad>": 0, "ENSG00000000003": _Exploit()}))
    with pytest.raises(UnsafePickleError, match="system") as info:
        safe_load_pickle(bad)
    assert isinstance(info.value, MMGeneError)
    assert not os.path.exists(marker)
    shutil.copy(bad, tmp_path / "gene_median_dictionary.pkl")
    with pytest.raises(UnsafePickleError):
        load_dictionaries(tmp_path)
    assert not os.path.exists(marker)
    # object-dtype numpy scalars and other globals are refused too
    obj = tmp_path / "obj.pkl"
    obj.write_bytes(pickle.dumps({"a": np.array([1], dtype=object)}))
    with pytest.raises(UnsafePickleError):
        safe_load_pickle(obj)


def test_plain_data_and_numpy_scalars_load(tmp_path):
    path = tmp_path / "ok.pkl"
    for protocol in (2, 4, 5):
        path.write_bytes(pickle.dumps({"a": np.int16(3), "b": np.float64(2.5), "c": [1, "x", None, True]}, protocol=protocol))
        out = safe_load_pickle(path)
        assert out == {"a": 3, "b": 2.5, "c": [1, "x", None, True]} and out["a"].dtype == np.int16


def test_bad_sources(geneformer_v1_dir, tmp_path):
    with pytest.raises(InputFileError, match="token dictionary"):
        load_dictionaries(tmp_path)
    with pytest.raises(InputFileError):
        load_dictionaries("not a folder or repo!")
    with pytest.raises(InputFileError, match="no dictionary folder at 'ctheodoris/Geneformr'.*hf://"):
        load_dictionaries("ctheodoris/Geneformr")  # a typo is never a Hub lookup
    with pytest.raises(ParameterError, match="V1 dictionaries"):
        load_dictionaries(geneformer_v1_dir, "V2")
    with pytest.raises(ParameterError):
        load_dictionaries(geneformer_v1_dir, "V3")
    (tmp_path / "token_dictionary.pkl").write_bytes(b"not a pickle")
    shutil.copy(geneformer_v1_dir / "gene_median_dictionary.pkl", tmp_path)
    with pytest.raises(InputFileError, match="not a valid"):
        load_dictionaries(tmp_path)
    (tmp_path / "token_dictionary.pkl").write_bytes(pickle.dumps({"<pad>": 0, "ENSG1": "one"}))
    with pytest.raises(InputFileError, match="not an integer"):
        load_dictionaries(tmp_path)


def test_sha_is_of_file_bytes(geneformer_v1_dir):
    raw = (geneformer_v1_dir / "token_dictionary.pkl").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == V1_SHA["token_dictionary.pkl"]


def test_hub_download_cached_and_errors(geneformer_v1_dir, tmp_path, monkeypatch):
    """Against the loopback Hub: the V1 files under their hub paths are downloaded, cached, and reused
    offline; a missing optional file is skipped; offline without a cache gives a RemoteError."""
    from huggingface_hub import HfApi, constants
    from servers.hub_server import hub_for_this_process

    from mmgene.errors import RemoteError

    layout = tmp_path / "repo" / "geneformer" / "gene_dictionaries_30m"
    layout.mkdir(parents=True)
    for old, new in [("token_dictionary", "token_dictionary_gc30M"), ("gene_median_dictionary", "gene_median_dictionary_gc30M"), ("gene_name_id_dict", "gene_name_id_dict_gc30M")]:
        shutil.copy(geneformer_v1_dir / f"{old}.pkl", layout / f"{new}.pkl")
    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as server:
        api = HfApi(endpoint=server.url, token=server.token)
        repo = api.create_repo("Geneformer").repo_id
        api.upload_folder(repo_id=repo, folder_path=str(tmp_path / "repo"))
        with pytest.raises(InputFileError, match="no dictionary folder"):
            load_dictionaries(repo, "V1")  # a bare id is a local path
        assert not any("/resolve/" in raw for _, raw, _ in server.app.log)
        d = load_dictionaries(f"hf://{repo}", "V1")
        assert d.vocab_size == 25426 and len(d.name_to_id) == 40248 and d.ensembl_mapping is None
        assert d.source == f"hub:{repo}@main"
        assert d.sha256["token_dictionary_gc30M.pkl"] == V1_SHA["token_dictionary.pkl"]
        fetched = {raw.split("/resolve/", 1)[1].split("/", 1)[1] for method, raw, _ in server.app.log if "/resolve/" in raw and method == "GET"}
        assert fetched == {f"geneformer/gene_dictionaries_30m/{n}_gc30M.pkl" for n in ("token_dictionary", "gene_median_dictionary", "gene_name_id_dict")}
        with pytest.raises(RemoteError, match="not in the hub repository"):
            load_dictionaries(f"hf://{repo}", "V2")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # server gone: the cache is enough
    assert load_dictionaries(f"hf://{repo}", "V1").medians == d.medians
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(RemoteError, match="not cached"):
        load_dictionaries(f"hf://{repo}", "V1")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"ENSG00000000005": 2}, "'ENSG00000000003' and 'ENSG00000000005' share id 2"),  # two genes, one token
        ({"ENSG00000000005": 0}, "'<pad>' and 'ENSG00000000005' share id 0"),  # a gene on the pad token
        ({"ENSG00000000005": -5}, r"outside 0\.\.25425 \('ENSG00000000005=-5'\)"),  # silently dropped before
        ({"ENSG00000000005": 2**32 + 3}, "outside 0..25425"),  # wrapped to another token in int32 before
    ],
)
def test_token_ids_must_be_distinct_and_in_range(geneformer_v1_dir, tmp_path, change, match):
    tokens = safe_load_pickle(geneformer_v1_dir / "token_dictionary.pkl")
    assert tokens["ENSG00000000003"] == 2 and "ENSG00000000005" in tokens
    tokens.update(change)
    (tmp_path / "token_dictionary.pkl").write_bytes(pickle.dumps(tokens))
    shutil.copy(geneformer_v1_dir / "gene_median_dictionary.pkl", tmp_path)
    with pytest.raises(InputFileError, match=match) as err:
        load_dictionaries(tmp_path)
    assert "token_dictionary.pkl" in str(err.value)
