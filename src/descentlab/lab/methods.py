"""The methods the lab compares: named configurations of the optimizers, each with its regime.

A method is what the usual claims talk about ("gradient descent on the full
batch", "SGD with momentum", "Adam"): an optimizer from
:data:`descentlab.optim.OPTIMIZERS`, the regime it runs in, and the
hyperparameters other than the learning rate, which the lab tunes. One
method, ``momentum-matched``, is not tuned: it runs heavy-ball momentum at
plain SGD's tuned learning rate times :math:`1 - \\beta`, so that its
effective step size :math:`\\gamma / (1 - \\beta)` equals SGD's and what the
comparison measures is the momentum, not a larger step.

>>> METHODS["momentum-matched"].matched_to, METHODS["momentum-matched"].lr_factor
('sgd', 0.09999999999999998)
>>> [m.name for m in METHODS.values() if m.regime == "full-batch"]
['gd']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

MOMENTUM = 0.9


@dataclass(frozen=True)
class Method:
    """One named way of descending: optimizer, regime, fixed hyperparameters, how its lr is chosen.

    ``matched_to``: the lr is not tuned but derived, ``lr_factor`` times the
    tuned lr of that method on the same problem. ``observers`` are added to
    every run of the method (the adaptive methods record their effective
    per-coordinate learning rate).
    """

    name: str
    optimizer: str
    regime: str
    summary: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    matched_to: str | None = None
    lr_factor: float = 1.0
    observers: tuple[str, ...] = ()

    @property
    def tuned(self) -> bool:
        """Whether the lab tunes this method's learning rate on the grid."""
        return self.matched_to is None

    @property
    def adaptive(self) -> bool:
        """Whether the method scales each coordinate's step by its gradient history."""
        return self.optimizer in ("adagrad", "rmsprop", "adam", "adamw")


_EFFECTIVE_LR = ("effective-lr",)

#: The one name -> method table (sorted as the report lists them).
METHODS: Mapping[str, Method] = MappingProxyType(
    {
        m.name: m
        for m in (
            Method("gd", "sgd", "full-batch", "gradient descent on the full batch (exact gradient)"),
            Method("sgd", "sgd", "mini-batch", "stochastic gradient descent on mini-batches"),
            Method("online-sgd", "sgd", "online", "stochastic gradient descent, one sample per update"),
            Method(
                "momentum",
                "sgd",
                "mini-batch",
                f"SGD with heavy-ball momentum {MOMENTUM}, its own tuned lr",
                {"momentum": MOMENTUM},
            ),
            Method(
                "momentum-matched",
                "sgd",
                "mini-batch",
                f"SGD with heavy-ball momentum {MOMENTUM} at SGD's tuned lr x (1 - {MOMENTUM}): "
                "the same effective step size lr/(1 - beta) as plain SGD",
                {"momentum": MOMENTUM},
                matched_to="sgd",
                lr_factor=1 - MOMENTUM,
            ),
            Method("adagrad", "adagrad", "mini-batch", "AdaGrad (torch defaults)", observers=_EFFECTIVE_LR),
            Method("rmsprop", "rmsprop", "mini-batch", "RMSProp (torch defaults)", observers=_EFFECTIVE_LR),
            Method("adam", "adam", "mini-batch", "Adam (torch defaults)", observers=_EFFECTIVE_LR),
        )
    }
)
