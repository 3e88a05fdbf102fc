"""End to end: publish pbmc68k through every share backend to a Hub stand-in, then read it back.

huggingface_hub and datasets read ``HF_ENDPOINT``/``HF_HUB_DISABLE_XET``/``HF_HUB_OFFLINE`` when they
are first imported, and tests/conftest.py sets ``HF_HUB_OFFLINE=1`` for the whole test process. So
the servers run here (threads on 127.0.0.1) while everything that talks to the Hub runs in a fresh
subprocess whose environment points at them: exactly how a user's process would see a real Hub.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import requests

from mmgene.cards import code_blocks
from servers.http_folder_server import FolderServer
from servers.hub_server import HubServer
from servers.webdav_server import WebDavServer

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_e2e_secret_token_abcdef0123456789"
PASSWORD = "nc-e2e-secret-pw-9876"
USER = "mmgene-tester"

DRIVER = textwrap.dedent(
    r'''
    import contextlib, io, json, logging, os, sys
    from pathlib import Path

    work, cfg = Path(sys.argv[1]), json.loads(sys.argv[2])
    buf = io.StringIO()
    logging.basicConfig(stream=buf, level=logging.DEBUG, force=True)
    results = {"cases": {}, "errors": []}
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        import datasets
        import huggingface_hub.utils.logging as hf_logging
        import mmgene.data
        import mmgene.hub
        from mmgene.errors import MMGeneError

        hf_logging.set_verbosity_debug()
        adata = mmgene.data.pbmc68k()
        for case in cfg["cases"]:
            repo = f"{cfg['user']}/{case['name']}"
            result = mmgene.hub.publish(
                adata, repo, layout=case["layout"], share=case["share"], share_options=case["options"],
                label_key="bulk_labels", caption_template="a {label} cell", split_by="louvain",
                chunk_size=case.get("chunk_size", 300), top_k=40, obsm_keys=["X_pca"], chunk_format=case.get("format", "h5ad"),
                out=work / case["name"],
            )
            ds = datasets.load_dataset(repo)
            row = ds["test"][3]
            chunk_path = mmgene.hub.fetch(row["share_link"], row["chunk_sha256"])
            chunk = mmgene.hub.fetch_anndata(row)
            results["cases"][case["name"]] = {
                "splits": {s: len(d) for s, d in ds.items()},
                "columns": ds["train"].column_names,
                "sample_idx": {s: list(d["sample_idx"]) for s, d in ds.items()},
                "cells": {s: list(d["cell_id"]) for s, d in ds.items()},
                "same_as_local": all(ds[s].to_list() == result.dataset[s].to_list() for s in ds),
                "row": {k: v for k, v in row.items() if not k.startswith("emb_")},
                "row_emb": row.get("emb_X_pca"),
                "chunk_path": str(chunk_path),
                "chunk_has_cell": row["cell_id"] in chunk.obs_names,
                "links": [c["link"] for c in result.chunks],
                "shared_uploaded": [s.uploaded for s in result.shared],
                "commit_url": result.commit_url,
            }
        # publishing the same data again uploads no chunk file
        again = mmgene.hub.publish(adata, f"{cfg['user']}/{cfg['cases'][0]['name']}", layout="pairs",
                                   share=cfg["cases"][0]["share"], share_options=cfg["cases"][0]["options"],
                                   label_key="bulk_labels", caption_template="a {label} cell", split_by="louvain",
                                   chunk_size=300, top_k=40, obsm_keys=["X_pca"])
        results["republish_uploaded"] = [s.uploaded for s in again.shared]
        # the CLI, with the Nextcloud backend and a tiny chunked-upload limit
        from typer.testing import CliRunner
        from mmgene.cli.app import app

        h5ad = work / "slice.h5ad"
        adata[:120].copy().write_h5ad(h5ad)
        cli = CliRunner().invoke(app, [
            "publish", str(h5ad), "--repo-id", f"{cfg['user']}/cli-multiplets", "--layout", "multiplets",
            "--share", "nextcloud", "--share-url", cfg["dav_url"], "--share-folder", "cli", "--chunk-limit", "100000",
            "--label-key", "bulk_labels", "--chunk-size", "50", "--top-k", "20", "--out", str(work / "cli"),
        ])
        results["cli"] = {"exit_code": cli.exit_code, "output": cli.output, "exception": repr(cli.exception)}
        # errors carry no secret: a wrong Hub token, then a wrong share password
        os.environ["HF_TOKEN"] = cfg["wrong_token"]
        try:
            mmgene.hub.publish(h5ad, f"{cfg['user']}/denied", share="hub", chunk_size=200, top_k=10)
        except MMGeneError as exc:
            results["errors"].append(str(exc))
        os.environ["HF_TOKEN"] = cfg["token"]
        os.environ["MMGENE_SHARE_PASSWORD"] = cfg["wrong_password"]
        try:
            mmgene.hub.publish(h5ad, f"{cfg['user']}/denied2", share="nextcloud", chunk_size=200, top_k=10,
                               share_options={"url": cfg["dav_url"], "retries": 0})
        except MMGeneError as exc:
            results["errors"].append(str(exc))
    (work / "results.json").write_text(json.dumps(results))
    (work / "log.txt").write_text(buf.getvalue())
    '''
)


def _env(hub: HubServer, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "MMGENE_"))}
    env.update(
        HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0", HF_TOKEN=TOKEN,
        HF_HOME=str(tmp / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1", MMGENE_CACHE=str(tmp / "mmgene-cache"),
        MMGENE_SHARE_USER="alice", MMGENE_SHARE_PASSWORD=PASSWORD, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(ROOT), HF_DATASETS_DISABLE_PROGRESS_BARS="1",
    )
    return env


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub-e2e")
    with HubServer(tmp / "hub", token=TOKEN, user=USER) as hub, WebDavServer(tmp / "dav", "alice", PASSWORD) as dav, \
            FolderServer(tmp / "www") as www:
        cases = [
            {"name": "pbmc-hub", "layout": "pairs", "share": "hub", "options": {}},
            {"name": "pbmc-nextcloud", "layout": "single", "share": "nextcloud",
             "options": {"url": dav.dav_url, "folder": "datasets/pbmc", "chunk_limit": 1_000_000, "chunk_bytes": 400_000}},
            {"name": "pbmc-webdav", "layout": "multiplets", "share": "webdav",
             "options": {"url": dav.dav_url, "folder": "plain", "public_url": dav.url + "/public"}},
            {"name": "pbmc-http", "layout": "single", "share": "http", "format": "zarr", "chunk_size": 700,
             "options": {"url": www.url + "/cells", "root": str(www.app.root / "cells")}},
        ]
        cfg = {"cases": cases, "user": USER, "dav_url": dav.dav_url, "token": TOKEN, "wrong_token": "hf_wrong_token_777777",
               "wrong_password": "wrong-pw-5555"}
        env = _env(hub, tmp)
        proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp), json.dumps(cfg)], env=env, capture_output=True,
                              text=True, timeout=300, cwd=tmp)
        log = (tmp / "log.txt").read_text() if (tmp / "log.txt").exists() else ""
        assert proc.returncode == 0, proc.stderr[-4000:] + log[-4000:]
        results = json.loads((tmp / "results.json").read_text())
        yield {"tmp": tmp, "hub": hub, "dav": dav, "www": www, "env": env, "results": results, "log": log + proc.stdout + proc.stderr,
               "cases": {c["name"]: c for c in cases}}


def test_every_backend_publishes_and_load_dataset_reads_it_back(e2e, pbmc68k):
    cases = e2e["results"]["cases"]
    assert set(cases) == {"pbmc-hub", "pbmc-nextcloud", "pbmc-webdav", "pbmc-http"}
    for name, res in cases.items():
        assert res["same_as_local"], name
        idx = [i for s in res["sample_idx"].values() for i in s]
        assert len(idx) == len(set(idx)), f"{name}: sample_idx is not unique across splits"
        cells = {s: set(c) for s, c in res["cells"].items()}
        assert not (cells["train"] & cells["test"]) and not (cells["train"] & cells["validation"])
        assert set().union(*cells.values()) == set(pbmc68k.obs_names)
        assert res["chunk_has_cell"]
        assert len(res["links"]) == (1 if name == "pbmc-http" else 3) and all(res["shared_uploaded"])
    # layouts as requested
    assert cases["pbmc-hub"]["columns"][:7] == ["sample_idx", "cell_idx", "chunk", "cell_id", "cell_sentence", "caption", "label"]
    assert sum(cases["pbmc-hub"]["splits"].values()) == 2 * 700
    assert sorted(i for s in cases["pbmc-hub"]["sample_idx"].values() for i in s) == list(range(1400))
    assert "negative_cell_1" in cases["pbmc-webdav"]["columns"] and "anchor" in cases["pbmc-webdav"]["columns"]
    assert sum(cases["pbmc-nextcloud"]["splits"].values()) == 700
    # the louvain groups never straddle splits
    louvain = pbmc68k.obs["louvain"].astype(str)
    per_split = {s: set(louvain[list(c)]) for s, c in cases["pbmc-nextcloud"]["cells"].items()}
    assert not (per_split["train"] & per_split["test"]) and not (per_split["validation"] & per_split["test"])
    # links of each backend have the documented shape
    hub_url = e2e["hub"].url
    assert re.fullmatch(rf"{hub_url}/datasets/{USER}/pbmc-hub/resolve/main/chunks/chunk-00000-[0-9a-f]{{16}}\.h5ad", cases["pbmc-hub"]["links"][0])
    assert all(link.startswith(e2e["dav"].url + "/index.php/s/") and link.endswith("/download") for link in cases["pbmc-nextcloud"]["links"])
    assert re.fullmatch(re.escape(e2e["dav"].url) + r"/public/plain/chunk-00001-[0-9a-f]{16}\.h5ad", cases["pbmc-webdav"]["links"][1])
    assert len(cases["pbmc-http"]["links"]) == 1
    assert re.fullmatch(re.escape(e2e["www"].url) + r"/cells/chunk-00000-[0-9a-f]{16}\.zarr\.zip", cases["pbmc-http"]["links"][0])
    # nextcloud: files of 1 MB or more went through chunked upload
    assert any(m == "MOVE" and p.endswith("/.file") for m, p in e2e["dav"].app.log)


def test_downloaded_row_anndata_matches_the_original(e2e, pbmc68k):
    from mmgene.hub.chunks import read_chunk

    for name, res in e2e["results"]["cases"].items():
        row = res["row"]
        chunk = read_chunk(res["chunk_path"])
        start = (700 if name == "pbmc-http" else 300) * row["chunk"]
        original = pbmc68k[start:start + chunk.n_obs]
        assert list(chunk.obs_names) == list(original.obs_names), name
        assert list(chunk.var_names) == list(pbmc68k.var_names), name
        np.testing.assert_array_equal(np.asarray(chunk.X), np.asarray(original.X))
        np.testing.assert_array_equal(chunk.raw.X.toarray(), original.raw.X.toarray())
        np.testing.assert_array_equal(chunk.obsm["X_pca"], original.obsm["X_pca"])
        cell = chunk[row["cell_id"]]
        assert cell.obs["bulk_labels"].iloc[0] == pbmc68k.obs.loc[row["cell_id"], "bulk_labels"]
        assert row["chunk_sha256"] in res["chunk_path"]
        if res["row_emb"] is not None:
            np.testing.assert_allclose(res["row_emb"], pbmc68k.obsm["X_pca"][pbmc68k.obs_names.get_loc(row["cell_id"])], rtol=1e-6)


def test_repositories_are_private_and_republishing_skips_uploaded_chunks(e2e):
    hub = e2e["hub"]
    for name in ("pbmc-hub", "pbmc-nextcloud", "pbmc-webdav", "pbmc-http", "cli-multiplets"):
        assert hub.app.repos[("dataset", f"{USER}/{name}")].private, name
    anonymous = requests.get(f"{hub.url}/api/datasets/{USER}/pbmc-hub", timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["X-Error-Code"] == "RepoNotFound"
    assert e2e["results"]["republish_uploaded"] == [False, False, False]
    files = hub.app.repos[("dataset", f"{USER}/pbmc-hub")].resolve("main").files
    assert {"README.md", "chunks.json", "data/train-00000-of-00001.parquet"} <= set(files)
    assert any(re.fullmatch(r"chunks/chunk-00000-[0-9a-f]{16}\.h5ad", f) for f in files)


def test_cli_publish(e2e):
    cli = e2e["results"]["cli"]
    assert cli["exit_code"] == 0, cli
    assert f"published {USER}/cli-multiplets (multiplets;" in cli["output"] and "3 chunk file(s)" in cli["output"]
    assert "example share link: " + e2e["dav"].url + "/index.php/s/" in cli["output"]
    assert len(list((e2e["dav"].app.files / "cli").glob("chunk-00000-*.h5ad"))) == 1


def test_card_usage_code_runs_as_written(e2e):
    hub = e2e["hub"]
    commit = hub.app.repos[("dataset", f"{USER}/pbmc-hub")].resolve("main")
    card = hub.app.blob_path(commit.files["README.md"].sha256).read_text()
    assert card.startswith("---\n") and "license: cc-by-4.0" in card and "size_categories:" in card
    assert "task_categories:" in card and "configs:" in card and "sentence-similarity" in card
    for word in ("CELLxGENE", "GEO", "CellWhisperer", "scVI", "Geneformer", "anndata", "scanpy"):
        assert word in card
    assert "cell sentence" in card.lower() and "Example share link" in card and "(scanpy.pp.pca)" in card
    (code,) = code_blocks(card)
    assert f'load_dataset("{USER}/pbmc-hub")' in code
    run = subprocess.run([sys.executable, "-c", code], env=e2e["env"], capture_output=True, text=True, timeout=120,
                         cwd=e2e["tmp"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "(1, 765)"


def test_no_secret_in_cards_links_logs_or_errors(e2e):
    errors = e2e["results"]["errors"]
    assert len(errors) == 2
    assert "Hub" in errors[0] and "HF_TOKEN" in errors[0]
    assert "401" in errors[1] and "MMGENE_SHARE_PASSWORD" in errors[1]
    texts = [e2e["log"], json.dumps(e2e["results"])]
    for out in e2e["tmp"].iterdir():
        if out.is_dir() and (out / "README.md").exists():
            texts += [(out / "README.md").read_text(), (out / "chunks.json").read_text()]
    hub = e2e["hub"]
    for (_, repo_id), repo in hub.app.repos.items():
        for path, entry in repo.resolve("main").files.items():
            if path.endswith((".md", ".json")):
                texts.append(hub.app.blob_path(entry.sha256).read_text())
    assert len(texts) > 8
    assert "DEBUG:" in e2e["log"] and re.search(r"mmgene: chunk-00000-[0-9a-f]{16}\.h5ad uploaded", e2e["log"])  # debug logs were captured
    for secret in (TOKEN, PASSWORD, "hf_wrong_token_777777", "wrong-pw-5555"):
        for text in texts:
            assert secret not in text
