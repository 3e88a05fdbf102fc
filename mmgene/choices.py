"""The values of enumerated settings, in one module that imports nothing heavy.

The library checks its arguments against these and the CLI lists them in ``--help``
(:mod:`mmgene.cli.options`); keeping them here lets ``mmgene --help`` show them without importing
numpy or torch.
"""

from __future__ import annotations

from typing import Literal, get_args

#: how genes with equal expression are ordered in a cell sentence (mmgene.cells.vocabulary)
TIES = ("symbol", "position", "random")
#: Geneformer token dictionary versions (mmgene.cells.dictionaries; matched case-insensitively)
VERSIONS = ("V1", "V2")
#: how Geneformer's token vectors become one cell vector (mmgene.embed.geneformer_pool)
POOLINGS = ("mean", "cls")
#: names of the dtypes Geneformer runs in, and the dtype each names (mmgene.embed.geneformer)
DTYPE_NAMES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}
#: what GenePT gives a cell without a matched or expressed gene (mmgene.embed.genept)
OnEmpty = Literal["nan", "zero", "raise"]
ON_EMPTY: tuple[str, ...] = get_args(OnEmpty)
#: how neighbours' votes are weighted in label transfer (mmgene.query.transfer)
WEIGHTINGS = ("uniform", "distance")
#: how a sentence-transformers model runs (mmgene.text.encoders.SentenceTransformerEncoder(backend=...))
TEXT_BACKENDS = {
    "auto": "'onnx-int8' for jobs of at least ONNX_FROM texts when onnxruntime is installed and the model runs on the CPU, torch otherwise; reuses cached float32 vectors first",
    "torch": "sentence-transformers' torch forward pass",
    "onnx": "ONNX Runtime, float32: the torch vectors up to float rounding (cosine > 0.9999), on every core",
    "onnx-int8": "ONNX Runtime with int8 query/key/value projections: ~1.15x faster than 'onnx'; least cosine 0.998 to torch over 13,971 gene texts (cached under its own key)",
}
