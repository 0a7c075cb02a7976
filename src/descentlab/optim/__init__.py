"""descentlab's optimizers: drop-in replacements for torch.optim's, with one registry.

>>> from descentlab.optim import OPTIMIZERS
>>> list(OPTIMIZERS)
['sgd', 'adagrad', 'rmsprop', 'adam', 'adamw']
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from .._registry import lookup
from . import _lean
from ._base import Optimizer
from ._checks import OptionError
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


def to_torch_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A descentlab state_dict with its lean state (``lean_state``) made full precision, for torch.optim.

    8-bit codes and their block scales become float32 tensors (dequantised
    exactly: the values the optimizer computes with), bfloat16 state becomes
    float32; everything else is shared with ``state_dict``, which is not
    changed. torch.optim's class of the same name loads the result (it casts
    the state to the parameters' dtype). descentlab's optimizers load lean or
    full-precision checkpoints alike, converting them to their own
    ``lean_state``, so they need no conversion.
    """
    unsigned = {n for cls in OPTIMIZERS.values() for n in cls.unsigned_state}
    state = {}
    for pid, entry in state_dict["state"].items():
        entry = dict(entry)
        for key in [k for k in entry if _lean.ABSMAX.format(k) in entry]:
            absmax = entry.pop(_lean.ABSMAX.format(key))
            entry[key] = _lean.dequantise(entry[key], absmax, key not in unsigned, torch.float32)
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16 and key != "step":
                entry[key] = value.float()
        state[pid] = entry
    return {**state_dict, "state": state}


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
    "OptionError",
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
    "to_torch_state_dict",
]  # fmt: skip
