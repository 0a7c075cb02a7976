"""C8, lean optimizer state: the measure on made-up runs whose answer is known, and real runs whose state is lean.

The registry-driven tests (``test_claims.py``) judge C8 supported, contradicted and inconclusive on
made-up runs; here: equivalence within and outside the tolerance by the numbers, the control's known
failure, a case whose lean state did not apply, and that the runs C8 declares really keep lean state.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from claimcases import Setting, _c8, evidence_from, rates_for
from descentlab.lab import plan, stats
from descentlab.lab.claims import CLAIMS, c8_lean, judge
from descentlab.lab.suite import SUITES, get_suite
from descentlab.optim._lean import MIN_ELEMENTS
from descentlab.problems import make_problem
from descentlab.train import Series
from descentlab.train.run import build_optimizer

CLAIM = CLAIMS["C8"]


def _finding(outcomes: dict[str, str], *, control_agrees: bool = False, share: float | None = None):
    suite = get_suite("tiny")
    rates = rates_for(suite, CLAIM)
    runs = CLAIM.runs(suite, rates)
    results = _c8(Setting(suite, outcomes, control_agrees), runs)
    if share is not None:  # the lean runs report this share of the parameters with lean state
        for run, record in results.items():
            if dict(run.hyperparameters).get("lean_state"):
                record.observations["lean-state"] = Series(
                    step=[0, 100], samples=[0, 3200], value=[[0, 0], [share, 8]]
                )
    return {s.id: s for s in judge(CLAIM, evidence_from(suite, rates, results)).subclaims}


def test_the_tolerance_is_stated_with_the_claim_and_every_sub_claim_is_an_equivalence():
    assert c8_lean.TOLERANCE == 0.02
    assert "within 2%" in CLAIM.statement and "0.02" in CLAIM.text
    for sub in CLAIM.subclaims:
        assert sub.min_effect == c8_lean.TOLERANCE and sub.rule.name == "equivalence"


def test_lean_state_within_the_tolerance_is_equivalent_and_outside_it_is_not():
    subs = _finding({"bfloat16": "supported", "8bit": "contradicted"})
    inside, outside = subs["C8.bfloat16"], subs["C8.8bit"]
    assert inside.verdict == "supported" and inside.rule == "equivalence"
    for case in inside.cases:
        assert -0.02 < case.low <= case.effect <= case.high < 0.02, case
        assert case.control_low > 0.02 and not case.control_agrees  # the known failure is seen
    assert outside.verdict == "contradicted"
    assert all(case.low > 0.02 and case.verdict == "contradicted" for case in outside.cases)


def test_an_interval_across_the_tolerance_is_inconclusive():
    sub = _finding({"bfloat16": "inconclusive", "8bit": "supported"})["C8.bfloat16"]
    assert sub.verdict == "inconclusive"
    assert all(case.low < 0.02 < case.high for case in sub.cases)


def test_when_plain_rounding_comes_out_equivalent_too_the_measure_cannot_tell_and_says_so():
    sub = _finding({"bfloat16": "supported", "8bit": "supported"}, control_agrees=True)["C8.bfloat16"]
    assert sub.verdict == "inconclusive"
    assert all(case.control_agrees and case.verdict == "inconclusive" for case in sub.cases)


def test_a_case_whose_lean_runs_kept_no_lean_state_is_not_measured():
    sub = _finding({"bfloat16": "supported", "8bit": "supported"}, share=0.0)["C8.bfloat16"]
    assert sub.verdict == "inconclusive"
    assert all(case.note == "lean state did not apply" and case.units == 0 for case in sub.cases)


def test_the_final_training_loss_is_the_mean_of_the_last_tenth_and_a_diverged_run_has_none():
    from claimcases import record

    assert c8_lean.final_training_loss(record([1.0], train_loss=[5.0] * 90 + [1.0] * 10)) == 1.0
    assert c8_lean.final_training_loss(record([1.0, math.nan], train_loss=[1.0], diverged=True)) == math.inf
    full = [record([1.0], train_loss=[1.0])] * 2
    rows = c8_lean.paired([record([1.0], train_loss=[2.0]), None], full)
    assert rows.tolist() == [[2.0, 1.0], [math.inf, 1.0]]  # a lean run that failed is kept, as inf
    assert math.isnan(stats.bootstrap(rows, stats.mean_log_ratio, name="x").effect)  # so: not supported
    rows = c8_lean.paired([record([1.0], train_loss=[2.0])] * 2, [None, full[0]])
    assert rows.tolist() == [[2.0, 1.0]]  # a seed without full precision's run has nothing to pair


@pytest.mark.parametrize("suite_name", [name for name, suite in SUITES.items() if suite.reads("C8")])
def test_every_problem_c8_reads_has_a_parameter_large_enough_for_lean_state(suite_name):
    suite = get_suite(suite_name)
    for problem in suite.reads("C8"):
        model = make_problem(suite.data(problem).problem, **suite.options(problem)).model(0)
        assert max(p.numel() for p in model.parameters()) >= MIN_ELEMENTS, problem


def test_the_runs_c8_declares_keep_their_state_as_declared():
    """Each form's optimizer, built as the plan configures it, stores the large parameter's state lean."""
    suite = get_suite("tiny")
    rates = rates_for(suite, CLAIM)
    wanted = {
        (): torch.float32,
        c8_lean.FORMS["bfloat16"]: torch.bfloat16,
        c8_lean.FORMS["8bit"]: torch.uint8,
    }
    wanted[c8_lean.PLAIN] = torch.bfloat16
    seen = set()
    for run in CLAIM.runs(suite, rates):
        if run.seed != 1:
            continue
        config = plan.config(suite, run)
        problem = make_problem(config.problem, **config.problem_options)
        model = problem.model(run.seed)
        optimizer = build_optimizer(config.optimizer, model.parameters(), config.hyperparameters)
        x = problem.splits().train
        problem.loss(model(x[0][:8]), *(t[:8] for t in x[1:])).backward()
        optimizer.step()
        (param,) = list(model.parameters())
        assert param.numel() >= MIN_ELEMENTS
        moments = [t for t in optimizer.state[param].values() if t.numel() == param.numel()]
        assert moments and {t.dtype for t in moments} == {wanted[run.hyperparameters]}, run
        seen.add(run.hyperparameters)
    assert seen == set(wanted)


@pytest.mark.slow
def test_real_runs_record_lean_state_and_the_claim_reads_them(tmp_path):
    """The tiny suite's C8, trained for real: every lean run recorded lean state, every case was measured."""
    from descentlab.lab import compare
    from descentlab.lab.executors import SerialExecutor
    from descentlab.lab.store import Store

    suite = get_suite("tiny").restricted(("C8",), None)
    with Store(tmp_path / "lab.sqlite") as store:
        evidence = compare.evidence_of(store, suite, with_formula=False, executor=SerialExecutor())
        for run in CLAIM.runs(suite, evidence.rates):
            record = evidence.get(run)
            share = c8_lean.lean_share(record)
            assert share == (0.0 if not run.hyperparameters else 1.0), (run, share)
        finding = judge(CLAIM, evidence)
    for sub in finding.subclaims:
        assert sub.cases and all(c.units == 5 and np.isfinite(c.effect) for c in sub.cases), sub.cases
        assert all(c.numbers["share of the parameters with lean state"] == "100%" for c in sub.cases)
