"""Atomic file writes shared by checkpoints and run records.

A reader, or a run resumed after a crash, sees either the previous file or the
complete new one, never a prefix: the bytes go to a temporary file in the same
directory (``os.replace`` is atomic only within one file system), are flushed
to disk, and only then renamed over the destination.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``path`` when the ``with`` block ends without error.

    If the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    handle, temporary = _create_temporary(path)
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new file beside ``path``, open for writing, with the mode any new file gets there.

    Like ``tempfile.mkstemp``, but mkstemp makes the file private (0600),
    and the destination would keep that mode; created with 0666, the
    process's umask applies as for any other file it writes.
    """
    for _ in range(100):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(temporary)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {str(path)!r}")


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_writer(path) as file:
        file.write(text.encode("utf-8"))


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Create ``path``'s directory if needed and check that a file can be written there.

    Called before a long run, so that an unwritable output path is reported at
    once rather than after the work is done. Raises :class:`OSError` naming the
    path; creates nothing but missing parent directories.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {str(path)!r}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Creating and removing a scratch file is the only reliable test
        # (os.access ignores read-only mounts and ACLs on some systems).
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        blocker = next((p for p in path.parents if p.is_file()), None)  # mkdir says only "File exists"
        if blocker is not None:
            reason = f"{str(blocker)!r} is a file, not a folder"
        raise OSError(f"cannot write {str(path)!r}: {reason}") from None
    return path


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
