"""Verdicts come from the data: made-up evidence in which a sub-claim is supported, contradicted or
inconclusive gets that verdict, for every sub-claim of every claim in the registry.

The made-up runs are in ``tests/claimcases.py``; a claim that reads a run it does not declare fails there.
"""

from __future__ import annotations

import numpy as np
import pytest

from claimcases import MAKERS, OUTCOMES, escape_batch, evidence_from, made_up, rates_for, rng
from descentlab.i18n import Catalogue
from descentlab.lab import stats
from descentlab.lab.claims import CLAIMS, judge
from descentlab.lab.claims._base import Case, Claim, SubClaim
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


@pytest.mark.parametrize("key", SUBCLAIMS, ids=_ids)
def test_a_contradiction_its_null_control_shows_too_is_not_a_verdict(key):
    """The treatment goes against the claim, and so does the control: where the control is a null
    (the mechanism absent), the measure leans that way by itself and the case is inconclusive; where
    it puts another method in the treated one's place (C6, C7), the contradiction stands; an
    equivalence's control is meant to show a difference, so it stands there too."""
    claim_id, sub_id = key
    declared = next(s for s in CLAIMS[claim_id].subclaims if s.id == sub_id)
    finding = judge(CLAIMS[claim_id], made_up(claim_id, "contradicted", control_agrees=True))
    sub = next(s for s in finding.subclaims if s.id == f"{claim_id}.{sub_id}")
    stands = not declared.null_control or declared.rule is stats.EQUIVALENCE
    assert sub.verdict == ("contradicted" if stands else "inconclusive"), (sub.id, sub.cases)
    assert all(case.control_agrees != stands for case in sub.cases), sub.cases
    assert {c.id for c in CLAIMS.values() for s in c.subclaims if not s.null_control} == {"C6", "C7"}


def _one_case_claim(case: Case) -> Claim:
    sub = SubClaim("x", "s", "m", "e", "c", 0.1, stats.mean_difference, lambda ev: [case])
    return Claim("CX", "t", "s", "src", (), (sub,), lambda suite: [], lambda suite, rates: [])


@pytest.mark.parametrize(
    ("units", "control", "note"),
    [
        (5, None, "no control measured: not decided"),
        (5, "unmeasured", "no control measured: not decided"),
        (4, "flat", "4 units, fewer than 5: not decided"),
        (5, "flat", ""),
    ],
)
def test_a_case_without_a_control_or_with_too_few_units_is_not_decided_and_says_why(units, control, note):
    treated = np.column_stack([np.linspace(1.0, 1.2, units), np.zeros(units)])  # an effect of about 1.1
    table = {
        None: None,
        "unmeasured": np.zeros((0, 2)),
        "flat": np.column_stack([np.linspace(0, 0.01, units), np.zeros(units)]),
    }[control]
    finding = judge(_one_case_claim(Case("p", treated, table)), evidence=None)
    (case,) = finding.subclaims[0].cases
    assert case.low > 0.1, "the effect alone would support"
    assert (case.verdict, case.note) == ("supported" if not note else "inconclusive", note)
    zh = Catalogue("descentlab.lab", "zh")
    assert not note or zh.translate(note) != note, "the note reads in Chinese too"


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


# -- runs left out are counted ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim_id", "method", "wanted"), [("C5", "sgd", "1/5 / 0/5"), ("C6", "rmsprop", "0/5 / 1/5 / 0/5")]
)
def test_a_claim_that_leaves_a_diverged_run_out_says_how_many_it_left(claim_id, method, wanted):
    made = made_up(claim_id, "supported")
    # The first judged run of ``method`` on the first problem diverges: its seed drops out of the case.
    gone = next(r for r in made.runs if getattr(r, "method", None) == method and not r.options)
    evidence = evidence_from(
        made.suite, made.rates, {r: (None if r == gone else made.get(r)) for r in made.runs}
    )
    for sub in judge(CLAIMS[claim_id], evidence).subclaims:
        case = sub.cases[0]
        label = next(k for k in case.numbers if k.startswith("runs diverged or failed"))
        assert case.numbers[label] == wanted, (sub.id, case.numbers)
        assert case.units == made.suite.seeds - 1, sub.id
        assert Catalogue("descentlab.lab", "zh").translate(label) != label
