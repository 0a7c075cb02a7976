r"""C2: online SGD learns from a stream, one sample at a time.

One pass over the data, every sample new: the stream. Two sub-claims:

- **learns**: the share of the reducible loss the stream closes, from the
  prequential (test-then-train) loss of its first tenth to that of its last
  tenth, against the optimum :math:`L^*` estimated as the lowest held-out loss
  any of the claim's runs reached: :math:`(L_{first} - L_{last}) / (L_{first}
  - L^*)`. **Effect**: its mean over seeds (0.25: a quarter closed).
- **as well as mini-batches**: online SGD against mini-batch SGD after the
  same samples (one pass each), each tuned for that budget. **Effect**: mean
  over seeds of :math:`(L_{mini} - L_{online}) / (L_{start} - L^*)` on the
  held-out half (positive: online ends lower).

**Control**: the same runs with the learning rate set to 0, so nothing is
learnt: a falling prequential loss would then come from the order of the
stream, not from learning.

The *budget* variation does not apply: a stream is one pass over its data,
and a second pass would show every sample twice.
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
from ._base import Case, Claim, SubClaim, rows
from ._runs import failed, final_test_loss, fmt, judged, records, tunes_for

ID = "C2"
WINDOW = 0.1


def tunes(suite: Suite) -> list[Tune]:
    return tunes_for(suite, ("online",), suite.reads(ID)) + tunes_for(
        suite, ("mini-batch",), suite.reads(ID), budget="one-pass"
    )


def _runs(suite: Suite, rates: Rates, problem: str, zero: bool, method: str) -> tuple[list[Run], list[Run]]:
    """``method``'s stream and the built-in mini-batch method's one pass (at rate 0 for the control)."""
    lr = 0.0 if zero else None
    mini = suite.in_role("mini-batch")[0]
    return (
        judged(suite, rates, method, problem, lr=lr),
        judged(suite, rates, mini, problem, budget="one-pass", tuned_budget="one-pass", lr=lr),
    )


def runs(suite: Suite, rates: Rates) -> list[Run]:
    out: list[Run] = []
    for problem in suite.reads(ID):
        for method in suite.in_role("online"):
            for zero in (False, True):
                online, mini = _runs(suite, rates, problem, zero, method)
                out += online + mini
    return out


def _optimum(ev: Evidence, problem: str) -> float:
    runs_ = [
        r
        for m in ev.suite.in_role("online")
        for part in _runs(ev.suite, ev.rates, problem, False, m)
        for r in part
    ]
    finals = [final_test_loss(r) for r in records(ev, runs_)]
    return min(finals, default=math.inf)


def _label(problem: str, method: str) -> str:
    return problem if method == "online-sgd" else f"{problem}: {method}"


def _closed(record, optimum: float) -> float:
    if record is None or record.diverged or not record.train_loss:
        return math.nan
    losses = np.asarray(record.train_loss, dtype=float)
    k = max(1, round(WINDOW * len(losses)))
    first, last = losses[:k].mean(), losses[-k:].mean()
    return float((first - last) / (first - optimum)) if first > optimum else math.nan


def _learns(ev: Evidence) -> list[Case]:
    out = []
    for problem, method in ((p, m) for p in ev.suite.reads(ID) for m in ev.suite.in_role("online")):
        optimum = _optimum(ev, problem)
        online, _ = _runs(ev.suite, ev.rates, problem, False, method)
        zero, _ = _runs(ev.suite, ev.rates, problem, True, method)
        if not online or not math.isfinite(optimum):
            out.append(Case(_label(problem, method), np.zeros((0, 1)), note="no tuned rate or no runs"))
            continue
        shares = np.array([_closed(r, optimum) for r in records(ev, online)])
        control = np.array([_closed(r, optimum) for r in records(ev, zero)])
        out.append(
            Case(
                _label(problem, method),
                rows(shares[np.isfinite(shares)]),
                rows(control[np.isfinite(control)]),
                {
                    "lr online": ev.lr(method, problem),
                    "estimated optimum L*": optimum,
                    "mean share closed": fmt(float(np.nanmean(shares))) if np.isfinite(shares).any() else "-",
                    "diverged or failed runs": failed(records(ev, online)),
                },
            )
        )
    return out


def _start(record) -> float:
    return record.held_out.loss[0] if record is not None and record.held_out.loss else math.nan


def _as_well(ev: Evidence) -> list[Case]:
    out = []
    for problem, method in ((p, m) for p in ev.suite.reads(ID) for m in ev.suite.in_role("online")):
        optimum = _optimum(ev, problem)
        online, mini = _runs(ev.suite, ev.rates, problem, False, method)
        zero_online, zero_mini = _runs(ev.suite, ev.rates, problem, True, method)
        if not online or not mini or not math.isfinite(optimum):
            out.append(Case(_label(problem, method), np.zeros((0, 2)), note="no tuned rate or no runs"))
            continue

        def table(a: list[Run], b: list[Run], optimum: float = optimum) -> np.ndarray:
            pairs = []
            for ra, rb in zip(records(ev, a), records(ev, b), strict=True):
                scale = _start(ra) - optimum
                if not scale > 0:
                    continue
                pairs.append(
                    ((final_test_loss(rb) - optimum) / scale, (final_test_loss(ra) - optimum) / scale)
                )
            t = np.asarray(pairs, dtype=float).reshape(-1, 2)
            return t[np.isfinite(t).all(axis=1)]

        treated = table(online, mini)
        out.append(
            Case(
                _label(problem, method),
                treated,
                table(zero_online, zero_mini),
                {
                    "lr online": ev.lr(method, problem),
                    "lr mini-batch (tuned for one pass)": ev.lr(
                        ev.suite.in_role("mini-batch")[0], problem, "one-pass"
                    ),
                    "excess loss mini-batch / online (share of start - L*)": (
                        f"{fmt(float(treated[:, 0].mean()))} / {fmt(float(treated[:, 1].mean()))}"
                        if len(treated)
                        else "-"
                    ),
                },
            )
        )
    return out


def _mean(table: np.ndarray) -> float:
    return float(np.mean(table[:, 0]))


def figures(ev: Evidence, folder: Path) -> list[tuple[str, str]]:
    out = []
    for problem in ev.suite.reads(ID):
        online, mini = _runs(ev.suite, ev.rates, problem, False, "online-sgd")
        name = f"c2-{problem}.png"
        if figures_lib.curves(
            ev, {"online-sgd": online, "sgd (one pass)": mini}, folder / name, axis="samples"
        ):
            out.append((name, f"{problem}: held-out loss against samples seen, one pass, median over seeds"))
    return out


CLAIM = Claim(
    id=ID,
    title="online SGD learns from a stream",
    statement="Online SGD learns from a stream one sample at a time.",
    source="'Online gradient descent updates the model after every single example, so it can learn from a "
    "stream of data that never ends.'",
    roles=("online", "mini-batch"),
    subclaims=(
        SubClaim(
            "learns",
            "Over one pass of a stream, online SGD closes a large share of the reducible loss.",
            "the prequential loss (each sample's loss before the model learns from it) over the first and "
            "the "
            "last tenth of the stream, against the lowest held-out loss any of the claim's runs reached",
            "mean over seeds of (L_first - L_last) / (L_first - L*) (0.25: a quarter of the reducible loss)",
            "the same stream with learning rate 0 (nothing learnt)",
            0.25,
            _mean,
            _learns,
        ),
        SubClaim(
            "as-well",
            "After the same samples (one pass), online SGD ends lower than mini-batch SGD, each tuned for "
            "one pass.",
            "held-out (test-half) loss after one pass over the data, online and in mini-batches of 32",
            "mean over seeds of (L_mini - L_online) / (L_start - L*) (positive: online lower)",
            "both with learning rate 0",
            0.05,
            stats.mean_difference,
            _as_well,
        ),
    ),
    tunes=tunes,
    runs=runs,
    text=__doc__ or "",
    figures=figures,
    variations=("grid-shift", "geometry", "tuning-seed"),
    not_varied={
        "budget": "a stream is one pass over its data; a longer budget would show every sample twice"
    },
)
