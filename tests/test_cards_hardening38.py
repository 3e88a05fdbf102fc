"""Card hardening: ``+`` bounded in a card template, an empty code span, licence ids checked
against the Hub's list, and values fenced with the ``span`` filter instead of hand-written backticks."""

from __future__ import annotations

import re

import pytest
import yaml

from mmgene.align.card import recipe_values
import mmgene.cards
from mmgene.cards import code_span, render_dataset_card, render_model_card, render_template, table_code
from mmgene.errors import ParameterError
from mmgene.hub.config import CardConfig, PublishConfig
from test_cards_audit37 import CONFIGS, DATASET_VALUES

#: every placeholder of mmgene/_cards/model_card.md (no recipe: no training-corpus section)
MODEL_VALUES = {
    "model_name": "mmgene-pbmc-align", "description": "Aligns PBMC cells and text.",
    "text_model": "sentence-transformers/all-MiniLM-L6-v2", "omics_inputs": "obsm['X_genept_w']",
    "omics_tower": "a 2-layer MLP", "embedding_dim": 384, "loss": "MultipleNegativesRankingLoss",
    "training_data": "me/pbmc-pairs", "n_train_pairs": 1000, "n_eval_pairs": 100, "epochs": 2, "batch_size": 64,
    "learning_rate": 2e-4, "seed": 0, "settings": [], "metrics": [{"name": "zero-shot accuracy", "split": "test", "value": 0.71}],
    "load_path": "me/mmgene-pbmc-align", "example_caption": "a CD14+ monocyte", "mmgene_version": "0.1.0",
    "created": "2026-11-21",
}


def _front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, flags=re.S)
    assert match is not None
    return yaml.safe_load(match.group(1))


def _doubling(start: str, step: str, times: int) -> str:
    """A template that doubles ``ns.s`` (starting at ``start``) ``times`` times with the expression ``step``."""
    return (f"{{% set ns = namespace(s={start}) %}}{{% for i in range({times}) %}}{{% set ns.s = {step} %}}"
            "{% endfor %}{{ ns.s | length }}\n")


@pytest.mark.parametrize(("start", "step"), [("'x'", "ns.s + ns.s"), ("[0]", "ns.s + ns.s")])
def test_a_template_cannot_double_a_text_or_list_past_the_bound(tmp_path, start, step):
    template = tmp_path / "card.md"
    template.write_text(_doubling(start, step, 19))  # 2**19 = 524,288 items: under the bound of 1,000,000
    assert render_template(template, {}) == "524288\n"
    template.write_text(_doubling(start, step, 21))  # 2**21 items, which the same loop at 60 would make 2**60 of
    with pytest.raises(ParameterError, match="sandbox forbids") as err:
        render_template(template, {})
    assert "too large" in str(err.value) or "more than 1000000" in str(err.value)
    assert template.read_text() == _doubling(start, step, 21)


def test_an_empty_code_span_is_written_as_nothing():
    # two backticks are no empty code span in CommonMark: they would show as two literal backticks
    assert code_span("") == "" and table_code("") == "" and code_span("\n") == ""
    assert code_span("x") == "`x`" and code_span(" ") == "` `"  # a space is a value: it keeps its span
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark")
    assert md.renderInline(f"from {code_span('')} on") == "from  on"
    card = render_dataset_card({**DATASET_VALUES, "columns": [{"name": "", "meaning": "m"}]}, license="cc-by-4.0",
                               n_rows=3, configs=CONFIGS)
    assert "\n|  | m |\n" in str(card)


def test_the_hubs_licence_ids_pass_and_a_typo_is_refused_with_the_closest_ids():
    ids = mmgene.cards.HUB_LICENSES
    assert len(ids) == len(set(ids)) and {"apache-2.0", "cc-by-4.0", "mit", "other"} <= set(ids)
    assert CardConfig().license == "cc-by-4.0" and CardConfig(license="mit").license == "mit"
    assert PublishConfig.from_settings(license="cc-by-nc-sa-4.0").card.license == "cc-by-nc-sa-4.0"
    with pytest.raises(ParameterError) as err:
        PublishConfig.from_settings(license="cc-by-4")
    assert err.value.where == "CardConfig.license" and "'cc-by-4.0'" in err.value.fix
    assert "'cc-by-4' is not a licence id of the Hugging Face Hub" in str(err.value)
    with pytest.raises(ParameterError) as err:
        CardConfig(license="Apache-2.0")
    assert err.value.fix.startswith(f"pass one of its {len(ids)} ids (the closest: 'apache-2.0'")
    with pytest.raises(ParameterError, match="not a licence id"):
        CardConfig(license=None)  # type: ignore[arg-type]


def test_the_dataset_and_model_cards_check_their_licence():
    card = render_dataset_card(DATASET_VALUES, license="odc-by", n_rows=3, configs=CONFIGS)
    assert _front_matter(str(card))["license"] == "odc-by"
    with pytest.raises(ParameterError, match="'cc-by-40' is not a licence id") as err:
        render_dataset_card(DATASET_VALUES, license="cc-by-40", n_rows=3, configs=CONFIGS)
    assert err.value.where == "license of the dataset card" and "'cc-by-4.0'" in err.value.fix
    card = render_model_card(MODEL_VALUES, license="mit")
    assert card.data.license == "mit" and _front_matter(str(card))["license"] == "mit"
    assert render_model_card(MODEL_VALUES).data.license == "apache-2.0"
    with pytest.raises(ParameterError, match="'apache2' is not a licence id") as err:
        render_model_card(MODEL_VALUES, license="apache2")
    assert err.value.where == "license of the model card" and "'apache-2.0'" in err.value.fix


def test_publish_refuses_an_unknown_licence_before_reading_or_writing(tmp_path):
    import mmgene.hub

    data = tmp_path / "cells.h5ad"
    data.write_bytes(b"not read")
    out = tmp_path / "staged"
    with pytest.raises(ParameterError, match="'cc-by-4' is not a licence id"):
        mmgene.hub.publish(data, "me/pbmc", out=out, dry_run=True, license="cc-by-4")
    assert not out.exists() and data.read_bytes() == b"not read"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.h5ad"]


def test_a_backtick_in_a_value_stays_inside_its_code_span():
    recipe = {"datasets": [], "command": "mmgene pretrain a.h5ad --seed 0", "mapping_sha256": "ab`cd", "version": "0.1.0",
              "keep_unmapped": False, "file": "re`cipe.json"}
    text = str(render_model_card({**MODEL_VALUES, "text_model": "my`model (frozen)", "recipe": recipe}))
    assert "\n- **Text tower:** ``my`model (frozen)``\n" in text
    assert "\nThe full recipe is `recipe` in ``re`cipe.json``.\n" in text
    assert "\nThe mapping file's SHA-256: ``ab`cd``.\n" in text
    card = str(render_dataset_card({**DATASET_VALUES, "layout": "pa`irs", "chunk_format": "h`5ad", "var_sha256": "ef`01"},
                                   license="cc-by-4.0", n_rows=3, configs=CONFIGS))
    assert "\n## Dataset type: ``pa`irs``\n" in card
    assert "AnnData file(s) (``.h`5ad``, at most" in card and "fingerprint ``ef`01``)" in card
    assert "(`mmgene publish`, layout ``pa`irs``, seed 0)" in card
    rows = recipe_values({"datasets": [
        {"dataset": "a", "species": "human", "source": "a`b.h5ad", "n_cells": 3, "share_matched": 1.0, "labels_from": "ct"},
        {"dataset": "c", "census": {"obs_value_filter": "tissue == `lung`"}},
    ]})["datasets"]
    assert [r["source"] for r in rows] == ["``a`b.h5ad``", "CELLxGENE Census `` tissue == `lung` ``"]
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark")
    assert md.renderInline("``my`model (frozen)``") == "<code>my`model (frozen)</code>"
    assert md.renderInline("`` tissue == `lung` ``") == "<code>tissue == `lung`</code>"
