"""Small aligned models the tests train in seconds, and a model read as one trained on a corpus."""

from __future__ import annotations

from typing import Any


def tiny_model(cells: Any, out: Any, **model_settings: Any) -> Any:
    """A 4-step model of ``cells``' ``obs['bulk_labels']`` (pbmc68k_reduced): 64 genes a cell, 16-wide
    towers, a quarter of the cells held out; ``model_settings`` change :class:`ModelConfig`."""
    from mmgene.align import train
    from mmgene.align.config import ModelConfig, TrainingConfig
    from mmgene.pairs.config import PairsConfig

    return train(
        cells, "bulk_labels", out=out,
        pairs=PairsConfig(max_genes=64, captions_per_cell=1, test_size=0.25),
        model=ModelConfig(gene_dim=16, dim=16, hidden=32, **model_settings),
        training=TrainingConfig(max_steps=4, batch_size=32, seed=0),
    )


def as_corpus_model(model: Any) -> Any:
    """``model`` (its weights shared) read as one trained on a corpus: what the label defaults ask."""
    from mmgene.align.model import AlignedModel

    return AlignedModel(model.st, model.inputs, {**model.meta, "datasets": ["a", "b"]}, model.config)
