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
descentlab store, ``user_version`` holds :data:`SCHEMA_VERSION` and the
``meta`` table the :data:`DEFAULTS_VERSION` its run keys were computed
under (a key leaves out the fields left at their defaults, so what it means
depends on them). A file of another schema version, of other defaults,
another application's database or a file that is not SQLite is refused
with a :class:`StoreError` before anything is written to it. A store of
schema version 1 (runs only, written before versions were recorded) is
migrated in place, in one transaction, by adding the ``meta`` table (saying
defaults version 1: its keys are version-1 keys, so its runs stay valid)
and the ``results`` table. A damaged file (a malformed page, a truncated
file) is a one-line :class:`StoreError` naming the command that checks it,
on opening (every page is read then) and from any call that meets the
damage later.

Besides runs, the store keeps results that are not one configuration's run
(a batched experiment's NumPy archive, say): :meth:`Store.put_result`,
:meth:`Store.get_result` and :meth:`Store.result_keys`, with the same
durability and the first write of a key winning.

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
import functools
import hashlib
import inspect
import json
import os
import platform
import shlex
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import _serde
from ..train import RunConfig, RunRecord
from . import analysis

#: The layout of the tables; bumped whenever it changes. Version 1 (runs only)
#: is migrated in place to 2 (runs, results and meta); a store of any other
#: version is refused (never modified).
SCHEMA_VERSION = 2

#: The version of the defaults that give a configuration its meaning (see
#: :func:`defaults_digest`); bumped whenever one of them changes, since a
#: configuration that leaves it out then means another run. It is part of
#: every run key above version 1, and a store written under another version
#: is refused. tests/lab/test_store.py pins each version's digest.
DEFAULTS_VERSION = 1

#: The store's file name inside an output directory (``descentlab-out/lab.sqlite``).
STORE_FILENAME = "lab.sqlite"

# "dlab" in ASCII: SQLite's documented way for a file format to say whose it is.
APPLICATION_ID = 0x646C6162

# Seconds a process waits for another's lock on the store (a commit, or the opening of a new store).
TIMEOUT = 30.0

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

# Added by schema version 2 (and by the migration from version 1).
_SCHEMA_2 = """
CREATE TABLE meta (
    name        TEXT PRIMARY KEY,                   -- defaults_version, created_by
    value       TEXT NOT NULL
);
CREATE TABLE results (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- commit order
    experiment  TEXT NOT NULL,
    key         TEXT NOT NULL,                      -- the experiment's own identifier
    payload     BLOB NOT NULL,                      -- e.g. a NumPy archive of a batched experiment
    meta        TEXT NOT NULL,                      -- JSON object given by the writer
    versions    TEXT NOT NULL,                      -- JSON: descentlab, torch, python, platform
    finished_at REAL NOT NULL,                      -- unix time of the commit
    UNIQUE (experiment, key)
);
"""


class StoreError(ValueError):
    """A file that cannot be used as a store: another version, not a descentlab store, or corrupt."""


def run_key(config: RunConfig, *, defaults_version: int | None = None) -> str:
    """A stable identifier of a configuration: equal configurations, equal keys.

    The SHA-256 of the configuration's canonical JSON: keys sorted, floats
    that are whole numbers written as integers (``lr=1`` and ``lr=1.0`` are
    equal configurations), and fields left at their defaults omitted, so
    that a later descentlab that adds a field with a default still finds the
    runs a store already holds. What the omitted defaults mean is fixed by
    ``defaults_version`` (default :data:`DEFAULTS_VERSION`): version 1 keys
    are the hash of the JSON alone (every store written before versions
    existed holds them), a later version is mixed into the hash, so a key
    never names runs made under other defaults.

    >>> from descentlab.train import RunConfig
    >>> run_key(RunConfig("saddle", "sgd", {"lr": 1})) == run_key(RunConfig("saddle", "sgd", {"lr": 1.0}))
    True
    >>> len(run_key(RunConfig("saddle", "sgd", {"lr": 0.1})))
    64
    """
    version = DEFAULTS_VERSION if defaults_version is None else defaults_version
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"run_key: defaults_version must be an integer >= 1; received {version!r}")
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
    prefix = "" if version == 1 else f"descentlab defaults {version}\n"
    return hashlib.sha256((prefix + text).encode()).hexdigest()


#: Optimizer arguments and problem options added after a defaults version, with the default
#: that does what the optimizers and problems did before they existed: a stored configuration
#: that does not name one means that default, as it always did, so it stays out of the digest
#: while its default is this value (a changed default enters the digest and needs a new version).
_NEUTRAL: dict[str, Any] = {"lean_state": None, "stochastic_rounding": False, "rotated": True}
_ANY = object()


def default_values() -> dict[str, Any]:
    """Every default that a stored configuration's meaning depends on, as plain data.

    The defaults of :class:`~descentlab.train.RunConfig` and of the
    dataclasses it builds (budget, interval, schedule, regimes), each
    registered problem's options (with what its registry entry fixes), each
    surface's start and noise scale (what ``start=None`` and
    ``noise_scale=None`` mean) and each registered optimizer's keyword
    arguments. A change of behaviour that no default shows needs
    :data:`DEFAULTS_VERSION` bumped by hand.
    """
    from ..optim import OPTIMIZERS
    from ..problems import PROBLEMS, SURFACES
    from ..train import Budget, Every, FullBatch, MiniBatch, Online, Schedule

    classes = (RunConfig, Budget, Every, Schedule, FullBatch, MiniBatch, Online)
    config = {cls.__name__: _field_defaults(cls) for cls in classes}
    problems = {}
    for name, factory in PROBLEMS.items():
        fixed = factory.keywords if isinstance(factory, functools.partial) else {}
        cls = factory.func if isinstance(factory, functools.partial) else factory
        options = {**_field_defaults(cls), **fixed}
        problems[name] = _serde.to_data({k: v for k, v in options.items() if _NEUTRAL.get(k, _ANY) != v})
    surfaces = {key: {"start": spec.start, "noise_scale": spec.noise_scale} for key, spec in SURFACES.items()}
    optimizers = {
        name: {
            p.name: p.default
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.default is not inspect.Parameter.empty and _NEUTRAL.get(p.name, _ANY) != p.default
        }
        for name, cls in OPTIMIZERS.items()
    }
    return _serde.to_data(
        {"config": config, "problems": problems, "surfaces": surfaces, "optimizers": optimizers}
    )


def defaults_digest() -> str:
    """The SHA-256 of :func:`default_values`: it changes when any default does (see DEFAULTS_VERSION)."""
    text = json.dumps(_canonical(default_values()), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _field_defaults(cls: type) -> dict[str, Any]:
    """A dataclass's fields that take a default, with it (fields set by ``__post_init__`` left out)."""
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return _serde.to_data(out)


def _statements(script: str) -> list[str]:
    """The SQL statements of ``script``, one each (a semicolon in a comment or string splits nothing)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"an incomplete SQL statement: {pending.strip()!r}")
    return statements


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
            # Read-only first: a file of another version, of other defaults, of another
            # program or a damaged one is refused before this process writes a byte to
            # it (setting WAL mode would); this connection is closed, so the one below
            # starts with no page cached.
            self._check(self._connect(readonly=True), close=True, verify=True)
        self._db = self._connect(readonly=False)
        try:
            with self._sqlite():
                self._open(creating=not exists)
            if create:
                self._check_writable(self._db)
        except BaseException:
            self._db.close()
            raise

    def _open(self, *, creating: bool) -> None:
        """Create (if empty), check, migrate and switch to WAL; again while another process holds the lock.

        Processes opening one store at once contend for its lock, and SQLite
        answers "database is locked" at once, without waiting, where waiting
        could deadlock (a reader promoting its lock, as the switch to WAL does,
        while another holds the write lock). Every step is idempotent, so the
        whole sequence is tried again until the connection's timeout.
        """
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                if creating or self._empty(self._db):
                    self._create(self._db)
                self._check(self._db)
                # FULL makes each commit durable against power loss too, not only
                # against a killed process; one fsync per run is nothing next to training it.
                self._db.execute("PRAGMA synchronous = FULL")
                self._migrate(self._db)
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as err:
                busy = getattr(err, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

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
            db = sqlite3.connect(
                uri, uri=True, isolation_level=None, timeout=TIMEOUT, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise OSError(f"cannot open store {str(self.path)!r}: {err}") from None
        return db

    def _fail(self, reason: str) -> StoreError:
        return StoreError(f"{str(self.path)!r} {reason}")

    def _damaged(self, reason: str) -> StoreError:
        path = str(self.path)
        return self._fail(
            f"is damaged (SQLite: {reason}); check it with: sqlite3 {shlex.quote(path)} "
            '"PRAGMA integrity_check"'
        )

    @contextlib.contextmanager
    def _sqlite(self, *, opening: bool = False) -> Iterator[None]:
        """Turn SQLite's errors into one-line ones that name this store (no traceback reaches a user)."""
        try:
            yield
        except sqlite3.DatabaseError as err:
            reason = " ".join(str(err).split())
            name = getattr(err, "sqlite_errorname", "")
            if name.startswith("SQLITE_CORRUPT") or "malformed" in reason:
                raise self._damaged(reason) from None
            if opening:
                raise self._fail(f"is not a descentlab store (SQLite says: {reason})") from None
            # Locked past the timeout, disk full, an I/O error: the machine's trouble, not the store's.
            raise OSError(f"store {str(self.path)!r}: SQLite: {reason}") from None

    def _empty(self, db: sqlite3.Connection) -> bool:
        # A file is empty only if nothing marked it: another program may set its
        # user_version (or application_id) before creating its first table.
        tables = db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        marks = (
            db.execute("PRAGMA application_id").fetchone()[0],
            db.execute("PRAGMA user_version").fetchone()[0],
        )
        return tables == 0 and marks == (0, 0)

    def _check_writable(self, db: sqlite3.Connection) -> None:
        """Refuse, before any run is trained, a store this process cannot commit to.

        SQLite opens a file it may not write (permissions, an immutable file, a
        read-only file system) read-only without a word, and says so only at the
        first commit: a sweep would lose its first run. BEGIN IMMEDIATE alone
        succeeds on such a file in WAL mode, so a page is changed (user_version
        set to itself) and rolled back: nothing reaches the file.
        """
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                db.execute(f"PRAGMA user_version = {int(version)}")
            finally:
                db.execute("ROLLBACK")
        except sqlite3.DatabaseError as err:
            reason = " ".join(str(err).split())
            raise OSError(f"store {str(self.path)!r} cannot be written (SQLite: {reason})") from None

    def _check(self, db: sqlite3.Connection, *, close: bool = False, verify: bool = False) -> None:
        """Refuse what this descentlab cannot use; ``verify`` also reads every page (a damaged file)."""
        try:
            with self._sqlite(opening=True):
                app = db.execute("PRAGMA application_id").fetchone()[0]
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if self._empty(db):
                    return
                if app == 0 and not db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]:
                    raise self._fail(
                        f"is an SQLite database with no tables but user_version {version}, which "
                        "another program set: not a descentlab store (use another file)"
                    )
                if app != APPLICATION_ID:
                    raise self._fail("is an SQLite database of another program, not a descentlab store")
                if version not in (1, SCHEMA_VERSION):
                    raise self._fail(
                        f"was written with store schema version {version}; this descentlab reads version "
                        f"{SCHEMA_VERSION} (use a new store, or the descentlab that wrote it)"
                    )
                # quick_check reads every page (not the index-to-table cross-checks of
                # integrity_check): a malformed page is found here, not half-way through a sweep.
                if verify and db.execute("PRAGMA quick_check(1)").fetchall() != [("ok",)]:
                    raise self._damaged("database disk image is malformed")
                self._check_defaults(db, version)
        finally:
            if close:
                db.close()

    def _check_defaults(self, db: sqlite3.Connection, schema: int) -> None:
        if schema == 1:
            written, by = 1, None  # before versions were recorded, keys were version-1 keys
        else:
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            try:
                written = int(meta["defaults_version"])
            except (KeyError, ValueError):
                names = sorted(meta)
                raise self._fail(f"records no defaults version (its meta table holds {names})") from None
            by = meta.get("created_by")
        if written != DEFAULTS_VERSION:
            from .. import __version__

            writer = f"descentlab {by}" if by else "the descentlab that wrote it"
            raise self._fail(
                f"was written under defaults version {written}"
                f"{f' (by descentlab {by})' if by else ''}; this descentlab ({__version__}) uses defaults "
                f"version {DEFAULTS_VERSION}, under which its runs would mean other configurations: "
                f"use a new --out directory (or --store file), or {writer} to read it"
            )

    def _create(self, db: sqlite3.Connection) -> None:
        """Create the tables in a file found empty, unless another process did so first.

        One transaction: a process killed here leaves an empty file, which is
        created again next time. Emptiness is decided again under the write
        lock: processes that open a new store at once all found it empty, and
        only the first to take the lock creates it (the others then open it).
        """
        from .. import __version__

        db.execute("BEGIN IMMEDIATE")
        try:
            if self._empty(db):
                # Statement by statement: executescript would commit the open transaction first.
                for statement in _statements(f"{_SCHEMA}\n{_SCHEMA_2}"):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO meta (name, value) VALUES ('defaults_version', ?), ('created_by', ?)",
                    (str(DEFAULTS_VERSION), __version__),
                )
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the error being raised says what went wrong
                    db.execute("ROLLBACK")
            raise

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring a store of schema version 1 (runs only) to :data:`SCHEMA_VERSION`, in one transaction.

        Version 1 stores hold version-1 run keys (today's keys), so their runs
        stay valid: the migration only adds the meta table, saying defaults
        version 1, and the results table. Every statement is idempotent, so
        two processes that both found version 1 migrate it once between them.
        """
        if db.execute("PRAGMA user_version").fetchone()[0] != 1:
            return
        self._script(
            db,
            f"{_SCHEMA_2.replace('CREATE TABLE', 'CREATE TABLE IF NOT EXISTS')}; "
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('defaults_version', '1'); "
            f"PRAGMA user_version = {SCHEMA_VERSION};",
        )

    @staticmethod
    def _script(db: sqlite3.Connection, statements: str) -> None:
        try:
            db.executescript(f"BEGIN IMMEDIATE; {statements} COMMIT;")
        except sqlite3.DatabaseError:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._sqlite():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    # The error being raised says what went wrong; a failed rollback would hide it.
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

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
        with self._transaction():
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

    def put_result(
        self, experiment: str, key: str, payload: bytes, *, meta: dict[str, Any] | None = None
    ) -> bool:
        """Commit a result that is not one configuration's run; False (nothing written) if its key is stored.

        For experiments computed as one batch (many 2-D runs as one tensor):
        ``payload`` is their bytes (a NumPy archive, say), ``key`` the
        experiment's own identifier of them and ``meta`` a JSON object kept
        beside them. The first write of (experiment, key) wins, as with
        :meth:`add`; one transaction, on disk when this returns, stamped with
        this process's versions.
        """
        for name, value in (("experiment", experiment), ("key", key)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"Store.put_result: {name} must be a non-empty string; received {value!r}")
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise ValueError(f"Store.put_result: payload must be bytes; received a {type(payload).__name__}")
        if meta is not None and not isinstance(meta, dict):
            kind = type(meta).__name__
            raise ValueError(f"Store.put_result: meta must be a dict or None; received a {kind}")
        try:
            meta_json = json.dumps(meta or {}, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Store.put_result: meta must hold JSON values only ({err})") from None
        stamp = json.dumps(versions(), sort_keys=True)
        row = (experiment, key, bytes(payload), meta_json, stamp, time.time())
        with self._transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO results (experiment, key, payload, meta, versions, finished_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
        return cursor.rowcount == 1

    # -- reading ---------------------------------------------------------------------------

    def keys(self, experiment: str | None = None) -> set[str]:
        """The keys of the runs stored (under ``experiment``, or under any)."""
        where, args = self._where(experiment)
        with self._sqlite():
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
        """The experiments in the store that have runs, in the order of their first commit."""
        with self._sqlite():
            rows = self._db.execute("SELECT experiment FROM runs GROUP BY experiment ORDER BY min(id)")
            return [name for (name,) in rows]

    def get_result(self, experiment: str, key: str) -> bytes | None:
        """The payload that :meth:`put_result` stored under (experiment, key); None if there is none."""
        with self._sqlite():
            row = self._db.execute(
                "SELECT payload FROM results WHERE experiment = ? AND key = ?", (experiment, key)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def result_keys(self, experiment: str | None = None) -> set[str]:
        """The keys of the results stored by :meth:`put_result` (under ``experiment``, or under any)."""
        where, args = self._where(experiment)
        with self._sqlite():
            return {key for (key,) in self._db.execute(f"SELECT key FROM results {where}", args)}

    def __len__(self) -> int:
        """The number of runs (results stored by :meth:`put_result` not counted)."""
        with self._sqlite():
            return self._db.execute("SELECT count(*) FROM runs").fetchone()[0]

    def _where(self, experiment: str | None) -> tuple[str, list[Any]]:
        return ("", []) if experiment is None else ("WHERE experiment = ?", [experiment])

    def _read(self, clause: str, args: list[Any]) -> Iterator[StoredRun]:
        with self._sqlite():
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
