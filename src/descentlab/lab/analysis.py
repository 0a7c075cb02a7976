"""Measures computed from run records that more than one module reads.

Pure functions of :class:`~descentlab.train.RunRecord` s and numbers.
Missing or unmeasurable values are ``inf`` or NaN, never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..train import RunRecord


def final_loss(record: RunRecord | None) -> float:
    """The final held-out loss; inf for a missing or diverged run."""
    if record is None or record.diverged or not record.held_out.loss:
        return math.inf
    value = record.held_out.loss[-1]
    return value if math.isfinite(value) else math.inf


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """The least-squares slope of log y against log x (NaN with fewer than 2 usable points).

    >>> round(loglog_slope([1, 10, 100], [1, 0.1, 0.01]), 6)
    -1.0
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    usable = (xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)
    if usable.sum() < 2 or np.ptp(np.log(xs[usable])) == 0:
        return math.nan
    return float(np.polyfit(np.log(xs[usable]), np.log(ys[usable]), 1)[0])


def observed(record: RunRecord, name: str) -> tuple[np.ndarray, np.ndarray]:
    """An observer's steps and values (one row per observation); empty arrays if it is absent."""
    series = record.observations.get(name)
    if series is None or not series.step:
        return np.zeros(0), np.zeros((0, 0))
    return np.asarray(series.step, dtype=float), np.asarray(series.value, dtype=float)


def effective_lr_decay(record: RunRecord, name: str = "effective-lr", quantile: int = 2) -> float:
    """How the median effective learning rate falls: its log-log slope against updates, late in the run.

    About -0.5 when it decays like AdaGrad's 1/sqrt(t) on steady gradients,
    about 0 when it settles (RMSProp, Adam). ``quantile`` indexes the
    observer's quantiles (0, 0.1, 0.5, 0.9, 1), 2 being the median.
    """
    steps, values = observed(record, name)
    keep = steps >= 1
    steps, values = steps[keep], values[keep]
    if len(steps) < 2:
        return math.nan
    half = steps >= steps[-1] / 2
    return loglog_slope(steps[half], values[half, quantile])
