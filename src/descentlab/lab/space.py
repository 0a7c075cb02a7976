"""Search spaces: the runs of a sweep declared as data, expanded as a grid or sampled at random.

A :class:`Space` names the problems, the optimizers with a space of
hyperparameters for each (so SGD's ``momentum`` is never handed to Adam),
and optionally the regime, batch size, budget, problem options and seeds.
Each is a fixed value or a dimension:

- :class:`Choice` (a list of values), :class:`Grid` (evenly spaced) and
  :class:`LogGrid` (evenly spaced on a log scale: learning-rate tuning) have
  finitely many points, so they expand into a grid;
- :class:`Uniform` and :class:`LogUniform` are continuous and can only be
  sampled.

:meth:`Space.expand` gives the grid; :meth:`Space.sample` draws random
settings for each problem and optimizer, from generators derived from one
seed (adding a problem changes nothing drawn for the others). Whatever is
not given (regime, batch size, budget) comes from each problem's documented
setting. Every configuration is checked before it is returned (names, values,
option names), so a bad space fails before anything runs.

A spec file (:mod:`descentlab.lab.spec`) writes the same thing in TOML or JSON.

>>> space = Space(problem="saddle", optimizers={"sgd": {"lr": LogGrid(0.01, 1, 3)}, "adam": {}})
>>> [(c.optimizer, c.hyperparameters) for c in space.expand()]
[('sgd', {'lr': 0.01}), ('sgd', {'lr': 0.1}), ('sgd', {'lr': 1.0}), ('adam', {})]
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from .. import _random
from .._registry import lookup
from ..optim import OPTIMIZERS, get_optimizer
from ..problems import PROBLEMS, make_problem
from ..problems import options as problem_options
from ..train import (
    Budget,
    RunConfig,
    build_optimizer,
    build_scheduler,
    default_config,
    get_observer,
)
from ..train.config import REGIMES

# -- dimensions -----------------------------------------------------------------------------


def _round(value: float) -> float:
    # Ten significant digits: grid points read as typed (0.001, not 0.0010000000000000002),
    # and a point computed by another platform's libm gets the same run key.
    return float(f"{value:.10g}")


def _finite(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number; received {name}={value!r}")


def _check_range(owner: str, low: float, high: float, log: bool) -> None:
    _finite(owner, "low", low)
    _finite(owner, "high", high)
    if log and low <= 0:
        raise ValueError(f"{owner}: low must be > 0 for a log scale; received low={low!r}")
    if low >= high:
        raise ValueError(f"{owner}: low must be < high; received low={low!r}, high={high!r}")


def _integral(low: object, high: object) -> bool:
    return all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (low, high))


#: The most values one grid may give, and the most runs one space may expand to: a slip
#: (``n = 100000000000``) is refused at once instead of filling the memory with configurations.
MAX_POINTS = 10_000
MAX_RUNS = 100_000


def _check_count(owner: str, n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(
            f"{owner}: n must be an integer >= 2 (for one value, give the value itself); received n={n!r}"
        )
    if n > MAX_POINTS:
        raise ValueError(f"{owner}: n must be at most {MAX_POINTS:,}; received n={n!r}")


def _check_runs(runs: int) -> None:
    if runs > MAX_RUNS:
        raise SpaceError(
            "size",
            f"it makes {runs:,} runs, more than the {MAX_RUNS:,} one sweep may have: "
            "split it into several specs, or give fewer values or samples",
        )


def _points(values: list[float], integral: bool, owner: str = "") -> tuple[Any, ...]:
    if integral:  # integer ends give integers (batch sizes, seeds)
        points = tuple(dict.fromkeys(round(v) for v in values))
        if len(points) < len(values):
            # Two points rounding to one integer: the grid would silently have fewer runs
            # than n (Grid(0, 1, 5) is 0 and 1), most likely a range of reals written as integers.
            raise ValueError(
                f"{owner}: integer ends give integer points, and only {len(points)} of the {len(values)} "
                f"differ ({', '.join(map(str, points))}): for real values write the ends as reals "
                "(0.0, 1.0), or give a smaller n"
            )
        return points
    return tuple(_round(v) for v in values)


@dataclass(frozen=True)
class Choice:
    """A list of values: each is tried in a grid, or drawn with equal probability at random.

    >>> Choice([0.0, 0.9]).points()
    (0.0, 0.9)
    """

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if isinstance(self.values, str) or not isinstance(self.values, Sequence | range):
            raise ValueError(f"Choice: values must be a list; received values={self.values!r}")
        if len(self.values) == 0:
            raise ValueError("Choice: give at least one value; received an empty list")
        object.__setattr__(self, "values", tuple(self.values))

    def points(self) -> tuple[Any, ...]:
        """The values, in order."""
        return self.values

    def draw(self, rng: np.random.Generator) -> Any:
        """One value, each with equal probability."""
        return self.values[int(rng.integers(len(self.values)))]


@dataclass(frozen=True)
class Grid:
    """``n`` evenly spaced values from ``low`` to ``high``, both included; integers if both ends are.

    >>> Grid(0.0, 0.9, 4).points()
    (0.0, 0.3, 0.6, 0.9)
    """

    low: float
    high: float
    n: int

    def __post_init__(self) -> None:
        _check_range("Grid", self.low, self.high, log=False)
        _check_count("Grid", self.n)
        self.points()  # refuses integer ends too close for n distinct points, before any run

    def points(self) -> tuple[Any, ...]:
        """The grid, from low to high."""
        step = (self.high - self.low) / (self.n - 1)
        values = [self.low + i * step for i in range(self.n - 1)] + [self.high]
        return _points(values, _integral(self.low, self.high), f"Grid({self.low}, {self.high}, {self.n})")

    def draw(self, rng: np.random.Generator) -> Any:
        """One of the points, each with equal probability."""
        points = self.points()
        return points[int(rng.integers(len(points)))]


@dataclass(frozen=True)
class LogGrid:
    """``n`` values from ``low`` to ``high`` evenly spaced on a log scale: how learning rates are tuned.

    >>> LogGrid(1e-4, 1e-1, 4).points()
    (0.0001, 0.001, 0.01, 0.1)
    >>> LogGrid(16, 256, 5).points()
    (16, 32, 64, 128, 256)
    """

    low: float
    high: float
    n: int

    def __post_init__(self) -> None:
        _check_range("LogGrid", self.low, self.high, log=True)
        _check_count("LogGrid", self.n)
        self.points()  # refuses integer ends too close for n distinct points, before any run

    def points(self) -> tuple[Any, ...]:
        """The grid, from low to high."""
        ratio = self.high / self.low
        values = [self.low * ratio ** (i / (self.n - 1)) for i in range(self.n - 1)] + [self.high]
        return _points(values, _integral(self.low, self.high), f"LogGrid({self.low}, {self.high}, {self.n})")

    def draw(self, rng: np.random.Generator) -> Any:
        """One of the points, each with equal probability."""
        points = self.points()
        return points[int(rng.integers(len(points)))]


@dataclass(frozen=True)
class Uniform:
    """Any value from ``low`` to ``high``, uniformly (integers if both ends are); random search only."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_range("Uniform", self.low, self.high, log=False)

    def points(self) -> tuple[Any, ...]:
        """Refused: a continuous range has no grid (use Grid, or random search)."""
        raise ValueError(
            f"Uniform({self.low}, {self.high}) is continuous: use Grid(low, high, n) for a grid, "
            "or random search (samples)"
        )

    def draw(self, rng: np.random.Generator) -> Any:
        """One value, uniformly."""
        return _points([float(rng.uniform(self.low, self.high))], _integral(self.low, self.high))[0]


@dataclass(frozen=True)
class LogUniform:
    """Any value from ``low`` to ``high``, uniformly on a log scale (integers if both ends are); random only.

    >>> rng = np.random.default_rng(0)
    >>> all(1e-4 <= LogUniform(1e-4, 1e-1).draw(rng) <= 1e-1 for _ in range(100))
    True
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_range("LogUniform", self.low, self.high, log=True)

    def points(self) -> tuple[Any, ...]:
        """Refused: a continuous range has no grid (use LogGrid, or random search)."""
        raise ValueError(
            f"LogUniform({self.low}, {self.high}) is continuous: use LogGrid(low, high, n) for a grid, "
            "or random search (samples)"
        )

    def draw(self, rng: np.random.Generator) -> Any:
        """One value, uniformly in log(value)."""
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return _points([min(max(value, self.low), self.high)], _integral(self.low, self.high))[0]


Dimension = Choice | Grid | LogGrid | Uniform | LogUniform
DIMENSIONS: tuple[type, ...] = (Choice, Grid, LogGrid, Uniform, LogUniform)


def _grid_points(value: Any) -> tuple[Any, ...]:
    return value.points() if isinstance(value, DIMENSIONS) else (value,)


def _draw(value: Any, rng: np.random.Generator) -> Any:
    return value.draw(rng) if isinstance(value, DIMENSIONS) else value


def _axes(space: Mapping[str, Any], prefix: str = "") -> list[tuple[Any, ...]]:
    axes = []
    for name, value in space.items():
        try:
            axes.append(_grid_points(value))
        except ValueError as err:
            raise SpaceError(prefix + name, str(err)) from None
    return axes


def _product(space: Mapping[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    names = list(space)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*_axes(space, prefix))]


# -- the space ----------------------------------------------------------------------------------


class SpaceError(ValueError):
    """A malformed space: ``where`` names the entry (``optimizers.sgd.lr``), ``reason`` the problem."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"space: {where}: {reason}")
        self.where = where
        self.reason = reason


#: RunConfig fields a space holds fixed (the same for every run), beside the searchable ones.
SETTINGS: tuple[str, ...] = (
    "chunk_size",
    "drop_last",
    "eval_every",
    "schedule",
    "observers",
    "skip_nonfinite",
)


def _natural(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def hyperparameter_names(optimizer: str) -> list[str]:
    """The hyperparameters optimizer ``optimizer`` accepts (its constructor's keyword arguments)."""
    cls = get_optimizer(optimizer)
    skip = ("self", "params", "skip_nonfinite")
    return [p for p in inspect.signature(cls.__init__).parameters if p not in skip]


@dataclass(frozen=True)
class Space:
    """A search space over runs (see the module docstring); checked on construction.

    ``optimizers`` maps each optimizer's name to its hyperparameter space
    (``{}``: its defaults). ``regime``, ``batch_size`` and ``budget`` left at
    None come from each problem's documented setting. ``seed`` lists the
    seeds every setting is run with. ``settings`` holds other
    :class:`~descentlab.train.RunConfig` fields, fixed (:data:`SETTINGS`).
    """

    problem: str | Choice
    optimizers: Mapping[str, Mapping[str, Any]]
    seed: int | Dimension = 0
    regime: str | Choice | None = None
    batch_size: int | Dimension | None = None
    budget: Budget | Choice | None = None
    problem_options: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = self._names("problem", self.problem)
        for name in problems:
            self._known("problem", "problem", name, PROBLEMS)
        if not isinstance(self.optimizers, Mapping) or not self.optimizers:
            raise SpaceError("optimizers", "give at least one optimizer, each with its hyperparameters")
        for optimizer, hyper in self.optimizers.items():
            where = f"optimizers.{optimizer}"
            self._known(where, "optimizer", optimizer, OPTIMIZERS)
            if not isinstance(hyper, Mapping):
                raise SpaceError(where, f"must map hyperparameter names to values; received {hyper!r}")
            accepted = dict.fromkeys(hyperparameter_names(optimizer))
            for name in hyper:
                self._known(where, f"hyperparameter of {optimizer}", name, accepted)
        for name in self._names("regime", self.regime, optional=True):
            self._known("regime", "regime", name, dict.fromkeys(REGIMES))
        if isinstance(self.seed, Uniform | LogUniform):
            raise SpaceError("seed", "seeds are a value, a list or a grid, not a continuous range")
        self._values("seed", self.seed, lambda s: _natural(s, 0), "integers >= 0")
        if self.batch_size is not None:
            self._values("batch_size", self.batch_size, lambda b: _natural(b, 1), "positive integers")
        if self.budget is not None:
            self._values("budget", self.budget, lambda b: isinstance(b, Budget), "Budget objects")
        for name in problems:
            known = problem_options(name)
            for option in self.problem_options:
                where = f"problem_options.{option}"
                if not known:
                    raise SpaceError(where, f"problem {name!r} takes no options")
                self._known(where, f"option of problem {name!r}", option, known)
        for name in self.settings:
            self._known(f"settings.{name}", "setting", name, dict.fromkeys(SETTINGS))

    # -- checks ---------------------------------------------------------------------------

    @staticmethod
    def _names(where: str, value: Any, optional: bool = False) -> tuple[str, ...]:
        if value is None and optional:
            return ()
        names = value.values if isinstance(value, Choice) else (value,)
        for name in names:
            if not isinstance(name, str):
                raise SpaceError(where, f"must be a name or a Choice of names; received {value!r}")
        return names

    @staticmethod
    def _known(where: str, kind: str, name: str, table: Mapping[str, Any]) -> None:
        try:
            lookup(kind, name, table)
        except LookupError as err:
            raise SpaceError(where, str(err)) from None

    @staticmethod
    def _values(where: str, value: Any, valid: Any, wanted: str) -> None:
        if isinstance(value, Uniform | LogUniform):
            candidates: tuple[Any, ...] = (value.low, value.high)
        else:
            candidates = _grid_points(value)
        bad = [v for v in candidates if not valid(v)]
        if bad:
            raise SpaceError(where, f"must be {wanted}; received {bad[0]!r}")

    # -- the runs -------------------------------------------------------------------------------

    def expand(self) -> list[RunConfig]:
        """Every combination, in a fixed order (problem, optimizer, hyperparameters, ..., seed).

        A continuous dimension (Uniform, LogUniform) cannot be expanded: use
        its grid counterpart, or :meth:`sample`.
        """
        each = math.prod(map(len, _axes(self._others()))) * len(_grid_points(self.seed))
        hyper = sum(math.prod(map(len, _axes(h, f"optimizers.{o}."))) for o, h in self.optimizers.items())
        _check_runs(len(_grid_points(self.problem)) * hyper * each)
        configs = []
        for problem in _grid_points(self.problem):
            for optimizer, hyper_space in self.optimizers.items():
                for hyper in _product(hyper_space, f"optimizers.{optimizer}."):
                    for rest in _product(self._others()):
                        configs.extend(self._configs(problem, optimizer, hyper, rest))
        return configs

    def sample(self, samples: int, seed: int = 0) -> list[RunConfig]:
        """``samples`` random settings for each problem and optimizer, each run with every seed.

        Every dimension but the seeds is drawn independently (a Choice or a
        grid uniformly among its points); the draws for one problem and
        optimizer come from a generator derived from ``seed`` and their names.
        """
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise SpaceError("samples", f"must be a positive integer; received samples={samples!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SpaceError("random seed", f"must be an integer >= 0; received seed={seed!r}")
        _check_runs(
            len(_grid_points(self.problem)) * len(self.optimizers) * samples * len(_grid_points(self.seed))
        )
        configs = []
        for problem in _grid_points(self.problem):
            for optimizer, hyper_space in self.optimizers.items():
                rng = _random.numpy_generator(seed, "space", problem, optimizer)
                for _ in range(samples):
                    hyper = {k: _draw(v, rng) for k, v in hyper_space.items()}
                    rest = {k: _draw(v, rng) for k, v in self._others().items()}
                    configs.extend(self._configs(problem, optimizer, hyper, rest))
        return configs

    def _others(self) -> dict[str, Any]:
        others = {"regime": self.regime, "batch_size": self.batch_size, "budget": self.budget}
        others.update({f"problem_options.{k}": v for k, v in self.problem_options.items()})
        return others

    def _configs(
        self, problem: str, optimizer: str, hyper: dict[str, Any], rest: dict[str, Any]
    ) -> list[RunConfig]:
        prefix = "problem_options."
        options = {k.removeprefix(prefix): v for k, v in rest.items() if k.startswith(prefix)}
        fields = {k: rest[k] for k in ("regime", "batch_size", "budget") if rest[k] is not None}
        configs = []
        for seed in _grid_points(self.seed):
            settings = " ".join(f"{k}={v!r}" for k, v in {**hyper, **options}.items())
            where = f"{problem} with {optimizer}{' ' + settings if settings else ''}, seed {seed}"
            try:
                config = default_config(
                    problem,
                    optimizer=optimizer,
                    problem_options=options,
                    seed=seed,
                    **fields,
                    **self.settings,
                )
                # Exactly the hyperparameters the space names: not the problem's documented ones,
                # which would hand momentum to one method on some problems and not on others.
                config = dataclasses.replace(config, hyperparameters=dict(hyper))
                check_config(config)
            except (ValueError, LookupError, TypeError) as err:
                raise SpaceError(where, " ".join(str(err).split())) from None
            configs.append(config)
        return configs


def check_config(config: RunConfig) -> None:
    """Raise ValueError or LookupError if ``config`` could not start: names, options, values.

    Builds the problem (its data are built only when used), the optimizer
    on a dummy parameter, the schedule and the observers; trains nothing.
    What only training shows (a missing data directory, divergence) is
    found when the run is made.
    """
    make_problem(config.problem, **config.problem_options)
    optimizer = build_optimizer(
        config.optimizer, [torch.zeros(1, requires_grad=True)], config.hyperparameters, config.skip_nonfinite
    )
    scheduler = build_scheduler(config.schedule, optimizer)
    if scheduler is not None:
        # One step on the dummy optimizer: arguments torch checks only when stepping (StepLR's
        # step_size=0 divides by zero) are refused here, not in every run of the sweep.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": a dummy
            try:
                scheduler.step(0.0) if isinstance(scheduler, ReduceLROnPlateau) else scheduler.step()
            except (ArithmeticError, ValueError, TypeError) as err:
                name = config.schedule.name if config.schedule else ""
                raise ValueError(f"scheduler {name}: {type(err).__name__}: {err}") from None
    for name in config.observers:
        get_observer(name)
