"""The Ray executor, on a local Ray instance this module starts and stops: the same records as the pool.

Ray is in the dev extra, so CI runs this; without Ray installed it skips.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from descentlab.cli import main
from descentlab.lab import LocalExecutor, RayExecutor, Store, run_sweep
from sweepcases import mixed, without_wall_times

pytestmark = pytest.mark.slow  # starting Ray takes seconds; every test here needs it

ray = pytest.importorskip(
    "ray", reason="Ray is not installed (pip install 'descentlab[ray]'; dev installs it)"
)


def descendants(pid: int, through: set[int] = frozenset()) -> set[int]:
    """Live processes started, directly or not, by ``pid`` (from /proc; empty elsewhere).

    The children of the processes in ``through`` are left out: a process that
    ran before (the session's Chromium) may start helpers of its own at any time.
    """
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if state != "Z":
            parents[int(stat.parent.name)] = int(ppid)
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
        frontier -= through
    return found


def _ours(pids: set[int]) -> set[int]:
    """Processes other than multiprocessing's resource tracker (the test process's own, by design)."""
    return {pid for pid in pids if "resource_tracker" not in "".join(_commands({pid}))}


def _commands(pids: set[int]) -> list[str]:
    out = []
    for pid in sorted(pids):
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
        except OSError:
            out.append(str(pid))
    return out


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with two CPUs and a small object store, gone (every process) afterwards."""
    before = descendants(os.getpid())
    address = os.environ.pop("RAY_ADDRESS", None)  # never join a cluster the environment points at
    ray.init(
        num_cpus=2,
        object_store_memory=100 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    started = descendants(os.getpid()) - before
    assert started or not Path("/proc/self/stat").exists()  # the check below would be empty otherwise
    try:
        yield
    finally:
        ray.shutdown()
        if address is not None:
            os.environ["RAY_ADDRESS"] = address
        # Ray's own processes and the workers it started for the tests: none may outlive them.
        deadline = time.monotonic() + 30
        while _ours(descendants(os.getpid(), before) - before) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _ours(descendants(os.getpid(), before) - before)
        assert not left, f"processes outlived the tests: {_commands(left)}"


def test_ray_gives_the_records_of_the_process_pool(tmp_path, local_ray):
    configs = mixed()
    with Store(tmp_path / "lab.sqlite") as store:
        with RayExecutor() as executor:  # joins the module's instance
            on_ray = run_sweep(store, "ray", configs, executor=executor)
        with LocalExecutor(2) as executor:
            local = run_sweep(store, "local", configs, executor=executor)
    assert ray.is_initialized()  # an executor that joined does not shut Ray down
    assert [r.status for r in on_ray] == ["finished"] * 5 + ["diverged", "failed"]
    for a, b in zip(on_ray, local):
        assert (a.key, a.status, a.error, a.versions) == (b.key, b.status, b.error, b.versions)
        if a.record is not None:
            assert without_wall_times(a.record) == without_wall_times(b.record)


def test_descentlab_sweep_runs_on_ray(tmp_path, local_ray, capsys):
    (tmp_path / "s.toml").write_text(
        'problem = "saddle"\nregime = "full-batch"\nbudget = { steps = 20 }\n[optimizers.sgd]\nlr = [0.01, 0.1]\n'
    )
    store = tmp_path / "lab.sqlite"
    assert main(["sweep", str(tmp_path / "s.toml"), "--executor", "ray", "--store", str(store)]) == 0
    assert "2 run now, 0 already stored" in capsys.readouterr().out
    with Store(store) as kept:
        assert [r.status for r in kept.runs("s")] == ["finished", "finished"]


def test_a_comparisons_surface_and_data_runs_run_on_ray_as_on_the_pool(tmp_path, local_ray):
    from descentlab.lab import compare
    from descentlab.lab.suite import get_suite

    # C3 (batched 2-D runs) and C5 (data runs): both kinds of task go through the executor.
    suite = get_suite("tiny").restricted(("C3", "C5"), None)
    found = {}
    for name, make in (("ray", RayExecutor), ("local", lambda: LocalExecutor(2))):
        with Store(tmp_path / f"{name}.sqlite") as store, make() as executor:
            evidence = compare.evidence_of(store, suite, with_formula=False, executor=executor)
            found[name] = compare.judge_all(evidence, {})
            assert store.result_keys(compare.SURFACES) and len(store) > 0
    assert found["ray"].to_json() == found["local"].to_json()
