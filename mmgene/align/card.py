"""Fill ``mmgene/_cards/model_card.md`` with an aligned model's real values (rendered by :mod:`mmgene.cards`).

The card is the ``README.md`` of every saved model folder and of every model pushed to the Hub. Its
usage code loads the model from where it is: a folder path, or ``hf://owner/name`` for
:func:`mmgene.align.load` (``owner/name`` for sentence-transformers); its YAML names the text model it
was built on as ``base_model``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from mmgene.cards import code_span

#: the text tower when ModelConfig.text_model is None: the offline all-MiniLM-L6-v2
DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def base_model(model: Any) -> str | None:
    """The Hub id of the text model ``model`` was built on: the offline MiniLM's, or ``owner/name`` of an
    ``hf://`` text model; None for a local text-model folder (it has no Hub id to name)."""
    from mmgene.model_files import parse_hub_id

    spec = model.config.model.text_model if model.config is not None else (model.meta.get("params") or {}).get("text_model")
    if spec is None:
        return DEFAULT_TEXT_MODEL
    hub = parse_hub_id(spec)
    return hub.repo_id if hub is not None else None


def _training_data(meta: dict[str, Any]) -> str:
    """What the model learnt from: the label columns of one AnnData, or each dataset of a corpus with its own."""
    label_cols = meta.get("label_cols") or []
    if isinstance(label_cols, dict):  # a corpus: dataset -> its label column
        named = "; ".join(f"{dataset} ({column})" for dataset, column in label_cols.items())
        return f"{len(label_cols)} datasets, labels from {named}; {meta.get('train_cells', 0)} training cells"
    return f"{', '.join(label_cols)} labels; {meta.get('train_cells', 0)} training cells"


def card_values(model: Any, location: str, *, hub: bool = False) -> dict[str, Any]:
    """The template values of ``mmgene/_cards/model_card.md`` for ``model`` (an
    :class:`~mmgene.align.AlignedModel` or an ensemble of them) at ``location``: a Hub repo id with ``hub``, else a folder path."""
    from mmgene import __version__

    meta = model.meta
    params = _settings(model)
    classes = meta.get("classes", [])
    from mmgene.align.ensemble import eval_histories

    members = meta.get("members") or []
    splits = [f"held-out cells of member {i} (seed {m.get('seed')})" for i, m in enumerate(members)] or ["held-out cells"]
    metrics = [
        {"name": name.removeprefix("zero_shot_").replace("_", " "), "value": f"{value:.3f}", "split": split}
        for history, split in zip(eval_histories(meta), splits)
        for name, value in (history or [{}])[-1].items()
        if name != "steps" and isinstance(value, float)
    ]
    for entry in meta.get("reported_metrics", []):
        metrics.append(entry)
    if not metrics:
        metrics = [{"name": "not evaluated", "value": "–", "split": "–"}]
    text_model = base_model(model) or "a local text model folder"
    mode = "fine-tuned" if params.get("train_text") else "frozen, with a trained projection head"
    omics = (
        "an expression-weighted bag of learned gene-symbol embeddings (shared with the text tower for genes "
        "that text names) and/or obsm vectors, through a LayerNorm + two-layer MLP projection head"
    )
    return {
        "model_name": location.rstrip("/").split("/")[-1] if hub else Path(location).name,
        "description": (
            f"Aligns cells and text for {len(classes)} cell types ({', '.join(map(str, classes[:12]))}"
            f"{' ...' if len(classes) > 12 else ''}); query cells by free text, e.g. zero-shot cell-type annotation."
            + (
                f" An ensemble of {len(members)} models trained alike with seeds {', '.join(str(m.get('seed')) for m in members)}: "
                "its space holds theirs side by side, so a cosine in it is the mean of theirs." if members else ""
            )
        ),
        "text_model": f"{text_model} ({mode})",
        "omics_inputs": ", ".join(map(code_span, model.inputs)),
        "omics_tower": omics,
        "embedding_dim": model.dim,
        "loss": "symmetric InfoNCE (CLIP), learnable temperature" if params.get("loss", "clip") == "clip" else "MultipleNegativesSymmetricRankingLoss",
        "training_data": _training_data(meta),
        "n_train_pairs": meta.get("train_cells", 0) * int(params.get("captions_per_cell", 1)),
        "n_eval_pairs": meta.get("test_cells", 0),
        "epochs": params.get("epochs", "–"),
        "batch_size": params.get("batch_size", "–"),
        "learning_rate": params.get("learning_rate", "–"),
        "seed": params.get("seed", 0),
        "settings": settings_rows(model),
        "metrics": metrics,
        "load_path": f"hf://{location}" if hub else location,
        "example_caption": f"a {classes[0]}" if classes else "a T cell",
        "mmgene_version": __version__,
        "created": _dt.date.today().isoformat(),
        "recipe": recipe_values(meta.get("recipe"), ensemble=bool(members)),
        "members": len(members),
    }


def recipe_values(recipe: dict[str, Any] | None, *, ensemble: bool = False) -> dict[str, Any]:
    """The card's "Training corpus" section from a :func:`mmgene.pretrain.pretrain` recipe: one row per
    dataset, the command that rebuilds the model (with the label columns, species and tissue given for
    files and folders) and the file that keeps the recipe (an ensemble's own; empty for a model trained
    otherwise: no section)."""
    from mmgene.align.ensemble import ENSEMBLE_FILE
    from mmgene.align.model import MMGENE_CONFIG

    if not recipe:
        return {}
    rows = []
    for d in recipe.get("datasets", []):
        census = d.get("census")
        source = f"CELLxGENE Census {code_span(census.get('obs_value_filter'))}" if census else code_span(d.get("source"))
        rows.append({
            "dataset": d.get("dataset"), "species": d.get("species"), "tissue": d.get("tissue") or "–",
            "cells": f"{d.get('n_cells', 0):,}", "share_matched": f"{float(d.get('share_matched', 0.0)):.1%}",
            "labels_from": d.get("labels_from"), "weight": f"{float(d.get('weight', 1.0)):g}", "source": source,
        })
    mapping = recipe.get("mapping")
    command = ["mmgene pretrain", *recipe.get("sources", []), "--seed", str(recipe.get("seed", 0))]
    for name, value in (recipe.get("columns") or {}).items():  # what files and folders were read with
        command += [f"--{name.replace('_', '-')}", str(value)]
    if mapping:
        command += ["--mapping", str(mapping.get("file"))]
    config = recipe.get("config") or {}
    for name in ("max_steps", "orthology", "min_confidence", "members"):  # every setting given, so the command rebuilds it
        if config.get(name) is not None:
            command += [f"--{name.replace('_', '-')}", str(config[name])]
    if config.get("keep_unmapped"):
        command.append("--keep-unmapped")
    if config.get("drop_contradicted") is not None:
        command.append("--drop-contradicted" if config["drop_contradicted"] else "--keep-contradicted")
    return {
        "datasets": rows,
        "command": " ".join(command),
        "mapping_sha256": mapping.get("sha256") if mapping else None,
        "version": recipe.get("mmgene_version"),
        "keep_unmapped": bool(config.get("keep_unmapped")),
        "file": ENSEMBLE_FILE if ensemble else MMGENE_CONFIG,
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


def render_model_card(model: Any, location: str, *, hub: bool = False) -> str:
    """The model card text (YAML header + body) for ``model`` saved at ``location`` (a folder path) or,
    with ``hub``, published as the repo id ``location``."""
    from mmgene.cards import render_model_card as render

    values = card_values(model, location, hub=hub)
    library = "mmgene" if values["members"] else "sentence-transformers"
    return str(render(values, datasets=None, base_model=base_model(model), library_name=library))
