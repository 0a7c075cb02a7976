"""Sweeps: run many configurations on an executor and commit each result to the store as it arrives.

Workers train and send back plain data (:class:`Outcome`); the driver, the
process that called :func:`run_sweep`, alone writes the store, one
transaction per run. A sweep started again with the same configurations
after a crash or a kill runs only those the store lacks: resuming is
running the same command again.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..train import RunConfig, RunRecord, run
from .executors import Executor, LocalExecutor, default_workers
from .store import Status, Store, StoredRun, run_key, versions


@dataclass(frozen=True)
class Outcome:
    """What a worker sends back for one configuration: plain picklable data, stored by the driver.

    ``record`` is the :class:`~descentlab.train.RunRecord` as JSON (lossless,
    and what the store keeps); ``versions`` those of the worker that trained.
    """

    key: str
    status: Status
    record: str | None
    error: str | None
    versions: dict[str, str]

    def stored(self, config: RunConfig, experiment: str) -> StoredRun:
        """The run to commit under ``experiment``, stamped with the time now."""
        return StoredRun(
            key=self.key,
            experiment=experiment,
            config=config,
            status=self.status,
            record=RunRecord.from_json(self.record) if self.record is not None else None,
            error=self.error,
            versions=self.versions,
            finished_at=time.time(),
        )


def execute(config: RunConfig, runner: Callable[[RunConfig], RunRecord] = run) -> Outcome:
    """Train one configuration (the function workers run): never raises for a bad or failing run.

    An exception becomes a ``"failed"`` outcome with ``'Type: message'`` on
    one line; a run whose loss became non-finite is ``"diverged"``.
    ``runner`` trains (default :func:`descentlab.train.run`); the lab's
    formula checks pass one that builds deliberately wrong update rules.
    """
    key = run_key(config)
    try:
        record = runner(config)
    except Exception as err:
        message = " ".join(str(err).split())
        return Outcome(key, "failed", None, f"{type(err).__name__}: {message}", _versions())
    status: Status = "diverged" if record.diverged else "finished"
    return Outcome(key, status, record.to_json(), None, _versions())


def crashed(config: RunConfig, reason: str) -> Outcome:
    """The outcome of a run whose worker process died (out of memory, a crash in native code).

    It is a failed run like any other, with the driver's versions, since
    the worker that had it could not report its own.
    """
    return Outcome(run_key(config), "failed", None, f"WorkerCrashed: {reason}", _versions())


@functools.cache
def _versions() -> dict[str, str]:
    return versions()


@dataclass(frozen=True)
class Progress:
    """Where a sweep stands, reported once before any run and after each committed run.

    ``total`` counts the sweep's distinct configurations; ``skipped`` those
    found in the store at the start (not run again); ``done`` those in the
    store now, skipped included, so ``done == total`` at the end.
    ``failed`` and ``diverged`` count among the ``done``; ``last`` is the run
    just committed (None in the first report).
    """

    done: int
    total: int
    skipped: int
    failed: int
    diverged: int
    last: StoredRun | None

    @property
    def ran(self) -> int:
        """The runs this sweep trained and committed so far."""
        return self.done - self.skipped

    def describe(self) -> str:
        """The counts in a few words: ``'12/40 runs (4 already stored), 1 diverged, 0 failed'``."""
        return (
            f"{self.done}/{self.total} runs ({self.skipped} already stored), "
            f"{self.diverged} diverged, {self.failed} failed"
        )


def run_sweep(
    store: Store,
    experiment: str,
    configs: Sequence[RunConfig],
    *,
    executor: Executor | None = None,
    progress: Callable[[Progress], None] | None = None,
    retry_failed: bool = False,
    worker: Callable[[RunConfig], Outcome] = execute,
) -> list[StoredRun]:
    """Run the configurations the store lacks under ``experiment``, committing each as it finishes.

    Returns the stored run of every given configuration, in the given
    order. Configurations are told apart by :func:`run_key`; duplicates run
    once. A failed run (an exception, or a worker process that died while
    training it) is stored with status ``"failed"`` and its error, a
    diverged one with ``"diverged"``; neither stops the sweep, and a
    failed run stays failed when the sweep is run again, unless
    ``retry_failed`` (then its new result replaces it). Without
    ``executor``, a :class:`LocalExecutor` with one worker per core (and no
    more than there are runs) is started and stopped here. ``worker`` is
    what the executor runs for each configuration (picklable:
    :func:`execute`, or a ``functools.partial`` of it with another runner).

    >>> from descentlab.lab import SerialExecutor
    >>> from descentlab.train import Budget
    >>> import tempfile, os
    >>> configs = [RunConfig("saddle", "sgd", {"lr": lr}, regime="full-batch", budget=Budget(steps=20))
    ...            for lr in (0.05, 0.1)]
    >>> with tempfile.TemporaryDirectory() as folder, Store(os.path.join(folder, "lab.sqlite")) as store:
    ...     runs = run_sweep(store, "demo", configs, executor=SerialExecutor())
    ...     again = run_sweep(store, "demo", configs, executor=SerialExecutor())  # nothing left to run
    >>> [r.status for r in runs], [r.finished_at for r in again] == [r.finished_at for r in runs]
    (['finished', 'finished'], True)
    """
    if not isinstance(experiment, str) or not experiment:
        raise ValueError(f"run_sweep: experiment must be a non-empty name; received {experiment!r}")
    keys = [run_key(config) for config in configs]
    unique: dict[str, RunConfig] = {}
    for key, config in zip(keys, configs, strict=True):
        unique.setdefault(key, config)
    stored = store.get(experiment, unique)
    if retry_failed:
        stored = {key: run for key, run in stored.items() if run.status != "failed"}
    todo = [config for key, config in unique.items() if key not in stored]
    skipped = len(stored)
    statuses = collections.Counter(run.status for run in stored.values())

    def report(last: StoredRun | None) -> None:
        if progress is not None:
            done = len(stored)
            failed, diverged = statuses["failed"], statuses["diverged"]
            progress(Progress(done, len(unique), skipped, failed, diverged, last))

    report(None)
    if todo:
        owned = executor is None
        if executor is None:
            executor = LocalExecutor(min(default_workers(), len(todo)))
        with contextlib.ExitStack() as stack:
            if owned:
                stack.enter_context(executor)  # type: ignore[arg-type]
            outcomes = stack.enter_context(
                contextlib.closing(executor.map_unordered(worker, todo, on_crash=crashed))
            )
            for outcome in outcomes:
                result = outcome.stored(unique[outcome.key], experiment)
                if not store.add(result, replace_failed=retry_failed):
                    # Another driver committed it meanwhile; theirs is the stored one.
                    result = store.get(experiment, [outcome.key])[outcome.key]
                stored[outcome.key] = result
                statuses[result.status] += 1
                report(result)
    return [stored[key] for key in keys]


# -- the account of a sweep that ``descentlab sweep`` prints ----------------------------------


def describe_config(config: RunConfig, *, seed: bool = True) -> str:
    """A configuration in a few words: ``'adam lr=0.01, mini-batch 32, 3 epochs, seed 0'``."""
    hyper = " ".join(f"{k}={_number(v)}" for k, v in config.hyperparameters.items())
    regime = config.regime + (f" {config.batch_size}" if config.regime == "mini-batch" else "")
    text = f"{config.optimizer}{' ' + hyper if hyper else ''}, {regime}, {config.budget.describe()}"
    if config.problem_options:
        text += ", " + " ".join(f"{k}={_number(v)}" for k, v in config.problem_options.items())
    return text + (f", seed {config.seed}" if seed else "")


def _number(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Best:
    """The best setting on one problem: runs equal but for the seed, ranked by mean final held-out loss."""

    problem: str
    runs: tuple[StoredRun, ...]
    mean_loss: float

    @property
    def config(self) -> RunConfig:
        """The setting (its first seed's configuration)."""
        return self.runs[0].config


def best_per_problem(runs: Sequence[StoredRun]) -> list[Best]:
    """For each problem, the setting with the lowest final held-out loss, averaged over its seeds.

    A setting with a failed or diverged seed counts as infinitely bad; a
    problem none of whose settings finished is left out.
    """
    groups: dict[tuple[str, str], list[StoredRun]] = {}
    for stored in runs:
        setting = run_key(dataclasses.replace(stored.config, seed=0))
        groups.setdefault((stored.config.problem, setting), []).append(stored)
    best: dict[str, Best] = {}
    for (problem, _), members in groups.items():
        losses = [m.final_held_out_loss for m in members]
        mean = statistics.fmean(losses) if all(map(math.isfinite, losses)) else math.inf
        if math.isfinite(mean) and (problem not in best or mean < best[problem].mean_loss):
            best[problem] = Best(problem, tuple(members), mean)
    return list(best.values())


def summary(runs: Sequence[StoredRun], final: Progress, *, seconds: float, limit: int = 12) -> str:
    """What ``descentlab sweep`` prints at the end: counts, the best setting per problem, failures."""
    distinct = {r.key: r for r in runs}.values()
    lines = [
        f"runs        {final.total}: {final.ran} run now, {final.skipped} already stored; "
        f"{final.diverged} diverged, {final.failed} failed ({seconds:.1f} s)"
    ]
    best = best_per_problem(list(distinct))
    if best:
        lines.append("best by final held-out loss (mean over seeds):")
        width = max(len(b.problem) for b in best)
        for b in best[:limit]:
            seeds = len(b.runs)
            lines.append(
                f"  {b.problem:<{width}}  {b.mean_loss:<10.4g}  {describe_config(b.config, seed=False)}"
                f" ({seeds} seed{'s' if seeds != 1 else ''})"
            )
        if len(best) > limit:
            lines.append(f"  ... and {len(best) - limit} more problems")
    failed = [r for r in distinct if r.status == "failed"]
    for r in failed[:3]:
        lines.append(f"failed      {r.config.problem}, {describe_config(r.config)}: {r.error}")
    if len(failed) > 3:
        lines.append(f"            ... and {len(failed) - 3} more failed runs")
    return "\n".join(lines)
