"""``mmgene publish`` with careless and hostile inputs: what the published files and card say, and what is refused.

Each test pins one behaviour found by auditing publish with real data (PBMC 3k, pbmc68k_reduced):
the AnnData files keep the user's ``var``; the card counts only the cells that have rows; data values
may hold template syntax; card templates run sandboxed; malformed repo ids, non-text column names,
share URLs with a query and share folders with ``..`` are refused before anything is written; the
CLI refuses options that the chosen share backend or layout would ignore.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd
import pytest

from mmgene.errors import DataError, ParameterError


def _publish(data, tmp_path, name="out", **settings):
    import mmgene.hub

    return mmgene.hub.publish(data, "me/cells", dry_run=True, out=tmp_path / name, **settings)


def test_published_chunks_keep_the_users_var(pbmc3k_path, pbmc68k, tmp_path):
    """mmgene.io.read settles repeated symbols in var['gene_symbol'] (82 genes of PBMC 3k) and adds id
    columns to raw.var; the chunk files must still hold var as the user gave it."""
    import anndata as ad

    from mmgene.hub.chunks import read_chunk

    src3k = tmp_path / "pbmc3k.h5ad"
    original = ad.read_h5ad(pbmc3k_path)[:120].copy()
    original.write_h5ad(src3k)
    src68k = tmp_path / "pbmc68k.h5ad"
    small = pbmc68k[:90].copy()
    small.write_h5ad(src68k)
    in_memory = original.copy()
    runs = [
        (src3k, original, {}), (src3k, original, {"backed": True}), (in_memory, original, {}),
        (src68k, small, {"chunk_size": 40}),
    ]
    for i, (data, expected, settings) in enumerate(runs):
        result = _publish(data, tmp_path, f"out{i}", top_k=20, **settings)
        chunks = [read_chunk(tmp_path / f"out{i}" / "chunks" / c["name"]) for c in result.chunks]
        for chunk in chunks:
            pd.testing.assert_frame_equal(chunk.var, expected.var)
            if expected.raw is not None:
                pd.testing.assert_frame_equal(chunk.raw.var, expected.raw.var)
        joined = ad.concat(chunks) if len(chunks) > 1 else chunks[0]
        pd.testing.assert_frame_equal(joined.obs, expected.obs)
        x = joined.X.toarray() if hasattr(joined.X, "toarray") else joined.X
        y = expected.X.toarray() if hasattr(expected.X, "toarray") else expected.X
        np.testing.assert_array_equal(x, y)
    pd.testing.assert_frame_equal(in_memory.var, original.var)  # the caller's AnnData is left as it was


def test_card_counts_only_the_cells_that_have_rows(pbmc68k, tmp_path):
    adata = pbmc68k[:200].copy()
    labels = adata.obs["bulk_labels"].astype(object)
    labels.iloc[::8] = np.nan  # 25 cells without a label: no row in the pairs layout
    adata.obs["bulk_labels"] = pd.Categorical(labels)
    result = _publish(adata, tmp_path, layout="pairs", label_key="bulk_labels", top_k=None)
    cells = {i for ds in result.dataset.values() for i in ds["cell_idx"]}
    assert len(cells) == 175
    assert result.card.count("175 of the 200 cells (those without a caption have no row)") == 1
    assert "Each of the\n175 cells with a caption of the source AnnData" in result.card
    assert "Every cell of the source AnnData" not in result.card
    lengths = {i: len(s.split()) for ds in result.dataset.values() for i, s in zip(ds["cell_idx"], ds["cell_sentence"])}
    low, high, mean = min(lengths.values()), max(lengths.values()), round(float(np.mean(list(lengths.values()))), 1)
    assert f"hold\n{low} to {high} genes (mean {mean})" in result.card
    every = _publish(pbmc68k[:200].copy(), tmp_path, "all", layout="pairs", label_key="bulk_labels")
    assert "\n200 cells of " in every.card and "Every cell of the source AnnData" in every.card


def test_labels_holding_template_syntax_are_published_as_they_are(pbmc68k, tmp_path):
    adata = pbmc68k[:60].copy()
    adata.obs["kind"] = pd.Categorical(["{{ 7*7 }}" if i % 2 else "{% raw %}x" for i in range(adata.n_obs)])
    result = _publish(adata, tmp_path, layout="pairs", label_key="kind", top_k=10)
    captions = {c for ds in result.dataset.values() for c in ds["caption"]}
    assert captions == {"{{ 7*7 }}", "{% raw %}x"}
    example = re.search(r'"caption": "(.*)"', result.card).group(1)
    assert example in captions and "49" not in example
    assert (tmp_path / "out" / "README.md").read_text() == result.card
    adata.obs["qc"] = "{'qc': {'pass': 1}}"  # nested-dict text in obs: shown in the single layout's example row
    single = _publish(adata, tmp_path, "single", top_k=10)
    assert '"qc": "{\'qc\': {\'pass\': 1}}"' in single.card


def test_card_templates_run_in_a_sandbox(tmp_path):
    from mmgene.cards import render_template

    marker = tmp_path / "ran"
    cases = {
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}": "sandbox forbids",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}": "sandbox forbids",
        "{{ 'x' * 10**9 }}": "sandbox forbids",
        "{{ 2 ** 10000000 }}": "sandbox forbids",
        "{{ 1 / 0 }}": "failed to render .ZeroDivisionError",
        "ok\n{% raw %}{{ name }}{% endraw %}": "would leave template syntax '{{'",
    }
    for i, (text, match) in enumerate(cases.items()):
        path = tmp_path / f"card{i}.md"
        path.write_text(text)
        with pytest.raises(ParameterError, match=match) as err:
            render_template(path, {"name": "x"})
        assert "raw" not in match or err.value.where == f"card{i}.md line 2"
    assert not marker.exists()
    fine = tmp_path / "fine.md"
    fine.write_text("{{ name }} has {{ n * 2 }} {{ 'ab' * 3 }}\n")
    assert render_template(fine, {"name": "{{ x }}", "n": 4}) == "{{ x }} has 8 ababab\n"


@pytest.mark.parametrize("repo_id", ["me/a b", "me/..", "me/x--y", "me/-x", "me/x.git", "me/x/y", "/x", "me/", "méi/x", "me/" + "x" * 97])
def test_malformed_repo_ids_are_refused_before_anything_is_written(pbmc68k, tmp_path, repo_id):
    import mmgene.hub

    with pytest.raises(ParameterError, match="repo id") as err:
        mmgene.hub.publish(pbmc68k[:20].copy(), repo_id, dry_run=True, out=tmp_path / "o")
    assert err.value.where == "repo_id" and not (tmp_path / "o").exists()


def test_well_formed_repo_ids_are_accepted():
    from mmgene.hub.share import check_repo_id

    for repo_id in ("me/pbmc_68k.v2", "Org-1/a", "me/" + "x" * 96, "a/b-c_d.e"):
        check_repo_id(repo_id)


def test_column_names_that_are_not_text_are_a_clear_error(pbmc68k, tmp_path):
    adata = pbmc68k[:30].copy()
    adata.obs[0] = 1.5
    with pytest.raises(DataError, match=r"obs has column names that are not text: 0") as err:
        _publish(adata, tmp_path, top_k=10)
    assert "astype(str)" in err.value.fix and not (tmp_path / "out").exists()
    adata = pbmc68k[:30].copy()
    adata.var[("a", "b")] = 1
    with pytest.raises(DataError, match=r"var has column names that are not text: \('a', 'b'\)"):
        _publish(adata, tmp_path, top_k=10)


def test_share_urls_with_a_query_and_folders_leaving_the_share_are_refused(monkeypatch):
    from mmgene.hub.share import make_share

    monkeypatch.delenv("MMGENE_SHARE_USER", raising=False)
    monkeypatch.delenv("MMGENE_SHARE_PASSWORD", raising=False)
    secret = "tok-5f3a9c1e77"
    cases = [
        ({"kind": "webdav", "url": f"https://cloud.example.org/remote.php/dav/files/al?access_token={secret}"}, "query or fragment"),
        ({"kind": "webdav", "url": "https://cloud.example.org/dav", "public_url": f"https://cdn.example.org/pub?sig={secret}"}, "query"),
        ({"kind": "nextcloud", "url": f"https://cloud.example.org/remote.php/dav/files/al#{secret}"}, "query or fragment"),
        ({"kind": "http", "url": f"https://cdn.example.org/x?token={secret}", "root": "/nonexistent"}, "query or fragment"),
        ({"kind": "webdav", "url": "file:///etc"}, "http:// or https://"),
        ({"kind": "webdav", "url": "https://cloud.example.org/dav", "folder": "../../etc"}, "could leave the share"),
        ({"kind": "nextcloud", "url": "https://c.example.org/remote.php/dav/files/al", "folder": "a/../b"}, "could leave the share"),
        ({"kind": "hub", "repo_id": "me/x", "folder": ".."}, "could leave the share"),
    ]
    for options, match in cases:
        options = dict(options)
        with pytest.raises(ParameterError, match=match) as err:
            make_share(options.pop("kind"), **options)
        assert secret not in str(err.value)
    share = make_share("webdav", url="https://cloud.example.org/dav/", folder="/ds/pbmc/")
    assert share.link("chunk-00000.h5ad") == "https://cloud.example.org/dav/ds/pbmc/chunk-00000.h5ad"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--share-url", "https://cloud.example.org/remote.php/dav/files/al"],
         "--share-url does not apply to the 'hub' share (the default), so it would be ignored"),
        (["--share", "nextcloud", "--share-url", "https://c.example.org/remote.php/dav/files/al", "--public-url", "https://x.org"],
         "--public-url does not apply to the 'nextcloud' share"),
        (["--share", "webdav", "--share-url", "https://c.example.org/dav", "--share-root", "www"], "--share-root does not apply"),
        (["--share", "http", "--share-url", "https://c.example.org/x", "--share-root", "www", "--share-folder", "f"],
         "--share-folder does not apply to the 'http' share"),
        (["--share", "webdav", "--share-url", "https://c.example.org/dav", "--chunk-limit", "10"], "--chunk-limit does not apply"),
        (["--share-user", "alice"], "--share-user does not apply to the 'hub' share"),
        (["--negatives", "3"], "--negatives does not apply to the 'single' layout (the default)"),
        (["--layout", "pairs", "--label-col", "bulk_labels", "--cell-negatives", "2"], "--cell-negatives does not apply to the 'pairs' layout"),
        (["--layout", "pairs", "--caption-key", "bulk_labels", "--caption-template", "A {label}."], "--caption-template makes captions"),
    ],
)
def test_cli_refuses_options_that_would_be_ignored(pbmc68k, tmp_path, monkeypatch, capsys, args, message):
    from mmgene.cli.app import main

    src = tmp_path / "pbmc.h5ad"
    pbmc68k[:20].copy().write_h5ad(src)
    monkeypatch.setattr(sys, "argv", ["mmgene", "publish", str(src), "--repo-id", "me/x", "--dry-run", "--out", str(tmp_path / "o"), *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"mmgene: error: {message}") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_publishing_changed_cells_to_the_same_share_folder_keeps_the_earlier_files(pbmc68k, tmp_path, monkeypatch):
    """Chunk files are named by their content: a second dataset published to the share folder of a first
    adds files, so every link of the first still downloads the bytes its sha256 names."""
    import json

    import mmgene.hub.publishing as publishing
    from mmgene.hub.chunks import sha256_file

    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(publishing, "_push", lambda *args, **kwargs: "https://hub.example/commit/1")
    share_root = tmp_path / "www"
    share_root.mkdir()
    options = {"share": "http", "share_options": {"url": "https://example.org/cells", "root": share_root},
               "label_key": "bulk_labels", "chunk_size": 50}
    first = publishing.publish(pbmc68k[:100].copy(), "me/cells", out=tmp_path / "first", **options)
    changed = pbmc68k[:100].copy()
    changed.obs.iloc[:5, changed.obs.columns.get_loc("bulk_labels")] = "Dendritic"  # an existing category
    second = publishing.publish(changed, "me/cells", out=tmp_path / "second", **options)
    again = publishing.publish(pbmc68k[:100].copy(), "me/cells", out=tmp_path / "again", **options)

    assert [c["name"] for c in again.chunks] == [c["name"] for c in first.chunks]  # same cells, same files
    assert not any(s.uploaded for s in again.shared)
    assert second.chunks[0]["name"] != first.chunks[0]["name"]  # changed cells: a new file
    assert second.chunks[1]["name"] == first.chunks[1]["name"]  # unchanged cells: shared once
    for result in (first, second):
        for chunk in result.chunks:
            name = chunk["link"].rsplit("/", 1)[1]
            assert sha256_file(share_root / name) == chunk["sha256"]
            assert name == f"chunk-{chunk['index']:05d}-{chunk['sha256'][:16]}.h5ad"
    assert len(list(share_root.glob("*.h5ad"))) == 3
    assert json.loads((tmp_path / "first" / "chunks.json").read_text())["chunks"] == first.chunks


def test_card_tables_keep_names_with_pipes_backticks_and_line_breaks(pbmc68k, tmp_path):
    """An obs column or obsm key holding '|', backticks or a line break stays inside its table cell."""
    markdown_it = pytest.importorskip("markdown_it")
    adata = pbmc68k[:60].copy()
    odd_column, odd_key = "score|raw\nv2", "X_`pca`|2"
    adata.obs[odd_column] = 1.0
    adata.obsm[odd_key] = adata.obsm["X_pca"][:, :3]
    result = _publish(adata, tmp_path, layout="single", obsm_keys=[odd_key], top_k=10)
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(result.card)
    tables, rows, row = [], None, None
    for token in tokens:
        if token.type == "table_open":
            rows = []
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and row is not None:
            row.append(token.children)
        elif token.type == "tr_close":
            rows.append(row)
            row = None
        elif token.type == "table_close":
            tables.append(rows)

    def text(children):
        return "".join(child.content for child in children)

    for rows in tables:
        assert len({len(r) for r in rows}) == 1  # every row has the header's number of cells
    cells = [text(r[0]) for rows in tables for r in rows]
    assert "score|raw v2" in cells and "X_`pca`|2" in cells
    assert [c.type for c in next(r[0] for rows in tables for r in rows if text(r[0]) == "X_`pca`|2")] == ["code_inline"]
