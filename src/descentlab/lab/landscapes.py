r"""The 2-D landscapes the lab's surface experiments run on, and the controls beside them.

A :class:`Landscape` is a function :math:`f(x, y)` written with arithmetic
only (so it evaluates NumPy arrays for contour plots and batched tensors for
training), a box of starts, the minimum the runs head for, and the *region*
whose leaving the claims measure (the saddle's ridge, the trap's basin).
Saddles come in several conditionings:

.. math::

    f(x, y) = \tfrac{h}{2} x^2 - \tfrac{k}{2} y^2 + \tfrac{k}{4} y^4

has a saddle at the origin, minima at :math:`(0, \pm 1)`, curvature
:math:`h` across the ridge and :math:`-k` along it. Descent's stable step is
limited by :math:`h` (:math:`\gamma < 2/h`) while escaping the ridge goes at
the rate :math:`1 + \gamma k` per update, so a large :math:`h/k` (a stiff
direction) makes plain descent slow to leave. Its control,
:math:`\tfrac{h}{2} x^2 + k (y - 1)^2`, has the same curvatures at the
minimum and no saddle: runs from the same starts measure what the methods do
where there is nothing to escape.

The trap is the tilted double well of :mod:`descentlab.problems.surfaces`;
leaving it means crossing its saddle into the global minimum's basin; its
control is a bowl around that minimum with the same curvature.

Noisy landscapes (C4) take their noise from the registry's surfaces, see
:func:`noise_pair`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from .. import _random
from ..problems.surfaces import OUTLIER_SCALE, OUTLIER_SHARE, SURFACES

Point = tuple[float, float]


@dataclass(frozen=True)
class Landscape:
    """A 2-D function with its starts, minimum and region (see the module docstring).

    ``params`` are the function's coefficients (``f(x, y, **params)``);
    ``starts`` is a box ((x_low, x_high), (y_low, y_high)) from which starts
    are drawn uniformly; ``region`` is (axis, threshold, side): a run has
    *left* the region at the first update where coordinate ``axis`` is
    ``side`` ('above' or 'below') the threshold in absolute value ('abs'
    prefix) or in value.
    """

    name: str
    title: str
    formula: str
    f: Callable[..., Any]
    params: dict[str, float]
    bounds: tuple[Point, Point]
    starts: tuple[Point, Point]
    minimum: Point
    region: tuple[int, float, str] = (1, 0.5, "abs-above")
    noise: str = "none"
    noise_scale: float = 0.0
    samples: int = 1
    batch_size: int = 1
    control_of: str | None = None
    geometry: dict[str, float] = field(default_factory=dict)
    hover: tuple[Point, Point] | None = None

    def __call__(self, x: Any, y: Any) -> Any:
        return self.f(x, y, **self.params)

    @property
    def f_min(self) -> float:
        """The function's value at ``minimum``."""
        return float(self(np.float64(self.minimum[0]), np.float64(self.minimum[1])))

    def left(self, points: np.ndarray) -> np.ndarray:
        """Whether each point (..., 2) lies outside the region."""
        axis, threshold, side = self.region
        value = points[..., axis]
        if side.startswith("abs-"):
            value, side = np.abs(value), side[4:]
        return value >= threshold if side == "above" else value <= threshold

    def start_points(self, units: int, seed: int, *, hover: bool = False) -> np.ndarray:
        """``units`` starts drawn uniformly from the box, from a generator derived from ``seed``.

        ``hover``: from the ``hover`` box instead (next to the minimum), where
        the landscape has one: runs that only measure how the noise moves the
        parameters once there, with no approach to the minimum mixed in.
        """
        rng = _random.numpy_generator(seed, "lab-starts", self.name)
        (x0, x1), (y0, y1) = self.hover if hover and self.hover is not None else self.starts
        return np.stack([rng.uniform(x0, x1, units), rng.uniform(y0, y1, units)], axis=1)

    def reshaped(self, **changes: float) -> Landscape:
        """The same landscape with other coefficients (the design's *geometry* variation).

        ``stretch`` compresses the y axis (f(x, stretch * y)): the minimum
        and the start box move with it.
        """
        fields = {**self.__dict__, "params": {**self.params, **changes}, "geometry": {}}
        stretch = changes.get("stretch", 1.0) / self.params.get("stretch", 1.0)
        if stretch != 1.0:
            (x0, x1), (y0, y1) = self.starts
            fields["starts"] = ((x0, x1), (y0 / stretch, y1 / stretch))
            fields["minimum"] = (self.minimum[0], self.minimum[1] / stretch)
            if self.hover is not None:
                (x0, x1), (y0, y1) = self.hover
                fields["hover"] = ((x0, x1), (y0 / stretch, y1 / stretch))
        return Landscape(**fields)


def _saddle(x: Any, y: Any, *, h: float, k: float) -> Any:
    return 0.5 * h * x**2 - 0.5 * k * y**2 + 0.25 * k * y**4


def _no_saddle(x: Any, y: Any, *, h: float, k: float) -> Any:
    return 0.5 * h * x**2 + k * (y - 1.0) ** 2


def _trap(x: Any, y: Any, *, tilt: float, c: float = 1.0) -> Any:
    return (x**2 - 1.0) ** 2 + tilt * x + c * y**2


def _bowl(x: Any, y: Any, *, cx: float, a: float, c: float) -> Any:
    return a * (x - cx) ** 2 + c * y**2


def _registry_surface(key: str) -> Callable[..., Any]:
    f = SURFACES[key].f

    def surface(x: Any, y: Any, stretch: float = 1.0) -> Any:
        return f(x, stretch * y)

    return surface


# The trap's global minimum and saddle on y = 0: roots of f_x = 4x^3 - 4x + tilt.
_TRAP_X = sorted(float(r.real) for r in np.roots([4.0, 0.0, -4.0, 0.5]))
_TRAP_CURVATURE = 12 * _TRAP_X[0] ** 2 - 4  # f_xx at the global minimum


def saddle(name: str, h: float, k: float, title: str) -> tuple[Landscape, Landscape]:
    """A saddle of curvatures (h, -k) and its control without a saddle."""
    common: dict[str, Any] = {
        "params": {"h": h, "k": k},
        "bounds": ((-2.0, 2.0), (-1.5, 1.5)),
        "starts": ((0.5, 1.5), (1e-4, 1e-2)),
        "minimum": (0.0, 1.0),
        "region": (1, 0.5, "abs-above"),
    }
    return (
        Landscape(
            name,
            title,
            f"{h / 2:g} x^2 - {k / 2:g} y^2 + {k / 4:g} y^4",
            _saddle,
            geometry={"k": k / 2},
            **common,
        ),
        Landscape(
            f"{name}-control",
            f"control of {name}: the same curvatures at the minimum, no saddle",
            f"{h / 2:g} x^2 + {k:g} (y - 1)^2",
            _no_saddle,
            control_of=name,
            geometry={"k": k / 2},
            **common,
        ),
    )


_SADDLES = (
    saddle("saddle", 2.0, 2.0, "saddle, curvatures +2 and -2 (perfectly conditioned)"),
    saddle("saddle-narrow", 10.0, 0.5, "saddle, curvatures +10 and -0.5 (conditioning 20)"),
    saddle("saddle-stiff", 100.0, 0.1, "saddle whose stable step is set by a stiff direction (+100, -0.1)"),
)

_TRAP = Landscape(
    "trap",
    "tilted double well: a local minimum on the start's side, the global one across a saddle",
    "(x^2 - 1)^2 + 0.5 x + y^2",
    _trap,
    {"tilt": 0.5},
    ((-2.0, 2.0), (-1.5, 1.5)),
    ((1.5, 2.2), (-1.0, 1.0)),
    (_TRAP_X[0], 0.0),
    region=(0, _TRAP_X[1], "below"),
    geometry={"c": 3.0},
)
_TRAP_CONTROL = Landscape(
    "trap-control",
    "control of trap: a bowl around its global minimum, no local minimum in between",
    f"{_TRAP_CURVATURE / 2:.3g} (x + {-_TRAP_X[0]:.3g})^2 + y^2",
    _bowl,
    {"cx": _TRAP_X[0], "a": _TRAP_CURVATURE / 2, "c": 1.0},
    _TRAP.bounds,
    _TRAP.starts,
    (_TRAP_X[0], 0.0),
    region=_TRAP.region,
    control_of="trap",
    geometry={"c": 3.0},
)


def _noisy(key: str, noise: str, name: str) -> Landscape:
    spec = SURFACES[key]
    sx, sy = spec.start
    # Starts jittered by up to 25% of the standard start per coordinate.
    box = ((sx - 0.25 * abs(sx), sx + 0.25 * abs(sx)), (sy - 0.25 * abs(sy), sy + 0.25 * abs(sy)))
    mx, my = spec.minima[0]
    # The outlier surfaces' judged runs start next to the minimum: C4 measures the hovering, not the approach.
    hover = ((mx - 0.01, mx + 0.01), (my - 0.01, my + 0.01)) if noise == "outliers" else None
    return Landscape(
        name,
        f"{spec.title}, {noise} gradient noise",
        spec.formula,
        _registry_surface(key),
        {},
        spec.bounds,
        box,
        spec.minima[0],
        region=(0, math.inf, "abs-above"),
        noise=noise,
        noise_scale=spec.noise_scale,
        samples=100,
        batch_size=20,
        geometry={"stretch": 1.5},
        hover=hover,
    )


#: Every landscape by name.
LANDSCAPES: MappingProxyType[str, Landscape] = MappingProxyType(
    {
        land.name: land
        for land in (
            *[s for pair in _SADDLES for s in pair],
            _TRAP,
            _TRAP_CONTROL,
            *[
                _noisy(key, noise, f"{key}-{'noisy' if noise == 'gaussian' else noise}")
                for key in ("quadratic2d", "rosenbrock")
                for noise in ("gaussian", "outliers")
            ],
        )
    }
)


def noise_vectors(land: Landscape, kind: str, data_seed: int, match: np.ndarray | None = None) -> np.ndarray:
    """The ``samples`` noise vectors of a noisy landscape, centred (see :mod:`descentlab.problems.surfaces`).

    ``kind`` is ``"outliers"`` (2% of the samples carry half the variance) or
    ``"gaussian"``; with ``match`` (another set of vectors), the Gaussian
    draw is whitened and recoloured to ``match``'s empirical covariance
    exactly, so that the two sets differ only in the shape of their tails.
    """
    n, sigma = land.samples, land.noise_scale
    rng = _random.numpy_generator(data_seed, "lab-noise", land.name, kind)
    if kind == "outliers":
        k = max(1, round(OUTLIER_SHARE * n))
        idx = rng.choice(n, size=k, replace=False)
        small = sigma * math.sqrt(max(0.0, 1 - OUTLIER_SHARE * OUTLIER_SCALE**2) / (1 - OUTLIER_SHARE))
        xi = rng.normal(0.0, small, size=(n, 2))
        xi[idx] = rng.normal(0.0, OUTLIER_SCALE * sigma, size=(k, 2))
    else:
        xi = rng.normal(0.0, sigma, size=(n, 2))
    xi = xi - xi.mean(axis=0, keepdims=True)
    if match is not None:
        xi = _recolour(xi, match)
    return xi


def _recolour(xi: np.ndarray, match: np.ndarray) -> np.ndarray:
    """``xi`` with exactly the empirical covariance of ``match`` (both centred)."""
    own = np.linalg.cholesky(np.cov(xi.T, bias=True))
    target = np.linalg.cholesky(np.cov(match.T, bias=True))
    return xi @ np.linalg.inv(own).T @ target.T


def as_tensor(values: np.ndarray) -> torch.Tensor:
    """A float64 tensor of ``values``."""
    return torch.as_tensor(np.asarray(values, dtype=np.float64))
