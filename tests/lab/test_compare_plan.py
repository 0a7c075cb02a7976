"""Suites, methods, the tuning protocol and the mistaken rules: declared, valid and deterministic."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from descentlab._registry import UnknownNameError
from descentlab.lab import check_config, protocol
from descentlab.lab.methods import METHODS
from descentlab.lab.mistakes import MISTAKES
from descentlab.lab.suite import SUITES, Suite, get_suite
from descentlab.optim import OPTIMIZERS
from descentlab.problems import make_problem
from descentlab.train import HeldOut, RunRecord


@pytest.mark.parametrize("name", list(SUITES))
def test_every_suite_goes_to_json_and_back_and_plans_valid_runs(name):
    suite = get_suite(name)
    assert Suite.from_json(suite.to_json()) == suite
    trials = protocol.tuning_trials(suite)
    for trial in trials:
        check_config(trial.config)  # names, values and options, as a sweep checks them
    # Every tuned method on every problem it runs on, at every grid point, seed 0.
    expected = sum(
        len(suite.lr_grid) for p in suite.problems for m in suite.methods_on(p.problem) if METHODS[m].tuned
    )
    assert len(trials) == expected and {t.seed for t in trials} == {0}
    assert suite.seeds >= 3


def test_the_plan_is_rebuilt_the_same_from_the_same_runs():
    suite = get_suite("tiny")

    def find(trial):  # the middle learning rate wins everywhere
        loss = 1.0 if trial.lr == suite.lr_grid[1] else 2.0
        return SimpleNamespace(record=RunRecord("mini-batch", held_out=HeldOut(loss=[3.0, loss])))

    first, second = protocol.build_plan(suite, find), protocol.build_plan(suite, find)
    assert [t.config for t in first.all_trials()] == [t.config for t in second.all_trials()]
    assert set(first.tuned_lr.values()) == {suite.lr_grid[1]}
    reruns = [t for t in first.seeds if t.method == "sgd" and t.problem == "saddle"]
    assert [t.seed for t in reruns] == list(range(1, suite.seeds))
    matched = [t for t in first.seeds if t.method == "momentum-matched" and t.problem == "saddle"]
    assert [t.seed for t in matched] == list(range(suite.seeds))
    assert all(math.isclose(t.lr, suite.lr_grid[1] * 0.1) for t in matched)
    assert {t.config.hyperparameters["momentum"] for t in matched} == {0.9}


def test_selection_takes_the_lowest_final_loss_and_diverged_runs_count_as_worst():
    def run(loss, diverged=False):
        return SimpleNamespace(
            record=RunRecord("full-batch", held_out=HeldOut(loss=[5.0, loss]), diverged=diverged)
        )

    assert protocol.select_lr([(0.1, run(2.0)), (1.0, run(0.5, diverged=True)), (10.0, None)]) == 0.1
    assert protocol.select_lr([(0.1, run(1.0)), (1.0, run(1.0))]) == 0.1  # ties: the smaller rate
    assert protocol.select_lr([(0.1, run(math.nan)), (1.0, None)]) is None


def test_seeds_above_zero_start_near_the_standard_start_on_surfaces():
    spec = get_suite("default").spec("trap")
    start = make_problem("trap").start_point
    assert "start" not in spec.problem_options(0)
    starts = [spec.problem_options(seed)["start"] for seed in range(1, 5)]
    assert len({tuple(s) for s in starts}) == 4
    for s in starts:
        assert all(abs(a / b - 1) <= spec.start_jitter for a, b in zip(s, start, strict=True))
    assert spec.problem_options(3) == spec.problem_options(3)


def test_restricting_a_suite_checks_names_and_keeps_matched_methods_whole():
    suite = get_suite("tiny")
    small = suite.restricted(("momentum-matched",), ("saddle",))
    assert small.methods == ("sgd", "momentum-matched") and [p.problem for p in small.problems] == ["saddle"]
    assert small.claim_problems["C1"] == () and small.rare_features is None
    # the report and the command's first line say that this is part of the suite
    assert (
        small.summary == f"{suite.summary}; restricted to methods sgd, momentum-matched and problems saddle"
    )
    assert suite.restricted(None, None).summary == suite.summary
    with pytest.raises(UnknownNameError, match="did you mean 'adam'"):
        suite.restricted(("adamm",), None)
    with pytest.raises(UnknownNameError, match="did you mean 'saddle'"):
        suite.restricted(None, ("sadle",))
    with pytest.raises(UnknownNameError, match="did you mean 'default'"):
        get_suite("defualt")


def test_a_suite_refuses_fewer_than_three_seeds_and_unknown_names():
    suite = get_suite("tiny")
    with pytest.raises(ValueError, match="at least 3 seeds"):
        Suite(**{**vars(suite), "seeds": 2})
    with pytest.raises(UnknownNameError):
        Suite(**{**vars(suite), "methods": ("sgd", "nadam")})
    with pytest.raises(UnknownNameError):
        Suite(**{**vars(suite), "claim_problems": {"C9": ()}})


# -- the mistaken rules -----------------------------------------------------------------------------


def one_step(name, w0, grad, lr=0.1, steps=1):
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    opt = MISTAKES[name].build([w], {"lr": lr})
    for _ in range(steps):
        w.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
    return w.detach()


def test_the_mistaken_rules_do_what_their_formulas_say():
    assert one_step("sgd-added", [1.0], [2.0]).item() == pytest.approx(1.2)
    # AdaGrad with momentum: m = 0.9 m + g, s = s + g^2, step m / sqrt(s).
    assert one_step("adagrad-momentum", [0.0], [2.0], steps=2).item() == pytest.approx(
        -0.1 - 0.1 * 3.8 / math.sqrt(8)
    )
    # Adam's first step is lr * sign(g) with bias correction; without the root it is lr / g;
    # without bias correction lr * 0.1 / sqrt(0.001).
    assert one_step("adam-no-sqrt", [0.0], [2.0]).item() == pytest.approx(-0.1 / 2.0, rel=1e-6)
    assert one_step("adam-no-bias-correction", [0.0], [2.0]).item() == pytest.approx(
        -0.1 * 0.1 / math.sqrt(0.001)
    )
    assert math.isnan(one_step("adam-no-eps", [0.0], [0.0]).item())  # 0 / 0 where the gradient is zero
    assert one_step("adam-no-eps", [0.0], [2.0]).item() == pytest.approx(-0.1)


def test_the_mistaken_rules_are_not_optimizers_anyone_can_pick():
    assert not set(MISTAKES) & set(OPTIMIZERS)
    assert {m.correct for m in MISTAKES.values()} <= set(METHODS)
    with pytest.raises(ValueError, match="takes only lr"):
        MISTAKES["adam-no-eps"].build([torch.zeros(1, requires_grad=True)], {"lr": 0.1, "eps": 0.0})


def test_the_readme_counts_the_default_suite_s_runs():
    # What the README says the default comparison plans, computed from the suite: every
    # method's middle rate wins, so each tuned method has a setting to rerun.
    from pathlib import Path

    suite = get_suite("default")

    def find(trial):
        loss = 1.0 if trial.lr == suite.lr_grid[len(suite.lr_grid) // 2] else 2.0
        return SimpleNamespace(record=RunRecord("mini-batch", held_out=HeldOut(loss=[3.0, loss])))

    plan = protocol.build_plan(suite, find)
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    assert (
        f"That is {len(plan.tuning)} tuning runs, {len(plan.seeds)} reruns" in readme
        and f"and {len(plan.checks)} runs of the checks below" in readme
    ), (len(plan.tuning), len(plan.seeds), len(plan.checks))


def test_the_suites_claim_keys_are_the_claims():
    # suite.py names the claims without importing them (claims import the suite)
    from descentlab.lab.claims import CLAIMS
    from descentlab.lab.suite import CLAIM_KEYS

    assert tuple(CLAIMS) == CLAIM_KEYS
