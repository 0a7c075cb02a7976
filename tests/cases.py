"""The registry-driven test table: one entry per optimizer in ``OPTIMIZERS``.

Every test of the optimizer library reads this table, so adding an optimizer
is one file plus one registry entry plus one entry here, and the new optimizer
then gets every parity, invariant and error test. ``test_table_covers_registry``
fails if an optimizer has no entry.

A :class:`Config` is a set of constructor arguments; ``torch=True`` means that
torch.optim's class of the same name implements exactly that rule (so it is an
oracle), ``False`` that only the float64 reference in ``reference.py`` is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Config:
    kwargs: Mapping[str, Any]
    torch: bool = True

    @property
    def id(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.kwargs.items()) or "defaults"


@dataclass(frozen=True)
class ErrorCase:
    kwargs: Mapping[str, Any]
    error: type[Exception]
    match: str  # a regular expression the message must match


@dataclass(frozen=True)
class OptimizerCase:
    name: str
    torch_cls: type[torch.optim.Optimizer]
    configs: tuple[Config, ...]
    errors: tuple[ErrorCase, ...] = field(default=())


def _range_error(argument: str, value: Any, interval: str) -> ErrorCase:
    """The error for ``argument=value`` outside ``interval``; ``betas[i]`` sets one beta."""
    key, _, index = argument.partition("[")
    if index:
        betas = [0.9, 0.999]
        betas[int(index[0])] = value
        kwargs: dict[str, Any] = {key: tuple(betas)}
    else:
        kwargs = {key: value}
    message = f"{argument} must be a finite number in {interval}; received {argument}={value!r}"
    return ErrorCase(kwargs, ValueError, re.escape(message))


SGD_CASE = OptimizerCase(
    name="sgd",
    torch_cls=torch.optim.SGD,
    configs=(
        Config({"lr": 0.05}),
        Config({"lr": 0.05, "momentum": 0.9}),
        Config({"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
        Config({"lr": 0.05, "momentum": 0.9, "nesterov": True}),
        Config({"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1}),
        Config({"lr": 0.05, "momentum": 0.9, "maximize": True}),
        Config({"lr": 0.05, "momentum": 0.9, "momentum_form": "ema"}, torch=False),
        Config({"lr": 0.05, "momentum": 0.9, "momentum_form": "ema", "debias": True}, torch=False),
        Config({"lr": 0.05, "momentum": 0.9, "momentum_form": "ema", "nesterov": True}, torch=False),
        Config(
            {"lr": 0.05, "momentum": 0.8, "momentum_form": "ema", "debias": True, "nesterov": True},
            torch=False,
        ),
        Config({"lr": 0.05, "momentum": 0.9, "convention": "keras"}, torch=False),
        Config({"lr": 0.05, "momentum": 0.9, "nesterov": True, "convention": "keras"}, torch=False),
    ),
    errors=(
        _range_error("momentum", -0.1, "[0, 1)"),
        _range_error("momentum", 1.0, "[0, 1)"),
        _range_error("dampening", 1.5, "[0, 1]"),
        _range_error("weight_decay", -1e-4, "[0, inf)"),
        ErrorCase({"nesterov": True}, ValueError, r"nesterov=True requires momentum > 0 .*momentum=0"),
        ErrorCase(
            {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
            ValueError,
            r"nesterov=True requires .*dampening=0.1",
        ),
        ErrorCase(
            {"momentum_form": "emma", "momentum": 0.9},
            ValueError,
            r"momentum_form must be one of .*'emma'.*did you mean 'ema'",
        ),
        ErrorCase(
            {"debias": True, "momentum": 0.9}, ValueError, r"debias=True applies to momentum_form='ema'"
        ),
        ErrorCase(
            {"momentum_form": "ema", "momentum": 0.9, "dampening": 0.5},
            ValueError,
            r"dampening applies to the heavy-ball form only.*dampening=0.5",
        ),
        ErrorCase(
            {"nesterov": "yes", "momentum": 0.9},
            TypeError,
            r"nesterov must be True or False; received nesterov='yes'",
        ),
    ),
)

ADAGRAD_CASE = OptimizerCase(
    name="adagrad",
    torch_cls=torch.optim.Adagrad,
    configs=(
        Config({"lr": 0.1}),
        Config({"lr": 0.1, "lr_decay": 0.05}),
        Config({"lr": 0.1, "weight_decay": 0.1}),
        Config({"lr": 0.1, "initial_accumulator_value": 0.1}),
        Config({"lr": 0.1, "eps": 1e-3, "maximize": True}),
        Config(
            {"lr": 0.1, "convention": "keras", "initial_accumulator_value": 0.1, "eps": 1e-7}, torch=False
        ),
        Config({"lr": 0.1, "convention": "optax", "eps": 1e-3, "lr_decay": 0.01}, torch=False),
    ),
    errors=(
        _range_error("lr_decay", -0.5, "[0, inf)"),
        _range_error("weight_decay", -1.0, "[0, inf)"),
        _range_error("initial_accumulator_value", -0.1, "[0, inf)"),
        _range_error("eps", -1e-10, "[0, inf)"),
        _range_error("eps", float("inf"), "[0, inf)"),
    ),
)

RMSPROP_CASE = OptimizerCase(
    name="rmsprop",
    torch_cls=torch.optim.RMSprop,
    configs=(
        Config({"lr": 0.01}),
        Config({"lr": 0.01, "alpha": 0.9}),
        Config({"lr": 0.01, "centered": True}),
        Config({"lr": 0.01, "momentum": 0.9}),
        Config({"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.1}),
        Config({"lr": 0.01, "eps": 1e-3, "maximize": True}),
        Config({"lr": 0.01, "alpha": 0.9, "momentum": 0.9, "convention": "keras"}, torch=False),
        Config({"lr": 0.01, "centered": True, "convention": "optax", "eps": 1e-3}, torch=False),
    ),
    errors=(
        _range_error("alpha", 1.0, "[0, 1)"),
        _range_error("alpha", -0.1, "[0, 1)"),
        _range_error("eps", -1e-8, "[0, inf)"),
        _range_error("weight_decay", float("nan"), "[0, inf)"),
        _range_error("momentum", 1.2, "[0, 1)"),
        ErrorCase({"centered": 1}, TypeError, r"centered must be True or False; received centered=1"),
    ),
)

_ADAM_ERRORS = (
    _range_error("betas[0]", 1.2, "[0, 1)"),
    _range_error("betas[1]", -0.1, "[0, 1)"),
    _range_error("betas[1]", 1.0, "[0, 1)"),
    _range_error("eps", -1e-8, "[0, inf)"),
    _range_error("weight_decay", -0.01, "[0, inf)"),
    _range_error("eps_root", -1.0, "[0, inf)"),
    ErrorCase({"betas": (0.9,)}, ValueError, r"betas must be a pair \(a, b\); received 1 values"),
    ErrorCase({"betas": 0.9}, TypeError, r"betas must be a pair \(a, b\); received betas=0.9"),
    ErrorCase(
        {"eps_root": 1e-8, "convention": "keras"},
        ValueError,
        r"eps_root is not defined for the epsilon-hat form .*eps_root=1e-08",
    ),
)

ADAM_CASE = OptimizerCase(
    name="adam",
    torch_cls=torch.optim.Adam,
    configs=(
        Config({"lr": 0.05}),
        Config({"lr": 0.05, "amsgrad": True}),
        Config({"lr": 0.05, "weight_decay": 0.1}),
        Config({"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
        Config({"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-3, "maximize": True}),
        Config({"lr": 0.05, "betas": (0.0, 0.5), "amsgrad": True, "weight_decay": 0.05}),
        Config({"lr": 0.05, "eps_root": 1e-4}, torch=False),
        Config({"lr": 0.05, "convention": "keras", "eps": 1e-3}, torch=False),
        Config({"lr": 0.05, "convention": "keras", "amsgrad": True, "eps": 1e-3}, torch=False),
        Config({"lr": 0.05, "convention": "optax", "amsgrad": True, "betas": (0.9, 0.9)}, torch=False),
    ),
    errors=_ADAM_ERRORS,
)

ADAMW_CASE = OptimizerCase(
    name="adamw",
    torch_cls=torch.optim.AdamW,
    configs=(
        Config({"lr": 0.05}),
        Config({"lr": 0.05, "weight_decay": 0.3, "amsgrad": True}),
        Config({"lr": 0.05, "weight_decay": 0.0}),
        Config({"lr": 0.05, "betas": (0.5, 0.9), "maximize": True}),
        Config({"lr": 0.05, "weight_decay": 0.1, "convention": "keras"}, torch=False),
        Config({"lr": 0.05, "weight_decay": 0.1, "convention": "optax", "amsgrad": True}, torch=False),
    ),
    errors=_ADAM_ERRORS,
)

CASES: Mapping[str, OptimizerCase] = {
    c.name: c for c in (SGD_CASE, ADAGRAD_CASE, RMSPROP_CASE, ADAM_CASE, ADAMW_CASE)
}

# Constructor arguments that only descentlab has; torch.optim must not see them.
DESCENTLAB_ONLY = ("momentum_form", "debias", "convention", "eps_root")


def torch_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in DESCENTLAB_ONLY}


def all_configs(torch_only: bool = False) -> list[Any]:
    """(name, config) pairs as pytest params, with readable ids."""
    import pytest

    return [
        pytest.param(case.name, config, id=f"{case.name}[{config.id}]")
        for case in CASES.values()
        for config in case.configs
        if config.torch or not torch_only
    ]
