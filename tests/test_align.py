"""The aligned text-cell model: routing, loss, a few training steps, save/load in a fresh process, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import re
import sys
import textwrap

import numpy as np
import pytest
import torch
from hostile import assert_refused

from mmgene.align.config import CORPUS_DEFAULTS, AlignConfig, ModelConfig, TrainingConfig
from mmgene.errors import InputFileError, ModelError, ParameterError
from mmgene.pairs.config import PairsConfig


@pytest.fixture(scope="module")
def small_pbmc(pbmc3k_path):
    """300 PBMC 3k cells (seeded), enough for a few training steps."""
    import mmgene.io

    adata = mmgene.io.read(pbmc3k_path)
    keep = np.sort(np.random.default_rng(0).choice(adata.n_obs, 300, replace=False))
    return adata[keep].copy()


@pytest.fixture(scope="module")
def trained(small_pbmc, tmp_path_factory):
    from mmgene.align import train

    out = tmp_path_factory.mktemp("model") / "aligned"
    model = train(
        small_pbmc,
        ["cell_type", "cell_type_cl_name"],
        ontology_col="cell_type_ontology_term_id",
        out=out,
        pairs=PairsConfig(max_genes=128, captions_per_cell=1),
        model=ModelConfig(gene_dim=32, dim=32, gene_bridge=False),
        training=TrainingConfig(max_steps=6, batch_size=32, eval_steps=3, seed=0),
    )
    return model, out


class _Fixed(torch.nn.Module):
    """A stand-in model: the 'sentence_embedding' of a column is its given 'x'."""

    def forward(self, features):
        return {"sentence_embedding": torch.nn.functional.normalize(features["x"], dim=-1)}


def _reference_loss(cells, texts, labels, scale):
    cells = cells / np.linalg.norm(cells, axis=1, keepdims=True)
    texts = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    logits = scale * cells @ texts.T
    n = len(cells)
    mask = (labels[:, None] == labels[None, :]) & ~np.eye(n, dtype=bool)
    logits = np.where(mask, -np.inf, logits)

    def ce(mat):
        return float(np.mean([-(mat[i, i] - np.log(np.exp(mat[i][np.isfinite(mat[i])]).sum())) for i in range(n)]))

    return (ce(logits) + ce(logits.T)) / 2


def test_symmetric_infonce_matches_reference_and_masks_same_label():
    from mmgene.align.loss import SymmetricInfoNCELoss

    rng = np.random.default_rng(0)
    cells = rng.normal(size=(5, 4)).astype(np.float32)
    texts = rng.normal(size=(5, 4)).astype(np.float32)
    labels = np.array([0, 0, 1, 2, 2])
    loss = SymmetricInfoNCELoss(_Fixed(), temperature=0.1)
    got = loss([{"x": torch.tensor(cells)}, {"x": torch.tensor(texts)}], torch.tensor(labels))
    assert got.item() == pytest.approx(_reference_loss(cells, texts, labels, 10.0), rel=1e-5)
    unmasked = SymmetricInfoNCELoss(_Fixed(), temperature=0.1, mask_same_label=False)
    got2 = unmasked([{"x": torch.tensor(cells)}, {"x": torch.tensor(texts)}], torch.tensor(labels))
    assert got2.item() == pytest.approx(_reference_loss(cells, texts, np.arange(5), 10.0), rel=1e-5)
    # the temperature is a learnable parameter
    got.backward()
    assert loss.logit_scale.grad is not None
    assert loss.temperature == pytest.approx(0.1)
    assert SymmetricInfoNCELoss(_Fixed(), temperature=0.001).temperature == pytest.approx(0.01)  # CLIP clamp


def test_symmetric_infonce_masks_negatives_of_the_cells_own_class():
    """Row j's negative caption describing cell i's class is not a negative of cell i."""
    from mmgene.align.loss import SymmetricInfoNCELoss

    rng = np.random.default_rng(1)
    cells, texts, negs = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
    own = np.array([0, 1, 2, 2])
    negative_of = np.array([1, 2, 0, 1])
    unit = [m / np.linalg.norm(m, axis=1, keepdims=True) for m in (cells, texts, negs)]
    logits = 10.0 * unit[0] @ np.concatenate([unit[1], unit[2]]).T  # (4, 8): captions, then negatives
    same = (own[:, None] == own[None, :]) & ~np.eye(4, dtype=bool)
    mask = np.concatenate([same, own[:, None] == negative_of[None, :]], axis=1)
    assert mask[0, 6] and mask[1, 4] and mask[1, 7] and mask[2, 5] and mask[3, 5]
    masked = np.where(mask, -np.inf, logits)

    def ce(mat):
        return float(np.mean([np.log(np.exp(row[np.isfinite(row)]).sum()) - row[i] for i, row in enumerate(mat)]))

    expected = (ce(masked) + ce(masked[:, :4].T)) / 2
    feats = [{"x": torch.tensor(m)} for m in (cells, texts, negs)]
    loss = SymmetricInfoNCELoss(_Fixed(), temperature=0.1)
    assert loss(feats, torch.tensor(np.stack([own, negative_of], 1))).item() == pytest.approx(expected, rel=1e-5)
    # with class ids only, every negative stays in the softmax
    plain = np.where(np.concatenate([same, np.zeros((4, 4), bool)], axis=1), -np.inf, logits)
    assert loss(feats, torch.tensor(own)).item() == pytest.approx((ce(plain) + ce(plain[:, :4].T)) / 2, rel=1e-5)


def test_training_saves_history_and_encodes_into_one_space(trained, small_pbmc):
    model, out = trained
    assert (out / "mmgene_align.json").exists() and (out / "modules.json").exists()
    hist = model.meta["eval_history"]
    assert [h["steps"] for h in hist] == [3, 6]
    assert 0.0 <= hist[-1]["zero_shot_balanced_accuracy"] <= 1.0
    text = model.encode_text(["a B cell", "CD14+ monocyte"])
    cells = model.encode_cells(small_pbmc[:7])
    assert text.shape == (2, 32) and cells.shape == (7, 32)
    assert text.dtype == np.float32 and cells.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cells, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)
    assert model.inputs == ["genes"]
    assert model.meta["run"]["steps"] == 6
    # routing by task: the same string embeds differently as text and as a cell sentence
    as_text = model.st.encode(["CD3D IL7R LTB"], task="text")
    as_cell = model.st.encode(["CD3D IL7R LTB"], task="cell")
    assert not np.allclose(as_text, as_cell)


def test_a_model_trained_with_an_ontology_column_saves_each_class_id(trained, small_pbmc):
    from mmgene.align import load
    from mmgene.query.scoring import space_vocabulary

    model, out = trained
    curated = {
        "B cells": "CL:0000236", "CD14+ Monocytes": "CL:0001054", "CD4 T cells": "CL:0000624",
        "CD8 T cells": "CL:0000625", "Dendritic cells": "CL:0000451", "FCGR3A+ Monocytes": "CL:0002396",
        "Megakaryocytes": "CL:0000556", "NK cells": "CL:0000623",
    }
    classes = sorted(set(small_pbmc.obs["cell_type"].astype(str)))
    expected = [curated[c] for c in classes]
    assert model.meta["classes"] == classes and model.meta["class_ids"] == expected
    assert load(out).meta["class_ids"] == expected
    # annotate's hierarchy and others rule now see every class, not only those named like a term
    assert space_vocabulary(model) == list(zip(classes, expected))


def test_the_training_config_is_saved_loaded_and_shown_in_the_card(trained, tmp_path):
    from mmgene.align import load
    from mmgene.align.card import card_values, render_model_card

    model, out = trained
    config = model.config
    assert config.pairs == PairsConfig(max_genes=128, captions_per_cell=1)
    assert config.model == ModelConfig(gene_dim=32, dim=32, gene_bridge=False, query_channel=0.5)
    # the saved config says what ran: one AnnData trains without hard negatives and encodes at 0.5 when none is given
    assert config.training == TrainingConfig(max_steps=6, batch_size=32, eval_steps=3, seed=0, hard_negatives=0)
    saved = json.loads((out / "mmgene_align.json").read_text())
    assert saved["config"] == json.loads(json.dumps(config.to_dict())) and saved["config"]["training"]["epochs"] == 3.0
    again = load(out)
    assert again.config == config and "config" not in again.meta
    assert AlignConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config  # tuples come back from JSON lists
    card = render_model_card(model, "me/pbmc")
    assert "| ModelConfig | `gene_bridge` | off |" in card and "| PairsConfig | `panel_sizes` | 500, 1000, 2000 |" in card
    assert "| TrainingConfig | `max_steps` | 6 |" in card
    assert card_values(model, "me/pbmc")["n_train_pairs"] == model.meta["train_cells"]
    # a folder whose mmgene_align.json records flat 'params' and no config loads; its card says so
    legacy = tmp_path / "legacy"
    import shutil

    shutil.copytree(out, legacy)
    meta = {k: v for k, v in saved.items() if k != "config"}
    meta["params"] = {"loss": "clip", "epochs": 4.0, "batch_size": 32, "learning_rate": 0.002, "seed": 0, "captions_per_cell": 1}
    (legacy / "mmgene_align.json").write_text(json.dumps(meta))
    old = load(legacy)
    assert old.config is None and old.meta["params"]["epochs"] == 4.0
    text = render_model_card(old, "me/old")
    assert "| epochs | 4.0 |" in text and "not recorded" in text
    # fields added to a config after a model was saved take their defaults; an unknown field is refused
    meta["config"] = {"pairs": {}, "model": {}, "training": {}}
    (legacy / "mmgene_align.json").write_text(json.dumps(meta))
    assert load(legacy).config == AlignConfig()
    meta["config"] = {"pairs": {}, "model": {}, "training": {"no_such_field": 1}}
    (legacy / "mmgene_align.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="training config mmgene cannot read"):
        load(legacy)


def test_config_defaults_are_the_benchmarked_configuration():
    """One set of defaults for the library, the CLI, the demo and benchmarks/quality_pbmc.py."""
    from dataclasses import fields

    config = AlignConfig()
    assert (config.training.epochs, config.model.gene_channel) == (3.0, 0.3)
    # left to the trainer: hard negatives 5 for a corpus in memory, else 0; encoding weight 0.7 for a corpus, else 0.5
    assert (config.training.hard_negatives, config.model.query_channel) == (None, None)
    assert (config.pairs.max_genes, config.pairs.panel_share, config.model.gene_bridge) == (256, 0.3, True)
    names = [f.name for section in fields(config) for f in fields(getattr(config, section.name))]
    assert len(names) == len(set(names))  # the CLI routes each option to its config by field name


def test_cli_train_has_one_option_per_config_field_with_the_field_default_in_its_help():
    import inspect
    from dataclasses import fields

    from mmgene.cli.align import train_command

    parameters = inspect.signature(train_command).parameters
    for section in fields(AlignConfig):
        for f in fields(getattr(AlignConfig(), section.name)):
            option = parameters[f.name].default
            assert option.default is None, f.name  # unset: the config's default applies
            assert option.help.startswith(f.metadata["help"]) and "(default: " in option.help


def test_cells_transfer_to_a_smaller_gene_set(trained, small_pbmc):
    model, _ = trained
    fewer = small_pbmc[:5, small_pbmc.var_names[:2000]].copy()
    emb = model.encode_cells(fewer, key_added="X_aligned")
    assert emb.shape == (5, 32) and np.isfinite(emb).all()
    assert fewer.uns["mmgene"]["X_aligned"]["inputs"] == ["genes"]


def test_save_and_load_in_a_fresh_process_encode_identically(trained, small_pbmc, tmp_path):
    model, out = trained
    sub = small_pbmc[:9].copy()
    h5 = tmp_path / "cells.h5ad"
    sub.write_h5ad(h5)
    before_cells = model.encode_cells(sub)
    before_text = model.encode_text(["natural killer cell", "a cell expressing MS4A1"])
    script = textwrap.dedent(
        f"""
        import numpy as np, anndata as ad, mmgene.io
        from mmgene.align import load
        m = load({str(out)!r})
        a = mmgene.io.read({str(h5)!r})
        np.save({str(tmp_path / 'cells.npy')!r}, m.encode_cells(a))
        np.save({str(tmp_path / 'text.npy')!r}, m.encode_text(["natural killer cell", "a cell expressing MS4A1"]))
        """
    )
    env = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MMGENE_QUIET": "1", "PATH": ""}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    np.testing.assert_allclose(np.load(tmp_path / "cells.npy"), before_cells, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "text.npy"), before_text, rtol=1e-5, atol=1e-6)


def test_load_refuses_bad_folders(tmp_path, trained):
    from mmgene.align import load

    with pytest.raises(ModelError, match="no model folder at"):
        load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no mmgene aligned model"):
        load(tmp_path / "empty")
    _, out = trained
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    modules = json.loads((copy / "modules.json").read_text())
    modules[0]["type"] = "evil.module.Class"
    (copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelError, match="does not load"):
        load(copy)


def test_train_bad_input(small_pbmc):
    from mmgene.align import train
    from mmgene.errors import MissingColumnError

    with pytest.raises(ParameterError, match="loss"):
        TrainingConfig(loss="triplet")
    with pytest.raises(MissingColumnError):
        train(small_pbmc, "celltype", training=TrainingConfig(max_steps=1))
    with pytest.raises(MissingColumnError):
        train(small_pbmc, "cell_type", inputs=["X_genept_w"], training=TrainingConfig(max_steps=1))


@pytest.mark.parametrize(
    "setting, value, says",
    [
        ("epochs", 0, "epochs must be a number above 0.0, got 0"),
        ("epochs", -1, "epochs must be a number above 0.0, got -1"),
        ("epochs", float("nan"), "epochs must be a number above 0.0, got nan"),
        ("epochs", float("inf"), "epochs must be a finite number above 0.0, got inf"),
        ("learning_rate", -1.0, "learning_rate must be a number above 0.0, got -1.0"),
        ("temperature", 0.0, "temperature must be a number above 0.0, got 0.0"),
        ("max_steps", 0, "max_steps must be a whole number >= 1, got 0"),
        ("max_steps", -2, "max_steps must be a whole number >= 1, got -2"),
        ("batch_size", 1, "batch_size must be a whole number >= 2, got 1"),
        ("seed", -1, "seed must be a whole number >= 0, got -1"),
        ("eval_steps", 1.5, "eval_steps must be a whole number >= 0, got 1.5"),
    ],
)
def test_training_settings_that_would_train_nothing_or_crash_are_refused(setting, value, says):
    with pytest.raises(ParameterError, match=re.escape(says)):
        TrainingConfig(**{setting: value})
    assert TrainingConfig(epochs=0.5, max_steps=-1).epochs == 0.5 and TrainingConfig(max_steps=1).max_steps == 1


def test_cli_refuses_zero_epochs_before_writing_anything(tmp_path, small_pbmc):
    h5ad = tmp_path / "small.h5ad"
    small_pbmc.write_h5ad(h5ad)
    assert_refused(["train", h5ad, "--label-col", "cell_type", "--epochs", "0", "--out", tmp_path / "model"], [tmp_path], contains="epochs")


def test_obsm_input_tower_trains_a_step(small_pbmc):
    from mmgene.align import train

    adata = small_pbmc[:120].copy()
    adata.obsm["X_pca"] = np.random.default_rng(0).normal(size=(adata.n_obs, 8)).astype(np.float32)
    model = train(
        adata,
        "cell_type",
        inputs=["X_pca"],
        pairs=PairsConfig(test_size=0.0),
        model=ModelConfig(dim=16, gene_bridge=False),
        training=TrainingConfig(max_steps=1, batch_size=16),
    )
    assert model.inputs == ["X_pca"]
    assert model.encode_cells(adata[:3]).shape == (3, 16)
    assert not math.isnan(float(model.meta["temperature"]))


def test_cli_train_and_evaluate(tmp_path, small_pbmc):
    from typer.testing import CliRunner

    from mmgene.cli.app import app

    h5 = tmp_path / "small.h5ad"
    small_pbmc[:160].copy().write_h5ad(h5)
    out = tmp_path / "m"
    runner = CliRunner()
    res = runner.invoke(app, [
        "train", str(h5), "--label-col", "cell_type", "--out", str(out), "--max-steps", "2", "--batch-size", "16", "--no-gene-bridge",
        "--species", "human", "--tissue", "blood",
    ])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "mmgene_align.json").read_text())["config"]
    # the options given override their fields; every other field keeps the config's default
    # (settings left to the trainer are recorded as run: one AnnData's defaults)
    expected = AlignConfig(
        pairs=PairsConfig(species="human", tissue="blood"),
        model=ModelConfig(gene_bridge=False, query_channel=0.5), training=TrainingConfig(max_steps=2, batch_size=16, hard_negatives=0),
    )
    assert saved == json.loads(json.dumps(expected.to_dict()))
    res = runner.invoke(app, ["evaluate", str(out), str(h5), "--label-col", "cell_type", "--no-baseline", "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "rep.json").read_text())
    assert report["n_cells"] == 160 and "macro_auroc" in report["zero_shot"]
    assert "| mmgene aligned model |" in (tmp_path / "rep.md").read_text()
    assert report["marker_baseline"]["markers_found"]["B cells"] == ["MS4A1", "CD79A"]
    res = runner.invoke(app, ["evaluate", str(out), str(h5), "--label-col", "cell_type", "--no-baseline", "--no-marker-baseline", "--out", str(tmp_path / "bare")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "bare.json").read_text())["marker_baseline"] is None
    assert "textbook marker genes" not in (tmp_path / "bare.md").read_text()
    # --refine: the model's and the marker baseline's scores are refined on the file's own components
    res = runner.invoke(app, ["evaluate", str(out), str(h5), "--label-col", "cell_type", "--no-baseline", "--refine", "--out", str(tmp_path / "ref")])
    assert res.exit_code == 0, res.output
    refined = json.loads((tmp_path / "ref.json").read_text())
    assert refined["zero_shot"]["refined"] and refined["marker_baseline"]["refined"] and not report["zero_shot"]["refined"]
    assert "Scores refined by self-training" in (tmp_path / "ref.md").read_text()
    # --weigh-types: annotate's weigh_types z-scores; not with --refine (exit 2, nothing written)
    res = runner.invoke(app, ["evaluate", str(out), str(h5), "--label-col", "cell_type", "--no-baseline", "--weigh-types", "--out", str(tmp_path / "weighed")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "weighed.json").read_text())["zero_shot"]["weigh_types"] and not report["zero_shot"]["weigh_types"]
    assert "annotate's `weigh_types` rule" in (tmp_path / "weighed.md").read_text()
    from hostile import assert_refused

    assert_refused(
        ["evaluate", out, h5, "--label-col", "cell_type", "--refine", "--weigh-types", "--out", tmp_path / "both"],
        [tmp_path], contains="refine and weigh_types cannot be combined",
    )
    # --held-out scores exactly the test side of the split the model was trained with (20% of 160)
    res = runner.invoke(app, ["evaluate", str(out), str(h5), "--label-col", "cell_type", "--no-baseline", "--held-out", "--markers", "--out", str(tmp_path / "held")])
    assert res.exit_code == 0, res.output
    held = json.loads((tmp_path / "held.json").read_text())
    assert held["n_cells"] == 32 and "held-out 32 cells" in held["dataset"]
    assert any("expressing" in p for group in held["zero_shot"]["prompts"].values() for p in group)
    # another file than the training file: a one-line error, exit 2
    h5b = tmp_path / "other.h5ad"
    small_pbmc[:100].copy().write_h5ad(h5b)
    res = runner.invoke(app, ["evaluate", str(out), str(h5b), "--label-col", "cell_type", "--no-baseline", "--held-out"])
    assert res.exit_code != 0


def test_held_out_matches_the_training_split(small_pbmc, trained):
    from mmgene.evaluate.heldout import held_out
    from mmgene.pairs.splits import cell_ids_record, split_cells

    adata = small_pbmc[:50].copy()
    _, test = split_cells(adata, test_size=0.2, seed=3)
    old = {"split": {"n_obs": 50, "test_size": 0.2, "seed": 3, "group_col": None}}  # saved before fingerprints: count only
    meta = {"split": {**old["split"], **cell_ids_record(adata.obs_names)}}
    for recorded in (old, meta):
        got = held_out(adata, recorded)
        assert list(got.obs_names) == list(adata.obs_names[test]) and got.n_obs == 10
    # training records the fingerprints of its file's cell ids
    record = cell_ids_record(small_pbmc.obs_names)
    assert {k: trained[0].meta["split"][k] for k in record} == record and len(record["obs_sha256"]) == 64
    # the same cells in another order, or one cell renamed: refused, saying which
    permuted = adata[np.random.default_rng(0).permutation(50)].copy()
    assert list(held_out(permuted, old).obs_names) != list(got.obs_names)  # what the count check alone let through
    with pytest.raises(ParameterError, match="the model's training cells in another order") as order:
        held_out(permuted, meta)
    assert "in the order it was trained on" in str(order.value)
    renamed = adata.copy()
    renamed.obs_names = [*adata.obs_names[:-1], "not-a-training-cell"]
    with pytest.raises(ParameterError, match=r"other cells \(obs names\) than the model's training file"):
        held_out(renamed, meta)
    with pytest.raises(ParameterError, match="does not record"):
        held_out(adata, {})
    with pytest.raises(ParameterError, match="test_size 0"):
        held_out(adata, {"split": {"n_obs": 50, "test_size": 0.0, "seed": 0, "group_col": None}})
    with pytest.raises(ParameterError, match="60 cells, this one has 50"):
        held_out(adata, {"split": {"n_obs": 60, "test_size": 0.2, "seed": 0, "group_col": None}})


def test_gene_text_bridge_finds_genes_by_their_names(tmp_path):
    """A query that names no gene reaches the genes whose NCBI text resembles it; saved and reloaded."""
    from sentence_transformers import SentenceTransformer

    from mmgene.align.model import default_text_model, gene_text_bridge
    from mmgene.align.modules.text_input import TextInput

    vocab = ["NKG7", "MS4A1", "CD14", "LYZ", "GNLY", "PPBP", "HBB", "NOTAGENE1"]
    encoder = SentenceTransformer(default_text_model(), device="cpu")
    ids, vectors = gene_text_bridge(encoder, vocab, vocab)
    assert ids == [0, 1, 2, 3, 4, 5, 6]  # the unknown symbol has no text and is left out
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    text_input = TextInput(encoder, {}, gene_text_ids=ids, gene_text_vectors=vectors, related_k=2)
    got = text_input.preprocess(["natural killer cell", "hemoglobin"])
    assert vocab[int(got["related_ids"][0, got["related_weights"][0].argmax()])] == "NKG7"
    assert vocab[int(got["related_ids"][1, got["related_weights"][1].argmax()])] == "HBB"
    np.testing.assert_allclose(got["related_weights"].sum(1).numpy(), 1.0, rtol=1e-5)
    text_input.save(str(tmp_path))
    again = TextInput.load(str(tmp_path))
    assert again.gene_text_ids.tolist() == ids and again.related_k == 2
    assert gene_text_bridge(encoder, vocab, []) == ([], None)


def test_hard_negatives_come_from_other_classes(trained, small_pbmc):
    from mmgene.pairs import make_pairs, mine_hard_negatives

    model, _ = trained
    pairs = make_pairs(small_pbmc[:60].copy(), "cell_type", config=PairsConfig(test_size=0.0, captions_per_cell=1, max_genes=128), seed=0)
    captions = {k: t.name_captions()[:3] for k, t in enumerate(pairs.class_text)}
    mined = mine_hard_negatives(pairs["train"], model, captions, top_k=2, seed=0)
    assert mined.column_names[:3] == ["cell", "caption", "negative"]
    for row in mined:
        assert row["negative"] not in captions[row["label"]]
    again = mine_hard_negatives(pairs["train"], model, captions, top_k=2, seed=0)
    assert again["negative"] == mined["negative"]
    with pytest.raises(ParameterError, match="two labels"):
        mine_hard_negatives(pairs["train"], model, {0: ["a"]})


def test_push_to_hub_with_model_card_then_load_by_repo_id(trained, small_pbmc, tmp_path, monkeypatch):
    """Against the loopback Hub: the folder and a rendered model card go up; load('hf://' + repo_id) encodes the same."""
    from huggingface_hub import HfApi
    from servers.hub_server import hub_for_this_process

    from mmgene.align import load

    model, _ = trained
    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as server:
        url = model.push_to_hub(f"{server.user}/pbmc-aligned", token=server.token)
        assert url.endswith("pbmc-aligned")
        api = HfApi(endpoint=server.url, token=server.token)
        files = set(api.list_repo_files(f"{server.user}/pbmc-aligned"))
        assert {"README.md", "modules.json", "mmgene_align.json"} <= files
        card = (tmp_path / "card.md")
        card.write_bytes(open(api.hf_hub_download(f"{server.user}/pbmc-aligned", "README.md"), "rb").read())
        text = card.read_text()
        assert "# pbmc-aligned" in text and "library_name: sentence-transformers" in text
        assert "balanced accuracy" in text and "{{" not in text
        assert server.token not in text
        monkeypatch.setenv("HF_TOKEN", server.token)  # the repo is private by default: reading it needs the token
        again = load(f"hf://{server.user}/pbmc-aligned")
    np.testing.assert_allclose(again.encode_cells(small_pbmc[:4]), model.encode_cells(small_pbmc[:4]), rtol=1e-5, atol=1e-6)


def test_obsm_model_refuses_inputs_without_the_obsm(small_pbmc):
    from mmgene.align.modules.cell_input import CellInput

    cell_input = CellInput([], obsm_keys=["X_pca"], obsm_dims=[2], max_genes=8, gene_dropout=0.5)
    got = cell_input.preprocess([{"X_pca": [1.0, 2.0]}])
    assert got["obsm"].tolist() == [[1.0, 2.0]]
    with pytest.raises(ParameterError, match="lacks"):
        cell_input.preprocess(["CD3D LTB"])
    genes = CellInput(["CD3D", "LTB", "LYZ"], max_genes=2, gene_dropout=0.5)
    out = genes.preprocess([{"genes": ["lyz", "CD3D", "XIST", "LTB"], "values": [1.0, 3.0, 9.0, 2.0]}, "LTB CD3D"])
    assert out["input_ids"].tolist() == [[0, 1], [1, 0]]  # top 2 known genes; a sentence ranks by position
    assert out["values"][0].tolist() == [3.0, 2.0]
    assert out["values"][1].tolist() == pytest.approx([1.0, 1 / np.log2(3)])


def test_cells_as_arrays_preprocess_exactly_as_lists():
    from sentence_transformers.base.model import BaseModel

    from mmgene.align.modules.cell_input import CellInput, for_encoding

    genes = CellInput(["CD3D", "LTB", "LYZ", "NKG7"], max_genes=2, gene_dropout=0.5)
    cells = [
        # unknown gene, a zero value, lower case, a tie at the cut (the earlier gene stays)
        {"genes": ["XIST", "lyz", "CD3D", "NKG7", "LTB"], "values": [9.0, 2.0, 0.0, 2.0, 1.5]},
        {"genes": ["LTB", "CD3D"], "values": []},  # no values: they decay with rank
        {"genes": [], "values": []},
        "NKG7 XIST LYZ",
    ]
    arrays = for_encoding(cells)
    assert isinstance(arrays[0]["genes"], np.ndarray) and arrays[3] == "NKG7 XIST LYZ"
    assert cells[0]["genes"][0] == "XIST" and isinstance(cells[0]["genes"], list)  # the input is not changed
    # sentence-transformers sizes an array at once instead of walking every element of a list
    assert BaseModel._input_length(arrays[0]) == 10
    as_lists, as_arrays = genes.preprocess(cells), genes.preprocess(arrays)
    assert as_lists["input_ids"].tolist() == [[2, 3], [1, 0], [0, 0], [3, 2]]
    np.testing.assert_allclose(as_lists["values"].numpy(), [[2.0, 2.0], [1.0, 1 / np.log2(3)], [0.0, 0.0], [1.0, 0.5]], rtol=1e-6)
    assert as_lists["attention_mask"].tolist() == [[1, 1], [1, 1], [0, 0], [1, 1]]
    for key in ("input_ids", "values", "attention_mask"):
        assert torch.equal(as_lists[key], as_arrays[key])
    # symbols met before and new ones (another case of a known gene among them) in one batch
    later = genes.preprocess([{"genes": ["Nkg7", "LYZ", "GAPDH", "ltb"], "values": [1.0, 4.0, 9.0, 2.0]}])
    assert later["input_ids"].tolist() == [[2, 1]] and later["values"].tolist() == [[4.0, 2.0]]
    # a batch with no known gene pads to one empty column, as a batch of empty cells does
    for nothing in ([{"genes": ["XIST"], "values": [3.0]}, "GAPDH"], [{"genes": [], "values": []}]):
        empty = genes.preprocess(nothing)
        assert empty["input_ids"].tolist() == [[0]] * len(nothing) and empty["attention_mask"].tolist() == [[0.0]] * len(nothing)


def test_gene_bag_equals_the_gathered_weighted_sum_and_its_gradients():
    from mmgene.align.modules.gene_table import GeneTable

    torch.manual_seed(0)
    table = GeneTable(50, 8)
    ids = torch.randint(0, 50, (4, 6))
    weight = torch.rand(4, 6, requires_grad=True)
    bag = table._bag(ids, weight)
    reference = (weight.unsqueeze(-1) * table.embedding(ids)).sum(1)
    torch.testing.assert_close(bag, reference, rtol=1e-6, atol=1e-6)
    (grad_bag,) = torch.autograd.grad(bag.square().sum(), weight)
    (grad_reference,) = torch.autograd.grad(reference.square().sum(), weight)
    torch.testing.assert_close(grad_bag, grad_reference, rtol=1e-5, atol=1e-6)


def test_gene_channel_adds_an_exact_gene_cosine():
    from mmgene.align.modules.gene_channel import GeneChannel

    channel = GeneChannel(vocab_size=5, channel_ids=[3, 1], weight=0.25, learned_dim=2)
    assert channel.get_embedding_dimension() == 4
    cell = channel(
        {
            "sentence_embedding": torch.tensor([[3.0, 4.0]]),
            "input_ids": torch.tensor([[1, 3, 4]]),
            "values": torch.tensor([[2.0, 2.0, 9.0]]),
            "attention_mask": torch.tensor([[1.0, 1.0, 1.0]]),
        }
    )["sentence_embedding"]
    text = channel(
        {
            "sentence_embedding": torch.tensor([[3.0, 4.0]]),
            "related_ids": torch.tensor([[3, 0]]),
            "related_weights": torch.tensor([[0.7, 0.3]]),
        }
    )["sentence_embedding"]
    # learned parts are equal unit vectors; cell genes (3, 1) -> (1, 1)/sqrt2; text genes -> (1, 0)
    np.testing.assert_allclose(cell.numpy(), [[0.6 * 0.75**0.5, 0.8 * 0.75**0.5, 0.5**0.5 * 0.5, 0.5**0.5 * 0.5]], rtol=1e-6)
    assert float(cell @ text.T) == pytest.approx(0.75 * 1.0 + 0.25 * 0.5**0.5, rel=1e-6)
    assert float(cell.norm()) == pytest.approx(1.0)


def test_gene_channel_counts_named_genes_only_when_asked():
    from mmgene.align.modules.gene_channel import GeneChannel

    text = {
        "sentence_embedding": torch.tensor([[3.0, 4.0], [3.0, 4.0]]),
        "related_ids": torch.tensor([[3, 0], [3, 0]]),
        "related_weights": torch.tensor([[0.7, 0.3], [0.7, 0.3]]),
        # the first text names genes 1 and 4 (4 is outside the channel), the second names nothing (padding)
        "mention_ids": torch.tensor([[1, 4], [0, 0]]),
        "mention_mask": torch.tensor([[1, 1], [0, 0]]),
    }
    on = GeneChannel(vocab_size=5, channel_ids=[3, 1], weight=1.0, learned_dim=2, use_mentions=True)
    off = GeneChannel(vocab_size=5, channel_ids=[3, 1], weight=1.0, learned_dim=2)
    genes_on = on({k: v.clone() for k, v in text.items()})["sentence_embedding"][:, 2:]
    genes_off = off({k: v.clone() for k, v in text.items()})["sentence_embedding"][:, 2:]
    # named: gene 3 gets 0.7, gene 1 gets 0.5 (half of the named share; gene 4 is dropped) -> normalised
    np.testing.assert_allclose(genes_on[0].numpy(), np.array([0.7, 0.5]) / np.hypot(0.7, 0.5), rtol=1e-6)
    np.testing.assert_allclose(genes_on[1].numpy(), [1.0, 0.0], atol=1e-7)  # nothing named: unchanged
    np.testing.assert_allclose(genes_off.numpy(), [[1.0, 0.0], [1.0, 0.0]], atol=1e-7)
    assert "use_mentions" in GeneChannel.config_keys


def test_gene_channel_query_weight_applies_when_encoding(tmp_path):
    from mmgene.align.modules.gene_channel import GeneChannel

    cell = {
        "sentence_embedding": torch.tensor([[3.0, 4.0]]),
        "input_ids": torch.tensor([[1, 3, 4]]),
        "values": torch.tensor([[2.0, 2.0, 9.0]]),
        "attention_mask": torch.tensor([[1.0, 1.0, 1.0]]),
    }
    text = {"sentence_embedding": torch.tensor([[3.0, 4.0]]), "related_ids": torch.tensor([[3, 0]]), "related_weights": torch.tensor([[0.7, 0.3]])}

    def cosine(channel):
        c = channel({k: v.clone() for k, v in cell.items()})["sentence_embedding"]
        t = channel({k: v.clone() for k, v in text.items()})["sentence_embedding"]
        return float(c @ t.T)

    channel = GeneChannel(vocab_size=5, channel_ids=[3, 1], weight=0.25, learned_dim=2, query_weight=0.5)
    assert cosine(channel) == pytest.approx(0.75 + 0.25 * 0.5**0.5, rel=1e-6)  # training: weight
    channel.eval()
    assert cosine(channel) == pytest.approx(0.5 + 0.5 * 0.5**0.5, rel=1e-6)  # encoding: query_weight
    channel.save(str(tmp_path))
    again = GeneChannel.load(str(tmp_path)).eval()
    assert again.query_weight == 0.5 and cosine(again) == pytest.approx(cosine(channel), rel=1e-6)
    old = GeneChannel(vocab_size=5, channel_ids=[3, 1], weight=0.25, learned_dim=2).eval()  # saved before the option
    assert old.query_weight is None and cosine(old) == pytest.approx(0.75 + 0.25 * 0.5**0.5, rel=1e-6)
    with pytest.raises(ParameterError, match="query_weight must be in"):
        GeneChannel(vocab_size=5, channel_ids=[3, 1], weight=0.25, learned_dim=2, query_weight=1.5)
    with pytest.raises(ParameterError, match="weight must be in"):
        GeneChannel(vocab_size=5, channel_ids=[3, 1], weight=-0.1, learned_dim=2)


def test_query_channel_acts_only_through_the_gene_channel():
    """The channel is on by default (weight 0.3; when encoding 0.5 unless a corpus trainer set 0.7); gene_channel=0 or no bridge turns it off."""
    from mmgene.align.model import build_model

    genes = ["NKG7", "MS4A1", "CD14", "LYZ", "GNLY"]

    def channels(config):
        st = build_model(genes, config, bridge_genes=genes, seed=0)
        return [m for m in st[0].sub_modules["text"] if type(m).__name__ == "GeneChannel"]

    small = dict(gene_dim=8, hidden=16, dim=8)
    (channel,) = channels(ModelConfig(**small))
    assert (channel.weight, channel.query_weight) == (0.3, 0.5)
    (channel,) = channels(AlignConfig(model=ModelConfig(**small)).resolved(CORPUS_DEFAULTS).model)
    assert (channel.weight, channel.query_weight) == (0.3, 0.7)
    assert channels(ModelConfig(**small, gene_channel=0.0)) == []
    assert channels(ModelConfig(**small, gene_bridge=False)) == []
    with pytest.raises(ParameterError, match="query_channel must be in"):
        ModelConfig(query_channel=1.5)


def _direct_top(model, dataset, captions_by_label, k):
    """The ``k`` other-class captions each row's cell scores highest, computed directly (ties: pool order)."""
    pool = [(lab, cap) for lab, caps in captions_by_label.items() for cap in caps]
    sim = model.encode_inputs(list(dataset["cell"])) @ model.encode_text([c for _, c in pool]).T
    labels = np.asarray(dataset["label"])
    same = labels[:, None] == np.array([lab for lab, _ in pool])[None, :]
    sim[same] = -np.inf
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return [[pool[j][1] for j in row] for row in order]


def test_mined_negatives_are_the_other_class_captions_the_model_scores_highest(trained, small_pbmc):
    from mmgene.pairs import make_pairs, mine_hard_negatives

    model, _ = trained
    pairs = make_pairs(small_pbmc[:60].copy(), "cell_type", config=PairsConfig(test_size=0.0, captions_per_cell=1, max_genes=128), seed=0)
    captions = {k: t.all_captions() for k, t in enumerate(pairs.class_text) if k in set(pairs["train"]["label"])}
    top1 = mine_hard_negatives(pairs["train"], model, captions, top_k=1, seed=5)
    assert top1["negative"] == [row[0] for row in _direct_top(model, pairs["train"], captions, 1)]
    top3 = _direct_top(model, pairs["train"], captions, 3)
    got = mine_hard_negatives(pairs["train"], model, captions, top_k=3, seed=0)["negative"]
    assert all(neg in row for neg, row in zip(got, top3))
    assert len({row.index(neg) for neg, row in zip(got, top3)}) > 1  # drawn among the 3, not always the first
    with pytest.raises(ParameterError, match="top_k must be at least 1"):
        mine_hard_negatives(pairs["train"], model, captions, top_k=0)


def _train_capturing(monkeypatch, adata, training, negatives=False):
    """Train while recording each round's training dataset and, at each mining, the direct top-1 negatives."""
    import sentence_transformers

    import mmgene.pairs.hard_negatives as hn
    from mmgene.align import train

    seen: dict[str, list] = {"datasets": [], "expected": [], "top_k": [], "captions": []}
    real_trainer, real_mine = sentence_transformers.SentenceTransformerTrainer, hn.mine_hard_negatives

    class Recording(real_trainer):
        def __init__(self, *args, **kw):
            seen["datasets"].append(kw["train_dataset"])
            super().__init__(*args, **kw)

    def mine(dataset, model, captions_by_label, top_k=3, seed=0, related=None):
        seen["top_k"].append(top_k)
        seen.setdefault("related", []).append(related)
        seen["captions"].append(captions_by_label)
        if top_k == 1:
            seen["expected"].append([row[0] for row in _direct_top(model, dataset, captions_by_label, 1)])
        return real_mine(dataset, model, captions_by_label, top_k=top_k, seed=seed, related=related)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformerTrainer", Recording)
    monkeypatch.setattr(hn, "mine_hard_negatives", mine)
    pairs = PairsConfig(max_genes=128, captions_per_cell=1, negatives=negatives)
    model = ModelConfig(gene_dim=32, dim=32, gene_bridge=False)
    return train(adata, "cell_type", pairs=pairs, model=model, training=TrainingConfig(batch_size=32, **training)), seen


def test_training_with_hard_negatives_mines_with_the_current_model_each_round(small_pbmc, monkeypatch):
    model, seen = _train_capturing(monkeypatch, small_pbmc, dict(hard_negatives=1, mine_every=2, max_steps=5, seed=0))
    first, *later = seen["datasets"]
    assert len(later) == 2 and seen["top_k"] == [1, 1]
    assert first.column_names == ["cell", "caption", "label"]  # round 1: no negatives (negatives=False)
    for ds, expected in zip(later, seen["expected"]):
        assert ds.column_names == ["cell", "caption", "negative", "label"]
        assert ds["negative"] == expected  # the closest other-class caption under the model at that point
        own, negative_of = np.asarray(ds["label"]).T  # clip gets (class, the negative's class) to mask by
        assert (own != negative_of).all()
        captions = seen["captions"][0]
        assert all(neg in captions[lab] for neg, lab in zip(ds["negative"], negative_of))
    assert seen["expected"][0] != seen["expected"][1]  # re-mined: the model changed in between
    training, run = model.config.training, model.meta["run"]
    assert (training.hard_negatives, training.mine_every, run["rounds"], run["steps"]) == (1, 2, 3, 5)
    assert run["round_steps"] == 2
    assert [h["steps"] for h in model.meta["eval_history"]] == [2, 4, 5]  # one evaluation per round, global steps


def test_hard_negative_training_is_deterministic_for_a_seed_with_mnrl(small_pbmc, monkeypatch):
    cells = small_pbmc[:12]
    options = dict(hard_negatives=2, mine_every=3, max_steps=6, loss="mnrl", seed=1)
    runs = [_train_capturing(monkeypatch, small_pbmc, options, negatives=True) for _ in range(2)]
    (a, seen_a), (b, seen_b) = runs
    # random negatives first; no label column for MNRL
    assert seen_a["datasets"][0].column_names == ["cell", "caption", "negative"]
    assert seen_a["datasets"][1]["negative"] != seen_a["datasets"][0]["negative"]
    assert seen_a["datasets"][1]["negative"] == seen_b["datasets"][1]["negative"]
    np.testing.assert_array_equal(a.encode_cells(cells), b.encode_cells(cells))
    np.testing.assert_array_equal(a.encode_text(["a B cell"]), b.encode_text(["a B cell"]))
    assert a.meta["run"]["rounds"] == 2 and a.config.training.loss == "mnrl"


def test_settings_left_to_the_trainer_resolve_to_its_defaults():
    from mmgene.align.config import ANNDATA_DEFAULTS, STREAMED_DEFAULTS

    assert (CORPUS_DEFAULTS.hard_negatives, CORPUS_DEFAULTS.query_channel) == (5, 0.7)
    assert (ANNDATA_DEFAULTS.hard_negatives, ANNDATA_DEFAULTS.query_channel) == (0, 0.5)
    assert (STREAMED_DEFAULTS.hard_negatives, STREAMED_DEFAULTS.query_channel) == (0, 0.7)
    corpus = AlignConfig(training=TrainingConfig(seed=3)).resolved(CORPUS_DEFAULTS)
    assert corpus == AlignConfig(model=ModelConfig(query_channel=0.7), training=TrainingConfig(seed=3, hard_negatives=5))
    given = AlignConfig(model=ModelConfig(query_channel=0.2), training=TrainingConfig(hard_negatives=0))
    assert given.resolved(CORPUS_DEFAULTS) == given  # values the user gave are kept
    assert ModelConfig().encoding_weight == 0.5 and ModelConfig(query_channel=0.9).encoding_weight == 0.9


def test_hard_negatives_bad_values(small_pbmc):
    from mmgene.align import train

    with pytest.raises(ParameterError, match="hard_negatives must be a whole number >= 0, got -1"):
        TrainingConfig(hard_negatives=-1)
    with pytest.raises(ParameterError, match="hard_negatives must be a whole number"):
        TrainingConfig(hard_negatives=2.5)
    with pytest.raises(ParameterError, match="mine_every must be a whole number"):
        TrainingConfig(hard_negatives=2, mine_every=-3)
    one_class = small_pbmc[small_pbmc.obs["cell_type"] == "B cells"].copy()
    with pytest.raises(ParameterError, match="at least two classes in training, got \\['B cells'\\]"):
        train(
            one_class,
            "cell_type",
            pairs=PairsConfig(test_size=0.0),
            model=ModelConfig(gene_bridge=False),
            training=TrainingConfig(hard_negatives=2, max_steps=1, batch_size=4),
        )


def test_cli_train_hard_negatives(tmp_path, small_pbmc):
    from typer.testing import CliRunner

    from mmgene.cli.app import app

    h5 = tmp_path / "small.h5ad"
    small_pbmc[:120].copy().write_h5ad(h5)
    out = tmp_path / "m"
    runner = CliRunner()
    base = ["train", str(h5), "--label-col", "cell_type", "--out", str(out), "--max-steps", "2", "--batch-size", "16", "--no-gene-bridge"]
    res = runner.invoke(app, base + ["--hard-negatives", "3", "--mine-every", "1"])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "mmgene_align.json").read_text())
    training = saved["config"]["training"]
    assert (training["hard_negatives"], training["mine_every"], saved["run"]["rounds"]) == (3, 1, 2)
    res = runner.invoke(app, base + ["--hard-negatives", "-1"])
    assert res.exit_code == 2 and "Invalid value for '--hard-negatives'" in res.output


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"gene_dim": 0}, "gene_dim must be a whole number >= 1"),  # was torch.cat of no tensors mid-training
        ({"dim": 0}, "dim must be a whole number >= 1"),  # trained, then "class vectors are all zeros"
        ({"hidden": -4}, "hidden must be a whole number >= 1"),
        ({"hidden": 32.5}, "hidden must be a whole number >= 1"),
        ({"gene_dropout": 2.0}, "gene_dropout must be in \\[0, 1\\]"),  # silently hid no gene for most cells
        ({"gene_dropout": -0.1}, "gene_dropout must be in \\[0, 1\\]"),
    ],
)
def test_model_config_refuses_widths_and_dropout_out_of_range(settings, message):
    with pytest.raises(ParameterError, match=message):
        ModelConfig(**settings)


def test_training_rows_are_checked_before_the_model_is_built(small_pbmc, monkeypatch):
    """A batch larger than the training rows (transformers' raw "args.max_steps must be set"), one
    class left after exclusion (the clip loss masks every negative: nothing learned) and mine_every
    without hard negatives (ignored) are refused once the pairs exist, before any model is built."""
    from mmgene.align import model as model_module, train
    from mmgene.errors import LabelError

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(model_module, "build_model", no_model)
    cells = small_pbmc[:100].copy()  # 80 training cells x 1 caption
    pairs = PairsConfig(max_genes=32, captions_per_cell=1)
    with pytest.raises(ParameterError, match="batch_size=128 is larger than the 80 training rows"):
        train(cells, "cell_type", pairs=pairs, training=TrainingConfig(epochs=1))
    kept = sorted(set(cells.obs["cell_type"].astype(str)))
    with pytest.raises(LabelError, match="training rows hold only \\['B cells'\\]"):
        train(cells, "cell_type", pairs=PairsConfig(max_genes=32, captions_per_cell=1, exclude_labels=[k for k in kept if k != "B cells"]),
              training=TrainingConfig(max_steps=1, batch_size=4))
    with pytest.raises(ParameterError, match="mine_every=3 sets the steps between hard-negative rounds"):
        train(cells, "cell_type", pairs=pairs, training=TrainingConfig(max_steps=1, batch_size=4, mine_every=3))


def test_cli_train_refuses_options_that_would_be_ignored(tmp_path, small_pbmc):
    """--query-channel without a gene channel and --eval-steps without held-out cells were accepted and
    did nothing; both are refused before the file is read."""
    h5 = tmp_path / "small.h5ad"
    small_pbmc[:20].copy().write_h5ad(h5)
    base = ["train", h5, "--label-col", "cell_type", "--out", tmp_path / "m"]
    for extra, message in [
        (["--no-gene-bridge", "--query-channel", "0.9"], "--query-channel weighs the gene channel"),
        (["--gene-channel", "0", "--query-channel", "0.9"], "--query-channel weighs the gene channel"),
        (["--test-size", "0", "--eval-steps", "5"], "--test-size 0 holds none out"),
    ]:
        assert_refused(base + extra, [tmp_path], contains=message)
