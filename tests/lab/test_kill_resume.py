"""Kill ``descentlab sweep`` with SIGKILL at several moments, run it again: every run once, none redone.

The driver is a real process running the real command with a process pool,
killed without warning; what it committed must survive untouched, what it
had not must be run by the next invocation, and its workers must not outlive it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from descentlab.lab import SerialExecutor, Store, load_spec, run_key, run_sweep
from sweepcases import without_wall_times

pytestmark = [pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX"), pytest.mark.slow]

# 12 runs of about 0.25 s each on an idle core: long enough to be killed in the middle of one.
SPEC = """
name = "killed"
problem = "rosenbrock"
regime = "full-batch"
budget = { steps = 800 }

[optimizers.sgd]
lr = { low = 1e-4, high = 2e-3, n = 4, log = true }
momentum = [0.0, 0.5, 0.9]
"""


def rows(path: Path) -> list[tuple]:
    """(id, key, finished_at) of every run (a WAL reader does not get in the running driver's way)."""
    if not path.exists():
        return []
    # Not read-only: after a kill, opening may need to recover the WAL index, which a
    # read-only connection cannot do (the next driver would do the same).
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute("SELECT id, key, finished_at FROM runs ORDER BY id").fetchall()
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):  # the driver is creating the store
            return []
        raise
    finally:
        db.close()


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (read from /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if int(ppid) == pid and state != "Z":
            kids.append(int(stat.parent.name))
    return kids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start(spec: Path, store: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "descentlab",
        "sweep",
        str(spec),
        "--store",
        str(store),
        "--workers",
        "2",
    ]
    return subprocess.Popen(
        command, cwd=spec.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def kill_when(driver: subprocess.Popen, store: Path, ready, timeout: float = 120) -> list[tuple]:
    """SIGKILL the driver as soon as ``ready(rows)``; return the rows then, after checking no worker lives on."""
    deadline = time.monotonic() + timeout
    while not ready(rows(store)):
        assert driver.poll() is None, f"the sweep ended before the kill: {driver.communicate()}"
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.005)
    workers = children(driver.pid)
    # Without workers found, "no worker outlived the driver" below would hold vacuously.
    assert workers, "found no worker of the running sweep to watch"
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    assert driver.returncode == -signal.SIGKILL
    committed = rows(store)
    deadline = time.monotonic() + 20
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(alive, workers)), "a worker outlived its killed driver"
    return committed


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_a_sweep_killed_at_any_moment_resumes_with_every_run_once(tmp_path):
    spec, store = tmp_path / "killed.toml", tmp_path / "out" / "lab.sqlite"
    spec.write_text(SPEC)
    configs = load_spec(spec).configs()
    # 1. once two runs are stored, while the workers train the next ones
    first = kill_when(start(spec, store), store, lambda r: len(r) >= 2)
    # 2. the moment the next run is committed (the kill races the commit and what follows it)
    second = kill_when(start(spec, store), store, lambda r: len(r) > len(first))
    assert 2 <= len(first) < len(second) < len(configs)

    done = subprocess.run(
        [sys.executable, "-m", "descentlab", "sweep", str(spec), "--store", str(store), "--workers", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{len(configs) - len(second)} run now, {len(second)} already stored" in done.stdout

    final = rows(store)
    assert sorted(key for _, key, _ in final) == sorted(run_key(c) for c in configs)  # every run, once
    # What was committed before each kill is there untouched (same row, same commit time): not rerun.
    assert set(first) <= set(second) <= set(final)
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    # And the runs are right: some of them, trained again here, give the same records.
    with Store(store) as kept:
        stored = {r.key: r for r in kept.runs("killed")}
        again = run_sweep(kept, "check", configs[::5], executor=SerialExecutor())
    for run in again:
        assert without_wall_times(run.record) == without_wall_times(stored[run.key].record)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_ctrl_c_reaching_workers_while_they_start_is_ignored_by_them(tmp_path):
    """Ctrl-C reaches every process of the group; a worker still importing torch must ignore it too.

    Only the workers are signalled: what the driver then does is the driver's
    business (a real Ctrl-C stops it too), while a worker that took the signal
    would die with a KeyboardInterrupt traceback and fail its run.
    """
    spec, store = tmp_path / "killed.toml", tmp_path / "out" / "lab.sqlite"
    spec.write_text(SPEC.replace("steps = 800", "steps = 50"))  # runs long enough to start workers
    driver = start(spec, store)
    deadline = time.monotonic() + 60
    while len(children(driver.pid)) < 2:
        assert driver.poll() is None, f"the sweep ended before its workers started: {driver.communicate()}"
        assert time.monotonic() < deadline, "the sweep started no workers"
        time.sleep(0.002)
    time.sleep(0.3)  # past the exec, into the imports (torch takes seconds)
    for worker in children(driver.pid):
        os.kill(worker, signal.SIGINT)
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert ", 0 failed" in err, err
    assert len(rows(store)) == len(load_spec(spec).configs())
