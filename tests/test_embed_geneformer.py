"""Geneformer cell embeddings against a direct transformers forward pass.

The model is a randomly initialised BertForMaskedLM of Geneformer V1's shape (real V1 vocabulary of
25,426 tokens, 2,048 positions, ReLU, pad 0) shrunk to 3 layers of width 64 so the tests run in
seconds; the dictionaries are the real V1 ones and the cells are 40 real PBMC 3k cells.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mmgene.errors import DataError, ModelError, ParameterError, RemoteError  # noqa: E402

N_LAYERS = 3
V1_VOCAB = 25_426


def _config(**overrides):
    params = dict(
        vocab_size=V1_VOCAB,
        hidden_size=64,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=2048,
        hidden_act="relu",
        pad_token_id=0,
        hidden_dropout_prob=0.02,
        attention_probs_dropout_prob=0.02,
    )
    params.update(overrides)
    return transformers.BertConfig(**params)


def _save_model(folder, seed=0, **overrides):
    torch.manual_seed(seed)
    model = transformers.BertForMaskedLM(_config(**overrides)).eval()
    model.save_pretrained(folder)
    return model


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gf_v1_tiny")
    _save_model(folder)
    return folder


@pytest.fixture(scope="module")
def reference_model(model_dir):
    """The same checkpoint loaded independently, as Geneformer's extractor does (BertForMaskedLM)."""
    return transformers.BertForMaskedLM.from_pretrained(str(model_dir)).eval()


@pytest.fixture(scope="module")
def dicts(geneformer_v1_dir):
    from mmgene.cells import load_dictionaries

    return load_dictionaries(geneformer_v1_dir, version="V1")


@pytest.fixture
def cells40(pbmc3k):
    """40 real PBMC 3k cells spread over the file (all cell types present)."""
    return pbmc3k[np.linspace(0, pbmc3k.n_obs - 1, 40).astype(int)].copy()


def _reference(model, ids, hidden_index):
    """Geneformer's pooling done by hand: one unpadded forward pass, mean of hidden_states[index]."""
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor(np.asarray(ids, dtype=np.int64))[None], output_hidden_states=True)
    assert len(out.hidden_states) == N_LAYERS + 1  # embeddings + one per layer
    return out.hidden_states[hidden_index][0].mean(dim=0).numpy()


def _tokens(adata, dicts):
    from mmgene.cells import rank_encode

    return rank_encode(adata, dictionaries=dicts)


def test_matches_direct_forward_pass(cells40, model_dir, reference_model, dicts):
    from mmgene.embed import geneformer

    geneformer(cells40, model_dir, dictionaries=dicts, batch_size=7, device="cpu")
    X = cells40.obsm["X_geneformer"]
    assert X.shape == (40, 64) and X.dtype == np.float32
    assert cells40.obs["mmgene_geneformer_ok"].all()
    enc = _tokens(cells40, dicts)
    assert len(set(map(len, enc.input_ids))) > 5  # lengths vary, so batches really are padded
    for i in range(cells40.n_obs):
        expected = _reference(reference_model, enc.input_ids[i], N_LAYERS - 1)
        np.testing.assert_allclose(X[i], expected, rtol=1e-5, atol=2e-5)


def test_original_order_is_restored(cells40, model_dir, dicts):
    from mmgene.embed import geneformer

    perm = np.random.default_rng(3).permutation(cells40.n_obs)
    shuffled = cells40[perm].copy()
    geneformer(cells40, model_dir, dictionaries=dicts, batch_size=8, device="cpu")
    geneformer(shuffled, model_dir, dictionaries=dicts, batch_size=8, device="cpu")
    np.testing.assert_allclose(shuffled.obsm["X_geneformer"], cells40.obsm["X_geneformer"][perm], atol=2e-5)
    # rows really differ between cells, so a mixed-up order could not pass
    assert np.abs(cells40.obsm["X_geneformer"][0] - cells40.obsm["X_geneformer"][1]).max() > 1e-3


def test_padding_independence(cells40, model_dir, dicts):
    from mmgene.embed import geneformer
    from mmgene.embed.geneformer_model import load_model
    from mmgene.embed.geneformer_pool import embed_sequences

    small = cells40[:12].copy()
    results = []
    for bs in (1, 5, 12):
        geneformer(small, model_dir, dictionaries=dicts, batch_size=bs, device="cpu")
        results.append(small.obsm["X_geneformer"].copy())
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-5, atol=2e-5)
    # unsorted batches pad short cells next to long ones: still the same vectors
    seqs = _tokens(small, dicts).input_ids
    module = load_model(model_dir).module
    unsorted = embed_sequences(module, seqs, batch_size=4, sort=False)
    np.testing.assert_allclose(unsorted, results[0], rtol=1e-5, atol=2e-5)


def test_layer_semantics(cells40, model_dir, reference_model, dicts):
    from mmgene.embed import geneformer
    from mmgene.embed.geneformer_model import hidden_states_index

    assert [hidden_states_index(layer, N_LAYERS) for layer in (0, -1, -2, -3)] == [3, 2, 1, 0]
    few = cells40[:4].copy()
    ids = _tokens(few, dicts).input_ids
    seen = {}
    for layer in (0, -1, -3):
        geneformer(few, model_dir, dictionaries=dicts, layer=layer, device="cpu")
        assert few.uns["mmgene"]["X_geneformer"]["hidden_states_index"] == N_LAYERS + layer
        for i in range(few.n_obs):
            expected = _reference(reference_model, ids[i], N_LAYERS + layer)
            np.testing.assert_allclose(few.obsm["X_geneformer"][i], expected, rtol=1e-5, atol=2e-5)
        seen[layer] = few.obsm["X_geneformer"].copy()
    # the default is the second-to-last layer, not the last one
    assert np.abs(seen[0] - seen[-1]).max() > 1e-3
    for bad in (1, -(N_LAYERS + 1), 0.5, True):
        with pytest.raises(ParameterError, match="layer"):
            geneformer(few, model_dir, dictionaries=dicts, layer=bad, device="cpu")


def test_unencodable_cells_are_nan_and_listed(cells40, model_dir, dicts):
    from mmgene.embed import geneformer

    small = cells40[:6].copy()
    in_vocab = small.var["ensembl_id"].astype(str).str.upper().isin(set(dicts.token_ids)).to_numpy()
    assert (~in_vocab).any()
    X = small.X.toarray()
    outside = np.flatnonzero(~in_vocab)[:3]
    X[2] = 0
    X[2, outside] = [4, 2, 1]  # cell 2 expresses only genes Geneformer V1 does not know
    import scipy.sparse as sp

    small.X = sp.csr_matrix(X)
    geneformer(small, model_dir, dictionaries=dicts, device="cpu")
    emb = small.obsm["X_geneformer"]
    assert np.isnan(emb[2]).all()
    assert np.isfinite(np.delete(emb, 2, axis=0)).all()
    assert small.obs["mmgene_geneformer_ok"].tolist() == [True, True, False, True, True, True]
    entry = small.uns["mmgene"]["X_geneformer"]
    assert list(entry["empty_cells"]) == [small.obs_names[2]]
    assert entry["n_encoded"] == 5

    small.X = sp.csr_matrix(np.where(in_vocab[None, :], 0, X))
    with pytest.raises(DataError, match="none of the 6 cells"):
        geneformer(small, model_dir, dictionaries=dicts, device="cpu")


def test_provenance_and_h5ad_round_trip(cells40, model_dir, dicts, tmp_path):
    import anndata as ad

    from mmgene.embed import geneformer

    small = cells40[:5].copy()
    returned = geneformer(small, model_dir, dictionaries=dicts, device="cpu", copy=True)
    assert "X_geneformer" not in small.obsm  # copy=True leaves the input alone
    entry = returned.uns["mmgene"]["X_geneformer"]
    assert entry["model"] == str(model_dir)
    assert entry["model_source"] == "local"
    assert len(entry["revision"]) == 64 and int(entry["revision"], 16) >= 0  # sha256 of the weights
    assert (entry["layer"], entry["hidden_states_index"], entry["n_layers"]) == (-1, N_LAYERS - 1, N_LAYERS)
    assert (entry["pooling"], entry["dictionary_version"], entry["vocab_size"]) == ("mean", "V1", V1_VOCAB)
    assert entry["device"] == "cpu" and entry["dtype"] == "float32"
    assert "torch" in entry["versions"] and "transformers" in entry["versions"]
    again = geneformer(small, model_dir, dictionaries=dicts, device="cpu", copy=True)
    assert again.uns["mmgene"]["X_geneformer"]["revision"] == entry["revision"]
    np.testing.assert_array_equal(again.obsm["X_geneformer"], returned.obsm["X_geneformer"])  # deterministic
    path = tmp_path / "out.h5ad"
    returned.write_h5ad(path)
    back = ad.read_h5ad(path)
    np.testing.assert_array_equal(back.obsm["X_geneformer"], returned.obsm["X_geneformer"])
    assert back.uns["mmgene"]["X_geneformer"]["revision"] == entry["revision"]


def test_vocabulary_mismatch_is_refused(cells40, tmp_path, dicts):
    from mmgene.embed import geneformer

    small = cells40[:3].copy()
    _save_model(tmp_path / "v2like", vocab_size=20_275)
    with pytest.raises(ModelError, match="20,275 tokens but the token dictionary has 25,426") as err:
        geneformer(small, tmp_path / "v2like", dictionaries=dicts, device="cpu")
    assert "version='V2'" in str(err.value)
    _save_model(tmp_path / "odd", vocab_size=25_000)
    with pytest.raises(ModelError, match="25,000 tokens"):
        geneformer(small, tmp_path / "odd", dictionaries=dicts, device="cpu")
    _save_model(tmp_path / "pad1", pad_token_id=1)
    with pytest.raises(ModelError, match="pad token id is 1"):
        geneformer(small, tmp_path / "pad1", dictionaries=dicts, device="cpu")
    _save_model(tmp_path / "short", max_position_embeddings=64)
    with pytest.raises(ModelError, match="at most 64"):
        geneformer(small, tmp_path / "short", dictionaries=dicts, device="cpu")
    assert "X_geneformer" not in small.obsm


def test_bad_arguments(cells40, model_dir, dicts):
    from mmgene.embed import geneformer

    small = cells40[:2].copy()
    cases = [
        (dict(pooling="max"), "pooling"),
        (dict(pooling="cls"), "<cls>"),  # V1 has no <cls> token
        (dict(batch_size=0), "batch_size"),
        (dict(device="nonsense"), "device"),
        (dict(dtype="int8"), "dtype"),
        (dict(version="V2"), "version"),
    ]
    for kwargs, pattern in cases:
        kwargs.setdefault("device", "cpu")
        with pytest.raises(ParameterError, match=pattern):
            geneformer(small, model_dir, dictionaries=dicts, **kwargs)
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA"):
            geneformer(small, model_dir, dictionaries=dicts, device="cuda")


def test_bad_checkpoints(cells40, model_dir, tmp_path, dicts):
    from mmgene.embed import geneformer

    small = cells40[:2].copy()
    with pytest.raises(ModelError, match="no model folder at"):
        geneformer(small, str(tmp_path / "missing" / "model"), dictionaries=dicts)
    with pytest.raises(ModelError, match="is a file"):
        geneformer(small, model_dir / "config.json", dictionaries=dicts)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        geneformer(small, tmp_path / "empty", dictionaries=dicts)
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": V1_VOCAB}))
    with pytest.raises(ModelError, match="not BERT"):
        geneformer(small, gpt, dictionaries=dicts)
    noweights = tmp_path / "noweights"
    noweights.mkdir()
    (noweights / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(ModelError, match="no weights"):
        geneformer(small, noweights, dictionaries=dicts)
    with pytest.raises(ParameterError, match="revision"):
        geneformer(small, model_dir, dictionaries=dicts, revision="main")


class _RunsCode:
    """A pickled object that would run code when unpickled (here: write a file)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.path), "ran"))


def test_a_pickled_weights_file_with_objects_is_refused_and_never_run(cells40, model_dir, tmp_path, dicts):
    import pickle

    from mmgene.embed import geneformer
    from mmgene.errors import UnsafeModelError

    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "config.json").write_text((model_dir / "config.json").read_text())
    witness = tmp_path / "witness.txt"
    (evil / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": _RunsCode(str(witness))}))
    with pytest.raises(UnsafeModelError, match="holds Python objects besides tensors") as err:
        geneformer(cells40[:2].copy(), evil, dictionaries=dicts)
    assert not witness.exists() and "weights_only" not in str(err.value)


def test_hub_id_offline_without_cache(cells40, dicts, tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 (set for all tests) and an empty cache: a clear error, no network."""
    from huggingface_hub import constants

    from mmgene.embed import geneformer
    from mmgene.errors import RemoteError

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RemoteError, match="not in the local cache"):
        geneformer(cells40[:2].copy(), "hf://ctheodoris/Geneformer/gf-6L-30M-i2048", dictionaries=dicts)


def test_cli(cells40, model_dir, geneformer_v1_dir, tmp_path):
    import anndata as ad
    from typer.testing import CliRunner

    from mmgene.cli.app import app
    from mmgene.embed import geneformer

    small = cells40[:5].copy()
    src = tmp_path / "cells.h5ad"
    small.write_h5ad(src)
    out = tmp_path / "embedded.h5ad"
    args = ["embed", "geneformer", str(src), "--model", str(model_dir), "--dictionaries", str(geneformer_v1_dir),
            "--batch-size", "2", "--device", "cpu", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "X_geneformer" in result.output and "5 cells encoded" in result.output
    back = ad.read_h5ad(out)
    geneformer(small, model_dir, dictionaries=geneformer_v1_dir, device="cpu")
    np.testing.assert_allclose(back.obsm["X_geneformer"], small.obsm["X_geneformer"], atol=1e-6)
    assert "X_geneformer" not in ad.read_h5ad(src).obsm  # --out leaves the input file alone

    bad = CliRunner().invoke(app, args[:5] + ["--layer", "4", "--out", str(tmp_path / "other.h5ad")])
    assert isinstance(bad.exception, ParameterError) and "layer=4" in str(bad.exception)


def test_cli_error_is_one_line_and_status_2(model_dir, tmp_path, monkeypatch, capsys):
    from mmgene.cli.app import main

    monkeypatch.setattr("sys.argv", ["mmgene", "embed", "geneformer", str(tmp_path / "none.h5ad"), "--model", str(model_dir)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmgene: error:") and "\n" not in err and "Traceback" not in err


def test_hub_id_downloads_one_folder_then_works_offline(cells40, model_dir, dicts, tmp_path, monkeypatch):
    """A hub id ``hf://owner/repo/subfolder`` against the loopback Hub: only that folder's config and
    weights are fetched, the commit is recorded, and the cached copy is used offline."""
    from huggingface_hub import HfApi, constants
    from servers.hub_server import hub_for_this_process

    from mmgene.embed import geneformer

    small = cells40[:4].copy()
    geneformer(small, model_dir, dictionaries=dicts, device="cpu")
    local = small.obsm["X_geneformer"].copy()
    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as server:
        api = HfApi(endpoint=server.url, token=server.token)
        repo = api.create_repo("gf-tiny").repo_id
        api.upload_folder(repo_id=repo, folder_path=str(model_dir), path_in_repo="gf-3L-64h")
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "model.safetensors").write_bytes(b"\0" * 1024)
        api.upload_folder(repo_id=repo, folder_path=str(tmp_path / "other"), path_in_repo="gf-other")
        commit = api.model_info(repo).sha

        geneformer(small, f"hf://{repo}/gf-3L-64h", dictionaries=dicts, device="cpu")
        fetched = {raw.split("/resolve/", 1)[1].split("/", 1)[1] for method, raw, _ in server.app.log if "/resolve/" in raw and method == "GET"}
        assert fetched == {"gf-3L-64h/config.json", "gf-3L-64h/model.safetensors"}
    entry = small.uns["mmgene"]["X_geneformer"]
    assert (entry["model"], entry["model_source"], entry["revision"]) == (f"hf://{repo}/gf-3L-64h", "hub", commit)
    np.testing.assert_array_equal(small.obsm["X_geneformer"], local)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # server gone: the cached snapshot is enough
    again = geneformer(small, f"hf://{repo}/gf-3L-64h", dictionaries=dicts, device="cpu", copy=True)
    assert again.uns["mmgene"]["X_geneformer"]["revision"] == commit
    np.testing.assert_array_equal(again.obsm["X_geneformer"], local)
    with pytest.raises(ModelError, match="no weights"):
        geneformer(small, f"hf://{repo}/no-such-folder", dictionaries=dicts, device="cpu")


@pytest.fixture(scope="module")
def v2_like(tmp_path_factory, dicts):
    """V2-style dictionaries (``<cls>``=2, ``<eos>``=3, genes after them) built from the real V1 genes,
    and a matching tiny model: exercises V2 pooling without the V2 files."""
    from mmgene.cells import GeneformerDictionaries

    genes = {g: i + 2 for g, i in dicts.token_ids.items() if not g.startswith("<")}
    tokens = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3, **genes}
    v2 = GeneformerDictionaries(tokens, dicts.medians, dicts.name_to_id, None, "V2")
    folder = tmp_path_factory.mktemp("gf_v2_tiny")
    model = _save_model(folder, seed=1, vocab_size=len(tokens), max_position_embeddings=4096)
    return v2, folder, model


def test_v2_pooling_leaves_out_cls_and_eos(cells40, v2_like):
    from mmgene.embed import geneformer

    v2, folder, model = v2_like
    few = cells40[:5].copy()
    ids = _tokens(few, v2).input_ids
    assert all(s[0] == v2.cls_id and s[-1] == v2.eos_id for s in ids)
    geneformer(few, folder, dictionaries=v2, device="cpu", batch_size=2)
    mean = few.obsm["X_geneformer"].copy()
    geneformer(few, folder, dictionaries=v2, device="cpu", batch_size=2, pooling="cls")
    cls = few.obsm["X_geneformer"]
    assert few.uns["mmgene"]["X_geneformer"]["dictionary_version"] == "V2"
    for i, seq in enumerate(ids):
        with torch.no_grad():
            hidden = model(input_ids=torch.as_tensor(seq.astype(np.int64))[None], output_hidden_states=True).hidden_states
        layer = hidden[N_LAYERS - 1][0].numpy()
        np.testing.assert_allclose(mean[i], layer[1:-1].mean(axis=0), rtol=1e-5, atol=2e-5)
        np.testing.assert_allclose(cls[i], layer[0], rtol=1e-5, atol=2e-5)
        assert np.abs(mean[i] - layer.mean(axis=0)).max() > 1e-4  # <cls>/<eos> really are left out


def test_bfloat16_runs_and_pools_in_float32(cells40, model_dir, dicts):
    from mmgene.embed import geneformer

    few = cells40[:4].copy()
    geneformer(few, model_dir, dictionaries=dicts, device="cpu")
    full = few.obsm["X_geneformer"].copy()
    geneformer(few, model_dir, dictionaries=dicts, device="cpu", dtype="bf16")
    half = few.obsm["X_geneformer"]
    assert half.dtype == np.float32 and few.uns["mmgene"]["X_geneformer"]["dtype"] == "bfloat16"
    assert np.abs(half - full).max() < 0.05 * np.abs(full).max()
    assert np.abs(half - full).max() > 0  # really ran in bfloat16


def test_cli_takes_a_hub_id_for_the_dictionaries(cells40, model_dir, tmp_path):
    """``--dictionaries hf://owner/name`` reaches the loader as written (a path option made it 'hf:/owner/name')."""
    from typer.testing import CliRunner

    from mmgene.cli.app import app

    src = tmp_path / "cells.h5ad"
    cells40[:3].copy().write_h5ad(src)
    out = tmp_path / "embedded.h5ad"
    result = CliRunner().invoke(app, ["embed", "geneformer", str(src), "--model", str(model_dir), "--dictionaries",
                                      "hf://owner/dicts", "--device", "cpu", "--out", str(out)])
    assert result.exit_code != 0 and not out.exists()
    assert isinstance(result.exception, RemoteError)  # offline in tests: it tried the Hub repository named
    assert "from the hub repository owner/dicts" in str(result.exception)


def test_a_checkpoint_linking_out_of_its_folder_is_refused_before_reading(cells40, model_dir, tmp_path, dicts):
    from mmgene.embed import geneformer
    from mmgene.errors import UnsafeModelError

    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "config.json").write_text((model_dir / "config.json").read_text())
    outside = tmp_path / "my_results.safetensors"
    outside.write_bytes((model_dir / "model.safetensors").read_bytes())
    (linked / "model.safetensors").symlink_to(outside)
    with pytest.raises(UnsafeModelError, match="outside the model folder") as err:
        geneformer(cells40[:2].copy(), linked, dictionaries=dicts)
    assert err.value.where == str(linked / "model.safetensors")
