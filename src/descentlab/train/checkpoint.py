"""Run checkpoints: written atomically, read with ``torch.load(weights_only=True)`` only.

A checkpoint holds everything a run needs to continue as if it had never
stopped: the model's, optimizer's and scheduler's state dicts, the random
generator state the loop uses, the position in the data (epoch, index in that
epoch's order, samples read from a stream, or the stream's own state), the
record so far (as JSON text), and an identity that a resumed run must match.
Only tensors and plain Python values are stored, so ``weights_only=True``
reads it, and no code from the file is ever run.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_writer

FORMAT = "descentlab-run-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (a temporary file, fsync, then rename)."""
    with atomic_writer(path) as file:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, file)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises ValueError naming the file if it is not a readable descentlab run
    checkpoint of this version, FileNotFoundError if it does not exist.
    """
    path = Path(path)
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{str(path)!r} is not a readable run checkpoint ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a descentlab run checkpoint")
    if payload.get("version") != VERSION:
        raise ValueError(
            f"{str(path)!r} is a run checkpoint of version {payload.get('version')}; this "
            f"descentlab reads version {VERSION}"
        )
    return payload
