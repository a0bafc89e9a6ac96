"""Dataclass values to JSON-ready dicts and back: the one way every record ragft writes (ledger
lines, job state, the model registry, index chunks, evaluation results) is shaped.

:func:`to_record` writes every field under its name: nested dataclasses through their own
``to_dict`` (or recursively), tuples and lists as lists, mappings as dicts, dates as ISO text.
:func:`from_record` reads one back from the field annotations: it keeps only the keys that are
fields (so a file written by an older or newer version still loads, see :func:`known_fields`),
rebuilds nested dataclasses through their own ``from_dict`` (or recursively) and turns lists
back into the tuples the fields declare. A class's ``to_dict``/``from_dict`` adds to these only
what is its own (a derived figure, a format marker).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["from_record", "known_fields", "to_record"]

_T = TypeVar("_T")


def known_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that are fields of the dataclass ``cls``: loading a persisted
    record this way ignores keys a newer (or older) version wrote, so old files stay readable."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def to_record(value: Any) -> dict[str, Any]:
    """The JSON-ready dict of the dataclass instance ``value``, one key per field, in field
    order."""
    return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        own = getattr(value, "to_dict", None)
        return own() if callable(own) else to_record(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def from_record(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """An instance of the dataclass ``cls`` from a dict :func:`to_record` wrote. Keys that are
    not fields are ignored and missing ones take the field's default (a missing required field
    raises :class:`TypeError`)."""
    hints = _field_types(cls)
    values = {name: _revive(hints.get(name), item) for name, item in known_fields(cls, data).items()}
    return cls(**values)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation only importable for type checkers
        return {}


def _revive(kind: Any, value: Any) -> Any:
    if kind is None or value is None:
        return value
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _revive(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
        own = getattr(kind, "from_dict", None)
        return own(value) if callable(own) else from_record(kind, value)  # type: ignore[arg-type]
    if origin is tuple and isinstance(value, list | tuple):
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return tuple(_revive(item, v) for v in value)
    if origin in (dict, Mapping) and isinstance(value, Mapping):
        item = args[1] if len(args) == 2 else None
        return {key: _revive(item, v) for key, v in value.items()}
    return value
