"""Suites: which methods run on which problems, with what budgets, grid and seeds.

A :class:`Suite` is the whole declaration of a comparison, fixed before any
run: the methods, the problems (each a :class:`ProblemSpec` with a budget and
an evaluation interval per regime), the learning-rate grid every tuned
method is tried on, the number of seeds the best setting is rerun with, and
which problems each claim reads. ``descentlab compare`` runs ``default``,
``--quick`` runs ``quick``; ``tiny`` exists for the tests.

Suites go to JSON and back (:mod:`descentlab._serde`): the output directory
keeps the suite it was run with, so ``descentlab report`` rebuilds the same
plan from the store.

>>> suite = get_suite("default")
>>> len(suite.lr_grid), suite.seeds
(10, 5)
>>> Suite.from_json(suite.to_json()) == suite
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .. import _random, _serde
from .._registry import lookup
from ..problems import make_problem
from ..train import Budget, Every
from .methods import METHODS

#: The claims a suite may name problems for (defined in :mod:`descentlab.lab.claims`).
CLAIM_KEYS = ("C1", "C2", "C3", "C4", "C5", "C6", "C7")


def log_grid(low_exponent: float, high_exponent: float, per_decade: int = 2) -> tuple[float, ...]:
    """Learning rates evenly spaced in log scale, ``per_decade`` a decade, from 10**low to 10**high.

    >>> log_grid(-2, 0)
    (0.01, 0.0316, 0.1, 0.316, 1.0)
    >>> log_grid(-1.5, -1)
    (0.0316, 0.1)
    """
    steps = range(round(low_exponent * per_decade), round(high_exponent * per_decade) + 1)
    # Three significant digits: readable in tables, and exactly the numbers the configurations hold.
    return tuple(float(f"{10 ** (k / per_decade):.3g}") for k in steps)


@dataclass(frozen=True)
class ProblemSpec:
    """A problem as a suite runs it.

    ``problem`` is a :data:`descentlab.problems.PROBLEMS` name and
    ``options`` its options. Each regime has its own budget and held-out
    evaluation interval, because an update costs a full pass in one regime
    and one sample in another. ``methods`` restricts the suite's methods on
    this problem (None: all). ``observers`` are added to every run on it
    (``"path"`` on the 2-D surfaces). ``start_jitter``: on a 2-D surface,
    seed ``k >= 1`` starts at the standard start times ``1 + u`` per
    coordinate, ``u`` uniform in [-start_jitter, start_jitter] (drawn from a
    generator derived from ``k``); seed 0 starts at the standard start, so
    every method's seed-0 path starts at the same point. Without it, seeds
    would change nothing on a surface whose gradient is exact.
    """

    problem: str
    full_batch: Budget
    mini_batch: Budget
    online: Budget
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    eval_full_batch: Every = field(default_factory=lambda: Every(1))
    eval_mini_batch: Every = field(default_factory=lambda: Every(1))
    eval_online: Every = field(default_factory=lambda: Every(1))
    methods: tuple[str, ...] | None = None
    observers: tuple[str, ...] = ()
    start_jitter: float = 0.0

    def budget(self, regime: str) -> Budget:
        """The budget of runs in ``regime``."""
        return {"full-batch": self.full_batch, "mini-batch": self.mini_batch, "online": self.online}[regime]

    def eval_every(self, regime: str) -> Every:
        """The held-out evaluation interval of runs in ``regime``."""
        return {
            "full-batch": self.eval_full_batch,
            "mini-batch": self.eval_mini_batch,
            "online": self.eval_online,
        }[regime]

    def problem_options(self, seed: int) -> dict[str, Any]:
        """The problem's options for a run with ``seed`` (a jittered start where asked)."""
        options = dict(self.options)
        if self.start_jitter and seed > 0:
            start = make_problem(self.problem, **self.options).start_point  # type: ignore[attr-defined]
            rng = _random.numpy_generator(seed, "lab-start", self.problem)
            u = rng.uniform(-self.start_jitter, self.start_jitter, size=2)
            options["start"] = [float(f"{c * (1 + d):.6g}") for c, d in zip(start, u, strict=True)]
        return options


@dataclass(frozen=True)
class Suite:
    """Everything a comparison runs, declared before it runs (see the module docstring).

    ``claim_problems`` names, for each claim, the problems its experiment
    reads (problem names of ``problems``); ``rare_features`` is the problem
    of claim C5's extra runs (with weight snapshots); ``formula_problems``
    the problems of the formula checks.
    """

    name: str
    summary: str
    methods: tuple[str, ...]
    problems: tuple[ProblemSpec, ...]
    lr_grid: tuple[float, ...]
    seeds: int
    claim_problems: dict[str, tuple[str, ...]]
    rare_features: str | None = None
    rare_snapshots: Every = field(default_factory=lambda: Every(250, "samples"))
    formula_problems: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for method in self.methods:
            lookup("method", method, METHODS)
        for method in self.methods:
            matched = METHODS[method].matched_to
            if matched is not None and matched not in self.methods:
                raise ValueError(f"suite {self.name}: method {method} needs {matched} in the suite")
        names = [p.problem for p in self.problems]
        if len(set(names)) != len(names):
            raise ValueError(f"suite {self.name}: a problem appears twice: {names}")
        if self.seeds < 3:
            raise ValueError(
                f"suite {self.name}: every verdict needs at least 3 seeds; received {self.seeds}"
            )
        if len(self.lr_grid) < 2 or any(not (lr > 0 and math.isfinite(lr)) for lr in self.lr_grid):
            raise ValueError(f"suite {self.name}: lr_grid must hold at least two positive learning rates")
        for key, problems in self.claim_problems.items():
            lookup("claim", key, dict.fromkeys(CLAIM_KEYS))
            for problem in problems:
                lookup(f"problem of suite {self.name}", problem, dict.fromkeys(names))
        for problem in (*self.formula_problems, *([self.rare_features] if self.rare_features else [])):
            lookup(f"problem of suite {self.name}", problem, dict.fromkeys(names))

    def spec(self, problem: str) -> ProblemSpec:
        """The :class:`ProblemSpec` of ``problem``."""
        return lookup(f"problem of suite {self.name}", problem, {p.problem: p for p in self.problems})

    def methods_on(self, problem: str) -> tuple[str, ...]:
        """The suite's methods that run on ``problem``, in the suite's order."""
        allowed = self.spec(problem).methods
        return tuple(m for m in self.methods if allowed is None or m in allowed)

    def restricted(self, methods: tuple[str, ...] | None, problems: tuple[str, ...] | None) -> Suite:
        """This suite on a subset of its methods and problems (names checked, closest suggested).

        A matched method brings the method it is matched to. Claims and checks
        lose the problems that are dropped.
        """
        keep_methods = self.methods
        if methods is not None:
            for name in methods:
                lookup(f"method of suite {self.name}", name, dict.fromkeys(self.methods))
            chosen = set(methods) | {m for name in methods if (m := METHODS[name].matched_to)}
            keep_methods = tuple(m for m in self.methods if m in chosen)
        keep = {p.problem for p in self.problems}
        if problems is not None:
            for name in problems:
                self.spec(name)
            keep = set(problems)
        kept = tuple(p for p in self.problems if p.problem in keep)
        parts = [
            f"methods {', '.join(keep_methods)}" if methods is not None else "",
            f"problems {', '.join(p.problem for p in kept)}" if problems is not None else "",
        ]
        restriction = " and ".join(part for part in parts if part)
        return replace(
            self,
            summary=f"{self.summary}; restricted to {restriction}" if restriction else self.summary,
            methods=keep_methods,
            problems=kept,
            claim_problems={k: tuple(p for p in v if p in keep) for k, v in self.claim_problems.items()},
            rare_features=self.rare_features if self.rare_features in keep else None,
            formula_problems=tuple(p for p in self.formula_problems if p in keep),
        )

    def to_json(self) -> str:
        """This suite as JSON (read back by :meth:`from_json`)."""
        return _serde.to_json(self, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Suite:
        """The suite that :meth:`to_json` wrote."""
        return _serde.from_json(cls, text)


# -- the suites ----------------------------------------------------------------------------

_ALL_METHODS = tuple(METHODS)
# On a surface with one zero "noise" sample every regime sees the exact gradient, so
# full-batch, mini-batch and online descent are the same method there: only sgd runs.
_EXACT = ("sgd", "momentum", "momentum-matched", "adagrad", "rmsprop", "adam")


def _surface(problem: str, steps: int, **fields: Any) -> ProblemSpec:
    """A clean 2-D surface with one (zero) sample: every update is an exact gradient step."""
    budget = Budget(steps=steps)
    return ProblemSpec(
        problem,
        full_batch=budget,
        mini_batch=budget,
        online=budget,
        options={"n_samples": 1},
        batch_size=1,
        methods=_EXACT,
        observers=("path",),
        start_jitter=0.25,
        **fields,
    )


def _noisy_surface(problem: str, epochs: int, **fields: Any) -> ProblemSpec:
    """A noisy 2-D surface, 100 samples: 5 updates an epoch in batches of 20, 100 online."""
    updates = epochs * 5
    return ProblemSpec(
        problem,
        full_batch=Budget(steps=updates),
        mini_batch=Budget(epochs=epochs),
        online=Budget(samples=updates),
        batch_size=20,
        observers=("path",),
        start_jitter=0.25,
        **fields,
    )


def _data(problem: str, n_train: int, full_steps: int, epochs: int, eval_every: int = 4, **fields: Any):
    """A problem with data: one online pass (every sample new), evaluations every few updates.

    Full-batch runs are evaluated after every update (each is a pass over the
    data), mini-batch runs every ``eval_every`` updates, online runs 20 times.
    """
    return ProblemSpec(
        problem,
        full_batch=Budget(steps=full_steps),
        mini_batch=Budget(epochs=epochs),
        online=Budget(samples=n_train),
        eval_mini_batch=Every(eval_every),
        eval_online=Every(max(1, n_train // 20), "samples"),
        **fields,
    )


_CLAIMS_DEFAULT = {
    "C1": ("quadratic-deep", "sparse-logreg", "digits-mlp", "mnist1d-mlp", "rosenbrock-noisy"),
    "C2": ("quadratic-deep", "sparse-logreg", "digits-mlp", "mnist1d-mlp"),
    "C3": ("saddle", "trap"),
    "C4": ("quadratic2d-outliers", "rosenbrock-outliers"),
    "C5": ("sparse-logreg",),
    "C6": ("quadratic-deep", "sparse-logreg", "digits-mlp", "mnist1d-mlp"),
    "C7": ("quadratic-deep", "sparse-logreg", "digits-mlp", "mnist1d-mlp", "rosenbrock-noisy"),
}

_DEFAULT = Suite(
    name="default",
    summary="every method on nine problems, 10-point half-decade lr grid, best setting rerun with 5 seeds",
    methods=_ALL_METHODS,
    problems=(
        _surface("saddle", 150),
        _surface("trap", 300),
        _noisy_surface("rosenbrock-noisy", 120),
        _noisy_surface("quadratic2d-outliers", 100),
        _noisy_surface("rosenbrock-outliers", 100),
        _data("quadratic-deep", 1000, full_steps=300, epochs=10),
        _data("sparse-logreg", 2000, full_steps=200, epochs=10),
        _data("digits-mlp", 1437, full_steps=200, epochs=10),
        _data("mnist1d-mlp", 3200, full_steps=100, epochs=6),
    ),
    lr_grid=log_grid(-3.5, 1),
    seeds=5,
    claim_problems=_CLAIMS_DEFAULT,
    rare_features="sparse-logreg",
    formula_problems=("quadratic-deep", "sparse-logreg", "digits-mlp"),
)

_QUICK = Suite(
    name="quick",
    summary="every method on six smaller problems, 6-point decade lr grid, best setting rerun with 3 seeds",
    methods=_ALL_METHODS,
    problems=(
        _surface("saddle", 150),
        _surface("trap", 300),
        _noisy_surface("rosenbrock-noisy", 100),
        _noisy_surface("quadratic2d-outliers", 60),
        _data("quadratic-deep", 500, full_steps=150, epochs=6, options={"n_train": 500}),
        _data("sparse-logreg", 1000, full_steps=100, epochs=6, options={"n_train": 1000, "n_test": 1000}),
    ),
    lr_grid=log_grid(-4, 1, per_decade=1),
    seeds=3,
    claim_problems={
        "C1": ("quadratic-deep", "sparse-logreg", "rosenbrock-noisy"),
        "C2": ("quadratic-deep", "sparse-logreg"),
        "C3": ("saddle", "trap"),
        "C4": ("quadratic2d-outliers",),
        "C5": ("sparse-logreg",),
        "C6": ("quadratic-deep", "sparse-logreg"),
        "C7": ("quadratic-deep", "sparse-logreg", "rosenbrock-noisy"),
    },
    rare_features="sparse-logreg",
    formula_problems=("rosenbrock-noisy", "quadratic-deep", "sparse-logreg"),
)

# For the tests: every claim and figure has data, in seconds. The numbers mean little.
_TINY = Suite(
    name="tiny",
    summary="a few short runs per claim, for the tests; its verdicts mean nothing",
    methods=_ALL_METHODS,
    problems=(
        _surface("saddle", 20),
        _noisy_surface("quadratic2d-outliers", 4),
        _data(
            "sparse-logreg",
            100,
            full_steps=5,
            epochs=2,
            eval_every=1,
            options={"n_train": 100, "n_test": 100, "n_features": 200},
        ),
    ),
    lr_grid=(0.01, 0.1, 1.0),
    seeds=3,
    claim_problems={
        "C1": ("sparse-logreg",),
        "C2": ("sparse-logreg",),
        "C3": ("saddle",),
        "C4": ("quadratic2d-outliers",),
        "C5": ("sparse-logreg",),
        "C6": ("sparse-logreg",),
        "C7": ("sparse-logreg", "quadratic2d-outliers"),
    },
    rare_features="sparse-logreg",
    rare_snapshots=Every(50, "samples"),
    formula_problems=("quadratic2d-outliers", "sparse-logreg"),
)

#: The one name -> suite table.
SUITES: Mapping[str, Suite] = MappingProxyType({s.name: s for s in (_DEFAULT, _QUICK, _TINY)})


def get_suite(name: str) -> Suite:
    """The suite registered as ``name``; unknown names get the closest suggestions."""
    return lookup("suite", name, SUITES)
