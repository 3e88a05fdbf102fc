"""The omics tower's input: cells as gene ids with expression values and/or obsm vectors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers.base.modules import InputModule

from mmgene.align.modules.helpers import hub_options, pad

#: the gene symbols of the vocabulary, one a line, beside the config
VOCAB_FILE = "vocab.txt"


def for_encoding(cells: Sequence[Any]) -> list[Any]:
    """``cells`` with each list turned into a NumPy array, for ``SentenceTransformer.encode``.

    Before encoding, sentence-transformers estimates every input's length to batch similar lengths
    together; it walks a list element by element (about half the time of encoding a cell with 256
    genes) but reads an array's size at once. The tower reads both forms alike.
    """
    return [{k: np.asarray(v) if isinstance(v, list) else v for k, v in c.items()} if isinstance(c, dict) else c for c in cells]


def _listed(values: Any) -> list[Any]:
    """A cell's genes or values as a list (none: empty)."""
    if values is None:
        return []
    if isinstance(values, list):
        return values
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


class CellInput(InputModule):
    """Preprocess cells for the omics tower.

    A cell is a dict ``{"genes": [symbol, ...], "values": [expression, ...], "<obsm key>": [float, ...]}``
    (genes in any order; see :func:`mmgene.cells.inputs.cell_inputs`), or a cell sentence string (gene
    symbols in descending expression; values then decay with rank). Genes outside the vocabulary are
    ignored; the ``max_genes`` highest are kept. During training a random share of each cell's genes
    (up to ``gene_dropout``) is hidden, so the tower learns to work from partial gene panels.
    """

    config_keys = ["obsm_keys", "obsm_dims", "max_genes", "gene_dropout"]
    config_file_name = "cell_input_config.json"

    def __init__(
        self,
        vocab: Sequence[str] = (),
        obsm_keys: Sequence[str] = (),
        obsm_dims: Sequence[int] = (),
        *,
        max_genes: int,
        gene_dropout: float,
    ) -> None:
        super().__init__()
        self.vocab = [str(v) for v in vocab]
        self.index = {v.upper(): i for i, v in enumerate(self.vocab)}
        self._known: dict[Any, int] = {}
        self.obsm_keys = list(obsm_keys)
        self.obsm_dims = [int(d) for d in obsm_dims]
        self.max_genes = int(max_genes)
        self.gene_dropout = float(gene_dropout)

    @property
    def modalities(self) -> list[str]:
        return ["text"]

    def _ids_of(self, genes: Sequence[Any]) -> np.ndarray:
        """Each symbol's vocabulary index, case-insensitive (-1: not in the vocabulary); every symbol
        seen is remembered, so a cell costs one dictionary lookup per gene."""
        known = self._known
        for g in genes:
            if g not in known:
                known[g] = self.index.get(str(g).upper(), -1)
        return np.fromiter((known[g] for g in genes), dtype=np.int64, count=len(genes))

    def _genes_of(self, cell: Any) -> tuple[np.ndarray, np.ndarray]:
        """The vocabulary ids and values of a cell's expressed genes, the ``max_genes`` highest."""
        genes, values = (cell.split(), None) if isinstance(cell, str) else (_listed(cell.get("genes")), _listed(cell.get("values")))
        if not values:
            values = [1.0 / np.log2(r + 2.0) for r in range(len(genes))]
        n = min(len(genes), len(values))
        ids, vals = self._ids_of(genes[:n]), np.asarray(values[:n], dtype=np.float64)
        keep = (ids >= 0) & (vals > 0)
        ids, vals = ids[keep], vals[keep]
        if len(ids) > self.max_genes:
            top = np.argsort(-vals, kind="stable")[: self.max_genes]
            ids, vals = ids[top], vals[top]
        return ids, vals

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.vocab:
            pairs = [self._genes_of(c) for c in inputs]
            ids, vals, mask = pad([p[0] for p in pairs], [p[1] for p in pairs])
            out.update(input_ids=ids, values=vals, attention_mask=mask)
        if self.obsm_keys:
            rows = []
            for c in inputs:
                missing = [k for k in self.obsm_keys if isinstance(c, str) or k not in c]
                if missing:
                    from mmgene.errors import ParameterError

                    raise ParameterError(
                        f"this model reads obsm {self.obsm_keys}, but a cell input lacks {missing}",
                        "the cell inputs",
                        "encode an AnnData with those obsm keys (AlignedModel.encode_cells) or pass dicts holding them",
                    )
                rows.append(np.concatenate([np.asarray(c[k], dtype=np.float32).ravel() for k in self.obsm_keys]))
            out["obsm"] = torch.from_numpy(np.stack(rows))
            if "input_ids" not in out:  # the trainer finds a column by its 'sentence_embedding' or 'input_ids'
                out["sentence_embedding"] = out["obsm"]
        return out

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if self.training and self.gene_dropout > 0 and "attention_mask" in features:
            mask = features["attention_mask"]
            keep_share = 1.0 - self.gene_dropout * torch.rand(mask.shape[0], 1, device=mask.device)
            keep = (torch.rand_like(mask) < keep_share).float() * mask
            # never hide every gene of a cell
            empty = keep.sum(1, keepdim=True) == 0
            features["attention_mask"] = torch.where(empty, mask, keep)
        return features

    def get_embedding_dimension(self) -> int | None:
        return None

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        with open(os.path.join(output_path, VOCAB_FILE), "w", encoding="utf-8") as fh:
            fh.write("\n".join(self.vocab))

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> CellInput:
        """:meth:`Module.load` with the vocabulary read from ``vocab.txt`` (it is not part of the config)."""
        path = cls.load_file_path(model_name_or_path, VOCAB_FILE, subfolder=subfolder, **hub_options(kwargs))
        vocab = Path(path).read_text(encoding="utf-8").split("\n") if path else []
        defaults = {**(kwargs.pop("init_defaults", None) or {}), "vocab": [v for v in vocab if v]}
        return super().load(model_name_or_path, subfolder=subfolder, init_defaults=defaults, **kwargs)
