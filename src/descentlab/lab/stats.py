r"""The lab's statistics: paired effects with bootstrap intervals, and the verdict rules.

A *case* (one problem or surface of a claim) is a table of *units*, one row
per independent replicate (a seed, or a start on a 2-D surface), with the
same columns for every unit: for instance the updates plain descent and
momentum needed to leave the saddle from that start. The effect is a
statistic of the whole table (a mean of paired log ratios, a ratio of means),
so that resampling whole rows keeps the pairing. Its 95% interval is the
bootstrap over rows (:func:`bootstrap`), with a generator seeded from the
case's name, so the same data give the same interval; its quantiles are those
of the expanded percentile interval (:func:`tail`), because the plain
percentile interval is too narrow with the few units a claim has (5 seeds: it
covered the truth 81% of the time, measured in ``tests/lab/test_stats.py``).

Verdicts (stated in the report, tested in ``tests/lab/test_stats.py``):

- a **case** is *supported* when its interval lies above the claim's minimum
  effect :math:`\delta`, *contradicted* when it lies below :math:`-\delta`,
  *inconclusive* otherwise; and it is *inconclusive (the control agrees)*
  when the same measure on the control, where the claimed mechanism is
  absent, is supported too: such a measure does not test the claim;
- a case of a claim of **equivalence** (:data:`EQUIVALENCE`: "A does as well
  as B") is *supported* when its whole interval lies within
  :math:`\pm\delta`, the tolerance stated with the claim, *contradicted*
  when the whole interval lies outside it, *inconclusive* otherwise; and
  *inconclusive (the control agrees)* unless its control, where the mechanism
  is absent and a difference is known, comes out *contradicted*: a measure
  that cannot show the known difference cannot vouch for an equivalence;
- a **sub-claim** is *supported* when at least half its cases are supported
  and none contradicted, *contradicted* likewise, *depends* when some cases
  go each way (the report lists which), *inconclusive* otherwise;
- a **claim** is *supported* when every sub-claim is, *contradicted* when
  every decided sub-claim is contradicted, *depends* when its sub-claims
  disagree, *inconclusive* otherwise.

>>> rows = np.array([[2.0, 1.0], [4.0, 2.0], [8.0, 3.0], [6.0, 3.0], [5.0, 2.0]])
>>> effect = lambda t: float(np.mean(np.log(t[:, 0] / t[:, 1])))
>>> estimate = bootstrap(rows, effect, name="demo")
>>> round(estimate.effect, 3), estimate.low > 0
(0.795, True)
>>> case_verdict(estimate, min_effect=0.2)
'supported'
>>> case_verdict(Estimate(0.01, -0.01, 0.03, 5), 0.05, rule=EQUIVALENCE)
'supported'
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from scipy.stats import t as student_t

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
DEPENDS = "depends"
VERDICTS = (SUPPORTED, CONTRADICTED, DEPENDS, INCONCLUSIVE)

#: Bootstrap resamples per interval: enough for a stable 2.5% quantile (Efron and Tibshirani suggest >= 1000).
RESAMPLES = 2000
LEVEL = 0.95

Statistic = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Rule:
    r"""How a case's interval is read against the threshold :math:`\delta` (see the module docstring).

    ``supports(estimate, delta)`` and ``contradicts(estimate, delta)``; ``blind(control, delta)``:
    whether a measured control leaves the measure unable to test the claim (it shows the claimed
    effect too, or, for an equivalence, fails to show the known difference); ``name`` is what
    ``findings.json`` records.
    """

    name: str
    supports: Callable[[Estimate, float], bool]
    contradicts: Callable[[Estimate, float], bool]
    blind: Callable[[Estimate, float], bool]


#: A claimed effect: the interval above the minimum effect supports, below minus it contradicts.
EFFECT = Rule(
    "effect", lambda e, delta: e.low > delta, lambda e, delta: e.high < -delta, lambda c, delta: c.low > delta
)
#: A claimed equivalence: the interval within +-tolerance supports, wholly outside it contradicts.
EQUIVALENCE = Rule(
    "equivalence",
    lambda e, delta: -delta < e.low and e.high < delta,
    lambda e, delta: e.low > delta or e.high < -delta,
    lambda c, delta: not (c.low > delta or c.high < -delta),
)


@dataclass(frozen=True)
class Estimate:
    """An effect, its 95% bootstrap interval, and the number of units it came from.

    ``replicates`` keeps the bootstrap distribution (for pooling cases);
    NaN effects mean the statistic could not be computed (no units).
    """

    effect: float
    low: float
    high: float
    units: int
    replicates: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    @property
    def ci(self) -> tuple[float, float]:
        """The interval as a (low, high) pair."""
        return (self.low, self.high)

    @property
    def measured(self) -> bool:
        """Whether the effect could be computed."""
        return math.isfinite(self.effect)


NOT_MEASURED = Estimate(math.nan, math.nan, math.nan, 0)


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def tail(units: int, df: int | None = None) -> float:
    r"""The quantile level of each end of the 95% interval from ``units`` units: the expanded percentile.

    The percentile bootstrap's distribution of a mean has :math:`\sqrt{(n-1)/n}`
    of the standard error's spread and the normal's tails, where Student's t
    with :math:`n-1` degrees of freedom is right: its 95% interval is too
    narrow with few units. Hesterberg's expanded percentile interval (2015,
    *What Teachers Should Know About the Bootstrap*) reads the bootstrap
    distribution's quantiles at
    :math:`\Phi(-\sqrt{n/(n-1)}\, t_{0.975,\,df})` instead (``df`` is
    :math:`n-1` unless given); NaN for fewer than 2 units, whose interval
    cannot be known.

    >>> [round(tail(n), 4) for n in (5, 10, 20, 1000)]
    [0.001, 0.0086, 0.0159, 0.0248]
    """
    if units < 2:
        return math.nan
    df = units - 1 if df is None else df
    spread = math.sqrt(units / (units - 1)) * float(student_t.ppf(1 - (1 - LEVEL) / 2, df))
    return NormalDist().cdf(-spread)


def bootstrap(rows: np.ndarray, statistic: Statistic, *, name: str, resamples: int = RESAMPLES) -> Estimate:
    """The statistic of ``rows`` and its bootstrap 95% interval, resampling whole rows.

    The interval's ends are the bootstrap distribution's quantiles at
    :func:`tail` and one minus it (the expanded percentile interval).
    Resamples whose statistic is not finite (a ratio over a resample of
    zeros) are left out of the interval; if most are, or there is one unit
    only, the interval is infinite and no verdict can rest on it.
    """
    rows = np.asarray(rows, dtype=float)
    if rows.ndim == 1:
        rows = rows[:, None]
    n = len(rows)
    if n == 0:
        return NOT_MEASURED
    effect = statistic(rows)
    if not math.isfinite(effect):
        return Estimate(math.nan, math.nan, math.nan, n)
    rng = np.random.default_rng(_seed(name))
    picks = rng.integers(0, n, size=(resamples, n))
    replicates = np.array([statistic(rows[p]) for p in picks], dtype=float)
    finite = replicates[np.isfinite(replicates)]
    if n < 2 or len(finite) < 0.9 * resamples:
        return Estimate(effect, -math.inf, math.inf, n, replicates)
    alpha = tail(n)
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return Estimate(float(effect), float(low), float(high), n, replicates)


def pooled(estimates: Sequence[Estimate], *, name: str) -> Estimate:
    """The mean effect over cases, with an interval from their bootstrap distributions.

    Each pooled replicate is the mean of one replicate drawn from every
    case's bootstrap distribution (cases are independent units of their own).
    The interval's ends are the expanded percentile's (:func:`tail`), for the
    smallest case's units and the degrees of freedom of all of them.
    """
    usable = [e for e in estimates if e.measured and len(e.replicates)]
    if not usable:
        return NOT_MEASURED
    rng = np.random.default_rng(_seed(name))
    draws = np.stack([rng.choice(e.replicates, size=RESAMPLES) for e in usable])
    means = draws.mean(axis=0)
    finite = means[np.isfinite(means)]
    effect = float(np.mean([e.effect for e in usable]))
    units = sum(e.units for e in usable)
    fewest = min(e.units for e in usable)
    if fewest < 2 or len(finite) < 0.9 * RESAMPLES:
        return Estimate(effect, -math.inf, math.inf, units)
    alpha = tail(fewest, df=sum(e.units - 1 for e in usable))
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return Estimate(effect, float(low), float(high), units, means)


def case_verdict(
    estimate: Estimate, min_effect: float, control: Estimate | None = None, rule: Rule | None = None
) -> str:
    """A case's verdict from its interval, the threshold, its control and the rule (default :data:`EFFECT`).

    >>> case_verdict(Estimate(1.0, 0.5, 1.5, 5), 0.2)
    'supported'
    >>> case_verdict(Estimate(-1.0, -1.5, -0.5, 5), 0.2)
    'contradicted'
    >>> case_verdict(Estimate(1.0, 0.5, 1.5, 5), 0.2, control=Estimate(1.0, 0.4, 1.6, 5))
    'inconclusive'
    >>> case_verdict(Estimate(0.0, -0.01, 0.01, 5), 0.02, Estimate(0.0, -0.015, 0.01, 5), EQUIVALENCE)
    'inconclusive'
    >>> case_verdict(Estimate(0.0, -0.01, 0.01, 5), 0.02, Estimate(0.3, 0.2, 0.4, 5), EQUIVALENCE)
    'supported'
    """
    rule = rule or EFFECT
    if not estimate.measured:
        return INCONCLUSIVE
    if rule.supports(estimate, min_effect):
        return INCONCLUSIVE if control_agrees(estimate, min_effect, control, rule) else SUPPORTED
    if rule.contradicts(estimate, min_effect):
        return CONTRADICTED
    return INCONCLUSIVE


def control_agrees(
    estimate: Estimate, min_effect: float, control: Estimate | None, rule: Rule | None = None
) -> bool:
    """Whether the case is supported but its control leaves the measure blind (it does not test the claim).

    (The control gives the same support; for an equivalence, it does not show the known difference.)
    """
    rule = rule or EFFECT
    return (
        control is not None
        and estimate.measured
        and control.measured
        and rule.supports(estimate, min_effect)
        and rule.blind(control, min_effect)
    )


def combine_cases(verdicts: Sequence[str]) -> str:
    """A sub-claim's verdict from its cases' (see the module docstring).

    >>> combine_cases(["supported", "supported", "inconclusive"])
    'supported'
    >>> combine_cases(["supported", "contradicted"])
    'depends'
    >>> combine_cases(["supported", "inconclusive", "inconclusive"])
    'inconclusive'
    """
    if not verdicts:
        return INCONCLUSIVE
    yes, no = verdicts.count(SUPPORTED), verdicts.count(CONTRADICTED)
    if yes and no:
        return DEPENDS
    if yes and yes >= len(verdicts) / 2:
        return SUPPORTED
    if no and no >= len(verdicts) / 2:
        return CONTRADICTED
    return INCONCLUSIVE


def combine_subclaims(verdicts: Sequence[str]) -> str:
    """A claim's verdict from its sub-claims' (see the module docstring).

    >>> combine_subclaims(["supported", "supported"]), combine_subclaims(["supported", "contradicted"])
    ('supported', 'depends')
    >>> combine_subclaims(["supported", "inconclusive"]), combine_subclaims(["contradicted", "inconclusive"])
    ('inconclusive', 'contradicted')
    """
    if not verdicts:
        return INCONCLUSIVE
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if SUPPORTED in verdicts and (CONTRADICTED in verdicts or DEPENDS in verdicts):
        return DEPENDS
    if DEPENDS in verdicts:
        return DEPENDS
    if CONTRADICTED in verdicts and SUPPORTED not in verdicts:
        return CONTRADICTED
    return INCONCLUSIVE


# -- statistics used by several claims ------------------------------------------------------


def mean_log_ratio(rows: np.ndarray) -> float:
    """Mean over units of log(column 0 / column 1): 0.69 is "twice as large", paired per unit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log(rows[:, 0] / rows[:, 1])
    return float(np.mean(values)) if np.all(np.isfinite(values)) else math.nan


def mean_difference(rows: np.ndarray) -> float:
    """Mean over units of column 0 minus column 1."""
    return float(np.mean(rows[:, 0] - rows[:, 1]))
