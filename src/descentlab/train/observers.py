"""Observers: functions the loop calls at intervals to record what the curves do not show.

An :class:`Observer` gets a :class:`Snapshot` (the model, the optimizer and
the counters) and returns a vector of floats, which the loop appends to
``record.observations[name]``. It is called on the initial model and then
whenever its interval fires. It must not change the model or the optimizer,
nor draw random numbers, or the trajectory would depend on how often it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from .._registry import lookup
from .config import Every


@dataclass(frozen=True)
class Snapshot:
    """What an observer sees: the model and optimizer after ``step`` updates."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    step: int
    epoch: int
    samples: int
    loss: float | None


@dataclass(frozen=True)
class Observer:
    """A named function of a :class:`Snapshot`, called every ``every``.

    ``fn`` returns a float, a sequence of floats or a tensor (flattened).
    """

    name: str
    fn: Callable[[Snapshot], float | Sequence[float] | torch.Tensor]
    every: Every = field(default_factory=lambda: Every(1))

    def observe(self, snapshot: Snapshot) -> list[float]:
        """Call ``fn`` and return its value as a list of floats."""
        value: Any = self.fn(snapshot)
        if isinstance(value, torch.Tensor):
            return [float(x) for x in value.detach().reshape(-1).tolist()]
        if isinstance(value, int | float):
            return [float(value)]
        return [float(x) for x in value]


def parameter_path(every: Every | None = None) -> Observer:
    """Records all parameters, flattened and concatenated, after every update by default.

    On a 2-D surface this is the path ``(x, y)`` to draw over the contour plot.
    """

    def path(snapshot: Snapshot) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1).cpu().double() for p in snapshot.model.parameters()])

    return Observer("path", path, every or Every(1))


def effective_lr(
    quantiles: Sequence[float] = (0.0, 0.1, 0.5, 0.9, 1.0), every: Every | None = None
) -> Observer:
    r"""Records quantiles of the per-coordinate effective learning rate, every epoch by default.

    The effective learning rate is the factor that multiplies the gradient (or
    the bias-corrected first moment) in a coordinate's update:
    :math:`\tilde\gamma / (\sqrt{s} + \epsilon)` for Adagrad,
    :math:`\gamma / (\sqrt{v} + \epsilon)` for RMSprop (:math:`v - \bar g^2`
    under the root when centered) and :math:`\gamma / (\sqrt{\hat v} + \epsilon)`
    for Adam and AdamW; ``lr`` itself for methods without such state. Read
    from the state of descentlab's and torch.optim's optimizers (same state
    names), with PyTorch's placement of epsilon.
    """
    levels = torch.tensor([float(q) for q in quantiles], dtype=torch.float64)

    def observe(snapshot: Snapshot) -> torch.Tensor:
        values = [
            _effective(group, p, snapshot.optimizer.state.get(p, {}))
            for group in snapshot.optimizer.param_groups
            for p in group["params"]
        ]
        flat = torch.cat([v.reshape(-1).double() for v in values])
        return (
            torch.quantile(flat, levels) if flat.numel() <= 16_000_000 else _subsample_quantile(flat, levels)
        )

    return Observer("effective-lr", observe, every or Every(1, "epochs"))


def _effective(group: dict[str, Any], p: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
    lr = float(group["lr"])
    eps = float(group.get("eps", 0.0))
    step = float(state["step"]) if "step" in state else 0.0
    if "sum" in state:  # Adagrad
        lr = lr / (1 + max(step - 1, 0) * float(group.get("lr_decay", 0.0)))
        return lr / (state["sum"].detach().sqrt() + eps)
    if "exp_avg_sq" in state and step > 0:  # Adam, AdamW
        v_hat = state["exp_avg_sq"].detach() / (1 - group["betas"][1] ** step)
        return lr / (v_hat.sqrt() + eps)
    if "square_avg" in state:  # RMSprop
        v = state["square_avg"].detach()
        if group.get("centered") and "grad_avg" in state:
            v = v - state["grad_avg"].detach() ** 2
        return lr / (v.clamp(min=0).sqrt() + eps)
    return torch.full(p.shape, lr, dtype=torch.float64)


def _subsample_quantile(flat: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    # torch.quantile refuses inputs above 16M elements; an even subsample is enough for a distribution.
    stride = -(-flat.numel() // 16_000_000)
    return torch.quantile(flat[::stride], levels)


#: Built-in observers by name, as :class:`~descentlab.train.RunConfig` ``observers`` names them.
OBSERVERS: Mapping[str, Callable[[], Observer]] = MappingProxyType(
    {"path": parameter_path, "effective-lr": effective_lr}
)


def get_observer(name: str) -> Observer:
    """The built-in observer ``name``, at its default interval or at the one after an ``@``.

    ``"path"`` records after every update; ``"path@1epochs"`` once per epoch,
    ``"effective-lr@250samples"`` every 250 samples (see :meth:`Every.parse`).
    A configuration names its observers this way, so a run that needs only a
    few snapshots of many parameters does not store one per update.

    >>> get_observer("path@2epochs").every
    Every(n=2, unit='epochs')
    """
    base, sep, interval = name.partition("@")
    factory = lookup("observer", base, OBSERVERS)
    if not sep:
        return factory()
    observer = factory(every=Every.parse(interval))
    # Keep the name given, interval included: it is the key of the record's observations.
    return Observer(name, observer.fn, observer.every)
