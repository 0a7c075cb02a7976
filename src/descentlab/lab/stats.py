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
  absent, gives the same verdict (supported; or contradicted, where the
  control is a null, the measure reading no effect without the mechanism):
  such a measure does not test the claim. A case is decided only with a measured
  control and at least :data:`MIN_UNITS` units; with fewer, or no control,
  it is *inconclusive*;
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
>>> case_verdict(estimate, min_effect=0.2, control=Estimate(0.0, -0.1, 0.1, 5))
'supported'
>>> case_verdict(Estimate(0.01, -0.01, 0.03, 5), 0.05, Estimate(0.3, 0.2, 0.4, 5), rule=EQUIVALENCE)
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
#: The fewest units a case is decided on: below it the expanded percentile interval is mostly the
#: range of the units themselves (its coverage of a normal mean, measured in tests/lab/test_stats.py:
#: far below 95% with 2 to 4 units).
MIN_UNITS = 5

Statistic = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Rule:
    r"""How a case's interval is read against the threshold :math:`\delta` (see the module docstring).

    ``supports(estimate, delta)`` and ``contradicts(estimate, delta)``; ``blind(control, delta)``:
    whether a measured control leaves a supported case unable to test the claim (it shows the
    claimed effect too, or, for an equivalence, fails to show the known difference);
    ``blind_against(control, delta)``: the same for a contradicted case (the control shows the
    opposite effect too: the measure leans that way whatever the mechanism); ``name`` is what
    ``findings.json`` records.
    """

    name: str
    supports: Callable[[Estimate, float], bool]
    contradicts: Callable[[Estimate, float], bool]
    blind: Callable[[Estimate, float], bool]
    blind_against: Callable[[Estimate, float], bool]


#: A claimed effect: the interval above the minimum effect supports, below minus it contradicts.
EFFECT = Rule(
    "effect",
    lambda e, delta: e.low > delta,
    lambda e, delta: e.high < -delta,
    lambda c, delta: c.low > delta,
    lambda c, delta: c.high < -delta,
)
#: A claimed equivalence: the interval within +-tolerance supports, wholly outside it contradicts
#: (and a control is expected to be outside it: it shows the known difference).
EQUIVALENCE = Rule(
    "equivalence",
    lambda e, delta: -delta < e.low and e.high < delta,
    lambda e, delta: e.low > delta or e.high < -delta,
    lambda c, delta: not (c.low > delta or c.high < -delta),
    lambda c, delta: False,
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
    estimate: Estimate,
    min_effect: float,
    control: Estimate | None = None,
    rule: Rule | None = None,
    *,
    null_control: bool = True,
) -> str:
    """A case's verdict from its interval, the threshold, its control and the rule (default :data:`EFFECT`).

    ``null_control``: the control is a null (the mechanism absent, the measure should read no
    effect either way), so a contradiction it shows too is the measure's own lean and leaves the
    case inconclusive. False for a control that puts another method in the treated one's place: it
    can show only that a support does not come from the mechanism, and a contradiction (the
    treated method does worse) stands whatever it reads.

    >>> control = Estimate(0.0, -0.1, 0.1, 5)
    >>> case_verdict(Estimate(1.0, 0.5, 1.5, 5), 0.2, control)
    'supported'
    >>> case_verdict(Estimate(-1.0, -1.5, -0.5, 5), 0.2, control)
    'contradicted'
    >>> case_verdict(Estimate(1.0, 0.5, 1.5, 5), 0.2, control=Estimate(1.0, 0.4, 1.6, 5))
    'inconclusive'
    >>> case_verdict(Estimate(-1.0, -1.5, -0.5, 5), 0.2, control=Estimate(-1.0, -1.6, -0.4, 5))
    'inconclusive'
    >>> case_verdict(Estimate(-1.0, -1.5, -0.5, 5), 0.2, Estimate(-1.0, -1.6, -0.4, 5), null_control=False)
    'contradicted'
    >>> case_verdict(Estimate(1.0, 0.5, 1.5, 5), 0.2), case_verdict(Estimate(1.0, 0.5, 1.5, 4), 0.2, control)
    ('inconclusive', 'inconclusive')
    >>> case_verdict(Estimate(0.0, -0.01, 0.01, 5), 0.02, Estimate(0.0, -0.015, 0.01, 5), EQUIVALENCE)
    'inconclusive'
    >>> case_verdict(Estimate(0.0, -0.01, 0.01, 5), 0.02, Estimate(0.3, 0.2, 0.4, 5), EQUIVALENCE)
    'supported'
    """
    rule = rule or EFFECT
    if not decidable(estimate, control):
        return INCONCLUSIVE
    if control_agrees(estimate, min_effect, control, rule, null_control=null_control):
        return INCONCLUSIVE
    if rule.supports(estimate, min_effect):
        return SUPPORTED
    if rule.contradicts(estimate, min_effect):
        return CONTRADICTED
    return INCONCLUSIVE


def decidable(estimate: Estimate, control: Estimate | None) -> bool:
    """Whether a case can be decided at all: measured, on at least :data:`MIN_UNITS` units, with a
    measured control (without one nothing shows that the measure can tell the mechanism's absence)."""
    return estimate.measured and estimate.units >= MIN_UNITS and control is not None and control.measured


def control_agrees(
    estimate: Estimate,
    min_effect: float,
    control: Estimate | None,
    rule: Rule | None = None,
    *,
    null_control: bool = True,
) -> bool:
    """Whether the case is decided but its control leaves the measure blind (it does not test the claim).

    (The control gives the same support, or, for a null control, the same contradiction; for an
    equivalence, it does not show the known difference.)
    """
    rule = rule or EFFECT
    if control is None or not (estimate.measured and control.measured):
        return False
    return (rule.supports(estimate, min_effect) and rule.blind(control, min_effect)) or (
        null_control and rule.contradicts(estimate, min_effect) and rule.blind_against(control, min_effect)
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
