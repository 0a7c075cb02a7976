"""The batched 2-D engine: exactly the runs the training loop makes, unit by unit and rate by rate."""

from __future__ import annotations

import numpy as np
import pytest

from descentlab.lab.batch import Batch, run_batch
from descentlab.lab.landscapes import LANDSCAPES, noise_vectors
from descentlab.lab.methods import METHODS
from descentlab.train import Budget, RunConfig, run

TUNED = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "ema-momentum")


@pytest.mark.parametrize("method", TUNED)
def test_a_batched_run_equals_the_training_loops_run_from_each_start(method):
    land = LANDSCAPES["saddle"]  # the registry's saddle: x^2 - y^2 + 0.5 y^4
    starts = land.start_points(3, seed=5)
    lr = 0.05
    batch = run_batch(land, METHODS[method], lrs=(lr,), starts=starts, steps=40)
    spec = METHODS[method]
    for unit, start in enumerate(starts):
        config = RunConfig(
            "saddle", spec.optimizer, {"lr": lr, **spec.hyperparameters}, regime="full-batch",
            budget=Budget(steps=40), problem_options={"n_samples": 1, "start": [float(v) for v in start]},
            observers=("path",),
        )  # fmt: skip
        path = np.asarray(run(config).observations["path"].value)
        np.testing.assert_allclose(batch.positions[:, 0, unit], path, rtol=1e-12, atol=1e-14)


def test_learning_rates_and_units_do_not_interact():
    land = LANDSCAPES["rosenbrock-outliers"]
    starts = land.start_points(6, seed=1)
    noise = noise_vectors(land, "outliers", 0)
    both = run_batch(
        land, METHODS["adam"], lrs=(0.01, 0.03), starts=starts, steps=60, noise=noise, batch_size=20
    )
    one = run_batch(land, METHODS["adam"], lrs=(0.03,), starts=starts, steps=60, noise=noise, batch_size=20)
    np.testing.assert_array_equal(both.positions[:, 1], one.positions[:, 0])


def test_a_diverged_unit_is_frozen_at_nan_and_the_others_go_on():
    land = LANDSCAPES["quadratic2d-noisy"]
    starts = land.start_points(4, seed=0)
    out = run_batch(land, METHODS["sgd"], lrs=(0.001, 0.5), starts=starts, steps=30)
    assert np.isfinite(out.positions[-1, 0]).all()
    assert np.isnan(out.positions[-1, 1]).all()  # 0.5 x curvature 50 diverges
    assert np.isinf(out.final_losses()[1]).all() and np.isfinite(out.final_losses()[0]).all()


def test_a_batch_survives_its_archive():
    land = LANDSCAPES["trap"]
    out = run_batch(land, METHODS["momentum"], lrs=(0.01,), starts=land.start_points(3, 0), steps=10)
    back = Batch.from_bytes(out.to_bytes())
    assert back.lrs == out.lrs
    np.testing.assert_allclose(back.positions, out.positions, rtol=1e-6)  # kept as float32
    np.testing.assert_array_equal(back.losses, out.losses)


def test_the_gaussian_twin_has_the_outliers_exact_covariance_and_lighter_tails():
    land = LANDSCAPES["quadratic2d-outliers"]
    outliers = noise_vectors(land, "outliers", 0)
    twin = noise_vectors(land, "gaussian", 0, match=outliers)
    other = noise_vectors(land, "gaussian", 1, match=outliers)
    np.testing.assert_allclose(
        np.cov(twin.T, bias=True), np.cov(outliers.T, bias=True), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        np.cov(other.T, bias=True), np.cov(outliers.T, bias=True), rtol=1e-10, atol=1e-12
    )
    assert not np.allclose(twin, other)

    def kurtosis(x):
        return float((((x - x.mean(0)) / x.std(0)) ** 4).mean())

    assert kurtosis(outliers) > 2 * kurtosis(twin)


def test_leaving_the_region_is_read_as_declared():
    saddle, trap = LANDSCAPES["saddle"], LANDSCAPES["trap"]
    assert saddle.left(np.array([[0.0, 0.6], [0.0, -0.6], [1.0, 0.1]])).tolist() == [True, True, False]
    assert trap.left(np.array([[-1.0, 0.0], [1.0, 0.0]])).tolist() == [True, False]
    np.testing.assert_array_equal(saddle.start_points(5, 3), saddle.start_points(5, 3))
