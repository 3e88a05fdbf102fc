"""Model folders never run code, and a model is looked up on the Hub only when named ``hf://owner/name``.

Each test crafts its hostile folder itself: a config that names a class outside mmgene's allow-list,
with a Python file beside it that would write a sentinel file if it were ever imported.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_refused

from mmgene.align.config import ModelConfig
from mmgene.errors import MMGeneError, ModelError, ParameterError, UnsafeModelError

EVIL = "evil_head.EvilHead"


def _evil_code(folder: Path, module: str, sentinel: Path) -> None:
    """``folder/<module>.py``: writes ``sentinel`` when imported (it must never be)."""
    code = f"open({str(sentinel)!r}, 'w').write('ran')\n\nclass EvilHead:\n    pass\n\nclass EvilConfig:\n    pass\n"
    (folder / f"{module}.py").write_text(code, encoding="utf-8")


def _rewrite(path: Path, data: object) -> None:
    """Replace a JSON file by a new one (copies share big files by hard link, never the JSON)."""
    path.unlink(missing_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _copy(src: Path, dst: Path) -> Path:
    """Copy a model folder; weights are hard-linked (tests never modify them)."""

    def link_or_copy(a: str, b: str) -> None:
        if a.endswith(".safetensors"):
            os.link(a, b)
        else:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_or_copy)
    return dst


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small aligned model built the way ``mmgene train`` builds one, saved by mmgene, and the model itself."""
    import torch

    from mmgene.align.model import AlignedModel, build_model

    torch.set_num_threads(1)
    st = build_model(["CD3D", "LTB", "LYZ", "NKG7", "MS4A1"], ModelConfig(gene_dim=8, hidden=16, dim=8), max_genes=16, seed=0)
    st.eval()
    model = AlignedModel(st, ["genes"], {"classes": ["B cell", "T cell"]})
    folder = tmp_path_factory.mktemp("saved") / "model"
    model.save(folder)
    return folder, model


@pytest.fixture
def hostile(saved, tmp_path):
    """A copy of the saved model to make hostile, and the sentinel its code would write."""
    return _copy(saved[0], tmp_path / "model"), tmp_path / "SENTINEL"


def _refused(folder: Path, sentinel: Path, *names: str) -> str:
    from mmgene.align import load

    with pytest.raises(UnsafeModelError) as info:
        load(folder)
    message = str(info.value)
    for name in names:
        assert name in message, message
    assert not sentinel.exists()
    assert not any(m.startswith(("evil_head", "configuration_evil")) for m in sys.modules)
    return message


# (a) what mmgene writes loads -----------------------------------------------------------------


def test_a_model_folder_saved_by_mmgene_loads_and_encodes_the_same(saved):
    from mmgene.align import load
    from mmgene.align.model import check_model_folder

    folder, model = saved
    check_model_folder(folder)
    again = load(folder)
    texts = ["natural killer cell", "a B cell expressing MS4A1"]
    cells = [{"genes": ["CD3D", "LYZ"], "values": [2.0, 1.0]}, "NKG7 LTB"]
    np.testing.assert_array_equal(again.encode_text(texts), model.encode_text(texts))
    np.testing.assert_array_equal(again.encode_inputs(cells), model.encode_inputs(cells))
    assert again.meta["classes"] == ["B cell", "T cell"] and again.meta["path"] == str(folder.resolve())
    route_types = {type(m).__name__ for route in again.st[0].sub_modules.values() for m in route}
    assert route_types == {"CellInput", "GeneTable", "CellHead", "TextInput", "TextHead"}


def test_a_a_folder_naming_the_classes_of_the_former_single_modules_file_loads(saved, hostile):
    """Folders written while the modules were one file name them ``mmgene.align.modules.<Class>`` (and
    record GeneTable's ``text_dim: 0``); they load and encode the same. Only those exact names are added."""
    from mmgene.align import load
    from mmgene.align.model import model_classes

    (folder, model), (old, sentinel) = saved, hostile
    config = json.loads((old / "router_config.json").read_text())
    assert config["types"]["cell_0_CellInput"] == "mmgene.align.modules.cell_input.CellInput"
    config["types"] = {name: "mmgene.align.modules." + t.rsplit(".", 1)[1] for name, t in config["types"].items()}
    _rewrite(old / "router_config.json", config)
    table = old / "cell_1_GeneTable" / "gene_table_config.json"
    _rewrite(table, {**json.loads(table.read_text()), "text_dim": 0})
    again = load(old)
    texts, cells = ["natural killer cell"], [{"genes": ["CD3D", "LYZ"], "values": [2.0, 1.0]}]
    np.testing.assert_allclose(again.encode_text(texts), model.encode_text(texts), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(again.encode_inputs(cells), model.encode_inputs(cells))
    _, route_types = model_classes()
    assert len(route_types) == 12 and all(t.startswith("mmgene.align.modules.") for t in route_types)
    config["types"]["cell_1_GeneTable"] = "mmgene.align.modules.cell_input.GeneTable"  # a class under another file's name
    _rewrite(old / "router_config.json", config)
    _refused(old, sentinel, "router_config.json", "mmgene.align.modules.cell_input.GeneTable")


# (b) the root router_config.json -----------------------------------------------------------------


def _route_names(folder: Path, module: str, type_name: str) -> None:
    """Make the root ``router_config.json`` name ``type_name`` as the class of ``module``."""
    config = json.loads((folder / "router_config.json").read_text())
    config["types"][module] = type_name
    _rewrite(folder / "router_config.json", config)


def test_b_root_router_config_naming_foreign_code_is_refused_before_import(hostile):
    folder, sentinel = hostile
    _route_names(folder, "text_2_TextHead", EVIL)
    _evil_code(folder, "evil_head", sentinel)
    message = _refused(folder, sentinel, "router_config.json", EVIL)
    assert "does not load" in message


def test_b_a_sentence_transformers_class_outside_the_allow_list_is_refused_in_a_route(hostile):
    """The allow-list is exact: not every sentence_transformers class, only the ones mmgene writes there."""
    folder, sentinel = hostile
    _route_names(folder, "cell_2_CellHead", "sentence_transformers.base.modules.transformer.Transformer")
    _refused(folder, sentinel, "router_config.json", "sentence_transformers.base.modules.transformer.Transformer")


def test_b_foreign_code_is_refused_before_sentence_transformers_or_torch_is_imported(hostile):
    """A class from outside sentence-transformers and mmgene's modules is refused by a JSON scan alone."""
    import subprocess

    folder, sentinel = hostile
    _route_names(folder, "text_2_TextHead", EVIL)
    _evil_code(folder, "evil_head", sentinel)
    script = (
        "import sys\n"
        "from mmgene.align import load\n"
        "from mmgene.errors import UnsafeModelError\n"
        "try:\n"
        f"    load({str(folder)!r})\n"
        "except UnsafeModelError as exc:\n"
        "    print('refused', 'evil_head.EvilHead' in str(exc))\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers', 'evil_head') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["refused True", "[]"], out
    assert not sentinel.exists()


def test_the_prescreen_lets_every_allowed_class_through():
    from mmgene.align.model import model_classes
    from mmgene.model_files import ALLOWED_PACKAGES, text_encoder_classes

    root_types, route_types = model_classes()
    names = [*root_types, *route_types, *text_encoder_classes()]
    assert names and all(name.startswith(ALLOWED_PACKAGES) for name in names)


# (c) modules.json and nested router configs ------------------------------------------------------


def test_c_modules_json_naming_a_class_outside_the_allow_list_is_refused(hostile):
    folder, sentinel = hostile
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["type"] = EVIL
    _rewrite(folder / "modules.json", modules)
    _evil_code(folder, "evil_head", sentinel)
    _refused(folder, sentinel, "modules.json", EVIL)


def test_c_a_nested_router_config_naming_foreign_code_is_refused(hostile):
    folder, sentinel = hostile
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_Router", "type": modules[0]["type"]})
    _rewrite(folder / "modules.json", modules)
    (folder / "2_Router").mkdir()
    _rewrite(folder / "2_Router" / "router_config.json", {"types": {"head": EVIL}, "structure": {"text": ["head"]}})
    _evil_code(folder / "2_Router", "evil_head", sentinel)
    message = _refused(folder, sentinel, "router_config.json", EVIL)
    assert "2_Router" in message


def test_c_a_router_config_anywhere_in_the_folder_is_checked(hostile):
    folder, sentinel = hostile
    nested = folder / "cell_2_CellHead" / "extra"
    nested.mkdir()
    _rewrite(nested / "router_config.json", {"types": {"head": EVIL}, "structure": {"text": ["head"]}})
    _refused(folder, sentinel, "router_config.json", EVIL)


def test_c_module_paths_must_stay_inside_the_folder(hostile):
    folder, sentinel = hostile
    config = json.loads((folder / "router_config.json").read_text())
    config["types"]["../outside"] = config["types"].pop("text_2_TextHead")
    _rewrite(folder / "router_config.json", config)
    _refused(folder, sentinel, "outside the model folder")


# (d) the text encoder nested in TextInput --------------------------------------------------------


def _encoder(folder: Path) -> Path:
    return folder / "text_0_TextInput" / "encoder"


def test_d_text_encoder_config_with_auto_map_is_refused(hostile):
    folder, sentinel = hostile
    encoder = _encoder(folder)
    config = json.loads((encoder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "configuration_evil.EvilHead"}
    _rewrite(encoder / "config.json", config)
    _evil_code(encoder, "configuration_evil", sentinel)
    _refused(folder, sentinel, "config.json", "configuration_evil.EvilConfig", "auto_map")


def test_d_text_encoder_of_an_unknown_model_type_or_module_class_is_refused(hostile):
    folder, sentinel = hostile
    encoder = _encoder(folder)
    config = json.loads((encoder / "config.json").read_text())
    _rewrite(encoder / "config.json", {**config, "model_type": "evil-bert"})
    _refused(folder, sentinel, "config.json", "evil-bert")
    _rewrite(encoder / "config.json", config)
    modules = json.loads((encoder / "modules.json").read_text())
    modules[1]["type"] = "sentence_transformers.sentence_transformer.modules.clip_model.CLIPModel"
    _rewrite(encoder / "modules.json", modules)
    _refused(folder, sentinel, "modules.json", "CLIPModel")


def test_d_text_encoders_from_mmgene_embed_are_checked_too(saved, tmp_path):
    from mmgene.text.encoders import SentenceTransformerEncoder, _load_sentence_transformer

    encoder = _copy(_encoder(saved[0]), tmp_path / "encoder")
    config = json.loads((encoder / "config.json").read_text())
    _rewrite(encoder / "config.json", {**config, "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}})
    _evil_code(encoder, "configuration_evil", tmp_path / "SENTINEL")
    _load_sentence_transformer.cache_clear()
    with pytest.raises(UnsafeModelError, match="configuration_evil.EvilConfig"):
        SentenceTransformerEncoder(encoder, cache=False).encode(["a T cell"])
    assert not (tmp_path / "SENTINEL").exists()
    with pytest.raises(ParameterError, match="trust_remote_code"):
        SentenceTransformerEncoder("minilm", trust_remote_code=True)


def test_d_train_refuses_a_hostile_text_model(saved, tmp_path):
    from mmgene.align.model import build_model

    encoder = _copy(_encoder(saved[0]), tmp_path / "encoder")
    modules = json.loads((encoder / "modules.json").read_text())
    modules[1]["type"] = EVIL
    _rewrite(encoder / "modules.json", modules)
    _evil_code(encoder, "evil_head", tmp_path / "SENTINEL")
    with pytest.raises(UnsafeModelError, match=EVIL):
        build_model(["CD3D"], ModelConfig(text_model=str(encoder)))
    assert not (tmp_path / "SENTINEL").exists()


# (e) Geneformer checkpoints ----------------------------------------------------------------------


def _bert_config(**extra: object) -> dict:
    return {"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 16, "hidden_size": 8,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16, "pad_token_id": 0, **extra}


def test_e_geneformer_checkpoint_with_auto_map_or_another_model_type_is_refused(tmp_path):
    from mmgene.embed.geneformer_model import load_model

    folder = tmp_path / "gf"
    folder.mkdir()
    _rewrite(folder / "config.json", _bert_config(auto_map={"AutoModel": "configuration_evil.EvilConfig"}))
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    _evil_code(folder, "configuration_evil", tmp_path / "SENTINEL")
    with pytest.raises(UnsafeModelError, match=r"config\.json.*configuration_evil\.EvilConfig"):
        load_model(folder)
    _rewrite(folder / "config.json", _bert_config(model_type="evil"))
    with pytest.raises(ModelError, match="not BERT"):
        load_model(folder)
    assert not (tmp_path / "SENTINEL").exists()


def test_e_geneformer_checkpoint_loads_without_remote_code(tmp_path, monkeypatch):
    """A plain BERT checkpoint loads, and transformers is asked with trust_remote_code=False, local files only."""
    import transformers
    from transformers import BertConfig, BertForMaskedLM

    from mmgene.embed.geneformer_model import load_model

    config = _bert_config()
    config.pop("model_type")
    BertForMaskedLM(BertConfig(**config)).save_pretrained(tmp_path / "gf")
    seen = {}
    original = transformers.BertModel.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.update(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.BertModel, "from_pretrained", classmethod(spy))
    model = load_model(tmp_path / "gf")
    assert model.source == "local" and model.n_layers == 2
    assert seen["trust_remote_code"] is False and seen["local_files_only"] is True


# (f) a missing local path is an error, never a Hub lookup ------------------------------------------


def test_f_a_missing_path_is_an_error_and_no_request_reaches_the_hub(tmp_path, monkeypatch):
    """Against a loopback Hub that logs every request: 'owner/name' (a typo of a folder) asks nothing."""
    import huggingface_hub
    from servers.hub_server import hub_for_this_process

    from mmgene.align import load
    from mmgene.align.model import build_model
    from mmgene.embed.geneformer_model import load_model
    from mmgene.text.encoders import text_encoder
    from mmgene.query.space import load_space

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: calls.append((a, k)))
    monkeypatch.chdir(tmp_path)
    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as server:
        for loader in (load, load_model, text_encoder):
            with pytest.raises(ModelError, match="no model folder at 'owner/name'.*hf://"):
                loader("owner/name")
        with pytest.raises(ModelError, match="no model folder at 'owner/name'"):
            build_model(["CD3D"], ModelConfig(text_model="owner/name"))
        with pytest.raises(ModelError, match="as a string, not as a path"):
            load(Path("hf://owner/name"))
        with pytest.raises(ParameterError, match="unknown model 'owner/name'"):
            load_space("owner/name")
        with pytest.raises(ParameterError, match="not a Hub model id"):
            load("hf://owner")
        assert server.app.log == []
    assert calls == []


# (g) hf://owner/name is a Hub id: downloaded, then checked like a local folder ---------------------


def test_g_hub_id_is_downloaded_then_checked_like_a_local_folder(hostile, tmp_path, monkeypatch):
    """A hostile model on the (loopback) Hub is refused after download; its code never runs."""
    from huggingface_hub import HfApi
    from servers.hub_server import hub_for_this_process

    from mmgene.align import load

    folder, sentinel = hostile
    shutil.rmtree(folder / "text_0_TextInput" / "encoder")  # keep the upload small: refused before any weights
    _route_names(folder, "text_2_TextHead", EVIL)
    _evil_code(folder, "evil_head", sentinel)
    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as server:
        api = HfApi(endpoint=server.url, token=server.token)
        repo = api.create_repo("evil-model").repo_id
        api.upload_folder(repo_id=repo, folder_path=str(folder))
        with pytest.raises(UnsafeModelError, match=r"router_config\.json.*evil_head\.EvilHead"):
            load(f"hf://{repo}")
        assert any("/resolve/" in raw for _, raw, _ in server.app.log)  # it was downloaded, then refused
    assert not sentinel.exists()


def test_g_hub_id_with_revision_loads_the_snapshot(saved, monkeypatch):
    import huggingface_hub

    from mmgene.align import load

    folder, model = saved
    calls = []

    def snapshot(repo_id, **kwargs):
        calls.append((repo_id, kwargs.get("revision"), kwargs.get("repo_type")))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    again = load("hf://me/pbmc-aligned@v1")
    assert calls == [("me/pbmc-aligned", "v1", "model")]
    assert again.meta["path"] == "hf://me/pbmc-aligned@v1"
    np.testing.assert_array_equal(again.encode_text(["T cell"]), model.encode_text(["T cell"]))


# (h) the command line: one line, status 2, nothing written -------------------------------------------


@pytest.fixture
def cli_files(hostile, tmp_path):
    """A hostile model, an AnnData file, an index (plain) and an index whose meta.json names the hostile model."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from mmgene.index import CellIndex

    folder, sentinel = hostile
    _route_names(folder, "text_2_TextHead", EVIL)
    _evil_code(folder, "evil_head", sentinel)
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(2.0, size=(12, 5)).astype(np.float32))
    adata = ad.AnnData(counts, obs=pd.DataFrame(index=[f"c{i}" for i in range(12)]),
                       var=pd.DataFrame(index=["CD3D", "LTB", "LYZ", "NKG7", "MS4A1"]))
    adata.obsm["X_emb"] = rng.normal(size=(12, 8)).astype(np.float32)
    h5ad = tmp_path / "cells.h5ad"
    adata.write_h5ad(h5ad)
    CellIndex.build(adata, "X_emb", kind="flat").save(tmp_path / "index")
    evil = CellIndex.build(adata, "X_emb", kind="flat")
    evil.meta["model"] = str(folder)  # building with it refuses it (it is loaded to check its dimension): named after
    evil.save(tmp_path / "index_evil")
    return folder, h5ad, tmp_path


def test_h_cli_refuses_a_hostile_model_with_one_line(cli_files):
    folder, h5ad, root = cli_files
    roots = [root]
    line = assert_refused(["query", root / "index", "T cell", "--model", folder], roots, contains=EVIL)
    assert "router_config.json" in line
    assert_refused(["query", root / "index_evil", "T cell"], roots, contains=EVIL)
    assert_refused(["annotate", h5ad, "--model", folder, "--labels", "B cell", "T cell", "-o", root / "out.h5ad"],
                   roots, contains=EVIL)
    assert_refused(["query", root / "index", "T cell", "--model", "owner/name"], roots, contains="unknown model")
    assert not (root / "SENTINEL").exists()


def test_h_cli_geneformer_refuses_missing_and_hostile_models(cli_files):
    folder, h5ad, root = cli_files
    gf = root / "gf"
    gf.mkdir()
    _rewrite(gf / "config.json", _bert_config(auto_map={"AutoModel": "configuration_evil.EvilConfig"}))
    roots = [root]
    assert_refused(["embed", "geneformer", h5ad, "--model", gf, "-o", root / "gf.h5ad"], roots, contains="auto_map")
    assert_refused(["embed", "geneformer", h5ad, "--model", "owner/name", "-o", root / "gf.h5ad"], roots,
                   contains="no model folder at 'owner/name'")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("inputs", "genes", "field 'inputs' must list what the omics tower reads ('genes' and/or obsm keys), got 'genes'"),
        ("inputs", [], "field 'inputs' must list what the omics tower reads ('genes' and/or obsm keys), got []"),
        ("classes", 3, "field 'classes' must be a list of class names, got int"),
        ("learned_mean", [0.0] * 3, "field 'learned_mean' must be 8 finite numbers (the omics tower's learned width)"),
        ("learned_mean", ["a"] * 8, "field 'learned_mean' must be 8 finite numbers (the omics tower's learned width)"),
    ],
)
def test_a_hand_edited_model_record_is_refused_at_load_naming_the_field(hostile, field, value, message):
    """A field of mmgene_align.json that encoding or scoring reads, edited to something the model cannot use,
    is a ModelError when the folder loads, not a traceback at the first cell (e.g. obsm 'g' for inputs 'genes')."""
    from mmgene.align import load

    folder, _ = hostile
    meta = json.loads((folder / "mmgene_align.json").read_text())
    _rewrite(folder / "mmgene_align.json", {**meta, field: value})
    with pytest.raises(ModelError) as refused:
        load(folder)
    assert str(refused.value) == (
        f"{message}. Where: {folder.resolve() / 'mmgene_align.json'}. "
        "What to do: give an unmodified, complete folder written by `mmgene train`."
    )


def test_a_model_that_reads_genes_without_its_vocabulary_is_refused(hostile):
    from mmgene.align import load

    folder, _ = hostile
    (vocab,) = folder.glob("**/vocab.txt")
    vocab.unlink()
    with pytest.raises(ModelError, match=r"the model reads genes but its gene vocabulary \(vocab.txt\) is missing or empty"):
        load(folder)


def test_errors_are_mmgene_errors():
    assert issubclass(UnsafeModelError, ModelError) and issubclass(ModelError, MMGeneError)


@pytest.mark.parametrize("where", [{"auto_map": {"AutoModel": "evil.Model"}}, {"nested": [{"auto_map": "evil.Model"}]}])
def test_a_transformers_config_checked_on_its_own_refuses_auto_map_anywhere_in_it(tmp_path, where):
    """check_transformers_config is also called for a Transformer module's own folder: it refuses
    auto_map itself, nested or not, before it asks transformers which model types exist."""
    from mmgene.model_files import check_transformers_config

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **where}))
    with pytest.raises(UnsafeModelError, match="custom code through auto_map.*evil.Model"):
        check_transformers_config(tmp_path)
