r"""Adam and AdamW: bias-corrected moving averages of the gradient and its square."""

from __future__ import annotations

from typing import Any

import torch

from . import _checks
from ._base import Optimizer, common_args, is_set

_RULE = r"""
    With :math:`\gamma` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
    :math:`\epsilon` = ``eps``, :math:`\epsilon_r` = ``eps_root``,
    :math:`\lambda` = ``weight_decay`` and :math:`g_t` the gradient (negated
    when ``maximize``), one step is

    .. math::

        g &\leftarrow g_t + \lambda \theta_{t-1}
            \quad \text{(Adam: L2 in the gradient)} \\
        \theta_{t-1} &\leftarrow (1 - \gamma \lambda)\, \theta_{t-1}
            \quad \text{(AdamW: decoupled decay, instead)} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g^2 \\
        \hat m_t &\leftarrow m_t / (1 - \beta_1^t), \qquad
            \hat v_t \leftarrow v_t / (1 - \beta_2^t) \\
        v^{max}_t &\leftarrow \max(v^{max}_{t-1}, v_t), \qquad
            \hat v_t \leftarrow v^{max}_t / (1 - \beta_2^t) \quad \text{(amsgrad, instead)} \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma\, \hat m_t / (\sqrt{\hat v_t + \epsilon_r} + \epsilon)

    with :math:`m_0 = v_0 = v^{max}_0 = 0`. In the code and the state
    :math:`m` is ``exp_avg``, :math:`v` is ``exp_avg_sq`` and :math:`v^{max}`
    is ``max_exp_avg_sq``; ``m_hat`` and ``v_hat`` are :math:`\hat m, \hat v`.
    The first step moves every coordinate by about :math:`\gamma` (since
    :math:`\hat m_1/\sqrt{\hat v_1} = \pm 1`), whatever the gradient's scale.
"""

_CONVENTIONS = r"""
    Conventions:
        PyTorch and optax use the rule above (optax names :math:`\epsilon_r`
        ``eps_root``; PyTorch has none). Keras uses the *epsilon-hat* form of
        Kingma and Ba's section 2 (``eps_hat``):
        :math:`\theta_t \leftarrow \theta_{t-1} - \gamma_t\, m_t/(\sqrt{v_t} + \hat\epsilon)`
        with :math:`\gamma_t = \gamma \sqrt{1-\beta_2^t}/(1-\beta_1^t)`, i.e. its
        :math:`\hat\epsilon` equals PyTorch's :math:`\epsilon \sqrt{1-\beta_2^t}`;
        it matters while :math:`\sqrt{v}` is small. Keras's default
        :math:`\epsilon` is 1e-7, not 1e-8. optax's AMSGrad keeps the maximum of
        the bias-corrected :math:`\hat v` rather than of :math:`v`
        (``amsgrad_max_of_corrected``). Keras's and optax's weight decay is
        decoupled, as :class:`AdamW`'s.
"""

_ARGS = r"""
    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts
            defining parameter groups.
        lr: learning rate :math:`\gamma` in :math:`[0, \infty)`, float or 1-element tensor (default 1e-3).
        betas: :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)` (default (0.9, 0.999)).
        eps: :math:`\epsilon \ge 0` (default 1e-8).
        weight_decay: :math:`\lambda \ge 0` (default {weight_decay}).
        amsgrad: use the AMSGrad maximum of :math:`v` (default False).
        maximize: ascend instead of descend (default False).
        foreach, fused: torch.optim's implementation flags, mapped to descentlab's:
            True (either) forces the fast path, one compiled pass over flat
            buffers; False (either) the per-tensor loop; None (default)
            chooses the fast path for groups of at least 2**20 elements. Both
            give the same numbers to rounding; see ``implementation()``.
        capturable: keep ``step`` on the parameter's device and never read
            tensors on the host during a step, as CUDA-graph capture needs;
            uses the per-tensor path (default False).
        differentiable: must be False.{extra}
        eps_root: :math:`\epsilon_r \ge 0` inside the square root, as optax's
            ``eps_root`` (default 0; not with ``eps_hat``).
        convention: ``"torch"`` (default), ``"keras"``, ``"optax"`` or a
            :class:`~descentlab.optim.conventions.Convention`; Adam reads
            ``eps_hat`` and ``amsgrad_max_of_corrected``.{common}

    State (per parameter):
        ``step`` (0-dim float tensor), ``exp_avg``, ``exp_avg_sq``, and
        ``max_exp_avg_sq`` if ``amsgrad``.
"""


class Adam(Optimizer):
    __doc__ = (
        r"""Adam (a drop-in for ``torch.optim.Adam``), with AMSGrad.
"""
        + _RULE
        + _ARGS.format(
            weight_decay=0,
            common=common_args(),
            extra=r"""
        decoupled_weight_decay: decay the weights as AdamW does instead of adding
            :math:`\lambda\theta` to the gradient (default False).""",
        )
        + _CONVENTIONS
        + r"""
    Example:
        The first step has size ``lr`` in each coordinate:

        >>> import torch
        >>> from descentlab.optim import Adam
        >>> w = torch.tensor([1.0, -30.0], requires_grad=True)
        >>> opt = Adam([w], lr=0.1)
        >>> (w ** 2).sum().backward()
        >>> opt.step()
        >>> w
        tensor([  0.9000, -29.9000], requires_grad=True)

    References:
        Kingma and Ba, "Adam: A method for stochastic optimization", ICLR 2015.
        Reddi, Kale and Kumar, "On the convergence of Adam and beyond", ICLR 2018 (AMSGrad).
"""
    )

    name = "adam"
    summary = "Adam: bias-corrected moving averages of the gradient and its square; AMSGrad."
    torch_keys = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    unsigned_state = ("exp_avg_sq", "max_exp_avg_sq")
    switches = ("eps_hat", "amsgrad_max_of_corrected")
    zero_terms = ("weight_decay", "eps_root")

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        eps_root: float = 0.0,
        convention: Any = "torch",
        skip_nonfinite: bool = False,
        state_dtype: torch.dtype | None = None,
        lean_state: str | None = None,
        stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize, foreach=foreach, capturable=capturable,
            differentiable=differentiable, fused=fused,
            decoupled_weight_decay=decoupled_weight_decay, eps_root=eps_root,
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
        owner = type(self).__name__
        beta1, beta2 = _checks.pair(owner, "betas", group["betas"])
        _checks.in_range(owner, "betas[0]", beta1, 0, 1, high_open=True)
        _checks.in_range(owner, "betas[1]", beta2, 0, 1, high_open=True)
        _checks.in_range(owner, "eps", group["eps"])
        _checks.in_range(owner, "weight_decay", group["weight_decay"])
        _checks.flag(owner, "amsgrad", group["amsgrad"])
        _checks.flag(owner, "decoupled_weight_decay", group["decoupled_weight_decay"])
        eps_root = _checks.in_range(owner, "eps_root", group["eps_root"])
        if eps_root != 0 and group["eps_hat"]:
            raise ValueError(
                f"{owner}: eps_root is not defined for the epsilon-hat form (eps_hat=True, "
                f"Keras's convention); received eps_root={group['eps_root']!r}"
            )

    def _active_state(self, group: dict[str, Any]) -> dict[str, float]:
        active = {"exp_avg": 0.0, "exp_avg_sq": 0.0}
        if group["amsgrad"]:
            active["max_exp_avg_sq"] = 0.0
        return active

    def _scalars(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(
            lr=self._lr(group), beta1=beta1, beta2=beta2, eps=group["eps"],
            eps_root=group["eps_root"], weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            maximize=group["maximize"], eps_hat=group["eps_hat"],
            amsgrad_max_of_corrected=group["amsgrad_max_of_corrected"],
        )  # fmt: skip


class AdamW(Adam):
    __doc__ = (
        r"""AdamW: Adam with decoupled weight decay (a drop-in for ``torch.optim.AdamW``).
"""
        + _RULE
        + _ARGS.format(weight_decay="1e-2", extra="", common=common_args())
        + _CONVENTIONS
        + r"""
    Example:
        With a zero gradient only the decay acts, shrinking the weights by
        :math:`\gamma\lambda`:

        >>> import torch
        >>> from descentlab.optim import AdamW
        >>> w = torch.tensor([2.0, -4.0], requires_grad=True)
        >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
        >>> w.grad = torch.zeros(2)
        >>> opt.step()
        >>> w
        tensor([ 1.9000, -3.8000], requires_grad=True)

    References:
        Loshchilov and Hutter, "Decoupled weight decay regularization", ICLR 2019.
"""
    )

    name = "adamw"
    summary = "AdamW: Adam with weight decay decoupled from the gradient."

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        eps_root: float = 0.0,
        convention: Any = "torch",
        skip_nonfinite: bool = False,
        state_dtype: torch.dtype | None = None,
        lean_state: str | None = None,
        stochastic_rounding: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
            capturable=capturable, differentiable=differentiable, fused=fused,
            decoupled_weight_decay=True, eps_root=eps_root, convention=convention,
            skip_nonfinite=skip_nonfinite, state_dtype=state_dtype, lean_state=lean_state,
            stochastic_rounding=stochastic_rounding,
        )  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # As torch.optim.AdamW: whatever the checkpoint says, AdamW decays decoupled.
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def adam_coefficients(
    step: float | torch.Tensor,
    *,
    lr: float | torch.Tensor,
    beta1: float | torch.Tensor,
    beta2: float | torch.Tensor,
    weight_decay: float | torch.Tensor,
    eps_hat: bool,
    **hyperparameters: Any,
) -> dict[str, Any]:
    r"""The scalars of one Adam step, with the other arguments of :func:`adam_update`.

    ``step_size`` is :math:`\gamma/(1-\beta_1^t)`, or Keras's
    :math:`\gamma_t = \gamma\sqrt{1-\beta_2^t}/(1-\beta_1^t)` with ``eps_hat``;
    ``bias_correction2`` is :math:`1-\beta_2^t`; ``decay`` is AdamW's
    :math:`1-\gamma\lambda`. Every product of hyperparameters alone is made
    here, once per step, so that the elementwise update only multiplies by them.
    """
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr * bias_correction2**0.5 / bias_correction1 if eps_hat else lr / bias_correction1
    return dict(
        hyperparameters, beta1=beta1, beta2=beta2, one_minus_beta1=1 - beta1, one_minus_beta2=1 - beta2,
        decay=1 - lr * weight_decay, weight_decay=weight_decay, eps_hat=eps_hat,
        step_size=step_size, bias_correction2=bias_correction2,
    )  # fmt: skip


def adam_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    max_exp_avg_sq: torch.Tensor | None,
    *,
    beta1: float | torch.Tensor,
    beta2: float | torch.Tensor,
    one_minus_beta1: float | torch.Tensor,
    one_minus_beta2: float | torch.Tensor,
    eps: float | torch.Tensor,
    eps_root: float | torch.Tensor,
    weight_decay: float | torch.Tensor,
    decay: float | torch.Tensor,
    step_size: float | torch.Tensor,
    bias_correction2: float | torch.Tensor,
    decoupled_weight_decay: bool,
    maximize: bool,
    eps_hat: bool,
    amsgrad_max_of_corrected: bool,
) -> None:
    """One Adam/AdamW step on one tensor (or flat buffer), in place; elementwise only.

    ``max_exp_avg_sq`` None means no AMSGrad. The scalars come from :func:`adam_coefficients`.
    """
    if maximize:
        grad = -grad
    if is_set(weight_decay):
        if decoupled_weight_decay:
            param.mul_(decay)
        else:
            grad = grad + weight_decay * param
    exp_avg.mul_(beta1).add_(grad * one_minus_beta1)
    exp_avg_sq.mul_(beta2).add_(grad * grad * one_minus_beta2)
    if eps_hat:
        v = exp_avg_sq
        if max_exp_avg_sq is not None:
            v = torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        param.sub_(exp_avg.div(v.sqrt().add_(eps)).mul_(step_size))
        return
    v_hat = exp_avg_sq / bias_correction2
    if max_exp_avg_sq is not None:
        if amsgrad_max_of_corrected:
            v_hat = torch.maximum(max_exp_avg_sq, v_hat, out=max_exp_avg_sq)
        else:
            v_hat = torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq) / bias_correction2
    if is_set(eps_root):
        v_hat = v_hat + eps_root
    param.sub_(exp_avg.div(v_hat.sqrt().add_(eps)).mul_(step_size))


def adam_torch_fused(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: dict[str, list[torch.Tensor] | None],
    steps: list[torch.Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    eps_root: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
    eps_hat: bool,
    amsgrad_max_of_corrected: bool,
) -> bool:
    """Run torch's own fused Adam/AdamW kernel where the configuration is torch's rule.

    Returns False, having changed nothing, for the conventions torch has no
    kernel for (Keras's epsilon-hat, optax's ``eps_root`` and corrected
    AMSGrad maximum). ``states`` has a list for each state (None: a state the
    options leave out), and ``steps`` each parameter's step count this update makes.
    """
    amsgrad = states["max_exp_avg_sq"] is not None
    if eps_hat or eps_root != 0 or (amsgrad and amsgrad_max_of_corrected):
        return False
    kernel = torch._fused_adamw_ if decoupled_weight_decay else torch._fused_adam_
    kernel(
        params, grads, states["exp_avg"], states["exp_avg_sq"],
        states["max_exp_avg_sq"] if amsgrad else [], steps,
        lr=float(lr), beta1=float(beta1), beta2=float(beta2), weight_decay=float(weight_decay),
        eps=float(eps), amsgrad=amsgrad, maximize=maximize,
    )  # fmt: skip
    return True


Adam.coefficients = staticmethod(adam_coefficients)
Adam.update = staticmethod(adam_update)
Adam.torch_fused = staticmethod(adam_torch_fused)
