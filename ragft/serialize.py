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
from collections.abc import Callable, Mapping
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
    values = {}
    for name, revive in _plan(cls):
        if name in data:
            value = data[name]
            values[name] = value if revive is None or value is None else revive(value)
    return cls(**values)


_Reviver = Callable[[Any], Any]


@functools.cache
def _plan(cls: type) -> tuple[tuple[str, _Reviver | None], ...]:
    # Worked out once per class: most fields (str, int, float, Literal) need nothing.
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation only importable for type checkers
        hints = {}
    return tuple((f.name, _reviver(hints.get(f.name))) for f in dataclasses.fields(cls))


def _reviver(kind: Any) -> _Reviver | None:
    if kind is None:
        return None
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _reviver(options[0]) if len(options) == 1 else None
    if dataclasses.is_dataclass(kind):
        own = getattr(kind, "from_dict", None)
        build: _Reviver = own if callable(own) else functools.partial(from_record, kind)
        return lambda value: build(value) if isinstance(value, Mapping) else value
    if origin is tuple:
        item = _reviver(args[0]) if len(args) == 2 and args[1] is Ellipsis else None
        if item is None:
            return lambda value: tuple(value) if isinstance(value, list | tuple) else value
        return lambda value: (
            tuple(v if v is None else item(v) for v in value) if isinstance(value, list | tuple) else value
        )
    if origin in (dict, Mapping):
        item = _reviver(args[1]) if len(args) == 2 else None
        if item is None:
            return lambda value: dict(value) if isinstance(value, Mapping) else value
        return lambda value: (
            {k: v if v is None else item(v) for k, v in value.items()} if isinstance(value, Mapping) else value
        )
    return None
