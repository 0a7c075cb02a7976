r"""C5: AdaGrad learns sparse, rare features faster than SGD.

On sparse logistic regression whose rare features (expected in under 1% of
the samples) carry most of the signal, AdaGrad and mini-batch SGD run at
their tuned rates with every judging seed; their weights are read at the end
of the budget. The relative error of a set of weights is
:math:`\|w_S - w^*_S\| / \|w^*_S\|`. A seed on which either run diverged or
failed is left out of the case, and the report gives how many did.

**Measure**: AdaGrad's gain over SGD on the rare features,
:math:`1 - \overline{err}_{AdaGrad} / \overline{err}_{SGD}`, and the same on
the common features. **Effect**: the rare features' gain minus the common
features' (0.05: five points more on the rare ones). A method that is simply
better everywhere does not make the claim: it is about *rare* features.

**Control**: the same runs on the same problem with dense features (Zipf
exponent 0: every feature is about as frequent), read on the same sets of
feature indices: there the "rare" set is not rare, and the gap should vanish.
"""

from __future__ import annotations

import math

import numpy as np

from ...problems import make_problem
from ..evidence import Evidence
from ..plan import Rates, Run, Tune
from ..suite import Suite
from ._base import Case, Claim, SubClaim
from ._runs import failed, fmt, judged, records, tunes_for

ID = "C5"
DENSE = (("zipf", 0.0),)
SNAPSHOTS = "path@1epochs"


def tunes(suite: Suite) -> list[Tune]:
    return tunes_for(suite, ("mini-batch", "adagrad"), suite.reads(ID))


def _judged(suite: Suite, rates: Rates, method: str, problem: str, dense: bool) -> list[Run]:
    return judged(suite, rates, method, problem, options=DENSE if dense else (), observers=(SNAPSHOTS,))


def runs(suite: Suite, rates: Rates) -> list[Run]:
    return [
        r
        for problem in suite.reads(ID)
        for role in ("mini-batch", "adagrad")
        for method in suite.in_role(role)
        for dense in (False, True)
        for r in _judged(suite, rates, method, problem, dense)
    ]


def gap(table: np.ndarray) -> float:
    """Rare gain minus common gain from columns [rare SGD, rare AdaGrad, common SGD, common AdaGrad]."""
    means = table.mean(axis=0)
    if means[0] <= 0 or means[2] <= 0:
        return math.nan
    return float((1 - means[1] / means[0]) - (1 - means[3] / means[2]))


def _errors(record, truth: np.ndarray, rare: np.ndarray, common: np.ndarray) -> tuple[float, float]:
    if record is None or record.diverged:
        return math.nan, math.nan
    series = record.observations.get(SNAPSHOTS)
    if series is None or not series.value:
        return math.nan, math.nan
    weights = np.asarray(series.value[-1], dtype=float)[: len(truth)]

    def error(index: np.ndarray) -> float:
        scale = np.linalg.norm(truth[index])
        return float(np.linalg.norm(weights[index] - truth[index]) / scale) if scale > 0 else math.nan

    return error(rare), error(common)


def _table(ev: Evidence, problem: str, plain: str, other: str, dense: bool, rare: np.ndarray) -> np.ndarray:
    options = {**ev.suite.options(problem), **(dict(DENSE) if dense else {})}
    built = make_problem(ev.suite.data(problem).problem, **options)
    truth = built.true_weights.double().numpy()  # type: ignore[attr-defined]
    common = np.setdiff1d(np.arange(len(truth)), rare)
    a = [
        _errors(r, truth, rare, common)
        for r in records(ev, _judged(ev.suite, ev.rates, plain, problem, dense))
    ]
    b = [
        _errors(r, truth, rare, common)
        for r in records(ev, _judged(ev.suite, ev.rates, other, problem, dense))
    ]
    table = np.array([(x[0], y[0], x[1], y[1]) for x, y in zip(a, b, strict=False)], dtype=float).reshape(
        -1, 4
    )
    return table[np.isfinite(table).all(axis=1)]


def _cases(ev: Evidence) -> list[Case]:
    out = []
    for problem in ev.suite.reads(ID):
        built = make_problem(ev.suite.data(problem).problem, **ev.suite.options(problem))
        rare = built.rare_features.numpy()  # type: ignore[attr-defined]
        for plain in ev.suite.in_role("mini-batch"):
            for other in ev.suite.in_role("adagrad"):
                label = problem if other == "adagrad" else f"{problem}: {other}"
                if ev.lr(plain, problem) is None or ev.lr(other, problem) is None or not len(rare):
                    out.append(Case(label, np.zeros((0, 4)), note="no tuned rate, or no rare features"))
                    continue
                table = _table(ev, problem, plain, other, False, rare)
                means = table.mean(axis=0) if len(table) else np.full(4, np.nan)
                out.append(
                    Case(
                        label,
                        table,
                        _table(ev, problem, plain, other, True, rare),
                        {
                            "lr SGD": ev.lr(plain, problem),
                            f"lr {other}": ev.lr(other, problem),
                            "rare features (of all)": f"{len(rare)}",
                            "rare-weight error SGD / AdaGrad": f"{fmt(means[0])} / {fmt(means[1])}",
                            "common-weight error SGD / AdaGrad": f"{fmt(means[2])} / {fmt(means[3])}",
                            "runs diverged or failed (left out), SGD / AdaGrad": failed(
                                *(
                                    records(ev, _judged(ev.suite, ev.rates, m, problem, False))
                                    for m in (plain, other)
                                )
                            ),
                        },
                    )
                )
    return out


CLAIM = Claim(
    id=ID,
    title="AdaGrad and rare features",
    statement="AdaGrad learns sparse, rare features faster than SGD.",
    source="'AdaGrad gives rare features larger updates and frequent ones smaller updates, which makes it "
    "well suited to sparse data.'",
    roles=("mini-batch", "adagrad"),
    subclaims=(
        SubClaim(
            "rare",
            "AdaGrad's advantage over SGD is larger on the rare features' weights than on the common ones'.",
            "relative error of the rare and of the common features' weights at the end of the budget",
            "AdaGrad's gain on the rare features minus its gain on the common ones, gain = 1 - error "
            "AdaGrad / "
            "error SGD (means over seeds)",
            "the same runs with dense features (Zipf exponent 0), read on the same feature sets",
            0.05,
            gap,
            _cases,
        ),
    ),
    tunes=tunes,
    runs=runs,
    text=__doc__ or "",
)
