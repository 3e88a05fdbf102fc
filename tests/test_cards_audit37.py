"""Dataset-card defects: size categories past 10B rows, code spans that lose a name's outer spaces,
secrets that reach a card percent-encoded, and a title whose line break splits the card's heading."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
import yaml

from mmgene.cards import code_span, render_dataset_card, render_template, size_category, table_code
from mmgene.errors import ParameterError
from mmgene.net.credentials import register_secret

CONFIGS = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}]

#: every placeholder of mmgene/_cards/dataset_card.md, with plain values
DATASET_VALUES = {
    "pretty_name": "PBMC atlas", "description": "Cells as sentences.", "n_published": 3, "n_cells": 3, "n_genes": 5,
    "source_name": "pbmc.h5ad", "layout": "single", "layout_explanation": "One row per cell.",
    "split_table": [{"name": "train", "rows": 3, "cells": 3}], "split_explanation": "per cell", "split_note": "cells may share donors.", "seed": 0,
    "columns": [{"name": "cell_sentence", "meaning": "gene symbols ranked by expression"}],
    "expression_source": "X", "expression_kind": "raw counts", "ties": "alphabetically by symbol", "top_k": 100,
    "sentence_min": 1, "sentence_max": 4, "sentence_mean": 2.5, "example_row": "{}",
    "example_link": "https://huggingface.co/datasets/me/pbmc/resolve/main/chunks/c.h5ad", "n_chunks": 1,
    "chunk_format": "h5ad", "chunk_size": 10, "share_kind": "the Hugging Face Hub", "var_sha256": "ab" * 32,
    "chunks": [{"name": "c.h5ad", "start": 0, "stop": 3, "size": 100, "sha256": "cd" * 32}],
    "embeddings_intro": "No embeddings.", "embeddings": [], "repo_id": "me/pbmc", "example_split": "train",
    "text_column": "cell_sentence", "access_note": "Public.", "mmgene_version": "0.1.0", "anndata_version": "0.12",
    "created": "2026-01-01", "source_citation": "cite it", "license": "cc-by-4.0",
}


def _front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, flags=re.S)
    assert match is not None
    return yaml.safe_load(match.group(1))


def test_size_categories_past_ten_billion_rows_are_the_hubs_own():
    sizes = [9_999_999_999, 10**10, 10**11 - 1, 10**11, 10**12 - 1, 10**12, 5 * 10**12]
    assert [size_category(n) for n in sizes] == [
        "1B<n<10B", "10B<n<100B", "10B<n<100B", "100B<n<1T", "100B<n<1T", "n>1T", "n>1T"]
    card = render_dataset_card(DATASET_VALUES, license="cc-by-4.0", n_rows=20_000_000_000, configs=CONFIGS)
    assert _front_matter(str(card))["size_categories"] == ["10B<n<100B"]


def test_a_code_span_keeps_the_outer_spaces_of_a_name():
    # CommonMark takes one space off each side of a span that starts and ends with one
    assert code_span(" batch ") == "`  batch  `"
    assert table_code(" a|b ") == "`  a\\|b  `"
    assert code_span(" batch") == "` batch`" and code_span("   ") == "`   `"  # nothing is taken off these
    markdown_it = pytest.importorskip("markdown_it")
    assert markdown_it.MarkdownIt("commonmark").renderInline(code_span(" batch ")) == "<code> batch </code>"


def test_a_percent_encoded_secret_never_reaches_a_card(tmp_path):
    secret = "p@ss/w0rd:audit37"
    register_secret(secret)
    template = tmp_path / "t.md"
    template.write_text("see {{ link }}\n")
    link = "https://cloud.example.org/dav?pw=" + quote(secret, safe="")
    with pytest.raises(ParameterError, match="token or password") as err:
        render_template(template, {"link": link})
    assert secret not in str(err.value) and quote(secret, safe="") not in str(err.value)
    with pytest.raises(ParameterError, match="token or password"):
        render_dataset_card({**DATASET_VALUES, "source_citation": link}, license="cc-by-4.0", n_rows=3, configs=CONFIGS)


def test_a_title_with_a_line_break_is_one_heading_and_one_yaml_line():
    title = "PBMC\n---\natlas"
    card = render_dataset_card({**DATASET_VALUES, "pretty_name": title}, license="cc-by-4.0", n_rows=3,
                               configs=CONFIGS, pretty_name=title)
    text = str(card)
    assert _front_matter(text)["pretty_name"] == "PBMC --- atlas"
    assert card.data.pretty_name == "PBMC --- atlas"
    assert card.text.lstrip("\n").split("\n")[:3] == ["# PBMC --- atlas", "", "Cells as sentences."]


def test_the_example_row_of_a_card_is_valid_json_with_nan_and_infinity_as_null():
    import json

    from mmgene.hub.dataset_card import _example_row

    text = _example_row({"obs_score": float("nan"), "emb_X_pca": [1.23456, float("inf"), 2.0], "obs_n": 3})
    assert json.loads(text) == {"obs_score": None, "emb_X_pca": [1.2346, None, 2.0], "obs_n": 3}
