"""Write the notebooks in notebooks/ (without outputs) from the cell sources below: python tools/make_notebooks.py."""
import nbformat as nbf

def nb(cells):
    n = nbf.v4.new_notebook()
    n.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    n.cells = [nbf.v4.new_markdown_cell(c[3:]) if c.startswith("md:") else nbf.v4.new_code_cell(c) for c in cells]
    return n

SETUP = """import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything below runs offline
import torch
torch.set_num_threads(1)  # one thread is often fastest on small machines

import numpy as np
import pandas as pd
import mmgene
mmgene.settings.quiet = True"""

zero = nb([
"md:# Zero-shot questions in plain language\n\nTrain mmgene's text-cell model on scanpy's bundled `pbmc68k_reduced` (no download), then ask the cells questions with text only: which type is each cell, which cells are *cytotoxic T cells*, and which cells are none of the known types.",
SETUP,
"""adata = mmgene.io.read(mmgene.data.pbmc68k())   # finds log1p data in .raw, resolves gene ids
adata.uns["mmgene"]["input"]["matrix"], adata.n_obs, adata.n_vars""",
"""mmgene.cells.sentences(adata, top_k=20)
adata.obs["cell_sentence"].head(3).tolist()""",
"md:## Train the joint space\n\n80% of the cells (seed 0) train the model; the rest are held out. Captions come from `bulk_labels` through varied templates, enriched with Cell Ontology names and definitions.",
"""model = mmgene.align.train(adata, "bulk_labels", training=mmgene.align.TrainingConfig(epochs=2, seed=0))
held_out = adata.obs_names.isin(model.test_obs_names)
held_out.sum()""",
"md:## Zero-shot classification of held-out cells, against two baselines\n\nGenePT-s embeds each cell's gene sentence and the prompts with the same text model; the textbook-marker baseline needs no model: it scores each class by the mean z-scored expression of its marker genes (and says which of them the data lacks).",
"""report = mmgene.evaluate.evaluate(model, adata[held_out].copy(), "bulk_labels")
from mmgene.evaluate.report import markdown_report
print(markdown_report(report).split("| class |")[0])
assert report["zero_shot"]["macro_auroc"] > report["baseline"]["macro_auroc"]
assert report["zero_shot"]["macro_auroc"] > report["marker_baseline"]["macro_auroc"]
report["marker_baseline"]["markers_found"]""",
"md:## Let the data's own structure sharpen the answer\n\n`refine=True` refines every method's scores by self-training on the query cells' own principal components, starting from the text's most confident answers (no labels are used). It helps most on data unlike the training data; a cell's answer then depends on the other cells scored with it.",
"""refined = mmgene.evaluate.evaluate(model, adata[held_out].copy(), "bulk_labels", refine=True)
assert refined["zero_shot"]["macro_auroc"] > refined["baseline"]["macro_auroc"]
pd.DataFrame({name: {k: round(r[k], 3) for k in ("balanced_accuracy", "macro_auroc")}
              for name, r in [("mmgene", report["zero_shot"]), ("mmgene, refined", refined["zero_shot"]),
                              ("GenePT-s, refined", refined["baseline"]), ("markers, refined", refined["marker_baseline"])]})""",
"md:## Annotate every cell, with an *unknown* answer\n\nLabels are given as plain text. Cells whose best label is not clearly better than the rest are called `unknown`.",
"""from mmgene.text.labels import clean_label
labels = sorted({clean_label(x) for x in adata.obs["bulk_labels"].astype(str)})
mmgene.query.annotate(adata, labels, model)
pd.crosstab(adata.obs["bulk_labels"], adata.obs["mmgene_label"]).iloc[:, :6]""",
"md:## Which cells are *cytotoxic T cells*?",
"""scores = model.encode_cells(adata) @ model.encode_text(["cytotoxic T cells"])[0]
top = adata.obs.assign(score=scores).nlargest(20, "score")
top["bulk_labels"].value_counts().head()""",
])

retr = nb([
"md:# Retrieval: cells like this one, label transfer, and fast search\n\nA FAISS index over cell vectors answers cell -> cells and transfers labels from a labelled reference, with an `unknown` answer for cells unlike any reference type. Runs offline on `pbmc68k_reduced`.",
SETUP,
"""adata = mmgene.io.read(mmgene.data.pbmc68k())
adata.obsm["X_pca"].shape""",
"md:## An exact index over the PCA embedding, and *cells like this one*",
"""index = mmgene.index.CellIndex.build(adata, "X_pca", obs_columns=["bulk_labels"])
print(index.kind, index.ntotal, index.dim)
cell = adata.obs_names[0]
hits = mmgene.query.cells_to_cells(index, [cell], k=10)
print("query cell:", adata.obs.loc[cell, "bulk_labels"])
hits[["rank", "cell_id", "bulk_labels", "score"]]""",
"md:## Save, reload (memory-mapped) and get the same answers",
"""import tempfile, pathlib
folder = pathlib.Path(tempfile.mkdtemp()) / "pbmc68k-index"
index.save(folder)
again = mmgene.index.CellIndex.load(folder)
pd.testing.assert_frame_equal(mmgene.query.cells_to_cells(again, [cell], k=10), hits)
sorted(p.name for p in folder.iterdir())""",
"md:## kNN label transfer from a labelled reference to new cells\n\nHalf of the cells form the reference; the other half are labelled by a distance-weighted vote of their 15 nearest reference cells, with a confidence.",
"""rng = np.random.default_rng(0)
is_ref = rng.random(adata.n_obs) < 0.5
reference = mmgene.index.CellIndex.build(adata[is_ref].copy(), "X_pca", obs_columns=["bulk_labels"])
query_cells = adata[~is_ref].copy()
pred = mmgene.query.transfer_labels(reference, query_cells, "bulk_labels", k=15)
truth = query_cells.obs["bulk_labels"].astype(str).to_numpy()
print("accuracy", round(float((pred.iloc[:, 0].astype(str).to_numpy() == truth).mean()), 3))
pred.head()""",
"md:## Approximate search on more cells\n\n`kind='auto'` builds an exact index below 100,000 cells and an inverted-file (IVF) index above, compressed with product quantisation for very large collections; the search breadth (`nprobe`) is calibrated to a target recall@10. Here we ask for IVF explicitly on 42,000 cells.",
"""big = np.repeat(adata.obsm["X_pca"].astype("float32"), 60, axis=0)
big += np.random.default_rng(1).normal(0, 0.3, big.shape).astype("float32")
large = mmgene.index.CellIndex.from_vectors(big, kind="ivf", seed=0)
print(large.kind, large.ntotal, large.params.calibrated)""",
])

pub = nb([
"md:# Publish a dataset with a card and share links (dry run)\n\nBuild a Hugging Face dataset from an AnnData (one row per cell with its cell sentence and a share link to the AnnData chunk it lives in), write the chunk files with their sha256, and render the dataset card. `dry_run=True` writes everything to a local folder; drop it (with `HF_TOKEN` set) to push to the Hub.",
SETUP,
"""import tempfile, pathlib
out = pathlib.Path(tempfile.mkdtemp()) / "pbmc68k-dataset"
adata = mmgene.data.pbmc68k()
result = mmgene.hub.publish(adata, "my-lab/pbmc68k-cells", layout="pairs", label_key="bulk_labels",
                            share="hub", dry_run=True, out=out, chunk_size=350, seed=0)
result.dataset""",
"md:## The chunk files and their checksums",
"""sorted(p.name for p in out.rglob("*") if p.is_file())[:12]""",
"""row = result.dataset["train"][0]
{k: (v[:80] + "...") if isinstance(v, str) and len(v) > 80 else v for k, v in row.items()}""",
"md:## The rendered card",
"""card = (out / "README.md").read_text()
print(card[:1500])
assert "{{" not in card""",
])

for name, n in [("zero_shot_queries", zero), ("retrieval", retr), ("publish_dataset", pub)]:
    nbf.write(n, f"notebooks/{name}.ipynb")
