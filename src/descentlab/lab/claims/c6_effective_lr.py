r"""C6: AdaGrad's effective learning rate decays towards zero, so it stops short; RMSProp's does not.

AdaGrad, RMSProp and plain SGD run at the rates a short tuning chose, for
``long_factor`` (at least 5) times that budget, every judging seed, with the
per-coordinate effective learning rate recorded. Two sub-claims, judged apart:

- **decays**: the log-log slope of the median effective learning rate
  against updates over the second half of the run (AdaGrad's
  :math:`\gamma / \sqrt{\sum g^2}` falls like :math:`t^{-1/2}` on steady
  gradients; a constant rate has slope 0). **Effect**: mean over seeds of
  slope(RMSProp) - slope(AdaGrad).
- **stops short**: the training loss at the end of the long run (mean of the
  last tenth of the per-update losses), as a share of the way from the
  start to the best any of these runs reached. **Effect**: mean over seeds
  of share(AdaGrad) - share(RMSProp): how much further from the optimum
  AdaGrad stops.

A seed on which a run diverged or failed is left out of its pair, and the
report gives how many did, per method.

**Control**: plain SGD in AdaGrad's place: its rate does not decay at all,
so a measure that finds it "decaying" or "stopping short" against RMSProp
does not measure AdaGrad's decay.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import analysis, stats
from .. import figures as figures_lib
from ..evidence import Evidence
from ..plan import Rates, Run, Tune
from ..suite import Suite
from ._base import Case, Claim, SubClaim
from ._runs import failed, fmt, judged, records, tunes_for

ID = "C6"
ROLES = ("adagrad", "rmsprop", "plain")


def tunes(suite: Suite) -> list[Tune]:
    return tunes_for(suite, ROLES, suite.reads(ID))


def _long(suite: Suite, rates: Rates, method: str, problem: str) -> list[Run]:
    return judged(suite, rates, method, problem, budget="long")


def runs(suite: Suite, rates: Rates) -> list[Run]:
    return [
        r
        for problem in suite.reads(ID)
        for role in ROLES
        for method in suite.in_role(role)
        for r in _long(suite, rates, method, problem)
    ]


def _first(suite: Suite, role: str) -> str:
    """The built-in method of ``role`` (the comparator or the control; a user's method is a case)."""
    return suite.in_role(role)[0]


def _slope(record) -> float:
    return analysis.effective_lr_decay(record) if record is not None and not record.diverged else math.nan


def _end(record) -> tuple[float, float]:
    """(first, last) training loss: the first update's loss and the mean over the last tenth."""
    if record is None or record.diverged or not record.train_loss:
        return math.nan, math.nan
    losses = np.asarray(record.train_loss, dtype=float)
    k = max(1, round(0.1 * len(losses)))
    return float(losses[0]), float(losses[-k:].mean())


def _mean_end(records: list) -> str:
    """The mean of the runs' final training losses ('-' when none has one: runs missing or diverged)."""
    ends = np.array([_end(r)[1] for r in records], dtype=float)
    return fmt(float(np.nanmean(ends))) if (~np.isnan(ends)).any() else "-"


def _pair_rows(a: list, b: list, value) -> np.ndarray:
    table = np.array([(value(x), value(y)) for x, y in zip(a, b, strict=False)], dtype=float).reshape(-1, 2)
    return table[np.isfinite(table).all(axis=1)]


def _groups(ev: Evidence):
    """Per problem and method in AdaGrad's role: (problem, method, label, its runs, RMSProp's, SGD's)."""
    for problem in ev.suite.reads(ID):
        rms = records(ev, _long(ev.suite, ev.rates, _first(ev.suite, "rmsprop"), problem))
        sgd = records(ev, _long(ev.suite, ev.rates, _first(ev.suite, "plain"), problem))
        for method in ev.suite.in_role("adagrad"):
            ada = records(ev, _long(ev.suite, ev.rates, method, problem))
            yield problem, method, problem if method == "adagrad" else f"{problem}: {method}", ada, rms, sgd


def _decays(ev: Evidence) -> list[Case]:
    out = []
    for problem, method, label, ada, rms, sgd in _groups(ev):
        if not ada or not rms:
            out.append(Case(label, np.zeros((0, 2)), note="a method has no tuned rate"))
            continue
        table = _pair_rows(rms, ada, _slope)
        out.append(
            Case(
                label,
                table,
                _pair_rows(rms, sgd, _slope) if sgd else None,
                {
                    "lr AdaGrad / RMSProp": (
                        f"{fmt(ev.lr(method, problem))} / {fmt(ev.lr(_first(ev.suite, 'rmsprop'), problem))}"
                    ),
                    "slope AdaGrad / RMSProp": (
                        f"{fmt(float(table[:, 1].mean()))} / {fmt(float(table[:, 0].mean()))}"
                        if len(table)
                        else "-"
                    ),
                    "updates (long run)": ada[0].updates if ada and ada[0] is not None else "-",
                    "runs diverged or failed (left out), AdaGrad / RMSProp / SGD": failed(ada, rms, sgd),
                },
            )
        )
    return out


def _stops(ev: Evidence) -> list[Case]:
    out = []
    for _, _, label, ada, rms, sgd in _groups(ev):
        ends = [_end(r) for r in ada + rms + sgd]
        best = min((e[1] for e in ends if math.isfinite(e[1])), default=math.nan)
        starts = [e[0] for e in ends if not math.isnan(e[0])]
        start = float(np.median(starts)) if starts else math.nan  # none: missing runs (a partial store)
        if not ada or not rms or not (start > best):
            out.append(Case(label, np.zeros((0, 2)), note="a method has no tuned rate or no runs"))
            continue

        def share(record, start=start, best=best) -> float:
            return (_end(record)[1] - best) / (start - best)

        table = _pair_rows(ada, rms, share)
        out.append(
            Case(
                label,
                table,
                _pair_rows(sgd, rms, share) if sgd else None,
                {
                    "training loss at the end, AdaGrad / RMSProp": f"{_mean_end(ada)} / {_mean_end(rms)}",
                    "best any run reached": best,
                    "budget (x the tuning budget)": ev.suite.long_factor,
                    "runs diverged or failed (left out), AdaGrad / RMSProp / SGD": failed(ada, rms, sgd),
                },
            )
        )
    return out


def figures(ev: Evidence, folder: Path) -> list[tuple[str, str]]:
    out = []
    for problem in ev.suite.reads(ID):
        series = {m: _long(ev.suite, ev.rates, m, problem) for role in ROLES for m in ev.suite.in_role(role)}
        name = f"c6-{problem}.png"
        if figures_lib.curves(ev, series, folder / name, axis="step"):
            out.append(
                (name, f"{problem}: held-out loss over a run {ev.suite.long_factor} times the tuning budget")
            )
    return out


CLAIM = Claim(
    id=ID,
    title="AdaGrad's vanishing step against RMSProp's",
    statement="AdaGrad's effective learning rate decays towards zero, so it stops short of the optimum; "
    "RMSProp's does not.",
    source="'AdaGrad's accumulated squared gradients keep growing, so its learning rate shrinks until it "
    "stops learning; RMSProp fixes this with a moving average.'",
    roles=ROLES,
    subclaims=(
        SubClaim(
            "decays",
            "AdaGrad's effective learning rate falls faster than RMSProp's.",
            "log-log slope of the median per-coordinate effective learning rate against updates, second "
            "half of "
            "a run five times the tuning budget",
            "mean over seeds of slope(RMSProp) - slope(AdaGrad) (0.1: a tenth of a decade more per decade)",
            "plain SGD in AdaGrad's place (a constant rate)",
            0.1,
            stats.mean_difference,
            _decays,
            null_control=False,  # SGD in AdaGrad's place: it can only show a support is not AdaGrad's
        ),
        SubClaim(
            "stops-short",
            "Over a long run, AdaGrad stops further from the optimum than RMSProp.",
            "training loss at the end of a run five times the tuning budget, as a share of the way from the "
            "start to the best loss any of these runs reached",
            "mean over seeds of share(AdaGrad) - share(RMSProp) (0.05: five points further from the optimum)",
            "plain SGD in AdaGrad's place (a constant rate)",
            0.05,
            stats.mean_difference,
            _stops,
            null_control=False,
        ),
    ),
    tunes=tunes,
    runs=runs,
    text=__doc__ or "",
    figures=figures,
)
