"""Geneformer cell embeddings: ``obsm['X_geneformer']``, computed as Geneformer's ``EmbExtractor`` does.

Cells are rank-value encoded with :func:`mmgene.cells.rank_encode`, run through the checkpoint's
BERT encoder in length-sorted, per-batch padded batches without gradients, and pooled from
``hidden_states[n_layers + layer]`` (``layer=-1``: the output of the second-to-last encoder layer,
Geneformer's default). See :mod:`mmgene.embed.geneformer_model` (loading, vocabulary check) and
:mod:`mmgene.embed.geneformer_pool` (batching, pooling).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.choices import DTYPE_NAMES
from mmgene.config import check_key
from mmgene.distributed import resolve_device  # one home for devices; importable from here, as before
from mmgene.errors import ModelError, ParameterError, is_whole_number
from mmgene.progress import info
from mmgene.settings import settings

KEY = "X_geneformer"
OK_COLUMN = "mmgene_geneformer_ok"



def resolve_dtype(dtype: str | Any | None) -> Any:
    """``None`` -> float32; ``'float16'``/``'fp16'``, ``'bfloat16'``/``'bf16'``, ``'float32'`` or a torch dtype."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ParameterError(f"dtype={dtype} is not a floating type torch can run BERT in", "argument dtype", "use float32, float16 or bfloat16")
        return dtype
    name = DTYPE_NAMES.get(str(dtype).lower())
    if name is None:
        raise ParameterError(f"dtype={dtype!r} is unknown", "argument dtype", "use 'float32', 'float16' or 'bfloat16'")
    return getattr(torch, name)


def _dictionaries(dictionaries: Any, version: str | None, vocab_size: int) -> Any:
    """A ``GeneformerDictionaries``: the one given, or loaded from a folder/the default for ``version``."""
    from mmgene.cells import load_dictionaries
    from mmgene.embed.geneformer_model import KNOWN_VOCAB_SIZES

    if dictionaries is not None and hasattr(dictionaries, "token_ids"):
        if version is not None and str(version).upper() != dictionaries.version:
            raise ParameterError(
                f"version={version!r} but the dictionaries given are {dictionaries.version}",
                "arguments version and dictionaries",
                "drop version, or pass dictionaries of that version",
            )
        return dictionaries
    version = version or KNOWN_VOCAB_SIZES.get(vocab_size, "V1")
    return load_dictionaries(dictionaries, version=version)


def _undo_record(adata: Any, key: str) -> Callable[[], None]:
    """A function that puts ``adata.uns['mmgene'][key]`` back as it is now (absent included)."""
    had_slot = "mmgene" in adata.uns
    slot = adata.uns.get("mmgene")
    had_key = isinstance(slot, Mapping) and key in slot
    before = slot[key] if had_key else None

    def undo() -> None:
        current = adata.uns.get("mmgene")
        if not isinstance(current, MutableMapping):
            return
        if had_key:
            current[key] = before
        else:
            current.pop(key, None)
            if not had_slot and not current:
                del adata.uns["mmgene"]

    return undo


def _embed_cells(
    adata: Any, gf: Any, dicts: Any, pooling: str, special: list[int], batch_size: int, dev: Any, torch_dtype: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rank-encode every cell of ``adata`` and pool the encodable ones: ``(empty, pooled)``, ``empty``
    flagging cells with no vocabulary gene, ``pooled`` the vectors of the others in cell order (None
    on a rank other than 0 under a launcher)."""
    import torch

    from mmgene.cells import rank_encode
    from mmgene.distributed import map_rows
    from mmgene.embed.geneformer_pool import embed_sequences

    enc = rank_encode(adata, dictionaries=dicts, filter_pass=False)  # one embedding per cell of adata
    n_cells = len(enc.input_ids)
    if list(enc.obs_names) != list(adata.obs_names):
        raise RuntimeError("rank_encode returned cells in a different order than adata.obs_names")  # contract broken
    empty = np.zeros(n_cells, dtype=bool)
    empty[np.asarray(enc.empty_cells, dtype=np.int64)] = True
    encoded = np.flatnonzero(~empty)  # rank_encode refuses data where no cell has a vocabulary gene
    longest = int(np.max(np.asarray(enc.length)[encoded])) if len(encoded) else 0
    if longest > gf.max_positions:
        raise ModelError(
            f"cells are encoded to {longest:,} tokens but the model takes at most {gf.max_positions:,}",
            f"model {gf.name!r} with the Geneformer {dicts.version} dictionaries",
            "use dictionaries of the model's version (V1 models take 2,048 tokens, V2 models 4,096)",
        )

    if dev.type == "cpu":
        torch.set_num_threads(settings.torch_threads)
    gf.module.to(device=dev, dtype=torch_dtype)
    sequences = [enc.input_ids[i] for i in encoded]

    def embed(start: int, stop: int) -> np.ndarray:
        return embed_sequences(
            gf.module, sequences[start:stop], pooling=pooling, special_ids=special, pad_id=dicts.pad_id, batch_size=batch_size, device=dev
        )

    return empty, map_rows(len(sequences), embed)  # under a launcher: each rank its share, rank 0 all


def geneformer(
    adata: Any,
    model: str | Path,
    *,
    layer: int = -1,
    pooling: str = "mean",
    batch_size: int = 16,
    device: str | Any = "auto",
    dtype: str | Any | None = None,
    dictionaries: Any = None,
    version: str | None = None,
    revision: str | None = None,
    key_added: str = KEY,
    copy: bool = False,
) -> Any:
    """Embed cells with a Geneformer checkpoint, as Geneformer's ``EmbExtractor`` (``emb_mode='cell'``/``'cls'``).

    Parameters
    ----------
    adata
        Cells with raw counts and Ensembl ids (``var['ensembl_id']``, filled by :func:`mmgene.io.read`).
    model
        A checkpoint folder (``BertForMaskedLM``/``BertModel``, ``config.json`` + weights), which must
        exist, or an explicit hub id ``hf://owner/repo[/subfolder][@revision]``, e.g.
        ``'hf://ctheodoris/Geneformer/gf-6L-30M-i2048'``; downloaded once into the Hugging Face cache. A
        missing folder is an error, never a Hub lookup. Remote code is never run (a ``config.json`` with
        ``auto_map`` or a non-BERT ``model_type`` is refused).
    layer
        Geneformer's ``emb_layer``: ``-1`` (default) pools ``hidden_states[L-1]``, the output of the
        second-to-last of the model's ``L`` encoder layers; ``0`` the last layer; ``-L`` the embedding output.
    pooling
        ``'mean'``: mean over the cell's gene tokens (padding, ``<cls>`` and ``<eos>`` left out);
        ``'cls'``: the ``<cls>`` position (V2 models only).
    batch_size
        Cells per forward pass (cells are sorted by length and padded per batch).
    device
        ``'auto'`` (CUDA when available, else CPU), ``'cpu'``, ``'cuda'``, ``'cuda:1'``...
    dtype
        ``None``/``'float32'``, ``'float16'`` or ``'bfloat16'`` (GPU); pooling is always done in float32.
    dictionaries
        A :class:`mmgene.cells.GeneformerDictionaries`, a folder with the dictionary pickles, or ``None``
        for the published ones of ``version``.
    version
        ``'V1'`` or ``'V2'``; ``None`` takes it from the dictionaries given, else from the model's
        vocabulary size (25,426 = V1, 20,275 = V2).
    revision
        Branch, tag or commit of a hub model (default ``main``, or the id's ``@revision``); recorded as
        the resolved commit.
    key_added
        ``obsm`` key to write.
    copy
        Return a new AnnData instead of writing into ``adata``.

    Under ``torchrun``, call it on every rank: each rank embeds its share of the cells (in chunks of
    :data:`mmgene.distributed.CHUNK_SIZE`, on its own GPU with ``device='auto'``/``'cuda'``) and rank 0
    gathers the vectors in cell order, the same bits as one process; the other ranks return None and
    leave ``adata`` as it was.

    Returns
    -------
    ``None``, or the new AnnData with ``copy=True``. Writes ``obsm[key_added]`` (float32, cells x hidden
    size, in the original cell order), ``obs['mmgene_geneformer_ok']`` (False for cells with no gene in
    the vocabulary, whose rows are NaN, never zeros) and ``uns['mmgene'][key_added]`` (model, revision,
    layer, pooling, dictionary version, the cells that could not be encoded, versions).
    """
    from mmgene.embed.geneformer_model import check_vocabulary, load_model
    from mmgene.embed.geneformer_pool import POOLINGS
    from mmgene.provenance import record

    check_key(key_added, "geneformer(key_added=...)", KEY)
    if pooling not in POOLINGS:
        raise ParameterError(f"pooling={pooling!r} is unknown", "argument pooling", f"use one of {POOLINGS}")
    if not is_whole_number(batch_size, 1):
        raise ParameterError(f"batch_size={batch_size!r} is not a positive integer", "argument batch_size", "use e.g. 16")
    dev, torch_dtype = resolve_device(device), resolve_dtype(dtype)

    gf = load_model(model, layer=layer, revision=revision)
    dicts = _dictionaries(dictionaries, version, gf.vocab_size)
    check_vocabulary(gf, dicts)
    special = [i for i in (dicts.cls_id, dicts.eos_id) if i is not None]
    if pooling == "cls" and dicts.cls_id is None:
        raise ParameterError(
            f"pooling='cls' needs a <cls> token, which Geneformer {dicts.version} dictionaries do not have",
            "argument pooling",
            "use pooling='mean' (V1), or a V2 model with V2 dictionaries",
        )

    adata = adata.copy() if copy else adata
    undo = _undo_record(adata, "rank_encoding")  # rank_encode records into adata; a refusal must not
    try:
        empty, pooled = _embed_cells(adata, gf, dicts, pooling, special, int(batch_size), dev, torch_dtype)
    except BaseException:
        undo()
        raise
    if pooled is None:  # another rank: rank 0 writes the result
        undo()
        return None
    n_cells = len(empty)
    encoded = np.flatnonzero(~empty)
    vectors = np.full((n_cells, gf.hidden_size), np.nan, dtype=np.float32)
    vectors[encoded] = pooled
    empty_names = [str(n) for n in np.asarray(adata.obs_names)[empty]]
    if empty_names:
        info(f"Geneformer: {len(empty_names):,} of {n_cells:,} cells have no gene in the vocabulary; their rows are NaN "
             f"and obs[{OK_COLUMN!r}] is False")
    adata.obsm[key_added] = vectors
    adata.obs[OK_COLUMN] = ~empty
    record(
        adata,
        key_added,
        packages=("torch", "transformers", "huggingface-hub"),
        method="Geneformer cell embedding (EmbExtractor semantics)",
        model=gf.name,
        model_source=gf.source,
        model_path=str(gf.path),
        revision=gf.revision,
        revision_kind="hub commit" if gf.source == "hub" else "sha256 of the local weights",
        architecture=gf.architecture,
        n_layers=gf.n_layers,
        layer=layer,
        hidden_states_index=gf.hidden_index,
        hidden_size=gf.hidden_size,
        pooling=pooling,
        dictionary_version=dicts.version,
        vocab_size=gf.vocab_size,
        max_length=int(dicts.max_length),
        batch_size=int(batch_size),
        device=str(dev),
        dtype=str(torch_dtype).removeprefix("torch."),
        n_cells=n_cells,
        n_encoded=int(len(encoded)),
        empty_cells=empty_names,
        ok_column=OK_COLUMN,
    )
    return adata if copy else None
