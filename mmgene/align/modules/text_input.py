"""The text tower's input: a sentence-transformers text model, the genes a text names, and the genes it resembles."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers.base.modules import InputModule
from torch import Tensor

from mmgene.align.mentions import find_mentions
from mmgene.align.modules.helpers import device_of, hub_options, pad

#: files beside the config: the nested text encoder, the mention index and the gene-text bridge
ENCODER_FOLDER = "encoder"
MENTIONS_FILE = "mentions.json"
BRIDGE_IDS_FILE = "gene_text_ids.npy"
BRIDGE_VECTORS_FILE = "gene_text_vectors.npy"


class TextInput(InputModule):
    """A sentence-transformers text model as the text tower's input, frozen (cached) or trainable.

    Frozen: :meth:`preprocess` embeds each distinct text once and keeps it in an in-memory cache
    (``cache_size`` texts), so training reads captions' embeddings instead of running the transformer.
    Trainable: texts are tokenized and the transformer runs (and learns) in :meth:`forward`.
    Either way the genes the text names are looked up for the gene table (see
    :mod:`mmgene.align.mentions`), and with a gene-text bridge the genes whose own text resembles it.
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

    def share_cache(self, other: TextInput) -> bool:
        """Use ``other``'s text cache from now on when both are frozen and wrap the same encoder object
        (an ensemble's members loaded with their shared text model): each text then runs through the
        transformer once for all of them, and every one gets the embeddings it would have made itself.
        Returns whether the cache is shared."""
        if self.trainable or other.trainable or self.encoder is not other.encoder:
            return False
        self._cache = other._cache
        return True

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
            ids, _, mask = pad([find_mentions(t, self.mention_index) for t in texts])
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
            features["text_embedding"] = features["sentence_embedding"].to(device_of(self))
        return features

    def get_embedding_dimension(self) -> int:
        return self.text_dim()

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.encoder.save(os.path.join(output_path, ENCODER_FOLDER), safe_serialization=safe_serialization)
        with open(os.path.join(output_path, MENTIONS_FILE), "w", encoding="utf-8") as fh:
            json.dump(self.mention_index, fh)
        if len(self.gene_text_ids):
            np.save(os.path.join(output_path, BRIDGE_IDS_FILE), self.gene_text_ids)
            np.save(os.path.join(output_path, BRIDGE_VECTORS_FILE), self.gene_text_vectors)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", encoder: Any = None, **kwargs: Any) -> TextInput:
        """:meth:`Module.load` with the files beside the config; the nested text encoder is checked and
        loaded without remote code, unless ``encoder`` (an already loaded one, e.g. the text model an
        ensemble's members share) is given and the folder has none of its own."""
        from mmgene.model_files import load_text_encoder

        folder = Path(cls.load_dir_path(model_name_or_path, subfolder=subfolder, **hub_options(kwargs)))
        own = folder / ENCODER_FOLDER
        files: dict[str, Any] = {"encoder": load_text_encoder(own, device="cpu") if encoder is None or own.exists() else encoder}
        if (folder / MENTIONS_FILE).exists():
            files["mention_index"] = json.loads((folder / MENTIONS_FILE).read_text(encoding="utf-8"))
        if (folder / BRIDGE_IDS_FILE).exists():  # mapped first: a header claiming more than the file holds is refused
            for key, name in (("gene_text_ids", BRIDGE_IDS_FILE), ("gene_text_vectors", BRIDGE_VECTORS_FILE)):
                files[key] = np.array(np.load(folder / name, allow_pickle=False, mmap_mode="r"))
        defaults = {**(kwargs.pop("init_defaults", None) or {}), **files}
        return super().load(model_name_or_path, subfolder=subfolder, init_defaults=defaults, **kwargs)
