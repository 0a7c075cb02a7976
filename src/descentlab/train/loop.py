"""The training loop: one function, three regimes, resumable bit for bit.

:func:`fit` trains a model the caller built with an optimizer the caller built
(descentlab's or torch.optim's), optionally under a ``torch.optim.lr_scheduler``
schedule, and returns a :class:`~descentlab.train.record.RunRecord`. The regime
decides what data each update sees (see :mod:`descentlab.train.config`).

Determinism and isolation: the data order comes from generators derived from
``seed``; anything the model draws from torch's global generator (dropout)
draws from a copy seeded from ``seed``, inside ``torch.random.fork_rng``, so
the caller's global generator is the same after the run as before it.

Checkpoints (``checkpoint=path``) hold the model, optimizer, scheduler,
generator state, data position and record so far, written atomically. A run
killed at any point and started again with ``resume=True`` continues from the
last checkpoint and produces the same trajectory, bit for bit, as a run that
was never interrupted (on the CPU; wall times differ).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import _random
from .checkpoint import append_columns, load_checkpoint, read_columns, save_checkpoint
from .config import Budget, Every, FullBatch, MiniBatch, Online, Regime
from .data import Batch, Loss, StreamReader, as_table, evaluate, model_loss, order
from .observers import Observer, Snapshot
from .record import RunRecord, Series

if TYPE_CHECKING:
    from .._progress import Phases


@dataclass
class _Position:
    """Where a run is; saved in checkpoints as plain numbers."""

    step: int = 0  # updates made
    epoch: int = 0  # passes over the data completed
    index: int = 0  # next position in this epoch's order
    samples: int = 0  # samples used by the updates
    seconds: float = 0.0  # training time
    consumed: int = 0  # samples read from a stream
    skipped_base: int = 0  # the optimizer's skipped_steps when the run started
    scheduler_from: int = 0  # first update since the scheduler last stepped
    # What the end of the run added off the intervals (a final evaluation, final
    # observations); removed again if a resumed run goes on, so that extending
    # a budget gives the record of a run that had the larger budget from the start.
    end_evaluations: int = 0
    end_observers: list[str] = field(default_factory=list)


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Any,
    *,
    loss: Loss,
    budget: Budget,
    regime: Regime | None = None,
    held_out: Any = None,
    accuracy: Callable[..., torch.Tensor] | None = None,
    scheduler: Any = None,
    scheduler_interval: str = "step",
    eval_every: Every | None = None,
    observers: Sequence[Observer] = (),
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: Every | None = None,
    resume: bool = False,
    run_id: str = "",
    progress: bool | Phases = False,
    eval_chunk_size: int = 1024,
) -> RunRecord:
    """Train ``model`` with ``optimizer`` on ``train`` in one of the three regimes; return the record.

    Args:
        model: any ``nn.Module``; it is called on the first tensor of a batch.
        optimizer: any ``torch.optim.Optimizer`` over the model's parameters
            (descentlab's or torch.optim's; one that needs a closure, such as
            LBFGS, gets one).
        train: a finite data set (a tuple of tensors sharing their first
            dimension, a ``TensorDataset``, a map-style dataset) or, for the
            online regime, any iterable of samples (see :mod:`.data`).
        loss: ``loss(output, *targets)``, the mean over the batch.
        budget: when to stop (:class:`~descentlab.train.config.Budget`).
        regime: :class:`FullBatch`, :class:`MiniBatch` (the default, batch 32)
            or :class:`Online`.
        held_out: a finite data set to evaluate on; evaluated on the initial
            model, every ``eval_every`` (default: every epoch, or every 1,000
            samples of a stream), and at the end.
        accuracy: ``accuracy(output, *targets)``, the fraction correct in the
            batch (for example :func:`descentlab.train.accuracy`), or None.
        scheduler: a ``torch.optim.lr_scheduler`` scheduler of ``optimizer``,
            stepped after every update (``scheduler_interval="step"``) or every
            epoch (``"epoch"``); ``ReduceLROnPlateau`` is given the mean
            training loss since its previous step.
        observers: :class:`~descentlab.train.observers.Observer` s to call.
        seed: seeds the data order and the model's own randomness (dropout).
        checkpoint: a file to checkpoint to, every ``checkpoint_every``
            (default: every epoch, or every 10,000 samples of a stream) and at
            the end.
        resume: continue from ``checkpoint`` if it exists (else start afresh).
            The model, optimizer and scheduler must be built as for the original
            run; their states are then loaded from the checkpoint.
        run_id: a string identifying the run; a checkpoint written under another
            run_id (or another regime, seed, data size, parameter shapes,
            optimizer or scheduler class) is refused.
        progress: show the run's progress on stderr: a bar on a terminal, one
            line when it ends elsewhere (True, or the command's
            :class:`~descentlab._progress.Phases`, as the phase ``training``).
        eval_chunk_size: samples per chunk when evaluating.

    Returns:
        The :class:`~descentlab.train.record.RunRecord`. A non-finite loss ends
        the run and is recorded (``diverged``); it is not an exception.
    """
    loop = _Loop(
        model=model,
        optimizer=optimizer,
        train=train,
        loss=loss,
        budget=budget,
        regime=regime if regime is not None else MiniBatch(),
        held_out=held_out,
        accuracy=accuracy,
        scheduler=scheduler,
        scheduler_interval=scheduler_interval,
        eval_every=eval_every,
        observers=tuple(observers),
        seed=seed,
        checkpoint=Path(checkpoint) if checkpoint is not None else None,
        checkpoint_every=checkpoint_every,
        run_id=run_id,
        progress=_phases(progress),
        eval_chunk_size=eval_chunk_size,
    )
    return loop.run(resume)


class _Loop:
    """The state of one :func:`fit` call (see there for the arguments)."""

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        train: Any,
        loss: Loss,
        budget: Budget,
        regime: Regime,
        held_out: Any,
        accuracy: Callable[..., torch.Tensor] | None,
        scheduler: Any,
        scheduler_interval: str,
        eval_every: Every | None,
        observers: tuple[Observer, ...],
        seed: int,
        checkpoint: Path | None,
        checkpoint_every: Every | None,
        run_id: str,
        progress: Phases | None,
        eval_chunk_size: int,
    ) -> None:
        if not isinstance(regime, FullBatch | MiniBatch | Online):
            raise TypeError(f"regime must be FullBatch, MiniBatch or Online; received {regime!r}")
        if not isinstance(budget, Budget):
            raise TypeError(f"budget must be a Budget; received {budget!r}")
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(
                "scheduler_interval must be 'step' or 'epoch'; "
                f"received scheduler_interval={scheduler_interval!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0; received seed={seed!r}")
        seed = int(seed)  # a NumPy integer too (RunConfig normalises the same way)
        names = [o.name for o in observers]
        if len(set(names)) != len(names):
            raise ValueError(f"observers must have distinct names; received {names}")
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.budget, self.regime, self.seed = budget, regime, seed
        self.accuracy, self.scheduler, self.scheduler_interval = accuracy, scheduler, scheduler_interval
        self.observers, self.run_id, self.progress = observers, run_id, progress
        self.checkpoint, self.eval_chunk_size = checkpoint, eval_chunk_size
        self.shown_at = -math.inf

        self.table = as_table(train)
        self.reader: StreamReader | None = None
        if self.table is None:
            if not isinstance(regime, Online):
                raise ValueError(
                    f"the {regime.name} regime needs a finite data set (a tuple of tensors or a "
                    f"map-style dataset); an iterable without a length can be used online only"
                )
            if budget.epochs is not None and (budget.steps, budget.samples, budget.seconds) == (None,) * 3:
                raise ValueError("a budget in epochs needs a finite data set; give steps, samples or seconds")
            self.reader = StreamReader(train)
        self.held_out = as_table(held_out) if held_out is not None else None
        if held_out is not None and self.held_out is None:
            raise ValueError("held_out must be a finite data set, not a stream")

        if isinstance(regime, MiniBatch):
            n, b = len(self.table), regime.batch_size  # type: ignore[arg-type]
            self.epoch_end = (n // b) * b if regime.drop_last else n
            if self.epoch_end == 0:
                raise ValueError(
                    f"batch_size={b} with drop_last leaves no batch: the data set has only {n} samples"
                )
        else:
            self.epoch_end = len(self.table) if self.table is not None else 0

        streaming = self.table is None
        default = Every(1000, "samples") if streaming else Every(1, "epochs")
        self.eval_every = eval_every or default
        self.checkpoint_every = checkpoint_every or (Every(10_000, "samples") if streaming else default)
        if streaming:
            # A stream has no epochs: an interval in epochs would silently never fire.
            intervals = {"eval_every": self.eval_every, "checkpoint_every": self.checkpoint_every}
            intervals.update({f"observer {o.name!r}": o.every for o in observers})
            for what, every in intervals.items():
                if every.unit == "epochs":
                    raise ValueError(f"{what} is in epochs, but a stream has no epochs; use steps or samples")
            if scheduler is not None and scheduler_interval == "epoch":
                raise ValueError(
                    "scheduler_interval is 'epoch', but a stream has no epochs (the schedule would never "
                    "step); use scheduler_interval='step'"
                )
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.cuda_devices = sorted(
            {p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"}
        )
        self.position = _Position()
        self.record = RunRecord(regime=regime.name)
        # What the checkpoint's columns file holds: each column's length, and the file's
        # length, as of the last checkpoint (the next one appends only what is new).
        self.saved_lengths: dict[tuple[str, ...], int] = {}
        # entries a resumed run took back (its end's evaluations and observations), by column: the
        # next checkpoint rewrites each column from there, even if it has grown back to its old length
        self.taken_back: dict[tuple[str, ...], int] = {}
        self.columns_bytes = 0
        self.order: torch.Tensor | None = None
        self.order_epoch = -1

    # -- the run ---------------------------------------------------------------------

    def run(self, resume: bool) -> RunRecord:
        with torch.random.fork_rng(devices=self.cuda_devices):
            if resume and self.checkpoint is not None and self.checkpoint.exists():
                self._restore(load_checkpoint(self.checkpoint))
            else:
                self._start()
            self.model.train()
            try:
                self._train()
            finally:
                if self.progress is not None:
                    self.progress.end()
        return self.record

    def _start(self) -> None:
        torch.random.default_generator.manual_seed(_random.derive(self.seed, "global"))
        for index in self.cuda_devices:
            generator = torch.cuda.default_generators[index]  # pragma: no cover - no GPU in CI
            generator.manual_seed(_random.derive(self.seed, "cuda", index))  # pragma: no cover
        self.position.skipped_base = int(getattr(self.optimizer, "skipped_steps", 0))
        if self.reader is not None:
            self.reader.restore(0, None)
        self._evaluate()
        self._observe(force=True)

    def _train(self) -> None:
        position = self.position
        while not self.record.diverged:
            reason = self._budget_reached()
            if reason is not None:
                self.record.stop_reason = reason
                break
            before = self._counters()
            outcome = self._update()
            if outcome is not None:
                self.record.stop_reason = outcome
                break
            after = self._counters()
            if self._fired(self.eval_every, before, after):
                self._evaluate()
            for observer in self.observers:
                if self._fired(observer.every, before, after):
                    self._observe_one(observer)
            self._show()
            if self.checkpoint is not None and self._fired(self.checkpoint_every, before, after):
                self._save()
        if self.record.diverged:
            self.record.stop_reason = "diverged"
        elif not self.record.held_out.step or self.record.held_out.step[-1] != position.step:
            position.end_evaluations = int(self._evaluate())
        position.end_observers = self._observe(force=False)
        self._finish_record()
        self._show(force=True)
        if self.checkpoint is not None:
            self._save()

    def _budget_reached(self) -> str | None:
        b, p = self.budget, self.position
        if b.steps is not None and p.step >= b.steps:
            return "steps"
        if b.epochs is not None and p.epoch >= b.epochs:
            return "epochs"
        if b.samples is not None and p.samples >= b.samples:
            return "samples"
        if b.seconds is not None and p.seconds >= b.seconds:
            return "seconds"
        return None

    def _budget_passed(self) -> str:
        """Where the position is already past the budget (a checkpoint of a longer run), else ''."""
        b, p = self.budget, self.position
        passed = [
            f"{done:g} {unit} made, against {limit:g}"
            for done, limit, unit in (
                (p.step, b.steps, "updates"),
                (p.epoch, b.epochs, "epochs"),
                (p.samples, b.samples, "samples"),
                (p.seconds, b.seconds, "seconds"),
            )
            if limit is not None and done > limit
        ]
        return "; ".join(passed)

    def _show(self, force: bool = False) -> None:
        # At most ten times a second: the loop's steps can be microseconds long.
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - self.shown_at < 0.1:
            return
        self.shown_at = now
        loss = self.record.final_train_loss
        detail = f"step {self.position.step}" + ("" if loss is None else f", loss {loss:.4g}")
        self.progress.update("training", min(self._fraction(), 1.0), 1.0, detail)

    def _fraction(self) -> float:
        b, p = self.budget, self.position
        parts = [
            p.step / b.steps if b.steps else 0.0,
            p.epoch / b.epochs if b.epochs else 0.0,
            p.samples / b.samples if b.samples else 0.0,
            p.seconds / b.seconds if b.seconds else 0.0,
        ]
        return max(parts)

    # -- one update ------------------------------------------------------------------

    def _update(self) -> str | None:
        """Make one update; return a stop reason ('diverged', 'exhausted') or None."""
        p = self.position
        lr = float(self.optimizer.param_groups[0]["lr"])
        start = time.perf_counter()
        if isinstance(self.regime, FullBatch):
            size = len(self.table)  # type: ignore[arg-type]

            def compute() -> float:
                return self._full_batch_gradient()
        else:
            batch = self._next_batch()
            if batch is None:
                return "exhausted"
            size = int(batch[0].shape[0])

            def compute() -> float:
                _, value = model_loss(self.model, self.loss, batch)
                value.backward()
                return value.detach().item()

        self.optimizer.zero_grad(set_to_none=True)
        value = compute()
        if not math.isfinite(value):
            p.seconds += time.perf_counter() - start
            self._diverge(value)
            return "diverged"
        self.optimizer.step(_closure(self.optimizer, value, compute))
        p.step += 1
        p.samples += size
        epoch_ended = False
        if isinstance(self.regime, FullBatch):
            p.epoch += 1
            epoch_ended = True
        elif self.table is not None:
            p.index += size
            if p.index >= self.epoch_end:
                p.epoch += 1
                p.index = 0
                epoch_ended = True
        self.record.train_loss.append(value)
        self.record.lr.append(lr)
        self._step_scheduler(epoch_ended)
        p.seconds += time.perf_counter() - start
        self.record.samples.append(p.samples)
        self.record.seconds.append(p.seconds)
        return None

    def _full_batch_gradient(self) -> float:
        """Accumulate the exact mean gradient over the data in chunks; return the mean loss."""
        table = self.table
        n = len(table)  # type: ignore[arg-type]
        chunk = self.regime.chunk_size or n  # type: ignore[union-attr]
        total = 0.0
        for start in range(0, n, chunk):
            batch = self._to_device(table.slice(start, min(start + chunk, n)))  # type: ignore[union-attr]
            share = batch[0].shape[0] / n
            _, value = model_loss(self.model, self.loss, batch)
            # d(sum of share * chunk mean) = the gradient of the mean over all n samples.
            (value * share).backward()
            total += value.detach().item() * share
        return total

    def _next_batch(self) -> Batch | None:
        p = self.position
        if self.reader is not None:
            batch = self.reader.next()
            if batch is None:
                return None
            p.consumed = self.reader.consumed
            return self._to_device(batch)
        if self.order_epoch != p.epoch:
            shuffle = self.regime.shuffle  # type: ignore[union-attr]
            self.order = order(len(self.table), self.seed, p.epoch, shuffle)  # type: ignore[arg-type]
            self.order_epoch = p.epoch
        size = self.regime.batch_size if isinstance(self.regime, MiniBatch) else 1
        indices = self.order[p.index : min(p.index + size, self.epoch_end)]  # type: ignore[index]
        return self._to_device(self.table.take(indices))  # type: ignore[union-attr]

    def _to_device(self, batch: Batch) -> Batch:
        if self.device.type == "cpu":
            return batch
        return tuple(t.to(self.device, non_blocking=True) for t in batch)  # pragma: no cover

    def _step_scheduler(self, epoch_ended: bool) -> None:
        if self.scheduler is None or (self.scheduler_interval == "epoch" and not epoch_ended):
            return
        p = self.position
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            recent = self.record.train_loss[p.scheduler_from :]
            self.scheduler.step(math.fsum(recent) / len(recent))
        else:
            self.scheduler.step()
        p.scheduler_from = len(self.record.train_loss)

    def _diverge(self, value: float) -> None:
        self.record.diverged = True
        self.record.diverged_at = self.position.step
        self.record.diverged_loss = value

    # -- evaluation, observers, intervals -----------------------------------------------

    def _counters(self) -> dict[str, float]:
        p = self.position
        return {"steps": p.step, "samples": p.samples, "epochs": p.epoch, "seconds": p.seconds}

    @staticmethod
    def _fired(every: Every, before: dict[str, float], after: dict[str, float]) -> bool:
        return math.floor(after[every.unit] / every.n) > math.floor(before[every.unit] / every.n)

    def _evaluate(self) -> bool:
        """Evaluate on the held-out data (if any); return whether an evaluation was recorded."""
        if self.held_out is None:
            return False
        loss, accuracy = evaluate(self.model, self.held_out, self.loss, self.accuracy, self.eval_chunk_size)
        p, held = self.position, self.record.held_out
        held.step.append(p.step)
        held.samples.append(p.samples)
        held.seconds.append(p.seconds)
        held.loss.append(loss)
        held.accuracy.append(accuracy)
        if not math.isfinite(loss) and not self.record.diverged:
            self._diverge(loss)
        return True

    def _observe(self, force: bool) -> list[str]:
        """Call every observer that has not yet seen this step (all when ``force``); return their names."""
        called = []
        for observer in self.observers:
            series = self.record.observations.get(observer.name)
            if force or series is None or not series.step or series.step[-1] != self.position.step:
                self._observe_one(observer)
                called.append(observer.name)
        return called

    def _observe_one(self, observer: Observer) -> None:
        p = self.position
        snapshot = Snapshot(
            self.model, self.optimizer, p.step, p.epoch, p.samples, self.record.final_train_loss
        )
        with torch.no_grad():
            value = observer.observe(snapshot)
        series = self.record.observations.setdefault(observer.name, Series())
        series.step.append(p.step)
        series.samples.append(p.samples)
        series.value.append(value)

    def _finish_record(self) -> None:
        p, record = self.position, self.record
        record.updates = p.step
        record.samples_seen = p.samples
        record.epochs = p.epoch
        record.training_seconds = p.seconds
        record.skipped_steps = int(getattr(self.optimizer, "skipped_steps", 0)) - p.skipped_base

    # -- checkpoints -------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "regime": repr(self.regime),
            "seed": self.seed,
            "data": len(self.table) if self.table is not None else "stream",
            "parameters": [list(p.shape) for p in self.model.parameters()],
            "optimizer": type(self.optimizer).__name__,
            "scheduler": type(self.scheduler).__name__ if self.scheduler is not None else None,
            "scheduler_interval": self.scheduler_interval,
        }

    def _save(self) -> None:
        self._finish_record()
        rng = {"cpu": torch.random.get_rng_state()}
        for index in self.cuda_devices:
            rng[f"cuda:{index}"] = torch.cuda.get_rng_state(index)  # pragma: no cover
        columns = self.record.columns()
        chunk = []
        for key, column in columns.items():
            saved = self.saved_lengths.get(key, 0)
            # below saved: a resumed run took back the end's entries (and may have added others since)
            start = min(saved, len(column), self.taken_back.get(key, saved))
            if start != saved or len(column) > start:
                chunk.append([list(key), start, column[start:]])
        if chunk:
            self.columns_bytes = append_columns(self.checkpoint, self.columns_bytes, chunk)  # type: ignore[arg-type]
        self.saved_lengths = {key: len(column) for key, column in columns.items()}
        self.taken_back = {}
        payload = {
            "identity": json.dumps(self._identity(), sort_keys=True),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": rng,
            "position": asdict(self.position),
            "stream": self.reader.state() if self.reader is not None else None,
            "record": self.record.without_columns().to_json(),
            "columns": {
                "bytes": self.columns_bytes,
                "lengths": [[list(key), n] for key, n in self.saved_lengths.items()],
            },
        }
        save_checkpoint(self.checkpoint, payload)  # type: ignore[arg-type]

    def _restore(self, payload: dict[str, Any]) -> None:
        saved = json.loads(payload["identity"])
        mine = self._identity()
        differing = [k for k in mine if saved.get(k) != mine[k]]
        if differing:
            found: dict[str, str] = {}
            for k in differing:
                found.update(_differences("" if k == "run_id" else k, saved.get(k), mine[k]))
            details = "; ".join(found.values())
            raise ValueError(f"cannot resume from {str(self.checkpoint)!r}: it is another run's ({details})")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        torch.random.set_rng_state(payload["rng"]["cpu"])
        for index in self.cuda_devices:
            torch.cuda.set_rng_state(payload["rng"][f"cuda:{index}"], index)  # pragma: no cover
        self.position = _Position(**payload["position"])
        past = self._budget_passed()
        if past:
            raise ValueError(
                f"cannot resume from {str(self.checkpoint)!r}: the run it holds went past this run's "
                f"budget ({past}); give a budget at least that large, or start afresh without --resume"
            )
        self.record = RunRecord.from_json(payload["record"])
        if "columns" in payload:  # version 2: the columns are in the columns file
            stored = payload["columns"]
            columns = read_columns(self.checkpoint, stored["bytes"])  # type: ignore[arg-type]
            lengths = {tuple(key): n for key, n in stored["lengths"]}
            for key, n in lengths.items():
                columns[key] = columns.get(key, [])
                if len(columns[key]) != n:
                    raise ValueError(
                        f"cannot resume from {str(self.checkpoint)!r}: its columns file holds "
                        f"{len(columns[key])} entries of {'.'.join(key)}; the checkpoint expects {n}"
                    )
            self.record.set_columns(columns)
            self.saved_lengths, self.columns_bytes = lengths, stored["bytes"]
        # The run may go on (a larger budget): what its end added and its outcome are decided anew.
        self.record.stop_reason = ""
        held = self.record.held_out
        for _ in range(self.position.end_evaluations):
            for column in (held.step, held.samples, held.seconds, held.loss, held.accuracy):
                column.pop()
        for name in self.position.end_observers:
            series = self.record.observations[name]
            for column in (series.step, series.samples, series.value):
                column.pop()
        self.position.end_evaluations, self.position.end_observers = 0, []
        now = self.record.columns()
        self.taken_back = {
            key: len(now[key]) for key, n in self.saved_lengths.items() if key in now and len(now[key]) < n
        }
        if self.reader is not None:
            self.reader.restore(self.position.consumed, payload["stream"])


def _differences(key: str, saved: Any, mine: Any) -> dict[str, str]:
    """What differs between a checkpoint's identity entry and this run's, down to the fields of a run
    identity (a RunConfig's JSON), so that a changed learning rate reads as one."""

    def fields(value: Any, prefix: str) -> dict[str, Any]:
        if isinstance(value, str) and value.startswith("{"):
            try:
                value = json.loads(value)
            except ValueError:
                return {prefix: value}
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                out.update(fields(v, f"{prefix}.{k}" if prefix else k))
            return out
        return {prefix: value}

    a, b = fields(saved, key), fields(mine, key)
    changed = [k for k in {**a, **b} if a.get(k) != b.get(k)]

    def shown(found: dict[str, Any], k: str) -> str:
        return repr(found[k]) if k in found else "not set"

    return {k: f"{k}: checkpoint {shown(a, k)}, this run {shown(b, k)}" for k in changed}


def _closure(
    optimizer: torch.optim.Optimizer, value: float, compute: Callable[[], float]
) -> Callable[[], Any]:
    """A closure for ``optimizer.step``: the loss already computed, then fresh evaluations.

    First-order optimizers call it once and get the gradient already in
    ``.grad`` at no extra cost; LBFGS and others that re-evaluate get a
    recomputed loss and gradient at the current parameters each later call.
    """
    calls = 0

    def closure() -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return torch.tensor(value)
        optimizer.zero_grad(set_to_none=True)
        return torch.tensor(compute())

    return closure


def _phases(progress: bool | Phases) -> Phases | None:
    """fit's ``progress`` argument as the display to report to (None: none)."""
    if not progress:  # nothing imported: rich takes time to import
        return None
    from .._progress import Phases

    return progress if isinstance(progress, Phases) else Phases()
