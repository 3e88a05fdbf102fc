"""Let a model's gene channel reach the genes that mark the cells it is asked about.

The gene channel (:class:`~mmgene.align.modules.gene_channel.GeneChannel`) compares a prompt with a
cell through genes: the genes whose NCBI text the prompt's words resemble, against the cell's
expression of them. A model covers only the genes that marked its training cells, so a model trained
on blood and immune data has no glucagon to point "pancreatic A cell" to. :func:`with_channel_genes`
returns the same model (its weights, text model and text cache shared, nothing copied) whose channel
also covers other genes of its vocabulary; :func:`data_markers` finds the genes that mark the cells
of an AnnData the way training found its own (each cell's genes most above the data's mean,
:func:`mmgene.pairs.build.marker_counts`; no labels). A cell's learned part is unchanged; a text's
learned part reads the gene-table vectors of the genes its words resemble, which may now be new ones.
A vector of the widened model is comparable only with another of the same widened model. Only genes
of the model's vocabulary (the genes its training cells expressed) can join: a gene no training cell
expressed has no gene-table vector.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

#: most genes :func:`data_markers` returns (training's bridge keeps as many, :func:`mmgene.pairs.build.marker_list`)
MAX_DATA_MARKERS = 2000

#: gene-text vectors embedded so far in this process, per text encoder: the same model asked about
#: another dataset embeds only the gene texts it has not met (about 20 ms a text on one CPU thread)
_EMBEDDED: weakref.WeakKeyDictionary[Any, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()


def data_markers(adata: Any, limit: int = MAX_DATA_MARKERS) -> list[str]:
    """The genes that mark ``adata``'s cells: each cell's 8 genes most above the data's mean expression,
    counted over the cells, most often first (at most ``limit``); the rule training uses for its own."""
    from mmgene.pairs.build import marker_counts, marker_list

    return marker_list(freq=marker_counts(adata))[:limit]


def _gene_modules(st: Any) -> tuple[list[str], Any, Any]:
    """The omics tower's vocabulary, the text tower's input and the gene channel of an aligned model's
    SentenceTransformer, in one walk over its modules (no channel: ``([], None, None)``)."""
    from mmgene.align.modules.cell_input import CellInput
    from mmgene.align.modules.gene_channel import GeneChannel
    from mmgene.align.modules.text_input import TextInput

    found: dict[type, Any] = {}
    for module in st.modules():
        for cls in (CellInput, TextInput, GeneChannel):
            if isinstance(module, cls):
                found.setdefault(cls, module)
    if TextInput not in found or GeneChannel not in found:
        return [], None, None
    return found[CellInput].vocab, found[TextInput], found[GeneChannel]


def channel_genes(model: Any) -> list[str]:
    """The genes an aligned model's gene channel covers, as its vocabulary spells them ([] without a channel)."""
    vocab, _, channel = _gene_modules(model.st)
    return [vocab[i] for i in channel.channel_ids] if channel is not None else []


def with_channel_genes(model: Any, genes: Sequence[str]) -> tuple[Any, int]:
    """``model`` (an aligned model or an ensemble of them) whose gene channel also covers ``genes``, and
    how many genes joined (each member's count summed).

    Only genes in the model's vocabulary with NCBI text join (:func:`mmgene.align.model.gene_text_bridge`);
    the channel's genes keep their order and the new ones follow, so with no gene joining the model
    itself is returned. Each gene text is embedded once per text encoder and process (members that
    share their text model share the vectors).
    """
    from mmgene.align.ensemble import EnsembleModel

    if isinstance(model, EnsembleModel):
        widened = [_widened(m, genes) for m in model.members]
        added = sum(n for _, n in widened)
        return (EnsembleModel([m for m, _ in widened], model.meta) if added else model), added
    return _widened(model, genes)


def _widened(model: Any, genes: Sequence[str]) -> tuple[Any, int]:
    """One aligned model with ``genes`` added to its channel (see :func:`with_channel_genes`)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Router

    from mmgene.align.model import AlignedModel, gene_text_bridge
    from mmgene.align.modules.gene_channel import GeneChannel
    from mmgene.align.modules.text_input import TextInput

    st = model.st
    vocab, text, channel = _gene_modules(st)
    if channel is None:
        return model, 0
    have = {vocab[i].upper() for i in channel.channel_ids}
    new = [g for g in dict.fromkeys(str(g) for g in genes) if g.upper() not in have]
    ids, vectors = gene_text_bridge(text.encoder, vocab, new, _EMBEDDED.setdefault(text.encoder, {}))
    if not ids:
        return model, 0
    all_ids = [*(int(i) for i in channel.channel_ids), *ids]
    tower = TextInput(
        text.encoder, text.mention_index, trainable=text.trainable, cache_size=text.cache_size,
        gene_text_ids=np.concatenate([text.gene_text_ids, np.asarray(ids, dtype=np.int64)]),
        gene_text_vectors=np.concatenate([text.gene_text_vectors, vectors.astype(np.float32)]),
        related_k=text.related_k, related_temperature=text.related_temperature,
    )
    tower.share_cache(text)
    wide = GeneChannel(
        channel.vocab_size, all_ids, channel.weight, channel.learned_dim,
        use_mentions=channel.use_mentions, query_weight=channel.query_weight,
    )
    swap = {id(text): tower, id(channel): wide}
    router = st[0]
    routes = {name: [swap.get(id(m), m) for m in modules] for name, modules in router.sub_modules.items()}
    router = Router(routes, default_route=router.default_route, allow_empty_key=router.allow_empty_key,
                    route_mappings=dict(router.route_mappings))
    widened = SentenceTransformer(modules=[router, *list(st)[1:]], device=str(st.device))
    widened.eval()
    return AlignedModel(widened, model.inputs, model.meta, model.config), len(ids)
