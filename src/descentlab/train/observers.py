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
from ..optim import _lean
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
    names) by :func:`per_coordinate_lr`, which follows the rule's own
    conventions (AMSGrad, ``eps_root``, where epsilon goes).
    """
    levels = torch.tensor([float(q) for q in quantiles], dtype=torch.float64)

    def observe(snapshot: Snapshot) -> torch.Tensor:
        values = [
            per_coordinate_lr(group, snapshot.optimizer.state.get(p, {}), p.shape)
            for group in snapshot.optimizer.param_groups
            for p in group["params"]
        ]
        flat = torch.cat([v.reshape(-1).double() for v in values])
        return (
            torch.quantile(flat, levels) if flat.numel() <= 16_000_000 else _subsample_quantile(flat, levels)
        )

    return Observer("effective-lr", observe, every or Every(1, "epochs"))


def per_coordinate_lr(group: Mapping[str, Any], state: Mapping[str, Any], shape: torch.Size) -> torch.Tensor:
    r"""The factor each coordinate's update applies to the gradient (or to :math:`\hat m`) in the rule.

    ``group`` is a parameter group and ``state`` the parameter's state (the
    names of descentlab's and torch.optim's optimizers); ``shape`` is the
    parameter's, for rules that keep no such state (the factor is ``lr``).
    The state tensors may carry leading dimensions, e.g. one row per update,
    with ``state["step"]`` a tensor that broadcasts against them: the
    playground computes all of a path's values in one call. The rule's own
    choices are followed: Adagrad's decayed :math:`\tilde\gamma_t`, AMSGrad's
    maximum (of :math:`v`, or of :math:`\hat v` with
    ``amsgrad_max_of_corrected``), ``eps_root`` under the root, epsilon inside
    the root (``eps_inside_sqrt``), and Keras's epsilon-hat form, for which the
    factor on :math:`\hat m` is :math:`\gamma\sqrt{1-\beta_2^t}/(\sqrt{v} + \hat\epsilon)`.
    """
    lr = float(group["lr"])
    eps = float(group.get("eps", 0.0))
    step = state.get("step", 0.0)
    step = step.double() if isinstance(step, torch.Tensor) else torch.tensor(float(step), dtype=torch.float64)

    def root(v: torch.Tensor) -> torch.Tensor:
        return (v + eps).sqrt() if group.get("eps_inside_sqrt") else v.sqrt() + eps

    def read(name: str, signed: bool = False) -> torch.Tensor:
        """``state[name]`` as values: 8-bit lean state is codes, dequantised with its block scales."""
        value = state[name].detach()
        if value.dtype != torch.uint8:
            return value
        return _lean.dequantise(value, state[_lean.ABSMAX.format(name)], signed, torch.float32)

    if "sum" in state:  # Adagrad
        clr = lr / (1 + (step - 1).clamp(min=0) * float(group.get("lr_decay", 0.0)))
        return clr / root(read("sum"))
    if "exp_avg_sq" in state and bool((step > 0).all()):  # Adam, AdamW
        amsgrad = bool(group.get("amsgrad")) and "max_exp_avg_sq" in state
        v = read("max_exp_avg_sq" if amsgrad else "exp_avg_sq")
        bias_correction2 = 1 - group["betas"][1] ** step
        if group.get("eps_hat"):
            return lr * bias_correction2.sqrt() / (v.sqrt() + eps)
        v_hat = v if amsgrad and group.get("amsgrad_max_of_corrected") else v / bias_correction2
        return lr / ((v_hat + float(group.get("eps_root", 0.0))).sqrt() + eps)
    if "square_avg" in state:  # RMSprop
        v = read("square_avg")
        if group.get("centered") and "grad_avg" in state:
            v = v - read("grad_avg", signed=True) ** 2
        return lr / root(v.clamp(min=0))
    return torch.full(shape, lr, dtype=torch.float64)


def lean_state(every: Every | None = None) -> Observer:
    """Records how the optimizer stores its state, every epoch by default: two numbers.

    The share of the parameters' elements whose per-element state tensors
    (moments, accumulators, momentum buffers) are all stored in fewer bytes
    than float32 (bfloat16, 8-bit codes), and the state's bytes per parameter
    element (block scales and step counts included). A run with
    ``lean_state`` whose model has no parameter of
    :data:`descentlab.optim._lean.MIN_ELEMENTS` elements records a share of 0:
    lean state did not apply.
    """

    def observe(snapshot: Snapshot) -> list[float]:
        total = lean = stored = 0
        for group in snapshot.optimizer.param_groups:
            for p in group["params"]:
                n = p.numel()
                tensors = [
                    t for t in snapshot.optimizer.state.get(p, {}).values() if isinstance(t, torch.Tensor)
                ]
                per_element = [t for t in tensors if t.numel() == n and n > 1]  # not the step count
                total += n
                stored += sum(t.numel() * t.element_size() for t in tensors)
                if per_element and all(t.element_size() < 4 for t in per_element):
                    lean += n
        return [lean / total, stored / total] if total else [0.0, 0.0]

    return Observer("lean-state", observe, every or Every(1, "epochs"))


def _subsample_quantile(flat: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    # torch.quantile refuses inputs above 16M elements; an even subsample is enough for a distribution.
    stride = -(-flat.numel() // 16_000_000)
    return torch.quantile(flat[::stride], levels)


#: Built-in observers by name, as :class:`~descentlab.train.RunConfig` ``observers`` names them.
OBSERVERS: Mapping[str, Callable[[], Observer]] = MappingProxyType(
    {"path": parameter_path, "effective-lr": effective_lr, "lean-state": lean_state}
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
