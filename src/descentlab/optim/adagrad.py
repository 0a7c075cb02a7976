r"""Adagrad: per-coordinate steps scaled by the root of the summed squared gradients."""

from __future__ import annotations

from typing import Any

import torch

from . import _checks
from ._base import Optimizer, common_args, is_set


class Adagrad(Optimizer):
    __doc__ = (
        r"""Adagrad (a drop-in for ``torch.optim.Adagrad``), with sparse gradients.

    With :math:`\gamma` = ``lr``, :math:`\eta` = ``lr_decay``, :math:`\lambda`
    = ``weight_decay``, :math:`\epsilon` = ``eps``, :math:`s_0` =
    ``initial_accumulator_value`` and :math:`g_t` the gradient (negated when
    ``maximize``), one step is

    .. math::

        g &\leftarrow g_t + \lambda \theta_{t-1} \\
        \tilde\gamma_t &\leftarrow \gamma / (1 + (t - 1)\eta) \\
        s_t &\leftarrow s_{t-1} + g^2 \\
        \theta_t &\leftarrow \theta_{t-1} - \tilde\gamma_t \, g / (\sqrt{s_t} + \epsilon)
        \qquad \text{or, with } \texttt{eps\_inside\_sqrt},\quad
        \theta_{t-1} - \tilde\gamma_t \, g / \sqrt{s_t + \epsilon}

    :math:`s` is ``sum`` in the code and the state. Each coordinate's effective
    learning rate :math:`\tilde\gamma_t/\sqrt{s_t}` only shrinks: rare features
    (small :math:`s`) keep large steps, which is what Adagrad is for, and every
    step size decays towards zero as :math:`s` grows, which is its weakness.

    **Sparse gradients** (``nn.Embedding(..., sparse=True)``) update only the
    rows they contain, with the numbers the dense rule gives on those rows;
    ``weight_decay`` cannot be combined with them (it would touch every row).

    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts
            defining parameter groups.
        lr: learning rate :math:`\gamma` in :math:`[0, \infty)`, float or 1-element tensor (default 1e-2).
        lr_decay: :math:`\eta \ge 0` (default 0).
        weight_decay: L2 penalty :math:`\lambda \ge 0` (default 0).
        initial_accumulator_value: :math:`s_0 \ge 0` (default 0; Keras and optax use 0.1).
        eps: :math:`\epsilon \ge 0` (default 1e-10; Keras and optax use 1e-7).
        foreach, fused: torch.optim's implementation flags, mapped to descentlab's:
            True (either) forces the fast path, one compiled pass over flat
            buffers; False (either) the per-tensor loop; None (default)
            chooses the fast path for groups of at least 2**20 elements. Both
            give the same numbers to rounding; see ``implementation()``.
        maximize: ascend instead of descend (default False).
        differentiable: must be False.
        convention: ``"torch"`` (default), ``"keras"``, ``"optax"`` or a
            :class:`~descentlab.optim.conventions.Convention`; Adagrad reads
            ``eps_inside_sqrt``."""
        + common_args()
        + r"""

    State (per parameter, created with the optimizer as torch.optim does):
        ``sum`` (:math:`s`) and ``step`` (:math:`t`, a 0-dim float tensor).

    Conventions:
        PyTorch adds :math:`\epsilon` outside the square root; Keras and optax
        inside (``eps_inside_sqrt``), where it bounds the first step at
        :math:`\gamma\, g/\sqrt{g^2 + s_0 + \epsilon}`. optax additionally
        returns 0 where :math:`s_t = 0`, which the inside form already does
        whenever :math:`\epsilon > 0`. Neither has ``lr_decay``.

    Example:
        With :math:`s_0 = 0` the first step moves every coordinate by about
        ``lr``, whatever the gradient's size:

        >>> import torch
        >>> from descentlab.optim import Adagrad
        >>> w = torch.tensor([1.0, 100.0], requires_grad=True)
        >>> opt = Adagrad([w], lr=0.1)
        >>> (w ** 2).sum().backward()
        >>> opt.step()
        >>> w
        tensor([ 0.9000, 99.9000], requires_grad=True)

    References:
        Duchi, Hazan and Singer, "Adaptive subgradient methods for online learning
        and stochastic optimization", JMLR 2011.
    """
    )

    name = "adagrad"
    summary = "Adagrad: per-coordinate steps shrink with the summed squared gradients; sparse gradients."
    torch_keys = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    state_names = ("sum",)
    unsigned_state = ("sum",)
    switches = ("eps_inside_sqrt",)
    sparse_gradients = True
    eager_state = True

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        convention: Any = "torch",
        skip_nonfinite: bool = False,
        state_dtype: torch.dtype | None = None,
        lean_state: str | None = None,
        stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, foreach=foreach,
            maximize=maximize, differentiable=differentiable, fused=fused,
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
        for key in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            _checks.in_range("Adagrad", key, group[key])

    def _check_sparse_options(self, owner: str, at: str, group: dict[str, Any]) -> None:
        if group["weight_decay"] != 0:
            raise RuntimeError(
                f"{owner}: weight_decay cannot be combined with sparse gradients ({at} has one): "
                "decay would change every row, not just the rows the gradient has; received "
                f"weight_decay={group['weight_decay']!r}"
            )

    def _active_state(self, group: dict[str, Any]) -> dict[str, float]:
        return {"sum": float(group["initial_accumulator_value"])}

    def _scalars(self, group: dict[str, Any]) -> dict[str, Any]:
        return dict(
            lr=self._lr(group), lr_decay=group["lr_decay"], weight_decay=group["weight_decay"],
            eps=group["eps"], maximize=group["maximize"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
        )  # fmt: skip


def adagrad_coefficients(
    step: float | torch.Tensor,
    *,
    lr: float | torch.Tensor,
    lr_decay: float | torch.Tensor,
    **hyperparameters: Any,
) -> dict[str, Any]:
    r"""The step-dependent scalar of one Adagrad step, ``clr`` (:math:`\tilde\gamma_t`), and the rest."""
    return dict(hyperparameters, clr=lr / (1 + (step - 1) * lr_decay))


def adagrad_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    sum: torch.Tensor,  # noqa: A002 - torch.optim's state key
    *,
    clr: float | torch.Tensor,
    weight_decay: float | torch.Tensor,
    eps: float | torch.Tensor,
    maximize: bool,
    eps_inside_sqrt: bool,
) -> None:
    """One Adagrad step on one tensor (or flat buffer), in place; ``grad`` may be sparse."""
    if maximize:
        grad = -grad
    if is_set(weight_decay):
        grad = grad + weight_decay * param
    if grad.is_sparse:
        _sparse_adagrad_update(param, grad, sum, clr=clr, eps=eps, eps_inside_sqrt=eps_inside_sqrt)
        return
    sum.addcmul_(grad, grad)
    denom = (sum + eps).sqrt_() if eps_inside_sqrt else sum.sqrt().add_(eps)
    param.sub_(grad.div(denom).mul_(clr))


def _sparse_adagrad_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    sum: torch.Tensor,  # noqa: A002
    *,
    clr: float | torch.Tensor,
    eps: float | torch.Tensor,
    eps_inside_sqrt: bool,
) -> None:
    # The rule is nonlinear in g, so repeated indices must be summed first.
    grad = grad.coalesce()
    indices, values = grad._indices(), grad._values()

    def rows(v: torch.Tensor) -> torch.Tensor:
        # The indices come from a coalesced tensor: valid, sorted and unique.
        return torch.sparse_coo_tensor(indices, v, grad.size(), check_invariants=False, is_coalesced=True)

    sum.add_(rows(values * values))
    s = sum.sparse_mask(grad)._values()
    denom = (s + eps).sqrt_() if eps_inside_sqrt else s.sqrt().add_(eps)
    param.sub_(rows(values.div(denom).mul_(clr)))


def adagrad_torch_fused(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: dict[str, list[torch.Tensor] | None],
    steps: list[torch.Tensor],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
    eps_inside_sqrt: bool,
) -> bool:
    """Run torch's own fused Adagrad kernel where the configuration is torch's rule.

    Returns False, having changed nothing, with epsilon inside the square root
    (Keras's and optax's form). ``steps`` holds each parameter's step count
    this update makes.
    """
    if eps_inside_sqrt:
        return False
    torch._fused_adagrad_(
        params, grads, states["sum"], steps, lr=float(lr), lr_decay=float(lr_decay),
        weight_decay=float(weight_decay), eps=float(eps), maximize=maximize,
    )  # fmt: skip
    return True


Adagrad.coefficients = staticmethod(adagrad_coefficients)
Adagrad.update = staticmethod(adagrad_update)
Adagrad.torch_fused = staticmethod(adagrad_torch_fused)
