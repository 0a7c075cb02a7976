"""Typed settings of a training run: regimes, budgets, intervals, schedules, the run configuration.

Everything here is a frozen dataclass that validates itself on construction
(so a bad value is reported where it is typed, with its name) and that goes to
JSON and back losslessly through :mod:`descentlab._serde`, so that a
configuration can be stored with its record or sent to a worker process.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from .. import _serde

Unit = Literal["steps", "samples", "epochs", "seconds"]
UNITS: tuple[str, ...] = ("steps", "samples", "epochs", "seconds")
REGIMES: tuple[str, ...] = ("full-batch", "mini-batch", "online")
#: How a run uses the problem's test split: all of it as the held-out set, or split in two halves,
#: a validation half (for tuning) and a test half (for judging); see :class:`RunConfig`.
HELD_OUT: tuple[str, ...] = ("all", "split")


# Each check normalises what it accepts: a NumPy integer or float (a value read
# from an array, say) becomes a Python int or float, so that the record and the
# store's JSON never meet a type they cannot write. Python ints and floats are
# kept as they are (a run's key is the JSON of its configuration).


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars made Python numbers (and bools), in lists and tuples too."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


#: The largest seed: seeds are 64-bit signed integers in the store (SQLite) and in torch.
MAX_SEED = 2**63 - 1


def _positive_int(
    obj: object, name: str, *, allow_none: bool = False, minimum: int = 1, maximum: int | None = None
) -> None:
    value = getattr(obj, name)
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if maximum is not None:  # 2**63 - 1 written so
            power = (maximum + 1).bit_length() - 1
            top = f"2**{power} - 1" if maximum + 1 == 2**power else str(maximum)
            wanted = f"an integer from {minimum} to {top}"
        raise ValueError(f"{type(obj).__name__}: {name} must be {wanted}; received {name}={value!r}")
    object.__setattr__(obj, name, int(value))


def _positive_number(obj: object, name: str, *, allow_none: bool = False) -> None:
    value = getattr(obj, name)
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"{type(obj).__name__}: {name} must be a finite number > 0; received {name}={value!r}"
        )
    if type(value) not in (int, float):
        object.__setattr__(obj, name, int(value) if isinstance(value, numbers.Integral) else float(value))


def _flag(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, bool):
        raise ValueError(f"{type(obj).__name__}: {name} must be True or False; received {name}={value!r}")


# -- regimes ---------------------------------------------------------------------


@dataclass(frozen=True)
class FullBatch:
    """Full-batch gradient descent: each update uses the exact mean gradient over all the data.

    The gradient is accumulated over consecutive chunks of ``chunk_size``
    samples, each chunk's mean loss weighted by its share of the data, so memory
    is bounded by the chunk and the gradient is the mean over the data set
    whatever the chunk size (up to rounding). ``None`` takes all the data at
    once. The model must treat samples independently (no batch normalisation in
    training mode), or chunks would change the function.
    """

    chunk_size: int | None = None
    name: ClassVar[str] = "full-batch"

    def __post_init__(self) -> None:
        _positive_int(self, "chunk_size", allow_none=True)


@dataclass(frozen=True)
class MiniBatch:
    """Mini-batch descent: batches of ``batch_size`` samples from a new permutation every epoch.

    Each sample is used once per epoch. The permutation of epoch ``e`` comes
    from a generator seeded with the run's seed and ``e``, so a run is
    reproducible and resumable without storing permutations. With
    ``drop_last`` the final, smaller batch of an epoch is skipped.
    """

    batch_size: int = 32
    drop_last: bool = False
    shuffle: bool = True
    name: ClassVar[str] = "mini-batch"

    def __post_init__(self) -> None:
        _positive_int(self, "batch_size")
        _flag(self, "drop_last")
        _flag(self, "shuffle")


@dataclass(frozen=True)
class Online:
    """Online (stochastic) descent: one sample per update, from a data set or any stream.

    Each sample is first used to measure the loss of the current model and
    then to update it (test-then-train), so the mean of the per-update losses
    is the prequential loss that online-learning libraries report: a held-out
    estimate while every sample is new (a stream, or the first pass over a
    data set). A finite data set is passed through in a new seeded order each
    pass when ``shuffle`` is set.
    """

    shuffle: bool = True
    name: ClassVar[str] = "online"

    def __post_init__(self) -> None:
        _flag(self, "shuffle")


Regime = FullBatch | MiniBatch | Online


# -- budgets and intervals -------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """When a run stops: at the first of the limits given (at least one).

    ``steps`` counts updates; ``epochs`` passes over the data (a full-batch
    update is one pass); ``samples`` the samples the updates used, checked
    before each update, so a mini-batch run may pass the limit by less than
    one batch; ``seconds`` the time spent training (not evaluating or
    checkpointing), which makes where a run stops depend on the machine.

    >>> Budget(epochs=3).describe()
    '3 epochs'
    """

    steps: int | None = None
    epochs: int | None = None
    samples: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "epochs", "samples"):
            _positive_int(self, name, allow_none=True)
        _positive_number(self, "seconds", allow_none=True)
        if self.steps is None and self.epochs is None and self.samples is None and self.seconds is None:
            raise ValueError("Budget: give at least one of steps, epochs, samples or seconds")

    def describe(self) -> str:
        """The limits as words, e.g. ``'100 steps or 2 epochs'``."""
        parts = [
            f"{value:g} {name}"
            for name in ("steps", "epochs", "samples", "seconds")
            if (value := getattr(self, name)) is not None
        ]
        return " or ".join(parts)


@dataclass(frozen=True)
class Every:
    """An interval, such as every 100 steps or every epoch (for evaluation, observers, checkpoints).

    It fires after an update whenever the counter in ``unit`` crosses a
    multiple of ``n``. ``"seconds"`` counts training time, so what it records
    depends on the machine; the other units are deterministic.

    >>> Every.parse("2epochs")
    Every(n=2, unit='epochs')
    >>> Every.parse("100")
    Every(n=100, unit='steps')
    """

    n: int | float
    unit: Unit = "steps"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"Every: unit must be one of {', '.join(UNITS)}; received unit={self.unit!r}")
        if self.unit == "seconds":
            _positive_number(self, "n")
        else:
            _positive_int(self, "n")

    @classmethod
    def parse(cls, text: str) -> Every:
        """Read ``'100'`` (steps), ``'100steps'``, ``'5000samples'``, ``'1epochs'``, ``'30seconds'``."""
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-z]*)\s*", str(text))
        units = {"": "steps", **{u: u for u in UNITS}, **{u[:-1]: u for u in UNITS}}
        if not match or match.group(2) not in units:
            raise ValueError(
                f"an interval is a number and an optional unit ({', '.join(UNITS)}), "
                f"such as '100' or '2epochs'; received {text!r}"
            )
        unit = units[match.group(2)]
        number: float = float(match.group(1))
        if unit != "seconds":
            if not number.is_integer():
                raise ValueError(f"an interval in {unit} must be a whole number; received {text!r}")
            number = int(number)
        return cls(number, unit)  # type: ignore[arg-type]


# -- schedules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """A ``torch.optim.lr_scheduler`` class by name, its arguments, and when it steps.

    ``interval="step"`` steps the scheduler after every update (so ``T_max``
    and the like count updates), ``"epoch"`` after every pass over the data.
    ``ReduceLROnPlateau`` is stepped with the mean training loss of the
    updates since its previous step.

    >>> Schedule("CosineAnnealingLR", {"T_max": 100}).interval
    'step'
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    interval: Literal["step", "epoch"] = "step"

    def __post_init__(self) -> None:
        if self.interval not in ("step", "epoch"):
            raise ValueError(
                f"Schedule: interval must be 'step' or 'epoch'; received interval={self.interval!r}"
            )


# -- the run configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run of :func:`descentlab.train.run`: problem, method, budget, seed.

    Two runs with equal configurations produce equal records (wall times
    aside). ``hyperparameters`` are the optimizer's keyword arguments
    (``lr``, ``momentum``, ``betas``, ...); ``problem_options`` the problem's
    (see its class). ``observers`` names built-in observers (see
    :data:`descentlab.train.OBSERVERS`), such as ``"path"`` for the parameter
    trajectory on a 2-D surface. ``eval_every`` defaults to once per epoch (every
    1,000 samples for a stream). ``held_out="split"`` cuts the problem's test
    split in two halves: the second is the held-out set of the record, the
    first a validation set whose loss is recorded at the same evaluations as
    the observation ``"validation"``, so that one run serves both tuning
    (which reads the validation half) and judging (which reads the other);
    a test split of one sample (the noise-free 2-D surfaces) is used whole by both.

    >>> config = RunConfig("digits-mlp", "adam", {"lr": 1e-3}, budget=Budget(epochs=2))
    >>> RunConfig.from_json(config.to_json()) == config
    True
    """

    problem: str
    optimizer: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    regime: Literal["full-batch", "mini-batch", "online"] = "mini-batch"
    batch_size: int = 32
    chunk_size: int = 1024
    drop_last: bool = False
    budget: Budget = field(default_factory=lambda: Budget(epochs=1))
    seed: int = 0
    eval_every: Every | None = None
    schedule: Schedule | None = None
    problem_options: dict[str, Any] = field(default_factory=dict)
    observers: tuple[str, ...] = ()
    skip_nonfinite: bool = False
    held_out: Literal["all", "split"] = "all"

    def __post_init__(self) -> None:
        for name in ("problem", "optimizer"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(
                    f"RunConfig: {name} must be a name (a string); received {name}={getattr(self, name)!r}"
                )
        if self.regime not in REGIMES:
            raise ValueError(
                f"RunConfig: regime must be one of {', '.join(REGIMES)}; received regime={self.regime!r}"
            )
        _positive_int(self, "batch_size")
        _positive_int(self, "chunk_size")
        _flag(self, "drop_last")
        _flag(self, "skip_nonfinite")
        _positive_int(self, "seed", minimum=0, maximum=MAX_SEED)
        for name in ("hyperparameters", "problem_options"):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ValueError(f"RunConfig: {name} must be a dict with string keys; received {value!r}")
            object.__setattr__(self, name, {k: _plain(v) for k, v in value.items()})
        for name, value in self.hyperparameters.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(
                    f"RunConfig: hyperparameter {name} must be finite; received {name}={value!r}"
                )
        if not isinstance(self.budget, Budget):
            raise ValueError(f"RunConfig: budget must be a Budget; received {self.budget!r}")
        if self.held_out not in HELD_OUT:
            raise ValueError(
                f"RunConfig: held_out must be one of {', '.join(HELD_OUT)}; "
                f"received held_out={self.held_out!r}"
            )
        if not isinstance(self.observers, tuple):
            object.__setattr__(self, "observers", tuple(self.observers))

    def regime_settings(self) -> Regime:
        """The regime object this configuration describes."""
        if self.regime == "full-batch":
            return FullBatch(self.chunk_size)
        if self.regime == "mini-batch":
            return MiniBatch(self.batch_size, self.drop_last)
        return Online()

    def to_json(self, indent: int | None = None) -> str:
        """This configuration as JSON text (read back by :meth:`from_json`)."""
        return _serde.to_json(self, indent)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        """The configuration that :meth:`to_json` wrote."""
        return _serde.from_json(cls, text)
