"""C4 on the real engine: a smaller step without momentum is not damping, whatever it does to the path."""

from __future__ import annotations

from dataclasses import replace

from descentlab.lab import compare
from descentlab.lab.claims import CLAIMS, judge
from descentlab.lab.methods import Method
from descentlab.lab.store import Store
from descentlab.lab.executors import SerialExecutor
from descentlab.lab.suite import get_suite


def test_plain_sgd_at_a_tenth_of_the_step_in_momentums_place_is_not_supported(tmp_path):
    # In momentum's role: plain SGD at SGD's tuned rate x 0.1 (what momentum-matched runs at), no momentum.
    smaller = Method("smaller-step", "sgd", summary="plain SGD at a tenth of the tuned step",
                     roles=("momentum-matched",), matched_to="sgd", lr_factor=0.1)  # fmt: skip
    suite = get_suite("tiny").restricted(("C4",), None)
    suite = replace(suite, methods_only=("sgd",), steps={**suite.steps, "quadratic2d-outliers": 300}, variants=())
    suite = suite.with_methods((smaller,))
    with Store(tmp_path / "lab.sqlite") as store:
        evidence = compare.evidence_of(store, suite, with_formula=False, executor=SerialExecutor())
    finding = judge(CLAIMS["C4"], evidence)
    cases = [c for s in finding.subclaims for c in s.cases]
    assert cases and all(c.units >= 20 for c in cases)
    # the smaller step does shrink the path's deviation (so a measure of raw spread would call it damping) ...
    assert all("smaller-step" in c.label for c in cases)
    for sub in finding.subclaims:
        assert sub.verdict != "supported", (sub.id, [(c.effect, c.low, c.high) for c in sub.cases])
