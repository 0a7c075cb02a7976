"""Name lookup shared by every registry (optimizers, problems, methods).

One helper so that every unknown name, wherever it is typed, gets the same
message: what kind of thing was asked for, the closest known names, and the
full list.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


class UnknownNameError(LookupError, ValueError):
    """A name that is not in a registry; the message suggests the closest names."""


def closest(name: str, known: list[str], n: int = 3) -> list[str]:
    """The known names closest to ``name``, best first (possibly none)."""
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def lookup(kind: str, name: str, table: Mapping[str, T]) -> T:
    """``table[name]``, or an :class:`UnknownNameError` naming the closest entries.

    >>> lookup("optimizer", "adam", {"adam": 1, "adamw": 2})
    1
    >>> lookup("optimizer", "sdg", {"sgd": 1, "adam": 2})
    Traceback (most recent call last):
    ...
    descentlab._registry.UnknownNameError: unknown optimizer 'sdg'; did you mean 'sgd'? (known: sgd, adam)
    """
    if isinstance(name, str) and name in table:
        return table[name]
    known = list(table)
    hint = closest(name, known) if isinstance(name, str) else []
    suggestion = f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
    raise UnknownNameError(f"unknown {kind} {name!r}{suggestion} (known: {', '.join(known)})")
