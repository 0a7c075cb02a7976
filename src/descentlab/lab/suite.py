"""Suites: the whole declaration of a comparison, fixed before any run, and its design variations.

A :class:`Suite` says which data problems (each a :class:`DataProblem`
with its budget per regime) and which 2-D landscapes the claims read, the
learning-rate grid every tuned method is tried on (and the grid twice as fine
that claim C7 reads), the seeds (the tuning seed, the judging seeds, C7's
seeds), the starts on the 2-D surfaces, the methods (the built-in ones and
the user's), and which design variations re-judge the verdicts.

Tuning and judging use separate data: tuning reads the validation half of a
problem's test split with the tuning seed (on a surface: its own set of
starts); the verdicts read the other half, with other seeds (other starts).

:meth:`Suite.variant` gives the suite under one design variation
(:data:`VARIANTS`): the grid shifted by half a step, another geometry of each
problem, twice the budget, another tuning seed. Every verdict is judged
again on each.

>>> suite = get_suite("default")
>>> len(suite.grid), len(suite.fine_grid()), suite.seeds, suite.starts
(10, 19, 5, 30)
>>> Suite.from_json(suite.to_json()) == suite
True
>>> get_suite("quick").variant("grid-shift").grid[:2]
(0.000316, 0.00316)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .. import _serde
from .._registry import lookup
from ..train import Budget, Every
from .landscapes import LANDSCAPES
from .methods import METHODS, Method, mistake_method
from .mistakes import MISTAKES

#: The design variations every verdict is judged again under.
VARIANTS: Mapping[str, str] = MappingProxyType(
    {
        "grid-shift": "the learning-rate grid shifted by half a step",
        "geometry": "another geometry of every problem (another draw, width, feature law or curvature)",
        "budget": "twice the budget",
        "tuning-seed": "another tuning seed",
    }
)


def log_grid(low_exponent: float, high_exponent: float, per_decade: int = 2) -> tuple[float, ...]:
    """Learning rates evenly spaced in log scale, ``per_decade`` a decade, from 10**low to 10**high.

    >>> log_grid(-2, 0)
    (0.01, 0.0316, 0.1, 0.316, 1.0)
    """
    steps = range(round(low_exponent * per_decade), round(high_exponent * per_decade) + 1)
    return tuple(_round(10 ** (k / per_decade)) for k in steps)


def _round(value: float) -> float:
    # Three significant digits: readable in tables, and exactly the numbers the configurations hold.
    return float(f"{value:.3g}")


@dataclass(frozen=True)
class DataProblem:
    """A problem with data as a suite runs it: its options and each regime's budget and evaluations.

    Full-batch runs are evaluated after every update (each is a pass over the
    data); ``geometry`` holds the options of the *geometry* variation.
    ``label`` is the name the claims and the report give it (default: the
    registry's name ``problem``), so that a suite can hold one registry
    problem at two sizes. ``n_train``: the training set's size, the batch of
    a run whose every batch is the whole set.
    """

    problem: str
    full_batch: Budget
    mini_batch: Budget
    online: Budget
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    eval_mini_batch: Every = field(default_factory=lambda: Every(4))
    eval_online: Every = field(default_factory=lambda: Every(100, "samples"))
    geometry: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    n_train: int | None = None

    @property
    def name(self) -> str:
        """The name the suite's claims read it by: its label, or the registry's name."""
        return self.label or self.problem

    def budget(self, regime: str, factor: float = 1.0) -> Budget:
        """The budget of runs in ``regime``, times ``factor``."""
        base = {"full-batch": self.full_batch, "mini-batch": self.mini_batch, "online": self.online}[regime]
        return Budget(**{k: math.ceil(v * factor) for k, v in vars(base).items() if v is not None})

    def eval_every(self, regime: str) -> Every:
        """The held-out evaluation interval of runs in ``regime``."""
        return {"full-batch": Every(1), "mini-batch": self.eval_mini_batch, "online": self.eval_online}[
            regime
        ]


@dataclass(frozen=True)
class Suite:
    """Everything a comparison runs, declared before it runs (see the module docstring).

    ``claim_problems`` names, for each claim, the data problems and
    landscapes it reads; ``steps`` the updates on each landscape;
    ``user_methods`` the user's methods (filling roles beside the built-in
    ones); ``variants`` the design variations to judge again under.
    """

    name: str
    summary: str
    problems: tuple[DataProblem, ...]
    steps: dict[str, int]
    grid: tuple[float, ...]
    per_decade: int
    claim_problems: dict[str, tuple[str, ...]]
    formula_problems: tuple[str, ...] = ()
    seeds: int = 5
    grid_seeds: int = 5
    starts: int = 30
    tuning_seed: int = 0
    budget_factor: float = 1.0
    long_factor: int = 5
    geometry: bool = False
    variants: tuple[str, ...] = tuple(VARIANTS)
    user_methods: tuple[Method, ...] = ()
    methods_only: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.seeds < 5:
            raise ValueError(
                f"suite {self.name}: every verdict needs at least 5 seeds; received {self.seeds}"
            )
        if not 5 <= self.grid_seeds <= self.seeds:
            raise ValueError(
                f"suite {self.name}: C7 needs 5 seeds or more, at most the suite's {self.seeds} (a case is "
                f"decided on 5 units or more); received {self.grid_seeds}"
            )
        if self.starts < 20:
            raise ValueError(
                f"suite {self.name}: the 2-D surfaces need at least 20 starts; received {self.starts}"
            )
        if len(self.grid) < 2 or any(not (lr > 0 and math.isfinite(lr)) for lr in self.grid):
            raise ValueError(f"suite {self.name}: the grid must hold at least two positive learning rates")
        for variant in self.variants:
            lookup("design variation", variant, VARIANTS)
        known = {p.name for p in self.problems} | set(self.steps)
        if len(known) < len(self.problems) + len(self.steps):
            raise ValueError(f"suite {self.name}: two problems have the same name; give one a label")
        for problems in (*self.claim_problems.values(), self.formula_problems):
            for problem in problems:
                lookup(f"problem of suite {self.name}", problem, dict.fromkeys(known))
        for land in self.steps:
            lookup("landscape", land, LANDSCAPES)
        if self.tuning_seed in self.judge_seeds:
            raise ValueError(f"suite {self.name}: the tuning seed {self.tuning_seed} is also a judging seed")

    # -- what the claims read ---------------------------------------------------------------

    def data(self, problem: str) -> DataProblem:
        """The :class:`DataProblem` named ``problem``."""
        return lookup(f"problem of suite {self.name}", problem, {p.name: p for p in self.problems})

    def options(self, problem: str) -> dict[str, Any]:
        """The options ``problem`` runs with in this suite (its geometry's, under that variation)."""
        spec = self.data(problem)
        return {**spec.options, **(spec.geometry if self.geometry else {})}

    def landscape(self, name: str):
        """The landscape ``name`` as this suite runs it (reshaped under the geometry variation)."""
        land = LANDSCAPES[name]
        return land.reshaped(**land.geometry) if self.geometry and land.geometry else land

    def surface_steps(self, name: str) -> int:
        """The updates on landscape ``name`` (its control runs as long as it does)."""
        key = LANDSCAPES[name].control_of or name
        return math.ceil(self.steps[key] * self.budget_factor)

    def reads(self, claim: str) -> tuple[str, ...]:
        """The problems and landscapes ``claim`` reads in this suite."""
        return self.claim_problems.get(claim, ())

    def fine_grid(self) -> tuple[float, ...]:
        """C7's grid: twice as fine as :attr:`grid`, over the same range (it holds the grid's points)."""
        low = math.log10(self.grid[0]) * self.per_decade
        high = math.log10(self.grid[-1]) * self.per_decade
        steps = range(round(2 * low), round(2 * high) + 1)
        return tuple(_round(10 ** (k / (2 * self.per_decade))) for k in steps)

    @property
    def judge_seeds(self) -> tuple[int, ...]:
        """The seeds the verdicts read, 1 to ``seeds``: never a tuning seed (0, or 100 in the variation)."""
        return tuple(range(1, 1 + self.seeds))

    @property
    def grid_seed_list(self) -> tuple[int, ...]:
        """C7's seeds (the first judging seeds)."""
        return self.judge_seeds[: self.grid_seeds]

    def methods(self) -> dict[str, Method]:
        """Every method by name: the built-in ones (those kept by ``methods_only``), the user's, and the
        formula check's mistaken rules (which fill no role)."""
        built = {n: m for n, m in METHODS.items() if self.methods_only is None or n in self.methods_only}
        mistakes = {name: mistake_method(name) for name in MISTAKES}
        return {**built, **{m.name: m for m in self.user_methods}, **mistakes}

    def in_role(self, role: str) -> tuple[str, ...]:
        """The names of the methods filling ``role``: the built-in one first, then the user's."""
        return tuple(n for n, m in self.methods().items() if role in m.roles)

    # -- variations -------------------------------------------------------------------------

    def variant(self, name: str) -> Suite:
        """This suite under design variation ``name`` (see :data:`VARIANTS`); it has no variations itself."""
        lookup("design variation", name, VARIANTS)
        plain = replace(self, variants=())
        if name == "grid-shift":
            shift = 10 ** (0.5 / self.per_decade)
            return replace(
                plain, name=f"{self.name}/grid-shift", grid=tuple(_round(lr * shift) for lr in self.grid)
            )
        if name == "geometry":
            return replace(plain, name=f"{self.name}/geometry", geometry=True)
        if name == "budget":
            return replace(plain, name=f"{self.name}/budget", budget_factor=2 * self.budget_factor)
        return replace(plain, name=f"{self.name}/tuning-seed", tuning_seed=self.tuning_seed + 100)

    def claims(self) -> tuple[str, ...]:
        """The claims this suite judges (those it names problems for), in the registry's order."""
        from .claims import CLAIMS

        return tuple(c for c in CLAIMS if self.claim_problems.get(c))

    def restricted(self, claims: tuple[str, ...] | None, problems: tuple[str, ...] | None) -> Suite:
        """This suite on some of its claims and problems (names checked, the closest suggested).

        The summary says what it is restricted to; a claim left with no problem is dropped.
        """
        if claims is None and problems is None:
            return self
        from .claims import CLAIMS

        for claim in claims or ():
            lookup(f"claim of suite {self.name}", claim, {c: c for c in CLAIMS if self.claim_problems.get(c)})
        known = {p.name for p in self.problems} | set(self.steps)
        for problem in problems or ():
            lookup(f"problem of suite {self.name}", problem, dict.fromkeys(sorted(known)))
        keep = set(problems) if problems is not None else known
        chosen = {
            claim: tuple(p for p in names if p in keep)
            for claim, names in self.claim_problems.items()
            if claims is None or claim in claims
        }
        chosen = {c: names for c, names in chosen.items() if names}
        if not chosen:
            raise ValueError(
                f"no claim of suite {self.name} reads any of the problems {', '.join(problems or ())}"
            )
        parts = [f"claims {', '.join(chosen)}" if claims is not None else ""]
        parts.append(f"problems {', '.join(sorted(keep))}" if problems is not None else "")
        restriction = " and ".join(p for p in parts if p)
        return replace(
            self,
            summary=f"{self.summary}; restricted to {restriction}",
            claim_problems=chosen,
            formula_problems=tuple(p for p in self.formula_problems if p in keep) if claims is None else (),
        )

    def with_methods(self, user: tuple[Method, ...]) -> Suite:
        """This suite with the user's methods added."""
        return replace(self, user_methods=self.user_methods + tuple(user))

    def to_json(self) -> str:
        """This suite as JSON (read back by :meth:`from_json`)."""
        return _serde.to_json(self, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Suite:
        """The suite that :meth:`to_json` wrote."""
        return _serde.from_json(cls, text)


# -- the suites ----------------------------------------------------------------------------


def _data(problem: str, n_train: int, full_steps: int, epochs: int, **fields: Any) -> DataProblem:
    return DataProblem(
        problem,
        full_batch=Budget(steps=full_steps),
        mini_batch=Budget(epochs=epochs),
        online=Budget(samples=n_train),
        eval_online=Every(max(1, n_train // 20), "samples"),
        n_train=n_train,
        **fields,
    )


_QUADRATIC = _data("quadratic-deep", 1000, 300, 10, geometry={"data_seed": 1})
_SPARSE = _data("sparse-logreg", 2000, 200, 10, geometry={"zipf": 1.3})
_DIGITS = _data("digits-mlp", 1438, 200, 10, geometry={"hidden": 32})
# C8's problems are sized so that lean optimizer state applies (parameters of 4,096 elements or more):
# digits' 64 x 64 weight above, MNIST-1D's 100 x 100 one, and a 4,096-D quadratic (axis-aligned, so cheap).
# Short, to keep the default run's time (C8's control needs longer runs: the lean suite has them).
_MNIST1D = _data("mnist1d-mlp", 3200, 100, 2, eval_mini_batch=Every(1, "epochs"))
_QUADRATIC_4096 = _data(
    "quadratic-deep",
    1000,
    300,
    5,
    options={"dim": 4096, "rotated": False},
    eval_mini_batch=Every(1, "epochs"),
    label="quadratic-4096",
)

_SADDLES = ("saddle", "saddle-narrow", "saddle-stiff", "trap")
_STEPS = {"saddle": 150, "saddle-narrow": 600, "saddle-stiff": 1500, "trap": 300}
_NOISY = {
    "quadratic2d-outliers": 300,
    "rosenbrock-outliers": 500,
    "quadratic2d-noisy": 300,
    "rosenbrock-noisy": 500,
}

_DEFAULT = Suite(
    name="default",
    summary="five data problems (two of them, and the digits, sized for C8's lean state) and twelve 2-D "
    "landscapes; a 10-point half-decade grid (C7: 19 points); 5 judging seeds, 30 starts; "
    "four design variations",
    problems=(_QUADRATIC, _SPARSE, _DIGITS, _MNIST1D, _QUADRATIC_4096),
    steps={**_STEPS, **_NOISY},
    grid=log_grid(-3.5, 1),
    per_decade=2,
    claim_problems={
        "C1": ("quadratic-deep", "sparse-logreg", "digits-mlp"),
        "C2": ("quadratic-deep", "sparse-logreg", "digits-mlp"),
        "C3": _SADDLES,
        "C4": ("quadratic2d-outliers", "rosenbrock-outliers"),
        "C5": ("sparse-logreg",),
        "C6": ("quadratic-deep", "sparse-logreg"),
        "C7": (
            "quadratic-deep",
            "quadratic2d-noisy",
            "rosenbrock-noisy",
            "quadratic2d-outliers",
            "rosenbrock-outliers",
        ),
        "C8": ("quadratic-4096", "digits-mlp", "mnist1d-mlp"),
    },
    formula_problems=("quadratic-deep", "sparse-logreg"),
)

_QUICK = Suite(
    name="quick",
    summary="three small data problems and the 2-D landscapes; a one-point-a-decade grid (C7: two a decade); "
    "5 judging seeds, 20 starts; the grid-shift variation",
    problems=(
        _data("quadratic-deep", 500, 150, 6, options={"n_train": 500}, geometry={"data_seed": 1}),
        _data("sparse-logreg", 600, 100, 6, options={"n_train": 600, "n_test": 1000}, geometry={"zipf": 1.3}),
        _data("digits-mlp", 1438, 100, 5, eval_mini_batch=Every(1, "epochs")),
    ),
    steps={**_STEPS, **{k: v // 2 for k, v in _NOISY.items()}},
    grid=log_grid(-4, 1, per_decade=1),
    per_decade=1,
    claim_problems={
        "C1": ("quadratic-deep", "sparse-logreg"),
        "C2": ("quadratic-deep", "sparse-logreg"),
        "C3": _SADDLES,
        "C4": ("quadratic2d-outliers", "rosenbrock-outliers"),
        "C5": ("sparse-logreg",),
        "C6": ("quadratic-deep",),
        "C7": ("quadratic-deep", "quadratic2d-noisy", "rosenbrock-noisy"),
        "C8": ("digits-mlp",),
    },
    formula_problems=("quadratic-deep",),
    starts=20,
    long_factor=5,
    variants=("grid-shift",),
)

# C8 with runs long enough for plain rounding's known failure to show (Adam's second moment stops
# changing after a few hundred updates; the loss moves with it only later): too long for the default run.
_LEAN = Suite(
    name="lean",
    summary="claim C8 alone, on MNIST-1D for 20 epochs (2,000 updates), so that plain rounding's "
    "failure has time to show; a 10-point half-decade grid; 5 judging seeds; no design variation",
    problems=(_data("mnist1d-mlp", 3200, 100, 20, eval_mini_batch=Every(1, "epochs")),),
    steps={},
    grid=log_grid(-3.5, 1),
    per_decade=2,
    claim_problems={"C8": ("mnist1d-mlp",)},
    variants=(),
)

# For the tests: every claim and figure has data, in seconds. The numbers mean little.
_TINY = Suite(
    name="tiny",
    summary="a few short runs per claim, for the tests; its verdicts mean nothing",
    problems=(
        _data(
            "sparse-logreg",
            100,
            5,
            2,
            options={"n_train": 100, "n_test": 100, "n_features": 200},
            geometry={"zipf": 1.3},
        ),
        _data(
            "quadratic-deep",
            64,
            5,
            2,
            options={"dim": 4096, "rotated": False, "n_train": 64, "n_test": 64},
            label="quadratic-4096",
        ),
    ),
    steps={"saddle": 20, "trap": 20, "quadratic2d-outliers": 20, "quadratic2d-noisy": 20},
    grid=(0.01, 0.1, 1.0),
    per_decade=1,
    claim_problems={
        "C1": ("sparse-logreg",),
        "C2": ("sparse-logreg",),
        "C3": ("saddle", "trap"),
        "C4": ("quadratic2d-outliers",),
        "C5": ("sparse-logreg",),
        "C6": ("sparse-logreg",),
        "C7": ("sparse-logreg", "quadratic2d-noisy"),
        "C8": ("quadratic-4096",),
    },
    formula_problems=("sparse-logreg",),
    starts=20,
    long_factor=2,
    variants=("grid-shift",),
)

#: The one name -> suite table.
SUITES: Mapping[str, Suite] = MappingProxyType({s.name: s for s in (_DEFAULT, _QUICK, _LEAN, _TINY)})


def get_suite(name: str) -> Suite:
    """The suite registered as ``name``; unknown names get the closest suggestions."""
    return lookup("suite", name, SUITES)
