"""Write the notebooks in notebooks/ from the cell sources below, and with --execute run them and keep their outputs.

    python tools/make_notebooks.py             # sources only, no outputs
    python tools/make_notebooks.py --execute   # run each with nbclient; tables and plots are written into the file

The committed notebooks carry their outputs, so the repository shows the results without running anything;
CI runs them again (`pytest --nbmake notebooks`, which does not write them). Executing needs no network:
HF_HUB_OFFLINE=1 for the kernel, scanpy's bundled pbmc68k_reduced as data, the offline MiniLM package as
text model, mmgene's own gene table as gene text. Outputs stay small: plots are PNGs at 80 dpi, stderr (warnings, progress bars) is dropped,
no timing metadata is recorded, and a notebook over MAX_BYTES is an error.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import nbformat as nbf

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MAX_BYTES = 1_000_000


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
import matplotlib.pyplot as plt
plt.rcParams["figure.dpi"] = 80  # small PNGs in the saved notebook
import mmgene
mmgene.settings.quiet = True"""

zero = nb([
"md:# Zero-shot questions in plain language\n\nTrain mmgene's text-cell model on scanpy's bundled `pbmc68k_reduced` (no download), then ask the cells questions with text only: which type is each cell, which cells are *cytotoxic T cells* (and which genes make a cell match), and which cells are none of the known types.",
SETUP,
"""adata = mmgene.io.read(mmgene.data.pbmc68k())   # finds log1p data in .raw, resolves gene ids
adata.uns["mmgene"]["input"]["matrix"], adata.n_obs, adata.n_vars""",
"""mmgene.cells.sentences(adata, top_k=20)
adata.obs["cell_sentence"].head(3).tolist()""",
"md:## Train the joint space\n\n80% of the cells (seed 0) train the model; the rest are held out. Captions come from `bulk_labels` through varied templates, enriched with Cell Ontology names and definitions; the data are human PBMC, so the captions also say the cells come from human blood (left out unless you say so).",
"""pbmc = dict(species="human", tissue="blood")  # where the cells come from, said in captions and prompts
model = mmgene.align.train(adata, "bulk_labels", pairs=mmgene.align.PairsConfig(**pbmc), training=mmgene.align.TrainingConfig(epochs=2, seed=0))
held_out = adata.obs_names.isin(model.test_obs_names)
held_out.sum()""",
"md:## Zero-shot classification of held-out cells, against two baselines\n\nThe prompts are scored as `annotate` scores them: the cells first recentred on the model's training mean, each class's similarities z-scored over the cells, and a class whose Cell Ontology term lies above some of the model's training classes also answering for them. Recentring is for data from another lab or chemistry; these held-out cells come from the training data itself, where it gains nothing (`recentre=False` scores them a little higher). GenePT-s embeds each cell's gene sentence and the prompts with the same text model; the textbook-marker baseline needs no model: it scores each class by the mean z-scored expression of its marker genes (and says which of them the data lacks).",
"""report = mmgene.evaluate.evaluate(model, adata[held_out].copy(), "bulk_labels", **pbmc)
from mmgene.evaluate.report import markdown_report
print(markdown_report(report).split("| class |")[0])
assert report["zero_shot"]["macro_auroc"] > report["baseline"]["macro_auroc"]
assert report["zero_shot"]["macro_auroc"] > report["marker_baseline"]["macro_auroc"]
report["marker_baseline"]["markers_found"]""",
"md:## Let the data's own structure sharpen the answer\n\n`refine=True` refines every method's scores by self-training on the query cells' own principal components, starting from the text's most confident answers (no labels are used). It helps most on data unlike the training data; a cell's answer then depends on the other cells scored with it.",
"""refined = mmgene.evaluate.evaluate(model, adata[held_out].copy(), "bulk_labels", refine=True, **pbmc)
assert refined["zero_shot"]["macro_auroc"] > refined["baseline"]["macro_auroc"]
pd.DataFrame({name: {k: round(r[k], 3) for k in ("balanced_accuracy", "macro_auroc")}
              for name, r in [("mmgene", report["zero_shot"]), ("mmgene, refined", refined["zero_shot"]),
                              ("GenePT-s, refined", refined["baseline"]), ("markers, refined", refined["marker_baseline"])]})""",
"md:## Annotate every cell, with an *unknown* answer\n\nLabels are given as plain text (the `bulk_labels` names, made readable). Cells whose best label is not clearly better than the rest are called `unknown`. Left the labels the data came with, right mmgene's answers, on the dataset's UMAP (`mmgene.pl.labels`):",
"""from mmgene.text.labels import clean_label
adata.obs["cell_type"] = adata.obs["bulk_labels"].astype(str).map(clean_label)
mmgene.query.annotate(adata, sorted(set(adata.obs["cell_type"])), model, **pbmc)
mmgene.pl.labels(adata, "cell_type", "mmgene_label", basis="umap")""",
"""mmgene.pl.confusion(adata, "cell_type", "mmgene_label", title="share of each true type per answer (80% of cells seen in training)")""",
"md:## Which cells are *cytotoxic T cells*?\n\nEvery cell coloured by its cosine similarity to the question in the joint space (`mmgene.pl.query`), and the labels of the 20 best cells.",
"""adata.obsm["X_mmgene"] = model.encode_cells(adata)
mmgene.pl.query(adata, model, "cytotoxic T cells", basis="umap", use_rep="X_mmgene", key_added="cytotoxic_T")
adata.obs.nlargest(20, "cytotoxic_T")["bulk_labels"].value_counts().head()""",
"md:## Which genes make a cell match?\n\nThe aligned model does not split a score into genes, but GenePT-w does: there a cell is the expression-weighted average of its genes' text vectors, so its cosine similarity to a question is exactly a sum of one share per gene (`mmgene.query.gene_contributions`). The best *cytotoxic T cell* above, read in the GenePT-w space (offline NCBI gene summaries embedded by the same MiniLM), with `mmgene.pl.top_genes`:",
"""best = adata.obs["cytotoxic_T"].idxmax()
mmgene.pl.top_genes(adata, "genept-w", "cytotoxic T cells", best, top_n=12)""",
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
"md:The query cells' own labels (left) and the transferred ones (right) on the dataset's UMAP, then the counts per pair:",
"""mmgene.pl.labels(query_cells, "bulk_labels", "bulk_labels_transferred", basis="umap")
mmgene.pl.confusion(query_cells, "bulk_labels", "bulk_labels_transferred", normalize=None, title="cells per true (rows) and transferred (columns) label")""",
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

NOTEBOOK_SOURCES = {"zero_shot_queries": zero, "retrieval": retr, "publish_dataset": pub}


def execute(notebook, timeout: int):
    """Run ``notebook`` in a fresh python3 kernel (cwd notebooks/, offline) and keep what a reader needs of its outputs."""
    from nbclient import NotebookClient

    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
            cell.metadata.pop("execution", None)
    return notebook


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run each notebook and write it with its outputs")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds a cell may take (with --execute)")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"notebooks to write, of {', '.join(NOTEBOOK_SOURCES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOK_SOURCES))
    if unknown:
        parser.error(f"no notebook named {unknown[0]!r}; choose from {', '.join(NOTEBOOK_SOURCES)}")
    os.environ["HF_HUB_OFFLINE"] = "1"  # the kernels inherit it: executing never reaches the network
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    status = 0
    for name in args.names or list(NOTEBOOK_SOURCES):
        notebook, path = NOTEBOOK_SOURCES[name], NOTEBOOKS / f"{name}.ipynb"
        started = time.perf_counter()
        if args.execute:
            notebook = execute(notebook, args.timeout)
        nbf.write(notebook, path)
        size = path.stat().st_size
        print(f"{path.relative_to(NOTEBOOKS.parent)}: {size / 1e3:.0f} kB" + (f", ran in {time.perf_counter() - started:.0f} s" if args.execute else ""))
        if size > MAX_BYTES:
            print(f"error: {path.name} is over {MAX_BYTES / 1e6:.0f} MB: make its plots smaller", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
