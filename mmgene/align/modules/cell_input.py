"""The omics tower's input: cells as gene ids with expression values and/or obsm vectors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
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


def _genes_and_values(cell: Any) -> tuple[np.ndarray, np.ndarray]:
    """A cell's gene symbols (object array) and values (float64), as long as the shorter of the two;
    without values (or for a cell sentence) the values decay with rank."""
    if isinstance(cell, str):
        genes, values = cell.split(), None
    else:
        genes, values = cell.get("genes"), cell.get("values")
    genes = np.asarray([] if genes is None else genes, dtype=object)
    if values is None or len(values) == 0:
        values = 1.0 / np.log2(np.arange(len(genes)) + 2.0)
    values = np.asarray(values, dtype=np.float64)
    n = min(len(genes), len(values))
    return genes[:n], values[:n]


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
        #: every symbol met so far, a hash index over them and their vocabulary indices (-1: none);
        #: replaced as one tuple, so a thread reading it never sees half an update
        self._seen: tuple[pd.Index, np.ndarray] = (pd.Index([], dtype=object), np.zeros(0, np.int64))
        self.obsm_keys = list(obsm_keys)
        self.obsm_dims = [int(d) for d in obsm_dims]
        self.max_genes = int(max_genes)
        self.gene_dropout = float(gene_dropout)

    @property
    def modalities(self) -> list[str]:
        return ["text"]

    def _ids_of(self, genes: np.ndarray) -> np.ndarray:
        """Each symbol's vocabulary index, case-insensitive (-1: not in the vocabulary). Symbols seen
        before are looked up together in a hash index; a new one is upper-cased once and remembered."""
        seen, ids = self._seen
        pos = seen.get_indexer(genes)
        if (pos < 0).any():
            new = pd.unique(genes[pos < 0])
            seen = seen.append(pd.Index(new, dtype=object))
            ids = np.concatenate([ids, np.fromiter((self.index.get(str(g).upper(), -1) for g in new), np.int64, len(new))])
            self._seen = (seen, ids)
            pos = seen.get_indexer(genes)
        return ids[pos]

    def _genes_of(self, cells: Sequence[Any]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per cell, the vocabulary ids and values of its expressed genes, the ``max_genes`` highest."""
        parts = [_genes_and_values(c) for c in cells]
        ends = np.cumsum([len(g) for g, _ in parts])
        flat = self._ids_of(np.concatenate([g for g, _ in parts])) if len(cells) and ends[-1] else np.zeros(0, np.int64)
        ids_of, values_of = [], []
        for (_, vals), stop in zip(parts, ends):
            ids = flat[stop - len(vals) : stop]
            keep = (ids >= 0) & (vals > 0)
            ids, vals = ids[keep], vals[keep]
            if len(ids) > self.max_genes:
                top = np.argsort(-vals, kind="stable")[: self.max_genes]
                ids, vals = ids[top], vals[top]
            ids_of.append(ids)
            values_of.append(vals)
        return ids_of, values_of

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.vocab:
            ids, vals, mask = pad(*self._genes_of(inputs))
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
