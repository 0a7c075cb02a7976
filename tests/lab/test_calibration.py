"""Calibration: every check passes on descentlab's optimizers, and each fails on a wrong optimizer or prediction."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from descentlab.lab import calibration as cal
from descentlab.optim import SGD, Adam, RMSprop

IDS = [
    "gd-stability",
    "heavy-ball-stability",
    "gd-rate",
    "heavy-ball-rate",
    "adam-large-eps",
    "wilson-separable",
]


def ema_momentum(beta):
    """SGD with EMA momentum and no bias correction: Polyak's alpha is lr x (1 - beta), not lr."""
    return lambda params, lr: SGD(params, lr=lr, momentum=beta, momentum_form="ema", foreach=False)


@pytest.fixture(scope="module")
def checks():
    return cal.calibrate()


@pytest.fixture(scope="module")
def quick():
    return cal.calibrate(quick=True)


@pytest.mark.slow  # the fast loop runs the quick checks (same tolerances, shorter runs)
def test_every_check_passes_at_the_defaults(checks):
    assert [c.id for c in checks] == IDS
    failed = [f"{c.id}: {c.detail}" for c in checks if not c.passed]
    assert not failed, failed
    for c in checks:
        assert math.isfinite(c.measured) and c.title and c.criterion and c.source and c.detail.endswith(".")


@pytest.mark.slow
def test_the_measurements_are_the_theory_to_its_stated_precision(checks):
    by_id = {c.id: c for c in checks}
    assert by_id["gd-stability"].measured == pytest.approx(2, rel=1e-6)
    assert by_id["heavy-ball-stability"].measured == pytest.approx(3.8, rel=1e-6)
    assert by_id["gd-rate"].measured == pytest.approx(99 / 101, rel=1e-6)
    # the double roots' t prefactor, measured over steps 1000-2000: r x 2**(1/1000)
    assert by_id["heavy-ball-rate"].measured == pytest.approx(9 / 11 * 2 ** (1 / 1000), rel=1e-5)
    assert 0 < by_id["adam-large-eps"].measured < by_id["adam-large-eps"].tolerance <= cal.LARGE_EPS
    assert by_id["wilson-separable"].measured == pytest.approx(by_id["wilson-separable"].predicted)
    assert by_id["wilson-separable"].predicted > 0.4  # "close to half"


def test_quick_mode_runs_and_passes(quick):
    assert [c.id for c in quick] == IDS
    assert all(c.passed for c in quick), [c.detail for c in quick if not c.passed]


def test_calibration_is_deterministic_and_leaves_the_global_generators_alone():
    states = random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state()
    first = cal.calibrate(quick=True)
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.random.get_rng_state(), states[2])
    assert cal.calibrate(quick=True) == first


def test_to_data_is_strict_json_with_the_pass_key(quick):
    for c in quick:
        data = c.to_data()
        assert {"id", "predicted", "measured", "pass", "tolerance", "criterion", "detail", "source"} <= set(
            data
        )
        assert data["pass"] is c.passed and "passed" not in data
        assert json.loads(json.dumps(data, allow_nan=False)) == data
    never = cal.gd_stability(build=lambda params, lr: SGD(params, lr=0.0), quick=True)
    assert never.measured == math.inf and not never.passed
    assert never.to_data()["measured"] == "inf"


# Each measurement fails when what it measures is not what theory describes.


def test_stability_fails_for_another_rule_or_prediction():
    # heavy ball 0.5 as "plain descent": its boundary is 2 + 2 x 0.5
    other = cal.gd_stability(build=cal.heavy_ball(0.5), quick=True)
    assert other.measured == pytest.approx(3.0, rel=1e-6) and not other.passed
    assert not cal.gd_stability(predicted=2.01, quick=True).passed
    # the EMA form: alpha = lr (1 - beta), so the boundary in lr x lambda is 2(1 + beta)/(1 - beta) = 38
    ema = cal.heavy_ball_stability(build=ema_momentum(0.9), quick=True)
    assert ema.measured == pytest.approx(38, rel=1e-6) and not ema.passed
    assert cal.heavy_ball_stability(beta=0.5, quick=True).passed
    assert not cal.heavy_ball_stability(predicted=2.0, quick=True).passed


def test_rates_fail_for_another_rule_or_prediction():
    half = cal.gd_rate(build=lambda params, lr: cal.plain_descent(params, lr / 2), quick=True)
    assert half.measured == pytest.approx(1 - 1 / 101, rel=1e-3) and not half.passed  # slower: 1 - mu lr/2
    assert not cal.gd_rate(predicted=0.97, quick=True).passed
    beta = (9 / 11) ** 2
    assert not cal.heavy_ball_rate(build=ema_momentum(beta), quick=True).passed
    diverged = cal.heavy_ball_rate(build=cal.plain_descent, quick=True)  # lr x L = 3.3 > 2
    assert diverged.measured > 1 and not diverged.passed
    # the t prefactor is inside the tolerance, but a rate 1% off is not
    assert not cal.heavy_ball_rate(predicted=9 / 11 * 0.99, quick=True).passed


def test_adam_large_eps_fails_against_another_momentum_or_a_small_eps():
    heavy = cal.adam_large_eps(reference=lambda p, lr: SGD(p, lr=lr, momentum=0.9, foreach=False), quick=True)
    assert heavy.measured > 0.1 and not heavy.passed
    # without the bias correction the EMA's first steps are short: the paths part
    no_debias = cal.adam_large_eps(reference=ema_momentum(0.9), quick=True)
    assert no_debias.measured > 100 * no_debias.tolerance and not no_debias.passed
    # at eps ~ |g| Adam is not momentum SGD, and G/eps is too large to call epsilon large
    small = cal.adam_large_eps(eps=1.0, quick=True)
    assert small.tolerance > cal.LARGE_EPS and not small.passed
    assert cal.adam_large_eps(eps=1e3, quick=True).passed
    assert not cal.adam_large_eps(predicted=0.01, quick=True).passed


def test_wilson_fails_when_the_baseline_is_adaptive_or_an_adaptive_method_has_not_fitted():
    adam_baseline = cal.wilson_separable(baseline=lambda p: Adam(p, lr=1e-3, foreach=False), quick=True)
    assert adam_baseline.measured == 0 and not adam_baseline.passed
    sgd_as_adaptive = cal.wilson_separable(
        adaptive={"SGD": lambda p: SGD(p, lr=0.3, foreach=False)}, quick=True
    )
    assert sgd_as_adaptive.measured == 0 and not sgd_as_adaptive.passed
    # RMSprop at 1e-2 labels the test set as predicted but circles the interpolant: not the claim's setting
    loose = cal.wilson_separable(
        adaptive={"RMSprop": lambda p: RMSprop(p, lr=1e-2, foreach=False)}, quick=True
    )
    assert loose.measured == pytest.approx(loose.predicted) and not loose.passed
    assert not cal.wilson_separable(predicted=0.2, quick=True).passed


def test_wilson_refuses_a_label_probability_without_both_classes():
    for p in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"p must be in \(0, 1\); received p="):
            cal.wilson_separable(p=p, quick=True)
