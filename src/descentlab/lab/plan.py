"""The plan: which runs a suite needs, as pure functions of the suite and the tuned learning rates.

Two kinds of run:

- :class:`DataRun`: one training run on a data problem (a
  :class:`~descentlab.train.RunConfig`, run by a worker, kept in the store);
- :class:`SurfaceRun`: every start of a 2-D landscape at one or more
  learning rates, computed as one batched tensor
  (:func:`~descentlab.lab.batch.run_batch`), kept in the store as an archive.

The protocol has two stages, and the plan is a function of each stage's input:

1. :func:`tuning` (suite -> runs): every :class:`Tune` the claims ask for is
   the method on the problem at every learning rate of the suite's grid,
   with the tuning seed, read on the validation half (a surface: on the
   tuning starts). :func:`select` picks the learning rate with the lowest
   final validation loss; a diverged run counts as the worst, ties go to
   the smaller rate.
2. :func:`judging` (suite, tuned rates -> runs): each claim's runs at those
   rates, with the judging seeds (other starts), read on the test half.

Nothing is filled in stages: :func:`tuning` and :func:`judging` can be
called again at any time (``descentlab report`` does, on the store) and give
the same runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..train import Budget, Every, RunConfig, RunRecord
from .batch import Batch, batch_key, run_batch
from .landscapes import LANDSCAPES, noise_vectors
from .suite import Suite

if TYPE_CHECKING:
    from .methods import Method

#: Bumped when what a surface run computes changes: stored batches of another version are not reused.
SURFACE_VERSION = 3
BUDGETS = ("default", "one-pass", "long")


@dataclass(frozen=True)
class Tune:
    """A learning rate the claims need tuned: ``method`` on ``problem`` for budget ``budget``."""

    method: str
    problem: str
    budget: str = "default"


@dataclass(frozen=True)
class DataRun:
    """One run on a data problem: method, problem, learning rate, seed, budget, extra options.

    ``options`` are the problem's, ``hyperparameters`` the optimizer's (added
    to the method's own, e.g. how it stores its state). ``budget`` names the
    problem's budget for the method's regime (``"default"``), one pass over
    the data (``"one-pass"``) or the suite's long budget (``"long"``);
    ``steps``, if given, replaces it by that many updates. ``whole_batches``:
    a mini-batch method's every batch is the whole training set, on the full
    batch's budget and evaluations (the full batch's updates through the
    mini-batch loop: C1's control).
    """

    method: str
    problem: str
    lr: float
    seed: int
    budget: str = "default"
    options: tuple[tuple[str, Any], ...] = ()
    observers: tuple[str, ...] = ()
    steps: int | None = None
    hyperparameters: tuple[tuple[str, Any], ...] = ()
    whole_batches: bool = False


@dataclass(frozen=True)
class SurfaceRun:
    """Every start of a landscape, batched: method, landscape, learning rates, which starts, which noise.

    ``units`` is ``"tune"`` (the tuning starts) or ``"judge"``; ``noise``
    is ``""`` (the landscape's own), ``"twin"`` (Gaussian noise with the
    outlier noise's exact covariance) or ``"twin-b"`` (a second such twin,
    the placebo control). ``hover``: the judging starts are drawn next to the
    minimum (the landscape's ``hover`` box), for a claim about how the noise
    moves the parameters once there.
    """

    method: str
    landscape: str
    lrs: tuple[float, ...]
    units: str = "judge"
    noise: str = ""
    hover: bool = False


Run = DataRun | SurfaceRun


def is_surface(problem: str) -> bool:
    """Whether ``problem`` names a 2-D landscape (else a data problem)."""
    return problem in LANDSCAPES


# -- stage 1: tuning ------------------------------------------------------------------------


def tuning_runs(suite: Suite, tune: Tune) -> list[Run]:
    """The runs that tune ``tune``: its method at every grid point, tuning seed / starts."""
    if is_surface(tune.problem):
        return [SurfaceRun(tune.method, tune.problem, suite.grid, units="tune")]
    return [DataRun(tune.method, tune.problem, lr, suite.tuning_seed, tune.budget) for lr in suite.grid]


def tuning(suite: Suite, tunes: Iterable[Tune]) -> list[Run]:
    """Stage 1: the runs of every tuned rate asked for (matched methods are derived, not tuned)."""
    methods = suite.methods()
    out: dict[Run, None] = {}
    for tune in tunes:
        method = methods[tune.method]
        base = tune if method.tuned else Tune(method.matched_to, tune.problem, tune.budget)  # type: ignore[arg-type]
        for run in tuning_runs(suite, base):
            out[run] = None
    return list(out)


def score(run: Run, found: Any) -> list[tuple[float, float]]:
    """(lr, final validation loss) for a tuning run's result (inf: diverged, failed or missing)."""
    if isinstance(run, SurfaceRun):
        if found is None:
            return [(lr, math.inf) for lr in run.lrs]
        finals = found.final_losses()
        return [(lr, float(np.mean(finals[i]))) for i, lr in enumerate(run.lrs)]
    return [(run.lr, validation_loss(found))]


def validation_loss(record: RunRecord | None) -> float:
    """The last validation loss of a run (inf for a missing, failed or diverged run)."""
    if record is None or record.diverged:
        return math.inf
    series = record.observations.get("validation")
    if series is None or not series.value:
        return math.inf
    value = series.value[-1][0]
    return value if math.isfinite(value) else math.inf


def select(scores: Sequence[tuple[float, float]]) -> float | None:
    """The learning rate with the lowest score; ties to the smaller rate; None if every run failed.

    >>> select([(0.1, 0.5), (1.0, 0.2), (10.0, math.inf)]), select([(0.1, math.inf)])
    (1.0, None)
    """
    finite = [(value, lr) for lr, value in scores if math.isfinite(value)]
    return min(finite)[1] if finite else None


def tuned_rates(suite: Suite, tunes: Iterable[Tune], find: Callable[[Run], Any]) -> dict[Tune, float | None]:
    """The learning rate of every ``tune`` from the tuning runs ``find`` returns (matched ones derived)."""
    methods = suite.methods()
    out: dict[Tune, float | None] = {}
    for tune in tunes:
        method = methods[tune.method]
        if not method.tuned:
            base = out.get(Tune(method.matched_to, tune.problem, tune.budget))  # type: ignore[arg-type]
            if base is None:
                base = _select(suite, Tune(method.matched_to, tune.problem, tune.budget), find)  # type: ignore[arg-type]
            out[tune] = None if base is None else float(f"{base * method.lr_factor:.6g}")
            continue
        out[tune] = _select(suite, tune, find)
    return out


def _select(suite: Suite, tune: Tune, find: Callable[[Run], Any]) -> float | None:
    scores = [pair for run in tuning_runs(suite, tune) for pair in score(run, find(run))]
    return select(scores)


# -- running what the plan holds ---------------------------------------------------------------


def config(suite: Suite, run: DataRun) -> RunConfig:
    """The configuration of a data run, as ``suite`` sets its problem up."""
    method = suite.methods()[run.method]
    spec = suite.data(run.problem)
    regime = method.regime
    factor = suite.budget_factor
    if run.budget == "one-pass":
        # One pass over the data: a stream's whole budget, a single epoch of mini-batches.
        budget = spec.budget(regime) if regime == "online" else Budget(epochs=1)
    elif run.budget == "long":
        budget = spec.budget(regime, factor * suite.long_factor)
    else:
        budget = spec.budget(regime, factor)
    every = spec.eval_every(regime)
    batch_size = spec.batch_size
    if run.whole_batches:
        if regime != "mini-batch" or spec.n_train is None:
            raise ValueError(
                f"whole batches need a mini-batch method and a problem of known size; received "
                f"{run.method!r} ({regime}) on {run.problem!r} (n_train={spec.n_train})"
            )
        budget, every, batch_size = spec.budget("full-batch", factor), Every(1), spec.n_train
    if run.steps is not None:
        budget = Budget(steps=math.ceil(run.steps * factor))
    if run.budget == "long" and every.unit == "steps":
        every = Every(every.n * suite.long_factor)
    return RunConfig(
        problem=spec.problem,
        optimizer=method.optimizer,
        hyperparameters={"lr": run.lr, **method.hyperparameters, **dict(run.hyperparameters)},
        regime=regime,  # type: ignore[arg-type]
        batch_size=batch_size,
        budget=budget,
        seed=run.seed,
        eval_every=every,
        problem_options={**suite.options(run.problem), **dict(run.options)},
        observers=tuple(dict.fromkeys(("effective-lr", *run.observers))),
        held_out="split",
    )


def surface_inputs(suite: Suite, run: SurfaceRun) -> dict[str, Any]:
    """What :func:`~descentlab.lab.batch.run_batch` gets for a surface run (and what its key hashes)."""
    land = suite.landscape(run.landscape)
    seed = suite.tuning_seed if run.units == "tune" else 1
    noise = None
    if land.noise != "none":
        base = noise_vectors(land, land.noise, 0)
        if run.noise == "twin":
            noise = noise_vectors(land, "gaussian", 0, match=base)
        elif run.noise == "twin-b":
            noise = noise_vectors(land, "gaussian", 1, match=base)
        else:
            noise = base
    return {
        "land": land,
        "lrs": run.lrs,
        "starts": land.start_points(suite.starts, seed, hover=run.hover),
        "steps": suite.surface_steps(run.landscape),
        "noise": noise,
        "batch_size": land.batch_size if noise is not None else None,
        "seed": seed,
    }


def surface_key(suite: Suite, run: SurfaceRun) -> str:
    """The store's key of a surface run: everything that determines its result."""
    inputs = surface_inputs(suite, run)
    land = inputs.pop("land")
    method: Method = suite.methods()[run.method]
    return batch_key(
        version=SURFACE_VERSION,
        landscape=land.name,
        params=land.params,
        optimizer=method.optimizer,
        hyperparameters=method.hyperparameters,
        **inputs,
    )


@dataclass(frozen=True)
class SurfaceTask:
    """A surface run with everything a worker needs (picklable); :func:`compute_surface` runs it."""

    suite: Suite
    run: SurfaceRun
    key: str


class UserMethodFailed(ValueError):
    """The user's optimizer raised on a 2-D surface: the comparison stops with one line naming it."""


def compute_surface(task: SurfaceTask) -> tuple[str, bytes]:
    """Run a surface task; returns its key and the result archive (the worker's function).

    The user's optimizer failing here is the user's to mend: it becomes a
    :class:`UserMethodFailed` naming the method and the surface (a data run
    is stored as failed instead; a surface batch runs every start at once, so
    there is no failed run to store). Any other failure is a bug and raised as is.
    """
    inputs = surface_inputs(task.suite, task.run)
    method = task.suite.methods()[task.run.method]
    land = inputs.pop("land")
    try:
        batch: Batch = run_batch(land, method, **inputs)
    except Exception as err:
        if not method.user:
            raise
        raise UserMethodFailed(
            f"method {method.name} ({method.optimizer}) failed on the 2-D surface {land.name}: "
            f"{type(err).__name__}: {err}; the runs stored so far are kept, so a rerun after the "
            "fix resumes"
        ) from None
    return task.key, batch.to_bytes()


def partition(runs: Iterable[Run]) -> tuple[list[DataRun], list[SurfaceRun]]:
    """The data runs and the surface runs of ``runs``, each once, in order."""
    data: dict[DataRun, None] = {}
    surfaces: dict[SurfaceRun, None] = {}
    for run in runs:
        (surfaces if isinstance(run, SurfaceRun) else data)[run] = None  # type: ignore[index]
    return list(data), list(surfaces)


Rates = Mapping[Tune, "float | None"]
