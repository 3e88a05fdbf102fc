"""Joint spaces: where text and cells become comparable vectors.

A joint space is anything with two methods that return L2-normalised float32 arrays, and one that
says what it is (for reports and provenance)::

    encode_text(texts: list[str]) -> (n_texts, d)
    encode_cells(adata) -> (n_cells, d)
    describe() -> {"model": <name or path>, "inputs": [<what it reads of a cell>], ...}

Two kinds exist in mmgene:

* an aligned model trained by :mod:`mmgene.align` (``mmgene.align.load(folder)``), and
* the GenePT spaces, which need no training: GenePT-s embeds a cell's gene sentence with a text
  encoder and GenePT-w averages the text-encoder vectors of a cell's genes, so a text embedded by
  the *same* encoder lands in the same space (``'genept-s'``, ``'genept-w'``, optionally
  ``'genept-s:<encoder spec>'``, where the spec is what :func:`mmgene.text.encoders.text_encoder` takes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mmgene.errors import MissingColumnError, NonFiniteError, ParameterError
from mmgene.vectors import as_unit_vectors


@runtime_checkable
class JointSpace(Protocol):
    """What text queries, zero-shot annotation and evaluation need from a model."""

    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_cells(self, adata: Any) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]:
        """``{"model": name or path, "inputs": [what the space reads of a cell]}``, and more keys where known."""
        ...


class GenePTSpace:
    """The GenePT text space: no training, cells and text embedded by one sentence encoder.

    Parameters
    ----------
    variant
        ``'s'``: cells are ``obsm['X_genept_s']`` (embedded gene sentences); ``'w'``: cells are
        ``obsm['X_genept_w']`` (expression-weighted averages of gene vectors).
    encoder
        A text encoder (anything with ``.encode(list[str]) -> array``) or a spec for
        :func:`mmgene.text.encoders.text_encoder`; ``None`` is mmgene's offline default (MiniLM).
    key
        The obsm key holding the cells' vectors (default ``X_genept_<variant>``). Cells without it
        are embedded on the fly with :func:`mmgene.embed.genept_s` / :func:`mmgene.embed.genept_w`,
        which write nothing into the AnnData (run those to keep the vectors).
    """

    def __init__(self, variant: str = "s", encoder: Any = None, key: str | None = None) -> None:
        if variant not in ("s", "w"):
            raise ParameterError(f"unknown GenePT variant {variant!r}", "GenePTSpace", "use 's' (gene sentences) or 'w' (weighted gene vectors)")
        self.variant = variant
        self.key = key or f"X_genept_{variant}"
        self._encoder_spec = encoder if isinstance(encoder, str) or encoder is None else None
        self._encoder = None if isinstance(encoder, str) or encoder is None else encoder

    @property
    def name(self) -> str:
        return f"genept-{self.variant}" + (f":{self._encoder_spec}" if self._encoder_spec else "")

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from mmgene.text.encoders import text_encoder

            self._encoder = text_encoder(self._encoder_spec) if self._encoder_spec else text_encoder()
        return self._encoder

    @property
    def dim(self) -> int:
        """The dimension of the space: its text encoder's (cells and text share it)."""
        return int(self.encoder.dim)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        return as_unit_vectors(self.encoder.encode(texts), texts, f"text embedded by {self.name}")

    def encode_cells(self, adata: Any) -> np.ndarray:
        """The cells' vectors: ``obsm[key]`` where ``adata`` has it, else embedded here. Nothing is written
        into ``adata``: a caller may still refuse the request, and the user's data must stay as it was."""
        names = list(map(str, adata.obs_names))
        if self.key in adata.obsm:
            return as_unit_vectors(adata.obsm[self.key], names, f"obsm[{self.key!r}]")
        return as_unit_vectors(self._embed(adata), names, f"the cells embedded by {self.name}")

    def _embed(self, adata: Any) -> np.ndarray:
        """GenePT vectors of ``adata``'s cells, returned and not written (``inplace=False``); a cell without genes
        is refused (it would have a NaN vector)."""
        from mmgene import embed

        embedder = embed.genept_s if self.variant == "s" else embed.genept_w
        vectors = embedder(adata, encoder=self.encoder, on_empty="raise", inplace=False)
        if vectors is None:  # a rank other than the first under a launcher: the vectors went to rank 0
            raise MissingColumnError(self.key, "obsm", list(adata.obsm.keys()))
        return vectors

    def describe(self) -> dict[str, Any]:
        """The space's name (``genept-s[:<encoder>]``) and the obsm key its cells come from."""
        return {"model": self.name, "inputs": [self.key]}

    def __repr__(self) -> str:
        return f"GenePTSpace({self.name!r}, key={self.key!r})"


def recentres(space: Any, n_cells: int, setting: bool | None) -> bool:
    """Whether the cells are recentred before labels score them (:mod:`mmgene.align.recentre`):
    ``setting`` when given, else (``None``) when the space stores a training mean and there are at
    least :data:`~mmgene.text.classes.MIN_CELLS_TO_STANDARDISE` cells (a mean over fewer is noise)."""
    from mmgene.text.classes import MIN_CELLS_TO_STANDARDISE

    can = getattr(space, "training_mean", None) is not None
    if setting is None:
        return can and n_cells >= MIN_CELLS_TO_STANDARDISE
    if setting and not hasattr(space, "training_mean"):
        raise ParameterError(
            f"{space_name(space)} has no learned space to recentre cells in", "recentre=True",
            "recentre only with an aligned model, or pass recentre=False (--no-recentre)",
        )
    return bool(setting)


def trained_on_corpus(space: Any) -> bool:
    """Whether ``space`` is a model trained on a corpus of datasets (:func:`mmgene.align.train_corpus`,
    ``mmgene pretrain``): the models whose label defaults were chosen by leaving datasets out."""
    return "datasets" in getattr(space, "meta", {})


def uses_definitions(space: Any, setting: bool | None) -> bool:
    """Whether label prompts carry their Cell Ontology definitions (:func:`mmgene.text.prompts.definition_prompts`):
    ``setting`` when given, else (``None``) for a model trained on a corpus, whose captions carried them."""
    return trained_on_corpus(space) if setting is None else bool(setting)


def space_for_labels(space: Any, adata: Any, setting: bool | None) -> tuple[Any, int]:
    """The space ``adata``'s labels are scored in, and how many genes joined its gene channel.

    With ``setting`` (``None``: for a model trained on a corpus, from
    :data:`~mmgene.text.classes.MIN_CELLS_TO_STANDARDISE` cells on) that is the model whose gene channel
    also covers the genes that mark ``adata``'s own cells (:mod:`mmgene.align.data_genes`; no labels
    used), so a prompt for a cell type of a tissue the model never saw reaches its genes; else ``space``.
    """
    from mmgene.text.classes import MIN_CELLS_TO_STANDARDISE

    widen = getattr(space, "with_channel_genes", None)
    if setting is None:
        setting = widen is not None and trained_on_corpus(space) and adata.n_obs >= MIN_CELLS_TO_STANDARDISE
    elif setting and widen is None:
        raise ParameterError(
            f"{space_name(space)} has no gene channel to widen", "data_markers=True",
            "use the data's marker genes only with an aligned model, or pass data_markers=False (--no-data-markers)",
        )
    if not setting:
        return space, 0
    from mmgene.align.data_genes import data_markers

    return widen(data_markers(adata))


def cells_without_genes(adata: Any, reads_genes: bool) -> np.ndarray:
    """Booleans over ``adata``'s cells: True for a cell that expresses no gene when the cells' vectors come
    from a model that reads genes (``reads_genes``; all False otherwise). Such a model has nothing of the
    cell to read, and gives every such cell one and the same vector, which no label fits."""
    if not reads_genes:
        return np.zeros(adata.n_obs, dtype=bool)
    from mmgene.io import expression

    return expression(adata).genes_per_cell() == 0


def reads_genes(space: Any) -> bool:
    """Whether a joint space's cell vectors are read from the cells' genes (an aligned model's ``genes``
    input; a GenePT space marks a cell without genes itself, with a NaN vector)."""
    from mmgene.cells.inputs import GENES

    return GENES in getattr(space, "inputs", ())


def cells_for_labels(space: Any, adata: Any, recentre: bool | None) -> tuple[np.ndarray, bool]:
    """The joint-space vectors of ``adata``'s cells that labels are scored against, and whether they
    were recentred (:func:`recentres`)."""
    moved = recentres(space, adata.n_obs, recentre)
    cells = np.asarray(space.encode_cells(adata, recentre=True) if moved else space.encode_cells(adata))
    _check_finite(cells, adata, space)
    return cells, moved


def _check_finite(cells: np.ndarray, adata: Any, space: Any) -> None:
    """Refuse cell vectors with NaN or infinite values: one such cell makes every label's z-score NaN,
    and every cell of the data would be called unknown."""
    bad = ~np.isfinite(cells).all(axis=1) if cells.ndim == 2 else np.zeros(0, bool)
    if bad.any():
        raise NonFiniteError(
            f"{int(bad.sum())} cell vectors from {space_name(space)} contain NaN or infinite values",
            f"cell {str(adata.obs_names[int(np.flatnonzero(bad)[0])])!r}",
            "drop those cells (cells without an embedding), or check the model",
        )


def _check_texts(texts: Sequence[str] | str) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ParameterError("no text given", "the text query", "pass at least one non-empty text")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ParameterError(f"text {bad[0]} is empty or not a string", "the text query", "pass non-empty strings")
    return texts


def space_name(space: Any, spec: Any = None) -> str:
    """A short name for provenance: the spec string, the space's ``name``, or its class."""
    if isinstance(spec, (str, os.PathLike)):
        return os.fspath(spec)
    return str(getattr(space, "name", None) or type(space).__name__)


def space_dim(space: Any) -> int:
    """The dimension of a joint space's vectors: its ``dim`` where it has one, else that of one encoded text."""
    dim = getattr(space, "dim", None)
    return int(dim) if dim is not None else int(np.asarray(space.encode_text(["cell"])).shape[1])


def check_model_dim(model: Any, dim: int, where: str) -> None:
    """Refuse vectors of dimension ``dim`` recorded as living in joint space ``model`` (a spec for
    :func:`load_space`) when the space has another dimension: an index that records it could never
    answer a text query, so this is said when the index is built, not when it is first queried."""
    space = load_space(model)
    expected = space_dim(space)
    if expected != int(dim):
        raise ParameterError(
            f"the vectors have dimension {dim} but model {space_name(space, model)!r} encodes text into dimension {expected}, "
            "so they are not in its joint space", where,
            "name the model that made these vectors (an aligned model folder for its cell vectors, genept-s / genept-w "
            "with the text encoder that embedded them), or leave the model out for cell -> cell queries only",
        )


def _named_space(text: str) -> str | None:
    """The cache key of a spec that names a space rather than a folder: ``genept-s`` / ``genept-w``
    (``:<encoder>``, the variant lower-cased) or an explicit Hub model ``hf://...`` (a bare 'owner/name'
    is never looked up); ``None`` for a path."""
    head, _, tail = text.partition(":")
    if head.lower() in ("genept-s", "genept-w"):
        return f"{head.lower()}:{tail}"
    return text if text.startswith("hf://") else None


def unwritten_folder(spec: Any) -> bool:
    """Whether ``spec`` names a model folder that does not exist (yet): an index may record a model that is
    written beside it afterwards, as ``mmgene demo`` does, and a text query loads it later."""
    if not isinstance(spec, (str, os.PathLike)):
        return False
    text = os.fspath(spec)
    return _named_space(text) is None and not Path(text).expanduser().exists()


def load_space(spec: Any) -> Any:
    """Turn a model spec into a joint space.

    ``spec`` is a joint space object (returned as is), ``'genept-s'`` / ``'genept-w'`` (optionally
    ``':<encoder spec>'``), the folder of a model written by :mod:`mmgene.align` (which must exist), or
    such a model on the Hub, named explicitly ``hf://owner/name[@revision]``.
    """
    if spec is None:
        raise ParameterError(
            "no model given for text queries", "the query",
            "pass --model / model= (an aligned model folder, 'genept-s' or 'genept-w'), or build the index with one",
        )
    if not isinstance(spec, (str, os.PathLike)):
        if isinstance(spec, JointSpace):
            return spec
        raise ParameterError(f"{type(spec).__name__} is not a joint space", "model=",
                             "pass an object with encode_text(), encode_cells() and describe(), a folder or 'genept-s'")
    text = os.fspath(spec)
    if (named := _named_space(text)) is not None:
        return _cached_space(named, 0.0)
    path = Path(text).expanduser()
    if path.exists():
        stamp = max((p.stat().st_mtime for p in path.iterdir()), default=0.0) if path.is_dir() else path.stat().st_mtime
        return _cached_space(str(path.resolve()), stamp)
    raise ParameterError(
        f"unknown model {text!r}: not 'genept-s', 'genept-w', nor an existing folder (no model folder at that path)", "model=",
        "pass the folder of a model trained with `mmgene train`, a Hub model hf://owner/name, or 'genept-s' / 'genept-w'",
    )


@lru_cache(maxsize=4)
def _cached_space(key: str, stamp: float) -> Any:
    """Load a space once per process (models are large); ``stamp`` changes when a model folder is rewritten."""
    head, _, tail = key.partition(":")
    if head in ("genept-s", "genept-w"):
        return GenePTSpace(head[-1], tail or None)
    from mmgene.lazy import require

    align = require("mmgene.align", "Loading an aligned model")
    return align.load(key)
