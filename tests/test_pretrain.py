"""`mmgene pretrain` (issue 18 item 7): corpus -> harmonised labels -> default training, same seed same bytes.

A tiny corpus written here: a human file with Cell Ontology ids, a mouse file with author labels only
(one of them, "doublets", has no term), and a Census-shaped local SOMA experiment queried through a
manifest row (assay filter, cap per source dataset). The README's commands are run on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hostile import assert_refused, run_cli, run_cli_here

HUMAN_GENES = ["CD3E", "CD3D", "CD8A", "MS4A1", "CD79A", "LYZ", "NKG7", "GNLY", "ACTB", "MALAT1"]
MOUSE_GENES = ["Cd3e", "Cd3d", "Cd8a", "Ms4a1", "Cd79a", "Lyz2", "Nkg7", "Gm12345", "Actb", "Malat1"]
#: class name, Cell Ontology id, marker columns
TYPES = [("T cell", "CL:0000084", [0, 1, 2]), ("B cell", "CL:0000236", [3, 4]), ("natural killer cell", "CL:0000623", [6, 7])]
MOUSE_TYPES = [("T cells", "", [0, 1, 2]), ("B cells", "", [3, 4]), ("NK", "", [6, 7]), ("doublets", "", [0, 3])]
ASSAY_3P = "10x 3' v3"
#: the README's Census filters (tissue, assay), asked of a local SOMA experiment shaped like the Census
CENSUS_FILTER = "tissue_general == 'blood' and assay == \"10x 3' v3\" and is_primary_data == True"
CENSUS_FILTER_IN = "tissue_general == 'blood' and assay in [\"10x 3' v3\", \"10x 5' v1\"] and is_primary_data == True"


def _counts(rng, n_genes: int, markers: list[int]) -> np.ndarray:
    counts = rng.poisson(1.0, n_genes).astype(np.float32)
    counts[markers] += rng.poisson(20.0, len(markers))
    return counts


def _adata(genes, types, per_class: int, seed: int, ontology: bool = True):
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    rows = [_counts(rng, len(genes), markers) for _, _, markers in types for _ in range(per_class)]
    obs = pd.DataFrame({"cell_type": [name for name, _, _ in types for _ in range(per_class)]})
    if ontology:
        obs["cell_type_ontology_term_id"] = [term for _, term, _ in types for _ in range(per_class)]
    obs.index = [f"c{i}" for i in range(len(rows))]
    var = pd.DataFrame({"gene_symbol": genes}, index=genes)
    return anndata.AnnData(X=sp.csr_matrix(np.vstack(rows)), obs=obs, var=var)


def _soma_experiment(uri: Path) -> None:
    """Census's obs columns (plus is_primary_data): 2 source datasets x 2 assays x 3 types x 10 cells."""
    import anndata
    import pandas as pd
    import scipy.sparse as sp
    import tiledbsoma.io

    rng = np.random.default_rng(5)
    rows, obs = [], []
    for dataset in ("d1", "d2"):
        for assay in (ASSAY_3P, "10x 5' v1"):
            for name, term, markers in TYPES:
                for _ in range(10):
                    rows.append(_counts(rng, len(HUMAN_GENES), markers))
                    obs.append(
                        {"dataset_id": dataset, "assay": assay, "cell_type": name, "cell_type_ontology_term_id": term,
                         "tissue_general": "blood", "donor_id": f"{dataset}-1", "is_primary_data": True}
                    )
    frame = pd.DataFrame(obs, index=[f"cx{i}" for i in range(len(obs))])
    var = pd.DataFrame({"feature_name": HUMAN_GENES}, index=HUMAN_GENES)
    tiledbsoma.io.from_anndata(str(uri), anndata.AnnData(X=sp.csr_matrix(np.vstack(rows)), obs=frame, var=var), measurement_name="RNA")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """human.h5ad, mouse.h5ad, soma/ and corpus.csv listing the three (the README's manifest, offline)."""
    pytest.importorskip("tiledbsoma")
    root = tmp_path_factory.mktemp("pretrain")
    _adata(HUMAN_GENES, TYPES, 40, 0).write_h5ad(root / "human.h5ad")
    _adata(MOUSE_GENES, MOUSE_TYPES, 30, 1, ontology=False).write_h5ad(root / "mouse.h5ad")
    _soma_experiment(root / "soma")
    quoted, quoted_in = (f.replace('"', '""') for f in (CENSUS_FILTER, CENSUS_FILTER_IN))
    (root / "corpus.csv").write_text(
        "path,dataset,label_col,ontology_col,species,tissue,obs_value_filter,max_cells_per_dataset,max_cells_per_type,seed\n"
        "human.h5ad,human,cell_type,cell_type_ontology_term_id,human,blood,,,,\n"
        "mouse.h5ad,mouse,cell_type,,mouse,blood,,,,\n"
        f'soma,census_3p,cell_type,cell_type_ontology_term_id,human,blood,"{quoted}",15,,0\n'
        f'soma,census_all,cell_type,cell_type_ontology_term_id,human,blood,"{quoted_in}",,5,1\n'
    )
    return root


@pytest.fixture(scope="module")
def seed0(corpus_dir):
    from mmgene.pretrain import PretrainConfig, pretrain

    return pretrain(corpus_dir / "corpus.csv", corpus_dir / "lib0", config=PretrainConfig(seed=0, max_steps=2))


def _weights(folder: Path) -> dict[str, bytes]:
    """Every weight file of a model folder (safetensors and the gene text vectors), by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.suffix in (".safetensors", ".npy")
    }


def test_recipe_records_datasets_census_query_labels_and_config(seed0, corpus_dir):
    saved = json.loads((corpus_dir / "lib0" / "mmgene_ensemble.json").read_text())  # the default: an ensemble
    assert saved["members"] == ["member-0", "member-1", "member-2", "member-3"]
    saved = saved["meta"]
    recipe = saved["recipe"]
    assert recipe == seed0.recipe
    assert recipe["sources"] == [str(corpus_dir / "corpus.csv")] and recipe["seed"] == 0 and recipe["mapping"] is None
    assert recipe["config"] == {
        "seed": 0, "max_steps": 2, "mapping": None, "orthology": None, "min_confidence": None, "keep_unmapped": False,
        "members": None, "drop_contradicted": None,
    }
    rows = {d["dataset"]: d for d in recipe["datasets"]}
    assert list(rows) == ["human", "mouse", "census_3p", "census_all"]
    assert [(d["n_cells"], d["n_genes"], d["n_matched"], d["share_matched"]) for d in rows.values()] == [
        (120, 10, 10, 1.0), (90, 10, 8, 0.8), (30, 10, 10, 1.0), (15, 10, 10, 1.0)
    ]
    assert [d["labels_from"] for d in rows.values()] == ["ontology column", "harmonisation"] + ["ontology column"] * 2
    assert [d["weight"] for d in rows.values()] == [1.0] * 4  # no weight column: every dataset alike
    census = rows["census_3p"]["census"]
    assert census["obs_value_filter"] == CENSUS_FILTER and census["max_cells_per_dataset"] == 15
    assert census["uri"] == str(corpus_dir / "soma") and census["seed"] == 0
    census = rows["census_all"]["census"]
    assert census["obs_value_filter"] == CENSUS_FILTER_IN and census["max_cells_per_type"] == 5 and census["seed"] == 1
    mouse = rows["mouse"]["labels"]
    assert mouse["unmapped_labels"] == ["doublets"] and (mouse["cells_unmapped"], mouse["cells_dropped"]) == (30, 30)
    assert {r["author_label"]: r["term_id"] for r in mouse["table"]} == {
        "T cells": "CL:0000084", "B cells": "CL:0000236", "NK": "CL:0000623", "doublets": ""
    }
    assert sorted(saved["classes"]) == ["B cell", "T cell", "natural killer cell"]
    from mmgene.align.config import CORPUS_DEFAULTS, AlignConfig, TrainingConfig

    # every training setting but the seed and the step limit is the library's default, from the dataclasses
    for i in range(4):
        member = json.loads((corpus_dir / "lib0" / f"member-{i}" / "mmgene_align.json").read_text())
        assert AlignConfig.from_dict(member["config"]) == AlignConfig(training=TrainingConfig(seed=i, max_steps=2)).resolved(CORPUS_DEFAULTS)
        assert member["balance"]["drop_contradicted"] is CORPUS_DEFAULTS.drop_contradicted is True  # judged by default


@pytest.mark.slow
def test_cli_same_seed_gives_the_same_bytes_another_seed_other_weights(seed0, corpus_dir):
    """A fresh process with the same seed writes the fixture's weights byte for byte. It trains two members,
    not four: a member's weights do not depend on how many members come after it."""
    out = corpus_dir / "cli0"
    res = run_cli("pretrain", corpus_dir / "corpus.csv", "--out", out, "--seed", "0", "--max-steps", "2", "--members", "2", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)  # one JSON object, nothing else on stdout
    assert summary["out"] == str(out) and summary["seed"] == 0 and summary["classes"] == 3
    held_out = summary["held_out_balanced_accuracy"]  # an ensemble: each member's held-out figure
    assert len(held_out) == 2 and all(0.0 <= v <= 1.0 for v in held_out)
    assert [(d["dataset"], d["n_cells"], d.get("unmapped_labels"), d.get("cells_dropped")) for d in summary["datasets"]] == [
        ("human", 120, None, None), ("mouse", 90, ["doublets"], 30), ("census_3p", 30, None, None), ("census_all", 15, None, None)
    ]
    fixture = _weights(corpus_dir / "lib0")
    same = {path: data for path, data in fixture.items() if not path.startswith(("member-2/", "member-3/"))}
    assert (len(fixture), len(same)) == (21, 11)  # five files a member, and the members' one text encoder
    assert _weights(out) == same  # byte-identical, across processes, member by member
    recipe = json.loads((out / "mmgene_ensemble.json").read_text())["meta"]["recipe"]
    assert recipe["config"]["members"] == 2 and seed0.recipe["config"]["members"] is None  # the default: four
    assert {**recipe, "config": {**recipe["config"], "members": None}} == seed0.recipe

    from safetensors.numpy import load_file

    from mmgene.pretrain import PretrainConfig, pretrain

    other = pretrain(corpus_dir / "corpus.csv", corpus_dir / "lib1", config=PretrainConfig(seed=1, max_steps=1, members=1))
    assert other.recipe["seed"] == 1 and other.recipe["config"]["members"] == 1
    head = "cell_2_CellHead/model.safetensors"
    a, b = load_file(corpus_dir / "lib0" / "member-0" / head), load_file(corpus_dir / "lib1" / head)  # one member: a model folder
    assert a.keys() == b.keys() and any(not np.array_equal(a[k], b[k]) for k in a)


def test_keep_contradicted_reaches_the_trained_model(tmp_path):
    """`mmgene pretrain --keep-contradicted` (as `mmgene train --corpus`): every cell trained on, as the
    model records; the default judges them (the fixture's models)."""
    from mmgene.pretrain import PretrainConfig

    assert PretrainConfig().corpus_config().drop_contradicted is None  # the corpus trainer's default
    assert PretrainConfig(drop_contradicted=False).corpus_config().drop_contradicted is False
    _adata(HUMAN_GENES, TYPES, 20, 0).write_h5ad(tmp_path / "human.h5ad")
    out = tmp_path / "model"
    res = run_cli_here(
        "pretrain", tmp_path / "human.h5ad", "--label-col", "cell_type", "--ontology-col", "cell_type_ontology_term_id",
        "--max-steps", "1", "--members", "1", "--keep-contradicted", "--out", out, "--json",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    saved = json.loads((out / "mmgene_align.json").read_text())
    assert saved["balance"]["drop_contradicted"] is False and saved["balance"]["contradicted_cells"] == {}
    assert saved["recipe"]["config"]["drop_contradicted"] is False


def _mapping(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("dataset,author_label,term_id\n" + "".join(f"{d},{label},{term}\n" for d, label, term in rows))
    return path


def test_harmonise_corpus_uses_a_reviewed_mapping_and_keeps_unmapped_on_request(corpus_dir, tmp_path):
    from mmgene.corpus import read_corpus, specs_from_paths
    from mmgene.pretrain import HARMONISED_KEY, PretrainConfig, harmonise_corpus

    mapping = _mapping(tmp_path / "mapping.csv", [("mouse", "T cells", "CL:0000625"), ("human", "T cell", "CL:0000084")])
    specs = [
        *specs_from_paths(corpus_dir / "human.h5ad", label_col="cell_type", tissue="blood"),
        *specs_from_paths(corpus_dir / "mouse.h5ad", label_col="cell_type", species="mouse", tissue="blood"),
    ]
    corpus = read_corpus(specs)
    got, reports = harmonise_corpus(corpus, PretrainConfig(mapping=mapping, keep_unmapped=True))
    # without --ontology-col both files are harmonised; the reviewed rows win for their labels
    assert [reports[n]["labels_from"] for n in ("human", "mouse")] == ["harmonisation", "harmonisation"]
    mouse = reports["mouse"]["labels"]
    assert mouse["from_mapping"] == ["T cells"] and mouse["unmapped_labels"] == ["doublets"]
    assert (mouse["cells_unmapped"], mouse["cells_dropped"]) == (30, 0)
    table = {r["author_label"]: (r["term_id"], r["method"]) for r in mouse["table"]}
    assert table["T cells"] == ("CL:0000625", "user") and table["NK"] == ("CL:0000623", "synonym")
    ds = got["mouse"]
    assert ds.n_cells == 120 and ds.spec.ontology_col == HARMONISED_KEY
    ids = ds.adata.obs[HARMONISED_KEY].astype(object)
    assert ids[ds.adata.obs["cell_type"] == "T cells"].unique().tolist() == ["CL:0000625"]
    assert ids[ds.adata.obs["cell_type"] == "doublets"].isna().all()
    assert ds.ontology_ids[ds.labels == "doublets"].tolist() == [""] * 30
    dropped, reports = harmonise_corpus(corpus, PretrainConfig(mapping=mapping))
    assert dropped["mouse"].n_cells == 90 and dropped["mouse"].adata.n_obs == 90
    assert reports["mouse"]["labels"]["cells_dropped"] == 30 and "doublets" not in dropped["mouse"].classes
    # the README's review step: `mmgene labels harmonise FILE` writes a mapping of one file (no dataset
    # column), which then applies to every harmonised dataset
    written = tmp_path / "written.csv"
    res = run_cli_here("labels", "harmonise", corpus_dir / "mouse.h5ad", "--label-col", "cell_type", "--tissue", "blood", "--out", written)
    assert res.returncode == 0, res.stderr[-2000:]
    _, reports = harmonise_corpus(corpus, PretrainConfig(mapping=written))
    assert reports["mouse"]["labels"]["from_mapping"] == ["B cells", "NK", "T cells", "doublets"]
    assert reports["human"]["labels"]["from_mapping"] == []  # its labels are matched as without a mapping


def test_harmonise_corpus_refusals(corpus_dir, tmp_path):
    from mmgene.corpus import read_corpus
    from mmgene.errors import LabelError, MappingError, ParameterError
    from mmgene.pretrain import PretrainConfig, harmonise_corpus

    corpus = read_corpus([corpus_dir / "mouse.h5ad"], label_col="cell_type", species="mouse")
    typo = _mapping(tmp_path / "typo.csv", [("mosue", "T cells", "CL:0000625")])
    with pytest.raises(MappingError, match="'mosue'"):
        harmonise_corpus(corpus, PretrainConfig(mapping=typo))
    # rows for a dataset whose ontology column gives its ids were ignored without a word
    typed = read_corpus([corpus_dir / "human.h5ad"], label_col="cell_type", ontology_col="cell_type_ontology_term_id")
    rows = _mapping(tmp_path / "typed.csv", [("human", "T cell", "CL:0000625")])
    with pytest.raises(MappingError) as caught:
        harmonise_corpus(typed, PretrainConfig(mapping=rows))
    assert str(caught.value) == (
        "the mapping has rows for dataset(s) 'human', whose ontology column gives their Cell Ontology ids, so the rows "
        f"would be ignored. Where: {rows}. What to do: drop those rows, or leave the dataset's ontology column out to "
        "harmonise its labels with the mapping."
    )
    # a reviewer clears two labels: one mapped class is left, too few to contrast
    cleared = _mapping(tmp_path / "cleared.csv", [("mouse", "B cells", ""), ("mouse", "NK", "")])
    with pytest.raises(LabelError, match="fewer than 2"):
        harmonise_corpus(corpus, PretrainConfig(mapping=cleared))
    got, _ = harmonise_corpus(corpus, PretrainConfig(mapping=cleared, keep_unmapped=True))
    assert got["mouse"].n_cells == 120
    for bad in ({"seed": -1}, {"max_steps": 0}, {"min_confidence": 2.0}, {"seed": 1.5}):
        with pytest.raises(ParameterError):
            PretrainConfig(**bad)


def test_cli_refuses_bad_input_and_leaves_files(seed0, corpus_dir, tmp_path):
    (tmp_path / "taken.txt").write_text("mine")
    manifest = corpus_dir / "corpus.csv"
    roots = [corpus_dir, tmp_path]
    assert_refused(["pretrain", manifest, "--out", tmp_path / "taken.txt"], roots, contains="exists")
    bad = tmp_path / "bad.csv"
    bad.write_text("author_label,term_id\nT cells,CL:123\n")
    assert_refused(["pretrain", manifest, "--out", tmp_path / "m", "--mapping", bad], roots, contains="CL:123")
    ragged = tmp_path / "orthologs.csv"
    ragged.write_text("mouse_symbol,human_symbol\nCd3e,CD3E,extra,extra2\nPtprc,PTPRC\n")
    line = assert_refused(["pretrain", manifest, "--out", tmp_path / "m", "--orthology", ragged], roots)
    assert line.startswith("mmgene: error: a row of the orthology table has 4 fields but its header has 2")
    assert f"line 2 of {ragged}" in line
    human = corpus_dir / "human.h5ad"
    assert_refused(
        ["demo", human, "--label-col", "cell_type", "--model", corpus_dir / "lib0", "--epochs", "1", "--out", tmp_path / "d"],
        roots, contains="epochs",
    )


@pytest.mark.slow
def test_readme_commands_annotate_demo_query_with_the_model(seed0, corpus_dir, tmp_path):
    """manifest -> pretrain (the fixture) -> annotate --model, demo --model (trains nothing), query the demo's index
    (the CLI's entry point run in this process: four fresh interpreters would add only their start-up)."""
    import anndata as ad

    model, human = corpus_dir / "lib0", corpus_dir / "human.h5ad"
    res = run_cli_here(
        "annotate", human, "--model", model, "--labels", "T cell", "B cell", "natural killer cell", "--out", tmp_path / "a.h5ad"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    labels = ad.read_h5ad(tmp_path / "a.h5ad").obs["mmgene_label"].astype(str)
    assert set(labels) <= {"T cell", "B cell", "natural killer cell", "unknown"} and len(labels) == 120
    # asked without B cells, the general model's own B cell class is the other class a cell may fit better
    res = run_cli_here("annotate", human, "--model", model, "--labels", "T cell", "natural killer cell", "--out", tmp_path / "b.h5ad")
    assert res.returncode == 0, res.stderr[-3000:]
    annotated = ad.read_h5ad(tmp_path / "b.h5ad")
    record = annotated.uns["mmgene"]["mmgene_label"]
    assert list(record["others"]) == ["B cell"] and record["others_margin"] == 0.04
    nearest = annotated.obs["mmgene_nearest_other"]
    assert int(nearest.notna().sum()) == record["unknown_by_others"] and set(nearest.dropna()) <= {"B cell"}
    assert (annotated.obs["mmgene_label"][nearest.notna()] == "unknown").all()

    demo = tmp_path / "demo"
    res = run_cli_here("demo", human, "--label-col", "cell_type", "--model", model, "--out", demo)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((demo / "report.json").read_text())["demo"]
    assert report["model"] == str(model) and report["train_cells"] == 0 and report["held_out_cells"] == 120
    assert "standardised over the cells" in report["annotation"]["rule"]
    assert not (demo / "model").exists()
    assert f"alignment model `{model}` (trained on other data)" in (demo / "report.md").read_text()

    res = run_cli_here("query", demo / "index", "natural killer cells", "-k", "5", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads(res.stdout)["hits"]
    assert len(rows) == 5 and {r["cell_type"] for r in rows} <= {"T cell", "B cell", "natural killer cell"}


def test_push_to_hub_keeps_the_recipe(seed0, tmp_path, monkeypatch):
    """The README's publishing step, against the loopback Hub: the recipe travels in mmgene_align.json."""
    from huggingface_hub import HfApi
    from servers.hub_server import hub_for_this_process

    from mmgene.align import load

    with hub_for_this_process(tmp_path / "hub", tmp_path / "hf-cache", monkeypatch) as server:
        load(seed0.out).push_to_hub(f"{server.user}/general-cells", token=server.token)
        files = set(HfApi(endpoint=server.url, token=server.token).list_repo_files(f"{server.user}/general-cells"))
        assert {"README.md", "mmgene_ensemble.json", "member-0/mmgene_align.json", "member-3/modules.json"} <= files
        monkeypatch.setenv("HF_TOKEN", server.token)  # private by default: reading it back needs the token
        again = load(f"hf://{server.user}/general-cells")
    assert again.meta["recipe"] == seed0.recipe


def test_model_card_names_the_training_corpus_and_the_command_that_rebuilds_it(seed0, corpus_dir):
    card = (corpus_dir / "lib0" / "README.md").read_text()
    section = card.split("## Training corpus", 1)[1].split("## Evaluation", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| dataset")]
    assert [row.split(" | ")[:7] for row in rows] == [
        ["| human", "human", "blood", "120", "100.0%", "ontology column", "1"],
        ["| mouse", "mouse", "blood", "90", "80.0%", "harmonisation", "1"],
        ["| census_3p", "human", "blood", "30", "100.0%", "ontology column", "1"],
        ["| census_all", "human", "blood", "15", "100.0%", "ontology column", "1"],
    ]
    assert "| labels from | training weight | source |" in section
    assert f"CELLxGENE Census `{CENSUS_FILTER}`" in rows[2]
    assert f"mmgene pretrain {corpus_dir / 'corpus.csv'} --seed 0 --max-steps 2\n" in section  # the steps it was trained with
    assert "SHA-256" not in section  # no mapping file was used
    assert "every dataset's labels are Cell Ontology terms.\nThe full recipe is `recipe` in `mmgene_ensemble.json`." in section


def test_a_model_trained_without_pretrain_has_no_corpus_section():
    from mmgene.align.card import recipe_values

    assert recipe_values(None) == {} and recipe_values({}) == {}
    values = recipe_values({"sources": ["c.csv"], "seed": 3, "mapping": {"file": "m.csv", "sha256": "ab"}, "datasets": []})
    assert values == {"datasets": [], "command": "mmgene pretrain c.csv --seed 3 --mapping m.csv", "mapping_sha256": "ab", "version": None,
                      "keep_unmapped": False, "file": "mmgene_align.json"}
    assert recipe_values({"sources": ["c.csv"], "datasets": []}, ensemble=True)["file"] == "mmgene_ensemble.json"
    config = {"max_steps": 5, "orthology": "o.csv", "min_confidence": 0.5, "keep_unmapped": True, "members": 2,
              "drop_contradicted": False, "mapping": None, "seed": 3}
    every = recipe_values({"sources": ["c.csv"], "seed": 3, "config": config, "datasets": []})["command"]
    assert every == ("mmgene pretrain c.csv --seed 3 --max-steps 5 --orthology o.csv --min-confidence 0.5 --members 2 "
                     "--keep-unmapped --keep-contradicted")


def test_the_rebuild_command_of_files_names_their_columns_species_and_tissue():
    """Files and folders need --label-col (and were read with their species and tissue): the card's
    command left them out and failed with "data files need a label column"."""
    from mmgene.align.card import recipe_values

    columns = {"label_col": "cell_type", "ontology_col": "cl_id", "species": "mouse", "tissue": "lung"}
    values = recipe_values({"sources": ["a.h5ad", "b.h5ad"], "seed": 0, "columns": columns, "datasets": [],
                            "config": {"keep_unmapped": True}})
    assert values["command"] == (
        "mmgene pretrain a.h5ad b.h5ad --seed 0 --label-col cell_type --ontology-col cl_id --species mouse --tissue lung "
        "--keep-unmapped"
    )
    assert values["keep_unmapped"] is True


def test_summary_line_names_each_members_held_out_figure():
    from mmgene.cli.pretrain import _lines

    base = {"datasets": [], "out": "m", "classes": 3, "train_cells": 10, "seed": 0, "train_seconds": 1.0}
    assert _lines({**base, "held_out_balanced_accuracy": [0.5, 0.25]})[-1].endswith("balanced accuracy 0.500, 0.250 (members)")
    assert _lines({**base, "held_out_balanced_accuracy": 0.5})[-1].endswith("seed 0, 1.0 s; held-out zero-shot balanced accuracy 0.500")
    assert _lines({**base, "held_out_balanced_accuracy": None})[-1].endswith("seed 0, 1.0 s")
