"""Audit of reading and writing aligned model folders: a corrupt or tampered folder is refused at load
with a ModelError naming the file, never loaded to fail later, and never read outside the folder.

Each test pins one finding (all failed before the fix):

- truncated or garbage ``model.safetensors`` raised safetensors' own error; a module without it fell
  back to reading a pickle (``pytorch_model.bin``);
- sizes in a module's config were allocated before the weights showed them wrong (``hidden: 10**12``);
  a gene channel's ``vocab_size`` allocated its lookup table unchecked;
- ``NaN`` in a module config loaded, and failed (dropout) or gave NaN vectors (temperature) later;
- a link out of the folder (a file of the user's read as the vocabulary), a pipe or a broken link
  was read, in a model folder and in an ensemble's member;
- modules edited to agree with their own weights but not with each other (gene ids beyond the
  vocabulary, widths, routes) loaded and failed at the first text or cell; a bridge file whose header
  claimed more than it held was allocated;
- a text encoder with truncated weights, and a settings file that is not an object, raised raw errors;
- the Hub token went in clear text to a plain-http ``HF_ENDPOINT`` on another machine when a model was
  downloaded, and ``push_to_hub`` sent it there too.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from hostile import snapshot
from test_hub_audit import TOKEN, remote_http_hub  # noqa: F401 - the plain-http remote Hub behind a recording proxy
from test_model_safety import _copy, _rewrite, hostile, saved  # noqa: F401 - the small saved model and its copy

from mmgene.errors import MMGeneError, ModelError, ParameterError, UnsafeModelError

FIX = "give an unmodified, complete folder written by `mmgene train`"


def _load(folder: Path):
    from mmgene.align import load

    return load(folder)


def _refused(folder: Path, error: type = ModelError) -> MMGeneError:
    """Load ``folder``, expecting ``error``; the folder is byte for byte as it was."""
    before = snapshot([folder])
    with pytest.raises(error) as info:
        _load(folder)
    assert type(info.value) is error, repr(info.value)
    assert snapshot([folder]) == before
    return info.value


def _edit(path: Path, **changes: object) -> None:
    _rewrite(path, {**json.loads(path.read_text()), **changes})


def _replace_bytes(path: Path, data: bytes) -> None:
    """New bytes under ``path`` (a copy's weights are hard links to the fixture's: never written in place)."""
    path.unlink()
    path.write_bytes(data)


def _message(what: str, where: Path, fix: str = FIX) -> str:
    return f"{what}. Where: {where}. What to do: {fix}."


# -- weights files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [800, 5, 0])
def test_truncated_or_garbage_weights_are_refused_naming_the_file(hostile, keep):
    folder, _ = hostile
    weights = folder / "cell_2_CellHead" / "model.safetensors"
    _replace_bytes(weights, weights.read_bytes()[:keep])
    error = _refused(folder)
    assert str(error).startswith(
        "model.safetensors is not a complete safetensors file (Error while deserializing header: "
    )
    assert error.where == str(weights.resolve())


def test_a_module_without_safetensors_weights_is_refused_and_its_pickle_never_read(hostile):
    folder, sentinel = hostile

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    head = folder / "cell_2_CellHead"
    (head / "model.safetensors").unlink()
    (head / "pytorch_model.bin").write_bytes(pickle.dumps(Evil()))
    error = _refused(folder)
    assert str(error) == _message(
        "the weights file model.safetensors is missing", (head / "model.safetensors").resolve(),
        "give an unmodified, complete folder written by `mmgene train` or AlignedModel.save",
    )
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "module, config, key, wrong",
    [
        ("cell_2_CellHead", "cell_head_config.json", "hidden",
         "mlp.0.bias is [16] in the weights, [1000000000000] by the config"),
        ("cell_1_GeneTable", "gene_table_config.json", "vocab_size",
         "embedding.weight is [5, 8] in the weights, [1000000000000, 8] by the config"),
    ],
)
def test_config_sizes_must_match_the_weights_before_anything_is_allocated(hostile, module, config, key, wrong):
    folder, _ = hostile
    _edit(folder / module / config, **{key: 10**12})
    error = _refused(folder)
    assert str(error) == _message(
        f"{config} and model.safetensors disagree: {wrong}", (folder / module / "model.safetensors").resolve(),
        "give an unmodified folder written by `mmgene train` (its configs and weights are saved together)",
    )


def test_a_text_encoder_with_truncated_weights_is_a_model_error(hostile):
    folder, _ = hostile
    encoder = folder / "text_0_TextInput" / "encoder"
    _replace_bytes(encoder / "model.safetensors", (encoder / "model.safetensors").read_bytes()[:1000])
    error = _refused(folder)
    assert str(error).startswith("the text model cannot be loaded (SafetensorError: ")
    assert error.where == str(encoder.resolve())


# -- configs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, config, key",
    [
        ("cell_2_CellHead", "cell_head_config.json", "dropout"),
        ("text_0_TextInput", "text_input_config.json", "related_temperature"),
    ],
)
def test_nan_in_a_module_config_is_refused(hostile, module, config, key):
    folder, _ = hostile
    _edit(folder / module / config, **{key: float("nan")})
    error = _refused(folder)
    assert str(error) == _message(
        f"{config} cannot be read (NaN is not a number a model config may hold)", (folder / module / config).resolve(),
        "pass a complete, unmodified model folder",
    )


def test_a_settings_file_that_is_not_an_object_is_a_model_error(hostile):
    folder, _ = hostile
    _rewrite(folder / "config_sentence_transformers.json", [1])
    error = _refused(folder)
    assert str(error) == _message(
        "config_sentence_transformers.json is not a JSON object",
        (folder / "config_sentence_transformers.json").resolve(),
        "use an unmodified model folder",
    )


# -- links, pipes ------------------------------------------------------------------------------------

LINK_FIX = "use a model folder as mmgene wrote it, with its files copied in (not linked)"


def test_links_out_of_the_folder_are_refused_before_anything_is_read(hostile, tmp_path):
    """A vocabulary linked to a file of the user's would become the model's genes (and be published by
    its next save or push); a weights file or encoder linked elsewhere is another model's. Links that
    stay inside, like a Hugging Face cache snapshot's into its repo's blobs, load."""
    folder, _ = hostile
    root, secret = folder.resolve(), Path(os.path.realpath(tmp_path / "secret.txt"))
    secret.write_text("SECRET-1\nSECRET-2\n")
    vocab = folder / "cell_0_CellInput" / "vocab.txt"
    vocab.unlink()
    vocab.symlink_to(secret)
    error = _refused(folder, UnsafeModelError)
    assert str(error) == _message(
        f"cell_0_CellInput/vocab.txt links to {str(secret)!r}, outside the model folder",
        root / "cell_0_CellInput" / "vocab.txt",
        LINK_FIX,
    )
    vocab.unlink()
    vocab.write_text("CD3D\nLTB\nLYZ\nNKG7\nMS4A1")
    encoder, elsewhere = folder / "text_0_TextInput" / "encoder", secret.parent / "elsewhere"
    encoder.rename(elsewhere)
    encoder.symlink_to(elsewhere, target_is_directory=True)
    error = _refused(folder, UnsafeModelError)
    assert str(error) == _message(
        f"text_0_TextInput/encoder links to {str(elsewhere)!r}, outside the model folder",
        root / "text_0_TextInput" / "encoder",
        LINK_FIX,
    )
    encoder.unlink()
    elsewhere.rename(encoder)

    repo = tmp_path / "hf" / "models--me--aligned"  # the Hugging Face cache: snapshot files link into blobs
    snap = repo / "snapshots" / ("a" * 40)
    shutil.copytree(folder, snap)
    (repo / "blobs").mkdir()
    for i, path in enumerate(sorted(p for p in snap.rglob("*") if p.is_file())):
        blob = repo / "blobs" / f"blob{i}"
        path.rename(blob)
        path.symlink_to(os.path.relpath(blob, path.parent))
    assert _load(snap).encode_text(["T cell"]).shape == (1, 8)


def test_a_pipe_or_a_broken_link_in_a_model_folder_is_refused(hostile):
    """A read of a pipe blocks until someone writes to it: checked by the folder walk, before any read."""
    from mmgene.model_files import check_links

    folder, _ = hostile
    mentions = folder / "text_0_TextInput" / "mentions.json"
    mentions.unlink()
    os.mkfifo(mentions)
    with pytest.raises(UnsafeModelError) as info:
        check_links(folder)
    assert str(info.value) == _message(
        "text_0_TextInput/mentions.json is not a file or folder (a pipe, a device or a broken link)", mentions, LINK_FIX
    )  # the path as given: check_links walks the folder it is passed
    mentions.unlink()
    mentions.symlink_to("missing.json")
    with pytest.raises(UnsafeModelError, match="mentions.json is not a file or folder"):
        check_links(folder)


def test_an_ensemble_member_with_a_link_out_is_refused(saved, tmp_path):
    folder, model = saved
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    for name in ("member-0", "member-1"):
        _copy(folder, ensemble / name)
    _rewrite(ensemble / "mmgene_ensemble.json", {"members": ["member-0", "member-1"], "meta": {}})
    assert _load(ensemble).encode_text(["T cell"]).shape == (1, 16)
    secret = Path(os.path.realpath(tmp_path / "secret.txt"))
    secret.write_text("SECRET-1\n")
    vocab = ensemble / "member-1" / "cell_0_CellInput" / "vocab.txt"
    vocab.unlink()
    vocab.symlink_to(secret)
    error = _refused(ensemble, UnsafeModelError)
    assert str(error) == _message(
        f"member-1/cell_0_CellInput/vocab.txt links to {str(secret)!r}, outside the model folder",
        ensemble.resolve() / "member-1" / "cell_0_CellInput" / "vocab.txt", LINK_FIX,
    )


# -- modules that do not fit together ----------------------------------------------------------------


def _bridge(folder: Path, ids: list[int], width: int) -> None:
    np.save(folder / "text_0_TextInput" / "gene_text_ids.npy", np.array(ids, dtype=np.int64))
    np.save(folder / "text_0_TextInput" / "gene_text_vectors.npy", np.ones((len(ids), width), np.float32))


def _mentions(folder: Path) -> None:
    _rewrite(folder / "text_0_TextInput" / "mentions.json", {"CD3D": [0], "NKG7": [10**6]})


def _without_cell_route(folder: Path) -> None:
    config = json.loads((folder / "router_config.json").read_text())
    config["structure"].pop("cell")
    _rewrite(folder / "router_config.json", config)


def _smaller_table(folder: Path) -> None:
    """A gene table of 2 genes whose config and weights agree, in a model with 5."""
    from safetensors.numpy import load_file, save_file

    weights = folder / "cell_1_GeneTable" / "model.safetensors"
    tensors = {k: v[:2].copy() for k, v in load_file(weights).items()}
    weights.unlink()
    save_file(tensors, weights)
    _edit(folder / "cell_1_GeneTable" / "gene_table_config.json", vocab_size=2)


@pytest.mark.parametrize(
    "tamper, what, where",
    [
        (_mentions, "the mention index (mentions.json) names genes outside the vocabulary of 5 genes", ""),
        (lambda f: _bridge(f, [0, 10**6], 384),
         "the gene-text bridge (gene_text_ids.npy) names genes outside the vocabulary of 5 genes", ""),
        (lambda f: _bridge(f, [0, 1], 7),
         "the gene-text vectors' shape is (2, 7), but the model's other modules need (2, 384)", ""),
        (_smaller_table, "the gene table's vocab_size is 2, but the model's other modules need 5", ""),
        (_without_cell_route, "the model's routes are {'text': 'TextInput GeneTable TextHead'}, not an aligned model's "
         "(cell: CellInput( GeneTable)? CellHead( GeneChannel)?; text: TextInput( GeneTable)? TextHead( GeneChannel)?)",
         "router_config.json"),
    ],
    ids=["mentions", "bridge-ids", "bridge-width", "table", "routes"],
)
def test_modules_that_do_not_fit_together_are_refused_at_load(hostile, tamper, what, where):
    folder, _ = hostile
    tamper(folder)
    error = _refused(folder)
    assert str(error) == _message(what, folder.resolve() / where if where else folder.resolve())


def test_a_bridge_file_whose_header_claims_more_than_it_holds_is_refused(hostile):
    folder, _ = hostile
    _bridge(folder, [0, 1], 384)
    path = folder / "text_0_TextInput" / "gene_text_vectors.npy"
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 384), }"
    header = header.ljust(117) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 64)
    error = _refused(folder)
    assert str(error) == _message(
        "the aligned model cannot be loaded (ValueError: mmap length is greater than file size)", folder.resolve(),
        "give a complete folder written by `mmgene train` or AlignedModel.save",
    )


def _add_channel(folder: Path, vocab_size: int) -> None:
    """A gene channel over genes 0 and 1 at the end of both routes."""
    config = json.loads((folder / "router_config.json").read_text())
    config["types"]["cell_3_GeneChannel"] = "mmgene.align.modules.gene_channel.GeneChannel"
    for route in ("cell", "text"):
        config["structure"][route].append("cell_3_GeneChannel")
    _rewrite(folder / "router_config.json", config)
    (folder / "cell_3_GeneChannel").mkdir(exist_ok=True)
    _rewrite(folder / "cell_3_GeneChannel" / "gene_channel_config.json",
             {"vocab_size": vocab_size, "channel_ids": [0, 1], "weight": 0.3, "learned_dim": 8,
              "use_mentions": True, "query_weight": None})


def test_a_gene_channel_larger_than_the_vocabulary_is_refused_before_it_allocates(hostile):
    folder, _ = hostile
    _add_channel(folder, 5)
    assert _load(folder).encode_text(["CD3D T cell"]).shape == (1, 10)
    _add_channel(folder, 20_000_000)
    config = folder / "cell_3_GeneChannel" / "gene_channel_config.json"
    error = _refused(folder)
    what = "the gene channel's vocab_size is 20000000, but the vocabulary (vocab.txt) has 5 genes"
    assert str(error) == _message(what, config.resolve())


# -- the Hub token -----------------------------------------------------------------------------------


def test_a_hub_model_is_downloaded_without_the_token_from_a_plain_http_remote_hub(remote_http_hub):  # noqa: F811
    with pytest.raises(MMGeneError):
        _load("hf://me/aligned")
    assert remote_http_hub, "the download did not go through the proxy"
    assert [auth for _, _, auth in remote_http_hub if auth] == []


def test_push_to_hub_refuses_a_plain_http_remote_hub_before_any_request(remote_http_hub, saved):  # noqa: F811
    _, model = saved
    with pytest.raises(ParameterError, match="HF_ENDPOINT http://hub.example.test is not an https:// URL") as info:
        model.push_to_hub("me/aligned")
    assert TOKEN not in str(info.value)
    assert remote_http_hub == []
