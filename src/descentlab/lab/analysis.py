"""Measures computed from run records: time to a target, roughness, sensitivity, profiles, paths.

Pure functions of :class:`~descentlab.train.RunRecord` s and numbers, so the
claims and figures are computed from stored runs alone and can be tested on
records made up for the purpose. Missing or unmeasurable values are ``None``
or ``inf`` (a target never reached), never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..train import RunRecord

AXES = ("step", "samples", "seconds")


@dataclass(frozen=True)
class Crossing:
    """When a run first reached a loss: after ``step`` updates, ``samples`` samples, ``seconds`` training."""

    step: int
    samples: int
    seconds: float

    def on(self, axis: str) -> float:
        """The crossing on ``axis`` (``"step"``, ``"samples"`` or ``"seconds"``)."""
        return float(getattr(self, axis))


def median(values: Sequence[float]) -> float:
    """The median (inf counts as a value; NaN for no values).

    >>> median([1.0, math.inf, 3.0])
    3.0
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    low, high = ordered[mid - 1], ordered[mid]
    return high if math.isinf(high) else (low + high) / 2


def initial_loss(record: RunRecord) -> float | None:
    """The held-out loss of the initial model (None without evaluations)."""
    return record.held_out.loss[0] if record.held_out.loss else None


def final_loss(record: RunRecord | None) -> float:
    """The final held-out loss; inf for a missing or diverged run."""
    if record is None or record.diverged or not record.held_out.loss:
        return math.inf
    value = record.held_out.loss[-1]
    return value if math.isfinite(value) else math.inf


def crossing(record: RunRecord, level: float) -> Crossing | None:
    """The first held-out evaluation at or below ``level`` (None if the run never got there).

    >>> from descentlab.train import HeldOut
    >>> held = HeldOut([0, 1, 2], [0, 10, 20], [0.0, 0.1, 0.2], [3.0, 2.0, 1.0])
    >>> record = RunRecord("full-batch", held_out=held)
    >>> crossing(record, 2.5)
    Crossing(step=1, samples=10, seconds=0.1)
    """
    held = record.held_out
    for i, loss in enumerate(held.loss):
        if math.isfinite(loss) and loss <= level:
            return Crossing(held.step[i], held.samples[i], held.seconds[i])
    return None


def time_to(records: Sequence[RunRecord], level: float, axis: str) -> float:
    """The median over runs of the first crossing of ``level`` on ``axis`` (inf: never got there)."""
    values = []
    for record in records:
        hit = crossing(record, level)
        values.append(hit.on(axis) if hit is not None else math.inf)
    return median(values)


def roughness(losses: Sequence[float]) -> float:
    """How much a loss curve moves for what it gains: total variation over net decrease (1: monotone).

    inf when the curve did not decrease (or holds a non-finite value).

    >>> roughness([4.0, 3.0, 2.0]), roughness([4.0, 2.0, 3.0, 1.0])
    (1.0, 1.6666666666666667)
    """
    values = np.asarray(losses, dtype=float)
    if len(values) < 2 or not np.all(np.isfinite(values)) or values[-1] >= values[0]:
        return math.inf
    return float(np.abs(np.diff(values)).sum() / (values[0] - values[-1]))


def losses_at(record: RunRecord, steps: set[int]) -> list[float]:
    """The held-out losses of the evaluations made after the given numbers of updates, in order."""
    held = record.held_out
    return [loss for step, loss in zip(held.step, held.loss, strict=True) if step in steps]


def shared_steps(records: Sequence[RunRecord]) -> set[int]:
    """The update counts at which every one of ``records`` was evaluated."""
    sets = [set(r.held_out.step) for r in records]
    return set.intersection(*sets) if sets else set()


def kept_improvement(start: float, loss: float, best: float) -> float:
    """The share of the best run's improvement over the starting loss that a run keeps (<= 1).

    Measured from the start, not as a ratio to the best loss, which breaks
    when the best loss is near zero or negative. A diverged run keeps -inf.

    >>> kept_improvement(10.0, 4.0, 2.0)
    0.75
    """
    if not math.isfinite(loss):
        return -math.inf
    gain = start - best
    return (start - loss) / gain if gain > 0 else -math.inf


def good_lrs(grid: Sequence[tuple[float, float]], start: float, keep: float) -> list[float]:
    """The learning rates whose final loss keeps at least ``keep`` of the best run's improvement.

    ``grid`` holds (lr, final loss) pairs (inf for a diverged run).

    >>> good_lrs([(0.01, 9.0), (0.1, 5.0), (1.0, 2.0), (10.0, math.inf)], start=10.0, keep=0.5)
    [0.1, 1.0]
    """
    finite = [loss for _, loss in grid if math.isfinite(loss)]
    if not finite:
        return []
    best = min(finite)
    return sorted(lr for lr, loss in grid if kept_improvement(start, loss, best) >= keep)


def performance_profile(
    costs: Mapping[str, Mapping[str, float]], taus: Sequence[float]
) -> dict[str, list[float]]:
    """AlgoPerf's performance profiles: for each method, the share of problems within ``tau`` of the best.

    ``costs[problem][method]`` is the time (or updates) to the problem's
    target, inf where the method never reached it. On each problem a method's
    ratio is its cost over the best method's; the profile at ``tau`` is the
    share of problems where that ratio is at most ``tau``. A problem no
    method solved counts against every method.

    >>> performance_profile({"p": {"a": 1.0, "b": 2.0}, "q": {"a": math.inf, "b": 3.0}}, [1.0, 2.0])
    {'a': [0.5, 0.5], 'b': [0.5, 1.0]}
    """
    methods = sorted({m for row in costs.values() for m in row})
    profile = {m: [0.0] * len(taus) for m in methods}
    if not costs:
        return profile
    for row in costs.values():
        best = min(row.values(), default=math.inf)
        for method in methods:
            cost = row.get(method, math.inf)
            ratio = (
                cost / best if math.isfinite(cost) and best > 0 else (1.0 if cost == best == 0 else math.inf)
            )
            for i, tau in enumerate(taus):
                if ratio <= tau:
                    profile[method][i] += 1 / len(costs)
    return profile


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


def window_means(losses: Sequence[float], window: float) -> tuple[float, float]:
    """Means of the first and last ``window`` share of a sequence of per-sample losses."""
    values = np.asarray(losses, dtype=float)
    k = max(1, round(window * len(values)))
    return float(values[:k].mean()), float(values[-k:].mean())


def path_tail(record: RunRecord, name: str = "path") -> np.ndarray:
    """The second half of a recorded parameter path (rows: points), the stretch where it hovers."""
    _, values = observed(record, name)
    return values[len(values) // 2 :]


def step_lengths(points: np.ndarray) -> np.ndarray:
    """The length of each move between consecutive points of a path."""
    return np.linalg.norm(np.diff(points, axis=0), axis=1) if len(points) > 1 else np.zeros(0)


def curve_band(
    records: Sequence[RunRecord], axis: str, low: float = 0.25, high: float = 0.75
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Held-out loss against ``axis`` across seeds: x, median, and the ``low``/``high`` quantiles.

    Runs of one setting evaluate at the same updates and samples (the
    schedule is deterministic), so curves are aligned by evaluation index up
    to the shortest run (a diverged run ends early); on the time axis x is
    the median time of each evaluation across runs.
    """
    held = [r.held_out for r in records if r.held_out.loss]
    if not held:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    n = min(len(h.loss) for h in held)
    x = np.median(np.array([getattr(h, axis)[:n] for h in held], dtype=float), axis=0)
    y = np.array([h.loss[:n] for h in held], dtype=float)
    with np.errstate(invalid="ignore"):
        return x, np.median(y, axis=0), np.quantile(y, low, axis=0), np.quantile(y, high, axis=0)
