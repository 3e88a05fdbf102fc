"""An explicit gene channel appended to the joint vector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers.base.modules import Module
from torch import Tensor


class GeneChannel(Module):
    """An explicit, untrained gene channel appended to the joint vector (optional).

    Cells contribute their expression over the bridge genes, text the softmax weights of the genes its
    words resemble (:meth:`~mmgene.align.modules.text_input.TextInput._related_genes`) plus, with
    ``use_mentions``, an equal share spread over the genes it names ("NK cell expressing GNLY and NKG7").
    Both are L2-normalised and concatenated with the learned vector as
    ``[sqrt(1 - w) * learned, sqrt(w) * genes]``, so a cosine in the joint space is
    ``(1 - w) * learned cosine + w * gene cosine``: a query that names a cell type training never saw
    still finds the cells that express the genes its words point to.

    ``query_weight`` (None: ``weight``) is the ``w`` used outside training (``model.eval()``, i.e. when
    encoding queries and cells): training with a small weight lets the learned part carry the known cell
    types, querying with a larger one leans more on the genes a prompt names (cell types training never
    saw). The channel has no parameters, so the two weights only change how the two cosines are mixed.
    A saved config without ``use_mentions`` or ``query_weight`` reads as off / None.
    """

    config_keys = ["vocab_size", "channel_ids", "weight", "learned_dim", "use_mentions", "query_weight"]
    config_file_name = "gene_channel_config.json"

    def __init__(
        self,
        vocab_size: int,
        channel_ids: Sequence[int],
        weight: float,
        learned_dim: int,
        use_mentions: bool = False,
        query_weight: float | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size, self.weight, self.learned_dim = int(vocab_size), float(weight), int(learned_dim)
        for name, w in (("weight", self.weight), ("query_weight", query_weight)):
            if w is not None and not 0.0 <= float(w) <= 1.0:
                from mmgene.errors import ParameterError

                raise ParameterError(f"the gene channel's {name} must be in [0, 1], got {w}", "GeneChannel", "use e.g. 0.3")
        self.query_weight = None if query_weight is None else float(query_weight)
        self.use_mentions = bool(use_mentions)
        self.channel_ids = [int(i) for i in channel_ids]
        lookup = torch.full((self.vocab_size,), -1, dtype=torch.long)
        lookup[torch.as_tensor(self.channel_ids, dtype=torch.long)] = torch.arange(len(self.channel_ids))
        self.register_buffer("lookup", lookup, persistent=False)

    def _scatter(self, ids: Tensor, weights: Tensor) -> Tensor:
        pos = self.lookup.to(ids.device)[ids]
        out = torch.zeros(ids.shape[0], len(self.channel_ids) + 1, device=ids.device, dtype=weights.dtype)
        out.scatter_add_(1, torch.where(pos >= 0, pos, len(self.channel_ids)), weights)
        return F.normalize(out[:, :-1], dim=-1)

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        learned = F.normalize(features["sentence_embedding"], dim=-1)
        if "values" in features:
            genes = self._scatter(features["input_ids"], features["values"] * features["attention_mask"])
        elif "related_ids" in features:
            ids, weights = features["related_ids"], features["related_weights"]
            if self.use_mentions and "mention_ids" in features:
                # genes the text names outright weigh as much as all the genes it resembles together
                mask = features["mention_mask"].to(weights.dtype)
                ids = torch.cat([ids, features["mention_ids"].to(ids.dtype)], dim=1)
                weights = torch.cat([weights, mask / mask.sum(1, keepdim=True).clamp(min=1.0)], dim=1)
            genes = self._scatter(ids, weights)
        else:
            genes = torch.zeros(learned.shape[0], len(self.channel_ids), device=learned.device, dtype=learned.dtype)
        w = self.weight if (self.training or self.query_weight is None) else self.query_weight
        features["sentence_embedding"] = torch.cat([learned * (1.0 - w) ** 0.5, genes.to(learned.dtype) * w**0.5], dim=-1)
        return features

    def get_embedding_dimension(self) -> int:
        return self.learned_dim + len(self.channel_ids)

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
