r"""SGD: gradient descent, with heavy-ball or EMA momentum and Nesterov."""

from __future__ import annotations

from typing import Any

import torch

from . import _checks
from ._base import Optimizer, common_args, is_set


class SGD(Optimizer):
    __doc__ = (
        r"""Stochastic gradient descent, optionally with momentum (a drop-in for ``torch.optim.SGD``).

    With :math:`\gamma` = ``lr``, :math:`\mu` = ``momentum``, :math:`\tau` =
    ``dampening``, :math:`\lambda` = ``weight_decay`` and :math:`g_t` the
    gradient (negated when ``maximize``), one step is

    .. math::

        g &\leftarrow g_t + \lambda \theta_{t-1} \\
        b_t &\leftarrow \begin{cases}
            g & t = 1 \text{ (heavy ball)} \\
            \mu b_{t-1} + (1 - \tau)\, g & t > 1 \text{ (heavy ball)} \\
            \mu b_{t-1} + (1 - \mu)\, g,\ b_0 = 0 & \text{(EMA)}
        \end{cases} \\
        \hat b_t &\leftarrow b_t / (1 - \mu^t) \quad \text{(EMA with debias, else } \hat b_t = b_t) \\
        d_t &\leftarrow \begin{cases}
            \hat b_t & \text{plain momentum} \\
            w\, g + \mu \hat b_t & \text{Nesterov, } w = 1 \text{ (heavy ball) or } 1 - \mu \text{ (EMA)}
        \end{cases} \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma d_t

    and with ``momentum=0`` simply :math:`\theta_t \leftarrow \theta_{t-1} - \gamma g`.
    The buffer :math:`b` is ``momentum_buffer`` in the code and the state.

    The heavy-ball form is PyTorch's: it sums past gradients, so its steady-state
    step is :math:`\gamma/(1-\mu)` times the gradient, ten times the plain step
    at :math:`\mu = 0.9`. The EMA form averages them instead, so its step stays
    the size of a plain step and only the direction is smoothed: compare them at
    the same :math:`\gamma/(1-\mu)` to measure momentum itself. Its first steps
    are short (:math:`b_1 = (1-\mu) g`) unless ``debias=True``.

    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts
            defining parameter groups.
        lr: learning rate :math:`\gamma`, a float or a 1-element tensor, in
            :math:`[0, \infty)` (default 1e-3).
        momentum: :math:`\mu` in :math:`[0, 1)` (default 0: no momentum, no state).
        dampening: :math:`\tau` in :math:`[0, 1]`, heavy-ball form only (default 0).
        weight_decay: L2 penalty :math:`\lambda \ge 0` added to the gradient (default 0).
        nesterov: use Nesterov momentum; needs ``momentum > 0`` and, for the
            heavy-ball form, ``dampening = 0`` (default False).
        maximize: ascend the objective instead of descending (default False).
        foreach, fused: torch.optim's implementation flags, mapped to descentlab's:
            True (either) forces the fast path, one compiled pass over flat
            buffers; False (either) the per-tensor loop; None (default)
            chooses the fast path for groups of at least 2**20 elements. Both
            give the same numbers to rounding; see ``implementation()``.
        differentiable: must be False: autograd through the step is not supported.
        momentum_form: ``"heavy_ball"`` (default, PyTorch's) or ``"ema"``.
        debias: divide the EMA buffer by :math:`1-\mu^t`; EMA form only (default False).
        convention: ``"torch"`` (default), ``"keras"``, ``"optax"`` or a
            :class:`~descentlab.optim.conventions.Convention`; SGD reads
            ``lr_inside_momentum``."""
        + common_args()
        + r"""

    State (per parameter, only when ``momentum > 0``):
        ``momentum_buffer`` (:math:`b`) and ``step`` (:math:`t`, a 0-dim float tensor).
        torch.optim's SGD keeps no ``step``; its checkpoints load all the same.

    Conventions:
        PyTorch and optax (``trace``) use the heavy-ball buffer above; optax has
        no dampening. Keras keeps a velocity with the learning rate inside,
        :math:`v \leftarrow \mu v - \gamma g,\ \theta \leftarrow \theta + v`;
        ``convention="keras"`` (``lr_inside_momentum``) stores
        :math:`b = -v`, i.e. it adds :math:`\gamma g` instead of :math:`g` to the
        buffer and steps by :math:`b` itself. Both give the same numbers while
        ``lr`` is constant and differ once a schedule changes it.
        optax's ``ema(decay, debias=True)`` is ``momentum_form="ema", debias=True``.

    Example:
        Plain gradient descent on :math:`f(w) = w^2` halves :math:`w` at ``lr=0.25``:

        >>> import torch
        >>> from descentlab.optim import SGD
        >>> w = torch.tensor([4.0], requires_grad=True)
        >>> opt = SGD([w], lr=0.25)
        >>> for _ in range(3):
        ...     opt.zero_grad()
        ...     (w ** 2).sum().backward()
        ...     opt.step()
        >>> w
        tensor([0.5000], requires_grad=True)

    References:
        Polyak, "Some methods of speeding up the convergence of iteration methods", 1964.
        Sutskever et al., "On the importance of initialization and momentum in deep
        learning", ICML 2013.
    """
    )

    name = "sgd"
    summary = "Gradient descent; heavy-ball or EMA momentum, Nesterov, weight decay."
    torch_keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    state_names = ("momentum_buffer",)
    switches = ("lr_inside_momentum",)
    sparse_gradients = True

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        momentum_form: str = "heavy_ball",
        debias: bool = False,
        convention: Any = "torch",
        skip_nonfinite: bool = False,
        state_dtype: torch.dtype | None = None,
        lean_state: str | None = None,
        stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize, foreach=foreach,
            differentiable=differentiable, fused=fused,
            momentum_form=momentum_form, debias=debias,
        )  # fmt: skip
        super().__init__(
            params,
            defaults,
            convention=convention,
            skip_nonfinite=skip_nonfinite,
            state_dtype=state_dtype,
            lean_state=lean_state,
            stochastic_rounding=stochastic_rounding,
        )

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        owner = "SGD"
        momentum = _checks.in_range(owner, "momentum", group["momentum"], 0, 1, high_open=True)
        dampening = _checks.in_range(owner, "dampening", group["dampening"], 0, 1)
        _checks.in_range(owner, "weight_decay", group["weight_decay"])
        nesterov = _checks.flag(owner, "nesterov", group["nesterov"])
        form = _checks.choice(owner, "momentum_form", group["momentum_form"], ("heavy_ball", "ema"))
        debias = _checks.flag(owner, "debias", group["debias"])
        if nesterov and (momentum <= 0 or dampening != 0):
            raise _checks.OptionError(
                "SGD: nesterov=True requires momentum > 0 and dampening = 0; "
                f"received momentum={group['momentum']!r}, dampening={group['dampening']!r}",
                "nesterov_momentum",
                momentum=repr(group["momentum"]),
                dampening=repr(group["dampening"]),
            )
        if form == "ema" and dampening != 0:
            raise _checks.OptionError(
                "SGD: dampening applies to the heavy-ball form only (the EMA form already "
                f"weights the gradient by 1 - momentum); received dampening={group['dampening']!r}",
                "ema_dampening",
                dampening=repr(group["dampening"]),
            )
        if debias and form != "ema":
            raise _checks.OptionError(
                f"SGD: debias=True applies to momentum_form='ema' only; received momentum_form={form!r}",
                "debias_ema",
                momentum_form=repr(form),
            )

    def _check_sparse_options(self, owner: str, at: str, group: dict[str, Any]) -> None:
        if group["momentum"] != 0 or group["weight_decay"] != 0:
            raise RuntimeError(
                f"{owner}: sparse gradients ({at}) are supported without momentum and weight "
                f"decay only, where the step touches just the rows the gradient has; received "
                f"momentum={group['momentum']!r}, weight_decay={group['weight_decay']!r}"
            )

    def _active_state(self, group: dict[str, Any]) -> dict[str, float]:
        return {"momentum_buffer": 0.0} if group["momentum"] != 0 else {}

    def _scalars(self, group: dict[str, Any]) -> dict[str, Any]:
        return dict(
            lr=self._lr(group), momentum=group["momentum"], dampening=group["dampening"],
            weight_decay=group["weight_decay"], nesterov=group["nesterov"],
            maximize=group["maximize"], ema=group["momentum_form"] == "ema",
            debias=group["debias"], lr_inside_momentum=group["lr_inside_momentum"],
        )  # fmt: skip


def sgd_coefficients(
    step: float | torch.Tensor | None,
    *,
    momentum: float | torch.Tensor,
    dampening: float | torch.Tensor,
    ema: bool,
    debias: bool,
    **hyperparameters: Any,
) -> dict[str, Any]:
    r"""The step-dependent scalars of one SGD step, with the other arguments of :func:`sgd_update`.

    ``grad_weight`` is :math:`1-\mu` (EMA) or :math:`1-\tau`, but 1 at the
    heavy-ball first step, which (from a zero buffer) copies the gradient as
    torch does; ``debias_scale`` is :math:`1/(1-\mu^t)`.
    """
    if step is None:  # no momentum, so no state and no step count
        grad_weight, debias_scale = 1.0, 1.0
    else:
        grad_weight = 1 - momentum if ema else 1 - dampening * (step > 1)
        debias_scale = 1 / (1 - momentum**step) if debias else 1.0
    return dict(
        hyperparameters, momentum=momentum, grad_weight=grad_weight, debias_scale=debias_scale, debias=debias
    )


def sgd_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    momentum_buffer: torch.Tensor | None,
    *,
    lr: float | torch.Tensor,
    momentum: float | torch.Tensor,
    weight_decay: float | torch.Tensor,
    grad_weight: float | torch.Tensor,
    debias_scale: float | torch.Tensor,
    nesterov: bool,
    maximize: bool,
    debias: bool,
    lr_inside_momentum: bool,
) -> None:
    """One SGD step on one tensor (or flat buffer), in place; elementwise only.

    ``momentum_buffer`` None means no momentum. The scalars come from
    :func:`sgd_coefficients`.
    """
    if maximize:
        grad = -grad
    if is_set(weight_decay):
        grad = grad + weight_decay * param
    if momentum_buffer is None:
        param.sub_(grad * lr)
        return
    g = grad * lr if lr_inside_momentum else grad
    momentum_buffer.mul_(momentum).add_(g * grad_weight)
    direction = momentum_buffer * debias_scale if debias else momentum_buffer
    if nesterov:
        direction = g * grad_weight + direction * momentum
    param.sub_(direction if lr_inside_momentum else direction * lr)


def sgd_torch_fused(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: dict[str, list[torch.Tensor] | None],
    steps: list[torch.Tensor] | None,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
    ema: bool,
    debias: bool,
    lr_inside_momentum: bool,
) -> bool:
    """Run torch's own fused SGD kernel where the configuration is torch's rule (heavy ball).

    Returns False, having changed nothing, for the EMA form and Keras's
    velocity, and where the parameters are at different steps (torch's kernel
    takes one first-step flag). ``steps`` holds each parameter's step count
    this update makes (None without momentum).
    """
    if ema or debias or lr_inside_momentum:
        return False
    buffers = states["momentum_buffer"]
    firsts = {float(s) == 1 for s in steps} if buffers is not None and steps is not None else {False}
    if len(firsts) > 1:
        return False
    (first,) = firsts
    torch._fused_sgd_(
        params, grads, buffers if buffers is not None else [],
        weight_decay=float(weight_decay), momentum=float(momentum), lr=float(lr),
        # At the first step our rule weighs the gradient by 1 whatever the dampening:
        # b = mu b + g, which from a zero buffer is the copy torch's first step makes,
        # and from a buffer written before a step count set back to 0 is still our rule.
        dampening=0.0 if first else float(dampening), nesterov=nesterov, maximize=maximize,
        is_first_step=False,
    )  # fmt: skip
    return True


SGD.coefficients = staticmethod(sgd_coefficients)
SGD.update = staticmethod(sgd_update)
SGD.torch_fused = staticmethod(sgd_torch_fused)
