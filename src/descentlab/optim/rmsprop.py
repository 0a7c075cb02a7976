r"""RMSprop: steps scaled by a moving root-mean-square of recent gradients."""

from __future__ import annotations

from typing import Any

import torch

from . import _checks
from ._base import Optimizer, common_args, is_set


class RMSprop(Optimizer):
    __doc__ = (
        r"""RMSprop (a drop-in for ``torch.optim.RMSprop``), centered and with momentum.

    With :math:`\gamma` = ``lr``, :math:`\alpha` = ``alpha``, :math:`\epsilon` =
    ``eps``, :math:`\lambda` = ``weight_decay``, :math:`\mu` = ``momentum`` and
    :math:`g_t` the gradient (negated when ``maximize``), one step is

    .. math::

        g &\leftarrow g_t + \lambda \theta_{t-1} \\
        v_t &\leftarrow \alpha v_{t-1} + (1 - \alpha) g^2 \\
        \bar g_t &\leftarrow \alpha \bar g_{t-1} + (1 - \alpha) g
            \quad (\text{centered; else } \bar g_t = 0) \\
        \sigma_t &\leftarrow \sqrt{v_t - \bar g_t^2} + \epsilon
            \quad \text{or, with } \texttt{eps\_inside\_sqrt}, \quad \sqrt{v_t - \bar g_t^2 + \epsilon} \\
        b_t &\leftarrow \mu b_{t-1} + g / \sigma_t, \qquad
            \theta_t \leftarrow \theta_{t-1} - \gamma b_t
            \qquad (\text{with } \mu = 0:\ \theta_t \leftarrow \theta_{t-1} - \gamma g / \sigma_t)

    with :math:`v_0 = \bar g_0 = b_0 = 0`. In the code and the state :math:`v`
    is ``square_avg``, :math:`\bar g` is ``grad_avg`` and :math:`b` is
    ``momentum_buffer``. Unlike Adagrad's sum, :math:`v` forgets old gradients
    at rate :math:`1 - \alpha`, so the step size tracks the recent gradient
    scale instead of decaying to zero.

    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts
            defining parameter groups.
        lr: learning rate :math:`\gamma` in :math:`[0, \infty)`, float or 1-element tensor (default 1e-2).
        alpha: smoothing constant :math:`\alpha` in :math:`[0, 1)` (default 0.99; Keras and optax use 0.9).
        eps: :math:`\epsilon \ge 0` (default 1e-8; Keras uses 1e-7).
        weight_decay: L2 penalty :math:`\lambda \ge 0` (default 0).
        momentum: :math:`\mu` in :math:`[0, 1)` (default 0).
        centered: divide by the estimated standard deviation instead of the
            root mean square (default False).
        capturable: keep ``step`` on the parameter's device and never read
            tensors on the host during a step, as CUDA-graph capture needs;
            uses the per-tensor path (default False).
        foreach: torch.optim's implementation flag, mapped to descentlab's: True
            forces the fast path, one compiled pass over flat buffers; False the
            per-tensor loop; None (default) chooses the fast path for groups of
            at least 2**20 elements. Both give the same numbers to rounding.
        maximize: ascend instead of descend (default False).
        differentiable: must be False.
        convention: ``"torch"`` (default), ``"keras"``, ``"optax"`` or a
            :class:`~descentlab.optim.conventions.Convention`; RMSprop reads
            ``eps_inside_sqrt`` and ``lr_inside_momentum``."""
        + common_args(
            """ Not ``"8bit"`` with
            ``centered``, whose variance, a difference of two rounded moments,
            could turn negative."""
        )
        + r"""

    State (per parameter):
        ``step`` (0-dim float tensor), ``square_avg``, ``momentum_buffer`` if
        ``momentum > 0``, ``grad_avg`` if ``centered``.

    Conventions:
        PyTorch adds :math:`\epsilon` outside the square root; Keras and optax
        inside (``eps_inside_sqrt``). Keras and optax also put the learning rate
        inside the momentum buffer, :math:`b_t \leftarrow \mu b_{t-1} + \gamma
        g/\sigma_t,\ \theta_t \leftarrow \theta_{t-1} - b_t`
        (``lr_inside_momentum``): the same numbers while ``lr`` is constant,
        different ones under a schedule. TensorFlow 1 started :math:`v_0` at 1;
        Keras 3, optax and PyTorch start at 0.

    Example:
        The first step of RMSprop (here with ``alpha=0.75``) moves each
        coordinate by :math:`\gamma/\sqrt{1-\alpha} = 2\gamma`, whatever the
        gradient's size:

        >>> import torch
        >>> from descentlab.optim import RMSprop
        >>> w = torch.tensor([1.0, -50.0], requires_grad=True)
        >>> opt = RMSprop([w], lr=0.05, alpha=0.75)
        >>> (w ** 2).sum().backward()
        >>> opt.step()
        >>> w
        tensor([  0.9000, -49.9000], requires_grad=True)

    References:
        Tieleman and Hinton, Lecture 6.5 of "Neural Networks for Machine Learning", 2012.
        Graves, "Generating sequences with recurrent neural networks", 2013 (centered form).
    """
    )

    name = "rmsprop"
    summary = "RMSprop: steps scaled by a moving RMS of recent gradients; centered, momentum."
    torch_keys = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    state_names = ("square_avg", "grad_avg", "momentum_buffer")
    unsigned_state = ("square_avg",)
    switches = ("eps_inside_sqrt", "lr_inside_momentum")

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        convention: Any = "torch",
        skip_nonfinite: bool = False,
        state_dtype: torch.dtype | None = None,
        lean_state: str | None = None,
        stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
            weight_decay=weight_decay, capturable=capturable, foreach=foreach,
            maximize=maximize, differentiable=differentiable,
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
        owner = "RMSprop"
        _checks.in_range(owner, "alpha", group["alpha"], 0, 1, high_open=True)
        _checks.in_range(owner, "eps", group["eps"])
        _checks.in_range(owner, "weight_decay", group["weight_decay"])
        _checks.in_range(owner, "momentum", group["momentum"], 0, 1, high_open=True)
        if _checks.flag(owner, "centered", group["centered"]) and group.get("lean_state") == "8bit":
            raise ValueError(
                "RMSprop: centered=True cannot be combined with lean_state='8bit': the centered "
                "variance v - g_avg**2 is a difference of two 8-bit moments, whose rounding (up to "
                "1.4% of a block's largest value) can make it negative, and its square root NaN; "
                "use lean_state='bfloat16'; received centered=True, lean_state='8bit'"
            )

    def _active_state(self, group: dict[str, Any]) -> dict[str, float]:
        active = {"square_avg": 0.0}
        if group["centered"]:
            active["grad_avg"] = 0.0
        if group["momentum"] != 0:
            active["momentum_buffer"] = 0.0
        return active

    def _scalars(self, group: dict[str, Any]) -> dict[str, Any]:
        return dict(
            lr=self._lr(group), alpha=group["alpha"], eps=group["eps"],
            weight_decay=group["weight_decay"], momentum=group["momentum"],
            maximize=group["maximize"], eps_inside_sqrt=group["eps_inside_sqrt"],
            lr_inside_momentum=group["lr_inside_momentum"],
        )  # fmt: skip


def rmsprop_coefficients(
    step: float | torch.Tensor, *, alpha: float | torch.Tensor, **hyperparameters: Any
) -> dict[str, Any]:
    """The scalars of one RMSprop step: no step-dependent one (no bias correction), and :math:`1-\\alpha`."""
    del step
    return dict(hyperparameters, alpha=alpha, one_minus_alpha=1 - alpha)


def rmsprop_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    square_avg: torch.Tensor,
    grad_avg: torch.Tensor | None,
    momentum_buffer: torch.Tensor | None,
    *,
    lr: float | torch.Tensor,
    alpha: float | torch.Tensor,
    one_minus_alpha: float | torch.Tensor,
    eps: float | torch.Tensor,
    weight_decay: float | torch.Tensor,
    momentum: float | torch.Tensor,
    maximize: bool,
    eps_inside_sqrt: bool,
    lr_inside_momentum: bool,
) -> None:
    """One RMSprop step on one tensor (or flat buffer), in place.

    ``grad_avg`` None means not centered; ``momentum_buffer`` None means no momentum.
    """
    if maximize:
        grad = -grad
    if is_set(weight_decay):
        grad = grad + weight_decay * param
    square_avg.mul_(alpha).add_(grad * grad * one_minus_alpha)
    var = square_avg
    if grad_avg is not None:
        grad_avg.mul_(alpha).add_(grad * one_minus_alpha)
        var = square_avg - grad_avg * grad_avg
    sigma = (var + eps).sqrt_() if eps_inside_sqrt else var.sqrt().add_(eps)
    if momentum_buffer is None:
        param.sub_(grad.div(sigma).mul_(lr))
    elif lr_inside_momentum:
        momentum_buffer.mul_(momentum).add_(grad.div(sigma).mul_(lr))
        param.sub_(momentum_buffer)
    else:
        momentum_buffer.mul_(momentum).add_(grad.div(sigma))
        param.sub_(momentum_buffer * lr)


RMSprop.coefficients = staticmethod(rmsprop_coefficients)
RMSprop.update = staticmethod(rmsprop_update)
