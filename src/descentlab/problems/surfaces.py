r"""Two-dimensional surfaces on which an optimizer's path can be drawn.

Each :class:`SurfaceSpec` gives the function :math:`f(x, y)` (written with
arithmetic operators only, so it works on NumPy arrays for contour plots and
on tensors for training) and its gradient written out (for code that steps
many points without autograd's per-call cost; a test checks it against
autograd), plot bounds, a standard start point, and its known minima and
saddle points.

The noisy versions make the three regimes differ. The "data" are ``n_samples``
noise vectors :math:`\xi_i \in \mathbb{R}^2`, centred so that they sum to zero,
and sample :math:`i`'s loss is :math:`f(\theta) + \xi_i^\top \theta`. The
full-batch gradient is therefore exactly :math:`\nabla f` (up to rounding),
while a mini-batch or a single sample sees :math:`\nabla f` plus zero-mean
noise whose size shrinks with the batch. Two kinds of noise:

- ``"gaussian"``: :math:`\xi_i \sim N(0, \sigma^2 I)`;
- ``"outliers"``: the same covariance, half of it carried by a few samples:
  2% of them have standard deviation :math:`5\sigma` (half the variance) and
  the rest :math:`\sigma\sqrt{0.5/0.98}`. Their indices are
  :attr:`Surface.outliers`. This is where averaging, such as momentum's, is said
  to help.

The clean versions use zero noise vectors, so every regime sees the exact
gradient. The held-out loss is always the noise-free :math:`f(\theta)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import torch

from .. import _random
from .._registry import lookup
from ._base import Problem, Setting, Splits, mean_of_output

Point = tuple[float, float]
NOISES = ("none", "gaussian", "outliers")
OUTLIER_SHARE = 0.02
OUTLIER_SCALE = 5.0


@dataclass(frozen=True)
class SurfaceSpec:
    """A 2-D test function and what is needed to draw it and judge a path on it.

    ``target_gap``: a run has solved the surface when :math:`f` is within this
    of the global minimum. ``default`` and ``noisy_default`` are the settings
    that do so for the clean and the noisy versions; ``noise_scale`` is
    :math:`\\sigma` of the noisy versions.
    """

    key: str
    title: str
    formula: str
    f: Callable[[Any, Any], Any]
    #: :math:`(\\partial f/\\partial x, \\partial f/\\partial y)`, elementwise as ``f``
    grad: Callable[[Any, Any], tuple[Any, Any]]
    bounds: tuple[Point, Point]
    start: Point
    minima: tuple[Point, ...]
    saddles: tuple[Point, ...]
    noise_scale: float
    target_gap: float
    default: Setting
    noisy_default: Setting

    @property
    def global_minimum(self) -> float:
        """The lowest value of :math:`f` over ``minima``."""
        return min(float(self.f(np.float64(x), np.float64(y))) for x, y in self.minima)


def _quadratic(x: Any, y: Any) -> Any:
    return 0.5 * x**2 + 25.0 * y**2


def _quadratic_grad(x: Any, y: Any) -> tuple[Any, Any]:
    return x, 50.0 * y


def _rosenbrock(x: Any, y: Any) -> Any:
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


def _rosenbrock_grad(x: Any, y: Any) -> tuple[Any, Any]:
    r = y - x**2
    return -2.0 * (1.0 - x) - 400.0 * x * r, 200.0 * r


def _beale(x: Any, y: Any) -> Any:
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _beale_grad(x: Any, y: Any) -> tuple[Any, Any]:
    y2, y3 = y**2, y**3
    a, b, c = 2.0 * (1.5 - x + x * y), 2.0 * (2.25 - x + x * y2), 2.0 * (2.625 - x + x * y3)
    return a * (y - 1.0) + b * (y2 - 1.0) + c * (y3 - 1.0), x * (a + 2.0 * b * y + 3.0 * c * y2)


def _saddle(x: Any, y: Any) -> Any:
    return x**2 - y**2 + 0.5 * y**4


def _saddle_grad(x: Any, y: Any) -> tuple[Any, Any]:
    return 2.0 * x, 2.0 * y**3 - 2.0 * y


def _trap(x: Any, y: Any) -> Any:
    return (x**2 - 1.0) ** 2 + 0.5 * x + y**2


def _trap_grad(x: Any, y: Any) -> tuple[Any, Any]:
    return 4.0 * x * (x**2 - 1.0) + 0.5, 2.0 * y


# The trap's stationary points on y = 0: the roots of f_x = 4x^3 - 4x + 0.5.
_TRAP_X = sorted(float(r.real) for r in np.roots([4.0, 0.0, -4.0, 0.5]))

SURFACES: MappingProxyType[str, SurfaceSpec] = MappingProxyType(
    {
        spec.key: spec
        for spec in (
            SurfaceSpec(
                key="quadratic2d",
                title="ill-conditioned quadratic (condition number 50)",
                formula="0.5 x^2 + 25 y^2",
                f=_quadratic,
                grad=_quadratic_grad,
                bounds=((-5.0, 5.0), (-2.0, 2.0)),
                start=(-4.0, 1.0),
                minima=((0.0, 0.0),),
                saddles=(),
                noise_scale=2.0,
                target_gap=1e-3,
                default=Setting("sgd", {"lr": 0.03, "momentum": 0.5}, "full-batch", steps=200),
                noisy_default=Setting(
                    "sgd", {"lr": 0.01, "momentum": 0.5}, "mini-batch", batch_size=20, epochs=200
                ),
            ),
            SurfaceSpec(
                key="rosenbrock",
                title="Rosenbrock's banana valley",
                formula="(1 - x)^2 + 100 (y - x^2)^2",
                f=_rosenbrock,
                grad=_rosenbrock_grad,
                bounds=((-2.0, 2.0), (-1.0, 3.0)),
                start=(-1.2, 1.0),
                minima=((1.0, 1.0),),
                saddles=(),
                noise_scale=4.0,
                target_gap=1e-2,
                default=Setting("sgd", {"lr": 0.002, "momentum": 0.9}, "full-batch", steps=1000),
                noisy_default=Setting(
                    "sgd", {"lr": 0.001, "momentum": 0.9}, "mini-batch", batch_size=20, epochs=200
                ),
            ),
            SurfaceSpec(
                key="beale",
                title="Beale's function (flat plateaus, steep walls)",
                formula="(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
                f=_beale,
                grad=_beale_grad,
                bounds=((-4.5, 4.5), (-4.5, 4.5)),
                start=(1.0, 1.5),
                minima=((3.0, 0.5),),
                saddles=((0.0, 1.0),),
                noise_scale=0.5,
                target_gap=1e-2,
                default=Setting("adam", {"lr": 0.05}, "full-batch", steps=1000),
                noisy_default=Setting("adam", {"lr": 0.02}, "mini-batch", batch_size=20, epochs=200),
            ),
            SurfaceSpec(
                key="saddle",
                title="saddle at the origin, bounded below by the y^4 term",
                formula="x^2 - y^2 + 0.5 y^4",
                f=_saddle,
                grad=_saddle_grad,
                bounds=((-2.0, 2.0), (-2.0, 2.0)),
                # Just off the ridge y = 0: plain descent slows down near the saddle.
                start=(1.5, 1e-3),
                minima=((0.0, -1.0), (0.0, 1.0)),
                saddles=((0.0, 0.0),),
                noise_scale=0.5,
                target_gap=1e-3,
                default=Setting("sgd", {"lr": 0.1}, "full-batch", steps=100),
                noisy_default=Setting("sgd", {"lr": 0.05}, "mini-batch", batch_size=20, epochs=40),
            ),
            SurfaceSpec(
                key="trap",
                title="tilted double well whose local minimum traps plain descent",
                formula="(x^2 - 1)^2 + 0.5 x + y^2",
                f=_trap,
                grad=_trap_grad,
                bounds=((-2.0, 2.0), (-1.5, 1.5)),
                start=(2.0, 1.0),
                minima=((_TRAP_X[0], 0.0), (_TRAP_X[2], 0.0)),
                saddles=((_TRAP_X[1], 0.0),),
                noise_scale=2.0,
                target_gap=1e-3,
                default=Setting("sgd", {"lr": 0.01, "momentum": 0.9}, "full-batch", steps=300),
                noisy_default=Setting(
                    "sgd", {"lr": 0.005, "momentum": 0.9}, "mini-batch", batch_size=20, epochs=60
                ),
            ),
        )
    }
)


class SurfacePoint(torch.nn.Module):
    """The model of a surface problem: the point :math:`\\theta = (x, y)`, a float64 parameter.

    Called on noise vectors ``xi`` of shape (batch, 2), it returns each
    sample's loss :math:`f(\\theta) + \\xi_i^\\top \\theta`.
    """

    def __init__(self, f: Callable[[Any, Any], Any], start: Point) -> None:
        super().__init__()
        self.f = f
        self.xy = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))

    def forward(self, xi: torch.Tensor) -> torch.Tensor:
        return self.f(self.xy[0], self.xy[1]) + xi @ self.xy


@dataclass(frozen=True)
class Surface(Problem):
    """A 2-D surface problem (see the module docstring): ``surface`` names a :data:`SURFACES` entry.

    Options: ``noise`` (``"none"``, ``"gaussian"`` or ``"outliers"``),
    ``noise_scale`` (:math:`\\sigma`; None: the surface's default),
    ``n_samples`` (noise vectors in the data set), ``data_seed`` (draws them),
    ``start`` (None: the surface's standard start).

    Target: :math:`f(\\theta) \\le f_{min} +` ``target_gap`` (the held-out loss is
    the noise-free :math:`f`), reached by ``default``: for the clean versions
    full-batch descent with the setting in :data:`SURFACES`, for the noisy ones
    mini-batches of 20.
    """

    surface: str = "rosenbrock"
    noise: Literal["none", "gaussian", "outliers"] = "none"
    noise_scale: float | None = None
    n_samples: int = 100
    data_seed: int = 0
    start: tuple[float, float] | None = None
    _spec: SurfaceSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spec", lookup("surface", self.surface, SURFACES))
        if self.noise not in NOISES:
            raise ValueError(
                f"{self.name}: noise must be one of {', '.join(NOISES)}; received noise={self.noise!r}"
            )
        if self.noise_scale is not None and not (
            isinstance(self.noise_scale, int | float) and 0 <= self.noise_scale < float("inf")
        ):
            raise ValueError(
                f"{self.name}: noise_scale must be a finite number >= 0; "
                f"received noise_scale={self.noise_scale!r}"
            )
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, int) or self.n_samples < 1:
            raise ValueError(
                f"{self.name}: n_samples must be a positive integer; received {self.n_samples!r}"
            )
        if self.start is not None and (
            not isinstance(self.start, list | tuple | np.ndarray)
            or len(self.start) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in self.start)
            or not all(math.isfinite(v) for v in self.start)
        ):
            raise ValueError(
                f"{self.name}: start must be two finite numbers [x, y]; received start={self.start!r}"
            )

    # -- what a figure needs ---------------------------------------------------------

    @property
    def spec(self) -> SurfaceSpec:
        """The function, bounds, start, minima and saddles of this surface."""
        return self._spec

    def function(self, x: Any, y: Any) -> Any:
        """:math:`f(x, y)`, elementwise on NumPy arrays or tensors (for contour plots)."""
        return self._spec.f(x, y)

    @property
    def bounds(self) -> tuple[Point, Point]:
        """((x_min, x_max), (y_min, y_max)) of the standard plot."""
        return self._spec.bounds

    @property
    def start_point(self) -> Point:
        """Where the model starts: ``start`` or the surface's standard start."""
        return tuple(float(v) for v in self.start) if self.start is not None else self._spec.start  # type: ignore[return-value]

    @property
    def minima(self) -> tuple[Point, ...]:
        """The known local and global minima."""
        return self._spec.minima

    @property
    def saddles(self) -> tuple[Point, ...]:
        """The known saddle points."""
        return self._spec.saddles

    @property
    def outliers(self) -> torch.Tensor:
        """Indices of the outlier samples of the ``"outliers"`` noise (empty otherwise)."""
        return self._noise()[1]

    # -- Problem ---------------------------------------------------------------------

    @property
    def name(self) -> str:  # type: ignore[override]
        return (
            self.surface
            if self.noise == "none"
            else f"{self.surface}-{'noisy' if self.noise == 'gaussian' else 'outliers'}"
        )

    @property
    def summary(self) -> str:  # type: ignore[override]
        kind = {
            "none": "",
            "gaussian": "; Gaussian gradient noise",
            "outliers": "; heavy-tailed gradient noise",
        }
        return f"2-D {self._spec.title}: {self._spec.formula}{kind[self.noise]}"

    @property
    def target_loss(self) -> float:  # type: ignore[override]
        return self._spec.global_minimum + self._spec.target_gap

    @property
    def default(self) -> Setting:  # type: ignore[override]
        return self._spec.default if self.noise == "none" else self._spec.noisy_default

    def loss(self, output: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        return mean_of_output(output)

    def _noise(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n_samples
        sigma = self._spec.noise_scale if self.noise_scale is None else float(self.noise_scale)
        rng = _random.numpy_generator(self.data_seed, "surface-noise", self.surface, self.noise)
        outliers = np.zeros(0, dtype=np.int64)
        if self.noise == "none" or sigma == 0:
            xi = np.zeros((n, 2))
        elif self.noise == "gaussian":
            xi = rng.normal(0.0, sigma, size=(n, 2))
        else:
            # Half the variance in 2% of the samples: same covariance as "gaussian", heavier tails.
            k = max(1, round(OUTLIER_SHARE * n))
            outliers = np.sort(rng.choice(n, size=k, replace=False))
            big = OUTLIER_SCALE * sigma
            small = sigma * np.sqrt(max(0.0, 1 - OUTLIER_SHARE * OUTLIER_SCALE**2) / (1 - OUTLIER_SHARE))
            xi = rng.normal(0.0, small, size=(n, 2))
            xi[outliers] = rng.normal(0.0, big, size=(k, 2))
        # Centred, so the full-batch gradient is exactly the surface's.
        xi = xi - xi.mean(axis=0, keepdims=True)
        return torch.from_numpy(xi), torch.from_numpy(outliers)

    def _splits(self) -> Splits:
        return Splits(train=(self._noise()[0],), test=(torch.zeros(1, 2, dtype=torch.float64),))

    def _model(self) -> torch.nn.Module:
        return SurfacePoint(self._spec.f, self.start_point)
