"""Symmetric InfoNCE (CLIP) loss with a learnable temperature, for sentence-transformers training.

Columns: ``cell`` (anchor), ``caption`` (its positive), then an optional negative caption; an
optional ``label`` column holds each row's class id, or the pair (class id, the negative's class id).
Cells of the same class are not negatives of each other's captions (with 8 cell types a batch of 128
has many), so those pairs are masked out of the softmax instead of being pushed apart; likewise
another row's negative caption that describes a cell's own class. With a class x class ``related``
matrix (training across datasets: classes whose Cell Ontology terms are ancestor and descendant,
see :func:`mmgene.text.ontology.related_terms`) pairs of related classes are masked the same way,
so a "T cell" caption is not a negative of a "CD8-positive, alpha-beta T cell" cell.

Under ``torchrun`` (DistributedDataParallel) every rank gathers both towers' embeddings and the
labels of all ranks, with gradients (:func:`mmgene.distributed.gather_with_grad`, as CLIP does), and
computes the loss of the *global* batch: every cell sees every rank's captions and negative captions
as negatives, so N ranks x batch B train as one process with batch N x B. Each rank's loss is the
global loss, so the learnable temperature gets the same gradient on every rank; a rank's own rows
receive the gradient of all N copies of the loss, and DDP's average over ranks divides it by N again,
which leaves exactly the single-process gradient.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmgene.distributed import gather_tensor, gather_with_grad, world_size


class SymmetricInfoNCELoss(nn.Module):
    """CLIP loss: cross-entropy over cell->text and text->cell similarities, ``logit_scale`` learned.

    Parameters
    ----------
    model
        The :class:`~sentence_transformers.SentenceTransformer` with a ``cell`` and a ``text`` route.
    temperature
        Initial temperature (CLIP starts at 0.07).
    learn_temperature
        Learn ``log(1/temperature)``, clamped to at most ``log(100)`` as in CLIP.
    mask_same_label
        Drop same-class pairs from the negatives when a ``label`` column is given.
    related
        Optional (classes x classes) booleans: also drop pairs whose classes are related (its
        diagonal is taken as True). Used only with ``mask_same_label`` and a ``label`` column.
    gather_across_ranks
        Under torch.distributed, compute the loss over all ranks' rows (see the module docstring).
        Every rank must then call the loss for every batch, as DDP training does.
    """

    def __init__(
        self,
        model: Any,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        mask_same_label: bool = True,
        related: Any = None,
        gather_across_ranks: bool = True,
    ):
        super().__init__()
        self.related: Tensor | None = None
        if related is not None:
            rel = torch.as_tensor(related, dtype=torch.bool)
            self.related = rel | torch.eye(rel.shape[0], dtype=torch.bool)
        self.model = model
        scale = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        self.logit_scale = nn.Parameter(scale, requires_grad=learn_temperature)
        self.mask_same_label = mask_same_label
        self.gather_across_ranks = gather_across_ranks

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale.detach().clamp(max=math.log(100.0)).exp())

    def forward(self, sentence_features: Iterable[dict[str, Any]], labels: Tensor | None = None) -> Tensor:
        feats = list(sentence_features)
        emb = [self.model(f)["sentence_embedding"] for f in feats]
        if self.gather_across_ranks and world_size() > 1:  # the global batch: every rank's rows, in rank order
            emb = list(gather_with_grad(torch.stack(emb, dim=1)).unbind(1))
            labels = gather_tensor(labels) if labels is not None else None
        cells, texts = emb[0], emb[1]
        negatives = emb[2:]
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * cells @ texts.T  # (B, B)
        n = cells.shape[0]
        fill = torch.finfo(logits.dtype).min / 2
        own = negative_of = None
        if self.mask_same_label and labels is not None and labels.dim() in (1, 2) and labels.shape[0] == n:
            labels = labels.to(logits.device)
            own, negative_of = (labels[:, 0], labels[:, 1]) if labels.dim() == 2 else (labels.reshape(-1), None)
            if self.related is not None:
                related = self.related.to(logits.device)
                same = related[own][:, own] & ~torch.eye(n, dtype=torch.bool, device=logits.device)
            else:
                same = (own[:, None] == own[None, :]) & ~torch.eye(n, dtype=torch.bool, device=logits.device)
            logits = logits.masked_fill(same, fill)
        target = torch.arange(n, device=logits.device)
        text_to_cell = F.cross_entropy(logits.T, target)
        if negatives:
            extra = scale * cells @ torch.cat(negatives).T
            if negative_of is not None and extra.shape[1] == n:  # row j's negative describes cell i's class
                if self.related is not None:
                    hit = self.related.to(logits.device)[own][:, negative_of]
                else:
                    hit = own[:, None] == negative_of[None, :]
                extra = extra.masked_fill(hit, fill)
            logits = torch.cat([logits, extra], dim=1)
        cell_to_text = F.cross_entropy(logits, target)
        return (cell_to_text + text_to_cell) / 2

    @property
    def citation(self) -> str:
        return "Radford et al. 2021, Learning Transferable Visual Models From Natural Language Supervision (CLIP)."
