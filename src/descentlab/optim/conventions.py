r"""Where PyTorch, Keras and optax write the same optimizer differently.

The same name ("RMSprop", "Adam") stands for slightly different rules in
different frameworks. With the same hyperparameters and the same gradients they
give different numbers, so a result from one framework cannot be reproduced in
another by copying the hyperparameters. A :class:`Convention` names each
difference as a switch of one optimizer; every descentlab optimizer takes
``convention=`` and follows it:

==============  ============================  ==========================================  =====  =====  =====
optimizer       switch                        what it changes                             torch  keras  optax
==============  ============================  ==========================================  =====  =====  =====
SGD             ``lr_inside_momentum``        the buffer sums lr-scaled gradients, so a   no     yes    no
                                              new lr affects only new gradients
Adagrad         ``eps_inside_sqrt``           :math:`\sqrt{s+\epsilon}` instead of        no     yes    yes
                                              :math:`\sqrt{s}+\epsilon`
RMSprop         ``eps_inside_sqrt``           :math:`\sqrt{v+\epsilon}` instead of        no     yes    yes
                                              :math:`\sqrt{v}+\epsilon`
RMSprop         ``lr_inside_momentum``        the buffer sums lr-scaled steps             no     yes    yes
Adam, AdamW     ``eps_hat``                   Keras's epsilon-hat form: bias corrections  no     yes    no
                                              folded into the step size,
                                              :math:`\epsilon` added to the raw
                                              :math:`\sqrt{v}`
Adam, AdamW     ``amsgrad_max_of_corrected``  AMSGrad keeps the maximum of the            no     no     yes
                                              bias-corrected :math:`\hat v`, not of
                                              the raw :math:`v`
==============  ============================  ==========================================  =====  =====  =====

optax's ``sgd`` is ``chain(trace, scale_by_learning_rate)`` (momentum first,
as PyTorch), while its ``rmsprop`` is ``chain(scale_by_rms,
scale_by_learning_rate, trace)`` (learning rate inside the momentum): the
switches are per optimizer for that reason. With a constant learning rate
``lr_inside_momentum`` gives the same numbers either way; it matters under a
schedule.

The switches change formulas only. Each framework also has its own *default*
hyperparameters (Keras's RMSprop uses ``rho=0.9, epsilon=1e-7``, its Adagrad
starts the accumulator at 0.1); those are in :attr:`Convention.defaults` and
``Optimizer.from_convention`` applies them:

>>> import torch
>>> from descentlab.optim import RMSprop
>>> w = torch.zeros(3, requires_grad=True)
>>> opt = RMSprop.from_convention([w], "keras", lr=1e-3)
>>> opt.param_groups[0]["alpha"], opt.param_groups[0]["eps"], opt.param_groups[0]["eps_inside_sqrt"]
(0.9, 1e-07, True)

Facts that need no switch, because descentlab's classes already split them:
Keras's ``Adam(weight_decay=...)`` and optax's ``adamw`` decay the weights
decoupled from the gradient, as descentlab's :class:`~descentlab.optim.AdamW`
does; descentlab's :class:`~descentlab.optim.Adam` keeps PyTorch's L2 form.
optax's ``eps_root`` is a hyperparameter of descentlab's Adam, and optax's
``ema(decay, debias=True)`` followed by ``scale(-lr)`` is SGD's
``momentum_form="ema", debias=True``.

The ``keras`` preset is checked against Keras 3 and the ``optax`` preset
against optax, by float64 trajectories those libraries computed (see
``tests/golden/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .._registry import lookup


@dataclass(frozen=True)
class Convention:
    """The formula switches of one framework, per optimizer, and its default hyperparameters.

    ``switches`` maps an optimizer's registry name to the switches it turns on;
    a switch not listed is off, which is PyTorch's rule. ``defaults`` maps an
    optimizer's registry name to that framework's default arguments, in
    descentlab's argument names. Build your own from a preset with
    :func:`dataclasses.replace`.
    """

    name: str
    switches: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    defaults: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    def switches_for(self, optimizer: str, names: tuple[str, ...], owner: str) -> dict[str, bool]:
        """The values of ``names`` (the switches ``optimizer`` reads) under this convention."""
        given = self.switches.get(optimizer, {})
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError(
                f"{owner}: convention {self.name!r} sets {', '.join(unknown)} for {optimizer}, "
                f"which reads only: {', '.join(names) or 'no switch'}"
            )
        for switch, value in given.items():
            if not isinstance(value, bool):
                raise TypeError(f"{owner}: convention {self.name!r}: {switch} must be True or False")
        return {n: given.get(n, False) for n in names}


TORCH = Convention(name="torch")

_ADAM_KERAS = {"eps_hat": True}
_ADAM_OPTAX = {"amsgrad_max_of_corrected": True}

KERAS = Convention(
    name="keras",
    switches=MappingProxyType(
        {
            "sgd": {"lr_inside_momentum": True},
            "adagrad": {"eps_inside_sqrt": True},
            "rmsprop": {"eps_inside_sqrt": True, "lr_inside_momentum": True},
            "adam": _ADAM_KERAS,
            "adamw": _ADAM_KERAS,
        }
    ),
    defaults=MappingProxyType(
        {
            "sgd": {"lr": 0.01},
            "adagrad": {"lr": 1e-3, "initial_accumulator_value": 0.1, "eps": 1e-7},
            "rmsprop": {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7},
            "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-7},
            "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-7, "weight_decay": 0.004},
        }
    ),
)

OPTAX = Convention(
    name="optax",
    switches=MappingProxyType(
        {
            "adagrad": {"eps_inside_sqrt": True},
            "rmsprop": {"eps_inside_sqrt": True, "lr_inside_momentum": True},
            "adam": _ADAM_OPTAX,
            "adamw": _ADAM_OPTAX,
        }
    ),
    defaults=MappingProxyType(
        {
            "adagrad": {"initial_accumulator_value": 0.1, "eps": 1e-7},
            "rmsprop": {"alpha": 0.9, "eps": 1e-8},
            "adam": {"betas": (0.9, 0.999), "eps": 1e-8},
            "adamw": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-4},
        }
    ),
)

CONVENTIONS: Mapping[str, Convention] = MappingProxyType({c.name: c for c in (TORCH, KERAS, OPTAX)})


def resolve(convention: str | Convention, owner: str = "optimizer") -> Convention:
    """The :class:`Convention` for a preset name or a Convention itself."""
    if isinstance(convention, Convention):
        return convention
    if not isinstance(convention, str):
        raise TypeError(
            f"{owner}: convention must be a preset name ({', '.join(CONVENTIONS)}) or a "
            f"Convention; received convention={convention!r}"
        )
    try:
        return lookup("convention", convention, CONVENTIONS)
    except LookupError as err:
        raise ValueError(f"{owner}: {err}") from None
