"""Hyperparameter validation: one helper per kind of value, one message format.

Every message names the optimizer and the argument, states the rule and echoes
the value received, for example::

    Adam: betas[0] must be a finite number in [0, 1); received betas[0]=1.2

Range errors and refused combinations raise :class:`OptionError` (a
:class:`ValueError` that also says which rule, with which values, for a caller
that words the refusal itself, as the playground does in Chinese), wrong types
:class:`TypeError`. The checks run before anything is stored, so a rejected
argument leaves the optimizer (or the group being added, or the state being
loaded) unchanged.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch

from .._registry import closest

INF = math.inf


class OptionError(ValueError):
    """A hyperparameter out of its range (``rule="range"``: ``values`` has ``name``, ``interval``
    and ``value``), or a combination the optimizer refuses (``rule`` names it, e.g.
    ``"nesterov_momentum"``; ``values`` holds the options it involves)."""

    __module__ = "descentlab.optim"  # where it is imported from, and how a traceback names it

    def __init__(self, message: str, rule: str, **values: object) -> None:
        super().__init__(message)
        self.rule = rule
        self.values = values

    def __reduce__(self) -> tuple[object, ...]:
        # pickled whole (a sweep's worker process sends its errors back to the driver)
        return (type(self), (str(self), self.rule), {"values": self.values})


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open else "["
    right = ")" if high_open or high == INF else "]"
    return f"{left}{low:g}, {'inf' if high == INF else f'{high:g}'}{right}"


def as_float(owner: str, name: str, value: object) -> float:
    """``value`` as a float: a real number or a 1-element floating tensor.

    A tensor is read once here, at construction; the optimizer keeps the
    tensor itself so that later in-place changes (``lr.fill_(...)``) count.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{owner}: {name} given as a tensor must have exactly one element; "
                f"received a tensor of shape {tuple(value.shape)}"
            )
        if not value.is_floating_point():
            raise TypeError(
                f"{owner}: {name} given as a tensor must be floating point; received dtype {value.dtype}"
            )
        return float(value.detach().reshape(()).item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{owner}: {name} must be a real number; received {name}={value!r} ({type(value).__name__})"
        )
    return float(value)


def in_range(
    owner: str,
    name: str,
    value: object,
    low: float = 0.0,
    high: float = INF,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a finite number in the interval; return it as a float."""
    x = as_float(owner, name, value)
    above = x > low if low_open else x >= low
    below = x < high if high_open else x <= high
    if not (math.isfinite(x) and above and below):
        interval = _interval(low, high, low_open, high_open)
        raise OptionError(
            f"{owner}: {name} must be a finite number in {interval}; received {name}={value!r}",
            "range",
            name=name,
            interval=interval,
            value=repr(value),
        )
    return x


def flag(owner: str, name: str, value: object) -> bool:
    """Check that ``value`` is a bool (``0``/``1`` and strings are refused)."""
    if not isinstance(value, bool):
        raise TypeError(
            f"{owner}: {name} must be True or False; received {name}={value!r} ({type(value).__name__})"
        )
    return value


def optional_flag(owner: str, name: str, value: object) -> bool | None:
    """Check that ``value`` is True, False or None (torch's tri-state flags)."""
    if value is None:
        return None
    return flag(owner, name, value)


def choice(owner: str, name: str, value: object, options: Iterable[str]) -> str:
    """Check that ``value`` is one of ``options``; suggest the closest otherwise."""
    options = list(options)
    if isinstance(value, str) and value in options:
        return value
    hint = closest(value, options) if isinstance(value, str) else []
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ValueError(
        f"{owner}: {name} must be one of {', '.join(repr(o) for o in options)}; "
        f"received {name}={value!r}{suggestion}"
    )


def pair(owner: str, name: str, value: object) -> tuple[object, object]:
    """Check that ``value`` is a sequence of exactly two items (Adam's ``betas``)."""
    if isinstance(value, (str, bytes, torch.Tensor)) or not isinstance(value, Iterable):
        raise TypeError(f"{owner}: {name} must be a pair (a, b); received {name}={value!r}")
    items = tuple(value)
    if len(items) != 2:
        raise ValueError(
            f"{owner}: {name} must be a pair (a, b); received {len(items)} values: {name}={value!r}"
        )
    return items


def floating_dtype(owner: str, name: str, value: object) -> torch.dtype | None:
    """Check that ``value`` is None or a floating-point ``torch.dtype``."""
    if value is None or (isinstance(value, torch.dtype) and value.is_floating_point):
        return value
    raise ValueError(
        f"{owner}: {name} must be a floating-point torch.dtype (e.g. torch.float32) or None; "
        f"received {name}={value!r}"
    )
