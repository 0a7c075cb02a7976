"""Verdicts come from the data: made-up evidence in which a sub-claim is supported, contradicted or
inconclusive gets that verdict, for every sub-claim of every claim in the registry.

The made-up runs are in ``tests/claimcases.py``; a claim that reads a run it does not declare fails there.
"""

from __future__ import annotations

import numpy as np
import pytest

from claimcases import MAKERS, OUTCOMES, escape_batch, evidence_from, made_up, rates_for, rng
from descentlab.lab.claims import CLAIMS, judge
from descentlab.lab.stats import Estimate
from descentlab.lab.suite import get_suite

SUBCLAIMS = [(claim.id, sub.id) for claim in CLAIMS.values() for sub in claim.subclaims]


def _ids(case: tuple[str, str]) -> str:
    return ".".join(case)


def _supports(claim_id: str, sub, low: float, high: float, effect: float = 0.0) -> bool:
    """Whether an interval supports sub-claim ``sub`` (a finding) by its rule: an effect, or an equivalence."""
    rule = next(s.rule for s in CLAIMS[claim_id].subclaims if sub.id == f"{claim_id}.{s.id}")
    return rule.supports(Estimate(effect, low, high, 5), sub.min_effect)


def test_every_claim_and_sub_claim_has_made_up_evidence():
    assert set(MAKERS) == set(CLAIMS), "a claim without made-up runs in tests/claimcases.py"
    for claim in CLAIMS.values():
        assert set(MAKERS[claim.id][1]) == {s.id for s in claim.subclaims}, claim.id


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("key", SUBCLAIMS, ids=_ids)
def test_a_sub_claims_verdict_follows_the_made_up_evidence(key, outcome):
    claim_id, sub_id = key
    claim = CLAIMS[claim_id]
    # The claim's other sub-claims are made up to go another way: each is judged on its own measure.
    other = OUTCOMES[(OUTCOMES.index(outcome) + 1) % len(OUTCOMES)]
    outcomes = {s.id: outcome if s.id == sub_id else other for s in claim.subclaims}
    finding = judge(claim, made_up(claim, outcomes))
    for sub in finding.subclaims:
        wanted = outcomes[sub.id.split(".", 1)[1]]
        assert sub.verdict == wanted, (sub.id, sub.cases)
        assert sub.cases and all(c.verdict == wanted for c in sub.cases), (sub.id, sub.cases)
        assert not any(c.control_agrees for c in sub.cases)
        for case in sub.cases:
            assert case.low <= case.effect <= case.high and case.units >= 3, case
            assert not _supports(claim_id, sub, case.control_low, case.control_high), case  # controls do not
        assert any(c.low < c.high for c in sub.cases), f"{sub.id}: every interval has zero width"


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("claim_id", list(CLAIMS))
def test_a_claims_verdict_follows_its_sub_claims(claim_id, outcome):
    assert judge(CLAIMS[claim_id], made_up(claim_id, outcome)).verdict == outcome


@pytest.mark.parametrize("key", SUBCLAIMS, ids=_ids)
def test_a_case_is_inconclusive_when_its_control_agrees(key):
    """The treatment is supported, but the control, where the mechanism is absent, equally so."""
    claim_id, sub_id = key
    finding = judge(CLAIMS[claim_id], made_up(claim_id, "supported", control_agrees=True))
    sub = next(s for s in finding.subclaims if s.id == f"{claim_id}.{sub_id}")
    assert sub.verdict == "inconclusive"
    for case in sub.cases:
        assert _supports(claim_id, sub, case.low, case.high), case
        assert _supports(claim_id, sub, case.control_low, case.control_high), case
        assert case.verdict == "inconclusive" and case.control_agrees, case


# -- C3, with the made-up paths written out ----------------------------------------------------------


def _c3(times) -> dict:
    """C3's finding when ``times(method, landscape)`` gives each start's updates to leave the region (inf: never)."""
    suite, claim = get_suite("tiny"), CLAIMS["C3"]
    rates = rates_for(suite, claim)
    runs = claim.runs(suite, rates)
    results = {r: escape_batch(suite, r.landscape, r.lrs[0], times(r.method, r.landscape)) for r in runs}
    finding = judge(claim, evidence_from(suite, rates, results))
    return {s.id: s for s in finding.subclaims}


def _leaves(*names: str) -> np.ndarray:
    return rng("C3 test", *names).integers(3, 9, get_suite("tiny").starts).astype(float)


def test_c3_is_supported_when_plain_descent_never_leaves_the_saddle_and_momentum_always_does():
    def times(method: str, land: str) -> np.ndarray:
        if land.endswith("-control"):  # no saddle: both leave alike
            return _leaves(land)
        return np.full(get_suite("tiny").starts, np.inf) if method == "sgd" else _leaves(method, land)

    tuned = _c3(times)["C3.tuned"]
    assert tuned.verdict == "supported"
    for case in tuned.cases:
        assert case.verdict == "supported" and not case.control_agrees
        assert case.numbers["left the region, plain"] == "0/20"
        assert case.numbers["left the region, momentum"] == "20/20"


@pytest.mark.parametrize(
    "alike",
    [
        pytest.param(lambda method, land: _leaves(method, land), id="both-leave"),
        pytest.param(lambda method, land: np.full(get_suite("tiny").starts, np.inf), id="neither-leaves"),
    ],
)
def test_c3_is_not_supported_when_plain_descent_and_momentum_leave_alike(alike):
    subs = _c3(alike)
    for sub in subs.values():
        assert sub.verdict == "inconclusive", sub.cases
        assert all(c.verdict == "inconclusive" and c.low <= sub.min_effect for c in sub.cases)
