"""Audit of loading aligned and text model folders: hand-edited or corrupt folders are refused with an
MMGeneError naming the file, never a raw error nor a model that loads and embeds the wrong thing.

Each test pins one finding (all failed before the fix).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from test_model_safety import _rewrite, hostile, saved  # noqa: F401 - the small saved model and its copy

from mmgene.errors import ModelError, UnsafeModelError


def _load(folder: Path):
    from mmgene.align import load

    return load(folder)


def _edit(path: Path, **changes: object) -> None:
    _rewrite(path, {**json.loads(path.read_text()), **changes})


def _text_model(tmp_path: Path) -> Path:
    """A copy of the offline MiniLM text model (weights hard-linked, never modified)."""
    from mmgene.align.model import default_text_model

    def link_or_copy(a: str, b: str) -> None:
        os.link(a, b) if a.endswith(".safetensors") else shutil.copy2(a, b)

    return Path(shutil.copytree(default_text_model(), tmp_path / "text", copy_function=link_or_copy))


def test_a_router_config_whose_types_are_not_an_object_is_refused(hostile):  # noqa: F811
    folder, _ = hostile
    _edit(folder / "router_config.json", types=["mmgene.align.modules.cell_input.CellInput"])
    with pytest.raises(UnsafeModelError, match="router_config.json names the module class"):
        _load(folder)


@pytest.mark.parametrize(("key", "message"), [
    ("('text', ", "is not a ('task', 'modality') pair"),
    ("('text', None)", "a task may only be sent to the route of its own name"),
])
def test_route_mappings_unreadable_or_sending_texts_to_the_cell_tower_are_refused(hostile, key, message):  # noqa: F811
    folder, _ = hostile
    config = json.loads((folder / "router_config.json").read_text())
    config["parameters"]["route_mappings"] = {key: "cell"}
    _rewrite(folder / "router_config.json", config)
    with pytest.raises(ModelError, match=re.escape(message)) as info:
        _load(folder)
    assert info.value.where == str(folder.resolve() / "router_config.json")


@pytest.mark.parametrize("layout", ["no Normalize", "two Routers"])
def test_the_root_modules_must_be_the_router_then_normalize(hostile, layout):  # noqa: F811
    folder, _ = hostile
    router, normalize = json.loads((folder / "modules.json").read_text())
    _rewrite(folder / "modules.json", [router] if layout == "no Normalize" else [router, router, normalize])
    with pytest.raises(ModelError, match=r"not an aligned model's \(Router, Normalize\)"):
        _load(folder)


@pytest.mark.parametrize("inputs", [["X_pca"], ["genes", "X_pca"]])
def test_inputs_must_be_what_the_omics_tower_reads(hostile, inputs):  # noqa: F811
    folder, _ = hostile
    _edit(folder / "mmgene_align.json", inputs=inputs)
    with pytest.raises(ModelError, match=r"field 'inputs' is .* but the omics tower reads \['genes'\]"):
        _load(folder)


def test_an_ensembles_classes_are_checked_like_a_models(saved, tmp_path):  # noqa: F811
    from mmgene.align.ensemble import EnsembleModel

    model = saved[1]
    EnsembleModel([model, model]).save(tmp_path / "ensemble")
    listing = tmp_path / "ensemble" / "mmgene_ensemble.json"
    data = json.loads(listing.read_text())
    data["meta"]["classes"] = "B cell"
    _rewrite(listing, data)
    with pytest.raises(ModelError, match="field 'classes' must be a list of class names, got str") as info:
        _load(tmp_path / "ensemble")
    assert info.value.where == str(listing.resolve())


@pytest.mark.parametrize("model_type", ["roberta", "distilbert"])
def test_a_text_encoder_config_naming_another_model_type_is_refused(hostile, model_type):  # noqa: F811
    folder, _ = hostile
    _edit(folder / "text_0_TextInput" / "encoder" / "config.json", model_type=model_type)
    with pytest.raises(ModelError, match=f"names the model type '{model_type}', but its weights were saved from BertModel"):
        _load(folder)


def test_a_model_type_that_is_not_a_string_is_refused(hostile):  # noqa: F811
    folder, _ = hostile
    _edit(folder / "text_0_TextInput" / "encoder" / "config.json", model_type=["bert"])
    with pytest.raises(UnsafeModelError, match="names the model type"):
        _load(folder)


def test_config_json_nested_too_deep_is_a_model_error(hostile):  # noqa: F811
    folder, _ = hostile
    (folder / "mmgene_align.json").unlink()
    (folder / "mmgene_align.json").write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ModelError, match="mmgene_align.json cannot be read"):
        _load(folder)


def test_a_text_model_linking_out_of_its_folder_is_refused(tmp_path):
    from mmgene.align.model import load_text_model

    folder, secret = _text_model(tmp_path), tmp_path / "secret.txt"
    secret.write_text("[PAD]\n[UNK]\nmy own words\n")
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").unlink()
    (folder / "vocab.txt").symlink_to(secret)
    with pytest.raises(UnsafeModelError, match="vocab.txt links to"):
        load_text_model(folder)


def test_a_dense_module_config_that_is_not_an_object_is_refused(tmp_path):
    from mmgene.model_files import check_text_encoder

    folder = _text_model(tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": "9", "path": "9_Dense", "type": "sentence_transformers.models.Dense"})
    _rewrite(folder / "modules.json", modules)
    (folder / "9_Dense").mkdir()
    (folder / "9_Dense" / "config.json").write_text("[1]")
    with pytest.raises(UnsafeModelError, match="activation function"):
        check_text_encoder(folder)


@pytest.mark.parametrize("spec", ["", "  "])
def test_a_model_named_by_an_empty_text_is_not_the_working_folder(spec, tmp_path, monkeypatch):
    from mmgene.errors import ModelError
    from mmgene.model_files import local_model_folder

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="empty text") as err:
        local_model_folder(spec)
    assert err.value.where == "model ''"


@pytest.mark.parametrize(("field", "value"), [("label_cols", 5), ("label_cols", {"pbmc3k": 5}), ("members", [1, 2]),
                                              ("reported_metrics", 5)])
def test_fields_the_model_card_reads_are_checked_when_loading(hostile, field, value):  # noqa: F811
    folder, _ = hostile
    _edit(folder / "mmgene_align.json", **{field: value})
    with pytest.raises(ModelError, match=f"field '{field}' must be"):
        _load(folder)


def test_a_corpus_models_label_columns_by_dataset_load(hostile):  # noqa: F811
    folder, _ = hostile
    _edit(folder / "mmgene_align.json", label_cols={"pbmc3k": "cell_type", "kang": "cell_type_name"})
    assert _load(folder).meta["label_cols"] == {"pbmc3k": "cell_type", "kang": "cell_type_name"}
