"""Configuration dataclasses: each field has one default and one line of help.

A config class declares its fields with :func:`setting`; the CLI reads each field's help and default
from it (:func:`field_help`) instead of repeating them, a saved model stores ``dataclasses.asdict``
of its configs and reads them back with :func:`from_dict`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any, TypeVar

from mmgene.errors import ParameterError, is_whole_number

C = TypeVar("C")


def setting(default: Any, help: str) -> Any:  # noqa: A002 - the name argparse and typer use
    """A dataclass field with its default and its one-line ``help`` (what it does, in words)."""
    return dataclasses.field(default=default, metadata={"help": help})


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def field_help(cls: type, name: str) -> str:
    """Help text of field ``name`` of ``cls`` with its default, e.g. ``'Training epochs (default: 3.0).'``."""
    field = _fields(cls)[name]
    return f"{field.metadata['help']} (default: {show_value(field.default)})."


def show_value(value: Any) -> str:
    """A default as the CLI shows it: ``none`` (also for an empty text), ``on``, ``500, 1000, 2000``, ``0.3``."""
    if value is None or value == () or value == "":
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return str(value)


def overrides(cls: type[C], given: Mapping[str, Any]) -> C:
    """``cls`` with the values of ``given`` that are not None (options left unset keep the class default)."""
    names = _fields(cls)
    return cls(**{k: v for k, v in given.items() if k in names and v is not None})


def with_settings(config: C, settings: Mapping[str, Any], where: str) -> C:
    """A copy of the frozen dataclass ``config`` with some settings changed by name (checked again by
    its ``__post_init__``); a name it lacks is a ParameterError at ``where``, e.g. ``'annotate(...)'``."""
    names = _fields(type(config))
    wrong = sorted(set(settings) - set(names))
    if wrong:
        what = where.split("(")[0]
        raise ParameterError(f"unknown {what} settings {wrong}", where, f"use one of: {', '.join(sorted(names))}")
    return dataclasses.replace(config, **settings)  # type: ignore[type-var]


def from_dict(cls: type[C], data: Any, where: str) -> C:
    """A config read back from its saved ``asdict`` form; a field added to ``cls`` after the config was
    saved takes its default (older models keep loading), while an unknown field or any other shape is a
    ParameterError at ``where``."""
    names = set(_fields(cls))
    if not isinstance(data, Mapping) or not set(data) <= names:
        got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ParameterError(f"{cls.__name__} has the fields {sorted(names)}, got {got}", where)
    return cls(**data)


def check_whole(value: Any, name: str, where: str, fix: str | None = None, minimum: int = 0) -> None:
    """Raise a ParameterError unless ``value`` is a whole number >= ``minimum`` (a bool is not one)."""
    if not is_whole_number(value, minimum):
        raise ParameterError(f"{name} must be a whole number >= {minimum}, got {value!r}", where, fix)


def check_key(value: Any, where: str, example: str) -> str:
    """``value`` if it can name an obs column or obsm entry that an .h5ad or .zarr file keeps: a non-empty
    string without ``/`` (both formats store a key as a path, so "a/b" is written as a group ``a`` holding
    ``b``, and an empty key corrupts the file), else a ParameterError."""
    if not isinstance(value, str) or not value.strip() or "/" in value:
        raise ParameterError(
            f"{value!r} cannot name an AnnData key: it must be a non-empty name without '/'", where, f"pass e.g. {example!r}"
        )
    return value


def check_share(value: Any, name: str, where: str) -> None:
    """Raise a ParameterError unless ``value`` is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ParameterError(f"{name} must be in [0, 1], got {value!r}", where, "pass a share from 0 to 1, e.g. 0.5")


def check_range(
    value: Any, name: str, where: str, low: float, high: float | None, *, strict: bool = False, fix: str | None = None
) -> float:
    """``value`` as a finite float within ``low``..``high`` (exclusive when ``strict``; no upper bound
    when ``high`` is None), else a ParameterError (``fix`` says what to pass instead)."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)  # numpy numbers too
    inside = number and (value > low if strict else value >= low) and (high is None or (value < high if strict else value <= high))
    if not inside:
        bounds = f"above {low}" if high is None else f"from {low} to {high}" + (" (both excluded)" if strict else "")
        finite = "finite " if isinstance(value, float) and math.isinf(value) else ""
        raise ParameterError(f"{name} must be a {finite}number {bounds}, got {value!r}", where, fix or "pass a number in range")
    return float(value)


def freeze(config: Any, name: str, value: Any) -> None:
    """Set a field of a frozen dataclass during ``__post_init__`` (normalising, e.g. a list to a tuple)."""
    object.__setattr__(config, name, value)
