"""Gene embeddings shared by the omics and the text route."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from mmgene.align.modules.weighted import WeightedModule


class GeneTable(WeightedModule):
    """One learned embedding per gene symbol, pooled into bags for both routes.

    Cells: ``gene_bag`` = mean of the embeddings of the cell's genes, weighted by expression times a
    learned per-gene importance (softplus). Text: ``mention_bag`` = mean embedding of the genes it names;
    ``related_bag`` = softmax-weighted embedding of the genes whose text resembles it.
    """

    config_keys = ["vocab_size", "dim"]
    config_file_name = "gene_table_config.json"

    def __init__(self, vocab_size: int, dim: int, text_dim: int = 0) -> None:
        """``text_dim`` is read from configs that record it; only 0 (no text vectors in the table) exists."""
        super().__init__()
        if text_dim:
            from mmgene.errors import ModelError

            raise ModelError(
                f"this gene table has text vectors (text_dim={text_dim}), which mmgene does not build or load",
                self.config_file_name,
                "train the model again with this version of mmgene",
            )
        self.vocab_size, self.dim = int(vocab_size), int(dim)
        self.embedding = nn.Embedding(self.vocab_size, self.dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.importance = nn.Embedding(self.vocab_size, 1)
        nn.init.zeros_(self.importance.weight)

    def _bag(self, ids: Tensor, weight: Tensor) -> Tensor:
        """``sum_g w_g E_g``, without materialising the cells x genes x dim gather."""
        return F.embedding_bag(ids, self.embedding.weight, per_sample_weights=weight.to(self.embedding.weight.dtype), mode="sum")

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "values" in features:
            ids, mask = features["input_ids"], features["attention_mask"]
            weight = features["values"] * F.softplus(self.importance(ids).squeeze(-1) + 1.0) * mask
            features["gene_bag"] = self._bag(ids, weight / weight.sum(1, keepdim=True).clamp(min=1e-6))
        if "mention_ids" in features:
            mask = features["mention_mask"]
            features["mention_bag"] = self._bag(features["mention_ids"], mask / mask.sum(1, keepdim=True).clamp(min=1.0))
        if "related_ids" in features:
            features["related_bag"] = self._bag(features["related_ids"], features["related_weights"])
        return features
