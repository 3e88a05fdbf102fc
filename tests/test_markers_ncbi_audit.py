"""Audit fixes: a marker baseline with no marker in the data is not scored (and reports say so); NCBI
esearch quotes each symbol and never sends one with a double quote (against a loopback server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from servers.ncbi_server import NCBIServer

from mmgene.errors import GeneIdError

GENES = ["MS4A1", "CD79A", "GNLY", "NKG7", "ACTB"]
LOG = np.array(  # log1p values, used as they are
    [
        [1.5, 1.5, 0.0, 0.0, 2.5],  # B
        [1.5, 0.5, 0.0, 0.0, 2.5],  # B
        [0.0, 0.0, 1.5, 1.5, 2.5],  # NK
        [0.5, 0.0, 0.5, 1.5, 2.5],  # NK
        [0.0, 0.0, 0.0, 0.0, 2.5],  # dendritic
    ]
)
LABELS = ["B cells", "B cells", "NK cells", "NK cells", "Dendritic cells"]
NOT_SCORED = "no marker gene of any class in the data, or none that varies between its cells"


def _adata(matrix: np.ndarray, genes: list[str]) -> ad.AnnData:
    return ad.AnnData(
        X=sp.csr_matrix(matrix.astype(np.float32)),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(matrix.shape[0])]),
        var=pd.DataFrame(index=list(genes)),
    )


# -- marker baseline ------------------------------------------------------------------------------------


def test_no_marker_of_any_class_in_the_data_raises_instead_of_scoring_chance():
    from mmgene.evaluate import marker_zero_shot
    from mmgene.evaluate.marker_baseline import NoMarkerGenesError

    without = _adata(LOG[:, [4, 4]], ["ACTB", "GAPDH"])  # the table's markers (MS4A1, GNLY ...) are all absent
    with pytest.raises(NoMarkerGenesError) as err:
        marker_zero_shot(without, LABELS)
    assert isinstance(err.value, GeneIdError)
    assert str(err.value).startswith(
        f"the textbook-marker baseline cannot score these cells: {NOT_SCORED} (looked for MS4A1, CD79A, GNLY, NKG7)."
    )
    assert "--no-marker-baseline" in str(err.value)
    assert err.value.markers == {"B cells": ["MS4A1", "CD79A"], "Dendritic cells": [], "NK cells": ["GNLY", "NKG7"]}
    with pytest.raises(NoMarkerGenesError, match=re.escape(f"{NOT_SCORED} (looked for CD19, NCAM1)")):
        marker_zero_shot(_adata(LOG, GENES), LABELS, markers={"B cells": ["CD19"], "NK cells": ["NCAM1"]})
    with pytest.raises(NoMarkerGenesError, match=re.escape(f"{NOT_SCORED} (none known for these classes)")):
        marker_zero_shot(_adata(LOG, GENES), ["x", "x", "y", "y", "y"], markers={})


def test_markers_for_one_class_only_call_every_cell_that_class_and_rank_by_its_markers():
    from mmgene.evaluate import marker_zero_shot

    adata = _adata(LOG, GENES)
    res = marker_zero_shot(adata, LABELS, markers={"B cells": ["MS4A1"]})
    assert res["scored"] is True and res["markers_found"] == {"B cells": ["MS4A1"], "Dendritic cells": [], "NK cells": []}
    assert res["per_class"]["B cells"]["recall"] == 1.0 and res["per_class"]["B cells"]["precision"] == pytest.approx(2 / 5)
    assert res["per_class"]["NK cells"]["recall"] == 0.0 and res["per_class"]["Dendritic cells"]["recall"] == 0.0
    assert res["per_class"]["B cells"]["auroc"] == 1.0  # MS4A1 ranks both B cells first
    assert res["per_class"]["NK cells"]["auroc"] == 0.5 and res["per_class"]["Dendritic cells"]["auroc"] == 0.5
    assert res["accuracy"] == pytest.approx(2 / 5) and res["balanced_accuracy"] == pytest.approx(1 / 3)
    assert res["macro_auroc"] == pytest.approx(2 / 3)
    refined = marker_zero_shot(adata, LABELS, markers={"B cells": ["MS4A1"]}, refine=np.arange(10.0).reshape(5, 2))
    assert refined["refined"] and refined["balanced_accuracy"] == pytest.approx(1 / 3)  # one column: nothing to refine
    assert refined["per_class"]["B cells"]["auroc"] == 1.0


def _zero_shot() -> dict:
    return {
        "accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.4, "macro_auroc": 0.75, "proportion_error": 0.25,
        "centroid": {"accuracy": 1.0},
        "per_class": {"B cells": {"n": 2, "recall": 1.0, "precision": 0.5, "f1": 0.667, "auroc": 0.75}},
    }


def test_markdown_and_demo_text_say_the_marker_baseline_was_not_scored():
    from mmgene.cli.demo import _text
    from mmgene.evaluate import markdown_report
    from mmgene.evaluate.marker_baseline import NoMarkerGenesError, not_scored

    entry = not_scored(NoMarkerGenesError({"B cells": ["MS4A1", "CD79A"]}))
    assert entry == {"scored": False, "reason": NOT_SCORED, "markers": {"B cells": ["MS4A1", "CD79A"]},
                     "markers_found": {"B cells": []}}
    report = {"dataset": "toy", "n_cells": 2, "label_col": "cell_type", "zero_shot": _zero_shot(), "marker_baseline": entry}
    md = markdown_report(report)
    assert f"The textbook-marker baseline could not be scored ({NOT_SCORED})." in md
    assert "textbook marker genes (mean z-score)" not in md
    assert "| B cells | 2 | 1.000 | 0.500 | 0.667 | 0.750 | – | – | none (of MS4A1, CD79A) |" in md
    demo = {"input": "toy.h5ad", "cells": 2, "held_out_cells": 2, "label_col": "cell_type", "queries": {},
            "annotation": {"held_out_accuracy": 0.5, "accuracy": 0.5, "unknown": 0}}
    result = SimpleNamespace(report={**report, "demo": demo}, seconds=1.0, files={})
    assert f"    markers    not scored: {NOT_SCORED}  (textbook marker genes, no model)" in _text(result, Path("out"))


def test_cli_evaluate_on_data_without_marker_genes_finishes_and_reports_the_baseline_not_scored(tmp_path, pbmc3k_path):
    from typer.testing import CliRunner

    import mmgene.io
    from mmgene.cli.app import app
    from mmgene.evaluate.marker_baseline import class_markers

    adata = mmgene.io.read(pbmc3k_path)
    adata = adata[np.sort(np.random.default_rng(0).choice(adata.n_obs, 160, replace=False))].copy()
    table = class_markers(sorted(set(adata.obs["cell_type"].astype(str))))
    wanted = {g.upper() for genes in table.values() for g in genes}
    assert wanted  # PBMC types have textbook markers: dropping them all leaves none for any class
    keep = ~adata.var["gene_symbol"].astype(str).str.upper().isin(wanted) & ~adata.var_names.str.upper().isin(wanted)
    h5 = tmp_path / "nomarkers.h5ad"
    adata[:, keep.to_numpy()].copy().write_h5ad(h5)
    runner = CliRunner()
    model = tmp_path / "m"
    res = runner.invoke(app, ["train", str(h5), "--label-col", "cell_type", "--out", str(model), "--max-steps", "2",
                              "--batch-size", "16", "--no-gene-bridge"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", str(model), str(h5), "--label-col", "cell_type", "--no-baseline",
                              "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "rep.json").read_text())
    assert saved["marker_baseline"] == {"scored": False, "reason": NOT_SCORED, "markers": table,
                                        "markers_found": {c: [] for c in table}}
    md = (tmp_path / "rep.md").read_text()
    assert f"The textbook-marker baseline could not be scored ({NOT_SCORED})." in md and f"({NOT_SCORED})" in res.output
    assert "textbook marker genes (mean z-score)" not in md


# -- NCBI esearch ---------------------------------------------------------------------------------------


class _QuotedServer(NCBIServer):
    """The loopback stand-in reading quoted terms as Entrez does: ``"A B"[sym]`` is the one symbol ``A B``."""

    def _esearch(self, params: dict[str, str]) -> dict:
        symbols = [s.upper() for s in re.findall(r'"([^"]*)"\[sym\]', params.get("term", ""))]
        ids = [g["uid"] for g in self.genes
               if g["name"].upper() in symbols or {a.strip().upper() for a in g["otheraliases"].split(",")} & set(symbols)]
        return {"header": {"type": "esearch"}, "esearchresult": {"count": str(len(ids)), "idlist": ids}}


def _client(server: NCBIServer, tmp_path: Path):
    from mmgene.genes.ncbi import NCBIClient

    return NCBIClient(base_url=server.url, email="test@example.org", cache_path=tmp_path / "ncbi.sqlite", rate=1000.0,
                      backoff=0.05, timeout=(2.0, 5.0), sleep=lambda s: None)


def test_esearch_quotes_each_symbol_so_spaces_brackets_and_operators_stay_one_term(tmp_path):
    with _QuotedServer() as server:
        client = _client(server, tmp_path)
        got = client.fetch(["TP53", "HLA A", "cd3e (t3e)", "X[orgn]", "OR", "CD20"])
        sent = [p["term"] for e, p in server.requests if e == "esearch.fcgi"]
        assert sent == ['("TP53"[sym] OR "HLA A"[sym] OR "CD3E (T3E)"[sym] OR "X[ORGN]"[sym] OR "OR"[sym] OR "CD20"[sym])'
                        ' AND human[orgn]']
        assert {s: (r.gene_id if r else None) for s, r in got.items()} == {
            "TP53": "7157", "HLA A": None, "CD3E (T3E)": None, "X[ORGN]": None, "OR": None, "CD20": "931"}
        client.close()


def test_a_symbol_with_a_double_quote_is_never_sent_and_gets_no_record(tmp_path, monkeypatch, capsys):
    from mmgene.settings import settings

    monkeypatch.setattr(settings, "quiet", False)
    with _QuotedServer() as server:
        client = _client(server, tmp_path)
        assert client.esearch(['A"B', '"']) == [] and server.requests == []  # nothing left to ask: no request
        got = client.fetch(["TP53", 'BAD"GENE'])
        assert [p["term"] for e, p in server.requests if e == "esearch.fcgi"] == ['("TP53"[sym]) AND human[orgn]']
        assert got["TP53"].gene_id == "7157" and got['BAD"GENE'] is None and list(got) == ["TP53", 'BAD"GENE']
        n = len(server.requests)
        assert client.fetch(["TP53", 'BAD"GENE'])['BAD"GENE'] is None and len(server.requests) == n  # not asked again
        client.close()
    err = capsys.readouterr().err
    assert "1 gene symbols hold a double quote, which an NCBI search cannot; they get no NCBI text: 'BAD\"GENE'" in err
