"""Contrastive text-cell alignment: one sentence-transformers model with an omics and a text tower.

``train`` fits it with the settings of ``PairsConfig``, ``ModelConfig`` and ``TrainingConfig`` (see
:mod:`mmgene.align.config`), ``load`` reads a saved model directory, ``AlignedModel`` encodes text and
cells into the joint space; ``train_corpus`` trains on a corpus, by default an ``EnsembleModel`` of
several models used as one space (``config.CORPUS_DEFAULTS``). Looked up lazily so that
``import mmgene.align`` loads no torch.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "load": "mmgene.align.model",
    "AlignedModel": "mmgene.align.model",
    "EnsembleModel": "mmgene.align.ensemble",
    "build_model": "mmgene.align.model",
    "train": "mmgene.align.train",
    "train_corpus": "mmgene.align.corpus_train",
    "train_stream": "mmgene.align.stream_train",
    "StreamConfig": "mmgene.pairs.stream_config",
    "CorpusTrainingConfig": "mmgene.align.config",
    "PairsConfig": "mmgene.pairs.config",
    "ModelConfig": "mmgene.align.config",
    "TrainingConfig": "mmgene.align.config",
    "AlignConfig": "mmgene.align.config",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
