"""Audit of the Geneformer embedding's bad-input handling: damaged or incomplete checkpoints, and the
``version`` argument written in lower case. Reuses the tiny random V1 model of test_embed_geneformer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mmgene.errors import ModelError  # noqa: E402
from test_embed_geneformer import N_LAYERS, _one_thread, _reference, _tokens, cells40, dicts, model_dir  # noqa: E402,F401


def _copy(model_dir, dest):
    shutil.copytree(model_dir, dest)
    return dest


def _refused_unchanged(adata, folder, dicts, match):
    """``geneformer`` raises a ModelError matching ``match`` and leaves ``adata`` as it was."""
    from mmgene.embed import geneformer

    uns, obs = repr(dict(adata.uns)), list(adata.obs.columns)
    with pytest.raises(ModelError, match=match):
        geneformer(adata, folder, dictionaries=dicts, device="cpu")
    assert "X_geneformer" not in adata.obsm
    assert (repr(dict(adata.uns)), list(adata.obs.columns)) == (uns, obs)


def test_damaged_weight_files_are_a_model_error(cells40, model_dir, dicts, tmp_path):
    """A truncated safetensors file, a .bin that is no pickle and an empty .bin: a ModelError naming the
    reader's complaint (they raised SafetensorError, KeyError and EOFError)."""
    small = cells40[:2].copy()
    cut = _copy(model_dir, tmp_path / "cut")
    raw = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(raw[:5000])
    _refused_unchanged(small, cut, dicts, r"weights cannot be loaded \(SafetensorError: .*header")
    for name, data, error in (("garbage", b"hello" * 100, "KeyError"), ("empty", b"", "EOFError")):
        folder = _copy(model_dir, tmp_path / name)
        (folder / "model.safetensors").unlink()
        (folder / "pytorch_model.bin").write_bytes(data)
        _refused_unchanged(small, folder, dicts, rf"weights cannot be loaded \({error}")


def test_weights_missing_tensors_are_refused_not_made_random(cells40, model_dir, dicts, tmp_path):
    """transformers fills tensors the weights lack with random values: a config that claims more layers
    than were saved, a weights file that lost one tensor, or one of another model, embedded silently."""
    from safetensors.torch import load_file, save_file

    small = cells40[:3].copy()
    deeper = _copy(model_dir, tmp_path / "deeper")
    config = json.loads((deeper / "config.json").read_text())
    (deeper / "config.json").write_text(json.dumps({**config, "num_hidden_layers": N_LAYERS + 3}))
    _refused_unchanged(small, deeper, dicts, r"lack 48 tensors .*'encoder\.layer\.3\.attention\.output\.LayerNorm\.bias'")

    lost = _copy(model_dir, tmp_path / "lost")
    tensors = load_file(lost / "model.safetensors")
    del tensors["bert.encoder.layer.1.output.dense.weight"]
    save_file(tensors, lost / "model.safetensors", metadata={"format": "pt"})
    _refused_unchanged(small, lost, dicts, r"lack 1 tensors .*\('encoder\.layer\.1\.output\.dense\.weight'\)")

    other = _copy(model_dir, tmp_path / "other")
    save_file({"foo": torch.zeros(2)}, other / "model.safetensors", metadata={"format": "pt"})
    _refused_unchanged(small, other, dicts, r"lack 53 tensors")


def test_version_is_case_insensitive_with_a_dictionaries_object(cells40, model_dir, dicts):
    """``version='v1'`` with V1 dictionaries given as an object: the V1 embedding (it was refused as
    "version='v1' but the dictionaries given are V1"; a folder of dictionaries took 'v1')."""
    import transformers as tf

    from mmgene.embed import geneformer

    few = cells40[:3].copy()
    geneformer(few, model_dir, dictionaries=dicts, version="v1", device="cpu", batch_size=2)
    assert few.uns["mmgene"]["X_geneformer"]["dictionary_version"] == "V1"
    reference = tf.BertForMaskedLM.from_pretrained(str(model_dir)).eval()
    ids = _tokens(few, dicts).input_ids
    for i in range(few.n_obs):
        expected = _reference(reference, ids[i], N_LAYERS - 1)
        np.testing.assert_allclose(few.obsm["X_geneformer"][i], expected, rtol=1e-5, atol=2e-5)
