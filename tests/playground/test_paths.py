"""The playground's paths are the training loop's, and the terms it shows are the optimizer's own state."""

from __future__ import annotations

import math

import pytest
import torch

from descentlab.lab.mistakes import MISTAKES
from descentlab.optim import OPTIMIZERS
from descentlab.playground.paths import (
    CONTROLS,
    FORMULAS,
    RequestError,
    compute_paths,
    defaults,
    parse_request,
    schema,
)
from descentlab.problems import SURFACES
from descentlab.train import Budget, RunConfig, run


def paths(**request):
    return compute_paths(parse_request(request))["runs"]


def term(result, key):
    return next(t["values"] for t in result["terms"] if t["key"] == key)


@pytest.mark.parametrize("regime", ["full-batch", "mini-batch", "online"])
def test_a_path_is_the_training_runs_path_with_the_same_regime_seed_and_start(regime):
    start, hyper = (-1.0, 0.5), {"lr": 0.02, "betas": (0.8, 0.99)}
    config = RunConfig(
        "rosenbrock-noisy", "adam", hyper, regime=regime, batch_size=7, budget=Budget(steps=40), seed=3,
        observers=("path",), problem_options={"start": start},
    )  # fmt: skip
    expected = run(config).observations["path"].value
    (result,) = paths(
        surface="rosenbrock-noisy", start=list(start), updates=40, regime=regime, batch_size=7, seed=3,
        runs=[{"optimizer": "adam", "hyperparameters": {"lr": 0.02, "betas": [0.8, 0.99]}}],
    )  # fmt: skip
    assert len(result["points"]) == len(expected) == 41
    worst = max(abs(a - b) for p, q in zip(result["points"], expected) for a, b in zip(p, q))
    assert worst <= 1e-12
    # The regimes differ on a noisy surface (so the test above compares three different paths).
    assert regime == "full-batch" or result["points"][5] != paths(
        surface="rosenbrock-noisy", start=list(start), updates=5,
        runs=[{"optimizer": "adam", "hyperparameters": {"lr": 0.02, "betas": [0.8, 0.99]}}],
    )[0]["points"][5]  # fmt: skip


def test_each_update_s_terms_are_the_optimizer_s_state_and_add_up_to_the_step():
    lr, (beta1, beta2), eps = 0.05, (0.9, 0.999), 1e-8
    (result,) = paths(surface="beale", updates=6, runs=[{"optimizer": "adam", "hyperparameters": {"lr": lr}}])
    # Directly: descentlab's Adam on Beale's function from the standard start.
    p = torch.tensor(SURFACES["beale"].start, dtype=torch.float64, requires_grad=True)
    opt = OPTIMIZERS["adam"]([p], lr=lr)
    for t in range(1, 7):
        opt.zero_grad()
        SURFACES["beale"].f(p[0], p[1]).backward()
        grad = p.grad.tolist()
        before = p.detach().clone()
        opt.step()
        state = opt.state[p]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        assert result["grad"][t - 1] == pytest.approx(grad, rel=1e-12)
        assert term(result, "exp_avg")[t - 1] == pytest.approx(m.tolist(), rel=1e-12)
        assert term(result, "exp_avg_sq")[t - 1] == pytest.approx(v.tolist(), rel=1e-12)
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        assert term(result, "m_hat")[t - 1] == pytest.approx(m_hat.tolist(), rel=1e-12)
        assert term(result, "v_hat")[t - 1] == pytest.approx(v_hat.tolist(), rel=1e-12)
        # The docstring's last line, from the shown terms, is the step the optimizer took.
        step = (-lr * m_hat / (v_hat.sqrt() + eps)).tolist()
        assert term(result, "step")[t - 1] == pytest.approx(step, rel=1e-9)
        assert term(result, "step")[t - 1] == pytest.approx((p.detach() - before).tolist(), rel=1e-12)
        assert result["effective_lr"][t - 1] == pytest.approx((lr / (v_hat.sqrt() + eps)).tolist(), rel=1e-12)
        assert result["points"][t] == pytest.approx(p.tolist(), rel=1e-12)
    assert result["momentum"] == "exp_avg"


CONFIGURATIONS = [
    ("sgd", {"lr": 0.002}),
    ("sgd", {"lr": 0.002, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.002, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 0.002, "momentum": 0.9, "momentum_form": "ema", "debias": True}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.5, "weight_decay": 0.1}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.1}),
    ("adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    ("adamw", {"lr": 0.05, "betas": [0.8, 0.9], "weight_decay": 0.5}),
]


@pytest.mark.parametrize(("name", "hyper"), CONFIGURATIONS)
def test_the_rule_called_directly_gives_what_step_gives(name, hyper):
    (result,) = paths(surface="rosenbrock", updates=30, runs=[{"optimizer": name, "hyperparameters": hyper}])
    p = torch.tensor(SURFACES["rosenbrock"].start, dtype=torch.float64, requires_grad=True)
    opt = OPTIMIZERS[name]([p], **{k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()})
    for t in range(1, 31):
        opt.zero_grad()
        SURFACES["rosenbrock"].f(p[0], p[1]).backward()
        opt.step()
        assert result["points"][t] == pytest.approx(p.tolist(), rel=1e-12, abs=1e-15)
    for key, value in opt.state[p].items():
        if key != "step":
            assert term(result, key)[-1] == pytest.approx(value.tolist(), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("name", "hyper"), [("adam", {"lr": 0.05, "amsgrad": True}), ("adagrad", {"lr": 0.1, "lr_decay": 0.01})]
)
def test_the_effective_lr_is_the_factor_the_rule_applies(name, hyper):
    # AMSGrad's maximum included: the factor times m̂ (Adam) or g (Adagrad) is the step.
    (result,) = paths(surface="beale", updates=40, runs=[{"optimizer": name, "hyperparameters": hyper}])
    direction = torch.tensor(term(result, "m_hat") if name == "adam" else result["grad"], dtype=torch.float64)
    step = torch.tensor(term(result, "step"), dtype=torch.float64)
    torch.testing.assert_close(
        step, -torch.tensor(result["effective_lr"], dtype=torch.float64) * direction, rtol=1e-12, atol=1e-15
    )
    if name == "adam":  # the maximum mattered
        assert term(result, "max_exp_avg_sq") != term(result, "exp_avg_sq")


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistaken_rule_called_directly_gives_what_its_optimizer_s_step_gives(mistake):
    (result,) = paths(
        surface="beale", updates=20, runs=[{"mistake": mistake, "hyperparameters": {"lr": 0.01}}]
    )
    p = torch.tensor(SURFACES["beale"].start, dtype=torch.float64, requires_grad=True)
    opt = MISTAKES[mistake].build([p], {"lr": 0.01})
    for t in range(1, 21):
        opt.zero_grad()
        SURFACES["beale"].f(p[0], p[1]).backward()
        opt.step()
        if result["diverged_at"] is not None and t >= result["diverged_at"]:
            break
        assert result["points"][t] == pytest.approx(p.tolist(), rel=1e-12, abs=1e-15)


def test_a_mistaken_rule_runs_beside_the_correct_one_and_does_what_its_formula_says():
    correct, wrong = paths(
        surface="quadratic2d", updates=5,
        runs=[{"optimizer": "sgd", "hyperparameters": {"lr": 0.01}}, {"mistake": "sgd-added", "hyperparameters": {"lr": 0.01}}],
    )  # fmt: skip
    assert correct["loss"][-1] < correct["loss"][0] < wrong["loss"][-1]  # gradient ascent climbs
    assert wrong["formula"] == ["✗ θ ← θ + γ g", "✓ θ ← θ − γ g"]
    assert wrong["effective_lr"] is None and wrong["mistake"] == "sgd-added"


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.7)])
def test_a_mistaken_form_runs_with_its_run_s_betas_and_eps(betas):
    """Without epsilon, Adam on Rosenbrock (gradients far from 0) moves as Adam does, whatever its betas;
    with epsilon as large as the gradients, it does not: the form takes the run's settings."""
    hyper = {"lr": 0.05, "betas": list(betas)}
    adam, no_eps, big_eps = paths(
        surface="rosenbrock", updates=50,
        runs=[{"optimizer": "adam", "hyperparameters": hyper}, {"mistake": "adam-no-eps", "hyperparameters": hyper},
              {"mistake": "adam-no-bias-correction", "hyperparameters": {**hyper, "eps": 10.0}}],
    )  # fmt: skip
    assert len(no_eps["points"]) == 51
    assert torch.tensor(no_eps["points"]).sub(torch.tensor(adam["points"])).abs().max() < 1e-6
    assert no_eps["hyperparameters"] == hyper
    v_hat = term(no_eps, "v_hat")[-1][0]
    assert v_hat == pytest.approx(term(no_eps, "exp_avg_sq")[-1][0] / (1 - betas[1] ** 50), rel=1e-12)
    assert abs(big_eps["points"][-1][0] - adam["points"][-1][0]) > 0.1


def test_a_diverging_path_ends_where_its_loss_stops_being_finite():
    (result,) = paths(
        surface="quadratic2d", updates=400, runs=[{"optimizer": "sgd", "hyperparameters": {"lr": 0.9}}]
    )
    assert result["diverged_at"] is not None
    assert len(result["points"]) == result["diverged_at"]
    assert all(v is None or math.isfinite(v) for v in result["loss"])


def test_a_formula_surface_uses_the_formula():
    (result,) = paths(
        surface="custom", formula="x^2 + 10*y^2", bounds=[[-2, 2], [-1, 1]], start=[1, 1], updates=1,
        runs=[{"optimizer": "sgd", "hyperparameters": {"lr": 0.01}}],
    )  # fmt: skip
    assert result["grad"][0] == pytest.approx([2.0, 20.0])
    assert result["points"][1] == pytest.approx([0.98, 0.8])


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_registered_optimizer_has_controls_a_formula_and_accepts_both_ends_of_every_slider(name):
    assert name in CONTROLS and name in FORMULAS
    base = defaults(name)
    for control in CONTROLS[name]:
        if control.kind == "float":
            ends = [control.low, control.high]
        elif control.kind == "pair":
            ends = [list(control.low), list(control.high)]
        else:
            continue
        for value in ends:
            parse_request({"runs": [{"optimizer": name, "hyperparameters": {**base, control.name: value}}]})


def test_the_schema_offers_the_registry_s_defaults_and_every_mistake():
    s = schema()
    assert list(s["optimizers"]) == list(OPTIMIZERS)
    adam = {c["name"]: c for c in s["optimizers"]["adam"]["controls"]}
    assert adam["lr"]["default"] == 1e-3 and adam["betas"]["default"] == [0.9, 0.999]
    offered = {m["name"] for o in s["optimizers"].values() for m in o["mistakes"]}
    assert offered == set(MISTAKES)
    assert {x["name"] for x in s["surfaces"]} >= {"rosenbrock", "rosenbrock-noisy", "trap-outliers", "saddle"}


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"runs": [{"optimizer": "adma"}]}, "unknown optimizer 'adma'; did you mean 'adam'"),
        (
            {"runs": [{"optimizer": "adam", "hyperparameters": {"lr": -1.0}}]},
            "lr must be a finite number in [0, inf)",
        ),
        ({"runs": [{"optimizer": "adam", "hyperparameters": {"betas": [1.2, 0.9]}}]}, "betas[0]=1.2"),
        (
            {"runs": [{"optimizer": "adam", "hyperparameters": {"momentum": 0.9}}]},
            "unknown hyperparameter of adam 'momentum'",
        ),
        ({"runs": [{"optimizer": "sgd", "hyperparameters": {"lr": "0.1"}}]}, "must be a finite number"),
        (
            {"runs": [{"optimizer": "sgd", "hyperparameters": {"nesterov": True}}]},
            "nesterov=True requires momentum > 0",
        ),
        ({"updates": 10**6, "runs": [{"optimizer": "sgd"}]}, "updates must be an integer from 1 to 2000"),
        ({"runs": [{"optimizer": "sgd"}] * 13}, "runs must be a list of 1 to 12"),
        ({"runs": []}, "runs must be a list of 1 to 12"),
        ({"surface": "rosenbrok", "runs": [{"optimizer": "sgd"}]}, "did you mean 'rosenbrock'"),
        ({"surface": "digits-mlp", "runs": [{"optimizer": "sgd"}]}, "unknown surface 'digits-mlp'"),
        (
            {"surface": "custom", "formula": "open('x')", "runs": [{"optimizer": "sgd"}]},
            "unknown function 'open'",
        ),
        (
            {
                "surface": "custom",
                "formula": "x",
                "bounds": [[1, -1], [0, 1]],
                "runs": [{"optimizer": "sgd"}],
            },
            "min < max",
        ),
        ({"regime": "batch", "runs": [{"optimizer": "sgd"}]}, "regime must be one of"),
        ({"batch_size": 0, "runs": [{"optimizer": "sgd"}]}, "batch_size must be an integer"),
        ({"start": [0, float("nan")], "runs": [{"optimizer": "sgd"}]}, "start[1] must be a finite number"),
        (
            {"runs": [{"mistake": "adam-no-sqrt", "hyperparameters": {"lr": 0.1, "amsgrad": True}}]},
            "the mistaken rule adam-no-sqrt takes only lr, betas, eps",
        ),
        ({"runs": [{"mistake": "adam-no-eps", "hyperparameters": {"betas": [1.2, 0.9]}}]}, "betas[0]=1.2"),
        ({"runs": [{"optimizer": "sgd", "hyperparameters": {"lr": 10**400}}]}, "an integer of 401 digits"),
        (
            {
                "surface": "custom",
                "formula": "x",
                "bounds": [[-1e7, 1e7], [0, 1]],
                "runs": [{"optimizer": "sgd"}],
            },
            "bounds of x must span at most 1e+06",
        ),
        ({"runs": [{"optimizer": "sgd"}], "udpates": 5}, "unknown request field 'udpates'"),
        (
            {"surface": "beale", "formula": "x^2", "runs": [{"optimizer": "sgd"}]},
            "formula is only for surface 'custom'; received formula with surface='beale'",
        ),
        (
            {"formula": "x^2", "bounds": [[-1, 1], [-1, 1]], "runs": [{"optimizer": "sgd"}]},
            "formula and bounds are only for surface 'custom'; received formula and bounds with no surface "
            "(the default, 'rosenbrock')",
        ),
        (  # a misspelt custom: the name is what is wrong
            {"surface": "costum", "formula": "x^2", "runs": [{"optimizer": "sgd"}]},
            "unknown surface 'costum'; did you mean 'custom'",
        ),
        ([1, 2], "must be a JSON object"),
        (  # a misspelt field would leave the run on the class's defaults
            {"runs": [{"optimizer": "adam", "hyperparams": {"lr": 5}}], "updates": 3},
            "unknown field of runs[0] 'hyperparams'; did you mean 'hyperparameters'",
        ),
        ({"runs": [{"optimizer": "sgd", "colour": "red"}]}, "unknown field of runs[0] 'colour'"),
        (
            {"runs": [{"optimizer": "sgd", "mistake": "adam-no-sqrt"}]},
            "runs[0]: the mistaken rule adam-no-sqrt is a form of adam; received optimizer='sgd'",
        ),
    ],
)
def test_bad_requests_are_refused_with_a_message_naming_the_cause(request_, message):
    with pytest.raises(RequestError) as caught:
        parse_request(request_)
    assert message in str(caught.value)
    assert caught.value.key.startswith("error.")


@pytest.mark.parametrize(
    ("hyper", "key", "values"),
    [
        ({"lr": -1.0}, "error.option_range", {"name": "lr", "interval": "[0, inf)", "value": "-1.0"}),
        ({"momentum": 1.0}, "error.option_range", {"name": "momentum", "interval": "[0, 1)", "value": "1.0"}),
        ({"nesterov": True}, "error.option_nesterov_momentum", {"momentum": "0", "dampening": "0"}),
        (
            {"nesterov": True, "momentum": 0.9, "dampening": 0.5},
            "error.option_nesterov_momentum",
            {"momentum": "0.9", "dampening": "0.5"},
        ),
        (
            {"momentum": 0.9, "momentum_form": "ema", "dampening": 0.1},
            "error.option_ema_dampening",
            {"dampening": "0.1"},
        ),
        ({"debias": True}, "error.option_debias_ema", {"momentum_form": "'heavy_ball'"}),
    ],
)
def test_the_refusals_the_page_can_meet_are_worded_by_the_catalogue_in_each_language(hyper, key, values):
    """The page's controls can combine into settings SGD refuses (Nesterov without momentum, ...):
    those come back as a rule of their own with its values, so a Chinese page words all of it."""
    import json
    import re
    from pathlib import Path

    with pytest.raises(RequestError) as caught:
        parse_request({"runs": [{"optimizer": "sgd"}, {"optimizer": "sgd", "hyperparameters": hyper}]})
    err = caught.value
    assert err.key == key
    assert {k: err.params[k] for k in values} == values and (err.params["run"], err.params["optimizer"]) == (
        2,
        "sgd",
    )
    static = Path(__file__).parents[2] / "src" / "descentlab" / "playground" / "static" / "i18n"
    zh = json.loads((static / "zh.json").read_text())[key]
    shown = re.sub(r"\{(\w+)\}", lambda m: str(err.params[m.group(1)]), zh)
    assert "{" not in shown and "received" not in shown and "must" not in shown
    assert all(str(v) in shown for v in values.values())


def test_a_pair_s_element_out_of_range_is_named_with_its_index():
    with pytest.raises(RequestError) as caught:
        parse_request({"runs": [{"optimizer": "adam", "hyperparameters": {"betas": [1.2, 0.9]}}]})
    assert caught.value.key == "error.option_range"
    assert (caught.value.params["name"], caught.value.params["value"]) == ("betas[0]", "1.2")


def test_runs_in_different_regimes_side_by_side_are_each_the_path_of_its_own_regime():
    adam = {"optimizer": "adam", "hyperparameters": {"lr": 0.05}}
    common = {"surface": "quadratic2d-outliers", "updates": 60, "batch_size": 5, "seed": 4}
    together = paths(**common, runs=[{**adam, "regime": r} for r in ("full-batch", "mini-batch", "online")])
    for result, regime in zip(together, ("full-batch", "mini-batch", "online")):
        (alone,) = paths(**common, regime=regime, runs=[adam])
        assert result["regime"] == regime and result["points"] == alone["points"]
    # From the same seed, the three regimes' noise gives three different paths.
    assert len({str(r["points"][-1]) for r in together}) == 3


def test_a_mistaken_rule_may_name_the_optimizer_it_is_a_form_of():
    named = parse_request({"runs": [{"optimizer": "adam", "mistake": "adam-no-sqrt"}]}).runs[0]
    assert named == parse_request({"runs": [{"mistake": "adam-no-sqrt"}]}).runs[0]
    assert (named.optimizer, named.mistake) == ("adam", "adam-no-sqrt")
