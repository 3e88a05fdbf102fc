"""Load a Geneformer checkpoint (a BERT encoder) from a local folder or the Hugging Face Hub.

Geneformer checkpoints are ``BertForMaskedLM`` (pretrained) or ``BertFor...Classification``
(fine-tuned) folders. Embeddings only need the BERT encoder, so the weights are loaded into a
``BertModel`` without pooler; the masked-LM head, if any, is ignored. Remote code is never run: a
``config.json`` with ``auto_map`` or a ``model_type`` other than ``bert`` is refused, and loading
uses ``trust_remote_code=False``. A Hub checkpoint is named explicitly (``hf://owner/repo[/subfolder]``);
a local path that does not exist is an error, never a Hub lookup.

Layers above the one whose output is pooled are dropped after loading: the output of encoder layer
``k`` does not depend on the layers after it (BERT has no final norm), so this gives the same
numbers as ``output_hidden_states=True`` and skips work that Geneformer's own extractor throws away.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmgene.errors import ModelError, ParameterError, UnsafeModelError, _preview, cause

#: vocabulary sizes of the published dictionaries, used to guess the version when none is given.
KNOWN_VOCAB_SIZES = {25_426: "V1", 20_275: "V2"}
#: how a Hub checkpoint is written (the example in error messages).
HUB_EXAMPLE = "hf://ctheodoris/Geneformer/gf-6L-30M-i2048"

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass
class GeneformerModel:
    """A loaded encoder ready to embed, and where it came from."""

    module: Any
    """``transformers.BertModel`` in eval mode, truncated after the pooled layer."""
    name: str
    """What the user asked for: a folder path or a hub id (``hf://owner/repo[/subfolder][@revision]``)."""
    source: str
    """``'local'`` or ``'hub'``."""
    revision: str
    """Hub commit hash; for a local folder the sha256 of its weights file(s)."""
    path: Path
    """Folder the weights were read from."""
    n_layers: int
    """Encoder layers of the checkpoint (before truncation)."""
    layer: int
    """Geneformer's ``emb_layer``: 0 = last layer, -1 = second-to-last, ..."""
    hidden_index: int
    """Index into ``hidden_states`` (``n_layers + 1`` entries, 0 = embeddings): ``n_layers + layer``."""
    hidden_size: int
    vocab_size: int
    max_positions: int
    pad_id: int
    architecture: str


def hidden_states_index(layer: int, n_layers: int) -> int:
    """Map Geneformer's ``emb_layer`` (``0`` last, ``-1`` second-to-last, ...) to a ``hidden_states`` index.

    ``hidden_states`` has ``n_layers + 1`` entries (the embedding output first), so ``layer = -1``
    is ``hidden_states[n_layers - 1]``, the output of the second-to-last encoder layer.
    """
    if isinstance(layer, bool) or not isinstance(layer, int) or not -n_layers <= layer <= 0:
        raise ParameterError(
            f"layer={layer!r} is not a layer of this {n_layers}-layer model",
            "argument layer",
            f"use an integer from {-n_layers} (embedding output) to 0 (last layer); -1, the second-to-last "
            "layer, is Geneformer's default",
        )
    return n_layers + layer


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and weight-loading bar (the ignored MLM head is expected)."""
    from transformers.utils import logging as tlog

    verbosity, bar = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(verbosity)
        if bar:
            tlog.enable_progress_bar()


def _sha256_weights(folder: Path) -> str:
    """sha256 over the weight files of a local checkpoint (names and bytes), the local 'revision'."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.suffix in {".safetensors", ".bin"} and p.is_file())
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def _has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _WEIGHT_FILES) or any(folder.glob("model-*-of-*.safetensors"))


def resolve(spec: str | Path, revision: str | None = None) -> tuple[Path, str]:
    """Find the checkpoint folder for ``spec``: ``(folder, source)`` with source ``local`` or ``hub``.

    ``hf://owner/repo`` or ``hf://owner/repo/sub/folder`` (Geneformer's repo keeps several models in
    subfolders), optionally ``@revision``, is a Hub checkpoint: only the config and the weights of that
    folder are downloaded, into the Hugging Face cache, so a second call (or ``HF_HUB_OFFLINE=1``) reads
    them from disk. Anything else is a local folder, which must exist: it is never looked up on the Hub.
    """
    from mmgene.model_files import local_model_folder, parse_hub_id

    ref = parse_hub_id(spec, subfolders=True)
    if ref is None:
        if revision:
            raise ParameterError(
                f"revision={revision!r} only applies to hub ids, but {str(spec)!r} is a local folder",
                "argument revision",
                f"drop revision, or pass a hub id such as {HUB_EXAMPLE!r}",
            )
        return local_model_folder(spec, example=HUB_EXAMPLE), "local"
    if revision and ref.revision and revision != ref.revision:
        raise ParameterError(
            f"two revisions given: {ref.revision!r} in the id and revision={revision!r}",
            "arguments model and revision",
            "give the revision once",
        )
    return _download(ref.repo_id, ref.subfolder, revision or ref.revision), "hub"


def _download(repo_id: str, subfolder: str, revision: str | None) -> Path:
    """snapshot_download the config and weights of one folder of a hub repo (safetensors first)."""
    from mmgene.model_files import HubModel, download

    ref = HubModel(repo_id, subfolder, revision)
    rounds = (
        ["config.json", "model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors"],
        ["config.json", "pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*-of-*.bin"],
    )
    prefix = f"{subfolder}/" if subfolder else ""
    for patterns in rounds:
        folder = download(ref, allow_patterns=[prefix + p for p in patterns])
        if _has_weights(folder):
            return folder
    where = f"hub repo {repo_id!r}" + (f", folder {subfolder!r}" if subfolder else "") + f", revision {revision or 'main'!r}"
    raise ModelError(
        "no weights (model.safetensors or pytorch_model.bin) in this folder of the repo",
        where,
        f"pass the subfolder that holds the model, e.g. {HUB_EXAMPLE!r}",
    )


def _commit_of(folder: Path) -> str:
    """The commit hash of a hub snapshot folder (``.../snapshots/<commit>/[subfolder]``)."""
    for part in reversed(folder.parts):
        if _COMMIT.match(part):
            return part
    return ""


def load_config(folder: Path, where: str) -> Any:
    """Read and check ``config.json``: a BERT encoder (Geneformer's architecture), no remote code.

    A folder holding a link that leads out of it, or a config file with ``auto_map`` (code shipped with the
    checkpoint), is refused before transformers reads it; so is a ``model_type`` other than ``bert``.
    """
    from mmgene.lazy import require

    require("transformers", "Geneformer")
    from transformers import BertConfig

    from mmgene.model_files import check_links, check_no_auto_map, read_json

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelError("the checkpoint folder has no config.json", where, "pass a folder saved with save_pretrained")
    check_links(folder)  # a link out of the folder (a file of the user's read as weights, /dev/zero) is refused
    check_no_auto_map(folder, recursive=False)
    raw = read_json(config_file)
    model_type = raw.get("model_type", "bert") if isinstance(raw, dict) else None
    if model_type != "bert":
        raise ModelError(
            f"the checkpoint is a {model_type!r} model, not BERT (Geneformer's architecture)",
            where,
            "pass a Geneformer checkpoint (BertForMaskedLM or BertModel)",
        )
    try:
        config = BertConfig.from_json_file(str(config_file))
    except (OSError, ValueError) as exc:
        raise ModelError(f"config.json cannot be read ({exc})", where, "pass a valid transformers checkpoint") from exc
    if not _has_weights(folder):
        raise ModelError(
            "the checkpoint folder has no weights (model.safetensors or pytorch_model.bin)",
            where,
            "pass a folder saved with save_pretrained",
        )
    return config


def load_model(spec: str | Path, *, layer: int = -1, revision: str | None = None) -> GeneformerModel:
    """Load the encoder of a Geneformer checkpoint, truncated after layer ``layer`` (see module doc)."""
    folder, source = resolve(spec, revision)
    where = f"model {str(spec)!r}" + (f" ({folder})" if source == "hub" else "")
    config = load_config(folder, where)
    n_layers = int(config.num_hidden_layers)
    index = hidden_states_index(layer, n_layers)
    from mmgene.lazy import require

    require("transformers", "Geneformer")
    from transformers import BertModel

    try:
        with _quiet_transformers():
            module, loading = BertModel.from_pretrained(
                str(folder), add_pooling_layer=False, trust_remote_code=False, local_files_only=True, output_loading_info=True
            )
    except pickle.UnpicklingError as exc:  # torch's weights-only loader met an object that is no tensor: never load it
        raise UnsafeModelError(
            "the weights file holds Python objects besides tensors, which could run code when loaded, so it is refused",
            where, "use a checkpoint saved as safetensors, or one whose .bin holds tensors only",
        ) from exc
    except Exception as exc:  # a damaged file speaks in its reader's types (SafetensorError, EOFError, KeyError, ...)
        raise ModelError(f"the weights cannot be loaded ({cause(exc)})", where, "pass a complete Geneformer checkpoint") from exc
    check_complete(loading.get("missing_keys") or (), where)
    module.eval()
    module.encoder.layer = module.encoder.layer[:index]
    module.config.num_hidden_layers = index
    pad = config.pad_token_id
    return GeneformerModel(
        module=module,
        name=str(spec),
        source=source,
        revision=_commit_of(folder) if source == "hub" else _sha256_weights(folder),
        path=folder,
        n_layers=n_layers,
        layer=layer,
        hidden_index=index,
        hidden_size=int(config.hidden_size),
        vocab_size=int(module.get_input_embeddings().num_embeddings),
        max_positions=int(config.max_position_embeddings),
        pad_id=0 if pad is None else int(pad),
        architecture=",".join(config.architectures or ["BertModel"]),
    )


def check_complete(missing: Iterable[object], where: str) -> None:
    """Refuse weights that lack tensors of the model ``config.json`` describes: transformers would fill
    them with random values and the embeddings would silently mean nothing."""
    names = sorted(map(str, missing))
    if names:
        raise ModelError(
            f"the weights lack {len(names):,} tensors of the model that config.json describes ({_preview(names, 3)}), "
            "which would be random",
            where,
            "pass a complete checkpoint whose config.json matches its weights (e.g. num_hidden_layers)",
        )


def check_vocabulary(model: GeneformerModel, dictionaries: Any) -> None:
    """Refuse a checkpoint whose vocabulary or pad id differs from the token dictionary."""
    n_tokens = len(dictionaries.token_ids)
    where = f"model {model.name!r} with the Geneformer {dictionaries.version} token dictionary"
    if model.vocab_size != n_tokens:
        known = KNOWN_VOCAB_SIZES.get(model.vocab_size)
        hint = f"this model looks like a Geneformer {known} model: pass version={known!r}" if known else (
            "pass the dictionaries the model was trained with (dictionaries=FOLDER)"
        )
        raise ModelError(
            f"the model's vocabulary has {model.vocab_size:,} tokens but the token dictionary has {n_tokens:,}",
            where,
            hint,
        )
    if model.pad_id != dictionaries.pad_id:
        raise ModelError(
            f"the model's pad token id is {model.pad_id} but the dictionary's <pad> is {dictionaries.pad_id}",
            where,
            "pass the dictionaries the model was trained with",
        )
