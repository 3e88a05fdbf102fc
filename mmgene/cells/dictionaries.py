"""Geneformer's gene dictionaries (token ids, gene medians, symbol -> Ensembl, Ensembl mapping).

They are Python pickles, so they are read with a restricted unpickler that builds only plain data
(dict, list, str, int, float, bool, None and numpy bool/int/float scalars) and refuses any other
global: a pickle that would import ``os.system`` or anything else raises :class:`UnsafePickleError`
before running it. Sources: a local folder (the Geneformer repository or just the ``.pkl`` files) or
the Geneformer hub repository through ``huggingface_hub`` (downloaded once, cached).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.choices import VERSIONS
from mmgene.errors import InputFileError, ParameterError, RemoteError, _preview, cause

HUB_REPO = "ctheodoris/Geneformer"
#: genes a cell keeps (V1: no special tokens; V2: 4,094 genes wrapped in <cls> ... <eos>).
MAX_GENES = {"V1": 2048, "V2": 4094}
MAX_LENGTH = {"V1": 2048, "V2": 4096}
SPECIAL = ("<pad>", "<mask>", "<cls>", "<eos>")

#: role -> (path in the hub repo, file names accepted in a local folder, required)
_FILES: dict[str, dict[str, tuple[str, tuple[str, ...], bool]]] = {
    "V1": {
        "token_ids": ("geneformer/gene_dictionaries_30m/token_dictionary_gc30M.pkl", ("token_dictionary_gc30M.pkl", "token_dictionary.pkl"), True),
        "medians": ("geneformer/gene_dictionaries_30m/gene_median_dictionary_gc30M.pkl", ("gene_median_dictionary_gc30M.pkl", "gene_median_dictionary.pkl"), True),
        "name_to_id": ("geneformer/gene_dictionaries_30m/gene_name_id_dict_gc30M.pkl", ("gene_name_id_dict_gc30M.pkl", "gene_name_id_dict.pkl"), False),
        "ensembl_mapping": ("geneformer/gene_dictionaries_30m/ensembl_mapping_dict_gc30M.pkl", ("ensembl_mapping_dict_gc30M.pkl", "ensembl_mapping_dict.pkl"), False),
    },
    "V2": {
        "token_ids": ("geneformer/token_dictionary_gc104M.pkl", ("token_dictionary_gc104M.pkl",), True),
        "medians": ("geneformer/gene_median_dictionary_gc104M.pkl", ("gene_median_dictionary_gc104M.pkl",), True),
        "name_to_id": ("geneformer/gene_name_id_dict_gc104M.pkl", ("gene_name_id_dict_gc104M.pkl",), False),
        "ensembl_mapping": ("geneformer/ensembl_mapping_dict_gc104M.pkl", ("ensembl_mapping_dict_gc104M.pkl",), False),
    },
}
_LABELS = {"token_ids": "token dictionary", "medians": "gene median dictionary", "name_to_id": "gene name -> id dictionary", "ensembl_mapping": "Ensembl mapping dictionary"}
#: sub-folders of a local folder searched for the files (the Geneformer repository's layout included).
_SUBDIRS = ("", "geneformer", "geneformer/gene_dictionaries_30m", "gene_dictionaries_30m")


class UnsafePickleError(InputFileError):
    """A pickle asks to build something other than plain data (it could run code); it was not loaded."""


# --- restricted unpickling -----------------------------------------------------------------------

_NUMERIC_KINDS = "biuf"


def _safe_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dtype = np.dtype(spec) if isinstance(spec, str) else None
    if dtype is None or dtype.kind not in _NUMERIC_KINDS:  # an object scalar is built from raw pointer bytes
        raise _Refused(f"numpy.dtype({spec!r})")
    return dtype


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS:
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype!r} is not a plain number")
    if isinstance(data, str):  # protocol 0-2 pickles store the bytes as latin-1 text
        data = data.encode("latin-1")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("malformed numpy scalar")
    return np.frombuffer(data, dtype=dtype)[0]


def _safe_codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):  # protocol 2 writes bytes this way; other codecs run other code
        raise _Refused(f"_codecs.encode with the codec {encoding!r}")
    if not isinstance(text, str):
        raise pickle.UnpicklingError("only latin-1 text may be encoded")
    return text.encode("latin-1")


#: the only globals a dictionary pickle may name, mapped to checked stand-ins.
_ALLOWED = {
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _safe_codecs_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


class _Refused(pickle.UnpicklingError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def safe_load_pickle(path: str | os.PathLike[str]) -> Any:
    """Load a pickle of plain data; refuse (without running) any pickle that names another global."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read {path.name} ({exc.strerror or exc})", str(path), "check the path and its permissions") from exc
    try:
        # latin-1: Python 2's 8-bit strings (a numpy scalar's bytes among them) arrive byte for byte
        return _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _Refused as exc:
        raise UnsafePickleError(
            f"refused to load {path.name}: the pickle asks for {exc.name!r}, which is not plain data "
            "(loading it could run code)",
            str(path),
            "use the official Geneformer dictionaries, and never unpickle files from untrusted sources",
        ) from None
    # OverflowError: a damaged length field (a FRAME or BINBYTES larger than any file)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError) as exc:
        raise InputFileError(
            f"{path.name} is not a valid dictionary pickle ({type(exc).__name__}: {exc})",
            str(path),
            "download the file again (it may be truncated or not a pickle)",
        ) from exc


# --- the dictionaries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneformerDictionaries:
    """Geneformer's token dictionary, gene medians and id maps for one model generation."""

    token_ids: dict[str, int]
    medians: dict[str, float]
    name_to_id: dict[str, str]
    ensembl_mapping: dict[str, str] | None
    version: str
    source: str = ""
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def pad_id(self) -> int:
        return self.token_ids["<pad>"]

    @property
    def mask_id(self) -> int | None:
        return self.token_ids.get("<mask>")

    @property
    def cls_id(self) -> int | None:
        return self.token_ids.get("<cls>")

    @property
    def eos_id(self) -> int | None:
        return self.token_ids.get("<eos>")

    @property
    def max_length(self) -> int:
        """Model input size: 2,048 (V1) or 4,096 (V2, including ``<cls>`` and ``<eos>``)."""
        return MAX_LENGTH[self.version]

    @property
    def max_genes(self) -> int:
        """Genes kept per cell: 2,048 (V1) or 4,094 (V2)."""
        return MAX_GENES[self.version]

    @property
    def vocab_size(self) -> int:
        return len(self.token_ids)

    def summary(self) -> dict[str, object]:
        return {"version": self.version, "source": self.source, "vocab_size": self.vocab_size, "sha256": self.sha256}


def _check_version(version: str) -> str:
    v = str(version).upper()
    if v not in VERSIONS:
        raise ParameterError(f"unknown Geneformer version {version!r}", "argument version", "pass 'V1' (30M dictionaries) or 'V2' (104M)")
    return v


def _as_str_dict(obj: Any, value: str, path: Path) -> dict:
    if not isinstance(obj, dict):
        raise InputFileError(f"{path.name} holds a {type(obj).__name__}, not a dictionary", str(path), "pass Geneformer's dictionary files")
    out: dict = {}
    for key, val in obj.items():
        if not isinstance(key, str):
            raise InputFileError(f"{path.name} has a non-text key {key!r}", str(path), "pass Geneformer's dictionary files")
        if value == "int":
            if isinstance(val, (bool, np.bool_)) or not isinstance(val, (int, np.integer)):
                raise InputFileError(f"{path.name}: token id of {key!r} is {val!r}, not an integer", str(path), "pass Geneformer's token dictionary")
            out[key] = int(val)
        elif value == "float":
            if not _positive_number(val):
                raise InputFileError(f"{path.name}: median of {key!r} is {reprlib.repr(val)}, not a positive number",
                                     str(path), "pass Geneformer's gene median dictionary")
            out[key] = float(val)
        else:
            if not isinstance(val, str):
                raise InputFileError(f"{path.name}: value of {key!r} is {val!r}, not text", str(path), "pass Geneformer's gene id dictionaries")
            out[key] = val
    return out


def _positive_number(value: Any) -> bool:
    """Whether ``value`` is a finite number > 0 as a float (not a bool, not an int too large for a float)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except OverflowError:
        return False


def _check_token_ids(tokens: dict[str, int], path: Path | None) -> None:
    """Token ids must be distinct and in ``0 .. len(tokens) - 1`` (rows of the model's embedding table):
    a repeated id would merge two genes, an id out of range would name no row (or wrap around)."""
    names = [name for name, i in tokens.items() if not 0 <= i < len(tokens)]  # before numpy: an id past int64
    if names:
        raise InputFileError(
            f"{len(names)} token ids lie outside 0..{len(tokens) - 1} ({_preview(f'{n}={tokens[n]}' for n in names)})",
            str(path),
            "pass Geneformer's token dictionary (ids 0 .. number of tokens - 1)",
        )
    ids = np.fromiter(tokens.values(), np.int64, len(tokens))
    if len(np.unique(ids)) != len(ids):
        seen: dict[int, str] = {}
        clash = next((f"{seen[i]!r} and {name!r} share id {i}" for name, i in tokens.items() if seen.setdefault(i, name) != name), "")
        raise InputFileError(
            f"token ids repeat in the token dictionary ({clash})", str(path), "pass Geneformer's token dictionary (one id per token)"
        )


def _local_files(folder: Path, version: str) -> dict[str, Path | None]:
    found: dict[str, Path | None] = {}
    for role, (_, names, required) in _FILES[version].items():
        hit = next((folder / sub / name for sub in _SUBDIRS for name in names if (folder / sub / name).is_file()), None)
        if hit is None and required:
            other = "V2" if version == "V1" else "V1"
            if any((folder / sub / name).is_file() for sub in _SUBDIRS for name in _FILES[other][role][1]):
                raise ParameterError(
                    f"{folder} holds {other} dictionaries but version={version!r} was asked",
                    str(folder),
                    f"pass version={other!r}, or a folder with the {version} files",
                )
            raise InputFileError(
                f"no Geneformer {version} {_LABELS[role]} file in {folder} (looked for {', '.join(names)})",
                str(folder),
                "pass the folder holding Geneformer's .pkl dictionaries (or the Geneformer repository), "
                "or source=None to download them from the hub",
            )
        found[role] = hit
    return found


def _hub_files(repo: str, version: str, revision: str | None) -> dict[str, Path | None]:
    from mmgene.lazy import require

    require("huggingface_hub.errors", "downloading Geneformer's dictionaries")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    found: dict[str, Path | None] = {}
    for role, (hub_path, _, required) in _FILES[version].items():
        try:
            found[role] = Path(hf_hub_download(repo, hub_path, revision=revision))
        except LocalEntryNotFoundError as exc:  # offline or unreachable, and not in the cache
            if not required:
                from mmgene.progress import info

                info(f"load_dictionaries: {hub_path} is neither reachable nor cached; going on without it")
                found[role] = None
                continue
            raise RemoteError(
                f"could not download {hub_path} from the hub repository {repo} and it is not cached ({str(exc).splitlines()[0][:200]})",
                f"{repo}@{revision or 'main'}",
                "check the network (HF_HUB_OFFLINE must be unset), or pass a local folder holding the .pkl files",
            ) from exc
        except EntryNotFoundError:
            if required:
                raise RemoteError(f"{hub_path} is not in the hub repository {repo}", f"{repo}@{revision or 'main'}", "check the repository and version") from None
            found[role] = None
        except (HfHubHTTPError, OSError) as exc:
            raise RemoteError(
                f"could not download {hub_path} from the hub repository {repo} ({cause(exc)})",
                f"{repo}@{revision or 'main'}",
                "check the network and the repository id, or pass a local folder holding the .pkl files",
            ) from exc
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_dictionaries(source: str | os.PathLike[str] | None = None, version: str = "V1", *, revision: str | None = None) -> GeneformerDictionaries:
    """Load Geneformer's dictionaries safely.

    Parameters
    ----------
    source
        A local folder with the ``.pkl`` files (new ``*_gc30M``/``*_gc104M`` names or the older V1
        names; the Geneformer repository's layout works too), an explicit Hub id ``hf://owner/name``
        (a missing local path is an error, never a Hub lookup), or ``None`` for ``ctheodoris/Geneformer``
        on the hub (cached by ``huggingface_hub``).
    version
        ``'V1'`` (30M corpus: 2,048 genes, no special tokens) or ``'V2'`` (104M: ``<cls>``/``<eos>``,
        4,096 tokens).
    revision
        Hub revision (branch, tag or commit) when downloading.
    """
    from mmgene.model_files import parse_hub_id

    version = _check_version(version)
    hub = None if source is None else parse_hub_id(source)
    if source is not None and hub is None:
        folder = Path(source).expanduser()
        if not folder.exists():
            raise InputFileError(
                f"no dictionary folder at {str(source)!r}",
                "argument source",
                "check the path; dictionaries on the Hub are written hf://owner/name (e.g. hf://ctheodoris/Geneformer), "
                "and None uses that repository",
            )
        if not folder.is_dir():
            raise InputFileError(f"{folder} is a file, not a folder", str(folder), "pass the folder that holds the .pkl dictionaries")
        files, origin = _local_files(folder, version), str(folder)
    else:
        repo = hub.repo_id if hub is not None else HUB_REPO
        revision = revision or (hub.revision if hub is not None else None)
        files, origin = _hub_files(repo, version, revision), f"hub:{repo}@{revision or 'main'}"
    kinds = {"token_ids": "int", "medians": "float", "name_to_id": "str", "ensembl_mapping": "str"}
    loaded: dict[str, dict | None] = {}
    for role, path in files.items():
        loaded[role] = None if path is None else _as_str_dict(safe_load_pickle(path), kinds[role], path)
    tokens = loaded["token_ids"] or {}
    if "<pad>" not in tokens:
        raise InputFileError("the token dictionary has no '<pad>' token", str(files["token_ids"]), "pass Geneformer's token dictionary")
    _check_token_ids(tokens, files["token_ids"])
    has_cls = "<cls>" in tokens and "<eos>" in tokens
    if version == "V2" and not has_cls:
        raise ParameterError("these are V1 dictionaries (no <cls>/<eos> tokens) but version='V2' was asked", origin, "pass version='V1' or the V2 (gc104M) files")
    if version == "V1" and has_cls:
        raise ParameterError("these are V2 dictionaries (they have <cls>/<eos> tokens) but version='V1' was asked", origin, "pass version='V2' or the V1 (gc30M) files")
    return GeneformerDictionaries(
        token_ids=tokens,
        medians=loaded["medians"] or {},
        name_to_id=loaded["name_to_id"] or {},
        ensembl_mapping=loaded["ensembl_mapping"],
        version=version,
        source=origin,
        sha256={p.name: _sha256(p) for p in files.values() if p is not None},
    )
