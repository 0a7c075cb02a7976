"""Verdicts come from the data: made-up runs where a claim clearly holds or clearly fails flip its verdict."""

from __future__ import annotations

import math

import pytest

from claimcases import fake_evidence
from descentlab.lab import analysis
from descentlab.lab.claims import (
    CLAIMS,
    MIXED,
    NOT_MEASURED,
    NOT_SUPPORTED,
    SUPPORTED,
    Case,
    Finding,
    verdict,
)


@pytest.fixture(scope="module")
def holding():
    return fake_evidence(holds=True)


@pytest.fixture(scope="module")
def failing():
    return fake_evidence(holds=False)


@pytest.mark.parametrize("key", list(CLAIMS))
def test_each_verdict_follows_the_data(key, holding, failing):
    claim = CLAIMS[key]
    yes, no = claim.judge(holding), claim.judge(failing)
    assert yes.verdict == SUPPORTED and yes.measured > 0, yes.cases
    assert no.verdict == NOT_SUPPORTED and no.measured > 0, no.cases


@pytest.mark.parametrize("key", list(CLAIMS))
def test_each_claim_states_its_rule_and_is_judged_under_its_neighbours(key, holding):
    claim = CLAIMS[key]
    findings = claim.judge_all(holding)
    assert [f.label for f in findings] == ["as declared"] + [label for label, _ in claim.neighbours]
    assert len(claim.neighbours) >= 2
    for finding, (_, changes) in zip(findings[1:], claim.neighbours, strict=True):
        assert {**claim.params, **changes} == finding.params
        assert finding.rule != findings[0].rule  # the changed parameter shows in the rule's text
    assert "{" not in claim.measure_text(claim.params) and "{" not in claim.rule_text(claim.params)
    for case in findings[0].cases:
        assert case.numbers and case.holds is not None


def test_the_shared_verdict_rule():
    cases = [Case(str(i), h) for i, h in enumerate([True, True, False])]
    assert verdict(cases) == (SUPPORTED, 2, 3)
    assert verdict([Case("a", True), Case("b", False)])[0] == MIXED
    assert verdict([Case("a", True), *[Case(str(i), False) for i in range(2)]])[0] == NOT_SUPPORTED
    assert verdict([Case("a", None)]) == (NOT_MEASURED, 0, 0)
    assert verdict([Case("a", True), Case("b", None)]) == (SUPPORTED, 1, 1)


def test_a_mixed_finding_says_on_what_it_depends():
    cases = (Case("saddle", True), Case("trap", False), Case("beale", None))
    finding = Finding("as declared", {}, "rule", cases, MIXED, 1, 2)
    assert finding.depends_on() == "it holds for saddle; it does not for trap"
    assert Finding("x", {}, "r", cases[:1], SUPPORTED, 1, 1).depends_on() == ""


def test_sensitivity_counts_kept_improvement_not_a_ratio_to_the_best_loss():
    # The best loss is below zero: "within a factor of the best loss" would make no sense.
    grid = [(0.01, -0.35), (0.1, -0.49), (1.0, -0.50), (10.0, math.inf)]
    assert analysis.good_lrs(grid, start=0.5, keep=0.9) == [0.1, 1.0]
    assert analysis.good_lrs(grid, start=0.5, keep=0.5) == [0.01, 0.1, 1.0]
    assert analysis.good_lrs([(1.0, math.inf)], start=1.0, keep=0.5) == []


def test_roughness_and_crossings():
    assert analysis.roughness([3, 2, 1]) == 1.0
    assert analysis.roughness([3, 1, 2, 1]) == pytest.approx(2.0)
    assert analysis.roughness([1, 2]) == math.inf
    assert analysis.median([1.0, 2.0, math.inf, math.inf]) == math.inf


def test_performance_profiles_count_problems_within_tau_of_the_best():
    costs = {"p": {"a": 1.0, "b": 2.0}, "q": {"a": 4.0, "b": 1.0}, "r": {"a": math.inf, "b": math.inf}}
    profile = analysis.performance_profile(costs, [1.0, 2.0, 4.0])
    assert profile["a"] == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    assert profile["b"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
