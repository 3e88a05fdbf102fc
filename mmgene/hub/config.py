"""The settings of :func:`mmgene.hub.publish`, one dataclass per concern, one default per setting.

=================  ===========================================================================
``LayoutConfig``   how cells become rows: layout, captions, splits, negatives, columns, seed
``ChunkConfig``    how the AnnData is read and cut: chunk files, cell-sentence length, backed reading
``CardConfig``     what the dataset card says that the data cannot: license, name, description, citation
``ShareConfig``    where the chunk files go and who may read the dataset
=================  ===========================================================================

Each checks its values in ``__post_init__``, so a bad setting is refused before anything is read or
written. :class:`PublishConfig` holds the four; ``PublishConfig.from_settings(layout="pairs",
chunk_size=500)`` routes flat setting names to the right one (field names are unique across the
four), which is how ``publish(**settings)`` and the CLI build it. Each field carries its default and
its help (:func:`mmgene.config.setting`); :func:`setting_help` and :func:`default` read them, so the
CLI shows both without a copy of its own.

This module imports nothing heavy: the CLI reads it to build ``mmgene publish --help``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmgene.cards import check_license
from mmgene.config import check_whole, field_help, freeze, setting
from mmgene.errors import ParameterError, is_whole_number
from mmgene.hub.chunks import FORMATS
from mmgene.hub.share import SHARE_KINDS, ShareBackend

LAYOUTS = ("single", "pairs", "multiplets")
DEFAULT_SPLITS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}


def fill_caption(template: str, label: str) -> str:
    """``template`` with each ``{label}`` replaced by ``label`` (``{{``/``}}`` are literal braces).

    Not ``str.format``: a template may name only ``{label}``, with no attribute, index, conversion or
    format spec (``{label:>999999999}`` would fill memory), and breaking that rule is a
    :class:`ParameterError`."""
    import string

    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ParameterError(f"bad caption template {template!r} ({exc})", "caption_template", "use {label} as the only placeholder; write {{ and }} for braces") from None
    out = []
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        if name != "label" or spec or conversion:
            field_text = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ParameterError(f"the caption template {template!r} has the placeholder {field_text}", "caption_template",
                                 "use {label} as the only placeholder, without ! or :, and write {{ and }} for braces")
        out.append(label)
    return "".join(out)


def check_splits(splits: Mapping[str, float]) -> dict[str, float]:
    """Split names (word characters, dots between) with positive fractions that sum to 1, as a dict."""
    splits = {str(k): float(v) for k, v in splits.items()}
    if not splits:
        raise ParameterError("no splits given", "splits", "pass e.g. {'train': 0.8, 'test': 0.2}")
    bad = [k for k in splits if not re.fullmatch(r"\w+(?:\.\w+)*", k)]
    if bad:
        raise ParameterError(f"invalid split names {bad}", "splits", "use letters, digits and underscores")
    if any(v <= 0 for v in splits.values()) or abs(sum(splits.values()) - 1.0) > 1e-6:
        raise ParameterError(
            f"split fractions must be positive and sum to 1, got {splits}", "splits", "e.g. train=0.8, validation=0.1, test=0.1"
        )
    return splits


@dataclass(frozen=True)
class LayoutConfig:
    """How cells become dataset rows (see :mod:`mmgene.hub.layouts`)."""

    layout: str = setting("single", "Row layout: single | pairs | multiplets")
    label_key: str | None = setting(None, "obs column with labels; captions are made from it")
    caption_key: str | None = setting(None, "obs column with free-text captions, used instead of label_key")
    caption_template: str = setting("{label}", "Caption made from a label, e.g. 'A {label} cell.'")
    split_by: str | None = setting(None, "obs column whose groups (donor, sample ...) never straddle splits; none splits single cells")
    splits: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_SPLITS), metadata={"help": "Split names and their shares of the cells"}
    )
    n_negatives: int = setting(1, "pairs/multiplets: negative captions per cell")
    n_cell_negatives: int = setting(1, "multiplets: negative cells per row")
    obs_keys: Sequence[str] | None = setting(None, "Metadata columns of the single layout; none: all of obs")
    obsm_keys: Sequence[str] | None = setting(
        None, "Embeddings included as emb_<key> columns; none: publish takes those mmgene made, build_dataset none"
    )
    seed: int = setting(0, "Seed for splits and negatives")

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ParameterError(f"unknown layout {self.layout!r}", "layout", f"use one of {', '.join(LAYOUTS)}")
        if fill_caption(self.caption_template, "\0") == fill_caption(self.caption_template, ""):
            raise ParameterError(
                f"the caption template {self.caption_template!r} has no {{label}} placeholder, so every caption would be the same",
                "caption_template", "pass e.g. 'A {label} cell.'",
            )
        freeze(self, "splits", check_splits(self.splits))
        check_whole(self.seed, "seed", "LayoutConfig.seed", "pass a whole number >= 0, e.g. 0 (numpy takes no negative seed)")


@dataclass(frozen=True)
class ChunkConfig:
    """How the AnnData is read and cut into the chunk files that rows link to."""

    chunk_size: int = setting(10_000, "Cells per AnnData chunk file")
    chunk_format: str = setting("h5ad", "Chunk file format: h5ad | zarr, a zipped zarr store")
    top_k: int | None = setting(100, "Genes per cell sentence; none: every expressed gene")
    backed: bool = setting(False, "Stream the .h5ad matrix from disk instead of loading it")

    def __post_init__(self) -> None:
        if self.chunk_format not in FORMATS:
            raise ParameterError(f"unknown chunk format {self.chunk_format!r}", "chunk_format", f"use one of {', '.join(FORMATS)}")
        if not is_whole_number(self.chunk_size, 1):
            raise ParameterError(f"chunk_size must be a whole number of cells >= 1, got {self.chunk_size!r}", "chunk_size",
                                 "pass a positive number of cells")
        if self.top_k is not None and self.top_k < 1:
            raise ParameterError(f"top_k must be at least 1, got {self.top_k}", "top_k", "pass a positive number of genes")


@dataclass(frozen=True)
class CardConfig:
    """What the dataset card says that the data cannot tell."""

    license: str = setting("cc-by-4.0", "License id for the card, one of the Hub's (apache-2.0, mit, cc-by-4.0 ... or other)")
    pretty_name: str | None = setting(None, "Title of the card; none: the repository name")
    description: str | None = setting(None, "Summary paragraph; none: made from the cells, labels and layout")
    source_citation: str | None = setting(None, "How to cite the study behind the data; none: a reminder to cite it")

    def __post_init__(self) -> None:
        check_license(self.license, "CardConfig.license")


@dataclass(frozen=True)
class ShareConfig:
    """Where the AnnData chunk files go, and who may read the dataset."""

    share: str | ShareBackend = setting("hub", "Where the AnnData chunk files go: hub | webdav | nextcloud | http")
    share_options: Mapping[str, Any] = field(
        default_factory=dict, metadata={"help": "Options of mmgene.hub.make_share (url, folder, user ...); never passwords"}
    )
    private: bool = setting(True, "Create the dataset repository (and a Hub share) private")

    def __post_init__(self) -> None:
        if isinstance(self.share, str) and self.share not in SHARE_KINDS:
            raise ParameterError(f"unknown share backend {self.share!r}", "share", f"use one of {', '.join(SHARE_KINDS)}")
        freeze(self, "share_options", dict(self.share_options or {}))


#: the part of :class:`PublishConfig` each settings class fills
_PARTS = {"dataset": LayoutConfig, "chunks": ChunkConfig, "card": CardConfig, "sharing": ShareConfig}


@dataclass(frozen=True)
class PublishConfig:
    """Every setting of :func:`mmgene.hub.publish`, grouped."""

    dataset: LayoutConfig = field(default_factory=LayoutConfig)
    chunks: ChunkConfig = field(default_factory=ChunkConfig)
    card: CardConfig = field(default_factory=CardConfig)
    sharing: ShareConfig = field(default_factory=ShareConfig)

    @classmethod
    def from_settings(cls, **settings: Any) -> PublishConfig:
        """A config with the defaults, changed by flat setting names (``layout="pairs", chunk_size=500``)."""
        return cls().replace(**settings)

    def replace(self, **settings: Any) -> PublishConfig:
        """A copy with some settings changed by their flat names; each changed part is checked again."""
        owner = _owners()
        unknown = sorted(set(settings) - set(owner))
        if unknown:
            raise ParameterError(f"unknown publish settings {unknown}", "publish(...)", f"use one of: {', '.join(owner)}")
        changes: dict[str, dict[str, Any]] = {}
        for name, value in settings.items():
            changes.setdefault(owner[name], {})[name] = value
        return dataclasses.replace(self, **{part: dataclasses.replace(getattr(self, part), **kw) for part, kw in changes.items()})


def _owners() -> dict[str, str]:
    """Flat setting name -> the part of :class:`PublishConfig` that holds it."""
    return {f.name: part for part, cls in _PARTS.items() for f in dataclasses.fields(cls)}


def _owner_class(name: str) -> type:
    owner = _owners()
    if name not in owner:
        raise ParameterError(f"unknown publish setting {name!r}", "mmgene.hub.config", f"use one of: {', '.join(owner)}")
    return _PARTS[owner[name]]


def default(name: str) -> Any:
    """The default of the publish setting ``name``, read from its dataclass field."""
    f = next(f for f in dataclasses.fields(_owner_class(name)) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def setting_help(name: str) -> str:
    """The help of the publish setting ``name`` with its default, as the CLI shows it."""
    return field_help(_owner_class(name), name)
