"""run() builds each problem's data once per process: equal options share one (immutable) problem."""

from __future__ import annotations

from descentlab.train import Budget, RunConfig, run
from descentlab.train.run import built_problem


def test_equal_options_share_one_problem_and_other_options_do_not():
    a = built_problem("sparse-logreg", {"n_train": 50, "n_test": 50})
    assert built_problem("sparse-logreg", {"n_test": 50, "n_train": 50}) is a
    assert built_problem("sparse-logreg", {"n_train": 60, "n_test": 50}) is not a
    assert built_problem("saddle", {"start": [1.0, 0.5]}).start_point == (1.0, 0.5)


def test_a_shared_problem_gives_the_same_records_as_a_fresh_one():
    config = RunConfig("sparse-logreg", "adam", {"lr": 0.01}, budget=Budget(epochs=1),
                       problem_options={"n_train": 64, "n_test": 64})  # fmt: skip
    first, second = run(config), run(config)  # the second reuses the first's data
    assert first.held_out.loss == second.held_out.loss and first.train_loss == second.train_loss
