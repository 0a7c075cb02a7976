"""The plan: pure functions of the suite and the tuned rates; suites, variations and the user's methods."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

from descentlab.lab import compare, plan
from descentlab.lab.claims import CLAIMS
from descentlab.lab.methods import load_methods, parse_method
from descentlab.lab.plan import DataRun, SurfaceRun, Tune
from descentlab.lab.suite import SUITES, VARIANTS, get_suite
from descentlab.problems import make_problem


def _rates(suite, lr=0.1):
    return {t: lr for t in compare._tunes(suite, True)}


@pytest.mark.parametrize("name", list(SUITES))
def test_the_plan_is_a_pure_function_of_the_suite_and_the_rates(name):
    suite = get_suite(name)
    tunes = compare._tunes(suite, True)
    assert plan.tuning(suite, tunes) == plan.tuning(suite, tunes)
    assert compare._judging(suite, _rates(suite), True) == compare._judging(suite, _rates(suite), True)
    assert compare._judging(suite, _rates(suite, 0.2), True) != compare._judging(suite, _rates(suite), True)


@pytest.mark.parametrize("name", list(SUITES))
def test_tuning_and_judging_never_share_a_seed_or_a_set_of_starts(name):
    suite = get_suite(name)
    tuning = plan.tuning(suite, compare._tunes(suite, True))
    judging = compare._judging(suite, _rates(suite), True)
    assert {r.seed for r in tuning if isinstance(r, DataRun)} == {suite.tuning_seed}
    assert suite.tuning_seed not in {r.seed for r in judging if isinstance(r, DataRun)}
    # (a suite without 2-D surfaces, such as lean, has no starts to keep apart)
    assert {r.units for r in tuning if isinstance(r, SurfaceRun)} == ({"tune"} if suite.steps else set())
    assert {r.units for r in judging if isinstance(r, SurfaceRun)} == ({"judge"} if suite.steps else set())
    # every run reads the held-out split in halves: validation for tuning, test for the verdicts
    assert {plan.config(suite, r).held_out for r in tuning + judging if isinstance(r, DataRun)} == {"split"}


def test_every_claim_and_variation_of_the_default_suite_has_runs():
    suite = get_suite("default")
    assert set(suite.claims()) == set(CLAIMS)
    for variant in suite.variants:
        other = suite.variant(variant)
        assert compare._judging(other, _rates(other), False), variant
    assert set(suite.variants) == set(VARIANTS)
    assert suite.seeds >= 5 and suite.starts >= 20 and suite.grid_seeds >= 5


def test_the_variations_change_what_they_say():
    suite = get_suite("default")
    shifted = suite.variant("grid-shift").grid
    assert all(math.isclose(b / a, 10**0.25, rel_tol=0.01) for a, b in zip(suite.grid, shifted, strict=True))
    assert suite.variant("budget").data("sparse-logreg").budget("mini-batch", 2).epochs == 20
    assert plan.config(suite.variant("budget"), DataRun("sgd", "sparse-logreg", 0.1, 1)).budget.epochs == 20
    assert suite.variant("tuning-seed").tuning_seed != suite.tuning_seed
    assert suite.variant("tuning-seed").judge_seeds == suite.judge_seeds
    geometry = suite.variant("geometry")
    assert geometry.options("sparse-logreg")["zipf"] != suite.options("sparse-logreg").get("zipf", 1.1)
    assert geometry.landscape("saddle-stiff").params != suite.landscape("saddle-stiff").params
    # C7's grid is twice as fine over the same range, and holds the tuning grid
    assert len(suite.fine_grid()) == 2 * len(suite.grid) - 1 and set(suite.grid) <= set(suite.fine_grid())


def test_selection_prefers_the_lowest_validation_loss_and_the_smaller_rate_on_ties():
    assert plan.select([(0.1, 1.0), (0.3, 0.5), (1.0, 0.5), (3.0, math.inf)]) == 0.3
    assert plan.select([(0.1, math.inf)]) is None


def test_matched_rates_are_derived_from_plain_sgd_not_tuned():
    suite = get_suite("tiny")
    tunes = [Tune("momentum-matched", "saddle")]
    assert plan.tuning(suite, tunes) == plan.tuning(suite, [Tune("sgd", "saddle")])


def test_a_users_method_fills_its_roles_and_gets_its_own_cases():
    mine = parse_method("mine=torch.optim:SGD;role=momentum,adam;momentum=0.5")
    suite = get_suite("tiny").with_methods((mine,))
    assert "mine" in suite.in_role("momentum") and "mine" in suite.in_role("adam")
    runs = compare._judging(suite, _rates(suite), False)
    assert any(isinstance(r, SurfaceRun) and r.method == "mine" for r in runs)
    assert plan.config(
        suite, next(r for r in runs if isinstance(r, DataRun) and r.method == "mine")
    ).optimizer == ("torch.optim:SGD")


def test_lean_state_reads_the_built_in_methods_only_each_once():
    # lean_state is an option of descentlab's classes: a user's optimizer has no lean form to compare.
    mine = parse_method("mine=torch.optim:SGD;role=momentum,adam;momentum=0.5")
    suite = get_suite("tiny").with_methods((mine,))
    c8 = CLAIMS["C8"]
    assert all(t.method != "mine" for t in c8.tunes(suite))
    runs = c8.runs(suite, _rates(suite))
    assert runs and all(r.method != "mine" for r in runs) and len(runs) == len(set(runs))


def test_a_users_method_failing_on_a_surface_is_named_in_one_line():
    bad = parse_method("bad=helpers:BrokenSGD;role=adam")
    suite = get_suite("tiny").with_methods((bad,))
    run = next(
        r
        for r in compare._judging(suite, _rates(suite), False)
        if isinstance(r, SurfaceRun) and r.method == "bad"
    )
    task = plan.SurfaceTask(suite, run, plan.surface_key(suite, run))
    with pytest.raises(plan.UserMethodFailed) as caught:
        plan.compute_surface(task)
    message = str(caught.value)
    assert (
        message.startswith("method bad (helpers:BrokenSGD) failed on the 2-D surface ")
        and "\n" not in message
    )
    assert "RuntimeError: broken on purpose" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mine", "a method is NAME=OPTIMIZER"),
        ("mine=torch.optim:SGD", "give the roles it fills"),
        ("mine=torch.optim:SGD;role=momentum;lr=0.1", "lr is tuned by the lab"),
        ("mine=nowhere.at_all:Opt;role=adam", "cannot import module 'nowhere.at_all'"),
        ("mine=torch.optim:lr_scheduler;role=adam", "is not a torch.optim.Optimizer subclass"),
        ("mine=adamm;role=adam", "did you mean 'adam'"),
        ("mine=torch.optim:SGD;role=momentm", "did you mean 'momentum'"),
        ("mine=torch.optim:SGD;role=adam;nesterov=maybe", "does not build"),
        ("sgd=torch.optim:SGD;role=adam", "the name of a built-in method"),
    ],
)
def test_a_bad_method_is_refused_with_what_is_wrong(text, message):
    with pytest.raises((ValueError, LookupError), match=message):
        parse_method(text)


def test_methods_come_from_a_toml_file(tmp_path):
    path = tmp_path / "methods.toml"
    path.write_text(
        '[heavy]\noptimizer = "torch.optim:SGD"\nroles = ["momentum"]\nhyperparameters = {momentum = 0.8}\n'
    )
    (method,) = load_methods(str(path))
    assert (method.name, method.roles, method.hyperparameters) == ("heavy", ("momentum",), {"momentum": 0.8})
    path.write_text('[heavy]\noptimizer = "torch.optim:SGD"\nrole = ["momentum"]\n')
    with pytest.raises(ValueError, match="unknown keys"):
        load_methods(str(path))


def test_restricting_a_suite_keeps_the_claims_and_problems_asked_for():
    suite = get_suite("default").restricted(("C3", "C7"), None)
    assert suite.claims() == ("C3", "C7") and "restricted to claims C3, C7" in suite.summary
    only = get_suite("default").restricted(None, ("saddle", "sparse-logreg"))
    assert set(only.claims()) == {"C1", "C2", "C3", "C5", "C6"}
    with pytest.raises(LookupError, match="did you mean 'saddle'"):
        get_suite("default").restricted(None, ("sadle",))


def test_the_lab_pages_methods_file_reads_with_a_real_class(tmp_path):
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "lab.md").read_text()
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", page, flags=re.DOTALL) if "roles" in b]
    # The page's class is the reader's own; torch's Adam stands in for it (same arguments).
    (tmp_path / "methods.toml").write_text(block.replace("mypkg.optim:Lion", "torch.optim:Adam"))
    (method,) = load_methods(str(tmp_path / "methods.toml"))
    assert method.roles == ("adam", "momentum") and method.hyperparameters == {"betas": [0.9, 0.99]}


def test_only_c4_starts_its_judged_runs_next_to_the_minimum():
    from descentlab.lab.claims import CLAIMS

    suite = get_suite("default")
    c4 = [r for r in CLAIMS["C4"].runs(suite, _rates(suite)) if isinstance(r, SurfaceRun)]
    c7 = [r for r in CLAIMS["C7"].runs(suite, _rates(suite)) if isinstance(r, SurfaceRun)]
    assert c4 and all(r.hover for r in c4)
    assert any(r.landscape.endswith("-outliers") for r in c7) and not any(r.hover for r in c7)
    inputs = plan.surface_inputs(suite, c4[0])
    land = suite.landscape(c4[0].landscape)
    assert abs(inputs["starts"] - land.minimum).max() <= 0.01


def test_a_design_variation_runs_only_the_claims_it_applies_to():
    suite = get_suite("default")
    varied = {claim.id for claim in compare._claims(suite.variant("budget"), "budget")}
    assert {"C1", "C6"} <= varied and not {"C2", "C8"} & varied  # C2 and C8 are not varied in budget
    assert {claim.id for claim in compare._claims(suite)} == set(suite.claims())


def test_a_suite_holds_one_registry_problem_at_two_sizes_under_labels():
    suite = get_suite("default")
    assert suite.data("quadratic-4096").problem == suite.data("quadratic-deep").problem == "quadratic-deep"
    assert suite.options("quadratic-4096")["dim"] == 4096 and "dim" not in suite.options("quadratic-deep")
    run = next(r for r in CLAIMS["C8"].runs(suite, _rates(suite)) if r.problem == "quadratic-4096")
    assert plan.config(suite, run).problem == "quadratic-deep"
    with pytest.raises(ValueError, match="two problems have the same name; give one a label"):
        replace(suite, problems=(*suite.problems, suite.data("quadratic-deep")))


@pytest.mark.parametrize("name", list(SUITES))
def test_each_data_problem_knows_its_training_set_size(name):
    # C1's control takes it as its batch: a wrong size would make a mini-batch of part of the data.
    suite = get_suite(name)
    for spec in suite.problems:
        built = make_problem(spec.problem, **suite.options(spec.name))
        assert spec.n_train == len(built.splits().train[0]), spec.name


def test_whole_batches_make_the_full_batchs_updates_through_the_mini_batch_loop():
    suite = get_suite("default")
    full = plan.config(suite, DataRun("gd", "sparse-logreg", 0.1, 1))
    whole = plan.config(suite, DataRun("sgd", "sparse-logreg", 0.1, 1, whole_batches=True))
    assert (whole.regime, whole.batch_size) == ("mini-batch", suite.data("sparse-logreg").n_train)
    assert (whole.budget, whole.eval_every) == (full.budget, full.eval_every)
    with pytest.raises(ValueError, match=r"whole batches need a mini-batch method.*'gd' \(full-batch\)"):
        plan.config(suite, DataRun("gd", "sparse-logreg", 0.1, 1, whole_batches=True))
