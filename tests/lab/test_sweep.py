"""run_sweep: only missing runs run, each is committed as it finishes, failures and divergence are data."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from descentlab.lab import (
    LocalExecutor,
    Progress,
    SerialExecutor,
    Store,
    WorkerCrashed,
    best_per_problem,
    run_key,
    run_sweep,
    summary,
)
from sweepcases import mixed, ten_times_unless_three, tiny, without_wall_times


class Spy(SerialExecutor):
    """A serial executor that remembers what it was asked to run."""

    def __init__(self) -> None:
        self.ran: list = []

    def map_unordered(self, fn, items, *, on_crash=None):
        self.ran.extend(items)
        return super().map_unordered(fn, items, on_crash=on_crash)


def test_every_config_comes_back_in_order_and_duplicates_run_once(tmp_path):
    configs = [tiny(0.01), tiny(0.02), tiny(0.01), tiny(0.03)]
    reports: list[Progress] = []
    spy = Spy()
    with Store(tmp_path / "lab.sqlite") as store:
        runs = run_sweep(store, "e", configs, executor=spy, progress=reports.append)
        assert [r.config for r in runs] == configs
        assert runs[0] is runs[2]
        assert len(spy.ran) == 3 and len(store) == 3
    assert reports[0] == Progress(done=0, total=3, skipped=0, failed=0, diverged=0, last=None)
    assert [p.done for p in reports] == [0, 1, 2, 3]
    assert [p.last.key for p in reports[1:]] == [run_key(c) for c in spy.ran]


def test_failed_and_diverged_runs_are_stored_and_the_sweep_goes_on(tmp_path):
    configs = mixed()
    reports: list[Progress] = []
    with Store(tmp_path / "lab.sqlite") as store:
        runs = run_sweep(store, "e", configs, executor=SerialExecutor(), progress=reports.append)
        stored = store.runs("e")
    assert [r.status for r in runs] == ["finished"] * 5 + ["diverged", "failed"]
    assert runs[5].record.diverged_at == 42
    assert runs[6].record is None
    assert runs[6].error == "ValueError: quadratic2d: n_samples must be a positive integer; received -1"
    assert [r.key for r in stored] == [r.key for r in runs]  # the serial executor finishes in order
    assert (reports[-1].done, reports[-1].failed, reports[-1].diverged) == (7, 1, 1)


def test_a_sweep_run_again_runs_only_what_the_store_lacks(tmp_path):
    configs = [tiny(lr) for lr in (0.01, 0.02, 0.03, 0.04)]
    with Store(tmp_path / "lab.sqlite") as store:
        first = run_sweep(store, "e", configs[:2], executor=SerialExecutor())
        spy = Spy()
        reports: list[Progress] = []
        runs = run_sweep(store, "e", configs, executor=spy, progress=reports.append)
        assert spy.ran == configs[2:]
        assert runs[:2] == first  # the stored runs, not new ones
        assert (reports[0].skipped, reports[0].done, reports[-1].done, reports[-1].ran) == (2, 2, 4, 2)
        spy = Spy()
        assert run_sweep(store, "e", configs, executor=spy) == runs and spy.ran == []
        # Another experiment stores its own runs of the same configurations.
        run_sweep(store, "other", configs[:1], executor=spy)
        assert spy.ran == configs[:1] and store.experiments() == ["e", "other"]


@pytest.mark.slow
def test_the_default_process_pool_gives_the_records_of_a_serial_run(tmp_path):
    configs = mixed()
    with Store(tmp_path / "lab.sqlite") as store:
        pooled = run_sweep(store, "pool", configs)  # LocalExecutor: one worker per core
        serial = run_sweep(store, "serial", configs, executor=SerialExecutor())
    for a, b in zip(pooled, serial):
        assert (a.key, a.status, a.error) == (b.key, b.status, b.error)
        if a.record is not None:
            assert without_wall_times(a.record) == without_wall_times(b.record)


class Stop(Exception):
    pass


@pytest.mark.slow
def test_an_error_in_the_driver_stops_the_workers_and_keeps_what_was_committed(tmp_path):
    configs = [tiny(0.01, steps=3000 if i else 30, seed=i) for i in range(6)]

    def stop_after_the_first(progress):
        if progress.done == 1:
            raise Stop

    executor = LocalExecutor(workers=1)
    start = time.monotonic()
    with Store(tmp_path / "lab.sqlite") as store, pytest.raises(Stop), executor:
        run_sweep(store, "e", configs, executor=executor, progress=stop_after_the_first)
    with Store(tmp_path / "lab.sqlite") as store:
        assert store.keys("e") == {run_key(configs[0])}
    assert time.monotonic() - start < 30  # the long runs queued behind were not waited for


@pytest.mark.slow
def test_a_worker_that_dies_fails_its_item_only_and_is_replaced():
    with LocalExecutor(workers=2) as executor:
        results = executor.map_unordered(
            ten_times_unless_three, [1, 2, 3, 4, 5], on_crash=lambda x, why: (x, why)
        )
        results = list(results)
        assert sorted(r for r in results if isinstance(r, int)) == [10, 20, 40, 50]
        assert (3, "the worker process exited with code 3") in results
        with pytest.raises(WorkerCrashed, match="exited with code 3") as info:
            list(executor.map_unordered(ten_times_unless_three, [3]))
        assert info.value.item == 3
        assert list(executor.map_unordered(ten_times_unless_three, [6])) == [60]


@pytest.mark.slow
def test_a_task_that_cannot_be_sent_leaves_no_worker_behind():
    before = set(multiprocessing.active_children())
    executor = LocalExecutor(workers=2)
    with pytest.raises(Exception, match="pickle"):  # a lambda cannot be sent to a spawned process
        list(executor.map_unordered(lambda x: x, [1, 2, 3]))
    executor.close()
    assert set(multiprocessing.active_children()) - before == set()
    with executor:  # and the pool still works
        assert list(executor.map_unordered(ten_times_unless_three, [1])) == [10]
    assert set(multiprocessing.active_children()) - before == set()


class Crashing(SerialExecutor):
    """A serial executor whose 'worker' dies on the runs with lr 0.02."""

    def map_unordered(self, fn, items, *, on_crash=None):
        for item in items:
            if item.hyperparameters["lr"] == 0.02:
                yield on_crash(item, "the worker process was killed by SIGKILL")
            else:
                yield from super().map_unordered(fn, [item])


def test_a_run_whose_worker_died_is_stored_as_failed_and_the_sweep_goes_on(tmp_path):
    configs = [tiny(0.01), tiny(0.02), tiny(0.03)]
    with Store(tmp_path / "lab.sqlite") as store:
        runs = run_sweep(store, "e", configs, executor=Crashing())
    assert [r.status for r in runs] == ["finished", "failed", "finished"]
    assert runs[1].error == "WorkerCrashed: the worker process was killed by SIGKILL"
    assert runs[1].record is None and set(runs[1].versions) == {"descentlab", "torch", "python", "platform"}


def test_failed_runs_stay_failed_unless_retried(tmp_path):
    configs = [tiny(0.01), tiny(0.02), tiny(0.03)]
    with Store(tmp_path / "lab.sqlite") as store:
        first = run_sweep(store, "e", configs, executor=Crashing())
        spy = Spy()
        assert run_sweep(store, "e", configs, executor=spy) == first and spy.ran == []
        reports: list[Progress] = []
        again = run_sweep(store, "e", configs, executor=spy, retry_failed=True, progress=reports.append)
        assert spy.ran == [configs[1]] and (reports[0].skipped, reports[-1].done) == (2, 3)
        assert [r.status for r in again] == ["finished"] * 3 and again[::2] == first[::2]
        assert len(store) == 3 and [r.status for r in store.runs("e")] == ["finished"] * 3


def test_local_executor_checks_workers():
    with pytest.raises(ValueError, match="workers must be a positive integer; received workers=0"):
        LocalExecutor(0)
    assert LocalExecutor().workers == len(os.sched_getaffinity(0))


def test_progress_counts_and_summary(tmp_path):
    configs = [tiny(lr, seed=s) for lr in (0.01, 0.03) for s in (0, 1)] + [
        tiny(100.0, steps=200),
        mixed()[-1],
    ]
    reports = []
    with Store(tmp_path / "lab.sqlite") as store:
        runs = run_sweep(store, "e", configs, executor=SerialExecutor(), progress=reports.append)
    assert len(reports) == len(configs) + 1
    assert reports[0].describe() == "0/6 runs (0 already stored), 0 diverged, 0 failed"
    assert reports[-1].describe() == "6/6 runs (0 already stored), 1 diverged, 1 failed"

    (best,) = best_per_problem(runs)
    assert best.config.hyperparameters == {"lr": 0.03} and len(best.runs) == 2
    assert best.mean_loss == pytest.approx(sum(r.record.final_held_out_loss for r in runs[2:4]) / 2)
    text = summary(runs, reports[-1], seconds=1.5)
    assert text.splitlines()[0] == "runs        6: 6 run now, 0 already stored; 1 diverged, 1 failed (1.5 s)"
    assert "quadratic2d" in text.splitlines()[2] and "sgd lr=0.03, full-batch, 30 steps (2 seeds)" in text
    assert "failed      quadratic2d, sgd lr=0.01" in text and "n_samples must be a positive integer" in text


def test_experiment_must_be_named(tmp_path):
    with (
        Store(tmp_path / "lab.sqlite") as store,
        pytest.raises(ValueError, match="experiment must be a non-empty"),
    ):
        run_sweep(store, "", [tiny()], executor=SerialExecutor())
