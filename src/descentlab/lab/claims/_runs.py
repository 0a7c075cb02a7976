"""Helpers the claims share to declare their runs and read them back (no claim-specific logic here)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...train import RunRecord
from ..evidence import Evidence
from ..plan import DataRun, Rates, Run, SurfaceRun, Tune, is_surface
from ..suite import Suite


def tunes_for(
    suite: Suite, roles: Sequence[str], problems: Sequence[str], budget: str = "default"
) -> list[Tune]:
    """A Tune for every method filling one of ``roles`` on every problem."""
    return [Tune(m, p, budget) for p in problems for role in roles for m in suite.in_role(role)]


def judged(
    suite: Suite,
    rates: Rates,
    method: str,
    problem: str,
    *,
    budget: str = "default",
    tuned_budget: str = "default",
    options: tuple = (),
    observers: tuple[str, ...] = (),
    lr: float | None = None,
    steps: int | None = None,
    hyperparameters: tuple = (),
    whole_batches: bool = False,
) -> list[Run]:
    """``method``'s judged runs on ``problem`` at its tuned rate (or ``lr``): every seed, or all starts."""
    rate = lr if lr is not None else rates.get(Tune(method, problem, tuned_budget))
    if rate is None:
        return []
    if is_surface(problem):
        return [SurfaceRun(method, problem, (rate,))]
    return [
        DataRun(
            method,
            problem,
            rate,
            seed,
            budget,
            tuple(options),
            observers,
            steps,
            tuple(hyperparameters),
            whole_batches,
        )
        for seed in suite.judge_seeds
    ]


def records(ev: Evidence, runs: Sequence[Run]) -> list[RunRecord | None]:
    """The record of every data run (None where missing or failed), in order."""
    return [ev.get(run) for run in runs]


def surface_run(
    ev: Evidence, method: str, land: str, *, noise: str = "", lr: float | None = None, hover: bool = False
) -> SurfaceRun | None:
    """The judged surface run of ``method`` on ``land`` at its tuned rate (None: not tuned)."""
    rate = lr if lr is not None else ev.lr(method, land)
    return None if rate is None else SurfaceRun(method, land, (rate,), "judge", noise, hover)


def test_curve(record: RunRecord | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run's held-out (test-half) loss against updates and training seconds: (steps, seconds, loss)."""
    if record is None or not record.held_out.loss:
        empty = np.zeros(0)
        return empty, empty, empty
    held = record.held_out
    loss = np.asarray(held.loss, dtype=float)
    loss = np.where(np.isfinite(loss), loss, np.inf)
    return np.asarray(held.step, dtype=float), np.asarray(held.seconds, dtype=float), loss


def final_test_loss(record: RunRecord | None) -> float:
    """A run's last held-out loss (inf: missing, failed or diverged)."""
    if record is None or record.diverged or not record.held_out.loss:
        return math.inf
    value = record.held_out.loss[-1]
    return value if math.isfinite(value) else math.inf


def escape_updates(land_left: np.ndarray) -> np.ndarray:
    """From a (steps + 1, units) table of 'has left the region': each unit's first such update (inf: none)."""
    hit = land_left.any(axis=0)
    first = np.argmax(land_left, axis=0).astype(float)
    return np.where(hit, first, np.inf)


def failed(*groups: Sequence[RunRecord | None]) -> str:
    """How many runs of each group diverged or failed, of how many: "0/5 / 1/5" for two groups.

    A claim that leaves such runs out of its table says so with this figure (a failure rate, not
    a gap in the mean).
    """
    return " / ".join(f"{sum(r is None or r.diverged for r in g)}/{len(g)}" for g in groups)


def fmt(value: float, digits: int = 3) -> str:
    """A number for the report's tables ('never' for inf, '-' for NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "never" if value > 0 else "-inf"
    return f"{value:.{digits}g}"
