"""Atomic file writes shared by checkpoints and run records.

A reader, or a run resumed after a crash, sees either the previous file or the
complete new one, never a prefix: the bytes go to a temporary file in the same
directory (``os.replace`` is atomic only within one file system), are flushed
to disk, and only then renamed over the destination.

A process killed while it writes leaves its temporary file behind (a
checkpoint's size). Each writer holds an exclusive ``flock`` on its temporary
file until the file has its final name, so the next write to the same
destination can tell an abandoned one (no lock, older than
:data:`ABANDONED_AFTER` seconds) from one being written, and removes it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: no flock, so abandoned temporary files stay
    fcntl = None  # type: ignore[assignment]

#: A temporary file younger than this is never taken for abandoned: it may be
#: between its creation and its writer's lock.
ABANDONED_AFTER = 60.0


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``path`` when the ``with`` block ends without error.

    If the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _create_temporary(path)
    try:
        with os.fdopen(handle, "wb") as file:
            if fcntl is not None:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX)  # a new file: nobody else holds it
            yield file
            file.flush()
            os.fsync(file.fileno())
            if fcntl is not None:  # renamed while open, so locked until it has its final name
                os.replace(temporary, path)
        if fcntl is None:  # Windows renames no open file
            os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)
    _remove_abandoned(path)


def _remove_abandoned(path: Path) -> None:
    """Remove the temporary files of writes to ``path`` whose writer died (see the module's docstring)."""
    if fcntl is None:
        return
    for temporary in path.parent.glob(f".{glob.escape(path.name)}.{'[0-9a-f]' * 8}.tmp"):
        try:
            if not stat.S_ISREG(os.lstat(temporary).st_mode):  # a link, a FIFO: not one of ours
                continue
            handle = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # renamed or removed meanwhile
            continue
        try:
            if time.time() - os.fstat(handle).st_mtime < ABANDONED_AFTER:
                continue
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer lives
            if os.path.samestat(os.fstat(handle), os.stat(temporary)):  # still that file
                os.unlink(temporary)
        except OSError:
            continue
        finally:
            os.close(handle)


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
    """Check that a file can be written at ``path``, creating nothing.

    Called before a long run, so that an unwritable output path is reported at
    once rather than after the work is done, and a run refused later (bad
    data, a bad option) leaves no empty folders behind: missing folders are
    made when the file is first written (:func:`atomic_writer` makes them),
    and here the nearest folder that exists must take a new file. Raises
    :class:`OSError` naming the path.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {str(path)!r}: it is a directory")
    existing = next(p for p in path.absolute().parents if os.path.lexists(p))  # the root exists
    try:
        if existing.is_symlink() and not existing.exists():  # mkdir would say only "File exists"
            raise NotADirectoryError(f"{str(existing)!r} is a link to nothing")
        if not existing.is_dir():
            raise NotADirectoryError(f"{str(existing)!r} is a file, not a folder")
        # Creating and removing a scratch file is the only reliable test
        # (os.access ignores read-only mounts and ACLs on some systems).
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except NotADirectoryError as err:
        raise OSError(f"cannot write {str(path)!r}: {err}") from None
    except OSError as err:
        raise OSError(f"cannot write {str(path)!r}: {err.strerror or type(err).__name__}") from None
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
