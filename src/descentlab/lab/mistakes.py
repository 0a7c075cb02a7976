r"""Common mistaken forms of the update rules, for the report's formula check.

Each :class:`Mistake` is a deliberately wrong rule next to the method it gets
wrong; the lab runs it on the same problems, at the correct method's tuned
learning rate, and the report shows what it does (diverges at step k, stalls
at loss x, or, where the data say so, does no harm). They live here and not
in :data:`descentlab.optim.OPTIMIZERS`: nobody should be able to pick one by
accident. Each rule is one pure per-tensor function; :class:`MistakenRule`
is the plumbing that applies it.

With :math:`g` the gradient, :math:`\gamma` the learning rate,
:math:`\beta_1 = 0.9`, :math:`\beta_2 = 0.999`, :math:`\epsilon = 10^{-8}`
(AdaGrad: :math:`10^{-10}`) unless given (:attr:`Mistake.options`: the
playground runs a mistaken form with its run's betas and eps; the lab with
these constants) and :math:`m, v, s` as in :mod:`descentlab.optim`:

- ``sgd-added``: :math:`\theta \leftarrow \theta + \gamma g` (correct: :math:`\theta - \gamma g`);
- ``adagrad-momentum``: :math:`\theta \leftarrow \theta - \gamma m / (\sqrt{s} + \epsilon)` with
  :math:`m \leftarrow 0.9 m + g` (correct: :math:`\theta - \gamma g / (\sqrt{s} + \epsilon)`);
- ``adam-no-sqrt``: :math:`\theta - \gamma \hat m / (\hat v + \epsilon)`
  (correct: :math:`\theta - \gamma \hat m / (\sqrt{\hat v} + \epsilon)`);
- ``adam-no-eps``: :math:`\theta - \gamma \hat m / \sqrt{\hat v}`;
- ``adam-no-bias-correction``: :math:`\theta - \gamma m / (\sqrt{v} + \epsilon)`.

>>> import torch
>>> w = torch.tensor([1.0], requires_grad=True)
>>> opt = MISTAKES["sgd-added"].build([w], {"lr": 0.1})
>>> (w ** 2).sum().backward(); opt.step()
>>> w  # moved up the slope
tensor([1.2000], requires_grad=True)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from ..train import RunConfig, RunRecord, run

BETA1, BETA2, EPS, ADAGRAD_EPS, MOMENTUM = 0.9, 0.999, 1e-8, 1e-10, 0.9

Update = Callable[..., None]


def sgd_added(p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], *, lr: float) -> None:
    """The step added instead of subtracted: gradient ascent."""
    p.add_(g, alpha=lr)


def adagrad_momentum(
    p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], *, lr: float, eps: float = ADAGRAD_EPS
) -> None:
    """AdaGrad dividing a momentum buffer instead of the gradient by the root of the summed squares."""
    s = state.setdefault("sum", torch.zeros_like(p))
    m = state.setdefault("momentum_buffer", torch.zeros_like(p))
    s.addcmul_(g, g)
    m.mul_(MOMENTUM).add_(g)
    p.addcdiv_(m, s.sqrt().add_(eps), value=-lr)


def _adam_moments(
    p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], betas: tuple[float, float]
) -> tuple[torch.Tensor, ...]:
    """Adam's moments after this step, and the bias corrections 1 - beta^t."""
    beta1, beta2 = betas
    m = state.setdefault("exp_avg", torch.zeros_like(p))
    v = state.setdefault("exp_avg_sq", torch.zeros_like(p))
    state["t"] = t = state.get("t", 0) + 1
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    return m, v, torch.tensor(1 - beta1**t), torch.tensor(1 - beta2**t)


def adam_no_sqrt(
    p: torch.Tensor,
    g: torch.Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    betas: tuple[float, float] = (BETA1, BETA2),
    eps: float = EPS,
) -> None:
    """Adam dividing by the second moment itself instead of its square root."""
    m, v, c1, c2 = _adam_moments(p, g, state, betas)
    p.addcdiv_(m / c1, (v / c2).add_(eps), value=-lr)


def adam_no_eps(
    p: torch.Tensor,
    g: torch.Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    betas: tuple[float, float] = (BETA1, BETA2),
) -> None:
    """Adam without epsilon: 0/0 wherever a coordinate has had only zero gradients."""
    m, v, c1, c2 = _adam_moments(p, g, state, betas)
    p.addcdiv_(m / c1, (v / c2).sqrt(), value=-lr)


def adam_no_bias_correction(
    p: torch.Tensor,
    g: torch.Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    betas: tuple[float, float] = (BETA1, BETA2),
    eps: float = EPS,
) -> None:
    """Adam without the bias corrections of its zero-initialised moments."""
    m, v, _, _ = _adam_moments(p, g, state, betas)
    p.addcdiv_(m, v.sqrt().add_(eps), value=-lr)


class MistakenRule(torch.optim.Optimizer):
    """Applies one mistaken per-tensor ``update`` to every parameter with a gradient (plumbing only)."""

    def __init__(self, params: Iterable[torch.Tensor], update: Update, lr: float, **constants: Any) -> None:
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr must be a finite number >= 0; received lr={lr!r}")
        super().__init__(params, {"lr": lr, **constants})
        self.update = update
        self.constants = tuple(constants)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    constants = {k: group[k] for k in self.constants}
                    self.update(p, p.grad, self.state[p], lr=group["lr"], **constants)
        return loss


@dataclass(frozen=True)
class Mistake:
    """A mistaken rule, the method it mistakes, and both formulas as the report prints them."""

    name: str
    correct: str
    summary: str
    wrong: str
    right: str
    update: Update
    mechanism: str = ""

    @property
    def options(self) -> tuple[str, ...]:
        """The hyperparameters of the correct method this rule takes besides ``lr`` (its betas, its eps).

        Left out, each is the constant of the module docstring; the momentum of
        ``adagrad-momentum`` is part of the mistake, not an option.
        """
        keywords = inspect.signature(self.update).parameters.values()
        return tuple(p.name for p in keywords if p.kind is p.KEYWORD_ONLY and p.name != "lr")

    def build(self, params: Iterable[torch.Tensor], hyperparameters: Mapping[str, Any]) -> MistakenRule:
        """The optimizer applying this rule (``hyperparameters``: ``lr``, and any of :attr:`options`)."""
        unknown = set(hyperparameters) - {"lr", *self.options}
        if unknown:
            allowed = ", ".join(("lr", *self.options))
            raise ValueError(f"{self.name} takes only {allowed}; received {sorted(unknown)}")
        constants = {k: v for k, v in hyperparameters.items() if k != "lr"}
        return MistakenRule(params, self.update, hyperparameters["lr"], **constants)


#: The mistaken rules by name, each with the method (:data:`~descentlab.lab.methods.METHODS`) it gets wrong.
MISTAKES: Mapping[str, Mistake] = MappingProxyType(
    {
        m.name: m
        for m in (
            Mistake(
                "sgd-added",
                "sgd",
                "the update added instead of subtracted",
                "θ ← θ + γ g",
                "θ ← θ − γ g",
                sgd_added,
                "it climbs the loss: every step goes up the gradient, so no learning rate helps.",
            ),
            Mistake(
                "adagrad-momentum",
                "adagrad",
                "AdaGrad dividing a momentum (m = 0.9 m + g) instead of the gradient",
                "θ ← θ − γ m / (√s + ε)",
                "θ ← θ − γ g / (√s + ε)",
                adagrad_momentum,
                "summing gradients into m makes each step about 1/(1 - 0.9) = 10 times AdaGrad's, and m "
                "keeps pointing where the gradient was.",
            ),
            Mistake(
                "adam-no-sqrt",
                "adam",
                "Adam without the square root",
                "θ ← θ − γ m̂ / (v̂ + ε)",
                "θ ← θ − γ m̂ / (√v̂ + ε)",
                adam_no_sqrt,
                "dividing by v ~ g^2 instead of sqrt(v) ~ |g| makes the step about 1/|g| times Adam's: "
                "huge where gradients are small, tiny where they are large.",
            ),
            Mistake(
                "adam-no-eps",
                "adam",
                "Adam without epsilon",
                "θ ← θ − γ m̂ / √v̂",
                "θ ← θ − γ m̂ / (√v̂ + ε)",
                adam_no_eps,
                "without epsilon a coordinate whose gradients are all zero divides 0 by 0, and tiny "
                "gradients get full-size steps.",
            ),
            Mistake(
                "adam-no-bias-correction",
                "adam",
                "Adam without bias correction",
                "θ ← θ − γ m / (√v + ε)",
                "θ ← θ − γ m̂ / (√v̂ + ε)",
                adam_no_bias_correction,
                "m and v start at 0, so early m is too small by 1 - 0.9^t and sqrt(v) by sqrt(1 - "
                "0.999^t): with a steady gradient a step is (1 - 0.9^t) / sqrt(1 - 0.999^t) times "
                "Adam's, 3.2 at the first, 6.6 near the 12th and still 3.2 at the 100th.",
            ),
        )
    }
)


def run_mistake(config: RunConfig) -> RunRecord:
    """Train as ``config`` says with the mistaken rule it names (``config.optimizer``)."""
    mistake = MISTAKES[config.optimizer]
    return run(config, optimizer_factory=mistake.build)
