"""What a run leaves behind: its curves, held-out evaluations, observations and outcome.

A :class:`RunRecord` is plain data (lists of numbers), written to JSON and
read back losslessly, so the lab can store it, plot it, and compare regimes on
any axis: updates, samples seen, or training time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from .. import _serde
from .config import RunConfig

#: Bumped when a field changes meaning; readers can refuse records they do not understand.
RECORD_VERSION = 1


@dataclass
class HeldOut:
    """Evaluations on held-out data: one entry per evaluation, in the columns below.

    ``step`` is the number of updates made before the evaluation (0: the
    initial model), ``samples`` the samples those updates used, ``seconds`` the
    training time so far. ``accuracy`` is None for problems without one.
    """

    step: list[int] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float | None] = field(default_factory=list)


@dataclass
class Series:
    """What an observer returned (a vector of floats each time) and when it was asked."""

    step: list[int] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    value: list[list[float]] = field(default_factory=list)


@dataclass
class RunRecord:
    """The record of one training run (see the module docstring).

    Per-update curves (one entry per update, in order): ``train_loss`` is the
    loss on the data that update used, measured before the update (in the
    online regime this is the prequential loss of that sample; in the
    full-batch regime the exact training loss); ``lr`` the learning rate of the
    first parameter group during the update; ``samples`` the samples used by
    all updates so far; ``seconds`` the training time so far (forward,
    backward and step; evaluation, observers and checkpoints excluded).

    Outcome: ``updates`` counts optimizer steps, including those an opt-in
    ``skip_nonfinite`` guard skipped (``skipped_steps``). ``diverged`` is set
    when a training or held-out loss was not finite; ``diverged_at`` is the
    number of updates made when that was seen and ``diverged_loss`` the value
    (NaN or infinity); a diverged run stops there and returns normally.
    ``stop_reason`` is ``'steps'``, ``'epochs'``, ``'samples'``, ``'seconds'``
    (the budget), ``'diverged'`` or ``'exhausted'`` (a finite stream ended).
    """

    regime: str
    config: RunConfig | None = None
    target_loss: float | None = None
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    held_out: HeldOut = field(default_factory=HeldOut)
    observations: dict[str, Series] = field(default_factory=dict)
    updates: int = 0
    samples_seen: int = 0
    epochs: int = 0
    training_seconds: float = 0.0
    skipped_steps: int = 0
    diverged: bool = False
    diverged_at: int | None = None
    diverged_loss: float | None = None
    stop_reason: str = ""
    version: int = RECORD_VERSION

    # -- derived values -----------------------------------------------------------

    @property
    def final_train_loss(self) -> float | None:
        """The training loss of the last update (None before any)."""
        return self.train_loss[-1] if self.train_loss else None

    @property
    def final_held_out_loss(self) -> float | None:
        """The last held-out loss (None without evaluations)."""
        return self.held_out.loss[-1] if self.held_out.loss else None

    @property
    def final_accuracy(self) -> float | None:
        """The last held-out accuracy (None without evaluations or accuracy)."""
        return self.held_out.accuracy[-1] if self.held_out.accuracy else None

    @property
    def best_held_out_loss(self) -> float | None:
        """The lowest finite held-out loss (None if there is none)."""
        finite = [x for x in self.held_out.loss if math.isfinite(x)]
        return min(finite) if finite else None

    @property
    def prequential_loss(self) -> float | None:
        """The mean of the per-update losses of an online run (test-then-train); None otherwise."""
        if self.regime != "online" or not self.train_loss:
            return None
        return math.fsum(self.train_loss) / len(self.train_loss)

    def prequential_curve(self) -> list[float]:
        """The running prequential loss of an online run: the mean of the first k losses, for each k.

        Empty for the other regimes, whose per-update losses are not test-then-train.
        """
        if self.regime != "online":
            return []
        total, curve = 0.0, []
        for k, loss in enumerate(self.train_loss, start=1):
            total += loss
            curve.append(total / k)
        return curve

    @property
    def reached_target(self) -> bool | None:
        """Whether the final held-out loss is at or below ``target_loss`` (None if either is unknown)."""
        final = self.final_held_out_loss
        if self.target_loss is None or final is None:
            return None
        return (not self.diverged) and final <= self.target_loss

    # -- serialisation -------------------------------------------------------------

    def to_json(self, indent: int | None = None) -> str:
        """This record as strict JSON text; non-finite floats are written as ``"nan"``/``"inf"``."""
        return _serde.to_json(self, indent)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """The record that :meth:`to_json` wrote (equal to it, float for float)."""
        record = _serde.from_json(cls, text)
        if record.version != RECORD_VERSION:
            raise ValueError(
                f"run record version {record.version} is not readable by this descentlab "
                f"(which writes version {RECORD_VERSION})"
            )
        return record

    # -- columns: what grows with the run --------------------------------------------

    def columns(self) -> dict[tuple[str, ...], list[Any]]:
        """Every list that grows as the run goes on, by its path (the lists themselves, not copies).

        Checkpoints store these apart from the rest, appending what is new, so that a
        checkpoint's cost does not grow with the length of the run.
        """
        out: dict[tuple[str, ...], list[Any]] = {
            (name,): getattr(self, name) for name in ("train_loss", "lr", "samples", "seconds")
        }
        for name in ("step", "samples", "seconds", "loss", "accuracy"):
            out[("held_out", name)] = getattr(self.held_out, name)
        for observer, series in self.observations.items():
            for name in ("step", "samples", "value"):
                out[("observations", observer, name)] = getattr(series, name)
        return out

    def without_columns(self) -> RunRecord:
        """A copy with every column empty (the observers' names kept): the small, fixed-size rest."""
        return replace(
            self, train_loss=[], lr=[], samples=[], seconds=[], held_out=HeldOut(),
            observations={name: Series() for name in self.observations},
        )  # fmt: skip

    def set_columns(self, columns: dict[tuple[str, ...], list[Any]]) -> None:
        """Put ``columns`` (as :meth:`columns` gives them) into this record."""
        for key, values in columns.items():
            if key[0] == "held_out":
                setattr(self.held_out, key[1], values)
            elif key[0] == "observations":
                setattr(self.observations.setdefault(key[1], Series()), key[2], values)
            else:
                setattr(self, key[0], values)

    # -- the summary the command line prints ----------------------------------------

    def summary(self) -> str:
        """A short, human-readable account of the run (what ``descentlab run`` prints)."""
        lines = []
        config = self.config
        if config is not None:
            target = f" (target held-out loss {self.target_loss:g})" if self.target_loss is not None else ""
            lines.append(f"problem     {config.problem}{target}")
            hyper = ", ".join(f"{k}={v}" for k, v in config.hyperparameters.items())
            lines.append(f"optimizer   {config.optimizer}" + (f" ({hyper})" if hyper else ""))
            regime = config.regime
            if regime == "mini-batch":
                regime += f", batch size {config.batch_size}" + (", drop last" if config.drop_last else "")
            elif regime == "full-batch":
                regime += f", chunks of {config.chunk_size}"
            lines.append(f"regime      {regime}, seed {config.seed}")
            lines.append(f"budget      {config.budget.describe()}")
        else:
            lines.append(f"regime      {self.regime}")
        lines.append(
            f"ran         {self.updates} updates, {self.samples_seen} samples, {self.epochs} epochs, "
            f"{self.training_seconds:.2f} s training; stopped by {self.stop_reason or '?'}"
        )
        if self.train_loss:
            lines.append(
                f"train loss  {self.train_loss[0]:.6g} (first update) -> {self.train_loss[-1]:.6g} (last)"
            )
        if self.prequential_loss is not None:
            lines.append(
                f"prequential {self.prequential_loss:.6g} (mean loss of each sample before learning it)"
            )
        if self.held_out.loss:
            text = f"held out    loss {self.held_out.loss[0]:.6g} -> {self.held_out.loss[-1]:.6g}"
            if self.final_accuracy is not None:
                text += f", accuracy {100 * self.final_accuracy:.2f}%"
            if self.reached_target is not None:
                text += f"; target {'reached' if self.reached_target else 'not reached'}"
            lines.append(text)
        if self.diverged:
            lines.append(f"diverged    yes: loss {self.diverged_loss} after {self.diverged_at} updates")
        else:
            lines.append("diverged    no")
        if self.skipped_steps:
            lines.append(f"skipped     {self.skipped_steps} steps with non-finite gradients")
        return "\n".join(lines)
