"""Small sweeps for the lab's tests: configurations that train in milliseconds, and record comparison."""

from __future__ import annotations

import os
import sqlite3

from descentlab import _serde
from descentlab.lab import Store
from descentlab.train import Budget, RunConfig, RunRecord

# Fields that measure time: they differ between any two runs of one configuration.
WALL_TIME = ("seconds", "training_seconds")


def tiny(
    lr: float = 0.03, *, problem: str = "quadratic2d", seed: int = 0, steps: int = 30, **fields
) -> RunConfig:
    """A full-batch run of a few milliseconds."""
    return RunConfig(
        problem, "sgd", {"lr": lr}, regime="full-batch", budget=Budget(steps=steps), seed=seed, **fields
    )


def mixed() -> list[RunConfig]:
    """One of each kind: full batch, mini-batch (seeded order), online, a neural net, divergence, failure."""
    return [
        tiny(0.01),
        tiny(0.03, seed=1),
        RunConfig("saddle-noisy", "adam", {"lr": 0.05}, batch_size=10, budget=Budget(epochs=3), seed=2),
        RunConfig("rosenbrock-noisy", "rmsprop", {"lr": 0.001}, regime="online", budget=Budget(steps=50)),
        RunConfig("digits-mlp", "adam", {"lr": 0.01, "betas": [0.8, 0.99]}, budget=Budget(steps=10)),
        tiny(100.0, steps=200),  # diverges (at update 42): the curvature is 50
        tiny(0.01, problem_options={"n_samples": -1}),  # fails: refused when the problem is built
    ]


def without_wall_times(record: RunRecord) -> dict:
    """The record as plain data, less what measures time."""
    data = _serde.to_data(record)
    for key in WALL_TIME:
        data.pop(key, None)
    data["held_out"].pop("seconds")
    return data


def ten_times_unless_three(x: int) -> int:
    """For executor tests (module-level, so a worker process can import it): item 3 kills its worker."""
    if x == 3:
        os._exit(3)
    return 10 * x


def store_of_version(path, version: int = 99) -> None:
    """A descentlab store at ``path`` whose schema version is ``version`` (another release's)."""
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {version}")
    db.close()
