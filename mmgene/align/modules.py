"""The sentence-transformers modules of the aligned model: an omics tower and a text tower.

Layout (one :class:`~sentence_transformers.SentenceTransformer`)::

    Router ─ task "cell": CellInput ─ GeneTable ─ CellHead ─┐
           └ task "text": TextInput ─ GeneTable ─ TextHead ─┴─ Normalize  -> joint space

* :class:`CellInput` turns a cell (genes with expression values, and/or obsm vectors) into tensors.
* :class:`GeneTable` holds one embedding per gene SYMBOL, shared by both routes: the omics tower pools
  it over a cell's expressed genes (weighted by expression and a learned per-gene importance), the text
  tower pools it over the genes a text names ("CD19+ B cell"). Keyed by symbol, it transfers to any
  dataset whatever its gene set.
* :class:`TextInput` wraps a sentence-transformers text model; frozen (embeddings cached per text) or
  trainable.
* :class:`CellHead` / :class:`TextHead` project into the joint space.

Inputs of both kinds can be mixed in one batch: each column is preprocessed and run under its own
task, and the Router sends it to its route.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers.base.modules import InputModule, Module
from torch import Tensor, nn

from mmgene.align.mentions import find_mentions

#: keys of a cell given as a dict; every other key is an obsm representation.
GENE_KEYS = ("genes", "values")


def _device_of(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def _pad(rows: Sequence[Sequence[int]], values: Sequence[Sequence[float]] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    width = max(1, max((len(r) for r in rows), default=0))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    vals = np.zeros((len(rows), width), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=np.float32)
    for j, r in enumerate(rows):
        n = len(r)
        if n:
            ids[j, :n] = r
            vals[j, :n] = values[j] if values is not None else 1.0
            mask[j, :n] = 1.0
    return torch.from_numpy(ids), torch.from_numpy(vals), torch.from_numpy(mask)


def _hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The Hub download options sentence-transformers passes to a module's ``load``."""
    return {k: kwargs[k] for k in ("token", "cache_folder", "revision", "local_files_only") if k in kwargs}


class _WeightedModule(Module):
    """A module saved as its config JSON plus its weights (safetensors), and loaded back the same way."""

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> Any:
        hub = _hub_kwargs(kwargs)
        model = cls(**cls.load_config(model_name_or_path, subfolder=subfolder, **hub))
        return cls.load_torch_weights(model_name_or_path, subfolder=subfolder, model=model, **hub)


class CellInput(InputModule):
    """Preprocess cells for the omics tower.

    A cell is a dict ``{"genes": [symbol, ...], "values": [expression, ...], "<obsm key>": [float, ...]}``
    (genes in any order; see :func:`mmgene.align.inputs.cell_inputs`), or a cell sentence string (gene
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
        max_genes: int = 1024,
        gene_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.vocab = [str(v) for v in vocab]
        self.index = {v.upper(): i for i, v in enumerate(self.vocab)}
        self.obsm_keys = list(obsm_keys)
        self.obsm_dims = [int(d) for d in obsm_dims]
        self.max_genes = int(max_genes)
        self.gene_dropout = float(gene_dropout)

    @property
    def modalities(self) -> list[str]:
        return ["text"]

    def _genes_of(self, cell: Any) -> tuple[list[int], list[float]]:
        if isinstance(cell, str):
            genes = cell.split()
            values = [1.0 / np.log2(r + 2.0) for r in range(len(genes))]
        else:
            genes = cell.get("genes") or []
            values = cell.get("values") or [1.0 / np.log2(r + 2.0) for r in range(len(genes))]
        ids, vals = [], []
        for g, v in zip(genes, values):
            i = self.index.get(str(g).upper())
            if i is not None and v > 0:
                ids.append(i)
                vals.append(float(v))
        if len(ids) > self.max_genes:
            keep = np.argsort(-np.asarray(vals), kind="stable")[: self.max_genes]
            ids = [ids[k] for k in keep]
            vals = [vals[k] for k in keep]
        return ids, vals

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.vocab:
            pairs = [self._genes_of(c) for c in inputs]
            ids, vals, mask = _pad([p[0] for p in pairs], [p[1] for p in pairs])
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
        with open(os.path.join(output_path, "vocab.txt"), "w", encoding="utf-8") as fh:
            fh.write("\n".join(self.vocab))

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> CellInput:
        hub = _hub_kwargs(kwargs)
        config = cls.load_config(model_name_or_path, subfolder=subfolder, **hub)
        vocab_path = cls.load_file_path(model_name_or_path, "vocab.txt", subfolder=subfolder, **hub)
        vocab = open(vocab_path, encoding="utf-8").read().split("\n") if vocab_path else []
        return cls(vocab=[v for v in vocab if v], **config)


class GeneTable(_WeightedModule):
    """Gene embeddings shared by the omics and the text route.

    A gene's embedding is a learned vector plus, when the gene has text (its NCBI name and
    designations, embedded by the text encoder: ``gene_text``), a learned linear map of that text
    vector. The text part gives genes that training never saw expressed (markers of a left-out cell
    type) a meaningful place from the start.

    Cells: ``gene_bag`` = mean of the embeddings of the cell's genes, weighted by expression times a
    learned per-gene importance (softplus). Text: ``mention_bag`` = mean embedding of the genes it names;
    ``related_bag`` = softmax-weighted embedding of the genes whose text resembles it.
    """

    config_keys = ["vocab_size", "dim", "text_dim"]
    config_file_name = "gene_table_config.json"

    def __init__(self, vocab_size: int, dim: int = 256, text_dim: int = 0) -> None:
        super().__init__()
        self.vocab_size, self.dim, self.text_dim = int(vocab_size), int(dim), int(text_dim)
        self.embedding = nn.Embedding(self.vocab_size, self.dim)
        nn.init.normal_(self.embedding.weight, std=0.02 if self.text_dim else 0.1)
        self.importance = nn.Embedding(self.vocab_size, 1)
        nn.init.zeros_(self.importance.weight)
        if self.text_dim:
            self.register_buffer("gene_text", torch.zeros(self.vocab_size, self.text_dim))
            self.text_proj = nn.Linear(self.text_dim, self.dim, bias=False)

    def set_gene_text(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store the text vectors of genes ``ids`` (rows of ``vectors``); other genes keep zeros."""
        if not self.text_dim:
            raise ValueError("this gene table was built without text (text_dim=0)")
        with torch.no_grad():
            self.gene_text[torch.as_tensor(np.asarray(ids), dtype=torch.long)] = torch.as_tensor(vectors, dtype=torch.float32)

    def _bag(self, ids: Tensor, weight: Tensor) -> Tensor:
        """``sum_g w_g (E_g + P t_g)``, computed as ``sum w E + P(sum w t)`` (the map is linear)."""
        bag = (weight.unsqueeze(-1) * self.embedding(ids)).sum(1)
        if self.text_dim:
            bag = bag + self.text_proj((weight.unsqueeze(-1) * self.gene_text[ids]).sum(1))
        return bag

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


def _mlp(n_in: int, hidden: int, n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))


class CellHead(_WeightedModule):
    """Project ``gene_bag`` and/or ``obsm`` into the joint space (LayerNorm + two-layer MLP)."""

    config_keys = ["gene_dim", "obsm_dim", "hidden", "out_dim", "dropout"]
    config_file_name = "cell_head_config.json"

    def __init__(self, gene_dim: int = 0, obsm_dim: int = 0, hidden: int = 512, out_dim: int = 256, dropout: float = 0.1):
        super().__init__()
        self.gene_dim, self.obsm_dim = int(gene_dim), int(obsm_dim)
        self.hidden, self.out_dim, self.dropout = int(hidden), int(out_dim), float(dropout)
        self.gene_norm = nn.LayerNorm(self.gene_dim) if self.gene_dim else None
        self.obsm_norm = nn.LayerNorm(self.obsm_dim) if self.obsm_dim else None
        self.mlp = _mlp(self.gene_dim + self.obsm_dim, self.hidden, self.out_dim, self.dropout)

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        parts = []
        if self.gene_norm is not None:
            parts.append(self.gene_norm(features["gene_bag"]))
        if self.obsm_norm is not None:
            parts.append(self.obsm_norm(features["obsm"].to(self.mlp[0].weight.dtype)))
        features["sentence_embedding"] = self.mlp(torch.cat(parts, dim=-1))
        return features

    def get_embedding_dimension(self) -> int:
        return self.out_dim


class TextHead(_WeightedModule):
    """Project the text embedding (MLP) plus, when the text names genes, their pooled gene embedding."""

    config_keys = ["text_dim", "gene_dim", "hidden", "out_dim", "dropout"]
    config_file_name = "text_head_config.json"

    def __init__(self, text_dim: int = 384, gene_dim: int = 0, hidden: int = 512, out_dim: int = 256, dropout: float = 0.0):
        super().__init__()
        self.text_dim, self.gene_dim = int(text_dim), int(gene_dim)
        self.hidden, self.out_dim, self.dropout = int(hidden), int(out_dim), float(dropout)
        self.mlp = _mlp(self.text_dim, self.hidden, self.out_dim, self.dropout)
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


class TextInput(InputModule):
    """A sentence-transformers text model as the text tower's input, frozen (cached) or trainable.

    Frozen: :meth:`preprocess` embeds each distinct text once and keeps it in an in-memory cache
    (``cache_size`` texts), so training reads captions' embeddings instead of running the transformer.
    Trainable: texts are tokenized and the transformer runs (and learns) in :meth:`forward`.
    Either way the genes the text names are looked up for :class:`GeneTable` (see
    :mod:`mmgene.align.mentions`).
    """

    config_file_name = "text_input_config.json"

    config_keys = ["trainable", "cache_size", "related_k", "related_temperature"]

    def __init__(
        self,
        encoder: Any,
        mention_index: dict[str, list[int]] | None = None,
        trainable: bool = False,
        cache_size: int = 100_000,
        gene_text_ids: Sequence[int] = (),
        gene_text_vectors: np.ndarray | None = None,
        related_k: int = 8,
        related_temperature: float = 0.05,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.mention_index = dict(mention_index or {})
        self.gene_text_ids = np.asarray(gene_text_ids, dtype=np.int64)
        self.gene_text_vectors = (
            np.asarray(gene_text_vectors, dtype=np.float32) if gene_text_vectors is not None else np.zeros((0, 0), np.float32)
        )
        self.related_k, self.related_temperature = int(related_k), float(related_temperature)
        self.trainable = bool(trainable)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        for p in self.encoder.parameters():
            p.requires_grad_(self.trainable)

    @property
    def modalities(self) -> list[str]:
        return ["text"]

    @property
    def max_seq_length(self) -> int | None:
        return getattr(self.encoder, "max_seq_length", None)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.encoder, "tokenizer", None)

    def text_dim(self) -> int:
        return int(self.encoder.get_embedding_dimension())

    def _embed_cached(self, texts: Sequence[str]) -> Tensor:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            was_training = self.encoder.training
            self.encoder.eval()
            with torch.no_grad():
                emb = self.encoder.encode(
                    missing, batch_size=64, convert_to_numpy=True, show_progress_bar=False
                ).astype(np.float32)
            self.encoder.train(was_training)
            for t, e in zip(missing, emb):
                self._cache[t] = e
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return torch.from_numpy(np.stack([self._cache[t] for t in texts]))

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        texts = [str(t) for t in inputs]
        if prompt:
            texts = [prompt + t for t in texts]
        if self.trainable:
            out = dict(self.encoder.preprocess(texts))
        else:
            out = {"sentence_embedding": self._embed_cached(texts)}
        if self.mention_index:
            ids, _, mask = _pad([find_mentions(t, self.mention_index) for t in texts])
            out.update(mention_ids=ids, mention_mask=mask)
        if len(self.gene_text_ids):
            out.update(self._related_genes(texts, out.get("sentence_embedding")))
        return out

    def _related_genes(self, texts: Sequence[str], emb: Tensor | None) -> dict[str, Tensor]:
        """The genes whose own text (name, designations) is closest to the text: the gene-text bridge.

        A query such as "natural killer cell" names no gene, but its embedding is close to the text of
        NKG7 ("natural killer cell granule protein 7") and KLRD1 ("killer cell lectin like receptor");
        those genes' shared embeddings join the text vector, weighted by a softmax over the top ``related_k``.
        """
        q = (emb if emb is not None else self._embed_cached(texts)).numpy()
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        sims = q @ self.gene_text_vectors.T
        k = min(self.related_k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        w = np.exp((top_sims - top_sims.max(1, keepdims=True)) / self.related_temperature)
        w /= w.sum(1, keepdims=True)
        return {
            "related_ids": torch.from_numpy(self.gene_text_ids[top]),
            "related_weights": torch.from_numpy(w.astype(np.float32)),
        }

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if self.trainable:
            keys = [k for k in features if k not in ("mention_ids", "mention_mask", "task", "modality")]
            out = self.encoder({k: features[k] for k in keys})
            features["text_embedding"] = out["sentence_embedding"]
        else:
            features["text_embedding"] = features["sentence_embedding"].to(_device_of(self))
        return features

    def get_embedding_dimension(self) -> int:
        return self.text_dim()

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.encoder.save(os.path.join(output_path, "encoder"), safe_serialization=safe_serialization)
        with open(os.path.join(output_path, "mentions.json"), "w", encoding="utf-8") as fh:
            json.dump(self.mention_index, fh)
        if len(self.gene_text_ids):
            np.save(os.path.join(output_path, "gene_text_ids.npy"), self.gene_text_ids)
            np.save(os.path.join(output_path, "gene_text_vectors.npy"), self.gene_text_vectors)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> TextInput:
        """Load the saved tower; the nested text encoder is checked and loaded without remote code."""
        from pathlib import Path

        from mmgene.model_files import load_text_encoder

        hub = _hub_kwargs(kwargs)
        config = cls.load_config(model_name_or_path, subfolder=subfolder, **hub)
        folder = cls.load_dir_path(model_name_or_path, subfolder=subfolder, **hub)
        encoder = load_text_encoder(Path(folder) / "encoder", device="cpu")
        mentions_path = os.path.join(folder, "mentions.json")
        mentions = json.load(open(mentions_path, encoding="utf-8")) if os.path.exists(mentions_path) else {}
        ids_path = os.path.join(folder, "gene_text_ids.npy")
        bridge = {}
        if os.path.exists(ids_path):
            bridge = {
                "gene_text_ids": np.load(ids_path, allow_pickle=False),
                "gene_text_vectors": np.load(os.path.join(folder, "gene_text_vectors.npy"), allow_pickle=False),
            }
        return cls(encoder=encoder, mention_index=mentions, **bridge, **config)


class GeneChannel(Module):
    """An explicit, untrained gene channel appended to the joint vector (optional).

    Cells contribute their expression over the bridge genes, text the softmax weights of the genes its
    words resemble (:meth:`TextInput._related_genes`) plus, with ``use_mentions``, an equal share
    spread over the genes it names ("NK cell expressing GNLY and NKG7"). Both are L2-normalised and concatenated with the
    learned vector as ``[sqrt(1 - w) * learned, sqrt(w) * genes]``, so a cosine in the joint space is
    ``(1 - w) * learned cosine + w * gene cosine``: a query that names a cell type training never saw
    still finds the cells that express the genes its words point to.

    ``query_weight`` (default: ``weight``) is the ``w`` used outside training (``model.eval()``, i.e. when
    encoding queries and cells): training with a small weight lets the learned part carry the known cell
    types, querying with a larger one leans more on the genes a prompt names (cell types training never
    saw). The channel has no parameters, so the two weights only change how the two cosines are mixed.
    """

    config_keys = ["vocab_size", "channel_ids", "weight", "learned_dim", "use_mentions", "query_weight"]
    config_file_name = "gene_channel_config.json"

    def __init__(
        self,
        vocab_size: int,
        channel_ids: Sequence[int],
        weight: float = 0.3,
        learned_dim: int = 256,
        use_mentions: bool = False,
        query_weight: float | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size, self.weight, self.learned_dim = int(vocab_size), float(weight), int(learned_dim)
        for name, w in (("weight", self.weight), ("query_weight", query_weight)):
            if w is not None and not 0.0 <= float(w) <= 1.0:
                from mmgene.errors import ParameterError

                raise ParameterError(f"the gene channel's {name} must be in [0, 1], got {w}", "GeneChannel", "use e.g. 0.3")
        # None for models saved before this option existed, so they encode exactly as before
        self.query_weight = None if query_weight is None else float(query_weight)
        # off for models saved before this option existed, so they encode exactly as before
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

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> GeneChannel:
        hub = _hub_kwargs(kwargs)
        return cls(**cls.load_config(model_name_or_path, subfolder=subfolder, **hub))
