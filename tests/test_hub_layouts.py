"""Dataset layouts, leak-free splits and chunk files (no server needed)."""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgene.errors import DataError, InputFileError, MissingColumnError, ParameterError
from mmgene.hub.chunks import read_chunk, sha256_file, var_fingerprint, write_chunks
from mmgene.hub.layouts import assign_splits, build_dataset

N = 60


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    X = sp.random(N, 30, density=0.3, random_state=1, format="csr", dtype=np.float32)
    X.data = np.ceil(X.data * 10)
    obs = pd.DataFrame(
        {
            "donor": [f"d{i % 6}" for i in range(N)],
            "cell_type": pd.Categorical(["T cell", "B cell", "monocyte", "NK cell"][i % 4] for i in range(N)),
            "label": rng.integers(0, 5, N),  # a column whose name mmgene uses itself
            "score": rng.normal(size=N),
        },
        index=[f"cell{i}" for i in range(N)],
    )
    adata = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(30)]))
    adata.obsm["X_emb"] = rng.normal(size=(N, 4)).astype(np.float32)
    return adata


@pytest.fixture
def parts(toy, tmp_path):
    chunks = write_chunks(toy, tmp_path / "chunks", chunk_size=25)
    links = {c.name: f"https://share.example.org/{c.name}" for c in chunks}
    sentences = [f"G{i % 30} G{(i + 1) % 30}" for i in range(N)]
    return chunks, links, sentences


def test_assign_splits_per_cell_and_per_group():
    per_cell = assign_splits(None, N, seed=3)
    assert (pd.Series(per_cell).value_counts().to_dict()) == {"train": 48, "validation": 6, "test": 6}
    assert (assign_splits(None, N, seed=3) == per_cell).all()
    assert not (assign_splits(None, N, seed=4) == per_cell).all()
    groups = np.array([f"g{i % 7}" for i in range(N)])
    split = assign_splits(groups, N, {"train": 0.6, "test": 0.4}, seed=1)
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1  # a group never straddles splits
    assert set(split) == {"train", "test"}
    assert abs((split == "train").sum() - 36) <= 9  # within one group of the target


def test_assign_splits_bad_input():
    with pytest.raises(ParameterError, match="fewer than the 3 splits"):
        assign_splits(np.array(["a", "b"] * 5), 10)
    with pytest.raises(ParameterError, match="sum to 1"):
        assign_splits(None, 10, {"train": 0.5, "test": 0.2})
    with pytest.raises(ParameterError, match="invalid split names"):
        assign_splits(None, 10, {"train set": 1.0})
    with pytest.raises(DataError, match="no value in the group column"):
        assign_splits(np.array(["a", None, "b", "c"], dtype=object), 4)
    with pytest.raises(ParameterError, match="cannot fill"):
        assign_splits(None, 2)


def test_single_layout_rows_link_to_their_chunk(toy, parts):
    chunks, links, sentences = parts
    dd = build_dataset(toy, "single", sentences=sentences, chunks=chunks, links=links, label_key="cell_type",
                       caption_template="a {label}", split_by="donor", obsm_keys=["X_emb"], seed=0)
    rows = pd.concat([d.to_pandas() for d in dd.values()])
    assert sorted(rows["sample_idx"]) == list(range(N))
    for _, r in rows.iterrows():
        i = r["sample_idx"]
        assert r["cell_id"] == f"cell{i}" and r["chunk"] == i // 25
        assert r["share_link"] == links[chunks[i // 25].name] and r["chunk_sha256"] == chunks[i // 25].sha256
        assert r["cell_sentence"] == sentences[i] and r["caption"] == f"a {toy.obs['cell_type'].iloc[i]}"
        np.testing.assert_array_equal(np.asarray(r["emb_X_emb"], dtype=np.float32), toy.obsm["X_emb"][i])
    assert "obs_label" in rows and "donor" in rows and rows["score"].dtype == np.float64
    donors = {s: set(d["donor"]) for s, d in dd.items()}
    assert not (donors["train"] & donors["test"]) and not (donors["validation"] & donors["train"])


def test_pairs_layout_positive_and_negative_captions(toy, parts):
    chunks, links, sentences = parts
    kwargs = dict(sentences=sentences, chunks=chunks, links=links, label_key="cell_type", n_negatives=2, seed=5)
    dd = build_dataset(toy, "pairs", **kwargs)
    rows = pd.concat([d.to_pandas() for d in dd.values()])
    assert len(rows) == 3 * N and rows["sample_idx"].is_unique
    assert (rows["sample_idx"] == rows["cell_idx"] * 3 + rows.groupby("cell_idx").cumcount()).all()
    own = toy.obs["cell_type"].astype(str).to_numpy()[rows["cell_idx"]]
    assert ((rows["caption"] == own) == (rows["label"] == 1)).all()
    assert (rows.groupby("cell_idx")["label"].sum() == 1).all()
    again = build_dataset(toy, "pairs", **kwargs)
    assert all(again[s].to_list() == dd[s].to_list() for s in dd)
    other = build_dataset(toy, "pairs", **dict(kwargs, seed=6))
    assert any(other[s].to_list() != dd[s].to_list() for s in dd)


def test_multiplets_negatives_come_from_other_captions_in_the_same_split(toy, parts):
    chunks, links, sentences = parts
    dd = build_dataset(toy, "multiplets", sentences=sentences, chunks=chunks, links=links, caption_key="cell_type",
                       n_negatives=2, n_cell_negatives=2, split_by="donor", seed=1)
    captions = toy.obs["cell_type"].astype(str).to_numpy()
    for split, d in dd.items():
        members = set(d["sample_idx"])
        for r in d.to_list():
            assert r["positive"] == captions[r["sample_idx"]] and r["anchor"] == sentences[r["sample_idx"]]
            assert r["negative_1"] != r["positive"] and r["negative_2"] != r["positive"]
            for j in (1, 2):
                idx = r[f"negative_cell_idx_{j}"]
                assert idx in members and captions[idx] != r["positive"]
                assert r[f"negative_cell_{j}"] == sentences[idx]


def test_layout_errors(toy, parts):
    chunks, links, sentences = parts
    base = dict(sentences=sentences, chunks=chunks, links=links)
    with pytest.raises(ParameterError, match="needs captions"):
        build_dataset(toy, "pairs", **base)
    with pytest.raises(ParameterError, match="unknown layout"):
        build_dataset(toy, "triplets", **base)
    with pytest.raises(ParameterError, match="no share link"):
        build_dataset(toy, "single", **dict(base, links={}))
    with pytest.raises(ParameterError, match="sentences for 60 cells"):
        build_dataset(toy, "single", **dict(base, sentences=sentences[:-1]))
    with pytest.raises(ParameterError, match="obsm"):
        build_dataset(toy, "single", obsm_keys=["X_missing"], **base)
    with pytest.raises(MissingColumnError):
        build_dataset(toy, "single", split_by="batch", **base)
    one = toy.copy()
    one.obs["same"] = "T cell"
    with pytest.raises(DataError, match="single caption"):
        build_dataset(one, "multiplets", label_key="same", **base)


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_chunks_roundtrip_checksums_and_vocabulary(toy, tmp_path, fmt):
    toy.uns["mmgene"] = {"input": {"file": "toy", "created": "2026-01-01T00:00:00+00:00"}}
    chunks = write_chunks(toy, tmp_path / "a", chunk_size=25, format=fmt)
    assert [(c.start, c.stop) for c in chunks] == [(0, 25), (25, 50), (50, 60)]
    again = write_chunks(toy, tmp_path / "b", chunk_size=25, format=fmt)
    assert [c.sha256 for c in chunks] == [c.sha256 for c in again]  # byte-identical re-runs
    for c in chunks:
        assert c.sha256 == sha256_file(c.path) and c.size == c.path.stat().st_size
        assert c.var_sha256 == var_fingerprint(toy.var_names)
        back = read_chunk(c.path)
        assert list(back.var_names) == list(toy.var_names) and list(back.obs_names) == list(toy.obs_names[c.start:c.stop])
        np.testing.assert_array_equal(back.X.toarray(), toy.X[c.start:c.stop].toarray())
        np.testing.assert_array_equal(back.obsm["X_emb"], toy.obsm["X_emb"][c.start:c.stop])
        assert "created" not in back.uns["mmgene"]["input"] and back.uns["mmgene"]["input"]["file"] == "toy"
    # the format is told by content: a link (e.g. Nextcloud's .../download) may hide the file name
    renamed = tmp_path / "token-without-suffix"
    renamed.write_bytes(chunks[0].path.read_bytes())
    assert list(read_chunk(renamed).obs_names) == list(toy.obs_names[:25])


def test_chunks_from_backed_file_and_bad_input(toy, tmp_path):
    path = tmp_path / "toy.h5ad"
    toy.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    chunks = write_chunks(backed, tmp_path / "c", chunk_size=40)
    assert [c.n_obs for c in chunks] == [40, 20]
    np.testing.assert_array_equal(read_chunk(chunks[1].path).X.toarray(), toy.X[40:].toarray())
    backed.file.close()
    with pytest.raises(ParameterError, match="format"):
        write_chunks(toy, tmp_path / "d", format="loom")
    with pytest.raises(ParameterError, match="chunk_size"):
        write_chunks(toy, tmp_path / "d", chunk_size=0)
    with pytest.raises(DataError, match="no cells"):
        write_chunks(toy[:0].copy(), tmp_path / "d")
    broken = tmp_path / "broken.h5ad"
    broken.write_bytes(path.read_bytes()[:500])
    with pytest.raises(InputFileError, match="download it again"):
        read_chunk(broken)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("A {label:>999999999} cell", "has the placeholder {label:>999999999}"),
        ("A {label.__class__} cell", "has the placeholder {label.__class__}"),
        ("A {label!r} cell", "has the placeholder {label!r}"),
        ("A {label} from {tissue}", "has the placeholder {tissue}"),
        ("A {label cell", "bad caption template"),
        ("A {{label}} cell", "has no {label} placeholder"),
    ],
)
def test_caption_templates_name_only_the_label(template, message):
    from mmgene.hub.config import LayoutConfig

    with pytest.raises(ParameterError, match=re.escape(message)):
        LayoutConfig(caption_template=template)


def test_caption_template_fills_every_label_and_keeps_literal_braces():
    from mmgene.hub.config import fill_caption

    assert fill_caption("A {label} cell ({{CL}}: {label})", "B cell") == "A B cell cell ({CL}: B cell)"
    assert fill_caption("{label}", "{0} odd") == "{0} odd"


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_a_layout_seed_must_be_a_whole_number_of_at_least_zero(seed):
    from mmgene.errors import ParameterError
    from mmgene.hub.config import LayoutConfig

    with pytest.raises(ParameterError, match="seed must be a whole number >= 0") as err:
        LayoutConfig(seed=seed)
    assert err.value.where == "LayoutConfig.seed"
