"""Training one model across the datasets of a corpus (issue 18 item 3): balance, ontology mask, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hostile import assert_refused, run_cli_here

HUMAN_GENES = ["CD3E", "CD3D", "CD8A", "MS4A1", "CD79A", "LYZ", "NKG7", "GNLY", "ACTB", "MALAT1"]
MOUSE_GENES = ["Cd3e", "Cd3d", "Cd8a", "Ms4a1", "Cd79a", "Lyz2", "Nkg7", "Gm12345", "Actb", "Malat1"]


def _adata(genes: list[str], classes: list[tuple[str, str, list[int]]], per_class: int, seed: int):
    """Counts with each class expressing its own marker genes (column positions), plus ontology ids."""
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    rows, labels, ids = [], [], []
    for name, term, markers in classes:
        for _ in range(per_class):
            counts = rng.poisson(1.0, len(genes)).astype(np.float32)
            counts[markers] += rng.poisson(20.0, len(markers))
            counts[-1] += 5
            rows.append(counts)
            labels.append(name)
            ids.append(term)
    obs = pd.DataFrame({"cell_type": labels, "cell_type_ontology_term_id": ids}, index=[f"c{i}" for i in range(len(rows))])
    var = pd.DataFrame({"gene_symbol": genes}, index=genes)
    return anndata.AnnData(X=sp.csr_matrix(np.vstack(rows)), obs=obs, var=var)


def _manifest(tmp_path, entries: list[tuple[str, str, object]], tissues: tuple[str, ...] = ()):
    lines = ["path,dataset,label_col,ontology_col,species,tissue"]
    for k, (name, species, adata) in enumerate(entries):
        path = tmp_path / f"{name}.h5ad"
        adata.write_h5ad(path)
        lines.append(f"{path.name},{name},cell_type,cell_type_ontology_term_id,{species},{tissues[k] if tissues else 'blood'}")
    manifest = tmp_path / "corpus.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.fixture()
def tiny_manifest(tmp_path):
    human = _adata(HUMAN_GENES, [("T", "CL:0000084", [0, 1, 2]), ("B", "CL:0000236", [3, 4])], 12, 0)
    mouse = _adata(
        MOUSE_GENES,
        [("T cells", "CL:0000625", [0, 1, 2]), ("B cells", "CL:0000236", [3, 4]), ("NK", "CL:0000623", [6, 7])],
        12,
        1,
    )
    return _manifest(tmp_path, [("human_pbmc", "human", human), ("mouse_pbmc", "mouse", mouse)])


def test_balanced_rows_exact_counts():
    from mmgene.align.balance import balanced_rows

    labels = [np.array([0, 0, 0, 0, 0, 1]), np.array([2, 2, 3, 3, 3, 3, 3, 3, 4])]
    picked = balanced_rows(labels, 7, seed=3)
    assert [len(p) for p in picked] == [7, 7]
    assert np.bincount(labels[0][picked[0]]).tolist() == [4, 3]  # the lone row of class 1 three times
    assert sorted(picked[0][labels[0][picked[0]] == 1].tolist()) == [5, 5, 5]
    assert np.bincount(labels[1][picked[1]], minlength=5)[2:].tolist() == [3, 2, 2]
    assert len(set(picked[1][labels[1][picked[1]] == 3].tolist())) == 2  # no repeat while rows are left
    again = balanced_rows(labels, 7, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(picked, again))


def test_corpus_pairs_balanced_human_symbols_and_global_classes(tiny_manifest):
    from mmgene.align.config import AlignConfig, CorpusTrainingConfig
    from mmgene.align.corpus_train import corpus_pairs
    from mmgene.corpus import read_corpus
    from mmgene.pairs.config import PairsConfig

    corpus = read_corpus(tiny_manifest)
    before = corpus["mouse_pbmc"].adata.var.copy()
    config = AlignConfig(pairs=PairsConfig(marker_share=0.0, panel_share=0.0))
    pairs, record = corpus_pairs(corpus, inputs=("genes",), config=config, balance=CorpusTrainingConfig(rows_per_dataset=12))
    train = pairs["train"]
    dataset = np.array([n.split(":")[0] for n in train["obs_name"]])
    labels = np.asarray(train["label"])
    assert (dataset == "human_pbmc").sum() == 12 and (dataset == "mouse_pbmc").sum() == 12
    names = pairs.classes
    per_class = {d: {names[k]: int((labels[dataset == d] == k).sum()) for k in set(labels[dataset == d])} for d in set(dataset)}
    assert per_class == {
        "human_pbmc": {"T cell": 6, "B cell": 6},
        "mouse_pbmc": {"CD8-positive, alpha-beta T cell": 4, "B cell": 4, "natural killer cell": 4},
    }
    # B cell (CL:0000236) is one class across the two datasets
    assert sorted(names) == sorted(["T cell", "B cell", "CD8-positive, alpha-beta T cell", "natural killer cell"])
    assert sorted(record["dataset_classes"]["mouse_pbmc"]) == ["B cell", "CD8-positive, alpha-beta T cell", "natural killer cell"]
    # the mouse cells read human symbols; genes without one (Lyz2, Gm12345) are gone
    mouse_genes = {g for cell, d in zip(train["cell"], dataset) if d == "mouse_pbmc" for g in cell["genes"]}
    assert mouse_genes and mouse_genes <= set(HUMAN_GENES) | {"NKG7"}
    assert "LYZ2" not in mouse_genes and "GM12345" not in mouse_genes
    assert corpus["mouse_pbmc"].adata.var.equals(before)  # the corpus's AnnData is untouched
    assert "test" in pairs and len(pairs["test"]) > 0


def test_corpus_captions_say_each_datasets_own_species_and_tissue(tmp_path):
    from mmgene.align.config import AlignConfig, CorpusTrainingConfig
    from mmgene.align.corpus_train import corpus_pairs
    from mmgene.corpus import read_corpus
    from mmgene.pairs.config import PairsConfig

    classes = [("T", "CL:0000084", [0, 1, 2]), ("B", "CL:0000236", [3, 4])]
    entries = [(f"d{k}", species, _adata(genes, classes, 8, k)) for k, (species, genes) in enumerate(
        [("human", HUMAN_GENES), ("mouse", MOUSE_GENES), ("human", HUMAN_GENES)]
    )]
    corpus = read_corpus(_manifest(tmp_path, entries, tissues=("blood", "lung", "")))
    config = AlignConfig(pairs=PairsConfig(marker_share=0.0, panel_share=0.0))
    pairs, _ = corpus_pairs(corpus, inputs=("genes",), config=config, balance=CorpusTrainingConfig(rows_per_dataset=60))
    train = pairs["train"]
    by_dataset: dict[str, list[str]] = {}
    for name, caption in zip(train["obs_name"], train["caption"]):
        by_dataset.setdefault(name.split(":")[0], []).append(caption)
    said = {d: {c for c in captions if "blood" in c or "lung" in c or "human" in c or "mouse" in c} for d, captions in by_dataset.items()}
    assert said["d0"] and all(c.endswith("from human blood") or c.startswith("a peripheral blood ") for c in said["d0"])
    assert said["d1"] and all(c.endswith("from mouse lung") or c.startswith("a lung ") for c in said["d1"])
    assert said["d2"] == set()  # no tissue in the manifest: the captions do not guess one


def test_related_terms_from_the_ontology():
    from mmgene.text.ontology import related_terms

    got = related_terms(["CL:0000084", "CL:0000625", "CL:0000236", ""])
    assert got[0, 1] and got[1, 0]  # T cell is an ancestor of CD8-positive, alpha-beta T cell
    assert not got[0, 2] and not got[2, 1]  # T cell vs B cell
    assert not got[3, :3].any() and got.diagonal().all()


class _Fixed:
    """Stands in for the sentence-transformer: each feature dict carries its embedding."""

    def __call__(self, features):
        return {"sentence_embedding": features["x"]}


def _ce(row: list[float], target: int, keep: list[int]) -> float:
    return -row[target] + math.log(sum(math.exp(row[j]) for j in keep))


def test_loss_with_related_mask_equals_hand_computation():
    import torch

    from mmgene.align.loss import SymmetricInfoNCELoss

    logits = [[2.0, 1.0, 0.0], [0.5, 3.0, 1.0], [1.0, 0.0, 2.0]]
    cells = torch.eye(3)
    texts = torch.tensor(logits).T.contiguous()  # cells @ texts.T == logits
    related = np.array([[True, True, False], [True, True, False], [False, False, True]])
    loss = SymmetricInfoNCELoss(_Fixed(), temperature=1.0, related=related)
    got = loss([{"x": cells}, {"x": texts}], torch.tensor([0, 1, 2])).item()
    cols = [list(c) for c in zip(*logits)]
    c2t = (_ce(logits[0], 0, [0, 2]) + _ce(logits[1], 1, [1, 2]) + _ce(logits[2], 2, [0, 1, 2])) / 3
    t2c = (_ce(cols[0], 0, [0, 2]) + _ce(cols[1], 1, [1, 2]) + _ce(cols[2], 2, [0, 1, 2])) / 3
    assert got == pytest.approx((c2t + t2c) / 2, rel=1e-6)
    # without the matrix only same-class pairs are masked (none here): plain CLIP
    plain = SymmetricInfoNCELoss(_Fixed(), temperature=1.0)([{"x": cells}, {"x": texts}], torch.tensor([0, 1, 2])).item()
    full = [0, 1, 2]
    expected = (sum(_ce(logits[i], i, full) for i in full) + sum(_ce(cols[i], i, full) for i in full)) / 6
    assert plain == pytest.approx(expected, rel=1e-6)


def test_train_corpus_on_shared_datasets_saves_a_model_that_reads_mouse_cells(shared_dir, tmp_path):
    from mmgene.align import CorpusTrainingConfig, ModelConfig, TrainingConfig, load, train_corpus
    from mmgene.corpus import read_corpus

    base = shared_dir / "corpus"
    manifest = tmp_path / "two.csv"
    manifest.write_text(
        "path,dataset,label_col,ontology_col,species,tissue\n"
        f"{base / 'baron_pancreas_human.h5ad'},baron,cell_type_name,cell_type_ontology_term_id,human,pancreas\n"
        f"{base / 'zilionis_mouse_lung.h5ad'},zilionis,cell_type_name,cell_type_ontology_term_id,mouse,lung\n"
    )
    corpus = read_corpus(manifest)
    out = tmp_path / "model"
    model = train_corpus(
        corpus,
        model=ModelConfig(gene_bridge=False),
        training=TrainingConfig(max_steps=20, batch_size=32),
        balance=CorpusTrainingConfig(rows_per_dataset=160, members=2),
        out=out,
    )
    assert model.meta["datasets"] == ["baron", "zilionis"]
    assert sorted(model.meta["dataset_classes"]["zilionis"]) == ["B cell", "T cell", "natural killer cell", "neutrophil"]
    assert model.meta["balance"]["rows_per_dataset"] == 160
    # a corpus in memory trains with hard negatives by default: 320 rows / 32 = 10 steps a round, so 2 rounds
    for member in model.members:
        assert (member.config.training.hard_negatives, member.meta["run"]["rounds"]) == (5, 2)
    loaded = load(out)
    assert [m.config.training.seed for m in loaded.members] == [0, 1]
    assert loaded.meta["dataset_classes"] == model.meta["dataset_classes"]
    mouse = corpus["zilionis"].adata[:16].copy()  # its own (mouse) symbols: the vocabulary matches case-insensitively
    vecs = loaded.encode_cells(mouse)
    assert vecs.shape[0] == 16 and np.isfinite(vecs).all()
    assert np.abs(vecs).sum(axis=1).min() > 0


def test_cli_train_corpus(tiny_manifest, tmp_path):
    out = tmp_path / "model"
    res = run_cli_here("train", "--corpus", tiny_manifest, "--out", out, "--max-steps", "2", "--batch-size", "8", "--no-gene-bridge")
    assert res.returncode == 0, res.stderr
    import json

    assert json.loads((out / "mmgene_ensemble.json").read_text())["members"] == [f"member-{i}" for i in range(4)]  # the default
    meta = json.loads((out / "member-0" / "mmgene_align.json").read_text())
    assert meta["datasets"] == ["human_pbmc", "mouse_pbmc"]
    assert set(meta["dataset_classes"]) == {"human_pbmc", "mouse_pbmc"}
    assert meta["config"]["training"]["hard_negatives"] == 5  # the corpus default, recorded as run
    assert meta["config"]["model"]["query_channel"] == 0.7


def test_cli_train_corpus_refuses_bad_input(tiny_manifest, tmp_path):
    h5ad = tmp_path / "human_pbmc.h5ad"
    assert_refused(["train", h5ad, "--corpus", tiny_manifest, "--out", tmp_path / "m"], [tmp_path], contains="exactly one")
    assert_refused(["train", "--out", tmp_path / "m"], [tmp_path], contains="exactly one")
    one = _adata(HUMAN_GENES, [("T", "CL:0000084", [0, 1])], 8, 2)
    single = tmp_path / "single"
    single.mkdir()
    lonely = _manifest(single, [("only", "human", one)])
    assert_refused(["train", "--corpus", lonely, "--out", tmp_path / "m"], [tmp_path], contains="at least 2 classes")
    assert_refused(
        ["train", h5ad, "--label-col", "cell_type", "--rows-per-dataset", "4", "--out", tmp_path / "m"], [tmp_path], contains="--corpus"
    )


def test_cli_train_corpus_maps_mouse_genes_through_an_orthology_table(tiny_manifest, tmp_path):
    """--orthology reaches the corpus read as in `mmgene pretrain`: the model records the table used,
    its ambiguous rows dropped; a bad table is refused before training, and one AnnData refuses it."""
    import json

    table = tmp_path / "orthologs.csv"
    table.write_text("mouse_symbol,human_symbol\nLyz2,LYZ\nCd3e,CD3E\nGm12345,ACTB\nActb,ACTB\n")
    out = tmp_path / "model"
    res = run_cli_here(
        "train", "--corpus", tiny_manifest, "--orthology", table, "--out", out, "--max-steps", "1", "--members", "1",
        "--batch-size", "8", "--no-gene-bridge",
    )
    assert res.returncode == 0, res.stderr
    meta = json.loads((out / "mmgene_align.json").read_text())
    assert meta["orthology"] == {"source": "orthology table orthologs.csv", "pairs_kept": 2, "one_to_many": 0, "many_to_one": 2}

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("mouse_symbol,human_symbol\nCd3e,CD3E,extra,more\n")
    line = assert_refused(["train", "--corpus", tiny_manifest, "--orthology", ragged, "--out", tmp_path / "m2"], [tmp_path])
    assert line.startswith("mmgene: error: a row of the orthology table has 4 fields but its header has 2") and str(ragged) in line
    assert_refused(
        ["train", "--corpus", tiny_manifest, "--orthology", tmp_path / "none.csv", "--out", tmp_path / "m2"], [tmp_path],
        contains="none.csv",
    )
    line = assert_refused(
        ["train", tmp_path / "human_pbmc.h5ad", "--label-col", "cell_type", "--orthology", table, "--out", tmp_path / "m2"], [tmp_path]
    )
    assert line == (
        "mmgene: error: --orthology maps the genes of a corpus's mouse datasets to human symbols; one AnnData is trained on its "
        "own genes. Where: option --orthology of mmgene train FILE. What to do: leave --orthology out, or train on a corpus "
        "(--corpus MANIFEST, folder or file) to match mouse genes to human ones."
    )


def test_corpus_mining_skips_related_classes_and_names_no_origin(tiny_manifest, monkeypatch):
    """The loss masks a class's ancestors and descendants, so mining never draws them (a "T cell" negative
    for the mouse CD8 T cells would train nothing); mined captions say no species or tissue."""
    import mmgene.pairs.hard_negatives as hn
    from mmgene.align import CorpusTrainingConfig, ModelConfig, TrainingConfig, train_corpus
    from mmgene.corpus import read_corpus
    from mmgene.pairs.config import PairsConfig

    seen = []
    real = hn.mine_hard_negatives

    def mine(dataset, model, captions_by_label, top_k=3, seed=0, related=None):
        mined = real(dataset, model, captions_by_label, top_k=top_k, seed=seed, related=related)
        seen.append((captions_by_label, related, mined))
        return mined

    monkeypatch.setattr(hn, "mine_hard_negatives", mine)
    aligned = train_corpus(
        read_corpus(tiny_manifest),
        pairs=PairsConfig(marker_share=0.0, panel_share=0.0, max_genes=16),
        model=ModelConfig(gene_dim=16, dim=16, gene_bridge=False),
        training=TrainingConfig(max_steps=4, batch_size=8, hard_negatives=3, mine_every=2, seed=0),
        balance=CorpusTrainingConfig(members=1, rows_per_dataset=24, drop_contradicted=False),
    )
    assert len(seen) == 1  # rounds at steps 0 and 2: one mining
    captions, related, mined = seen[0]
    names = aligned.meta["classes"]
    t_cell, cd8 = names.index("T cell"), names.index("CD8-positive, alpha-beta T cell")
    assert related is not None and related[t_cell, cd8] and related[cd8, t_cell]
    own, negative_of = np.asarray(mined["label"]), np.asarray(mined["negative_label"])
    assert len(own) == 48 and not related[own, negative_of].any() and (own != negative_of).all()
    assert set(negative_of[own == t_cell].tolist()) <= {names.index("B cell"), names.index("natural killer cell")}
    said = [c for caps in captions.values() for c in caps if "blood" in c or "human" in c or "mouse" in c]
    assert said == []


def test_corpus_pairs_warn_about_datasets_matched_by_label_only(tmp_path, capsys):
    from mmgene.align.config import AlignConfig, CorpusTrainingConfig
    from mmgene.align.corpus_train import corpus_pairs
    from mmgene.corpus import read_corpus
    from mmgene.pairs.config import PairsConfig

    human = _adata(HUMAN_GENES, [("T", "CL:0000084", [0, 1, 2]), ("B", "CL:0000236", [3, 4])], 8, 0)
    other = _adata(HUMAN_GENES, [("T cells", "CL:0000084", [0, 1, 2]), ("B cells", "CL:0000236", [3, 4])], 8, 1)
    manifest = _manifest(tmp_path, [("with_ids", "human", human), ("plain", "human", other)])
    lines = manifest.read_text().splitlines()
    lines[2] = lines[2].replace(",cell_type_ontology_term_id,", ",,")  # the second dataset gives no ontology column
    manifest.write_text("\n".join(lines) + "\n")
    config = AlignConfig(pairs=PairsConfig(marker_share=0.0, panel_share=0.0))
    balance = CorpusTrainingConfig(rows_per_dataset=16)
    pairs, _ = corpus_pairs(read_corpus(manifest), inputs=("genes",), config=config, balance=balance)
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 1 and "['plain'] have no Cell Ontology ids" in warned[0] and "labels harmonise" in warned[0]
    assert sorted(pairs.classes) == ["B cell", "B cells", "T cell", "T cells"]  # what the warning is about
    both = tmp_path / "both"
    both.mkdir()
    corpus_pairs(read_corpus(_manifest(both, [("a", "human", human), ("b", "human", other)])), inputs=("genes",), config=config, balance=balance)
    assert "warning" not in capsys.readouterr().err  # every dataset has ids: nothing to say
