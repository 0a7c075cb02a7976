r"""The methods the lab compares, the roles they fill in the claims, and the user's own methods.

A method is what the usual claims talk about ("gradient descent on the full
batch", "SGD with momentum", "Adam"): an optimizer, the regime it runs in,
and its hyperparameters other than the learning rate, which the lab tunes.
The optimizer is a name of :data:`descentlab.optim.OPTIMIZERS`, a mistaken
rule of :data:`~descentlab.lab.mistakes.MISTAKES` (``mistake:NAME``, for the
formula check), or any ``torch.optim.Optimizer`` subclass given as
``module:Class``: a researcher's own method runs by the same protocol.

Claims do not name methods, they name **roles** ("plain descent",
"momentum", "adam", ...). Every built-in method fills the roles its name
says; a user's method fills the roles it is given, beside the built-in one,
and gets its own cases in every claim that reads the role.

One method is not tuned: ``momentum-matched`` runs heavy-ball momentum at
plain SGD's tuned learning rate times :math:`1 - \beta`, so that its
effective step :math:`\gamma / (1 - \beta)` is SGD's and a comparison measures
the momentum, not a larger step.

>>> METHODS["momentum-matched"].matched_to, round(METHODS["momentum-matched"].lr_factor, 6)
('sgd', 0.1)
>>> user_method("mine", "torch.optim:SGD", {"momentum": 0.5}, roles=("momentum",)).roles
('momentum',)
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from ..optim import OPTIMIZERS
from ..train import RunConfig, RunRecord, run
from ..train.run import build_optimizer
from .mistakes import MISTAKES

MOMENTUM = 0.9
REGIMES = ("full-batch", "mini-batch", "online")

#: The roles claims read, with what a method in the role stands for.
ROLES: Mapping[str, str] = MappingProxyType(
    {
        "full-batch": "gradient descent on the full batch (the exact gradient)",
        "mini-batch": "plain stochastic gradient descent on mini-batches",
        "online": "plain stochastic gradient descent, one sample per update",
        "plain": "plain descent (no momentum, no per-coordinate scaling)",
        "momentum": "descent with momentum",
        "momentum-matched": "momentum at plain descent's effective step lr/(1 - beta)",
        "adagrad": "AdaGrad: per-coordinate steps from the sum of squared gradients",
        "rmsprop": "RMSProp: per-coordinate steps from a moving average of squared gradients",
        "adam": "Adam: momentum and RMSProp-style scaling, bias-corrected",
        "adamw": "AdamW: Adam with weight decay decoupled from the gradient's scaling",
        "unnormalised": "Adam's averaging without its per-coordinate scaling (EMA momentum)",
    }
)


@dataclass(frozen=True)
class Method:
    """One named way of descending: optimizer, regime, fixed hyperparameters, roles, how its lr is chosen.

    ``matched_to``: the lr is not tuned but derived, ``lr_factor`` times the
    tuned lr of that method on the same problem.
    """

    name: str
    optimizer: str
    regime: str = "mini-batch"
    summary: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    roles: tuple[str, ...] = ()
    matched_to: str | None = None
    lr_factor: float = 1.0
    user: bool = False

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(
                f"method {self.name}: regime must be one of {', '.join(REGIMES)}; received {self.regime!r}"
            )
        for role in self.roles:
            if role not in ROLES:
                from .._registry import lookup

                lookup(f"role of method {self.name}", role, ROLES)

    @property
    def tuned(self) -> bool:
        """Whether the lab tunes this method's learning rate on the grid."""
        return self.matched_to is None

    def build(self, params: Iterable[Any], lr: float = 1e-3) -> torch.optim.Optimizer:
        """The optimizer of this method over ``params`` (tensors or parameter groups) at ``lr``."""
        return factory(self.optimizer)(params, {"lr": lr, **self.hyperparameters})


def factory(optimizer: str) -> Callable[[Iterable[Any], Mapping[str, Any]], torch.optim.Optimizer]:
    """How to build ``optimizer`` (a registry name, ``mistake:NAME`` or ``module:Class``) from arguments."""
    if optimizer.startswith("mistake:"):
        mistake = MISTAKES[optimizer.split(":", 1)[1]]
        return mistake.build
    if ":" in optimizer:
        cls = load_class(optimizer)
        return lambda params, kwargs: cls(list(params), **_tuples(kwargs))
    return functools.partial(_registry_build, optimizer)


def _registry_build(name: str, params: Iterable[Any], kwargs: Mapping[str, Any]) -> torch.optim.Optimizer:
    return build_optimizer(name, params, kwargs)


def _tuples(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def load_class(spec: str) -> type[torch.optim.Optimizer]:
    """The ``torch.optim.Optimizer`` subclass named ``module:Class`` (a ValueError naming what is wrong)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"an optimizer class is given as module:Class; received {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r} of optimizer {spec!r}: {err}") from None
    cls = getattr(module, attribute, None)
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"{spec!r} is not a torch.optim.Optimizer subclass")
    return cls


def user_method(
    name: str,
    optimizer: str,
    hyperparameters: Mapping[str, Any] | None = None,
    *,
    roles: tuple[str, ...] = (),
    regime: str = "mini-batch",
) -> Method:
    """A method the user defines: ``optimizer`` a registry name or ``module:Class``, fixed hyperparameters.

    Checked now: the class is importable, accepts the hyperparameters (and
    ``lr``), and builds on a tensor; the roles exist.
    """
    hyper = dict(hyperparameters or {})
    if "lr" in hyper:
        raise ValueError(f"method {name}: lr is tuned by the lab; remove it from the hyperparameters")
    if name in METHODS:
        raise ValueError(f"method {name}: the name of a built-in method; choose another")
    if ":" not in optimizer and optimizer not in OPTIMIZERS:
        from .._registry import lookup

        lookup("optimizer", optimizer, OPTIMIZERS)
    method = Method(name, optimizer, regime, f"the user's method {optimizer}", hyper, tuple(roles), user=True)
    try:
        method.build([torch.zeros(2, requires_grad=True)], lr=1e-3)
    except (TypeError, ValueError) as err:
        raise ValueError(f"method {name}: {optimizer} does not build with {hyper}: {err}") from None
    return method


def run_method(config: RunConfig) -> RunRecord:
    """Train as ``config`` says with whatever ``config.optimizer`` names (see :func:`factory`)."""
    if ":" not in config.optimizer:
        return run(config)
    return run(config, optimizer_factory=factory(config.optimizer))


def _m(name: str, optimizer: str, regime: str, summary: str, roles: tuple[str, ...], **kw: Any) -> Method:
    return Method(name, optimizer, regime, summary, roles=roles, **kw)


#: The built-in methods, by name.
METHODS: Mapping[str, Method] = MappingProxyType(
    {
        m.name: m
        for m in (
            _m(
                "gd",
                "sgd",
                "full-batch",
                "gradient descent on the full batch (exact gradient)",
                ("full-batch",),
            ),
            _m(
                "sgd",
                "sgd",
                "mini-batch",
                "stochastic gradient descent on mini-batches",
                ("mini-batch", "plain"),
            ),
            _m(
                "online-sgd",
                "sgd",
                "online",
                "stochastic gradient descent, one sample per update",
                ("online",),
            ),
            _m(
                "momentum",
                "sgd",
                "mini-batch",
                f"SGD with heavy-ball momentum {MOMENTUM}, its own tuned lr",
                ("momentum",),
                hyperparameters={"momentum": MOMENTUM},
            ),
            _m(
                "momentum-matched",
                "sgd",
                "mini-batch",
                f"heavy-ball momentum {MOMENTUM} at SGD's tuned lr x (1 - {MOMENTUM}): SGD's effective step",
                ("momentum-matched",),
                hyperparameters={"momentum": MOMENTUM},
                matched_to="sgd",
                lr_factor=1 - MOMENTUM,
            ),
            _m("adagrad", "adagrad", "mini-batch", "AdaGrad (torch defaults)", ("adagrad",)),
            _m("rmsprop", "rmsprop", "mini-batch", "RMSProp (torch defaults)", ("rmsprop",)),
            _m("adam", "adam", "mini-batch", "Adam (torch defaults)", ("adam",)),
            _m("adamw", "adamw", "mini-batch", "AdamW (torch defaults: weight decay 0.01)", ("adamw",)),
            _m(
                "ema-momentum",
                "sgd",
                "mini-batch",
                "EMA momentum 0.9, debiased: Adam without its per-coordinate scaling",
                ("unnormalised",),
                hyperparameters={"momentum": MOMENTUM, "momentum_form": "ema", "debias": True},
            ),
        )
    }
)


def mistake_method(name: str) -> Method:
    """The formula check's method for mistaken rule ``name``: it runs in its correct method's regime."""
    mistake = MISTAKES[name]
    correct = METHODS[mistake.correct]
    return Method(name, f"mistake:{name}", correct.regime, mistake.summary)


def describe(method: Method) -> str:
    """One line: the method's name, optimizer and fixed hyperparameters."""
    extra = ", ".join(f"{k}={v}" for k, v in method.hyperparameters.items())
    return f"{method.name}: {method.optimizer}" + (f" ({extra})" if extra else "")


def parse_method(text: str) -> Method:
    """A user's method from the command line: ``NAME=OPTIMIZER;role=ROLE[,ROLE][;KEY=VALUE]...``.

    Values are read as JSON when they parse (numbers, lists, booleans), else
    as strings.

    >>> m = parse_method("heavy=torch.optim:SGD;role=momentum;momentum=0.8")
    >>> m.name, m.optimizer, m.roles, m.hyperparameters
    ('heavy', 'torch.optim:SGD', ('momentum',), {'momentum': 0.8})
    """
    import json

    name, sep, rest = text.partition("=")
    parts = rest.split(";")
    if not sep or not name.strip() or not parts[0].strip():
        raise ValueError(
            f"a method is NAME=OPTIMIZER;role=ROLE[;KEY=VALUE]..., e.g. 'mine=mypkg.optim:Mine;role=adam'; "
            f"received {text!r}"
        )
    roles: tuple[str, ...] = ()
    hyper: dict[str, Any] = {}
    regime = "mini-batch"
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"method {name.strip()}: expected KEY=VALUE; received {part!r} in {text!r}")
        if key == "role":
            roles = tuple(r.strip() for r in value.split(",") if r.strip())
        elif key == "regime":
            regime = value.strip()
        else:
            try:
                hyper[key] = json.loads(value)
            except ValueError:
                hyper[key] = value.strip()
    return checked_user_method(name.strip(), parts[0].strip(), hyper, roles, regime)


def load_methods(path: str) -> list[Method]:
    """The user's methods from a TOML file, a table each (``optimizer``, ``roles``, ``hyperparameters``).

    ``regime`` is optional (default mini-batch).
    """
    import sys
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no such methods file: {path!r}") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None
    out = []
    for name, table in data.items():
        if not isinstance(table, dict) or "optimizer" not in table:
            raise ValueError(f"{path}: method {name!r} needs a table with at least 'optimizer' and 'roles'")
        unknown = set(table) - {"optimizer", "roles", "hyperparameters", "regime"}
        if unknown:
            raise ValueError(f"{path}: method {name!r} has unknown keys {sorted(unknown)}")
        out.append(
            checked_user_method(
                name,
                str(table["optimizer"]),
                dict(table.get("hyperparameters", {})),
                tuple(table.get("roles", ())),
                str(table.get("regime", "mini-batch")),
            )
        )
    return out


def checked_user_method(
    name: str, optimizer: str, hyper: dict[str, Any], roles: tuple[str, ...], regime: str
) -> Method:
    """:func:`user_method`, refusing a method that fills no role (no claim would read it)."""
    if not roles:
        raise ValueError(
            f"method {name}: give the roles it fills (role=...), one or more of: {', '.join(ROLES)}"
        )
    return user_method(name, optimizer, hyper, roles=roles, regime=regime)
