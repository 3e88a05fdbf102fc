"""A saved aligned model behaves like a sentence-transformers model: its README.md is mmgene's model card
(base_model, lines that load it, and those lines work), push_to_hub is private by default, and loading
leaves torch's thread count alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from mmgene.align.config import AlignConfig, ModelConfig, TrainingConfig
from mmgene.align.training_log import records
from mmgene.cards import code_blocks

CAPTION = "a T cell"
LOG = [{"run": 0, "step": 1, "epoch": 0.5, "loss": 2.5}, {"run": 0, "step": 2, "epoch": 1.0, "loss": None}]


@pytest.fixture(scope="module")
def model():
    """A small untrained two-tower model over six genes (the card does not depend on training)."""
    from mmgene.align.model import AlignedModel, build_model

    config = ModelConfig(gene_dim=16, hidden=32, dim=16, gene_bridge=False)
    st = build_model(["CD3E", "CD79A", "LYZ", "MS4A1", "NKG7", "GNLY"], config, seed=0)
    st.eval()
    records(st).extend(LOG)  # as if a Trainer had logged two steps
    meta = {"classes": ["T cell", "B cell"], "label_cols": ["cell_type"], "train_cells": 40, "test_cells": 10}
    return AlignedModel(st, ["genes"], meta, AlignConfig(model=config, training=TrainingConfig(max_steps=1)))


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("card") / "pbmc-model"
    model.save(folder)
    return folder


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_readme_is_the_mmgene_card_with_base_model(saved):
    text = (saved / "README.md").read_text()
    meta = _front_matter(text)
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["library_name"] == "sentence-transformers" and "mmgene" in meta["tags"]
    assert "# pbmc-model" in text and "Supported Modality" not in text and "{{" not in text and "## Training corpus" not in text
    mmgene_block, st_block = code_blocks(text)
    assert f'model = mmgene.align.load("{saved}")' in mmgene_block
    assert f'model = SentenceTransformer("{saved}", trust_remote_code=True)' in st_block
    # sentence-transformers' own card is not written anywhere at the top level
    assert sorted(p.name for p in saved.glob("*.md")) == ["README.md"]


def test_the_readme_lines_load_the_model(model, saved):
    """Run the card's two code blocks exactly as written: both give the model's text vectors."""
    expected = model.encode_text([CAPTION])
    mmgene_block, st_block = code_blocks((saved / "README.md").read_text())
    for block in (mmgene_block, st_block):
        scope: dict = {}
        exec(compile(block, str(saved / "README.md"), "exec"), scope)  # noqa: S102 - the card's own code
        np.testing.assert_allclose(np.asarray(scope["text"]), expected, rtol=1e-5, atol=1e-6)


def test_base_model_follows_the_text_model(model):
    from mmgene.align.card import base_model, render_model_card
    from mmgene.align.model import AlignedModel

    def with_text_model(spec):
        config = AlignConfig(model=ModelConfig(text_model=spec))
        return AlignedModel(model.st, ["genes"], model.meta, config)

    assert base_model(with_text_model("hf://owner/text-model@v1")) == "owner/text-model"
    assert base_model(with_text_model("/some/local/folder")) is None
    local = render_model_card(with_text_model("/some/local/folder"), "me/model", hub=True)
    assert "base_model" not in _front_matter(local) and "a local text model folder" in local
    legacy = AlignedModel(model.st, ["genes"], {"params": {"text_model": "hf://a/b"}}, None)
    assert base_model(legacy) == "a/b"


def test_loading_leaves_torch_threads_alone_and_reads_the_training_log(saved):
    from mmgene.align import load

    assert [json.loads(line) for line in (saved / "training_log.jsonl").read_text().splitlines()] == LOG
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        loaded = load(saved)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert records(loaded.st) == LOG  # saved again, the model keeps its log


def test_push_to_hub_is_private_by_default(model, tmp_path, monkeypatch):
    """Against the loopback Hub: private unless asked; the card's lines load the model from the repo (with
    the token, as a private repo needs); where the model lives is unchanged by the upload."""
    from huggingface_hub import HfApi
    from servers.hub_server import hub_for_this_process

    path_before = model.meta.get("path")
    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as server:
        repo = f"{server.user}/pbmc-model"
        api = HfApi(endpoint=server.url, token=server.token)
        model.push_to_hub(repo, token=server.token)
        assert api.repo_info(repo).private is True
        card = open(api.hf_hub_download(repo, "README.md")).read()
        mmgene_block, st_block = code_blocks(card)
        assert f'mmgene.align.load("hf://{repo}")' in mmgene_block
        assert f'SentenceTransformer("{repo}", trust_remote_code=True)' in st_block
        assert _front_matter(card)["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
        assert server.token not in card
        monkeypatch.setenv("HF_TOKEN", server.token)
        for block in (mmgene_block, st_block):  # the card's lines, as written, load the model from the Hub
            scope: dict = {}
            exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - the card's own code
            np.testing.assert_allclose(np.asarray(scope["text"]), model.encode_text([CAPTION]), rtol=1e-5, atol=1e-6)
    assert model.meta.get("path") == path_before  # the temporary upload folder is not where the model lives


def test_push_to_hub_public_when_asked(model, monkeypatch):
    """``private=False`` reaches the Hub's create_repo (stopped there: nothing is uploaded)."""
    from huggingface_hub import HfApi

    asked = []

    def create_repo(self, repo_id, **kwargs):
        asked.append((repo_id, kwargs["private"], kwargs["repo_type"]))
        raise RuntimeError("stop before uploading")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    for private in (False, True):
        with pytest.raises(RuntimeError, match="stop before uploading"):
            model.push_to_hub("me/model", token="hf_not_a_real_token_000", private=private)
    assert asked == [("me/model", False, "model"), ("me/model", True, "model")]


def test_a_corpus_models_card_names_each_dataset_with_its_label_column():
    from mmgene.align.card import _training_data

    meta = {"label_cols": {"pbmc3k": "cell_type", "kang": "cell_type_name"}, "train_cells": 120}
    assert _training_data(meta) == "2 datasets, labels from pbmc3k (cell_type); kang (cell_type_name); 120 training cells"
    assert _training_data({"label_cols": ["louvain"], "train_cells": 5}) == "louvain labels; 5 training cells"
