r"""C1: full-batch updates are smoother, but mini-batches reach a target loss sooner in wall time.

Two sub-claims, judged apart:

- **smoother**: the roughness of the held-out loss curve, :math:`1 -
  (L_{first} - L_{last}) / TV` over the evaluations both regimes made at the
  same update counts (0 for a monotone curve, near 1 for pure noise).
  **Effect**: mean over seeds of roughness(mini-batch) - roughness(full batch).
- **sooner**: training seconds until the held-out loss first reaches a
  target halfway from the starting loss to the problem's documented target
  (depth 0.5: every budget gets there, so the case measures speed, not how
  low each regime can go). A run that never reaches it is censored at the
  horizon both runs of the seed covered, so "neither got there" is no
  effect, and the report gives the share that never did. **Effect**: mean
  over seeds of :math:`\log(T_{full} / T_{mini})` (0.22: mini-batches 1.25
  times as fast). The report also gives the effect at depths 0.25, 0.5, 0.75
  and 1 (the documented target), in seconds and in updates.

**Control**: the full batch's updates made by the mini-batch method: on the
same problem, at the full batch's tuned rate, with the same updates and
evaluations, but every mini-batch is the whole training set. Neither
sampling noise nor cheaper updates remain; what is left is how the two
training loops differ (shuffling, gathering the batch), which a measure of
the claim must not mistake for the claim.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import figures as figures_lib
from .. import stats
from ..evidence import Evidence
from ..plan import Rates, Run, Tune
from ..suite import Suite
from ._base import Case, Claim, SubClaim
from ._runs import fmt, judged, records, test_curve, tunes_for

ID = "C1"
#: The target of the case: halfway from the starting loss to the problem's documented target ...
DEPTH = 0.5
#: ... and the depths of the curve the report also gives (1: the documented target).
DEPTHS = (0.25, 0.5, 0.75, 1.0)


def tunes(suite: Suite) -> list[Tune]:
    return tunes_for(suite, ("full-batch", "mini-batch"), suite.reads(ID))


def _control_runs(suite: Suite, rates: Rates, method: str, problem: str) -> list[Run]:
    """``method`` (a mini-batch method) at the full batch's rate with whole-set batches: the control."""
    lr = rates.get(Tune("gd", problem))
    return judged(suite, rates, method, problem, lr=lr, whole_batches=True) if lr else []


def runs(suite: Suite, rates: Rates) -> list[Run]:
    out: list[Run] = []
    for problem in suite.reads(ID):
        for method in (*suite.in_role("full-batch"), *suite.in_role("mini-batch")):
            out += judged(suite, rates, method, problem)
        out += _control_runs(suite, rates, "sgd", problem)
    return out


def roughness(steps: np.ndarray, loss: np.ndarray, shared: np.ndarray) -> float:
    """1 - net decrease / total variation of the curve at the update counts ``shared`` (NaN: too short)."""
    values = loss[np.isin(steps, shared)]
    if len(values) < 3 or not np.all(np.isfinite(values)):
        return math.nan
    variation = np.abs(np.diff(values)).sum()
    return float(1 - (values[0] - values[-1]) / variation) if variation > 0 else 0.0


def _smooth_rows(full: list, mini: list) -> np.ndarray:
    table = []
    for f, m in zip(full, mini, strict=True):
        sf, _, lf = test_curve(f)
        sm, _, lm = test_curve(m)
        shared = np.intersect1d(sf, sm)
        table.append((roughness(sm, lm, shared), roughness(sf, lf, shared)))
    table = np.asarray(table, dtype=float).reshape(-1, 2)
    return table[np.isfinite(table).all(axis=1)]


def _level(curves: list, depth: float, target: float) -> float:
    start = float(np.median([c[2][0] for c in curves if len(c[2])]))
    if depth <= 1:
        return start - depth * (start - target)
    best = min(float(np.min(c[2])) for c in curves if len(c[2]))
    return target - (depth - 1) * max(0.0, target - best)


def _first(curve, level: float, axis: int) -> float:
    hits = np.flatnonzero(curve[2] <= level)
    return float(curve[axis][hits[0]]) if len(hits) else math.inf


def _sooner_rows(full: list, mini: list, depth: float, axis: int) -> tuple[np.ndarray, float, float]:
    """Rows (T_full, T_mini) censored at the shared horizon; and the shares that never reached the level."""
    cf = [test_curve(r) for r in full]
    cm = [test_curve(r) for r in mini]
    pairs = [(f, m) for f, m in zip(cf, cm, strict=True) if len(f[2]) and len(m[2])]
    if not pairs:
        return np.zeros((0, 2)), math.nan, math.nan
    target = next((r.target_loss for r in full if r is not None and r.target_loss is not None), None)
    if target is None:
        return np.zeros((0, 2)), math.nan, math.nan
    level = _level([c for pair in pairs for c in pair], depth, target)
    table, never_f, never_m = [], 0, 0
    for f, m in pairs:
        horizon = min(f[axis][-1], m[axis][-1])
        tf, tm = _first(f, level, axis), _first(m, level, axis)
        never_f += not math.isfinite(tf)
        never_m += not math.isfinite(tm)
        table.append((min(tf, horizon), min(tm, horizon)))
    table = np.asarray(table, dtype=float)
    return table[(table > 0).all(axis=1)], never_f / len(pairs), never_m / len(pairs)


def _pairs(ev: Evidence, problem: str, control: bool = False) -> tuple[list, list]:
    full = records(ev, judged(ev.suite, ev.rates, "gd", problem))
    if control:
        return full, records(ev, _control_runs(ev.suite, ev.rates, "sgd", problem))
    return full, records(ev, judged(ev.suite, ev.rates, "sgd", problem))


def _smoother(ev: Evidence) -> list[Case]:
    out = []
    for problem in ev.suite.reads(ID):
        full, mini = _pairs(ev, problem)
        if not full or not mini:
            out.append(Case(problem, np.zeros((0, 2)), note="a method has no tuned rate"))
            continue
        table = _smooth_rows(full, mini)
        control = _pairs(ev, problem, control=True)
        out.append(
            Case(
                problem,
                table,
                _smooth_rows(*control) if control[1] else None,
                {
                    "lr full batch": ev.lr("gd", problem),
                    "lr mini-batch": ev.lr("sgd", problem),
                    "roughness full batch / mini-batch": (
                        f"{fmt(float(np.mean(table[:, 1])))} / {fmt(float(np.mean(table[:, 0])))}"
                        if len(table)
                        else "-"
                    ),
                },
            )
        )
    return out


def _sooner(ev: Evidence) -> list[Case]:
    out = []
    for problem in ev.suite.reads(ID):
        full, mini = _pairs(ev, problem)
        if not full or not mini or all(r is None for r in full):
            out.append(Case(problem, np.zeros((0, 2)), note="a method has no tuned rate"))
            continue
        table, never_f, never_m = _sooner_rows(full, mini, DEPTH, 1)
        numbers: dict = {
            f"never reached depth {DEPTH:g}, full batch": f"{100 * never_f:.0f}%",
            f"never reached depth {DEPTH:g}, mini-batch": f"{100 * never_m:.0f}%",
        }
        for depth in DEPTHS:
            for axis, unit in ((1, "seconds"), (0, "updates")):
                rows_, nf, nm = _sooner_rows(full, mini, depth, axis)
                effect = stats.mean_log_ratio(rows_) if len(rows_) else math.nan
                numbers[f"depth {depth:g}, log(T full / T mini) in {unit}"] = (
                    f"{fmt(effect)} (never: full {100 * nf:.0f}%, mini {100 * nm:.0f}%)"
                )
        control_runs = _pairs(ev, problem, control=True)
        control, never_cf, never_cm = (
            _sooner_rows(*control_runs, DEPTH, 1) if control_runs[1] else (None, math.nan, math.nan)
        )
        # Runs that never reach the level are censored alike, so their log ratio is 0 by construction:
        # such a control could never agree with the claim, and so cannot vouch for the measure.
        if never_cf == 1 and never_cm == 1:
            out.append(Case(problem, table, None, numbers, note=CONTROL_NEVER))
        else:
            out.append(Case(problem, table, control, numbers))
    return out


CONTROL = (
    "the full batch's updates made by the mini-batch method (every batch the whole training set; same rate, "
    "updates and evaluations)"
)
CONTROL_NEVER = (
    "the control's runs never reached the level, so it cannot show whether the measure is blind: not decided"
)


def figures(ev: Evidence, folder: Path) -> list[tuple[str, str]]:
    out = []
    for problem in ev.suite.reads(ID):
        series = {"gd (full batch)": judged(ev.suite, ev.rates, "gd", problem),
                  "sgd (mini-batches)": judged(ev.suite, ev.rates, "sgd", problem)}  # fmt: skip
        name = f"c1-{problem}.png"
        if figures_lib.curves(ev, series, folder / name, axis="seconds"):
            out.append((name, f"{problem}: held-out loss against training seconds, median over seeds"))
    return out


CLAIM = Claim(
    id=ID,
    title="full batch against mini-batches",
    statement="Full-batch updates are smoother but each costs a pass over the data; "
    "mini-batches reach a target loss sooner in wall time.",
    source="'Batch gradient descent computes the exact gradient, so its path is smooth, but every update "
    "needs the whole data set; mini-batch gradient descent updates far more often and gets there faster.'",
    roles=("full-batch", "mini-batch"),
    subclaims=(
        SubClaim(
            "smoother",
            "The full batch's held-out loss curve is smoother than the mini-batches'.",
            "roughness of the held-out (test-half) loss at the update counts both evaluated: "
            "1 - net decrease / total variation",
            "mean over seeds of roughness(mini-batch) - roughness(full batch)",
            CONTROL,
            0.05,
            stats.mean_difference,
            _smoother,
        ),
        SubClaim(
            "sooner",
            "Mini-batches reach the target loss sooner in wall time.",
            "training seconds until the held-out loss first gets halfway from the start to the documented "
            "target, censored at the horizon both runs of a seed covered",
            "mean over seeds of log(seconds full batch / seconds mini-batch) (0.22: 1.25x as fast)",
            CONTROL,
            float(np.log(1.25)),
            stats.mean_log_ratio,
            _sooner,
        ),
    ),
    tunes=tunes,
    runs=runs,
    text=__doc__ or "",
    figures=figures,
)
