"""Where a model comes from, and what its folder may make mmgene import.

A model spec is either a local folder, which must exist, or an explicit Hugging Face Hub id
``hf://owner/name`` (optionally ``hf://owner/name@revision``; Geneformer also takes
``hf://owner/name/sub/folder``). A path that does not exist is an error, never a Hub lookup: a typo
must not send the user's token anywhere nor fetch an untrusted model. A Hub model is downloaded with
``huggingface_hub.snapshot_download`` and then checked exactly like a local folder.

Loading never runs code from a model folder: no ``trust_remote_code``, and every config file that
names a class is checked first (``modules.json``, ``router_config.json``, a transformers
``config.json``'s ``auto_map`` and ``model_type``); anything outside an exact allow-list is refused
with :class:`~mmgene.errors.UnsafeModelError`. The allow-list for sentence-transformers text encoders
lives here; the aligned model's own classes are added by :mod:`mmgene.align.model`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mmgene.errors import ModelError, ParameterError, RemoteError, UnsafeModelError, cause

HUB_PREFIX = "hf://"
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")
_REVISION = re.compile(r"^[A-Za-z0-9_.\-/]+$")
#: files of a Hub text model that loading never reads (other runtimes' weights).
_TEXT_IGNORE = ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "*.tflite", "coreml/*"]


@dataclass(frozen=True)
class HubModel:
    """An explicit Hub model id: ``hf://repo_id[/subfolder][@revision]``."""

    repo_id: str
    subfolder: str = ""
    revision: str | None = None

    def __str__(self) -> str:
        path = self.repo_id + (f"/{self.subfolder}" if self.subfolder else "")
        return HUB_PREFIX + path + (f"@{self.revision}" if self.revision else "")


def hub_fix(example: str = "hf://owner/name") -> str:
    """The 'what to do' of a missing local model: check the path, or write a Hub id explicitly."""
    return f"check the path; a model on the Hugging Face Hub is written {example} (optionally @revision)"


def parse_hub_id(spec: str | Any, *, subfolders: bool = False) -> HubModel | None:
    """The :class:`HubModel` of an ``hf://`` spec, ``None`` for anything else (a local path)."""
    text = str(spec)
    if not text.startswith(HUB_PREFIX):
        return None
    body, at, revision = text[len(HUB_PREFIX):].partition("@")
    parts = body.split("/")
    ok = len(parts) >= 2 and (subfolders or len(parts) == 2)
    ok = ok and all(_SEGMENT.match(p) and p not in (".", "..") for p in parts)
    ok = ok and (not at or (bool(_REVISION.match(revision)) and ".." not in revision))
    if not ok:
        shape = "hf://owner/name[/sub/folder][@revision]" if subfolders else "hf://owner/name[@revision]"
        raise ParameterError(f"{text!r} is not a Hub model id", f"model {text!r}", f"write it as {shape}")
    return HubModel("/".join(parts[:2]), "/".join(parts[2:]), revision or None)


def model_on_disk(spec: str | os.PathLike[str] | None) -> list[Path]:
    """``[spec]`` as a path when a model spec (a folder, ``hf://...``, ``genept-s``) names something on
    disk, else ``[]``: the inputs an output may not be written over or into."""
    return [Path(spec)] if spec and str(spec).strip() and Path(spec).exists() else []


def local_model_folder(spec: str | Any, *, example: str = "hf://owner/name") -> Path:
    """The existing folder ``spec`` names; a missing path is a :class:`ModelError`, never a Hub lookup."""
    text = str(spec)
    if not text.strip():  # Path('') is the working folder, which would be read as the model
        raise ModelError("the model is named by an empty text", "model ''", f"pass a model folder or {example}")
    path = Path(text).expanduser()
    if not path.exists():
        fix = hub_fix(example)
        if text.startswith("hf:/"):  # Path("hf://x/y") collapses the double slash
            fix += "; pass the Hub id as a string, not as a path"
        raise ModelError(f"no model folder at {text!r}", f"model {text!r}", fix)
    if not path.is_dir():
        raise ModelError(
            f"{text!r} is a file, not a model folder", f"model {text!r}", "pass the folder that holds the model"
        )
    return path.resolve()


@contextmanager
def _hub_errors(ref: HubModel) -> Iterator[None]:
    """Turn huggingface_hub's download errors into mmgene errors that name the repo."""
    from mmgene.lazy import require

    require("huggingface_hub.errors", "a model from the Hub")
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"hub model {ref.repo_id!r}" + (f", folder {ref.subfolder!r}" if ref.subfolder else "")
    where += f", revision {ref.revision or 'main'!r}"
    try:
        yield
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise ModelError(
            f"the hub repo {ref.repo_id!r} does not exist or needs access ({type(exc).__name__})",
            where,
            "check the id, or log in with `hf auth login` if the repo is gated",
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelError(
            f"revision {ref.revision!r} does not exist", where, "pass an existing branch, tag or commit"
        ) from exc
    except LocalEntryNotFoundError as exc:
        raise RemoteError(
            "the model is not in the local cache and the hub cannot be reached (offline, or no network)",
            where,
            "connect once to download it, unset HF_HUB_OFFLINE, or pass a local model folder",
        ) from exc
    except HfHubHTTPError as exc:
        raise RemoteError(f"the hub answered {exc}", where, "try again later, or pass a local model folder") from exc


def download(
    ref: HubModel, *, allow_patterns: Iterable[str] | None = None, ignore_patterns: Iterable[str] | None = None
) -> Path:
    """``snapshot_download`` of an explicit Hub id (into the Hugging Face cache); the model's folder in it.

    Nothing in the download is trusted: callers check the folder as they check a local one.
    """
    from mmgene.lazy import require

    require("huggingface_hub", "a model from the Hub")
    from huggingface_hub import constants, snapshot_download

    from mmgene.net.credentials import may_receive_secret

    # huggingface_hub's own token (None) only to an https Hub or one on this machine; elsewhere none (False)
    token = None if may_receive_secret(constants.ENDPOINT, constants.ENDPOINT) else False
    with _hub_errors(ref):
        root = snapshot_download(
            ref.repo_id,
            repo_type="model",
            revision=ref.revision,
            token=token,
            allow_patterns=list(allow_patterns) if allow_patterns is not None else None,
            ignore_patterns=list(ignore_patterns) if ignore_patterns is not None else None,
        )
    return Path(root) / ref.subfolder if ref.subfolder else Path(root)


def resolve_model(spec: str | Any, *, ignore_patterns: Iterable[str] | None = None) -> tuple[Path, HubModel | None]:
    """``(folder, hub id or None)`` for a model spec: an existing local folder, or a downloaded ``hf://`` id."""
    ref = parse_hub_id(spec)
    if ref is None:
        return local_model_folder(spec), None
    folder = download(ref, ignore_patterns=ignore_patterns)
    if not folder.is_dir():
        raise ModelError(f"the hub model {str(ref)!r} has no files", f"model {str(ref)!r}", "check the id")
    return folder, ref


# -- checks: every config that names a class ---------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a model config may hold")


def read_json(path: Path, *, finite: bool = False) -> Any:
    """A model config file's JSON; an unreadable one is a :class:`ModelError` naming the file. With
    ``finite``, ``NaN`` and ``Infinity`` (which Python's JSON reads as numbers) are refused too; so is JSON
    nested too deep for Python's reader (a ``RecursionError``)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant if finite else None)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(
            f"{path.name} cannot be read ({exc})", str(path), "pass a complete, unmodified model folder"
        ) from exc


def _link_root(folder: Path) -> Path:
    """The folder a model folder's links may lead into: the folder itself, or for a snapshot in the
    Hugging Face cache (``models--owner--name/snapshots/<commit>``) or a folder inside one (a text
    encoder nested in a model) its repo's folder, whose ``blobs`` hold the files the snapshot links to."""
    for snapshot in (folder, *folder.parents):
        if snapshot.parent.name == "snapshots" and snapshot.parent.parent.name.startswith("models--"):
            return snapshot.parent.parent
    return folder


def check_links(folder: Path) -> None:
    """Refuse a model folder holding a link that leads outside it (reading it would take in a file of
    the user's, e.g. as the gene vocabulary) or anything but files and folders (a pipe or device, such
    as a link to ``/dev/zero``, would block a read or never end it); nothing in the folder is read."""
    root = Path(os.path.realpath(_link_root(folder)))
    fix = "use a model folder as mmgene wrote it, with its files copied in (not linked)"
    for top, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(top, name)
            real = Path(os.path.realpath(path))
            if path.is_symlink() and real != root and root not in real.parents:
                what = f"{path.relative_to(folder)} links to {str(real)!r}, outside the model folder"
                raise UnsafeModelError(what, str(path), fix)
            if not (real.is_file() or real.is_dir()):
                what = f"{path.relative_to(folder)} is not a file or folder (a pipe, a device or a broken link)"
                raise UnsafeModelError(what, str(path), fix)


def refuse(path: Path, what: str, named: str) -> UnsafeModelError:
    """The error for a config file that names code mmgene does not run (``named`` shortened to 200 characters)."""
    named = named if len(named) <= 200 else named[:200] + "..."
    return UnsafeModelError(
        f"{path.name} names {what} {named!r}, which mmgene does not load (loading it would import or run "
        "code chosen by the model folder)",
        str(path),
        "use a model folder written by mmgene or a standard sentence-transformers/transformers model; "
        "mmgene never runs code from a model folder",
    )


def _find_key(data: Any, key: str) -> Any:
    """The first value under ``key`` anywhere in nested JSON, or ``None``."""
    if isinstance(data, Mapping):
        if key in data:
            return data[key]
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            found = _find_key(item, key)
            if found is not None:
                return found
    return None


def check_no_auto_map(folder: Path, *, recursive: bool = True) -> None:
    """Refuse any ``*config*.json`` under ``folder`` whose JSON carries ``auto_map`` (code in the folder or a repo)."""
    files = folder.rglob("*config*.json") if recursive else folder.glob("*config*.json")
    for path in sorted(files):
        if not path.is_file():
            continue
        _refuse_auto_map(path, read_json(path))


def _refuse_auto_map(path: Path, config: Any) -> None:
    """Refuse the JSON ``config`` read from ``path`` when it carries ``auto_map`` anywhere (code to import)."""
    auto_map = _find_key(config, "auto_map")
    if auto_map is not None:
        named = ", ".join(map(str, auto_map.values())) if isinstance(auto_map, Mapping) else str(auto_map)
        raise refuse(path, "custom code through auto_map", named)


#: packages whose classes a model folder may name at all: a class from anywhere else is refused before
#: sentence-transformers (and torch) is imported to build the exact allow-list.
ALLOWED_PACKAGES = ("sentence_transformers.", "mmgene.align.modules.")


def listed_types(folder: Path) -> list[tuple[Path, str]]:
    """``(file, type string)`` for every class that a ``modules.json`` or ``router_config.json`` anywhere
    under ``folder`` names (a malformed listing is named as a whole, so it is refused too)."""
    out: list[tuple[Path, str]] = []
    for path in sorted([*folder.rglob("modules.json"), *folder.rglob("router_config.json")]):
        if not path.is_file():
            continue
        data = read_json(path)
        if path.name == "modules.json":
            listed = isinstance(data, list) and all(isinstance(e, dict) for e in data)
            named = [e.get("type") for e in data] if listed else [data]
        else:
            types = data.get("types") if isinstance(data, dict) else data
            named = list(types.values()) if isinstance(types, dict) else [] if types is None else [data]
        out += [(path, str(type_name)) for type_name in named]
    return out


def prescreen_types(folder: Path) -> None:
    """Refuse, without importing anything, a folder whose listings name a class outside
    :data:`ALLOWED_PACKAGES`; the exact allow-list is checked after this."""
    for path, type_name in listed_types(folder):
        if not type_name.startswith(ALLOWED_PACKAGES):
            raise refuse(path, "the module class", type_name)


def check_transformers_config(folder: Path, *, model_types: Iterable[str] | None = None) -> dict[str, Any]:
    """Check a transformers ``config.json``: no ``auto_map`` and a ``model_type`` transformers itself implements.

    ``model_types`` narrows the accepted types (Geneformer: only ``bert``). Returns the config's JSON.
    """
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError("the model folder has no config.json", str(folder), "pass a folder saved with save_pretrained")
    config = read_json(path)
    if not isinstance(config, dict):
        raise ModelError("config.json is not a JSON object", str(path), "pass a folder saved with save_pretrained")
    _refuse_auto_map(path, config)
    model_type = config.get("model_type")
    from mmgene.lazy import require

    require("transformers", "checking a model's config")
    if model_types is None:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

        known = isinstance(model_type, str) and model_type in CONFIG_MAPPING_NAMES
    else:
        known = model_type is None or (isinstance(model_type, str) and model_type in set(model_types))
    if not known:
        raise refuse(path, "the model type", str(model_type))
    _check_architectures(path, config.get("architectures"), model_type)
    return config


@lru_cache(maxsize=1)
def _architecture_types() -> dict[str, set[str]]:
    """Each model class transformers registers (``BertModel``, ``BertForMaskedLM``, ...) -> its model types
    (built once a process: an ensemble's members each check their config)."""
    from transformers.models.auto import modeling_auto

    types: dict[str, set[str]] = {}
    for name, mapping in vars(modeling_auto).items():
        if not (name.endswith("_MAPPING_NAMES") and isinstance(mapping, Mapping)):
            continue
        for model_type, classes in mapping.items():
            for cls in [classes] if isinstance(classes, str) else classes:
                types.setdefault(str(cls), set()).add(str(model_type))
    return types


def _check_architectures(path: Path, architectures: Any, model_type: str | None) -> None:
    """Refuse a config whose ``model_type`` is not that of the ``architectures`` its weights were saved
    from: transformers would build the other model and fill every weight it does not find with random
    numbers (a warning, no error), so the model would load and embed nonsense."""
    if model_type is None or not architectures:
        return
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise ModelError(f"config.json's architectures must be a list of class names, got {architectures!r:.200}",
                         str(path), "use an unmodified model folder (config.json as saved with its weights)")
    known = _architecture_types()
    other = sorted({a for a in architectures if a in known and model_type not in known[a]})
    if other:
        raise ModelError(
            f"config.json names the model type {model_type!r}, but its weights were saved from {', '.join(other)} "
            f"(model type {', '.join(sorted(known[other[0]]))}); loading it would leave the weights unread",
            str(path),
            "use an unmodified model folder (config.json as saved with its weights)",
        )


def module_type_names(classes: Iterable[type]) -> dict[str, type]:
    """Exact ``modules.json`` type strings -> class: ``module.Class`` as sentence-transformers writes it,
    plus the legacy ``sentence_transformers.models.Class`` alias for sentence-transformers' own classes."""
    names: dict[str, type] = {}
    for cls in classes:
        names[f"{cls.__module__}.{cls.__qualname__}"] = cls
        if cls.__module__.startswith("sentence_transformers."):
            names[f"sentence_transformers.models.{cls.__name__}"] = cls
    return names


def text_encoder_classes() -> dict[str, type]:
    """The sentence-transformers modules a text encoder may name (the standard text-embedding building blocks)."""
    from mmgene.lazy import require

    require("sentence_transformers.base.modules", "a sentence-transformers text model")
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import (
        Dropout,
        LayerNorm,
        Pooling,
        StaticEmbedding,
        WeightedLayerPooling,
    )

    return module_type_names(
        [Transformer, Pooling, Normalize, Dense, LayerNorm, Dropout, WeightedLayerPooling, StaticEmbedding]
    )


def module_folder(root: Path, entry: Any, listing: Path) -> Path:
    """The folder of one ``modules.json``/``router_config.json`` entry, which must stay inside ``root``."""
    rel = str(entry or "")
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts:
        raise UnsafeModelError(
            f"{listing.name} points outside the model folder ({rel!r})", str(listing), "use an unmodified model folder"
        )
    return root / rel


def modules_json(folder: Path) -> list[dict[str, Any]]:
    """The entries of ``folder/modules.json`` (each with ``type`` and ``path``)."""
    path = folder / "modules.json"
    entries = read_json(path)
    typed = isinstance(entries, list) and all(isinstance(e, dict) and isinstance(e.get("type"), str) for e in entries)
    if not typed:
        raise ModelError(
            "modules.json is not a list of modules with a type", str(path), "use an unmodified model folder"
        )
    return entries


def check_text_encoder(folder: Path) -> None:
    """Check a sentence-transformers (or plain transformers) text model folder before it is loaded.

    Every ``modules.json`` type must be one of :func:`text_encoder_classes`; every Transformer module's
    ``config.json`` must carry no ``auto_map`` and a model type transformers implements; a Dense
    module's activation must be a ``torch`` class; no config file in the folder may carry ``auto_map``;
    no link may lead out of the folder (:func:`check_links`), as a user's file would be read as its vocabulary.
    """
    check_links(folder)
    check_no_auto_map(folder)
    if not (folder / "modules.json").is_file():  # a plain transformers model: mean pooling on top
        check_transformers_config(folder)
        return
    prescreen_types(folder)
    allowed = text_encoder_classes()
    listing = folder / "modules.json"
    for entry in modules_json(folder):
        cls = allowed.get(entry["type"])
        if cls is None:
            raise refuse(listing, "the module class", entry["type"])
        sub = module_folder(folder, entry.get("path"), listing)
        if cls.__name__ == "Transformer":
            check_transformers_config(sub)
        elif cls.__name__ == "Dense" and (sub / "config.json").is_file():
            dense = read_json(sub / "config.json")
            activation = dense.get("activation_function") if isinstance(dense, dict) else dense
            if activation is not None and not str(activation).startswith("torch."):
                raise refuse(sub / "config.json", "the activation function", str(activation))


def load_text_encoder(folder: Path, device: str = "cpu") -> Any:
    """A checked sentence-transformers text model from a local folder (no remote code, no network)."""
    from mmgene.lazy import require

    require("sentence_transformers", "a sentence-transformers text model")
    from pickle import UnpicklingError

    from safetensors import SafetensorError
    from sentence_transformers import SentenceTransformer

    check_text_encoder(folder)
    try:
        return SentenceTransformer(str(folder), device=device, trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError, UnpicklingError) as exc:
        raise ModelError(
            f"the text model cannot be loaded ({cause(exc)})",
            str(folder),
            "pass a complete sentence-transformers model folder",
        ) from exc


def text_model_folder(spec: str | Any) -> Path:
    """The local folder of a text model spec: an existing folder, or an ``hf://`` id downloaded and checked."""
    folder, _ = resolve_model(spec, ignore_patterns=_TEXT_IGNORE)
    check_text_encoder(folder)
    return folder
