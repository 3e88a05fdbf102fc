"""An ensemble of aligned models (mmgene.align.ensemble): trained with stepped seeds, one joint space,
saved and loaded as a checked folder of members, refused when its folder is not one mmgene wrote."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hostile import assert_refused, run_cli_here
from test_train_corpus import HUMAN_GENES, MOUSE_GENES, _adata, _manifest

from mmgene.errors import ModelError, OutputError, ParameterError, UnsafeModelError


def _train(manifest: Path, members: int, out: Path | None = None):
    from mmgene.align import CorpusTrainingConfig, ModelConfig, TrainingConfig, train_corpus
    from mmgene.corpus import read_corpus

    return train_corpus(
        read_corpus(manifest), model=ModelConfig(gene_bridge=False), training=TrainingConfig(max_steps=2, batch_size=8),
        balance=CorpusTrainingConfig(members=members), out=out,
    )


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ensemble-corpus")
    human = _adata(HUMAN_GENES, [("T", "CL:0000084", [0, 1, 2]), ("B", "CL:0000236", [3, 4])], 12, 0)
    mouse = _adata(
        MOUSE_GENES, [("T cells", "CL:0000625", [0, 1, 2]), ("B cells", "CL:0000236", [3, 4]), ("NK", "CL:0000623", [6, 7])], 12, 1
    )
    return _manifest(tmp, [("human_pbmc", "human", human), ("mouse_pbmc", "mouse", mouse)])


@pytest.fixture(scope="module")
def trained(corpus_files, tmp_path_factory):
    """An ensemble of three members saved by mmgene, and the cells of the human dataset."""
    import anndata

    out = tmp_path_factory.mktemp("ensemble") / "model"
    model = _train(corpus_files, 3, out)
    return model, out, anndata.read_h5ad(corpus_files.parent / "human_pbmc.h5ad"), corpus_files.parent / "human_pbmc.h5ad"


def test_members_are_trained_with_stepped_seeds_and_member_0_is_the_one_model_run(trained, corpus_files):
    from mmgene.align import AlignedModel, EnsembleModel

    model, _, cells, _ = trained
    assert isinstance(model, EnsembleModel) and len(model.members) == 3
    assert [m.config.training.seed for m in model.members] == [0, 1, 2]
    assert [m["seed"] for m in model.meta["members"]] == [0, 1, 2]
    assert model.meta["train_seconds"] == round(sum(m.meta["train_seconds"] for m in model.members), 1)
    assert model.meta["datasets"] == ["human_pbmc", "mouse_pbmc"] and "run" not in model.meta and "learned_mean" not in model.meta
    single = _train(corpus_files, 1)
    assert isinstance(single, AlignedModel)
    assert np.array_equal(single.encode_cells(cells), model.members[0].encode_cells(cells))
    assert not np.array_equal(model.members[1].encode_cells(cells), model.members[0].encode_cells(cells))


def test_the_joint_space_is_the_members_side_by_side(trained):
    model, _, cells, _ = trained
    texts = ["a T cell", "a B cell", "a natural killer cell"]
    for recentre in (False, True):
        parts = [m.encode_cells(cells, recentre=recentre) for m in model.members]
        vectors = model.encode_cells(cells, recentre=recentre)
        assert np.array_equal(vectors, np.concatenate(parts, axis=1) / np.float32(math.sqrt(3)))
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
        text, text_parts = model.encode_text(texts), [m.encode_text(texts) for m in model.members]
        mean_cosine = np.mean([p @ t.T for p, t in zip(parts, text_parts)], axis=0)
        np.testing.assert_allclose(vectors @ text.T, mean_cosine, atol=1e-6)
    assert model.dim == 3 * model.members[0].dim == vectors.shape[1]
    assert np.array_equal(model.training_mean, np.concatenate([m.training_mean for m in model.members]))
    assert model.describe()["members"] == 3 and model.inputs == ["genes"]


def test_labels_are_scored_member_by_member_and_their_z_scores_averaged(trained):
    from mmgene.query.scoring import label_similarities
    from mmgene.text.classes import standardise, type_weights
    from mmgene.text.prompts import class_prompts

    model, _, cells, _ = trained
    labels = ["T cell", "B cell", "natural killer cell"]
    scored = label_similarities(model, model.encode_cells(cells), class_prompts(labels), labels, prompts_of=class_prompts)
    assert scored.members.shape == (3, cells.n_obs, 3)
    assert scored.expanded[0] == ["CD8-positive, alpha-beta T cell"]  # each member answers "T cell" for its subtype too
    for member, sims in zip(model.members, scored.members):
        own = label_similarities(member, member.encode_cells(cells), class_prompts(labels), labels, prompts_of=class_prompts)
        assert own.members is None
        np.testing.assert_allclose(sims, own.similarities, atol=1e-6)
        assert np.array_equal(own.standardised(), standardise(own.similarities))
    assert np.array_equal(scored.standardised(), standardise(np.mean([standardise(s) for s in scored.members], axis=0)))
    assert not np.allclose(scored.standardised(), standardise(scored.similarities))
    weighed = standardise(scored.members, type_weights(scored.standardised()))  # the first pass: the plain rule
    assert np.array_equal(scored.standardised(weigh_types=True), weighed)


def test_annotate_and_evaluate_take_an_ensembles_averaged_z_scores(trained):
    from mmgene.evaluate import evaluate
    from mmgene.query import annotate
    from mmgene.query.labelling import DEFAULT_TEMPERATURE, label_prompts, softmax
    from mmgene.query.scoring import label_similarities
    from mmgene.text.classes import unit_rows
    from mmgene.text.prompts import class_prompts

    model, _, cells, _ = trained
    labels = ["T cell", "B cell"]  # with a corpus model's names-only prompts (definitions=False)
    annotated = annotate(cells, labels, model, standardize=True, recentre=False, others=False, definitions=False, copy=True)
    scored = label_similarities(model, model.encode_cells(cells), label_prompts(labels), labels, prompts_of=label_prompts)
    np.testing.assert_allclose(annotated.obsm["mmgene_probs"].to_numpy(), softmax(scored.standardised(), DEFAULT_TEMPERATURE), atol=1e-12)
    assert "each ensemble member's z-scores averaged and z-scored again" in annotated.uns["mmgene"]["mmgene_label"]["rule"]
    assert annotated.uns["mmgene"]["mmgene_label"]["weigh_types"] is False
    weighed = annotate(cells, labels, model, standardize=True, weigh_types=True, recentre=False, others=False, definitions=False, copy=True)
    np.testing.assert_allclose(weighed.obsm["mmgene_probs"].to_numpy(), softmax(scored.standardised(True), DEFAULT_TEMPERATURE), atol=1e-12)
    record = weighed.uns["mmgene"]["mmgene_label"]
    assert record["weigh_types"] is True and "each label's winners of a first pass weighing alike in its z-scores" in record["rule"]
    from mmgene.query.refine import expression_pcs, refine_scores

    refined = annotate(cells, labels, model, refine=True, recentre=False, others=False, definitions=False, copy=True)  # starts from the averaged z-scores
    expected = softmax(refine_scores(scored.standardised(), expression_pcs(cells)), DEFAULT_TEMPERATURE)
    np.testing.assert_allclose(refined.obsm["mmgene_probs"].to_numpy(), expected, atol=1e-9)
    # refinement z-scores its start again, unweighted, which would undo the weighing: refused, nothing written
    before = cells.copy()
    with pytest.raises(ParameterError, match="refine and weigh_types cannot be combined"):
        annotate(cells, labels, model, refine=True, weigh_types=True, recentre=False, others=False, definitions=False)
    assert list(cells.obs.columns) == list(before.obs.columns) and list(cells.obsm) == list(before.obsm)
    classes = sorted(set(cells.obs["cell_type"]))
    report = evaluate(model, cells, "cell_type", standardize=True, recentre=False, definitions=False, baseline=False, marker_baseline=False)
    prompts = class_prompts(classes)
    z = label_similarities(model, unit_rows(model.encode_cells(cells)), prompts, classes, prompts_of=class_prompts).standardised()
    truth = cells.obs["cell_type"].to_numpy()
    assert report["zero_shot"]["accuracy"] == pytest.approx(float(np.mean(np.asarray(classes)[z.argmax(1)] == truth)))
    weighed = evaluate(model, cells, "cell_type", standardize=True, weigh_types=True, recentre=False, definitions=False, baseline=False, marker_baseline=False)
    scored = label_similarities(model, unit_rows(model.encode_cells(cells)), prompts, classes, prompts_of=class_prompts)
    z = scored.standardised(weigh_types=True)
    assert weighed["zero_shot"]["weigh_types"] is True
    assert weighed["zero_shot"]["accuracy"] == pytest.approx(float(np.mean(np.asarray(classes)[z.argmax(1)] == truth)))


def test_member_vectors_undo_the_joining(trained):
    model, _, cells, _ = trained
    parts = model.member_vectors(model.encode_cells(cells))
    for part, member in zip(parts, model.members):
        np.testing.assert_allclose(part, member.encode_cells(cells), atol=1e-6)
    with pytest.raises(ParameterError, match="not this ensemble's"):
        model.member_vectors(parts[0])


def test_saved_folder_loads_back_the_same_space_with_a_card(trained):
    from mmgene.align import EnsembleModel, load

    model, out, cells, _ = trained
    assert sorted(p.name for p in out.iterdir()) == [
        ".mmgene-output", "README.md", "member-0", "member-1", "member-2", "mmgene_ensemble.json", "text_encoder"
    ]
    listing = json.loads((out / "mmgene_ensemble.json").read_text())
    assert listing["members"] == ["member-0", "member-1", "member-2"] and listing["text_model"] == "text_encoder"
    # the frozen text model is the same in every member: kept once, beside them
    assert not list(out.glob("member-*/*/encoder")) and (out / "text_encoder" / "modules.json").is_file()
    again = load(out)
    assert isinstance(again, EnsembleModel) and again.meta["path"] == str(out)
    encoders = {id(m.st[0].sub_modules["text"][0].encoder) for m in again.members}
    assert len(encoders) == 1  # loaded once, shared
    assert [m.meta["path"] for m in again.members] == [str(out / f"member-{i}") for i in range(3)]
    assert {k: v for k, v in again.meta.items() if k != "path"} == json.loads(json.dumps({k: v for k, v in model.meta.items() if k != "path"}))
    assert np.array_equal(again.encode_cells(cells, recentre=True), model.encode_cells(cells, recentre=True))
    # the trained model's text cache holds captions embedded in training batches: equal to float rounding
    np.testing.assert_allclose(again.encode_text(["a T cell"]), model.encode_text(["a T cell"]), atol=1e-6)
    card = (out / "README.md").read_text()
    assert "An ensemble of 3 models trained alike with seeds 0, 1, 2" in card
    assert "held-out cells of member 2 (seed 2)" in card and "{{" not in card
    assert "This model is an ensemble of 3 models" in card and "trust_remote_code" not in card  # the root is no ST folder
    assert "library_name: mmgene" in card and "library_name: mmgene" not in (out / "member-0" / "README.md").read_text()


def test_a_loaded_ensemble_embeds_each_text_once_for_all_members(trained):
    """Members loaded with their shared frozen text model share its text cache: the transformer runs
    once per text, and every member gets what it would have embedded on its own, to the bit."""
    from collections import OrderedDict

    from mmgene.align import load
    from mmgene.align.modules.text_input import TextInput

    model, out, _, _ = trained
    towers = lambda ensemble: [next(m for m in member.st.modules() if isinstance(m, TextInput)) for member in ensemble.members]  # noqa: E731
    linked, separate = load(out), load(out)
    assert all(t._cache is towers(linked)[0]._cache for t in towers(linked))
    for tower in towers(separate):  # as before: each member with its own cache
        tower._cache = OrderedDict()
    calls = []
    encoder = towers(linked)[0].encoder
    real = encoder.encode
    encoder.encode = lambda texts, **kw: calls.append(list(texts)) or real(texts, **kw)
    texts = ["a T cell", "a B cell expressing MS4A1", "a natural killer cell"]
    assert np.array_equal(linked.encode_text(texts), separate.encode_text(texts))
    assert len(calls) == 1 and sorted(calls[0]) == sorted(texts)  # three members, one pass through the transformer
    # members trained in this process share the text model they were trained with, and its cache
    assert len({id(t._cache) for t in towers(model)}) == 1 and len({id(t.encoder) for t in towers(model)}) == 1


def _train_counting(corpus_files, monkeypatch, members: int, **model):
    """Members trained with the gene-text bridge while counting text-model loads and the texts embedded."""
    from mmgene.align import CorpusTrainingConfig, ModelConfig, TrainingConfig, model as model_module, train_corpus
    from mmgene.corpus import read_corpus

    loads, embedded, real_load = [], [], model_module.load_text_model

    def load(spec=None):
        encoder = real_load(spec)
        real = encoder.encode
        encoder.encode = lambda texts, **kw: embedded.append(list(texts)) or real(texts, **kw)
        loads.append(encoder)
        return encoder

    monkeypatch.setattr(model_module, "load_text_model", load)
    trained = train_corpus(
        read_corpus(corpus_files), model=ModelConfig(**model), training=TrainingConfig(max_steps=2, batch_size=8),
        balance=CorpusTrainingConfig(members=members),
    )
    monkeypatch.undo()
    return trained, loads, embedded


def test_members_trained_in_turn_embed_each_text_once(corpus_files, monkeypatch, trained):
    """One text model for all members: each caption and gene text goes through the transformer once,
    member 0 is to the bit the model trained alone, and a gene's bridge vector is the same in every member."""
    from mmgene.align.modules.cell_input import CellInput
    from mmgene.align.modules.text_input import TextInput

    cells = trained[2]
    alone, alone_loads, alone_texts = _train_counting(corpus_files, monkeypatch, 1)
    model, loads, embedded = _train_counting(corpus_files, monkeypatch, 3)
    assert len(alone_loads) == 1 and len(loads) == 1
    texts = [t for call in embedded for t in call]
    assert len(texts) == len(set(texts)) and set(texts) > {t for call in alone_texts for t in call}  # later members add their own
    assert np.array_equal(model.members[0].encode_cells(cells), alone.encode_cells(cells))
    towers = [next(m for m in member.st.modules() if isinstance(m, TextInput)) for member in model.members]
    alone_tower = next(m for m in alone.st.modules() if isinstance(m, TextInput))
    assert len(towers[0].gene_text_ids) > 0 and np.array_equal(towers[0].gene_text_vectors, alone_tower.gene_text_vectors)
    vocab = [np.asarray(next(m for m in member.st.modules() if isinstance(m, CellInput)).vocab) for member in model.members]
    first = dict(zip(vocab[0][towers[0].gene_text_ids], towers[0].gene_text_vectors))
    for tower, genes in zip(towers[1:], vocab[1:]):
        assert tower.encoder is towers[0].encoder and tower._cache is towers[0]._cache
        assert all(np.array_equal(v, first[g]) for g, v in zip(genes[tower.gene_text_ids], tower.gene_text_vectors) if g in first)
    assert not np.array_equal(model.members[1].encode_cells(cells), model.members[0].encode_cells(cells))


def test_members_with_a_trainable_text_tower_share_nothing(corpus_files, monkeypatch):
    """A text tower that learns is each member's own: one load per member, no shared cache."""
    from mmgene.align.modules.text_input import TextInput

    model, loads, _ = _train_counting(corpus_files, monkeypatch, 2, gene_bridge=False, train_text=True)
    towers = [next(m for m in member.st.modules() if isinstance(m, TextInput)) for member in model.members]
    assert len(loads) == 2 and towers[0].encoder is not towers[1].encoder and towers[0]._cache is not towers[1]._cache


def test_save_replaces_only_what_mmgene_wrote(trained, tmp_path):
    model, _, _, _ = trained
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(OutputError):
        model.save(mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep" and len(list(mine.iterdir())) == 1
    target = tmp_path / "model"
    model.save(target)
    with pytest.raises(OutputError):
        model.save(target)
    model.save(target, overwrite=True)
    assert (target / "mmgene_ensemble.json").is_file()


def test_encode_cells_writes_obsm_with_provenance_or_a_copy(trained):
    model, _, cells, _ = trained
    adata = cells.copy()
    vectors = model.encode_cells(adata, key_added="X_ens")
    assert np.array_equal(adata.obsm["X_ens"], vectors)
    assert adata.uns["mmgene"]["X_ens"]["members"] == 3
    fresh = cells.copy()
    copied = model.encode_cells(fresh, key_added="X_ens", copy=True, recentre=True)
    assert "X_ens" not in fresh.obsm and copied.uns["mmgene"]["X_ens"]["recentred"] is True
    with pytest.raises(ParameterError, match="key_added"):
        model.encode_cells(cells, copy=True)


def test_an_ensemble_needs_two_members_reading_the_same_inputs(trained):
    from mmgene.align import EnsembleModel
    from mmgene.align.model import AlignedModel

    model, _, _, _ = trained
    with pytest.raises(ParameterError, match="at least two"):
        EnsembleModel(model.members[:1])
    other = AlignedModel(model.members[1].st, ["genes", "X_pca"], model.members[1].meta, model.members[1].config)
    with pytest.raises(ParameterError, match="different cell inputs"):
        EnsembleModel([model.members[0], other])
    fewer_genes = SimpleNamespace(inputs=["genes"], max_genes=model.members[0].max_genes // 2)
    with pytest.raises(ParameterError, match=r"different cell inputs \(inputs, max_genes\)"):
        EnsembleModel([model.members[0], fewer_genes])


@pytest.mark.parametrize("recentre, made", [(False, 1), (True, 2)])
def test_each_chunks_inputs_are_made_once_for_every_member(trained, monkeypatch, recentre, made):
    """Three members read one set of inputs per pass (the recentring mean's, then the encoding's): not
    one per member and pass; the vectors are the members' own, to the bit."""
    import mmgene.cells.inputs

    model, _, cells, _ = trained
    expected = model._joined([m.encode_cells(cells, recentre=recentre) for m in model.members])
    made_inputs = []
    real = mmgene.cells.inputs.cell_inputs
    monkeypatch.setattr(mmgene.cells.inputs, "cell_inputs", lambda adata, *a, **k: made_inputs.append(adata.n_obs) or real(adata, *a, **k))
    assert np.array_equal(model.encode_cells(cells, recentre=recentre), expected)
    assert made_inputs == [cells.n_obs] * made


def test_dataset_means_of_several_members_are_each_ones_own(trained):
    from mmgene.align.recentre import dataset_mean, dataset_means, offsets

    model, _, cells, _ = trained
    means = dataset_means(model.members, cells)
    assert len(means) == 3 and all(m.dtype == np.float64 for m in means)
    for mean, member in zip(means, model.members):
        assert np.array_equal(mean, dataset_mean(member, cells))
    moves = offsets(model.members, cells)
    for move, mean, member in zip(moves, means, model.members):
        assert np.array_equal(move, (member.training_mean - mean).astype(np.float32))


def _name_evil_code(folder: Path, sentinel: Path) -> None:
    """``folder/modules.json`` names ``evil_head.EvilHead``, a module beside it that writes ``sentinel`` when imported."""
    (folder / "evil_head.py").write_text(f"open({str(sentinel)!r}, 'w').write('ran')\nclass EvilHead:\n    pass\n")
    listing = json.loads((folder / "modules.json").read_text())
    listing[-1]["type"] = "evil_head.EvilHead"
    (folder / "modules.json").write_text(json.dumps(listing))


def _ensemble_copy(out: Path, dst: Path) -> Path:
    shutil.copytree(out, dst)
    return dst


@pytest.mark.parametrize(
    "members, message",
    [
        (["member-0", "../elsewhere"], "not a member folder"),
        (["member-0", "member-0"], "twice"),
        (["member-0"], "at least two"),
        (["member-0", "member-7"], "not a member folder"),
        ("member-0", "at least two"),
    ],
)
def test_a_tampered_member_list_is_refused(trained, tmp_path, members, message):
    from mmgene.align import load

    _, out, _, _ = trained
    folder = _ensemble_copy(out, tmp_path / "copy")
    (tmp_path / "elsewhere").mkdir()
    listing = folder / "mmgene_ensemble.json"
    data = json.loads(listing.read_text())
    listing.write_text(json.dumps({**data, "members": members}))
    with pytest.raises(ModelError, match=message):
        load(folder)


def test_members_with_their_own_text_models_keep_them(trained, tmp_path):
    """A fine-tuned text tower differs between members: nothing is shared, and the folder loads as written."""
    from mmgene.align import load
    from mmgene.align.ensemble import share_text_model

    model, _, cells, _ = trained
    folder = tmp_path / "own"
    for i, member in enumerate(model.members):
        member.save(folder / f"member-{i}")
    config = next(folder.glob("member-1/*/encoder/config_sentence_transformers.json"))
    config.write_text(config.read_text() + " ")  # one byte differs: not the same text model
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert share_text_model(folder, ["member-0", "member-1", "member-2"]) is False
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    (folder / "mmgene_ensemble.json").write_text(json.dumps({"members": ["member-0", "member-1", "member-2"], "meta": {}}))
    again = load(folder)
    assert len({id(m.st[0].sub_modules["text"][0].encoder) for m in again.members}) == 3
    assert np.array_equal(again.encode_cells(cells), model.encode_cells(cells))


@pytest.mark.parametrize("where", ["elsewhere", "../text_encoder", "member-0"])
def test_a_shared_text_model_outside_its_folder_is_refused(trained, tmp_path, where):
    from mmgene.align import load

    _, out, _, _ = trained
    folder = _ensemble_copy(out, tmp_path / "copy")
    listing = folder / "mmgene_ensemble.json"
    listing.write_text(json.dumps({**json.loads(listing.read_text()), "text_model": where}))
    with pytest.raises(ModelError, match="shared text model"):
        load(folder)


def test_a_shared_text_model_with_auto_map_or_linked_is_refused(trained, tmp_path):
    from mmgene.align import load

    _, out, _, _ = trained
    folder = _ensemble_copy(out, tmp_path / "copy")
    text_model = folder / "text_encoder"
    (text_model / "modules.json").unlink()
    (text_model / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "evil_head.EvilHead"}, "model_type": "bert"}))
    with pytest.raises(UnsafeModelError, match="auto_map"):
        load(folder)
    shutil.rmtree(text_model)
    os.symlink(folder / "member-0", text_model)
    with pytest.raises(ModelError, match="shared text model"):
        load(folder)


def test_a_linked_member_and_unreadable_listing_are_refused(trained, tmp_path):
    from mmgene.align import load

    _, out, _, _ = trained
    folder = _ensemble_copy(out, tmp_path / "copy")
    shutil.rmtree(folder / "member-2")
    os.symlink(folder / "member-1", folder / "member-2")
    with pytest.raises(ModelError, match="not a member folder"):
        load(folder)
    (folder / "mmgene_ensemble.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot be read"):
        load(folder)


@pytest.mark.parametrize("where", ["member-1", "text_encoder"])
def test_code_named_in_an_ensemble_is_refused_and_nothing_runs(trained, tmp_path, where):
    """A member's modules.json, or the shared text model's, naming a class beside it: refused before import."""
    from mmgene.align import load

    _, out, _, _ = trained
    folder = _ensemble_copy(out, tmp_path / "copy")
    sentinel = tmp_path / "ran"
    _name_evil_code(folder / where, sentinel)
    with pytest.raises(UnsafeModelError, match="evil_head.EvilHead"):
        load(folder)
    assert not sentinel.exists()
    cells = tmp_path / "cells.h5ad"
    shutil.copy(_human_file(trained), cells)
    assert_refused(["annotate", cells, "--model", folder, "--labels", "T cell", "B cell", "--out", tmp_path / "out.h5ad"], [tmp_path],
                   contains="evil_head")
    assert not sentinel.exists()

def _human_file(trained) -> Path:
    return trained[3]


def test_an_auto_map_at_the_ensemble_root_is_refused(trained, tmp_path):
    from mmgene.align import load

    _, out, _, _ = trained
    folder = _ensemble_copy(out, tmp_path / "copy")
    (folder / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "evil.Model"}}))
    with pytest.raises(UnsafeModelError, match="auto_map"):
        load(folder)


def test_cli_trains_an_ensemble_and_annotates_with_it(corpus_files, trained, tmp_path):
    out = tmp_path / "model"
    res = run_cli_here(
        "train", "--corpus", corpus_files, "--out", out, "--members", "2", "--max-steps", "2", "--batch-size", "8", "--no-gene-bridge", "--json"
    )
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["training_log"] == [str(out / "member-0" / "training_log.jsonl"), str(out / "member-1" / "training_log.jsonl")]
    assert [m["seed"] for m in result["members"]] == [0, 1]
    assert json.loads((out / "mmgene_ensemble.json").read_text())["members"] == ["member-0", "member-1"]
    annotated = tmp_path / "annotated.h5ad"
    res = run_cli_here("annotate", _human_file(trained), "--model", out, "--labels", "T cell", "B cell", "--out", annotated)
    assert res.returncode == 0, res.stderr
    import anndata

    labels = anndata.read_h5ad(annotated).obs
    assert len(labels) == 24
    one_file = corpus_files.parent / "human_pbmc.h5ad"
    assert_refused(["train", one_file, "--label-col", "cell_type", "--members", "2", "--out", tmp_path / "m"], [tmp_path], contains="--corpus")


def test_members_setting_is_checked():
    from mmgene.align import CorpusTrainingConfig
    from mmgene.align.config import CORPUS_DEFAULTS, STREAMED_DEFAULTS
    from mmgene.pretrain import PretrainConfig

    assert CorpusTrainingConfig().resolved(CORPUS_DEFAULTS).members == 4
    assert CorpusTrainingConfig().resolved(STREAMED_DEFAULTS).members == 1
    assert CorpusTrainingConfig(members=2).resolved(CORPUS_DEFAULTS).members == 2
    assert CorpusTrainingConfig().resolved(CORPUS_DEFAULTS).drop_contradicted is True
    assert CorpusTrainingConfig().resolved(STREAMED_DEFAULTS).drop_contradicted is False  # opt-in: three more reads of every file
    assert CorpusTrainingConfig(drop_contradicted=False).resolved(CORPUS_DEFAULTS).drop_contradicted is False
    assert CorpusTrainingConfig(drop_contradicted=True).resolved(STREAMED_DEFAULTS).drop_contradicted is True
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="members"):
            CorpusTrainingConfig(members=bad)
        with pytest.raises(ParameterError, match="members"):
            PretrainConfig(members=bad)
    assert PretrainConfig(members=3).corpus_config().members == 3


def test_push_to_hub_then_load_the_ensemble_by_repo_id(trained, tmp_path, monkeypatch):
    """Against the loopback Hub: every member goes up, the marker files do not, and hf:// loads the same space."""
    from huggingface_hub import HfApi
    from servers.hub_server import hub_for_this_process

    from mmgene.align import EnsembleModel, load

    model, _, cells, _ = trained
    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as server:
        saved_at = model.meta["path"]
        model.push_to_hub(f"{server.user}/ensemble", token=server.token)
        assert model.meta["path"] == saved_at  # where the model lives is unchanged by its upload
        files = set(HfApi(endpoint=server.url, token=server.token).list_repo_files(f"{server.user}/ensemble"))
        assert {"README.md", "mmgene_ensemble.json", "member-0/modules.json", "member-2/mmgene_align.json", "text_encoder/modules.json"} <= files
        assert not any(f.endswith(".mmgene-output") for f in files)
        monkeypatch.setenv("HF_TOKEN", server.token)
        again = load(f"hf://{server.user}/ensemble")
    assert isinstance(again, EnsembleModel) and again.meta["path"].startswith("hf://")
    assert np.array_equal(again.encode_cells(cells[:6]), model.encode_cells(cells[:6]))


def test_member_cards_load_the_member_from_where_it_is_saved(trained):
    """Each member's README loads it from its folder inside the ensemble (was the staging folder, gone
    once the ensemble was renamed into place)."""
    _, out, _, _ = trained
    for i in range(3):
        card = (out / f"member-{i}" / "README.md").read_text()
        assert f'load("{out / f"member-{i}"}")' in card
        assert ".tmp" not in card
