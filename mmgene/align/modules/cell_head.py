"""The omics tower's projection into the joint space."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmgene.align.modules.helpers import mlp
from mmgene.align.modules.weighted import WeightedModule


class CellHead(WeightedModule):
    """Project ``gene_bag`` and/or ``obsm`` into the joint space (LayerNorm + two-layer MLP).

    The projection is also kept as ``learned_embedding`` (before ``offset``, the gene channel and the
    final normalisation). ``offset`` (None, or one vector of ``out_dim``) is added to every projection:
    :mod:`mmgene.align.recentre` sets it for one encoding; it is never saved.
    """

    config_keys = ["gene_dim", "obsm_dim", "hidden", "out_dim", "dropout"]
    config_file_name = "cell_head_config.json"

    def __init__(self, gene_dim: int, obsm_dim: int, hidden: int, out_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.gene_dim, self.obsm_dim = int(gene_dim), int(obsm_dim)
        self.hidden, self.out_dim, self.dropout = int(hidden), int(out_dim), float(dropout)
        self.gene_norm = nn.LayerNorm(self.gene_dim) if self.gene_dim else None
        self.obsm_norm = nn.LayerNorm(self.obsm_dim) if self.obsm_dim else None
        self.mlp = mlp(self.gene_dim + self.obsm_dim, self.hidden, self.out_dim, self.dropout)
        self.offset: torch.Tensor | None = None

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        parts = []
        if self.gene_norm is not None:
            parts.append(self.gene_norm(features["gene_bag"]))
        if self.obsm_norm is not None:
            parts.append(self.obsm_norm(features["obsm"].to(self.mlp[0].weight.dtype)))
        learned = self.mlp(torch.cat(parts, dim=-1))
        features["learned_embedding"] = learned
        features["sentence_embedding"] = learned if self.offset is None else learned + self.offset.to(learned)
        return features

    def get_embedding_dimension(self) -> int:
        return self.out_dim
