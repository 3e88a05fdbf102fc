"""Audit of publishing and share links, against the servers on 127.0.0.1 the share tests use (no internet).

Each test pins one finding:

- ``publish(token=...)`` uploads the chunk files of a Hub share with that token too, not only the card and data;
- a Nextcloud share URL below the account's root gets public links to the files it uploaded, not to
  files of the same path from the account's root;
- a file whose upload went through but whose checksum sidecar or public link failed is withdrawn with
  the others, so a failed share leaves nothing new behind;
- obs columns named like mmgene's own columns (``emb_*``, ``obs_*``, ``negative_*``) are neither replaced by
  an embedding nor described in the card as something they are not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_hub_share import PASSWORD, _file, dav  # noqa: F401 - the share tests' WebDAV/Nextcloud server and files

from mmgene.errors import RemoteError


def test_publish_uploads_hub_chunk_files_with_the_token_it_was_given(pbmc68k, tmp_path, monkeypatch):
    from servers.hub_server import hub_for_this_process

    import mmgene.hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as hub:
        result = mmgene.hub.publish(pbmc68k[:40].copy(), f"{hub.user}/cells", token=hub.token, top_k=10, chunk_size=25)
        assert [s.uploaded for s in result.shared] == [True, True]
        prefix = f"{hub.url}/datasets/{hub.user}/cells/resolve/main/chunks/"
        assert all(s.link.startswith(prefix) for s in result.shared)


def test_nextcloud_links_below_the_account_root_point_at_the_uploaded_file(dav, tmp_path):
    from mmgene.hub.download import fetch
    from mmgene.hub.share import NextcloudShare

    (dav.app.files / "projects").mkdir()
    (dav.app.files / "pub").mkdir()
    (dav.app.files / "pub" / "c.h5ad").write_bytes(b"another file of the account, at the same path from its root")
    f = _file(tmp_path, "c.h5ad", 300, 4)
    (shared,) = NextcloudShare(dav.dav_url + "/projects", folder="pub", backoff=0).share([f])
    assert list(dav.app.shares.values()) == ["projects/pub/c.h5ad"]
    got = fetch(shared.link, f.sha256, cache_dir=tmp_path / "cache", retries=0)
    assert got.read_bytes() == Path(f.path).read_bytes()


def _failing(real, method: str, suffix: str, status: str):
    """A WSGI app that answers ``method`` requests for paths ending in ``suffix`` with ``status``."""

    def app(environ, start_response):
        if environ["REQUEST_METHOD"] != method or not environ["PATH_INFO"].endswith(suffix):
            return real(environ, start_response)
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response(status, [("Content-Length", "0")])
        return [b""]

    return app


def test_a_file_whose_sidecar_fails_is_withdrawn_with_the_others(dav, tmp_path):
    from mmgene.hub.share import WebDavShare

    dav.app.dav = _failing(dav.app.dav, "PUT", "/b.h5ad.sha256", "507 Insufficient Storage")
    files = [_file(tmp_path, "a.h5ad", 300, 1), _file(tmp_path, "b.h5ad", 400, 2)]
    with pytest.raises(RemoteError, match="HTTP 507") as err:
        WebDavShare(dav.dav_url, folder="pub", retries=0).share(files)
    assert PASSWORD not in str(err.value)
    assert sorted(p.name for p in (dav.app.files / "pub").iterdir()) == []


def test_a_file_whose_public_link_fails_is_withdrawn(dav, tmp_path):
    from mmgene.hub.share import NextcloudShare

    dav.app.ocs = _failing(dav.app.ocs, "POST", "/shares", "403 Forbidden")
    with pytest.raises(RemoteError, match="HTTP 403"):
        NextcloudShare(dav.dav_url, folder="pub", retries=0).share([_file(tmp_path, "c.h5ad", 300, 3)])
    assert sorted(p.name for p in (dav.app.files / "pub").iterdir()) == []
    assert dav.app.shares == {}


def test_obs_columns_named_like_mmgene_columns_keep_their_values_and_meaning(pbmc68k, tmp_path):
    import mmgene.hub

    adata = pbmc68k[:40].copy()
    adata.obs["emb_X_pca"] = "mine"
    adata.obs["obs_batch"] = "b1"
    adata.obs["negative_1"] = "n1"
    adata.obs["sample_idx"] = 7
    result = mmgene.hub.publish(adata, "me/cells", dry_run=True, out=tmp_path / "out", top_k=10, obsm_keys=["X_pca"],
                                obs_keys=["emb_X_pca", "obs_batch", "negative_1", "sample_idx"])
    row = result.dataset["train"][0]
    kept = (row["obs_emb_X_pca"], row["obs_obs_batch"], row["obs_negative_1"], row["obs_sample_idx"])
    assert kept == ("mine", "b1", "n1", 7)
    assert len(row["emb_X_pca"]) == 50
    assert row["sample_idx"] == list(adata.obs_names).index(row["cell_id"])
    lines = set(result.card.splitlines())
    for source in ("emb_X_pca", "obs_batch", "negative_1", "sample_idx"):
        assert f"| `obs_{source}` | cell metadata from `obs['{source}']` |" in lines
    assert "| `emb_X_pca` | initial embedding `obsm['X_pca']` (float32) |" in lines
