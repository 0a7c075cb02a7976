"""Run checkpoints: written atomically, read with ``torch.load(weights_only=True)`` only.

A checkpoint holds everything a run needs to continue as if it had never
stopped: the model's, optimizer's and scheduler's state dicts, the random
generator state the loop uses, the position in the data (epoch, index in that
epoch's order, samples read from a stream, or the stream's own state), the
record so far, and an identity that a resumed run must match. Only tensors and
plain Python values are stored, so ``weights_only=True`` reads it, and no code
from the file is ever run.

The record's columns (one entry per update or evaluation) grow with the run,
so rewriting them at every checkpoint would make a run's checkpoints cost the
square of its length. They go to a *columns file* next to the checkpoint
(``<checkpoint>.columns``) instead, to which each checkpoint appends only the
entries added since the previous one, as one line of JSON. The checkpoint
itself, rewritten atomically, keeps the rest of the record and the length of
the columns file that belongs to it: whatever a killed run appended after its
last checkpoint lies beyond that length, and is cut off when the run resumes.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_writer

FORMAT = "descentlab-run-checkpoint"
#: 2: the record's columns live in the columns file; 1 (still read): all in the checkpoint
VERSION = 2
READABLE = (1, 2)
#: What every checkpoint holds (a version 2 one also "columns"; one of a stream "stream")
REQUIRED = ("identity", "model", "optimizer", "rng", "position", "record")


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
    except IsADirectoryError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        # (torch's own advice to load with weights_only=False is not given on: a damaged file stays damaged)
        first = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{str(path)!r} is not a readable run checkpoint (damaged or cut short: {first})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a descentlab run checkpoint")
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"{str(path)!r} is not a complete run checkpoint: it lacks {', '.join(missing)}")
    if payload.get("version") not in READABLE:
        raise ValueError(
            f"{str(path)!r} is a run checkpoint of version {payload.get('version')}; this "
            f"descentlab reads version {VERSION}"
        )
    return payload


def columns_path(path: str | os.PathLike[str]) -> Path:
    """The columns file that belongs to the checkpoint at ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".columns")


def append_columns(path: str | os.PathLike[str], valid: int, chunk: list[list[Any]]) -> int:
    """Cut the columns file at ``valid`` bytes, append ``chunk`` as one line, sync; return its length.

    ``chunk`` holds ``[path, start, values]`` entries: the column at ``path`` from
    index ``start`` on is ``values`` (a column may also have shrunk, when a resumed
    run takes back what the end of the earlier run added).
    """
    line = (json.dumps(chunk, separators=(",", ":")) + "\n").encode()
    file = columns_path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "r+b" if file.exists() else "w+b") as f:
        f.truncate(valid)
        f.seek(valid)
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
        return f.tell()


def read_columns(path: str | os.PathLike[str], length: int) -> dict[tuple[str, ...], list[Any]]:
    """The columns as of the checkpoint at ``path``: the first ``length`` bytes of its columns file."""
    file = columns_path(path)
    if length == 0:
        return {}
    try:
        with open(file, "rb") as f:
            data = f.read(length)
    except FileNotFoundError:
        raise ValueError(f"{str(path)!r} needs its columns file {str(file)!r}, which is missing") from None
    if len(data) != length:
        raise ValueError(
            f"{str(path)!r}: its columns file {str(file)!r} has {len(data)} bytes; the checkpoint "
            f"needs {length}"
        )
    columns: dict[tuple[str, ...], list[Any]] = {}
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            chunk = json.loads(line)
            for key, start, values in chunk:
                column = columns.setdefault(tuple(key), [])
                del column[start:]
                column.extend(values)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"{str(path)!r}: its columns file {str(file)!r} is damaged at line {number} ({err})"
            ) from None
    return columns
