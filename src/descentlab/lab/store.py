"""The lab's result store: every run of every sweep and experiment, in one SQLite file that loses nothing.

Only the driver of a sweep writes (workers send their results to it), so
the store needs no locking of its own. Each finished run is one row,
committed in one transaction with its full configuration, its record (all
the curves), the status, the error of a failed run, and the versions that
produced it. The database is in WAL mode with ``synchronous=FULL``: a commit
is on disk when :meth:`Store.add` returns, and a process killed at any
moment, SIGKILL included, leaves the store as it was after its last commit
(SQLite rolls back the half-written transaction when the file is next
opened). A sweep run again with the same configurations finds their keys
and runs only the missing ones.

The file identifies itself: SQLite's ``application_id`` says it is a
descentlab store and ``user_version`` holds :data:`SCHEMA_VERSION`. A file
of another version, another application's database or a corrupt file is
refused with a :class:`StoreError` before anything is written to it.

>>> import tempfile, os
>>> from descentlab.train import Budget, RunConfig, run
>>> config = RunConfig("saddle", "sgd", {"lr": 0.1}, regime="full-batch", budget=Budget(steps=5))
>>> with tempfile.TemporaryDirectory() as folder, Store(os.path.join(folder, "lab.sqlite")) as store:
...     store.add(StoredRun.finished(config, run(config), experiment="demo"))
...     [(r.experiment, r.status, r.record.updates) for r in store.runs()]
True
[('demo', 'finished', 5)]
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import _serde
from ..train import RunConfig, RunRecord
from . import analysis

#: The layout of the tables; bumped whenever it changes. A store of another
#: version is refused (never migrated silently, never modified).
SCHEMA_VERSION = 1

#: The store's file name inside an output directory (``descentlab-out/lab.sqlite``).
STORE_FILENAME = "lab.sqlite"

# "dlab" in ASCII: SQLite's documented way for a file format to say whose it is.
APPLICATION_ID = 0x646C6162

STATUSES: tuple[str, ...] = ("finished", "diverged", "failed")
Status = Literal["finished", "diverged", "failed"]

_SCHEMA = f"""
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- commit order
    experiment  TEXT NOT NULL,
    key         TEXT NOT NULL,                      -- run_key(config)
    problem     TEXT NOT NULL,                      -- copied out of config, for queries by hand
    optimizer   TEXT NOT NULL,
    seed        INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    config      TEXT NOT NULL,                      -- RunConfig JSON
    record      TEXT,                               -- RunRecord JSON; NULL for a failed run
    error       TEXT,                               -- 'Type: message' of a failed run
    versions    TEXT NOT NULL,                      -- JSON: descentlab, torch, python, platform
    finished_at REAL NOT NULL,                      -- unix time of the commit
    UNIQUE (experiment, key)
);
CREATE INDEX runs_by_problem ON runs (experiment, problem, optimizer);
"""


class StoreError(ValueError):
    """A file that cannot be used as a store: another version, not a descentlab store, or corrupt."""


def run_key(config: RunConfig) -> str:
    """A stable identifier of a configuration: equal configurations, equal keys.

    The SHA-256 of the configuration's canonical JSON: keys sorted, floats
    that are whole numbers written as integers (``lr=1`` and ``lr=1.0`` are
    equal configurations), and fields left at their defaults omitted, so
    that a later descentlab that adds a field with a default still finds the
    runs a store already holds.

    >>> from descentlab.train import RunConfig
    >>> run_key(RunConfig("saddle", "sgd", {"lr": 1})) == run_key(RunConfig("saddle", "sgd", {"lr": 1.0}))
    True
    >>> len(run_key(RunConfig("saddle", "sgd", {"lr": 0.1})))
    64
    """
    data = _serde.to_data(config)
    for f in dataclasses.fields(RunConfig):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue
        if data[f.name] == _serde.to_data(default):
            del data[f.name]
    text = json.dumps(_canonical(data), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _canonical(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_canonical(v) for v in data]
    if isinstance(data, float) and data.is_integer() and abs(data) < 2**53:
        return int(data)
    return data


def versions() -> dict[str, str]:
    """The versions that produce a run in this process: descentlab, torch, Python and the platform."""
    import torch

    from .. import __version__

    return {
        "descentlab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


@dataclass(frozen=True)
class StoredRun:
    """One run as the store keeps it.

    ``status`` is ``"finished"``, ``"diverged"`` (the record says where) or
    ``"failed"`` (an exception: ``record`` is None and ``error`` holds
    ``'Type: message'`` on one line). ``versions`` are those of the process
    that trained the run; ``finished_at`` the unix time at which the driver
    committed it.
    """

    key: str
    experiment: str
    config: RunConfig
    status: Status
    record: RunRecord | None = field(repr=False)  # thousands of numbers; the config says what ran
    error: str | None
    versions: dict[str, str] = field(default_factory=dict)
    finished_at: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"StoredRun: status must be one of {', '.join(STATUSES)}; received status={self.status!r}"
            )
        if (self.record is None) != (self.status == "failed"):
            raise ValueError("StoredRun: a failed run has no record and every other run has one")
        if not isinstance(self.experiment, str) or not self.experiment:
            raise ValueError(f"StoredRun: experiment must be a non-empty name; received {self.experiment!r}")

    @classmethod
    def finished(cls, config: RunConfig, record: RunRecord, *, experiment: str) -> StoredRun:
        """A run trained in this process, stamped with this process's versions and the time now."""
        return cls(
            key=run_key(config),
            experiment=experiment,
            config=config,
            status="diverged" if record.diverged else "finished",
            record=record,
            error=None,
            versions=versions(),
            finished_at=time.time(),
        )

    @property
    def final_held_out_loss(self) -> float:
        """The run's final held-out loss; infinity for a failed or diverged run (what ranks last)."""
        return analysis.final_loss(self.record)


class Store:
    """An SQLite file holding runs, keyed by (experiment, :func:`run_key`); see the module docstring.

    A new store's missing parent directories are created; ``create=False``
    refuses a path where no store exists yet (for readers such as
    ``descentlab report``). Also a context manager that closes it.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{str(self.path)!r} is a directory, not a store file")
        exists = self.path.exists() and self.path.stat().st_size > 0
        if not exists and not create:
            raise StoreError(f"no descentlab store at {str(self.path)!r}")
        if not exists:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                folder = str(self.path.parent)
                raise OSError(f"cannot create store {str(self.path)!r}: {folder!r} is not a folder") from None
            except OSError as err:
                reason = err.strerror or type(err).__name__
                raise OSError(f"cannot create store {str(self.path)!r}: {reason}") from None
        if exists:
            # Read-only first: a file of another version or another program is
            # refused before this process writes a byte to it (setting WAL mode would).
            self._check(self._connect(readonly=True), close=True)
        self._db = self._connect(readonly=False)
        try:
            if not exists or self._empty(self._db):
                self._create(self._db)
            self._check(self._db)
            self._db.execute("PRAGMA journal_mode = WAL")
            # FULL makes each commit durable against power loss too, not only
            # against a killed process; one fsync per run is nothing next to training it.
            self._db.execute("PRAGMA synchronous = FULL")
        except BaseException:
            self._db.close()
            raise

    # -- opening ---------------------------------------------------------------------------

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        if not readonly:
            mode = "mode=rwc"
        elif Path(f"{self.path}-wal").exists():
            mode = "mode=ro"  # the log may hold committed pages the main file lacks
        else:
            # Without a log the file is the whole truth; immutable makes SQLite create
            # nothing beside it (a read-only WAL reader would leave -shm and -wal files).
            mode = "immutable=1"
        uri = f"{self.path.absolute().as_uri()}?{mode}"
        try:
            # isolation_level=None: transactions are the explicit BEGIN/COMMIT below, not sqlite3's guesses.
            db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30, check_same_thread=False)
        except sqlite3.Error as err:
            raise OSError(f"cannot open store {str(self.path)!r}: {err}") from None
        return db

    def _fail(self, reason: str) -> StoreError:
        return StoreError(f"{str(self.path)!r} {reason}")

    def _empty(self, db: sqlite3.Connection) -> bool:
        tables = db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        return tables == 0 and db.execute("PRAGMA application_id").fetchone()[0] == 0

    def _check(self, db: sqlite3.Connection, close: bool = False) -> None:
        try:
            app = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            empty = self._empty(db)
        except sqlite3.DatabaseError as err:
            raise self._fail(f"is not a descentlab store (SQLite says: {err})") from None
        finally:
            if close:
                db.close()
        if empty:
            return
        if app != APPLICATION_ID:
            raise self._fail("is an SQLite database of another program, not a descentlab store")
        if version != SCHEMA_VERSION:
            raise self._fail(
                f"was written with store schema version {version}; this descentlab reads version "
                f"{SCHEMA_VERSION} (use a new store, or the descentlab that wrote it)"
            )

    def _create(self, db: sqlite3.Connection) -> None:
        # One transaction: a process killed here leaves an empty file, which is created again next time.
        script = (
            f"BEGIN IMMEDIATE; {_SCHEMA}; PRAGMA application_id = {APPLICATION_ID}; "
            f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        )
        try:
            db.executescript(script)
        except sqlite3.DatabaseError as err:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OSError(f"cannot create store {str(self.path)!r}: {err}") from None

    @staticmethod
    @contextlib.contextmanager
    def _transaction(db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- writing ---------------------------------------------------------------------------

    def add(self, run: StoredRun, *, replace_failed: bool = False) -> bool:
        """Commit ``run`` in one transaction; False (and nothing written) if its (experiment, key) is stored.

        With ``replace_failed``, a stored run of that key whose status is
        ``"failed"`` is replaced by ``run`` in the same transaction (a retry:
        killed half-way, the store still holds the failure). When this
        returns, the run is on disk.
        """
        config = run.config
        row = (
            run.experiment,
            run.key,
            config.problem,
            config.optimizer,
            config.seed,
            run.status,
            config.to_json(),
            run.record.to_json() if run.record is not None else None,
            run.error,
            json.dumps(run.versions, sort_keys=True),
            run.finished_at,
        )
        with self._transaction(self._db):
            if replace_failed:
                self._db.execute(
                    "DELETE FROM runs WHERE experiment = ? AND key = ? AND status = 'failed'",
                    (run.experiment, run.key),
                )
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO runs (experiment, key, problem, optimizer, seed, status, config, "
                "record, error, versions, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        return cursor.rowcount == 1

    # -- reading ---------------------------------------------------------------------------

    def keys(self, experiment: str | None = None) -> set[str]:
        """The keys of the runs stored (under ``experiment``, or under any)."""
        where, args = self._where(experiment)
        return {key for (key,) in self._db.execute(f"SELECT key FROM runs {where}", args)}

    def runs(self, experiment: str | None = None) -> list[StoredRun]:
        """The runs stored (under ``experiment``, or all), in the order they were committed."""
        where, args = self._where(experiment)
        return list(self._read(f"{where} ORDER BY id", args))

    def get(self, experiment: str, keys: Iterable[str]) -> dict[str, StoredRun]:
        """The runs of ``experiment`` with the given keys, by key (those not stored are absent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, StoredRun] = {}
        # SQLite limits the number of parameters in one statement; ask in slices.
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ", ".join("?" * len(part))
            for run in self._read(f"WHERE experiment = ? AND key IN ({marks})", [experiment, *part]):
                found[run.key] = run
        return found

    def experiments(self) -> list[str]:
        """The experiments in the store, in the order of their first commit."""
        rows = self._db.execute("SELECT experiment FROM runs GROUP BY experiment ORDER BY min(id)")
        return [name for (name,) in rows]

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM runs").fetchone()[0]

    def _where(self, experiment: str | None) -> tuple[str, list[Any]]:
        return ("", []) if experiment is None else ("WHERE experiment = ?", [experiment])

    def _read(self, clause: str, args: list[Any]) -> Iterator[StoredRun]:
        rows = self._db.execute(
            "SELECT id, key, experiment, config, status, record, error, versions, finished_at "
            f"FROM runs {clause}",
            args,
        ).fetchall()
        for row_id, key, experiment, config, status, record, error, versions_json, finished_at in rows:
            try:
                yield StoredRun(
                    key=key,
                    experiment=experiment,
                    config=RunConfig.from_json(config),
                    status=status,
                    record=RunRecord.from_json(record) if record is not None else None,
                    error=error,
                    versions=json.loads(versions_json),
                    finished_at=finished_at,
                )
            except (ValueError, TypeError) as err:
                raise self._fail(f"holds run {row_id} that this descentlab cannot read: {err}") from None

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"
