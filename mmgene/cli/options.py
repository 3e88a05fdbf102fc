"""Options several commands share: the choices of enumerated options, ``--device``, ``--json`` and the
old spellings of ``--label-col``.

Enumerated options are typed ``Literal[...]`` so that ``--help`` lists their values and a bad value
stops before any work, as a one-line usage error with exit status 2 (:func:`mmgene.cli.app.main`).
The values come from the library's light modules (:mod:`mmgene.choices` and the packages' config
modules), so ``mmgene --help`` lists them without loading numpy or torch.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional

import typer

from mmgene.align.config import LOSSES
from mmgene.choices import DTYPE_NAMES, POOLINGS, TEXT_BACKENDS, TIES, VERSIONS, WEIGHTINGS, OnEmpty
from mmgene.config import field_help
from mmgene.errors import ParameterError
from mmgene.hub.chunks import FORMATS
from mmgene.hub.config import LAYOUTS
from mmgene.hub.share import SHARE_KINDS
from mmgene.index.params import KINDS

Loss = Literal[LOSSES]  # type: ignore[valid-type]
Layout = Literal[LAYOUTS]  # type: ignore[valid-type]
ShareKind = Literal[SHARE_KINDS]  # type: ignore[valid-type]
ChunkFormat = Literal[FORMATS]  # type: ignore[valid-type]
IndexKind = Literal[KINDS]  # type: ignore[valid-type]
Ties = Literal[TIES]  # type: ignore[valid-type]
Version = Literal[VERSIONS]  # type: ignore[valid-type]
Pooling = Literal[POOLINGS]  # type: ignore[valid-type]
Dtype = Literal[tuple(DTYPE_NAMES)]  # type: ignore[valid-type]
Weighting = Literal[WEIGHTINGS]  # type: ignore[valid-type]
TextBackend = Literal[tuple(TEXT_BACKENDS)]  # type: ignore[valid-type]

#: torch devices a command may run on: auto (CUDA when available), cpu, cuda, cuda:N, mps
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICE_METAVAR = "[auto|cpu|cuda|cuda:N|mps]"


def parse_device(value: str) -> str:
    """``--device``: one of :data:`DEVICE_METAVAR`; anything else is a usage error."""
    if not DEVICE.fullmatch(str(value)):
        raise typer.BadParameter(f"{value!r} is not one of auto, cpu, cuda, cuda:N (N a GPU number) or mps")
    return str(value)


#: what an option of a setting that can be switched off takes for "off" (``--min-z none``)
OFF = "none"


def number_or_off(value: str) -> float | str:
    """An option that takes a number, or :data:`OFF` to switch its rule off (returned as is, so that the
    command tells it from an option left unset); anything else is a usage error. Whether the number is
    allowed (finite, in range) is the setting's own check."""
    text = str(value).strip()
    if text.lower() == OFF:
        return OFF
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither a number nor {OFF!r} (no such rule)") from None


def config_option(cls: type, name: str, *flags: str, **kwargs: Any) -> Any:
    """An option for field ``name`` of config ``cls``: unset is None (the field's default applies), the
    help and the default shown are read from the field."""
    return typer.Option(None, *flags, help=field_help(cls, name), show_default=False, **kwargs)


def device_option(default: str = "auto") -> Any:
    """``--device``: where torch runs."""
    return typer.Option(
        default, "--device", parser=parse_device, metavar=DEVICE_METAVAR, help="auto (CUDA when available), cpu, cuda, cuda:N or mps."
    )


def json_option() -> Any:
    """``--json``: the command's result as one JSON object on stdout instead of text."""
    return typer.Option(False, "--json", help="Print the result as one JSON object on stdout instead of text.")


def old_spelling(name: str) -> Any:
    """A hidden option under an old name of ``--label-col`` (still accepted, no longer documented)."""
    return typer.Option(None, name, hidden=True)


def label_col_given(label_col: Optional[str], old: Optional[str], old_name: str) -> Optional[str]:
    """``--label-col``, or the value given under its old spelling ``old_name``; both, differing: an error."""
    if old is not None and label_col is not None and old != label_col:
        raise ParameterError(
            f"--label-col {label_col!r} and {old_name} {old!r} disagree",
            f"options --label-col/{old_name}",
            f"pass only --label-col ({old_name} is its old spelling)",
        )
    return label_col if label_col is not None else old
