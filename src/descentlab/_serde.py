"""Lossless JSON for the typed dataclasses that cross module and process boundaries.

Run configurations and records go to files, to worker processes and (later) to
the lab's store, so they must come back exactly: every float keeps its bits
(Python writes the shortest repr that reads back to the same double), a tuple
comes back as a tuple, a nested dataclass as that dataclass. Decoding is
driven by the dataclass's type hints, so the JSON itself stays plain.

Strict JSON has no NaN or infinity, yet a diverged run's loss is one, so
non-finite floats are written as the strings ``"nan"``, ``"inf"`` and
``"-inf"`` and read back where the type says ``float``.

>>> from dataclasses import dataclass
>>> @dataclass
... class Point:
...     x: float
...     tags: tuple[str, ...] = ()
>>> to_json(Point(float("inf"), ("a",)))
'{"x": "inf", "tags": ["a"]}'
>>> from_json(Point, '{"x": "inf", "tags": ["a"]}')
Point(x=inf, tags=('a',))
"""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import math
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def to_data(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, numbers, booleans, None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict | types.MappingProxyType):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"cannot write a {type(value).__name__} as JSON: {value!r}")


def to_json(value: Any, indent: int | None = None) -> str:
    """``value`` (a dataclass) as strict JSON text."""
    return json.dumps(to_data(value), indent=indent, allow_nan=False)


def from_json(cls: type[T], text: str) -> T:
    """The ``cls`` instance that :func:`to_json` wrote as ``text``.

    Raises ValueError for text that is not JSON or does not fit ``cls``.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON: {err}") from None
    return from_data(cls, data)


def from_data(hint: Any, data: Any, where: str = "") -> Any:
    """Rebuild a value of type ``hint`` from plain JSON data."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return data
    if dataclasses.is_dataclass(hint):
        return _dataclass(hint, data, where)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return from_data(option, data, where)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError(errors[0] if errors else f"{where or 'value'}: expected one of {args}")
    if origin is typing.Literal:
        if data not in args:
            raise ValueError(f"{where or 'value'}: expected one of {list(args)}; found {data!r}")
        return data
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(data, list):
            raise ValueError(f"{where or 'value'}: expected a list; found {data!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(data):
                raise ValueError(f"{where or 'value'}: expected {len(args)} items; found {len(data)}")
            return tuple(
                from_data(a, d, f"{where}[{i}]") for i, (a, d) in enumerate(zip(args, data, strict=True))
            )
        item = args[0] if args else Any
        # Records hold millions of numbers: read plain ones without the per-item dispatch below,
        # which still reads anything else and reports a bad item with its position.
        items = _numbers(item, data)
        if items is None:
            items = [from_data(item, d, f"{where}[{i}]") for i, d in enumerate(data)]
        return tuple(items) if (origin is tuple or hint is tuple) else items
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        if not isinstance(data, dict):
            raise ValueError(f"{where or 'value'}: expected an object; found {data!r}")
        value_hint = args[1] if args else Any
        return {k: from_data(value_hint, v, f"{where}.{k}") for k, v in data.items()}
    if hint is float:
        if isinstance(data, str) and data in _NONFINITE:
            return _NONFINITE[data]
        if isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
    elif hint is int or hint is str or hint is bool:
        if type(data) is hint:
            return data
    elif hint is type(None):
        if data is None:
            return None
    else:
        raise TypeError(f"{where or 'value'}: cannot read type {hint!r} from JSON")
    raise ValueError(f"{where or 'value'}: expected {getattr(hint, '__name__', hint)}; found {data!r}")


def _numbers(item: Any, data: list[Any]) -> list[Any] | None:
    """``data`` as a list of ``item`` (float or int) in one pass; None if an item needs the general path."""
    if item is int:
        return list(data) if all(type(d) is int for d in data) else None
    if item is not float:
        return None
    out = []
    for d in data:
        kind = type(d)
        if kind is float:
            out.append(d)
        elif kind is int:
            out.append(float(d))
        elif kind is str and d in _NONFINITE:
            out.append(_NONFINITE[d])
        else:
            return None
    return out


def _dataclass(cls: Any, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected an object; found {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown field(s) {', '.join(unknown)}")
    kwargs = {
        name: from_data(hints[name], value, f"{where}.{name}" if where else name)
        for name, value in data.items()
    }
    return cls(**kwargs)
