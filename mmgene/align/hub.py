"""Publish an aligned model (one model or an ensemble) to a Hugging Face model repository."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def push_model(model: Any, repo_id: str, *, token: str | None = None, private: bool = True, commit_message: str = "Upload mmgene aligned model") -> str:
    """Upload ``model``'s folder with a model card whose code loads it from ``repo_id`` to a model
    repository, created private unless ``private=False`` (as datasets are published); returns its URL.
    Where the model lives (``meta['path']``) is unchanged by its upload."""
    from mmgene.align.card import render_model_card
    from mmgene.atomic import MARKER
    from mmgene.hub.share import hub_api

    api = hub_api(token)  # refuses an HF_ENDPOINT the token would reach in clear text
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    saved_at = model.meta.get("path")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        model.save(folder)
        if saved_at is None:
            model.meta.pop("path", None)
        else:
            model.meta["path"] = saved_at
        (folder / "README.md").write_text(render_model_card(model, repo_id, hub=True), encoding="utf-8")
        api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=commit_message, ignore_patterns=[MARKER, f"*/{MARKER}"]
        )
    return str(url)
