"""Queries: the labelling rule, unknown rejection and kNN transfer on PBMC 3k, text queries in GenePT spaces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
try:
    from test_index import brute_force, pbmc3k_pca
except ImportError:  # tests collected as a package
    from tests.test_index import brute_force, pbmc3k_pca

from mmgene.align.config import ModelConfig
from mmgene.errors import MissingColumnError, ParameterError

LEFT_OUT = "B cells"


@pytest.fixture(scope="session")
def pca(_pbmc3k_cached):
    return pbmc3k_pca(_pbmc3k_cached)


@pytest.fixture(scope="session")
def split(pca):
    """A seeded 50/50 split of PBMC 3k into reference and query cells."""
    rng = np.random.default_rng(0)
    ref = np.zeros(len(pca.names), bool)
    ref[rng.permutation(len(pca.names))[: len(pca.names) // 2]] = True
    return ref


# ---------------------------------------------------------------------------------------- the rule
def test_assign_labels_rule_on_a_hand_made_matrix():
    from mmgene.query import assign_labels

    scores = np.array([[3.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.2, 0.1, 0.0], [-1.0, -2.0, -3.0]])
    res = assign_labels(scores, ["a", "b", "c"], temperature=1.0, min_prob=0.5, thresholds=0.0)
    p0 = np.exp(3) / (np.exp(3) + 2)
    np.testing.assert_allclose(res.score[0], p0, rtol=1e-6)
    np.testing.assert_allclose(res.probs.sum(axis=1), 1.0, rtol=1e-6)
    # row 1: a tie (p = 0.42) -> unknown; row 2: p_max < 0.5 -> unknown; row 3: best score below 0
    assert res.label.tolist() == ["a", "unknown", "unknown", "unknown"]
    assert res.best.tolist() == ["a", "a", "a", "a"]
    sharp = assign_labels(scores, ["a", "b", "c"], temperature=0.01, min_prob=0.5, thresholds=[0.0, 0.0, 0.0])
    assert sharp.label.tolist() == ["a", "unknown", "a", "unknown"]  # row 1 is an exact tie: p = 0.5 each
    per_label = assign_labels(scores, ["a", "b", "c"], temperature=0.01, min_prob=0.0, thresholds=[0.5, -9, -9])
    assert per_label.label.tolist() == ["a", "a", "unknown", "unknown"]
    with pytest.raises(ParameterError, match="shape"):
        assign_labels(scores, ["a", "b"])
    with pytest.raises(ParameterError, match="given twice"):
        assign_labels(scores, ["a", "b", "a"])
    with pytest.raises(ParameterError, match="'unknown' is the answer"):
        assign_labels(scores, ["a", "b", "unknown"])
    with pytest.raises(ParameterError, match="temperature"):
        assign_labels(scores, ["a", "b", "c"], temperature=0)


def test_calibrate_recovers_temperature_and_sets_quantile_thresholds():
    from mmgene.query import calibrate
    from mmgene.query.labelling import softmax

    rng = np.random.default_rng(1)
    scores = rng.normal(0, 1, (20000, 4))
    probs = softmax(scores, 0.5)
    truth = np.array(["w", "x", "y", "z"])[(probs.cumsum(axis=1) > rng.random((20000, 1))).argmax(axis=1)]
    cal = calibrate(scores, truth, ["w", "x", "y", "z"], alpha=0.1)
    assert abs(cal.temperature - 0.5) < 0.03
    own = scores[np.arange(20000), pd.Categorical(truth, categories=["w", "x", "y", "z"]).codes]
    for i, lab in enumerate("wxyz"):
        mine = own[truth == lab]
        assert cal.thresholds[i] == np.sort(mine)[int(np.floor(0.1 * (len(mine) - 1)))]
    with pytest.raises(ParameterError, match="no labelled cell of 'v'"):
        calibrate(scores[:, :3], truth, ["v", "x", "y"])
    with pytest.raises(ParameterError, match="alpha"):
        calibrate(scores, truth, ["w", "x", "y", "z"], alpha=1.5)


def test_left_out_type_comes_back_unknown(pca, split):
    """Reference without B cells: calibrated centroid scores send held-out B cells to 'unknown', not the rest."""
    from mmgene.query import assign_labels, calibrate, centroid_scores

    y = pca.labels
    ref = split & (y != LEFT_OUT)
    labels = [lab for lab in pd.unique(y) if lab != LEFT_OUT]
    cal = calibrate(centroid_scores(pca.X[ref], pca.X[ref], y[ref], labels), y[ref], labels, alpha=0.05)
    query = ~split
    res = assign_labels(centroid_scores(pca.X[query], pca.X[ref], y[ref], labels), labels,
                        temperature=cal.temperature, min_prob=0.5, thresholds=cal.thresholds)
    novel = y[query] == LEFT_OUT
    unknown = res.label == "unknown"
    known_ok = (res.label == y[query])[~novel & ~unknown].mean()
    print(f"\nleft-out {LEFT_OUT}: {unknown[novel].mean():.3f} unknown; known types: {unknown[~novel].mean():.3f} unknown, "
          f"accuracy of the rest {known_ok:.3f} (T={cal.temperature:.4f})")
    assert novel.sum() > 100
    assert unknown[novel].mean() >= 0.9
    assert unknown[~novel].mean() <= 0.12
    assert known_ok >= 0.88


# ------------------------------------------------------------------------------------ kNN transfer
@pytest.fixture(scope="session")
def reference_index(pca, split):
    from mmgene.index import CellIndex

    return CellIndex.from_vectors(pca.X[split], pca.names[split], pca.obs[split], embedding_key="X_pca")


def test_knn_transfer_to_held_out_cells(pca, split, reference_index):
    from mmgene.query import transfer_labels

    truth = pca.labels[~split]
    accs = {}
    for weighting in ("uniform", "distance"):
        out = transfer_labels(reference_index, pca.X[~split], "cell_type", k=15, weighting=weighting)
        accs[weighting] = float((out["label"].to_numpy() == truth).mean())
        assert out["confidence"].between(0, 1).all() and (out["label"] != "unknown").all()
    print(f"\nkNN transfer PBMC 3k -> held-out PBMC 3k (k=15): accuracy {accs}")
    assert accs["uniform"] >= 0.9 and accs["distance"] >= 0.9
    # confidence is informative: confident calls are more often right
    out = transfer_labels(reference_index, pca.X[~split], "cell_type", k=15, min_confidence=0.9)
    sure = out["label"].to_numpy() != "unknown"
    assert (out["label"].to_numpy() == truth)[sure].mean() > accs["distance"]
    assert (out["best"].to_numpy() == truth)[~sure].mean() < accs["distance"]


def test_knn_transfer_flags_cells_off_the_reference(pca, split):
    from mmgene.index import CellIndex
    from mmgene.query import transfer_labels

    ref = split & (pca.labels != LEFT_OUT)
    index = CellIndex.from_vectors(pca.X[ref], pca.names[ref], pca.obs[ref])
    out = transfer_labels(index, pca.X[~split], "cell_type", k=15, novelty_alpha=0.05)
    novel = pca.labels[~split] == LEFT_OUT
    unknown = out["label"].to_numpy() == "unknown"
    assert out.attrs["novelty_threshold"] is not None
    assert unknown[novel].mean() >= 0.9 and unknown[~novel].mean() <= 0.1


def test_knn_transfer_writes_obs_and_checks_arguments(pbmc3k, pca, split, reference_index):
    from mmgene.query import transfer_labels

    query = pbmc3k[~split].copy()
    query.obsm["X_pca"] = pca.X[~split]
    out = transfer_labels(reference_index, query, "cell_type", k=5, key_added="transferred")
    assert out.index.tolist() == list(query.obs_names)
    assert query.obs["transferred"].astype(str).tolist() == out["label"].tolist()
    assert "unknown" in query.obs["transferred"].cat.categories
    assert query.uns["mmgene"]["transferred"]["k"] == 5
    with pytest.raises(MissingColumnError, match="louvain"):
        transfer_labels(reference_index, query, "louvain")
    with pytest.raises(ParameterError, match="weighting"):
        transfer_labels(reference_index, query, "cell_type", weighting="gaussian")
    del query.obsm["X_pca"]
    with pytest.raises(MissingColumnError, match="X_pca"):
        transfer_labels(reference_index, query, "cell_type")
    from mmgene.index import CellIndex

    bare = CellIndex.from_vectors(pca.X[split], pca.names[split], pca.obs[split])  # no obsm key, no model
    query.obsm["X_pca"] = pca.X[~split]
    with pytest.raises(ParameterError, match="records neither an obsm key nor a model") as refused:
        transfer_labels(bare, query, "cell_type")
    assert "mmgene index build FILE --embedding KEY" in refused.value.fix


def test_knn_transfer_writes_by_default_and_copy_returns_a_new_anndata(pbmc3k, pca, split, reference_index):
    from mmgene.query import transfer_labels

    query = pbmc3k[~split].copy()
    query.obsm["X_pca"] = pca.X[~split]
    out = transfer_labels(reference_index, query, "cell_type", k=5)
    assert out.attrs["key_added"] == "cell_type_transferred"
    assert query.obs["cell_type_transferred"].astype(str).tolist() == out["label"].tolist()
    assert "cell_type_transferred_confidence" in query.obs
    fresh = pbmc3k[~split].copy()
    fresh.obsm["X_pca"] = pca.X[~split]
    copied = transfer_labels(reference_index, fresh, "cell_type", k=5, key_added="knn", copy=True)
    assert "knn" not in fresh.obs and copied.obs["knn"].astype(str).tolist() == out["label"].tolist()
    assert transfer_labels(reference_index, pca.X[~split], "cell_type", k=5).attrs["key_added"] is None
    with pytest.raises(ParameterError, match="copy=True needs an AnnData"):
        transfer_labels(reference_index, pca.X[~split], "cell_type", copy=True)


def test_knn_transfer_calls_a_query_cell_without_a_vector_unknown_and_maps_the_rest_as_before(pca, split, reference_index):
    from mmgene.query import transfer_labels

    query = pca.X[~split][:50].astype(np.float32)
    before = transfer_labels(reference_index, query, "cell_type", k=15)
    holed = query.copy()
    holed[3] = np.nan  # a GenePT-w cell without a matched gene
    holed[7] = 0.0  # the same written as zeros (on_empty='zero')
    after = transfer_labels(reference_index, holed, "cell_type", k=15)
    assert after["label"].iloc[[3, 7]].tolist() == ["unknown", "unknown"]
    assert (after["confidence"].iloc[[3, 7]] == 0).all() and after["similarity"].iloc[[3, 7]].isna().all()
    rest = np.setdiff1d(np.arange(50), [3, 7])
    pd.testing.assert_frame_equal(after.iloc[rest], before.iloc[rest])


def test_transfer_writes_over_no_column_it_did_not_write(pca, split, reference_index):
    import anndata as ad

    from mmgene.query import transfer_labels

    rows = np.flatnonzero(~split)[:20]
    query = ad.AnnData(obs=pd.DataFrame({"cell_type": pca.labels[rows]}, index=pca.names[rows]))
    query.obsm["X_pca"] = pca.X[rows].astype(np.float32)
    truth = query.obs["cell_type"].copy()
    with pytest.raises(ParameterError, match=r"obs\['cell_type'\] exists and mmgene did not write it"):
        transfer_labels(reference_index, query, "cell_type", key_added="cell_type")
    with pytest.raises(ParameterError, match="cannot name an AnnData key"):
        transfer_labels(reference_index, query, "cell_type", key_added="")
    pd.testing.assert_series_equal(query.obs["cell_type"], truth)
    assert list(query.obs.columns) == ["cell_type"]
    transfer_labels(reference_index, query, "cell_type")
    transfer_labels(reference_index, query, "cell_type", k=5)  # its own columns: replaced
    assert list(query.obs.columns) == ["cell_type", "cell_type_transferred", "cell_type_transferred_confidence"]
    assert query.uns["mmgene"]["cell_type_transferred"]["k"] == 5


# --------------------------------------------------------------------------- text in GenePT spaces
@pytest.fixture(scope="session")
def encoder():
    from mmgene.text.encoders import text_encoder

    return text_encoder("minilm")


@pytest.fixture(scope="session")
def small(_pbmc3k_cached, encoder):
    """120 PBMC 3k cells (15 of each of the 8 types, fewer where rarer) with GenePT-s (32 genes a sentence)."""
    import mmgene.embed

    obs = _pbmc3k_cached.obs
    take = np.sort(np.concatenate([np.flatnonzero(obs["cell_type"].to_numpy() == t)[:15] for t in obs["cell_type"].cat.categories]))
    adata = _pbmc3k_cached[take].copy()
    mmgene.embed.genept_s(adata, encoder=encoder, top_k=32)
    return adata


def test_text_to_cells_is_exact_in_the_genept_s_space(small, encoder, tmp_path):
    from mmgene.index import build, load
    from mmgene.query import GenePTSpace, text_to_cells
    from mmgene.query.space import JointSpace

    space = GenePTSpace("s", encoder=encoder)
    assert isinstance(space, JointSpace)
    index = build(small, "X_genept_s", obs_columns=["cell_type"])
    assert index.model == "genept-s"
    texts = ["cytotoxic natural killer cell", "B lymphocyte expressing CD79A and MS4A1"]
    hits = text_to_cells(index, texts, model=space, k=7)
    assert hits["query"].tolist() == [texts[0]] * 7 + [texts[1]] * 7
    ref_scores, ref_pos = brute_force(small.obsm["X_genept_s"], encoder.encode(texts), 7)
    np.testing.assert_allclose(hits["score"].to_numpy().reshape(2, 7), ref_scores, atol=1e-5)
    assert hits["cell_id"].tolist() == list(small.obs_names[ref_pos.ravel()])
    # a cell's own sentence finds that cell first
    from mmgene.cells import sentences
    from mmgene.embed.genept import SENTENCE_PREFIX

    own = SENTENCE_PREFIX + sentences(small[[5]], top_k=32, inplace=False)[0]
    first = text_to_cells(index, own, model=space, k=1)
    assert first["cell_id"].tolist() == [small.obs_names[5]] and first["score"].iloc[0] > 0.999
    # the model recorded in the saved index is used when none is given (here: the default MiniLM)
    index.save(tmp_path / "s")
    again = text_to_cells(load(tmp_path / "s"), texts, k=7)
    assert again["cell_id"].tolist() == hits["cell_id"].tolist()
    with pytest.raises(ParameterError, match="empty"):
        text_to_cells(index, ["  "], model=space)


def test_zero_shot_annotation_writes_labels_scores_and_provenance(small, encoder, tmp_path):
    from mmgene.query import GenePTSpace, annotate

    labels = ["B cell", "T cell", "natural killer cell", "monocyte"]
    adata = annotate(small, labels, GenePTSpace("s", encoder=encoder), copy=True)
    assert "mmgene_label" not in small.obs
    lab = adata.obs["mmgene_label"]
    assert list(lab.cat.categories) == [*labels, "unknown"] and lab.notna().all()
    probs = adata.obsm["mmgene_probs"]
    assert list(probs.columns) == labels
    np.testing.assert_allclose(probs.to_numpy().sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(adata.obs["mmgene_score"], probs.to_numpy().max(axis=1), rtol=1e-6)
    called = lab.astype(str) != "unknown"
    assert (adata.obs["mmgene_score"][called] >= 0.5).all()
    assert (probs.to_numpy()[called.to_numpy()].argmax(axis=1) == pd.Categorical(lab[called], categories=labels).codes).all()
    rec = adata.uns["mmgene"]["mmgene_label"]
    assert rec["labels"] == labels and rec["standardized"] is True and rec["min_prob"] == 0.5
    assert sum(rec["label_counts"]) + rec["unknown_cells"] == small.n_obs
    assert rec["label_counts"] == [int((lab == name).sum()) for name in labels]
    assert rec["prompts"] == "mmgene.text.prompts.class_prompts" and rec["markers"] is True
    assert len(rec["prompts_per_label"]) == 4 and min(rec["prompts_per_label"]) >= 5
    assert rec["origin"] == ""
    # told where the cells come from, every name of a label gets one more prompt that says it
    lung = annotate(small, labels, GenePTSpace("s", encoder=encoder), species="mouse", tissue="lung", copy=True)
    said = lung.uns["mmgene"]["mmgene_label"]
    assert said["origin"] == "mouse lung"
    assert all(b > a for a, b in zip(rec["prompts_per_label"], said["prompts_per_label"]))
    # a stricter rule can only add unknowns
    strict = annotate(small, labels, GenePTSpace("s", encoder=encoder), min_prob=0.9, min_z=1.0, copy=True)
    assert (strict.obs["mmgene_label"].astype(str) == "unknown").sum() >= (~called).sum()
    with pytest.raises(ParameterError, match="placeholder"):
        annotate(small, labels, GenePTSpace("s", encoder=encoder), prompts=["a cell"], copy=True)
    # label names with '/' (pbmc68k's) survive a round trip through .h5ad; own templates are recorded
    slashed = ["CD4+/CD45RO+ Memory", "CD19+ B"]
    own = annotate(small, slashed, GenePTSpace("s", encoder=encoder), prompts=["a {label}."], copy=True)
    own.write_h5ad(tmp_path / "a.h5ad")
    import anndata as ad

    back = ad.read_h5ad(tmp_path / "a.h5ad").uns["mmgene"]["mmgene_label"]
    assert list(back["labels"]) == slashed and list(back["prompts"]) == ["a {label}."] and not back["markers"]
    assert int(np.sum(back["label_counts"])) + int(back["unknown_cells"]) == small.n_obs
    with pytest.raises(ParameterError, match="no labels"):
        annotate(small, [], GenePTSpace("s", encoder=encoder), copy=True)


def test_gene_contributions_add_up_to_the_genept_w_score(small, encoder):
    import mmgene.embed
    from mmgene.genes.default import default_gene_vectors
    from mmgene.index import build
    from mmgene.query import GenePTSpace, explain_hits, gene_contributions, text_to_cells

    counts = np.asarray(small.X.sum(axis=0)).ravel()
    genes = list(small.var["gene_symbol"].to_numpy()[np.argsort(-counts, kind="stable")[:30]])
    gene_vectors = default_gene_vectors(encoder, genes=genes)
    adata = small.copy()
    mmgene.embed.genept_w(adata, gene_vectors=gene_vectors)
    space = GenePTSpace("w", encoder=encoder)
    index = build(adata, "X_genept_w", obs_columns=["cell_type"])
    hits = text_to_cells(index, "antigen presentation by MHC class II", model=space, k=5)
    q = space.encode_text(["antigen presentation by MHC class II"])[0]
    table = gene_contributions(adata, hits["cell_id"].tolist(), q, gene_vectors, top_n=500)
    totals = table.groupby("cell_id", sort=False)["contribution"].sum()
    np.testing.assert_allclose(totals[hits["cell_id"]].to_numpy(), hits["score"].to_numpy(), atol=2e-5)
    np.testing.assert_allclose(table.groupby("cell_id", sort=False)["score"].first()[hits["cell_id"]], hits["score"], atol=2e-5)
    top = gene_contributions(adata, hits["cell_id"].tolist()[:1], q, gene_vectors, top_n=3)
    assert top["rank"].tolist() == [1, 2, 3] and top["contribution"].is_monotonic_decreasing
    assert set(top["gene"]) <= set(gene_vectors.symbols)
    explained = explain_hits(hits, adata, space, gene_vectors=gene_vectors, top_n=3)
    assert explained["top_genes"].str.split().map(len).tolist() == [3] * 5
    assert explained["top_genes"].iloc[0].split()[0].split(":")[0] == top["gene"].iloc[0]
    with pytest.raises(ParameterError, match="GenePT-w"):
        explain_hits(hits, adata, GenePTSpace("s", encoder=encoder), gene_vectors=gene_vectors)
    with pytest.raises(ParameterError, match="dimension"):
        gene_contributions(adata, hits["cell_id"].tolist(), q[:10], gene_vectors)


def test_load_space_specs(encoder):
    from mmgene.query import GenePTSpace, load_space

    assert load_space("genept-s").name == "genept-s"
    assert load_space("genept-w:openai:text-embedding-3-small").name == "genept-w:openai:text-embedding-3-small"
    space = GenePTSpace("s", encoder=encoder)
    assert load_space(space) is space
    assert load_space("genept-w").describe() == {"model": "genept-w", "inputs": ["X_genept_w"]}
    with pytest.raises(ParameterError, match="unknown model 'nonsense'.*a model trained with `mmgene train`"):
        load_space("nonsense")
    with pytest.raises(ParameterError, match="no model given"):
        load_space(None)
    with pytest.raises(ParameterError, match="not a joint space"):
        load_space(3)
    with pytest.raises(ParameterError, match="variant"):
        GenePTSpace("x")


def test_aligned_model_folder_is_a_joint_space(small, tmp_path):
    """An (untrained) mmgene.align model saved to a folder serves text queries and annotation by its path."""
    pytest.importorskip("sentence_transformers")
    from mmgene.align import AlignedModel, build_model
    from mmgene.index import build
    from mmgene.query import annotate, load_space, text_to_cells

    adata = small.copy()
    st = build_model(
        [], ModelConfig(hidden=32, dim=16), obsm_keys=["X_genept_s"], obsm_dims=[adata.obsm["X_genept_s"].shape[1]], seed=0
    )
    folder = AlignedModel(st, ["X_genept_s"]).save(tmp_path / "model")
    space = load_space(folder)
    cells = space.encode_cells(adata)
    assert cells.shape == (120, 16)
    np.testing.assert_allclose(np.linalg.norm(cells, axis=1), 1.0, rtol=1e-5)
    adata.obsm["X_joint"] = cells
    index = build(adata, "X_joint", obs_columns=["cell_type"], model=str(folder))
    hits = text_to_cells(index, "natural killer cell", k=4)  # the index's recorded model folder encodes the text
    ref_scores, ref_pos = brute_force(cells, space.encode_text(["natural killer cell"]), 4)
    assert hits["cell_id"].tolist() == list(adata.obs_names[ref_pos[0]])
    np.testing.assert_allclose(hits["score"], ref_scores[0], atol=1e-5)
    annotate(adata, ["B cell", "T cell"], str(folder))
    assert adata.uns["mmgene"]["mmgene_label"]["model"] == str(folder)
    assert set(adata.obs["mmgene_label"].astype(str)) <= {"B cell", "T cell", "unknown"}


def test_annotation_calibrated_on_a_labelled_reference(small, encoder):
    from mmgene.query import GenePTSpace, annotate, calibrate
    from mmgene.query.labelling import label_prompts
    from mmgene.text.classes import class_vectors

    space = GenePTSpace("s", encoder=encoder)
    labels = ["B cells", "CD14+ Monocytes", "NK cells"]
    ref = small[small.obs["cell_type"].isin(labels).to_numpy()].copy()
    adata = annotate(small, labels, space, reference=(ref, "cell_type"), alpha=0.2, copy=True)
    rec = adata.uns["mmgene"]["mmgene_label"]
    vecs = class_vectors(space.encode_text, label_prompts(labels))
    cal = calibrate(ref.obsm["X_genept_s"] @ vecs.T, ref.obs["cell_type"].astype(str), labels, alpha=0.2)
    assert rec["calibrated_temperature"] == pytest.approx(cal.temperature)
    assert rec["thresholds"] == pytest.approx(cal.thresholds.tolist())
    assert rec["reference_cells"] == len(ref) and rec["standardized"] is False
    sims = small.obsm["X_genept_s"] @ vecs.T
    best = sims.argmax(axis=1)
    below = sims[np.arange(len(best)), best] < cal.thresholds[best]
    assert (adata.obs["mmgene_label"].astype(str).to_numpy()[below] == "unknown").all()
    with pytest.raises(MissingColumnError):
        annotate(small, labels, space, reference=(ref, "nope"), copy=True)
    with pytest.raises(ParameterError, match="refine and reference"):
        annotate(small, labels, space, reference=(ref, "cell_type"), refine=True, copy=True)


def test_refined_annotation_uses_the_refined_scores(small, encoder):
    from mmgene.query import GenePTSpace, annotate, assign_labels, expression_pcs, refine_scores
    from mmgene.query.labelling import label_prompts
    from mmgene.text.classes import class_vectors

    space = GenePTSpace("s", encoder=encoder)
    labels = ["B cell", "T cell", "natural killer cell", "monocyte"]
    adata = annotate(small, labels, space, refine=True, copy=True)
    rec = adata.uns["mmgene"]["mmgene_label"]
    assert rec["refined"] is True and "refined by self-training" in rec["rule"]
    scores = refine_scores(small.obsm["X_genept_s"] @ class_vectors(space.encode_text, label_prompts(labels)).T, expression_pcs(small))
    expected = assign_labels(scores, labels, min_prob=0.5, thresholds=0.0)
    assert adata.obs["mmgene_label"].astype(str).tolist() == list(expected.label)
    np.testing.assert_allclose(adata.obs["mmgene_score"], expected.score, rtol=1e-5)  # float32 cell vectors


# ------------------------------------------------------------------------ cells without any gene
def test_a_cell_that_expresses_no_gene_is_unknown_with_nan_scores_not_a_confident_label(_pbmc68k_cached, tmp_path):
    import anndata as ad
    import scipy.sparse as sp
    from tiny_models import tiny_model

    from mmgene.query import annotate

    source = _pbmc68k_cached
    counts = sp.csr_matrix(source.raw.X, dtype=np.float32)
    counts = sp.diags(np.where(np.isin(np.arange(counts.shape[0]), [5, 9]), 0.0, 1.0).astype(np.float32)) @ counts
    cells = ad.AnnData(counts.tocsr(), obs=source.obs[["bulk_labels"]].copy(), var=source.raw.var.copy())
    model = tiny_model(cells, tmp_path / "model", gene_bridge=False)
    labels = ["B cell", "T cell", "monocyte"]
    annotate(cells, labels, model, others=False, min_prob=0.0, min_z=None)
    label, score = cells.obs["mmgene_label"].astype(str).to_numpy(), cells.obs["mmgene_score"].to_numpy()
    assert label[[5, 9]].tolist() == ["unknown", "unknown"] and np.isnan(score[[5, 9]]).all()
    assert np.isnan(cells.obsm["mmgene_probs"].to_numpy()[[5, 9]]).all()
    rest = np.setdiff1d(np.arange(cells.n_obs), [5, 9])
    assert (label[rest] != "unknown").all() and np.isfinite(score[rest]).all()  # no rule rejects the others here
    record = cells.uns["mmgene"]["mmgene_label"]
    assert record["cells_without_genes"] == 2 and "expresses no gene" in record["rule"]
    # kNN transfer: encoded here by the model, or read from obsm where encode_cells recorded that it read genes
    from mmgene.index import CellIndex
    from mmgene.query import transfer_labels

    reference = CellIndex.from_vectors(
        model.encode_cells(_pbmc68k_cached), list(_pbmc68k_cached.obs_names), _pbmc68k_cached.obs[["bulk_labels"]], embedding_key="X_mmgene"
    )
    by_model = transfer_labels(reference, cells, "bulk_labels", model=model)
    model.encode_cells(cells, key_added="X_mmgene")
    from_obsm = transfer_labels(reference, cells, "bulk_labels")
    for out in (by_model, from_obsm):
        assert out["label"].iloc[[5, 9]].tolist() == ["unknown", "unknown"] and (out["label"].iloc[rest] != "unknown").all()
