"""A deterministic problem on which to run optimizers side by side.

Four parameters of different shapes (one a 0-dim scalar) in two groups (the
second with half the learning rate). Each gradient depends on the parameter's
current value, ``g = c * (p - p*) + noise_t``, so an error anywhere feeds back
into later steps. The optimum ``p*`` is away from zero: near zero, float32's
cancellation in ``p - step`` makes any relative error large, torch.optim's
own included. Parameter 3 gets no gradient every fourth step, so per-parameter
step counts diverge; the learning rate follows a non-monotone schedule, as a
scheduler would set it, so rules that differ only under a changing learning
rate are told apart. With ``maximize`` the objective is negated, so that the
ascent climbs to a maximum instead of running away (where any rounding
difference would grow exponentially and parity would measure chaos).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from reference import REFERENCES

SHAPES: tuple[tuple[int, ...], ...] = ((3, 4), (4,), (), (2, 3))
STEPS = 60


def relative_error(a: Any, b: Any) -> float:
    """max |a - b| / max |b|, in float64 (0 when both are zero)."""
    a = torch.as_tensor(a).detach().to(torch.float64)
    b = torch.as_tensor(b).detach().to(torch.float64)
    scale = b.abs().max().item() if b.numel() else 0.0
    diff = (a - b).abs().max().item() if b.numel() else 0.0
    return 0.0 if diff == 0 else diff / max(scale, 1e-300)


@dataclass
class Problem:
    seed: int = 0
    steps: int = STEPS
    init: list[np.ndarray] = field(init=False)
    curvature: list[np.ndarray] = field(init=False)
    optimum: list[np.ndarray] = field(init=False)
    noise: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.init = [rng.normal(size=s) for s in SHAPES]
        self.curvature = [rng.uniform(0.5, 2.0, size=s) for s in SHAPES]
        self.optimum = [rng.choice([-1.0, 1.0], size=s) * rng.uniform(1.0, 3.0, size=s) for s in SHAPES]
        self.noise = [0.3 * rng.normal(size=(self.steps + 1, *s)) for s in SHAPES]

    def params(self, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
        return [torch.tensor(x, dtype=dtype, requires_grad=True) for x in self.init]

    def grad(self, i: int, p: np.ndarray, t: int, sign: float = 1.0) -> np.ndarray | None:
        """The gradient of parameter ``i`` at step ``t``; ``sign=-1`` negates the objective."""
        if i == 3 and t % 4 == 1:
            return None
        return sign * (self.curvature[i] * (p - self.optimum[i]) + self.noise[i][t])

    @staticmethod
    def lr_factor(t: int) -> float:
        return 1.0 + 0.5 * math.sin(0.3 * t)


def groups(params: list[torch.Tensor], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"params": params[:2]}, {"params": params[2:], "lr": kwargs["lr"] * 0.5}]


def run(
    make: Callable[..., torch.optim.Optimizer],
    kwargs: dict[str, Any],
    dtype: torch.dtype = torch.float64,
    problem: Problem | None = None,
    steps: int = STEPS,
    closed_loop: bool = True,
) -> tuple[list[torch.Tensor], torch.optim.Optimizer]:
    """Run ``make(groups, **kwargs)`` on the problem; return the parameters and optimizer.

    ``closed_loop=False`` evaluates every gradient at the starting point, so both
    sides of a comparison get the same gradients and only the optimizers'
    own rounding differs (the right test in float32, where feedback through
    ``p - p*`` near the optimum would amplify one ulp into 1e-6).
    """
    problem = problem or Problem()
    params = problem.params(dtype)
    opt = make(groups(params, kwargs), **kwargs)
    base = [g["lr"] for g in opt.param_groups]
    sign = -1.0 if kwargs.get("maximize") else 1.0
    for t in range(1, steps + 1):
        for group, lr in zip(opt.param_groups, base):
            group["lr"] = lr * problem.lr_factor(t)
        for i, p in enumerate(params):
            at = p.detach().to(torch.float64).numpy() if closed_loop else problem.init[i]
            g = problem.grad(i, at, t, sign)
            p.grad = None if g is None else torch.as_tensor(g, dtype=dtype)
        opt.step()
    return params, opt


def run_reference(
    name: str, hyper: list[dict[str, Any]], problem: Problem | None = None, steps: int = STEPS
) -> list[np.ndarray]:
    """Run the float64 reference with each group's resolved hyperparameters."""
    problem = problem or Problem()
    rule = REFERENCES[name]
    values = [x.copy() for x in problem.init]
    states: list[dict[str, np.ndarray]] = [{} for _ in values]
    counts = [0 for _ in values]
    owner = [0, 0, 1, 1]
    sign = -1.0 if hyper[0]["maximize"] else 1.0
    for t in range(1, steps + 1):
        for i, p in enumerate(values):
            g = problem.grad(i, p, t, sign)
            if g is None:
                continue
            counts[i] += 1
            h = dict(hyper[owner[i]])
            h["lr"] = h["lr"] * problem.lr_factor(t)
            values[i] = rule(p, g, states[i], counts[i], h)
    return values


def hyperparameters(
    make: Callable[..., torch.optim.Optimizer], kwargs: dict[str, Any]
) -> list[dict[str, Any]]:
    """The groups' resolved hyperparameters of a new optimizer, as plain Python values.

    This is the reference's input: every default and convention switch filled in.
    """
    opt = make(groups(Problem().params(), kwargs), **kwargs)
    out = []
    for group in opt.param_groups:
        h = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in group.items() if k != "params"}
        out.append(h)
    return out


def same(a: Any, b: Any) -> bool:
    """Structural equality of nested dicts/lists/tuples of tensors and plain values."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


class BrokenSGD(torch.optim.SGD):
    """A user's optimizer that fails at its first step (the lab's tests name it ``helpers:BrokenSGD``)."""

    def step(self, closure=None):
        raise RuntimeError("broken on purpose")
