"""Stores opened by several processes at once, and store files this process cannot write.

Real processes and real SQLite files: the races are between processes, and
what SQLite does with a file it cannot write is SQLite's (not a mock's) behaviour.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from descentlab.cli import main
from descentlab.lab import Store, StoreError


def _open_at_once(path: str, barrier, results) -> None:
    barrier.wait()  # every process reaches Store() together: the creation races
    try:
        with Store(path) as store:
            results.put(("ok", len(store)))
    except BaseException as err:  # reported to the test, which shows it
        results.put((type(err).__name__, str(err)))


@pytest.mark.skipif(sys.platform != "linux", reason="forks processes (fast, and a barrier is inherited)")
def test_processes_creating_one_new_store_at_once_all_open_it(tmp_path):
    context = multiprocessing.get_context("fork")
    for trial in range(8):
        path = tmp_path / str(trial) / "lab.sqlite"
        barrier, results = context.Barrier(3), context.Queue()
        processes = [
            context.Process(target=_open_at_once, args=(str(path), barrier, results)) for _ in range(3)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        assert outcomes == [("ok", 0)] * 3, f"trial {trial}: {outcomes}"
        with Store(path) as store:  # one store, created once, that takes runs
            assert store.runs() == []


@contextlib.contextmanager
def unwritable(path: Path):
    """``path`` made unwritable to this process, or the test skipped where that cannot be done.

    chmod is enough for an ordinary user; root writes through it, so as root
    the file is made immutable (chattr +i, which root obeys) where the file
    system and the process's capabilities allow it.
    """
    mode = path.stat().st_mode
    path.chmod(0o444)
    immutable = False
    try:
        if _writable(path) and os.geteuid() == 0:
            immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        if _writable(path):
            pytest.skip("cannot make a file unwritable here (root, and no chattr +i)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


def _writable(path: Path) -> bool:
    try:
        open(path, "r+b").close()
    except PermissionError:
        return False
    return True


def test_a_store_that_cannot_be_written_is_refused_on_opening_for_writing(tmp_path):
    path = tmp_path / "lab.sqlite"
    Store(path).close()
    with unwritable(path):
        with pytest.raises(OSError, match=r"store '.*lab.sqlite' cannot be written") as info:
            Store(path)
        assert "\n" not in str(info.value)
        with Store(path, create=False) as store:  # a reader (descentlab report) still reads it
            assert store.runs() == []


@pytest.mark.slow
def test_the_sweep_refuses_a_store_it_cannot_write_before_running_anything(tmp_path, capsys):
    (tmp_path / "demo.toml").write_text(
        'problem = "saddle"\nregime = "full-batch"\nbudget = { steps = 5 }\n[optimizers.sgd]\nlr = 0.1\n'
    )
    path = tmp_path / "lab.sqlite"
    Store(path).close()
    with unwritable(path):
        code = main(["sweep", str(tmp_path / "demo.toml"), "--store", str(path), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("descentlab sweep: error: store ") and err.count("\n") == 1, err
    assert "cannot be written" in err and str(path) in err
    with Store(path) as store:
        assert store.runs() == []


def test_an_sqlite_file_with_no_tables_but_a_user_version_is_not_taken_over(tmp_path):
    import sqlite3

    path = tmp_path / "lab.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 5")  # another program's format, before its first table
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"'.*lab.sqlite' .*user_version 5") as info:
        Store(path)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == before


def test_opening_waits_for_another_process_s_write_lock_instead_of_failing(tmp_path):
    # Switching a store to WAL needs the lock another process holds while it commits (here: a
    # store still in rollback mode, as a new one is until its first opening ends). SQLite
    # answers "database is locked" at once there rather than wait; the opening tries again.
    path = tmp_path / "lab.sqlite"
    Store(path).close()
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA journal_mode = DELETE")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        with Store(path) as store:
            assert store.runs() == []
    finally:
        release.join()
        holder.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
