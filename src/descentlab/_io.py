"""Files written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def writable_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, after checking that its directory exists and can be written to.

    Checked before long work starts, so that a bad path fails at once.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write {path}: the directory {parent} is not writable")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = writable_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
