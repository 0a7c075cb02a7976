r"""The playground's computation: optimizer paths on a 2-D surface, with every term of each update.

Nothing here knows about the web: :func:`parse_request` turns a JSON-like
dict into a checked :class:`PathRequest` (or raises :class:`RequestError`
naming the field and the value), and :func:`compute_paths` runs descentlab's
own optimizer classes (and the lab's mistaken rules, :data:`MISTAKES`) on
the surface, one update at a time, reading each update's terms from the
optimizer's real state: nothing of the rules is re-implemented here or in
the page. Each class's rule (its ``coefficients`` and ``update``, what its
``step()`` applies to each parameter) is called directly on state the class
created, without ``step()``'s per-call plumbing, and every run's numbers
live in one buffer copied once per update: 6 runs of 500 updates take about
50 ms (``python -m descentlab.playground.bench``).

The regimes are the training loop's (:func:`descentlab.train.fit`): the loss
is the surface problem's (:class:`~descentlab.problems.surfaces.SurfacePoint`'s
:math:`f(\theta) + \xi_i^\top \theta`, averaged over a batch of noise
vectors), and the samples come in the order :func:`descentlab.train.data.order`
draws from the seed, so a path here is the ``path`` observer's record of
``descentlab run`` with the same settings (a test checks it).

>>> request = parse_request({"surface": "quadratic2d", "start": [-4, 1], "updates": 3,
...                          "runs": [{"optimizer": "sgd", "hyperparameters": {"lr": 0.01}}]})
>>> [round(x, 4) for x in compute_paths(request)["runs"][0]["points"][1]]
[-3.96, 0.5]
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .._registry import UnknownNameError, lookup
from ..lab.mistakes import BETA1, BETA2, MISTAKES, Mistake
from ..optim import OPTIMIZERS, Optimizer, OptionError
from ..problems import PROBLEMS, Surface, make_problem
from ..train.config import REGIMES
from ..train.data import order

# The lab's measure of the per-coordinate effective learning rate (claim C6),
# so the number a reader sees here is the one the lab's verdicts read.
from ..train.observers import per_coordinate_lr
from .formula import FormulaError, parse_formula

#: Limits on one request's work and answer. They bound it, not make it instant: every term of
#: every update of every run is sent, so the largest request (12 runs of 2,000 updates on a noisy
#: surface, online) takes seconds rather than the page's usual milliseconds, and answers with
#: about ten MB of JSON. The page's default view is far below them.
MAX_UPDATES = 2000
MAX_RUNS = 12
MAX_SEED = 2**31 - 1
MAX_SPAN = 1e6
GRID = 96  # contour grid points per axis
CUSTOM = "custom"
#: The fields that name a surface (``POST /api/surface`` takes these alone).
SURFACE_FIELDS = ("surface", "formula", "bounds")


class RequestError(ValueError):
    """A request the playground refuses; the message names the field and echoes the value.

    ``key`` and ``params`` name the message in the page's catalogue, so that
    the page can show it in the reader's language (the English text is the
    fallback, and what the API returns as ``error``).
    """

    def __init__(self, message: str, key: str = "", **params: object) -> None:
        super().__init__(message)
        self.key = key
        self.params = params


# -- what the page may set: each optimizer's hyperparameters as controls ------------------


@dataclass(frozen=True)
class Control:
    """One hyperparameter as the page shows it: a slider (``float``), a checkbox, a menu or two sliders.

    ``low``/``high`` bound the slider, inside the range the optimizer class
    accepts (a test builds each optimizer at both ends); ``log`` makes the
    slider logarithmic. The default is the class's own.
    """

    name: str
    kind: str = "float"  # "float", "flag", "choice" or "pair"
    low: float | tuple[float, float] = 0.0
    high: float | tuple[float, float] = 1.0
    log: bool = False
    options: tuple[str, ...] = ()


_LR = Control("lr", low=1e-4, high=1.0, log=True)
_EPS = Control("eps", low=1e-10, high=1e-1, log=True)
_DECAY = Control("weight_decay", low=0.0, high=1.0)
_ADAM = (
    _LR,
    Control("betas", kind="pair", low=(0.0, 0.0), high=(0.999, 0.9999)),
    _EPS,
    _DECAY,
    Control("amsgrad", kind="flag"),
)

#: The hyperparameters the page offers for each optimizer of :data:`OPTIMIZERS`
#: (the implementation flags, conventions and dtypes are left out: they do not
#: change a path on a surface, or change it the way the docs explain better).
CONTROLS: Mapping[str, tuple[Control, ...]] = {
    "sgd": (
        _LR,
        Control("momentum", high=0.99),
        Control("dampening"),
        _DECAY,
        Control("nesterov", kind="flag"),
        Control("momentum_form", kind="choice", options=("heavy_ball", "ema")),
        Control("debias", kind="flag"),
    ),
    "adagrad": (
        Control("lr", low=1e-4, high=10.0, log=True),
        Control("lr_decay"),
        _DECAY,
        Control("initial_accumulator_value"),
        _EPS,
    ),
    "rmsprop": (
        _LR,
        Control("alpha", high=0.999),
        _EPS,
        _DECAY,
        Control("momentum", high=0.99),
        Control("centered", kind="flag"),
    ),
    "adam": _ADAM,
    "adamw": _ADAM,
}

#: The update rule of each optimizer as its class docstring writes it (same
#: symbols), in plain text for the page.
FORMULAS: Mapping[str, tuple[str, ...]] = {
    "sgd": (
        "g ← g_t + λ θ_{t−1}",
        "b_t ← μ b_{t−1} + (1 − τ) g   (b_1 = g; EMA: μ b_{t−1} + (1 − μ) g)",
        "θ_t ← θ_{t−1} − γ b_t   (μ = 0: θ_{t−1} − γ g)",
    ),
    "adagrad": (
        "g ← g_t + λ θ_{t−1}",
        "γ̃_t ← γ / (1 + (t − 1) η)",
        "s_t ← s_{t−1} + g²",
        "θ_t ← θ_{t−1} − γ̃_t g / (√s_t + ε)",
    ),
    "rmsprop": (
        "g ← g_t + λ θ_{t−1}",
        "v_t ← α v_{t−1} + (1 − α) g²",
        "ḡ_t ← α ḡ_{t−1} + (1 − α) g   (centered)",
        "σ_t ← √(v_t − ḡ_t²) + ε",
        "b_t ← μ b_{t−1} + g / σ_t,   θ_t ← θ_{t−1} − γ b_t   (μ = 0: θ_{t−1} − γ g / σ_t)",
    ),
    "adam": (
        "g ← g_t + λ θ_{t−1}",
        "m_t ← β₁ m_{t−1} + (1 − β₁) g",
        "v_t ← β₂ v_{t−1} + (1 − β₂) g²",
        "m̂_t ← m_t / (1 − β₁^t),   v̂_t ← v_t / (1 − β₂^t)",
        "θ_t ← θ_{t−1} − γ m̂_t / (√v̂_t + ε)",
    ),
    "adamw": (
        "θ_{t−1} ← (1 − γ λ) θ_{t−1}",
        "m_t ← β₁ m_{t−1} + (1 − β₁) g_t",
        "v_t ← β₂ v_{t−1} + (1 − β₂) g_t²",
        "m̂_t ← m_t / (1 − β₁^t),   v̂_t ← v_t / (1 − β₂^t)",
        "θ_t ← θ_{t−1} − γ m̂_t / (√v̂_t + ε)",
    ),
}

#: The symbol of each state tensor in the docstrings' notation.
SYMBOLS: Mapping[str, str] = {
    "momentum_buffer": "b_t",
    "sum": "s_t",
    "square_avg": "v_t",
    "grad_avg": "ḡ_t",
    "exp_avg": "m_t",
    "exp_avg_sq": "v_t",
    "max_exp_avg_sq": "v^max_t",
    "m_hat": "m̂_t",
    "v_hat": "v̂_t",
}
#: The state tensor drawn as the momentum vector, where a rule keeps one.
MOMENTUM_STATE = ("exp_avg", "momentum_buffer")


@functools.cache
def surface_names() -> tuple[str, ...]:
    """The 2-D problems of the registry: every surface and its noisy and outlier versions."""
    return tuple(name for name in PROBLEMS if isinstance(make_problem(name), Surface))


def defaults(name: str) -> dict[str, Any]:
    """The optimizer class's own defaults for the controls the page shows."""
    signature = inspect.signature(OPTIMIZERS[name].__init__)
    out = {}
    for control in CONTROLS[name]:
        value = signature.parameters[control.name].default
        out[control.name] = list(value) if isinstance(value, tuple) else value
    return out


def schema() -> dict[str, Any]:
    """What the page needs to offer only valid choices: optimizers, controls, mistakes, surfaces, limits."""
    optimizers = {}
    for name, cls in OPTIMIZERS.items():
        values = defaults(name)
        optimizers[name] = {
            "summary": cls.summary,
            "controls": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "low": c.low,
                    "high": c.high,
                    "log": c.log,
                    "options": list(c.options),
                    "default": values[c.name],
                }
                for c in CONTROLS[name]
            ],
            "formula": list(FORMULAS[name]),
            "mistakes": [
                {
                    "name": m.name,
                    "summary": m.summary,
                    "wrong": m.wrong,
                    "right": m.right,
                    "options": list(m.options),
                }
                for m in MISTAKES.values()
                if m.correct == name
            ],
        }
    surfaces = []
    for name in surface_names():
        problem = make_problem(name)
        assert isinstance(problem, Surface)  # surface_names() holds surfaces only
        surfaces.append(
            {
                "name": name,
                "formula": problem.spec.formula,
                "noise": problem.noise,
                "title": problem.spec.title,
            }
        )
    return {
        "optimizers": optimizers,
        "surfaces": surfaces,
        "regimes": list(REGIMES),
        "limits": {"updates": MAX_UPDATES, "runs": MAX_RUNS, "seed": MAX_SEED, "formula": 200},
    }


# -- the request ---------------------------------------------------------------------


@dataclass(frozen=True)
class Landscape:
    """A surface to descend: ``f``, plot bounds, the standard start, known points, and the data's noise.

    ``noise`` holds one centred noise vector per sample (zeros for a clean
    surface or a formula, where every regime sees the exact gradient).
    """

    name: str
    title: str
    formula: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    bounds: tuple[tuple[float, float], tuple[float, float]]
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...] = ()
    saddles: tuple[tuple[float, float], ...] = ()
    noise: torch.Tensor = field(default_factory=lambda: torch.zeros(1, 2, dtype=torch.float64))
    #: the gradient of ``f`` written out (the registry's surfaces); None: autograd (a typed formula)
    grad: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None

    def grid(self, size: int = GRID) -> dict[str, Any]:
        """``f`` on a ``size`` x ``size`` grid over the bounds (rows: y ascending), for the contour plot."""
        (x0, x1), (y0, y1) = self.bounds
        xs = torch.linspace(x0, x1, size, dtype=torch.float64)
        ys = torch.linspace(y0, y1, size, dtype=torch.float64)
        with torch.no_grad():
            z = self.f(xs.unsqueeze(0).expand(size, size), ys.unsqueeze(1).expand(size, size))
        return {
            "name": self.name, "title": self.title, "formula": self.formula,
            "bounds": [list(self.bounds[0]), list(self.bounds[1])], "start": list(self.start),
            "minima": [list(p) for p in self.minima], "saddles": [list(p) for p in self.saddles],
            "samples": int(self.noise.shape[0]), "size": size,
            # Six significant digits are more than a contour plot can show, and a third of the bytes.
            "z": [_finite(float(f"{v:.6g}")) for v in z.reshape(-1).tolist()],
        }  # fmt: skip


@dataclass(frozen=True)
class RunSpec:
    """One path to compute: an optimizer with hyperparameters, or a mistaken rule with a learning rate."""

    optimizer: str
    hyperparameters: dict[str, Any]
    mistake: str | None = None
    #: this run's regime, to compare regimes side by side from the same seed (None: the request's)
    regime: str | None = None

    @property
    def label(self) -> str:
        return self.mistake or self.optimizer


@dataclass(frozen=True)
class PathRequest:
    """A checked request: the surface, the start, the number of updates, the regime, and the runs."""

    landscape: Landscape
    start: tuple[float, float]
    updates: int
    regime: str
    batch_size: int
    seed: int
    runs: tuple[RunSpec, ...]


def _finite(value: float) -> float | None:
    """JSON has no infinities or NaN: a value that is not finite is sent as null."""
    return value if math.isfinite(value) else None


def _number(where: str, value: object) -> float:
    number = math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an integer beyond any float stays NaN
            number = float(value)
    if not math.isfinite(number):
        shown = (
            value
            if not isinstance(value, int) or abs(value) < 10**30
            else f"an integer of {len(str(value))} digits"
        )
        raise RequestError(
            f"{where} must be a finite number; received {where}={shown!r}", "error.number", field=where
        )
    return number


def _integer(where: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(
            f"{where} must be an integer from {low} to {high}; received {where}={value!r}",
            "error.integer",
            field=where,
            low=low,
            high=high,
        )
    return value


def _point(where: str, value: object) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise RequestError(
            f"{where} must be two numbers [x, y]; received {where}={value!r}", "error.point", field=where
        )
    return (_number(f"{where}[0]", value[0]), _number(f"{where}[1]", value[1]))


def known_fields(data: Mapping[str, Any], known: set[str], where: str = "") -> None:
    """Refuse a field the request cannot have (a misspelt one would be ignored), with the closest names.

    ``where`` names the object inside the request the fields belong to (``runs[0]``), if not the request.
    """
    for key in data:
        try:
            lookup("request field" if not where else f"field of {where}", key, dict.fromkeys(sorted(known)))
        except UnknownNameError as err:
            raise RequestError(str(err), "error.field", name=str(key)) from None


def landscape(data: Mapping[str, Any]) -> Landscape:
    """The surface a request names: a 2-D problem of the registry, or ``"custom"`` (a formula, bounds)."""
    name = data.get("surface", "rosenbrock")
    if name == CUSTOM:
        f = parse_formula(data.get("formula"))
        bounds_value = data.get("bounds", [[-3, 3], [-3, 3]])
        if not isinstance(bounds_value, list | tuple) or len(bounds_value) != 2:
            raise RequestError(
                f"bounds must be [[x_min, x_max], [y_min, y_max]]; received bounds={bounds_value!r}",
                "error.bounds",
            )
        bounds = (_point("bounds[0]", bounds_value[0]), _point("bounds[1]", bounds_value[1]))
        for axis, (low, high) in zip("xy", bounds, strict=True):
            if not low < high:
                raise RequestError(
                    f"bounds of {axis} must have min < max; received [{low:g}, {high:g}]", "error.bounds"
                )
            if high - low > MAX_SPAN:
                raise RequestError(
                    f"bounds of {axis} must span at most {MAX_SPAN:g}; received [{low:g}, {high:g}]",
                    "error.span",
                    axis=axis,
                    limit=f"{MAX_SPAN:g}",
                )
        start = ((bounds[0][0] + bounds[0][1]) / 2, (bounds[1][0] + bounds[1][1]) / 2)
        text = str(data["formula"]).strip()
        return Landscape(CUSTOM, text, text, f, bounds, start)
    if not isinstance(name, str):
        raise RequestError(f"surface must be a name; received surface={name!r}", "error.surface")
    try:
        lookup("surface", name, dict.fromkeys((*surface_names(), CUSTOM)))
    except UnknownNameError as err:
        raise RequestError(str(err), "error.surface_unknown", name=name) from None
    given = " and ".join(field for field in ("formula", "bounds") if field in data)
    if given:  # they would be ignored: a registry surface has its own
        surface = f"surface={name!r}" if "surface" in data else f"no surface (the default, {name!r})"
        raise RequestError(
            f"{given} {'are' if ' and ' in given else 'is'} only for surface {CUSTOM!r}; "
            f"received {given} with {surface}",
            "error.custom_only",
            name=name,
        )
    problem = make_problem(name)
    assert isinstance(problem, Surface)  # only surfaces are in the table above
    return Landscape(
        name, problem.spec.title, problem.spec.formula, problem.function, problem.bounds,
        problem.start_point, problem.minima, problem.saddles, problem.splits().train[0], problem.spec.grad,
    )  # fmt: skip


def _hyperparameters(optimizer: str, where: str, value: object) -> dict[str, Any]:
    """The hyperparameters of one run, with each value's type checked; the class checks the ranges."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RequestError(
            f"{where} must be an object; received {where}={value!r}", "error.object", field=where
        )
    controls = {c.name: c for c in CONTROLS[optimizer]}
    out: dict[str, Any] = {}
    for key, item in value.items():
        try:
            control = lookup(f"hyperparameter of {optimizer}", key, controls)
        except UnknownNameError as err:
            raise RequestError(str(err), "error.hyperparameter", name=str(key)) from None
        at = f"{where}.{key}"
        if control.kind == "float":
            out[key] = _number(at, item)
        elif control.kind == "pair":
            out[key] = _point(at, item)
        elif control.kind == "flag":
            if not isinstance(item, bool):
                raise RequestError(
                    f"{at} must be true or false; received {at}={item!r}", "error.flag", field=at
                )
            out[key] = item
        else:
            if item not in control.options:
                raise RequestError(
                    f"{at} must be one of {', '.join(control.options)}; received {at}={item!r}",
                    "error.choice",
                    field=at,
                )
            out[key] = item
    return out


def _regime(where: str, value: object) -> str:
    if value not in REGIMES:
        raise RequestError(
            f"{where} must be one of {', '.join(REGIMES)}; received {where}={value!r}", "error.regime"
        )
    return value  # type: ignore[return-value]


def _run_spec(i: int, value: object) -> RunSpec:
    where = f"runs[{i}]"
    if not isinstance(value, Mapping):
        raise RequestError(
            f"{where} must be an object; received {where}={value!r}", "error.object", field=where
        )
    # A misspelt field (hyperparams) would otherwise leave the run on the class's defaults, unnoticed.
    known_fields(value, {"optimizer", "hyperparameters", "mistake", "regime"}, where)
    regime = None if value.get("regime") is None else _regime(f"{where}.regime", value["regime"])
    mistake_name = value.get("mistake")
    if mistake_name is not None:
        try:
            mistake: Mistake = lookup("mistaken rule", mistake_name, MISTAKES)
        except UnknownNameError as err:
            raise RequestError(str(err), "error.mistake", name=str(mistake_name)) from None
        # A mistaken rule is a wrong form of one optimizer (its result names that one): an optimizer
        # given beside it must be that one, or the request asks for two different runs at once.
        given = value.get("optimizer")
        if given is not None and given != mistake.correct:
            raise RequestError(
                f"{where}: the mistaken rule {mistake.name} is a form of {mistake.correct}; "
                f"received optimizer={given!r}",
                "error.mistake_optimizer",
                mistake=mistake.name,
                correct=mistake.correct,
                optimizer=str(given),
            )
        # The rule runs with its run's learning rate, betas and eps (those of them it has):
        # checked as the correct method's, by its class.
        hyper = value.get("hyperparameters") or {}
        allowed = ("lr", *mistake.options)
        if not isinstance(hyper, Mapping) or set(hyper) - set(allowed):
            raise RequestError(
                f"{where}: the mistaken rule {mistake.name} takes only {', '.join(allowed)}; "
                f"received hyperparameters={hyper!r}",
                "error.mistake_lr",
                allowed=", ".join(allowed),
            )
        checked = _hyperparameters(mistake.correct, f"{where}.hyperparameters", {"lr": 0.01, **hyper})
        _check_with_class(where, mistake.correct, checked)
        return RunSpec(mistake.correct, checked, mistake.name, regime)
    try:
        name = lookup("optimizer", value.get("optimizer"), OPTIMIZERS).name
    except UnknownNameError as err:
        raise RequestError(str(err), "error.optimizer", name=str(value.get("optimizer"))) from None
    hyper = _hyperparameters(name, f"{where}.hyperparameters", value.get("hyperparameters"))
    _check_with_class(where, name, hyper)
    return RunSpec(name, hyper, regime=regime)


def _check_with_class(where: str, name: str, hyper: Mapping[str, Any]) -> None:
    """The class's own validation, before any work: out-of-range values and
    combinations it refuses (nesterov without momentum) are the request's error."""
    try:
        OPTIMIZERS[name]([torch.zeros(2, dtype=torch.float64, requires_grad=True)], **hyper)
    except (ValueError, TypeError) as err:
        run = where.removeprefix("runs[").removesuffix("]")
        index = int(run) + 1 if run.isdigit() else run
        # A rule the catalogue words (in the reader's language) gets its own message; any other
        # refusal is shown with the class's English reason.
        rule = err.rule if isinstance(err, OptionError) else None
        key = _OPTION_RULES.get(rule, "error.optimizer_value")
        values = err.values if isinstance(err, OptionError) and rule in _OPTION_RULES else {}
        raise RequestError(
            f"{where}: {err}", key, detail=str(err), run=index, optimizer=name, **values
        ) from None


#: The optimizers' refusals (``optim._checks.OptionError.rule``) the page's catalogue words itself.
_OPTION_RULES = {
    "range": "error.option_range",
    "nesterov_momentum": "error.option_nesterov_momentum",
    "ema_dampening": "error.option_ema_dampening",
    "debias_ema": "error.option_debias_ema",
}


def parse_request(data: object) -> PathRequest:
    """Check a request (the JSON body of ``POST /api/paths``); RequestError names what is wrong."""
    if not isinstance(data, Mapping):
        raise RequestError(f"the request must be a JSON object; received {type(data).__name__}", "error.json")
    known_fields(data, {*SURFACE_FIELDS, "start", "updates", "regime", "batch_size", "seed", "runs"})
    try:
        land = landscape(data)
    except FormulaError as err:
        raise RequestError(str(err), err.key, **err.params) from None
    start = _point("start", data["start"]) if data.get("start") is not None else land.start
    updates = _integer("updates", data.get("updates", 200), 1, MAX_UPDATES)
    regime = _regime("regime", data.get("regime", "full-batch"))
    samples = int(land.noise.shape[0])
    batch_size = _integer("batch_size", data.get("batch_size", min(20, samples)), 1, samples)
    seed = _integer("seed", data.get("seed", 0), 0, MAX_SEED)
    runs = data.get("runs")
    if not isinstance(runs, list) or not 1 <= len(runs) <= MAX_RUNS:
        count = len(runs) if isinstance(runs, list) else runs
        raise RequestError(
            f"runs must be a list of 1 to {MAX_RUNS} optimizers; received {count!r}",
            "error.runs",
            limit=MAX_RUNS,
        )
    specs = tuple(_run_spec(i, run) for i, run in enumerate(runs))
    return PathRequest(land, start, updates, regime, batch_size, seed, specs)


# -- the computation -------------------------------------------------------------------


def _mean_noise(request: PathRequest, regime: str) -> Callable[[], torch.Tensor | None]:
    """The mean noise vector of the next batch, drawn as the training loop draws for ``regime`` and the seed.

    None on a clean surface, where every regime sees the exact gradient.
    """
    noise = request.landscape.noise
    if not bool(noise.any()):
        return lambda: None
    n = int(noise.shape[0])
    if regime == "full-batch":
        whole = noise.mean(dim=0)
        return lambda: whole
    size = request.batch_size if regime == "mini-batch" else 1
    position = {"epoch": 0, "index": 0, "order": order(n, request.seed, 0, True)}

    def next_batch() -> torch.Tensor:
        start = position["index"]
        indices = position["order"][start : min(start + size, n)]
        position["index"] = start + len(indices)
        if position["index"] >= n:
            position["epoch"] += 1
            position["index"] = 0
            position["order"] = order(n, request.seed, position["epoch"], True)
        return noise[indices].mean(dim=0)

    return next_batch


class _Buffer:
    """Every run's numbers after an update in one float64 vector, so that recording an update is one copy.

    ``grad``, ``point`` and ``noise`` are (runs, 2) with one row per run
    (``noise``: the mean noise vector of the update's batch), and each run's
    state tensors follow. The rules update their slices in place, and
    :meth:`record` copies the whole vector into the update's row of
    ``table``; :meth:`column` reads one of them over the updates.
    """

    def __init__(self, runs: int, state_sizes: list[int], updates: int) -> None:
        self.offsets = [6 * runs + 2 * sum(state_sizes[:i]) for i in range(runs)]
        self.live = torch.zeros(6 * runs + 2 * sum(state_sizes), dtype=torch.float64)
        self.grad = self.live[: 2 * runs].view(runs, 2)
        self.point = self.live[2 * runs : 4 * runs].view(runs, 2)
        self.noise = self.live[4 * runs : 6 * runs].view(runs, 2)
        self.table = torch.empty(updates, len(self.live), dtype=torch.float64)

    def column(self, rows: int, view: torch.Tensor) -> torch.Tensor:
        """``view`` (a (2,) slice of ``live``) after each of the first ``rows`` updates, as (rows, 2)."""
        start = view.storage_offset() - self.live.storage_offset()
        return self.table[:rows, start : start + 2]

    def state(self, run: int, keys: list[str]) -> dict[str, torch.Tensor]:
        start = self.offsets[run]
        return {key: self.live[start + 2 * i : start + 2 * i + 2] for i, key in enumerate(keys)}

    def record(self, t: int) -> None:
        self.table[t - 1].copy_(self.live)


def _optimizer(spec: RunSpec, start: torch.Tensor) -> tuple[Optimizer | None, list[str]]:
    """The run's optimizer (None for a mistaken rule) and the state tensors its rule keeps, in their order."""
    if spec.mistake is not None:
        # A mistaken rule creates its state at its first step: one step on scratch tensors shows which.
        state: dict[str, Any] = {}
        MISTAKES[spec.mistake].update(
            start.clone(), torch.ones_like(start), state, **{**spec.hyperparameters, "lr": 0.0}
        )
        return None, [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.shape == start.shape]
    optimizer = OPTIMIZERS[spec.optimizer]([start.clone().requires_grad_(True)], **spec.hyperparameters)
    return optimizer, list(optimizer._active_state(optimizer.param_groups[0]))


class _Run:
    """One path: its optimizer's own rule stepping the run's slices of the :class:`_Buffer`.

    For descentlab's optimizers the rule is the class's ``coefficients`` and
    ``update`` (what its ``step()`` calls for each parameter) applied to the
    state the class created; a mistaken rule is the lab's update function.
    Calling the rule directly leaves out ``step()``'s plumbing (profiler
    hooks, groups, checks), which took most of the time on 2-element
    tensors: the numbers are the same (a test compares them with ``step()``).
    """

    def __init__(
        self, spec: RunSpec, row: int, optimizer: Optimizer | None, keys: list[str], buffer: _Buffer
    ) -> None:
        self.spec, self.row, self.keys = spec, row, keys
        p, grad = buffer.point[row], buffer.grad[row]
        self.state = buffer.state(row, keys)
        self.group: dict[str, Any] | None = None
        if optimizer is None:
            assert spec.mistake is not None  # _optimizer() builds an optimizer for every other run
            update, hyper, state = MISTAKES[spec.mistake].update, spec.hyperparameters, dict(self.state)
            self.step: Callable[[int], None] = lambda t: update(p, grad, state, **hyper)
            return
        group = self.group = optimizer.param_groups[0]
        created: dict[str, Any] = {}
        optimizer._ensure_state(group["params"][0], group, created)
        for key, view in self.state.items():
            view.copy_(created[key])  # the initial values are the class's (Adagrad's initial accumulator)
        cls = type(optimizer)
        tensors = [self.state.get(name) for name in cls.state_names]
        scalars, coefficients, update = optimizer._scalars(group), cls.coefficients, cls.update
        counts = bool(keys)  # a rule without state (SGD without momentum) counts no steps
        self.step = lambda t: update(
            p, grad, *tensors, **coefficients(float(t) if counts else None, **scalars)
        )

    def result(
        self, buffer: _Buffer, start: torch.Tensor, f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> dict[str, Any]:
        spec, r, updates = self.spec, self.row, len(buffer.table)
        points = torch.cat([start.unsqueeze(0), buffer.column(updates, buffer.point[r])])
        heights = f(points[:, 0], points[:, 1])
        # The batch loss of update t, at the point before it: f(θ) + θ·ξ̄, the batch mean of f(θ) + θ·ξᵢ.
        batch_loss = heights[:-1] + (points[:-1] * buffer.column(updates, buffer.noise[r])).sum(1)
        bad = ~torch.isfinite(batch_loss)
        # A path ends where its loss stops being finite, as a training run does
        # (the rule went on stepping the row; those updates are not shown).
        diverged_at = int(bad.to(torch.int8).argmax()) + 1 if bool(bad.any()) else None
        rows = updates if diverged_at is None else diverged_at - 1
        points, heights, batch_loss = points[: rows + 1], heights[: rows + 1], batch_loss[:rows]
        t = torch.arange(1, rows + 1, dtype=torch.float64).unsqueeze(1)
        state = {key: buffer.column(rows, view) for key, view in self.state.items()}
        terms = dict(state)
        if "exp_avg" in terms:
            # Adam's m̂ and v̂ as its docstring defines them (a mistaken form's betas: its run's or the lab's).
            group = self.group if self.group is not None else spec.hyperparameters
            beta1, beta2 = group.get("betas", (BETA1, BETA2))
            terms["m_hat"] = terms["exp_avg"] / (1 - beta1**t)
            terms["v_hat"] = terms.get("max_exp_avg_sq", terms["exp_avg_sq"]) / (1 - beta2**t)
        terms["step"] = points[1:] - points[:-1]
        effective = None
        if self.group is not None:
            effective = per_coordinate_lr(self.group, {**state, "step": t}, torch.Size((rows, 2)))
        momentum = next((k for k in MOMENTUM_STATE if k in terms), None)
        return {
            "label": spec.label,
            "optimizer": spec.optimizer,
            "regime": spec.regime,
            "mistake": spec.mistake,
            "hyperparameters": {
                k: list(v) if isinstance(v, tuple) else v for k, v in spec.hyperparameters.items()
            },
            "formula": _mistake_formula(spec.mistake) if spec.mistake else list(FORMULAS[spec.optimizer]),
            "points": _rows(points),
            "loss": [_finite(v) for v in heights.reshape(-1).tolist()],
            "batch_loss": [_finite(v) for v in batch_loss.tolist()],
            "grad": _rows(buffer.column(rows, buffer.grad[r])),
            "momentum": momentum,
            "effective_lr": _rows(effective) if effective is not None else None,
            "terms": [
                {"key": key, "symbol": SYMBOLS.get(key, key), "values": _rows(values)}
                for key, values in terms.items()
            ],
            "diverged_at": diverged_at,
        }


def _mistake_formula(name: str) -> list[str]:
    """The mistaken rule and, beside it, the correct one (marked with symbols, which need no translation)."""
    mistake = MISTAKES[name]
    return [f"✗ {mistake.wrong}", f"✓ {mistake.right}"]


def _rows(table: torch.Tensor) -> list[list[float | None]]:
    rows = table.tolist()
    if bool(torch.isfinite(table).all()):
        return rows  # the usual case, without a Python call per value
    return [[_finite(v) for v in row] for row in rows]


def _gradient(land: Landscape, theta: torch.Tensor) -> torch.Tensor:
    """The gradient of ``f`` at each row of ``theta`` (runs, 2): the surface's own, or autograd's."""
    if land.grad is not None:
        return torch.stack(land.grad(theta[:, 0], theta[:, 1]), dim=1)
    # A typed formula: autograd, on a tensor made outside inference mode (which autograd needs).
    with torch.inference_mode(False), torch.enable_grad():
        theta = theta.clone().requires_grad_(True)
        value = land.f(theta[:, 0], theta[:, 1])
        if not value.requires_grad:  # a formula without x or y
            return torch.zeros_like(theta)
        (grad,) = torch.autograd.grad(value.sum(), theta)
    return grad


@torch.inference_mode()
def compute_paths(request: PathRequest) -> dict[str, Any]:
    r"""Every run's path from the request's start, with each update's gradient, loss, terms and effective lr.

    Index ``t`` of ``points`` and ``loss`` is after ``t`` updates (0: the
    start); index ``t - 1`` of ``grad``, ``batch_loss``, ``effective_lr`` and
    each term's ``values`` belongs to update ``t``. A path whose loss stops
    being finite ends there (``diverged_at``), as a training run does.

    The loss of each run is the surface problem's, the batch mean of
    :math:`f(\theta) + \xi_i^\top \theta` as :class:`~descentlab.problems.surfaces.SurfacePoint`
    computes it, so its gradient is :math:`\nabla f` plus the batch's mean
    noise vector. Runs in the same regime see the same batches (one seed), so
    their losses and gradients are one batched evaluation per update; each
    regime draws its own batches from the same seed, as separate training
    runs would.
    """
    land = request.landscape
    # Rows by regime, so that each regime's runs are one slice of the buffer.
    regimes = list(dict.fromkeys(spec.regime or request.regime for spec in request.runs))
    rows = sorted(
        range(len(request.runs)), key=lambda i: regimes.index(request.runs[i].regime or request.regime)
    )
    specs = [request.runs[i] for i in rows]
    start = torch.tensor(request.start, dtype=torch.float64)
    rules = [_optimizer(spec, start) for spec in specs]
    buffer = _Buffer(len(specs), [len(keys) for _, keys in rules], request.updates)
    buffer.point.copy_(start)
    runs = [_Run(spec, row, *rule, buffer) for row, (spec, rule) in enumerate(zip(specs, rules, strict=True))]
    slices = []
    for regime in regimes:
        members = [r.row for r in runs if (r.spec.regime or request.regime) == regime]
        slices.append((slice(members[0], members[-1] + 1), _mean_noise(request, regime)))
    for t in range(1, request.updates + 1):
        for rows_of, next_noise in slices:
            grad = _gradient(land, buffer.point[rows_of])
            noise = next_noise()
            if noise is not None:
                buffer.noise[rows_of] = noise
                grad = grad + noise
            buffer.grad[rows_of] = grad
        for run in runs:
            run.step(t)
        buffer.record(t)
    by_request = sorted(runs, key=lambda r: rows[r.row])
    return {
        "start": list(request.start),
        "updates": request.updates,
        "regime": request.regime,
        "batch_size": request.batch_size,
        "seed": request.seed,
        "runs": [run.result(buffer, start, land.f) for run in by_request],
    }
