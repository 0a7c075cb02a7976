"""The lab's statistics: bootstrap intervals that cover, verdict rules as stated, pooling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from descentlab.lab import stats


def _coverage(units: int) -> tuple[float, float]:
    """How often the interval (expanded percentile, and plain percentile) of a paired mean holds the
    truth: 400 data sets of paired units whose true mean difference is 0.3."""
    rng = np.random.default_rng(7)
    hits = plain = 0
    trials = 400
    for i in range(trials):
        a = rng.normal(1.3, 1.0, units)
        b = a - 0.3 + rng.normal(0, 0.5, units)
        estimate = stats.bootstrap(np.column_stack([a, b]), stats.mean_difference, name=f"coverage-{i}")
        hits += estimate.low <= 0.3 <= estimate.high
        low, high = np.quantile(estimate.replicates, [0.025, 0.975])
        plain += low <= 0.3 <= high
    return hits / trials, plain / trials


@pytest.mark.parametrize("units", [5, 10, 20])
def test_the_bootstrap_interval_of_a_paired_mean_covers_the_truth_about_95_percent_of_the_time(units):
    expanded, plain = _coverage(units)
    assert 0.88 <= expanded <= 0.98
    if units == 5:  # what the test guards against: the plain percentile interval is too narrow here
        assert plain < 0.86
    # the documentation quotes what this measures
    lab = (Path(__file__).parents[2] / "docs" / "lab.md").read_text()
    assert f" {100 * expanded:g}%" in " ".join(lab.split())


@pytest.mark.parametrize("units", [2, 3, 4])
def test_with_fewer_than_5_units_the_interval_covers_too_seldom_and_no_case_is_decided(units):
    expanded, _ = _coverage(units)
    assert expanded < 0.88
    lab = " ".join((Path(__file__).parents[2] / "docs" / "lab.md").read_text().split())
    assert f"{units} units {100 * expanded:g}%" in lab
    assert stats.MIN_UNITS == 5
    decided = stats.Estimate(1.0, 0.5, 1.5, units)
    assert stats.case_verdict(decided, 0.1, stats.Estimate(0.0, -0.1, 0.1, 5)) == "inconclusive"


def test_one_unit_gives_no_interval():
    estimate = stats.bootstrap(np.array([[2.0, 1.0]]), stats.mean_difference, name="one")
    assert estimate.effect == 1.0 and (estimate.low, estimate.high) == (-np.inf, np.inf)
    assert stats.case_verdict(estimate, 0.1, stats.Estimate(0.0, -0.1, 0.1, 5)) == "inconclusive"


def test_the_interval_is_deterministic_and_narrows_with_more_units():
    rng = np.random.default_rng(1)
    small = rng.normal(0.5, 1, (10, 1))
    large = rng.normal(0.5, 1, (200, 1))

    def mean(rows):
        return float(rows[:, 0].mean())

    once = stats.bootstrap(small, mean, name="x")
    again = stats.bootstrap(small, mean, name="x")
    assert (once.low, once.high) == (again.low, again.high)
    wide, narrow = once.high - once.low, (lambda e: e.high - e.low)(stats.bootstrap(large, mean, name="x"))
    assert narrow < wide / 2


NEUTRAL = (0.0, -0.05, 0.05)  # a control that shows no effect either way


@pytest.mark.parametrize(
    ("interval", "control", "verdict"),
    [
        ((0.5, 0.3, 0.7), NEUTRAL, "supported"),
        ((0.5, 0.05, 0.7), NEUTRAL, "inconclusive"),  # the interval reaches below the minimum effect
        ((-0.5, -0.7, -0.3), NEUTRAL, "contradicted"),
        ((0.0, -0.05, 0.05), (0.01, -0.04, 0.06), "inconclusive"),  # a tie is never support
        ((0.5, 0.3, 0.7), (0.5, 0.3, 0.7), "inconclusive"),  # the control agrees: no test of the claim
        ((-0.5, -0.7, -0.3), (-0.5, -0.7, -0.3), "inconclusive"),  # so it does for a contradiction
        ((-0.5, -0.7, -0.3), (0.5, 0.3, 0.7), "contradicted"),  # the control leans the other way
        ((0.5, 0.3, 0.7), None, "inconclusive"),  # no control: nothing shows the measure can tell
        ((-0.5, -0.7, -0.3), None, "inconclusive"),
        ((0.5, 0.3, 0.7), (float("nan"),) * 3, "inconclusive"),  # a control that could not be measured
    ],
)
def test_case_verdicts_follow_the_stated_rule(interval, control, verdict):
    estimate = stats.Estimate(*interval, units=10)
    ctrl = stats.Estimate(*control, units=10) if control else None
    assert stats.case_verdict(estimate, 0.1, ctrl) == verdict
    agrees = stats.control_agrees(estimate, 0.1, ctrl)
    assert agrees == (control is not None and control == interval)


KNOWN = (0.3, 0.2, 0.4)  # a control that shows the known difference


@pytest.mark.parametrize(
    ("interval", "control", "verdict"),
    [
        ((0.01, -0.02, 0.04), KNOWN, "supported"),  # the whole interval within the tolerance 0.05
        ((0.0, -0.06, 0.06), KNOWN, "inconclusive"),  # too wide to tell: not equivalent, not different
        ((0.04, 0.03, 0.08), KNOWN, "inconclusive"),  # straddles the tolerance
        ((0.2, 0.1, 0.3), KNOWN, "contradicted"),  # wholly outside: lean worse
        ((-0.2, -0.3, -0.1), KNOWN, "contradicted"),  # wholly outside the other way
        ((0.2, 0.1, 0.3), (0.2, 0.1, 0.3), "contradicted"),  # a control outside too is what it should be
        ((0.01, -0.02, 0.04), (0.04, 0.02, 0.07), "inconclusive"),  # not shown: the control straddles it
        ((0.01, -0.02, 0.04), (0.0, -0.01, 0.01), "inconclusive"),  # the control is equivalent too
        ((0.01, -0.02, 0.04), None, "inconclusive"),  # no control: the known difference is not shown
        ((0.01, -0.02, 0.04), (float("nan"),) * 3, "inconclusive"),  # nor with a control not measured
    ],
)
def test_equivalence_verdicts_follow_the_stated_rule(interval, control, verdict):
    estimate = stats.Estimate(*interval, units=5)
    ctrl = stats.Estimate(*control, units=5) if control else None
    assert stats.case_verdict(estimate, 0.05, ctrl, stats.EQUIVALENCE) == verdict
    agrees = stats.control_agrees(estimate, 0.05, ctrl, stats.EQUIVALENCE)
    # blind: an interval within the tolerance whose measured control does not show the difference
    assert agrees == (
        verdict == "inconclusive" and interval == (0.01, -0.02, 0.04) and ctrl is not None and ctrl.measured
    )


@pytest.mark.parametrize(
    ("cases", "verdict"),
    [
        (["supported"] * 3, "supported"),
        (["supported", "supported", "inconclusive", "inconclusive"], "supported"),
        (["supported", "inconclusive", "inconclusive"], "inconclusive"),
        (["supported", "contradicted", "supported"], "depends"),
        (["contradicted", "contradicted", "inconclusive"], "contradicted"),
        ([], "inconclusive"),
    ],
)
def test_sub_claim_verdicts_combine_cases_as_stated(cases, verdict):
    assert stats.combine_cases(cases) == verdict


@pytest.mark.parametrize(
    ("subs", "verdict"),
    [
        (["supported", "supported"], "supported"),
        (["supported", "inconclusive"], "inconclusive"),
        (["supported", "contradicted"], "depends"),
        (["contradicted", "inconclusive"], "contradicted"),
        (["depends", "inconclusive"], "depends"),
    ],
)
def test_claim_verdicts_combine_sub_claims_as_stated(subs, verdict):
    assert stats.combine_subclaims(subs) == verdict


def test_pooling_averages_cases_and_keeps_their_uncertainty():
    rng = np.random.default_rng(3)
    a = stats.bootstrap(rng.normal(1.0, 0.2, (30, 1)), lambda r: float(r.mean()), name="a")
    b = stats.bootstrap(rng.normal(3.0, 0.2, (30, 1)), lambda r: float(r.mean()), name="b")
    pooled = stats.pooled([a, b], name="ab")
    assert pooled.effect == pytest.approx((a.effect + b.effect) / 2)
    assert pooled.low < pooled.effect < pooled.high
    assert stats.pooled([], name="none").measured is False


def test_no_units_is_not_measured_and_an_undefined_statistic_gives_no_interval():
    assert not stats.bootstrap(np.zeros((0, 2)), stats.mean_difference, name="e").measured
    zeros = np.zeros((5, 2))
    assert not stats.bootstrap(zeros, stats.mean_log_ratio, name="z").measured  # log(0/0)
