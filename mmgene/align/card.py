"""Fill ``mmgene/_cards/model_card.md`` with an aligned model's real values (rendered by :mod:`mmgene.cards`)."""

from __future__ import annotations

import datetime as _dt
from typing import Any


def card_values(model: Any, repo_id: str) -> dict[str, Any]:
    """The template values of ``mmgene/_cards/model_card.md`` for ``model`` (an :class:`~mmgene.align.AlignedModel`)."""
    from mmgene import __version__

    meta = model.meta
    params = _settings(model)
    classes = meta.get("classes", [])
    metrics = [
        {"name": name.removeprefix("zero_shot_").replace("_", " "), "value": f"{value:.3f}", "split": "held-out cells"}
        for name, value in (meta.get("eval_history") or [{}])[-1].items()
        if name != "steps" and isinstance(value, float)
    ]
    for entry in meta.get("reported_metrics", []):
        metrics.append(entry)
    if not metrics:
        metrics = [{"name": "not evaluated", "value": "–", "split": "–"}]
    text_input = model.st[0].sub_modules["text"][0]
    text_model = str(getattr(text_input.encoder, "model_card_data", None) and text_input.encoder.model_card_data.base_model or "sentence-transformers/all-MiniLM-L6-v2")
    mode = "fine-tuned" if params.get("train_text") else "frozen, with a trained projection head"
    omics = (
        "an expression-weighted bag of learned gene-symbol embeddings (shared with the text tower for genes "
        "that text names) and/or obsm vectors, through a LayerNorm + two-layer MLP projection head"
    )
    return {
        "model_name": repo_id.split("/")[-1],
        "description": (
            f"Aligns cells and text for {len(classes)} cell types ({', '.join(map(str, classes[:12]))}"
            f"{' ...' if len(classes) > 12 else ''}); query cells by free text, e.g. zero-shot cell-type annotation."
        ),
        "text_model": f"{text_model} ({mode})",
        "omics_inputs": ", ".join(f"`{i}`" for i in model.inputs),
        "omics_tower": omics,
        "embedding_dim": model.dim,
        "loss": "symmetric InfoNCE (CLIP), learnable temperature" if params.get("loss", "clip") == "clip" else "MultipleNegativesSymmetricRankingLoss",
        "training_data": f"{', '.join(meta.get('label_cols', []))} labels; {meta.get('train_cells', 0)} training cells",
        "n_train_pairs": meta.get("train_cells", 0) * int(params.get("captions_per_cell", 1)),
        "n_eval_pairs": meta.get("test_cells", 0),
        "epochs": params.get("epochs", "–"),
        "batch_size": params.get("batch_size", "–"),
        "learning_rate": params.get("learning_rate", "–"),
        "seed": params.get("seed", 0),
        "settings": settings_rows(model),
        "metrics": metrics,
        "load_path": repo_id,
        "example_caption": f"a {classes[0]}" if classes else "a T cell",
        "mmgene_version": __version__,
        "created": _dt.date.today().isoformat(),
    }


def _settings(model: Any) -> dict[str, Any]:
    """The training settings by name: the model's config, or for a model that records none the flat
    ``meta['params']`` that mmgene wrote before configs were saved."""
    if model.config is None:
        return dict(model.meta.get("params") or {})
    return {name: value for section in model.config.to_dict().values() for name, value in section.items()}


def settings_rows(model: Any) -> list[dict[str, str]]:
    """One ``{config, name, value}`` row per field of the model's configs (none when it records none)."""
    from dataclasses import fields

    from mmgene.config import show_value

    if model.config is None:
        return []
    rows = []
    for section in fields(model.config):
        config = getattr(model.config, section.name)
        for f in fields(config):
            rows.append({"config": type(config).__name__, "name": f.name, "value": show_value(getattr(config, f.name))})
    return rows


def render_model_card(model: Any, repo_id: str) -> str:
    """The model card text (YAML header + body) for ``model`` published as ``repo_id``."""
    from mmgene.cards import render_model_card as render

    return str(render(card_values(model, repo_id), datasets=None, base_model=None))
