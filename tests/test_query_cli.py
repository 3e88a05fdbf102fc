"""``mmgene index build|info``, ``mmgene query`` and ``mmgene annotate`` on a small real AnnData."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
try:
    from test_query import encoder, small  # noqa: F401  (session fixtures: offline MiniLM, 120 PBMC 3k cells)
except ImportError:  # tests collected as a package
    from tests.test_query import encoder, small  # noqa: F401
from typer.testing import CliRunner

from mmgene.errors import MissingColumnError, MMGeneError, ParameterError

runner = CliRunner()


@pytest.fixture(scope="module")
def h5ad(small, tmp_path_factory):  # noqa: F811
    path = tmp_path_factory.mktemp("cli") / "small.h5ad"
    small.write_h5ad(path)
    return path


def invoke(*args):
    from mmgene.cli.app import app

    return runner.invoke(app, [str(a) for a in args])


def test_build_info_and_query(h5ad, tmp_path, small, encoder):  # noqa: F811
    out = tmp_path / "idx"
    res = invoke("index", "build", h5ad, "--embedding", "X_genept_s", "--out", out, "--obs", "cell_type")
    assert res.exit_code == 0, res.output
    assert "cells:      120" in res.output and "model:      genept-s" in res.output and "kind:       flat" in res.output
    assert sorted(p.name for p in out.iterdir()) == [".mmgene-output", "cells.parquet", "index.faiss", "meta.json"]
    info = invoke("index", "info", out)
    assert info.exit_code == 0 and "columns:    cell_type" in info.output
    info = invoke("index", "info", out, "--json")
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout) == {
        "index": str(out), "cells": 120, "skipped_cells": 0, "dim": 384, "kind": "flat", "factory": "Flat",
        "embedding": "X_genept_s", "model": "genept-s", "obs_columns": ["cell_type"], "search": None, "rerank": None,
        "genes": {"count": 32721, "species": "human"},  # PBMC 3k's 32,738 genes less 17 repeated symbols
    }
    res = invoke("index", "build", h5ad, "--embedding", "X_genept_s", "--out", tmp_path / "hnsw", "--kind", "hnsw", "--json")
    assert res.exit_code == 0, res.output
    built = json.loads(res.stdout)
    assert (built["kind"], built["cells"], built["search"]["parameter"]) == ("hnsw", 120, "ef_search")

    res = invoke("query", out, "natural killer cell", "-k", "3", "--json")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert (result["index"], result["k"], result["queries"]) == (str(out), 3, ["natural killer cell"])
    records = result["hits"]
    from mmgene.index import load
    from mmgene.query import GenePTSpace, text_to_cells

    expected = text_to_cells(load(out), "natural killer cell", model=GenePTSpace("s", encoder=encoder), k=3)
    assert [r["cell_id"] for r in records] == expected["cell_id"].tolist()
    assert [r["rank"] for r in records] == [1, 2, 3] and set(records[0]) == {"query", "rank", "cell_id", "score", "cell_type"}

    cell = str(small.obs_names[0])
    res = invoke("query", out, "--cell", cell, "-k", "2")
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split() == ["query", "rank", "cell_id", "score", "cell_type"] and len(lines) == 3
    assert all(line.split()[0] == cell and line.split()[2] != cell for line in lines[1:])

    res = invoke("query", out)
    assert isinstance(res.exception, MMGeneError) and "nothing to search for" in str(res.exception)
    res = invoke("index", "build", h5ad, "--embedding", "X_nope", "--out", tmp_path / "other")
    assert isinstance(res.exception, MissingColumnError)
    assert not (tmp_path / "other").exists()


def test_annotate_writes_label_and_score_columns(h5ad, tmp_path):
    import anndata as ad

    out = tmp_path / "annotated.h5ad"
    res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", "B cell", "T cell", "monocyte", "--out", out)
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    assert list(adata.obs["mmgene_label"].cat.categories) == ["B cell", "T cell", "monocyte", "unknown"]
    assert adata.obs["mmgene_score"].between(0, 1).all()
    assert list(adata.uns["mmgene"]["mmgene_label"]["labels"]) == ["B cell", "T cell", "monocyte"]
    assert "wrote obs['mmgene_label']" in res.output
    counts = adata.obs["mmgene_label"].value_counts()
    lines = res.stdout.splitlines()
    assert lines[1].split() == ["label", "cells"]
    assert sorted(tuple(line.strip().rsplit(None, 1)) for line in lines[2:]) == sorted(
        (str(label), str(n)) for label, n in counts.items()
    )
    # a long label is cut in the printed counts, kept whole in the data
    long_label = "B cell " + "x" * 100
    res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", long_label, "T cell", "--out", out, "--overwrite", "--min-prob", "0")
    assert res.exit_code == 0, res.output
    assert long_label not in res.stdout and long_label[:57] + "..." in res.stdout
    assert long_label in ad.read_h5ad(out).obs["mmgene_label"].cat.categories
    # repeated --labels works too, and the input file is left alone when --out is given
    res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", "B cell", "--labels", "T cell", "--out", out, "--min-prob", "0.9", "--overwrite", "--json")
    assert res.exit_code == 0, res.output
    labels = ad.read_h5ad(out).obs["mmgene_label"]
    assert list(labels.cat.categories) == ["B cell", "T cell", "unknown"]
    assert json.loads(res.stdout) == {
        "out": str(out), "label_key": "mmgene_label", "score_key": "mmgene_score", "cells": 120,
        "counts": {str(k): int(v) for k, v in labels.value_counts().items()},
        "terms": {"B cell": "CL:0000236", "T cell": "CL:0000084"},
    }
    assert "mmgene_label" not in ad.read_h5ad(h5ad).obs
    res = invoke(
        "annotate", h5ad, "--model", "genept-s", "--labels", "B cell", "T cell", "--refine", "--out", out, "--overwrite",
        "--species", "human", "--tissue", "blood",
    )
    assert res.exit_code == 0, res.output
    record = ad.read_h5ad(out).uns["mmgene"]["mmgene_label"]
    assert record["refined"] and record["origin"] == "human blood"


def test_annotate_refuses_one_label_whose_probability_would_be_1_for_every_cell(h5ad, tmp_path):
    from hostile import assert_refused

    message = assert_refused(["annotate", h5ad, "--model", "genept-s", "--labels", "B cell", "--out", tmp_path / "a.h5ad"], [tmp_path])
    assert "annotate chooses among labels, but only 'B cell' was given" in message and "mmgene query" in message


def test_annotate_reads_labels_as_cell_ontology_terms_unless_told_not_to(h5ad, tmp_path, monkeypatch):
    import anndata as ad

    from hostile import assert_refused

    from mmgene.settings import settings

    monkeypatch.setattr(settings, "quiet", False)

    out = tmp_path / "annotated.h5ad"
    res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", "B cell", "T cell", "leukocyte", "--out", out)
    assert res.exit_code == 0, res.output
    record = ad.read_h5ad(out).uns["mmgene"]["mmgene_label"]
    assert list(record["term_ids"]) == ["CL:0000236", "CL:0000084", "CL:0000738"] and record["nested"]
    # a typed label is read through the harmoniser's rules, and stderr says how each label was read
    res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", "CD4 T cells", "my cluster", "--out", out, "--overwrite", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["terms"] == {"CD4 T cells": "CL:0000624", "my cluster": ""}
    assert res.stderr.strip().splitlines()[-1] == (
        "labels read as Cell Ontology terms: 'CD4 T cells' as CL:0000624 CD4-positive, alpha-beta T cell; 'my cluster' as no term"
    )
    # --term says a label's term (or none); the other labels are read as before
    res = invoke(
        "annotate", h5ad, "--model", "genept-s", "--labels", "CD4 T cells", "my cluster", "--term", "my cluster=CL:0000236",
        "--term", "CD4 T cells=", "--out", out, "--overwrite", "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["terms"] == {"CD4 T cells": "", "my cluster": "CL:0000236"}
    # the cells' species and tissue are the reading's hint, with --term beside them
    res = invoke(
        "annotate", h5ad, "--model", "genept-s", "--labels", "alpha", "beta", "--term", "beta=", "--species", "human",
        "--tissue", "pancreas", "--out", out, "--overwrite", "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["terms"] == {"alpha": "CL:0000171", "beta": ""}
    for bad, message in [("my cluster", "is not LABEL=CL:ID"), ("NK=CL:0000623", "'NK' is not one of the labels")]:
        res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", "CD4 T cells", "my cluster", "--term", bad, "--out", out, "--overwrite")
        assert isinstance(res.exception, ParameterError) and message in str(res.exception), res.output
        assert res.exception.where == "option --term"
    args = ["annotate", h5ad, "--model", "genept-s", "--labels", "CD4 T cells", "my cluster", "--term", "my cluster=CL:0000000x", "--out", out, "--overwrite"]
    assert_refused(args, [tmp_path], contains="the term of 'my cluster': 'CL:0000000x' is not a Cell Ontology id")
    res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", "B cell", "T cell", "leukocyte", "--out", out, "--overwrite", "--no-hierarchy")
    assert res.exit_code == 0, res.output
    record = ad.read_h5ad(out).uns["mmgene"]["mmgene_label"]
    assert not record["hierarchy"] and not record["nested"] and list(record["term_ids"]) == ["", "", ""]


def test_annotate_standardize_and_recentre_flags(h5ad, tmp_path):
    """z-scores from 30 cells by default, raw cosines with --no-standardize; a GenePT space cannot be
    recentred, which --recentre is told clearly (exit 2, nothing written) and the default skips."""
    import anndata as ad

    from hostile import assert_refused

    out = tmp_path / "annotated.h5ad"
    res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", "B cell", "T cell", "--out", out)
    assert res.exit_code == 0, res.output
    record = ad.read_h5ad(out).uns["mmgene"]["mmgene_label"]
    assert record["standardized"] and not record["recentred"] and record["rule"].startswith("softmax(z/T)")
    assert not record["weigh_types"]
    probs = []
    labels = ("B cell", "T cell", "monocyte")  # three labels whose first-pass winners are not equally many
    for extra, weigh in (((), False), (("--weigh-types",), True)):
        res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", *labels, "--out", out, "--overwrite", *extra)
        assert res.exit_code == 0, res.output
        probs.append(ad.read_h5ad(out).obsm["mmgene_probs"].to_numpy())
        assert ad.read_h5ad(out).uns["mmgene"]["mmgene_label"]["weigh_types"] is weigh
    assert np.abs(probs[0] - probs[1]).max() > 0.01
    res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", "B cell", "T cell", "--out", out, "--overwrite", "--no-standardize", "--weigh-types")
    assert res.exit_code == 0, res.output
    record = ad.read_h5ad(out).uns["mmgene"]["mmgene_label"]
    assert not record["standardized"] and record["rule"].startswith("softmax(s/T)")
    assert not record["weigh_types"]  # raw cosines have no z-scores to weigh
    assert_refused(
        ["annotate", h5ad, "--model", "genept-s", "--labels", "B cell", "T cell", "--out", tmp_path / "new.h5ad", "--refine", "--weigh-types"],
        [tmp_path, h5ad.parent], contains="refine and weigh_types cannot be combined",
    )
    assert_refused(
        ["annotate", h5ad, "--model", "genept-s", "--labels", "B cell", "T cell", "--out", tmp_path / "new.h5ad", "--recentre"],
        [tmp_path, h5ad.parent], contains="no learned space to recentre",
    )
    assert not (tmp_path / "new.h5ad").exists()


def test_errors_exit_2_with_one_line(h5ad, tmp_path):
    env = {**os.environ, "MMGENE_QUIET": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mmgene", "index", "build", str(h5ad), "-e", "X_nope", "-o", str(tmp_path / "x")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("mmgene: error: column 'X_nope' does not exist in obsm")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_annotate_calibrated_on_a_reference_file(h5ad, small, tmp_path):  # noqa: F811
    import anndata as ad

    ref_path = tmp_path / "ref.h5ad"
    small[small.obs["cell_type"].isin(["B cells", "NK cells"]).to_numpy()].copy().write_h5ad(ref_path)
    out = tmp_path / "out.h5ad"
    res = invoke("annotate", h5ad, "-m", "genept-s", "--labels", "B cells", "NK cells", "--reference", ref_path, "--alpha", "0.1", "-o", out)
    assert res.exit_code == 0, res.output
    rec = ad.read_h5ad(out).uns["mmgene"]["mmgene_label"]
    assert rec["reference_column"] == "cell_type" and rec["alpha"] == 0.1 and rec["calibrated_temperature"] > 0
    res = invoke("annotate", h5ad, "-m", "genept-s", "--labels", "B cells", "T cells", "--reference", ref_path, "-o", out, "--overwrite")
    assert isinstance(res.exception, MMGeneError) and "the reference labels no cell 'T cells'" in str(res.exception)
    # the message names the column and what it holds (it said "no labelled cell of 'B cell' ... Where: calibrate")
    assert str(res.exception) == (
        "the reference labels no cell 'T cells'; its labels are 'B cells', 'NK cells'. Where: obs['cell_type'] of the "
        "reference (--reference-column). What to do: write the labels as the reference column does, or give reference "
        "cells of every label."
    )


def test_transfer_labels_from_a_reference_index(h5ad, small, tmp_path):  # noqa: F811
    import anndata as ad

    ref = tmp_path / "ref"
    assert invoke("index", "build", h5ad, "-e", "X_genept_s", "-o", ref, "--obs", "cell_type").exit_code == 0
    out = tmp_path / "out.h5ad"
    res = invoke("transfer", ref, h5ad, "--label-col", "cell_type", "-k", "1", "-o", out, "--json")
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    # k=1 against an index holding the same cells: each cell finds itself
    assert (adata.obs["cell_type_transferred"].astype(str) == small.obs["cell_type"].astype(str).to_numpy()).all()
    assert (adata.obs["cell_type_transferred_confidence"] == 1).all()
    result = json.loads(res.stdout)
    assert result == {
        "out": str(out), "label_key": "cell_type_transferred", "confidence_key": "cell_type_transferred_confidence",
        "cells": small.n_obs, "mean_confidence": 1.0, "counts": small.obs["cell_type"].astype(str).value_counts().to_dict(),
        "genes": {"shared_genes": 32721, "reference_genes": 32721, "query_genes": 32721, "reference_species": "human",
                  "query_species": "human"},
    }
    res = invoke("transfer", ref, h5ad, "--label-col", "nope", "-o", out, "--overwrite")
    assert isinstance(res.exception, MissingColumnError)
    # the old spelling still works (hidden); with a different --label-col it is refused
    res = invoke("transfer", ref, h5ad, "--label-column", "cell_type", "-k", "1", "-o", out, "--overwrite")
    assert res.exit_code == 0, res.output
    res = invoke("transfer", ref, h5ad, "--label-col", "cell_type", "--label-column", "other", "-o", out, "--overwrite")
    assert isinstance(res.exception, MMGeneError) and "disagree" in str(res.exception)
    res = invoke("transfer", ref, h5ad, "-o", out, "--overwrite")
    assert isinstance(res.exception, MMGeneError) and "no label column given" in str(res.exception)


def test_index_build_refuses_a_model_of_another_dimension(h5ad, small, tmp_path, encoder):  # noqa: F811
    import anndata as ad
    from hostile import assert_refused

    from mmgene.index import load
    from mmgene.query import GenePTSpace
    from mmgene.query.space import check_model_dim

    short = tmp_path / "short.h5ad"
    ad.AnnData(obs=small.obs[["cell_type"]], obsm={"X_short": small.obsm["X_genept_s"][:, :50]}).write_h5ad(short)
    for extra in ([], ["--stream", "--kind", "ivf"]):
        line = assert_refused(["index", "build", short, "-e", "X_short", "-o", tmp_path / "idx", "-m", "genept-s", *extra], [tmp_path])
        assert line == (
            "mmgene: error: the vectors have dimension 50 but model 'genept-s' encodes text into dimension 384, so they are not in "
            f"its joint space. Where: mmgene index build -m genept-s: obsm['X_short'] of {short}. What to do: name the model that "
            "made these vectors (an aligned model folder for its cell vectors, genept-s / genept-w with the text encoder that "
            "embedded them), or leave the model out for cell -> cell queries only."
        )
    # vectors of the model's dimension are indexed with it; without -m nothing is checked (cell -> cell queries only)
    res = invoke("index", "build", h5ad, "-e", "X_genept_s", "-o", tmp_path / "ok", "-m", "genept-s", "--json")
    assert res.exit_code == 0, res.output
    assert load(tmp_path / "ok").model == "genept-s"
    assert invoke("index", "build", short, "-e", "X_short", "-o", tmp_path / "plain").exit_code == 0
    # the Python check, for a space object; and the text query an index with a wrong model would answer
    check_model_dim(GenePTSpace("s", encoder=encoder), 384, "here")
    with pytest.raises(ParameterError, match="the vectors have dimension 50 but model 'genept-s' encodes text into dimension 384"):
        check_model_dim(GenePTSpace("s", encoder=encoder), 50, "here")
    from mmgene.index import CellIndex
    from mmgene.query import text_to_cells

    with pytest.raises(ParameterError, match=r"Where: CellIndex.build\(model='genept-s'\): obsm\['X_short'\]"):
        CellIndex.build(ad.read_h5ad(short), "X_short", model="genept-s")
    wrong = CellIndex.build(ad.read_h5ad(short), "X_short")
    wrong.meta["model"] = "genept-s"  # as an index folder whose meta.json was edited
    with pytest.raises(ParameterError, match=r"model 'genept-s' encodes text into dimension 384 but the index holds vectors of dimension 50 \(obsm\['X_short'\]\)"):
        text_to_cells(wrong, "T cells", model=GenePTSpace("s", encoder=encoder))


@pytest.fixture(scope="module")
def genept_w_index(small, encoder, tmp_path_factory):  # noqa: F811
    """A GenePT-w index (30 gene vectors) of the 120 cells, saved with model genept-w; the cells; the gene vectors."""
    import mmgene.embed
    from mmgene.genes.default import default_gene_vectors
    from mmgene.index import build

    counts = np.asarray(small.X.sum(axis=0)).ravel()
    genes = list(small.var["gene_symbol"].to_numpy()[np.argsort(-counts, kind="stable")[:30]])
    adata, gene_vectors = small.copy(), default_gene_vectors(encoder, genes=genes)
    mmgene.embed.genept_w(adata, gene_vectors=gene_vectors)
    root = tmp_path_factory.mktemp("genept_w")
    return build(adata, "X_genept_w", obs_columns=["cell_type"]).save(root / "idx"), adata, gene_vectors


def test_query_genes_refuses_an_anndata_of_other_cells(genept_w_index, pbmc68k, encoder, tmp_path):  # noqa: F811
    from hostile import assert_refused

    from mmgene.index import load
    from mmgene.query import GenePTSpace, explain_hits, text_to_cells

    folder, adata, gene_vectors = genept_w_index
    source = load(folder).meta["source"]
    assert source and source.endswith("pbmc3k.h5ad")
    other = tmp_path / "other.h5ad"
    pbmc68k.write_h5ad(other)
    hits = text_to_cells(load(folder), "T cell", k=3)
    line = assert_refused(["query", folder, "T cell", "-k", "3", "--genes", other], [tmp_path, folder])
    assert line == (
        f"mmgene: error: the AnnData's cells do not match the index's cells: 3 of the 3 cells the query found (e.g. "
        f"{hits['cell_id'].iloc[0]!r}) are not among its 700 cells. Where: --genes {other}. What to do: pass the AnnData "
        f"the index was built from ({source}), whose cells the index holds."
    )
    # some of the cells only: still not the index's AnnData
    partial = tmp_path / "partial.h5ad"
    adata[adata.obs_names != hits["cell_id"].iloc[1]].copy().write_h5ad(partial)
    line = assert_refused(["query", folder, "T cell", "-k", "3", "--genes", partial], [tmp_path, folder])
    assert f"1 of the 3 cells the query found (e.g. {hits['cell_id'].iloc[1]!r}) are not among its 119 cells. Where: --genes {partial}." in line
    with pytest.raises(ParameterError, match=r"do not match the index's cells.*Where: explain_hits\(adata=...\). What to do: pass the AnnData the index was built from, whose"):
        explain_hits(hits, pbmc68k, GenePTSpace("w"))
    # the AnnData the index was built from explains every hit
    explained = explain_hits(hits, adata, GenePTSpace("w", encoder=encoder), gene_vectors=gene_vectors, top_n=2)
    assert explained["top_genes"].str.split().map(len).tolist() == [2, 2, 2]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["B cell", "b  cell "], "label 'B cell' is given twice ('B cell' and 'b  cell' differ only in case or blanks)"),
        (["Unknown", "T cell"], "'Unknown' reads as 'unknown', the answer for unrecognised cells, not a label"),
        (["B cell", "B lymphocyte", "T cell"], "labels 'B cell' and 'B lymphocyte' both stand for CL:0000236 B cell"),
    ],
)
def test_annotate_refuses_labels_that_name_one_cell_type_twice(h5ad, tmp_path, labels, message):
    """Such labels were accepted: two columns alike split the type's cells at about 0.5 each, so every
    one of them became unknown (0 B cells of 95 in pbmc68k_reduced), or 'Unknown' beside 'unknown'."""
    from hostile import assert_refused

    got = assert_refused(["annotate", h5ad, "--model", "genept-s", "--labels", *labels, "--out", tmp_path / "a.h5ad"], [tmp_path])
    assert message in got


def test_annotate_checks_its_labels_before_reading_the_file(tmp_path):
    """A mistake in --labels is said at once, not after a large file was read: here the file is not even
    an AnnData, and the labels' error comes first."""
    from hostile import assert_refused

    data = tmp_path / "big.h5ad"
    data.write_text("not an AnnData")
    got = assert_refused(["annotate", data, "--model", "genept-s", "--labels", "B cell", "--out", tmp_path / "a.h5ad"], [tmp_path])
    assert "annotate chooses among labels, but only 'B cell' was given" in got


def test_annotate_reads_cell_ontology_ids_as_their_terms(h5ad, tmp_path):
    """Ids were prompted as text ("a CL:0000236 cell") and read as no term."""
    import anndata as ad

    from mmgene.text.prompts import class_prompts

    assert class_prompts(["CL:0000236"]) == class_prompts(["B cell"])
    out = tmp_path / "annotated.h5ad"
    res = invoke("annotate", h5ad, "--model", "genept-s", "--labels", "CL:0000236", "CL:0000084", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["terms"] == {"CL:0000236": "CL:0000236", "CL:0000084": "CL:0000084"}
    assert list(ad.read_h5ad(out).uns["mmgene"]["mmgene_label"]["term_ids"]) == ["CL:0000236", "CL:0000084"]
