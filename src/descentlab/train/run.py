"""One run from a configuration: the function the command line and the lab's workers call.

``run(config)`` builds the problem, the model (from the seed), the optimizer
(from :data:`descentlab.optim.OPTIMIZERS`) and the schedule, trains with
:func:`~descentlab.train.loop.fit`, and returns the record with the
configuration and the problem's target loss in it. It takes and returns plain
picklable data, so a process pool or a Ray worker can call it.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .. import _serde
from .._registry import lookup
from ..optim import get_optimizer
from ..problems import make_problem
from .config import Budget, Every, RunConfig, Schedule
from .data import accuracy, evaluate
from .loop import fit
from .observers import Observer, get_observer
from .record import RunRecord

if TYPE_CHECKING:
    from .._progress import Phases

# Schedulers that can be built from a name and numbers; LambdaLR and the like
# need functions or other schedulers, which a configuration cannot hold.
_BY_NAME_EXCLUDED = {"LRScheduler", "LambdaLR", "MultiplicativeLR", "SequentialLR", "ChainedScheduler"}
SCHEDULERS: Mapping[str, type] = {
    name: cls
    for name, cls in vars(torch.optim.lr_scheduler).items()
    if inspect.isclass(cls)
    and not name.startswith("_")
    and name not in _BY_NAME_EXCLUDED
    and (
        issubclass(cls, torch.optim.lr_scheduler.LRScheduler)
        or cls is torch.optim.lr_scheduler.ReduceLROnPlateau
    )
}


def build_optimizer(
    name: str,
    params: Iterable[torch.Tensor],
    hyperparameters: Mapping[str, Any],
    skip_nonfinite: bool = False,
) -> torch.optim.Optimizer:
    """Optimizer ``name`` from the registry with ``hyperparameters``.

    Unknown hyperparameter names are refused with the closest valid names;
    every invalid value raises ValueError (the optimizer's own message).
    JSON lists (``betas``) become tuples, and a dtype given by name
    (``"state_dtype": "bfloat16"``, since JSON cannot hold a ``torch.dtype``)
    becomes that dtype.
    """
    cls = get_optimizer(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]
    accepted = [p for p in accepted if p != "skip_nonfinite"]
    for key in hyperparameters:
        if key == "skip_nonfinite":
            raise ValueError(
                "skip_nonfinite is a setting of the run (RunConfig.skip_nonfinite, --skip-nonfinite), "
                "not a hyperparameter"
            )
        if key not in accepted:
            lookup(f"hyperparameter of {name}", key, dict.fromkeys(accepted))
    kwargs = {k: _value(k, v) for k, v in hyperparameters.items()}
    try:
        return cls(list(params), **kwargs, skip_nonfinite=skip_nonfinite)
    except TypeError as err:  # a wrong type is bad input as much as a wrong value
        raise ValueError(str(err)) from None


def _value(key: str, value: Any) -> Any:
    """A configuration's hyperparameter value as the optimizer takes it (see :func:`build_optimizer`)."""
    if isinstance(value, list):
        return tuple(value)
    if key.endswith("dtype") and isinstance(value, str):
        dtype = getattr(torch, value, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"{key} must name a torch dtype (e.g. 'bfloat16'); received {key}={value!r}")
        return dtype
    return value


def build_scheduler(schedule: Schedule | None, optimizer: torch.optim.Optimizer) -> Any:
    """The ``torch.optim.lr_scheduler`` scheduler ``schedule`` describes (None for None)."""
    if schedule is None:
        return None
    cls = lookup("scheduler", schedule.name, SCHEDULERS)
    try:
        return cls(optimizer, **schedule.options)
    except TypeError as err:
        raise ValueError(f"scheduler {schedule.name}: {err}") from None


def default_config(
    problem: str,
    *,
    optimizer: str | None = None,
    lr: float | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    regime: str | None = None,
    batch_size: int | None = None,
    budget: Budget | None = None,
    problem_options: Mapping[str, Any] | None = None,
    **fields: Any,
) -> RunConfig:
    """A configuration for ``problem`` that fills what is not given from the problem's default setting.

    Without ``optimizer``, the problem's documented optimizer with its
    hyperparameters; with one, that optimizer's own defaults. ``lr`` and
    ``hyperparameters`` then override; so do ``regime``, ``batch_size`` and
    ``budget``. Other :class:`RunConfig` fields pass through.

    >>> default_config("rosenbrock").hyperparameters
    {'lr': 0.002, 'momentum': 0.9}
    >>> default_config("rosenbrock", optimizer="adam", lr=0.01).hyperparameters
    {'lr': 0.01}
    """
    options = dict(problem_options or {})
    setting = make_problem(problem, **options).default
    if optimizer is None or optimizer == setting.optimizer:
        hyper = dict(setting.hyperparameters)
        optimizer = setting.optimizer
    else:
        get_optimizer(optimizer)  # an unknown name is reported before anything else
        hyper = {}
    if lr is not None:
        hyper["lr"] = lr
    hyper.update(hyperparameters or {})
    if budget is None:
        budget = Budget(steps=setting.steps, epochs=setting.epochs)
    return RunConfig(
        problem=problem,
        optimizer=optimizer,
        hyperparameters=hyper,
        regime=regime or setting.regime,  # type: ignore[arg-type]
        batch_size=batch_size if batch_size is not None else setting.batch_size,
        budget=budget,
        problem_options=options,
        **fields,
    )


def built_problem(name: str, options: Mapping[str, Any]) -> Any:
    """``make_problem(name, **options)``, the same object for equal options within a process.

    Problems are immutable and deterministic given their options, and building
    their data (drawing a sparse data set, rotating a Hessian) can cost more
    than a short run: a lab worker that runs hundreds of configurations on a
    few problems builds each once. Options that cannot be hashed skip the cache.
    """
    try:
        key = json.dumps(options, sort_keys=True)
    except TypeError:
        return make_problem(name, **options)
    return _built(name, key)


@functools.lru_cache(maxsize=8)
def _built(name: str, key: str) -> Any:
    return make_problem(name, **json.loads(key))


def halves(data: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """A finite data set cut in a first and a second half (a single sample is used whole by both).

    >>> first, second = halves((torch.arange(5.0),))
    >>> first[0].tolist(), second[0].tolist()
    ([0.0, 1.0], [2.0, 3.0, 4.0])
    """
    n = len(data[0])
    if n < 2:
        return data, data
    return tuple(t[: n // 2] for t in data), tuple(t[n // 2 :] for t in data)


def validation_observer(
    data: tuple[torch.Tensor, ...], loss: Any, every: Every | None, chunk_size: int
) -> Observer:
    """Records the mean loss on ``data`` as ``"validation"``, at the held-out evaluations' interval."""

    def observe(snapshot: Any) -> float:
        return evaluate(snapshot.model, data, loss, None, chunk_size)[0]

    return Observer("validation", observe, every or Every(1, "epochs"))


def run_id(config: RunConfig) -> str:
    """What identifies a run for resuming: the configuration without its budget.

    A run may be resumed with a larger budget (train for longer); any other
    change makes it another run.
    """
    data = _serde.to_data(config)
    del data["budget"]
    return json.dumps(data, sort_keys=True)


def run(
    config: RunConfig,
    *,
    observers: Sequence[Observer] = (),
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: Every | None = None,
    resume: bool = False,
    progress: bool | Phases = False,
    optimizer_factory: Callable[[Iterable[torch.Tensor], Mapping[str, Any]], torch.optim.Optimizer]
    | None = None,
) -> RunRecord:
    """Train as ``config`` says and return the record (see :func:`~descentlab.train.loop.fit`).

    ``observers`` are added to the built-in ones the configuration names.
    ``optimizer_factory(params, hyperparameters)``, if given, builds the
    optimizer instead of the registry (``config.optimizer`` is then only a
    label): the lab runs deliberately wrong update rules this way, which must
    not be in :data:`descentlab.optim.OPTIMIZERS`.
    Bad names or values raise ValueError or LookupError before training; a
    missing data directory raises FileNotFoundError; divergence is recorded,
    not raised.

    >>> config = RunConfig("saddle", "sgd", {"lr": 0.1}, regime="full-batch", budget=Budget(steps=60))
    >>> record = run(config)
    >>> record.updates, round(record.final_held_out_loss, 3), record.reached_target
    (60, -0.5, True)
    """
    problem = built_problem(config.problem, config.problem_options)
    watchers = [get_observer(name) for name in config.observers] + list(observers)
    splits = problem.splits()
    held_out = splits.test
    if config.held_out == "split":
        validation, held_out = halves(splits.test)
        watchers.append(validation_observer(validation, problem.loss, config.eval_every, config.chunk_size))
    model = problem.model(config.seed)
    if optimizer_factory is None:
        optimizer = build_optimizer(
            config.optimizer, model.parameters(), config.hyperparameters, config.skip_nonfinite
        )
    else:
        optimizer = optimizer_factory(model.parameters(), config.hyperparameters)
    scheduler = build_scheduler(config.schedule, optimizer)
    record = fit(
        model,
        optimizer,
        splits.train,
        loss=problem.loss,
        budget=config.budget,
        regime=config.regime_settings(),
        held_out=held_out,
        accuracy=accuracy if problem.classification else None,
        scheduler=scheduler,
        scheduler_interval=config.schedule.interval if config.schedule else "step",
        eval_every=config.eval_every,
        observers=watchers,
        seed=config.seed,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        resume=resume,
        run_id=run_id(config),
        progress=progress,
        eval_chunk_size=config.chunk_size,
    )
    record.config = config
    record.target_loss = problem.target_loss
    return record
