"""Card rendering (strict placeholders, YAML metadata, no secrets) and ``mmgene publish --dry-run``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmgene.errors import MMGeneError, ParameterError
from mmgene.cards import code_blocks, render_model_card, render_template, size_category
from mmgene.net.credentials import redact, register_secret

ROOT = Path(__file__).resolve().parents[1]

MODEL_VALUES = {
    "model_name": "mmgene-pbmc-align", "description": "Aligns PBMC cells and text.",
    "text_model": "sentence-transformers/all-MiniLM-L6-v2", "omics_inputs": "obsm['X_genept_w']",
    "omics_tower": "a 2-layer MLP", "embedding_dim": 384, "loss": "MultipleNegativesRankingLoss",
    "training_data": "me/pbmc-pairs", "n_train_pairs": 1000, "n_eval_pairs": 100, "epochs": 2, "batch_size": 64,
    "learning_rate": 2e-4, "seed": 0, "settings": [{"config": "TrainingConfig", "name": "epochs", "value": "2"}], "metrics": [{"name": "zero-shot accuracy", "split": "test", "value": 0.71}],
    "load_path": "me/mmgene-pbmc-align", "example_caption": "a CD14+ monocyte", "mmgene_version": "0.1.0",
    "created": "2026-11-21",
}


def test_render_template_lists_every_unfilled_placeholder(tmp_path):
    template = tmp_path / "t.md"
    template.write_text("# {{ title }}\n{{ body }} {% for x in items %}{{ x }}{% endfor %}\n")
    assert render_template(template, {"title": "T", "body": "B", "items": [1, 2]}) == "# T\nB 12\n"
    with pytest.raises(ParameterError, match="unfilled placeholders: body, items"):
        render_template(template, {"title": "T"})
    with pytest.raises(ParameterError, match="body"):
        render_template(template, {"title": "T", "body": None, "items": []})
    # values are data: braces in them are shown as they are (a label, or an obs value like "{'qc': {'pass': 1}}")
    assert render_template(template, {"title": "{{ oops }}", "body": "}}", "items": []}) == "# {{ oops }}\n}} \n"
    leftover = tmp_path / "leftover.md"
    leftover.write_text("# {{ title }}\n{% raw %}{{ body }}{% endraw %}\n")
    with pytest.raises(ParameterError, match="template syntax"):  # the template's own text may leave none
        render_template(leftover, {"title": "T"})
    broken = tmp_path / "broken.md"
    broken.write_text("{{ title ")
    with pytest.raises(ParameterError, match="syntax error"):
        render_template(broken, {})


def test_secrets_never_reach_a_card(tmp_path):
    register_secret("hf_card_secret_42424242")
    template = tmp_path / "t.md"
    template.write_text("link: {{ link }}\n")
    with pytest.raises(ParameterError, match="token or password") as err:
        render_template(template, {"link": "https://x.org/file?token=hf_card_secret_42424242"})
    assert "hf_card_secret_42424242" not in str(err.value)
    assert redact("Bearer hf_card_secret_42424242 failed") == "Bearer *** failed"


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 700_000, 5_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M"]


def test_model_card_template_renders_with_metadata():
    card = render_model_card(MODEL_VALUES, base_model="sentence-transformers/all-MiniLM-L6-v2", datasets=["me/pbmc-pairs"])
    assert card.data.library_name == "sentence-transformers" and card.data.license == "apache-2.0"
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    text = str(card)
    assert "| TrainingConfig | `epochs` | 2 |" in text
    assert "| zero-shot accuracy | test | 0.71 |" in text and 'mmgene.align.load("me/mmgene-pbmc-align")' in text
    assert "{{" not in text and "{#" not in text
    with pytest.raises(ParameterError, match="unfilled placeholders: loss"):
        render_model_card({k: v for k, v in MODEL_VALUES.items() if k != "loss"})


def test_cli_dry_run_writes_everything_locally(pbmc68k, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    import mmgene.hub
    from mmgene.cli.app import app

    src = tmp_path / "pbmc.h5ad"
    pbmc68k[:200].copy().write_h5ad(src)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["publish", str(src), "--repo-id", "me/pbmc-small", "--layout", "pairs",
                                      "--label-key", "bulk_labels", "--dry-run", "--out", str(out), "--chunk-size", "80",
                                      "--top-k", "25", "--negatives", "2"])
    assert result.exit_code == 0, result.output
    assert "dry run me/pbmc-small (pairs; train: 480, validation: 60, test: 60; 3 chunk file(s))" in result.output
    assert sorted(p.name for p in (out / "chunks").iterdir()) == [c["name"] for c in json.loads((out / "chunks.json").read_text())["chunks"]]
    assert all(re.fullmatch(rf"chunk-0000{i}-[0-9a-f]{{16}}\.h5ad", p.name) for i, p in enumerate(sorted((out / "chunks").iterdir())))
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-4.0" and card.data.size_categories == ["n<1K"]
    assert card.data.configs[0]["data_files"][0] == {"split": "train", "path": "data/train-*.parquet"}
    assert "Sentences keep at most **25** genes" in card.text and "dry run" in card.text
    assert 'load_dataset("me/pbmc-small")' in code_blocks(card.text)[0]
    ds = datasets.load_dataset("parquet", data_files={"test": str(out / "data/test-00000-of-00001.parquet")})["test"]
    row = ds[0]
    assert row["share_link"].startswith("file://") and len(row["cell_sentence"].split()) == 25
    with pytest.raises(MMGeneError, match="file://"):
        mmgene.hub.fetch_anndata(row)  # a local file is read only when asked
    chunk = mmgene.hub.fetch_anndata(row, allow_file=True)
    assert "allow_file=True" in card.text
    np.testing.assert_array_equal(chunk[row["cell_id"]].raw.X.toarray(), pbmc68k[row["cell_id"]].raw.X.toarray())


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([str(Path(sys.executable).with_name("mmgene")), "publish", str(tmp_path / "missing.h5ad"),
                           "--repo-id", "me/x", "--dry-run"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("mmgene: error: file not found")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_backed_publish_matches_in_memory(pbmc68k, tmp_path):
    import mmgene.hub
    from mmgene.hub.chunks import read_chunk

    src = tmp_path / "pbmc.h5ad"
    pbmc68k[:150].copy().write_h5ad(src)
    kwargs = dict(layout="single", dry_run=True, chunk_size=100, top_k=15, split_by="louvain")
    mmgene.hub.publish(src, "me/mem", out=tmp_path / "mem", **{**kwargs, "chunk_size": 50})  # an earlier run: 3 chunks
    mem = mmgene.hub.publish(src, "me/mem", out=tmp_path / "mem", overwrite=True, **kwargs)
    assert sorted(p.name for p in (tmp_path / "mem" / "chunks").iterdir()) == [c["name"] for c in mem.chunks]
    assert [c["name"][:11] for c in mem.chunks] == ["chunk-00000", "chunk-00001"]
    disk = mmgene.hub.publish(src, "me/disk", out=tmp_path / "disk", backed=True, **kwargs)
    for a, b in zip(mem.chunks, disk.chunks):  # same cells; only the recorded provenance (backed=True) differs
        ca, cb = read_chunk(tmp_path / "mem" / "chunks" / a["name"]), read_chunk(tmp_path / "disk" / "chunks" / b["name"])
        np.testing.assert_array_equal(ca.X, cb.X)
        np.testing.assert_array_equal(ca.raw.X.toarray(), cb.raw.X.toarray())
        assert ca.obs.equals(cb.obs) and disk.chunks and len(disk.chunks) == 2
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("share_link", "chunk_sha256")} for r in rows]  # noqa: E731
    assert all(strip(mem.dataset[s].to_list()) == strip(disk.dataset[s].to_list()) for s in mem.dataset)


def test_publish_without_token_says_what_to_do(pbmc68k, monkeypatch, tmp_path):
    import mmgene.hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(ParameterError, match="no Hugging Face token") as err:
        mmgene.hub.publish(pbmc68k[:20].copy(), "me/x", share="hub")
    assert "hf auth login" in str(err.value)
    with pytest.raises(ParameterError, match="namespace/name"):
        mmgene.hub.publish(pbmc68k[:20].copy(), "no-namespace", dry_run=True, out=tmp_path / "o")
    for bad, match in (({"layout": "bogus"}, "unknown layout"), ({"share": "ftp"}, "unknown share backend"),
                       ({"chunk_format": "loom"}, "unknown chunk format"), ({"chunk_size": 0}, "chunk_size"),
                       ({"top_k": 0}, "top_k")):
        with pytest.raises(ParameterError, match=match):
            mmgene.hub.publish(pbmc68k[:20].copy(), "me/x", dry_run=True, out=tmp_path / "o", **bad)
    assert not (tmp_path / "o").exists()  # nothing is written before the arguments are checked


def test_card_says_how_recorded_embeddings_were_made(pbmc68k, tmp_path):
    import mmgene.hub
    from mmgene.provenance import record

    adata = pbmc68k[:40].copy()
    adata.obsm["X_geneformer"] = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    record(adata, "X_geneformer", method="Geneformer cell embedding (EmbExtractor semantics)",
           model="ctheodoris/Geneformer/gf-6L-30M-i2048", layer=-1, pooling="mean over genes")
    result = mmgene.hub.publish(adata, "me/emb", dry_run=True, out=tmp_path / "o", top_k=5, chunk_size=40,
                                splits={"train": 0.5, "test": 0.5})
    assert ("| `X_geneformer` | `emb_X_geneformer` column and `obsm` | 3 | Geneformer cell embedding (EmbExtractor "
            "semantics) | ctheodoris/Geneformer/gf-6L-30M-i2048 | -1 | mean over genes |") in result.card
    assert "| `X_pca` | `obsm` of the AnnData files | 50 | PCA (scanpy.pp.pca)" in result.card
    row = result.dataset["train"][0]
    np.testing.assert_array_equal(row["emb_X_geneformer"], adata.obsm["X_geneformer"][row["sample_idx"]])
    assert "emb_X_pca" not in row  # only embeddings made by mmgene become columns by default


def test_importing_mmgene_hub_stays_light():
    code = ("import sys, mmgene.hub, mmgene.cli.publish; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'datasets', 'huggingface_hub', 'torch', 'scanpy', 'anndata'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_a_built_wheel_carries_the_card_templates(tmp_path):
    """Cards come from ``mmgene/_cards`` (package data, their one home), so a wheel install has them."""
    import shutil
    import zipfile

    from mmgene.cards import CARDS_DIR

    assert CARDS_DIR.resolve() == (ROOT / "mmgene" / "_cards").resolve()
    assert not (ROOT / "cards").exists()  # no second copy
    src = tmp_path / "src"
    shutil.copytree(ROOT / "mmgene", src / "mmgene", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("mmgene-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for card in ("dataset_card.md", "model_card.md"):
            assert zf.read(f"mmgene/_cards/{card}") == (CARDS_DIR / card).read_bytes()
