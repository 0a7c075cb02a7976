"""The tuning protocol (after DeepOBS): which runs a suite makes, in which order, and how the best is chosen.

1. **Tune.** Every tuned method runs on every problem at every learning rate
   of the suite's grid, with seed 0 (experiment ``"tune"``).
2. **Select.** A method's best learning rate on a problem is the one with the
   lowest final held-out loss (:func:`select_lr`). A diverged or failed run
   counts as the worst; ties go to the smaller learning rate.
3. **Rerun.** The best setting is rerun with seeds ``1 .. seeds-1``
   (experiment ``"seeds"``; seed 0 is the tuning run). A matched method runs
   at its derived learning rate with every seed.
4. **Checks.** Claim C5's runs with weight snapshots
   (``"rare-features"``) and the formula checks (``"formula-check"``) run at
   the tuned learning rates of the methods they are compared with.

Each stage's runs depend only on the suite and the records of the stages
before, so the plan is rebuilt exactly from a store: that is how
``descentlab report`` finds every run without training, and how a rerun of
``descentlab compare`` resumes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..train import RunConfig
from . import analysis
from .methods import METHODS
from .mistakes import MISTAKES
from .suite import Suite

if TYPE_CHECKING:
    from .store import StoredRun

TUNE = "tune"
SEEDS = "seeds"
RARE = "rare-features"
FORMULA = "formula-check"
#: The methods claim C5 compares on its rare-feature problem.
RARE_METHODS = ("sgd", "adagrad")


@dataclass(frozen=True)
class Trial:
    """One planned run: its experiment, method (or mistaken rule), problem, learning rate and seed."""

    experiment: str
    method: str
    problem: str
    lr: float
    seed: int
    config: RunConfig


def make_config(
    suite: Suite, method: str, problem: str, lr: float, seed: int, observers: tuple[str, ...] = ()
) -> RunConfig:
    """The configuration of ``method`` on ``problem`` at ``lr`` with ``seed``, as ``suite`` sets it up.

    ``method`` may also name a mistaken rule (:data:`~descentlab.lab.mistakes.MISTAKES`),
    which runs in the regime of the method it mistakes.
    """
    if method in MISTAKES:
        mistake = MISTAKES[method]
        template, optimizer, hyper = METHODS[mistake.correct], mistake.name, {}
    else:
        template = METHODS[method]
        optimizer, hyper = template.optimizer, dict(template.hyperparameters)
    spec = suite.spec(problem)
    regime = template.regime
    return RunConfig(
        problem=spec.problem,
        optimizer=optimizer,
        hyperparameters={"lr": lr, **hyper},
        regime=regime,  # type: ignore[arg-type]
        batch_size=spec.batch_size,
        budget=spec.budget(regime),
        seed=seed,
        eval_every=spec.eval_every(regime),
        problem_options=spec.problem_options(seed),
        observers=tuple(dict.fromkeys((*template.observers, *spec.observers, *observers))),
    )


def tuning_trials(suite: Suite) -> list[Trial]:
    """Stage 1: every tuned method at every grid point on every problem, seed 0."""
    return [
        Trial(TUNE, method, spec.problem, lr, 0, make_config(suite, method, spec.problem, lr, 0))
        for spec in suite.problems
        for method in suite.methods_on(spec.problem)
        if METHODS[method].tuned
        for lr in suite.lr_grid
    ]


def select_lr(grid: Sequence[tuple[float, StoredRun | None]]) -> float | None:
    """Stage 2: the learning rate whose run ends with the lowest held-out loss (None if all diverged).

    Ties go to the smaller learning rate, the safer choice.

    >>> from types import SimpleNamespace as Run
    >>> from descentlab.train import HeldOut, RunRecord
    >>> def done(loss):
    ...     return Run(record=RunRecord("mini-batch", held_out=HeldOut(loss=[1.0, loss])))
    >>> select_lr([(0.1, done(0.5)), (1.0, done(0.2)), (10.0, None)])
    1.0
    """
    scored = [(analysis.final_loss(run.record if run is not None else None), lr) for lr, run in grid]
    finite = [(loss, lr) for loss, lr in scored if math.isfinite(loss)]
    return min(finite)[1] if finite else None


@dataclass
class Plan:
    """A suite's runs, stage by stage, and the learning rates the tuning chose."""

    suite: Suite
    tuning: list[Trial]
    tuned_lr: dict[tuple[str, str], float | None] = field(default_factory=dict)
    seeds: list[Trial] = field(default_factory=list)
    checks: list[Trial] = field(default_factory=list)

    def all_trials(self) -> list[Trial]:
        """Every planned run, in the order they run."""
        return [*self.tuning, *self.seeds, *self.checks]

    def lr_of(self, method: str, problem: str) -> float | None:
        """The learning rate ``method`` runs at on ``problem`` after tuning (matched ones derived)."""
        spec = METHODS[method]
        if spec.matched_to is None:
            return self.tuned_lr.get((method, problem))
        base = self.tuned_lr.get((spec.matched_to, problem))
        return None if base is None else float(f"{base * spec.lr_factor:.6g}")


Find = Callable[[Trial], "StoredRun | None"]


def start_plan(suite: Suite) -> Plan:
    """The plan's first stage, before any run."""
    return Plan(suite, tuning_trials(suite))


def choose(plan: Plan, find: Find) -> None:
    """Stage 2: choose each tuned method's learning rate on each problem from the tuning runs found."""
    grids: dict[tuple[str, str], list[tuple[float, StoredRun | None]]] = {}
    for trial in plan.tuning:
        grids.setdefault((trial.method, trial.problem), []).append((trial.lr, find(trial)))
    plan.tuned_lr = {key: select_lr(grid) for key, grid in grids.items()}


def add_seeds(plan: Plan) -> None:
    """Stage 3: the reruns of each best setting with the other seeds, and every seed of matched methods."""
    suite, trials = plan.suite, []
    for spec in suite.problems:
        for method in suite.methods_on(spec.problem):
            lr = plan.lr_of(method, spec.problem)
            if lr is None:
                continue
            first = 1 if METHODS[method].tuned else 0
            trials += [
                Trial(
                    SEEDS, method, spec.problem, lr, seed, make_config(suite, method, spec.problem, lr, seed)
                )
                for seed in range(first, suite.seeds)
            ]
    plan.seeds = trials


def add_checks(plan: Plan) -> None:
    """Stage 4: claim C5's runs with weight snapshots and the formula checks, at the tuned rates."""
    suite, trials = plan.suite, []
    problem = suite.rare_features
    if problem is not None:
        snapshots = (f"path@{suite.rare_snapshots.n}{suite.rare_snapshots.unit}",)
        for method in RARE_METHODS:
            lr = plan.lr_of(method, problem) if method in suite.methods_on(problem) else None
            if lr is None:
                continue
            trials += [
                Trial(
                    RARE, method, problem, lr, seed, make_config(suite, method, problem, lr, seed, snapshots)
                )
                for seed in range(suite.seeds)
            ]
    for problem in suite.formula_problems:
        for mistake in MISTAKES.values():
            if mistake.correct not in suite.methods_on(problem):
                continue
            lr = plan.lr_of(mistake.correct, problem)
            if lr is None:
                continue
            trials += [
                Trial(
                    FORMULA,
                    mistake.name,
                    problem,
                    lr,
                    seed,
                    make_config(suite, mistake.name, problem, lr, seed),
                )
                for seed in range(suite.seeds)
            ]
    plan.checks = trials


def build_plan(suite: Suite, find: Find) -> Plan:
    """The whole plan, with the learning rates chosen from the tuning runs ``find`` returns."""
    plan = start_plan(suite)
    choose(plan, find)
    add_seeds(plan)
    add_checks(plan)
    return plan
