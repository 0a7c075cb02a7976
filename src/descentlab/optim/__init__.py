"""descentlab's optimizers: drop-in replacements for torch.optim's, with one registry.

>>> from descentlab.optim import OPTIMIZERS
>>> list(OPTIMIZERS)
['sgd', 'adagrad', 'rmsprop', 'adam', 'adamw']
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .._registry import lookup
from ._base import Optimizer
from .adagrad import Adagrad, adagrad_coefficients, adagrad_update
from .adam import Adam, AdamW, adam_coefficients, adam_update
from .conventions import CONVENTIONS, KERAS, OPTAX, TORCH, Convention
from .rmsprop import RMSprop, rmsprop_coefficients, rmsprop_update
from .sgd import SGD, sgd_coefficients, sgd_update

#: The one name -> class table that the CLI, the tests and the lab read,
#: sorted in order of increasing complexity.
OPTIMIZERS: Mapping[str, type[Optimizer]] = MappingProxyType(
    {cls.name: cls for cls in (SGD, Adagrad, RMSprop, Adam, AdamW)}
)


def get_optimizer(name: str) -> type[Optimizer]:
    """The optimizer class registered as ``name``; suggests close names if unknown."""
    return lookup("optimizer", name, OPTIMIZERS)


__all__ = [
    "CONVENTIONS",
    "KERAS",
    "OPTAX",
    "OPTIMIZERS",
    "SGD",
    "TORCH",
    "Adagrad",
    "Adam",
    "AdamW",
    "Convention",
    "Optimizer",
    "RMSprop",
    "adagrad_coefficients",
    "adagrad_update",
    "adam_coefficients",
    "adam_update",
    "get_optimizer",
    "rmsprop_coefficients",
    "rmsprop_update",
    "sgd_coefficients",
    "sgd_update",
]  # fmt: skip
