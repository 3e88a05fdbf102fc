"""The text tower's projection into the joint space."""

from __future__ import annotations

from typing import Any

from torch import nn

from mmgene.align.modules.helpers import mlp
from mmgene.align.modules.weighted import WeightedModule


class TextHead(WeightedModule):
    """Project the text embedding (MLP) plus, when the text names genes, their pooled gene embedding."""

    config_keys = ["text_dim", "gene_dim", "hidden", "out_dim", "dropout"]
    config_file_name = "text_head_config.json"

    def __init__(self, text_dim: int, gene_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.text_dim, self.gene_dim = int(text_dim), int(gene_dim)
        self.hidden, self.out_dim, self.dropout = int(hidden), int(out_dim), float(dropout)
        self.mlp = mlp(self.text_dim, self.hidden, self.out_dim, self.dropout)
        if self.gene_dim:
            self.mention = nn.Sequential(nn.LayerNorm(self.gene_dim), nn.Linear(self.gene_dim, self.out_dim))
            self.related = nn.Sequential(nn.LayerNorm(self.gene_dim), nn.Linear(self.gene_dim, self.out_dim))

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        text = features["text_embedding"].to(self.mlp[0].weight.dtype)
        out = self.mlp(text)
        if self.gene_dim and "mention_bag" in features:
            named = (features["mention_mask"].sum(1, keepdim=True) > 0).to(out.dtype)
            out = out + named * self.mention(features["mention_bag"])
        if self.gene_dim and "related_bag" in features:
            out = out + self.related(features["related_bag"])
        features["sentence_embedding"] = out
        return features

    def get_embedding_dimension(self) -> int:
        return self.out_dim
