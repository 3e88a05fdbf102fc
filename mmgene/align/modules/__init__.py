"""The sentence-transformers modules of the aligned model, one class per file.

Layout (one :class:`~sentence_transformers.SentenceTransformer`)::

    Router ─ task "cell": CellInput ─ GeneTable ─ CellHead ─ [GeneChannel] ─┐
           └ task "text": TextInput ─ GeneTable ─ TextHead ─ [GeneChannel] ─┴─ Normalize  -> joint space

* :class:`~.cell_input.CellInput` turns a cell (genes with expression values, and/or obsm vectors)
  into tensors.
* :class:`~.gene_table.GeneTable` holds one embedding per gene SYMBOL, shared by both routes: the
  omics tower pools it over a cell's expressed genes, the text tower over the genes a text names
  ("CD19+ B cell") or resembles. Keyed by symbol, it transfers to any dataset whatever its gene set.
* :class:`~.text_input.TextInput` wraps a sentence-transformers text model; frozen (embeddings cached
  per text) or trainable.
* :class:`~.cell_head.CellHead` / :class:`~.text_head.TextHead` project into the joint space.
* :class:`~.gene_channel.GeneChannel` (optional) appends an explicit, untrained gene channel.

Inputs of both kinds can be mixed in one batch: each column is preprocessed and run under its own
task, and the Router sends it to its route. Each module saves its config (``config_keys``) and loads
through :meth:`sentence_transformers.base.modules.Module.load`.
"""

from __future__ import annotations


def route_classes() -> tuple[type, ...]:
    """The module classes a Router of an aligned model holds (and a saved one may name)."""
    from mmgene.align.modules.cell_head import CellHead
    from mmgene.align.modules.cell_input import CellInput
    from mmgene.align.modules.gene_channel import GeneChannel
    from mmgene.align.modules.gene_table import GeneTable
    from mmgene.align.modules.text_head import TextHead
    from mmgene.align.modules.text_input import TextInput

    return (CellInput, GeneTable, CellHead, TextInput, TextHead, GeneChannel)
