"""Search spaces and spec files: what a grid and a random search give, and every malformed spec refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from descentlab.lab import (
    Choice,
    Grid,
    LogGrid,
    LogUniform,
    Space,
    SpaceError,
    Uniform,
    load_spec,
)
from descentlab.train import Budget

SPEC = """
name = "tuning"
problem = ["quadratic2d", "saddle"]
regime = "full-batch"
budget = { steps = 50 }
seed = [0, 1]

[optimizers.sgd]
lr = { low = 1e-3, high = 1e-1, n = 3, log = true }
momentum = [0.0, 0.9]

[optimizers.adam]
betas = [[0.9, 0.999]]
"""


def test_a_grid_is_every_combination_in_a_fixed_order(tmp_path):
    (tmp_path / "s.toml").write_text(SPEC)
    spec = load_spec(tmp_path / "s.toml")
    configs = spec.configs()
    assert spec.name == "tuning" and spec.samples is None
    assert len(configs) == 2 * (3 * 2 + 1) * 2
    assert [(c.problem, c.optimizer, c.hyperparameters, c.seed) for c in configs[:4]] == [
        ("quadratic2d", "sgd", {"lr": 0.001, "momentum": 0.0}, 0),
        ("quadratic2d", "sgd", {"lr": 0.001, "momentum": 0.0}, 1),
        ("quadratic2d", "sgd", {"lr": 0.001, "momentum": 0.9}, 0),
        ("quadratic2d", "sgd", {"lr": 0.001, "momentum": 0.9}, 1),
    ]
    assert sorted({c.hyperparameters.get("lr") for c in configs} - {None}) == [0.001, 0.01, 0.1]
    assert {(c.regime, c.budget) for c in configs} == {("full-batch", Budget(steps=50))}
    assert configs[-1].hyperparameters == {"betas": [0.9, 0.999]}
    # The same sweep as JSON; without a name, a spec is named after its file.
    data = {
        "problem": ["quadratic2d", "saddle"], "regime": "full-batch", "budget": {"steps": 50}, "seed": [0, 1],
        "optimizers": {
            "sgd": {"lr": {"low": 1e-3, "high": 1e-1, "n": 3, "log": True}, "momentum": [0.0, 0.9]},
            "adam": {"betas": [[0.9, 0.999]]},
        },
    }  # fmt: skip
    (tmp_path / "same.json").write_text(json.dumps(data))
    assert load_spec(tmp_path / "same.json").configs() == configs
    assert load_spec(tmp_path / "same.json").name == "same"


def test_what_the_space_does_not_say_comes_from_the_problem_but_hyperparameters_do_not():
    (config,) = Space(problem="rosenbrock", optimizers={"sgd": {"lr": 0.001}}).expand()
    # rosenbrock's documented setting is SGD lr 0.002, momentum 0.9, full batch, 1000 steps
    assert (config.regime, config.budget) == ("full-batch", Budget(steps=1000))
    assert config.hyperparameters == {"lr": 0.001}  # no momentum the space did not ask for


def test_dimensions():
    assert LogGrid(1e-4, 1.0, 5).points() == (0.0001, 0.001, 0.01, 0.1, 1.0)
    assert LogGrid(16, 256, 5).points() == (16, 32, 64, 128, 256)
    assert LogGrid(1, 4, 4).points() == (1, 2, 3, 4)  # integers, each once
    assert Grid(0.0, 1.0, 3).points() == (0.0, 0.5, 1.0)
    assert Grid(1, 10, 4).points() == (1, 4, 7, 10)
    # Integer ends too close for n distinct integers: refused, not a grid of fewer points.
    with pytest.raises(
        ValueError, match=r"Grid\(0, 1, 5\): integer ends .* only 2 of the 5 differ .*\(0.0, 1.0\)"
    ):
        Grid(0, 1, 5)
    with pytest.raises(ValueError, match=r"LogGrid\(1, 4, 5\): .* only 4 of the 5 differ"):
        LogGrid(1, 4, 5)
    assert Grid(0.0, 1.0, 5).points() == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert Choice(range(3)).points() == (0, 1, 2)
    with pytest.raises(ValueError, match=r"LogUniform.* is continuous: use LogGrid"):
        LogUniform(1e-4, 1.0).points()
    with pytest.raises(ValueError, match=r"Uniform.* is continuous: use Grid"):
        Uniform(0, 1.0).points()


def test_random_search_is_seeded_per_problem_and_optimizer():
    def space(problems):
        return Space(
            problem=Choice(problems),
            optimizers={"sgd": {"lr": LogUniform(1e-4, 1.0), "momentum": Uniform(0.0, 0.99)}, "adam": {"lr": LogGrid(1e-3, 1, 4)}},
            batch_size=LogUniform(8, 128),
            seed=Choice([0, 1]),
        )  # fmt: skip

    first = space(["saddle-noisy"]).sample(5, seed=3)
    assert first == space(["saddle-noisy"]).sample(5, seed=3)
    assert first != space(["saddle-noisy"]).sample(5, seed=4)
    assert len(first) == 2 * 5 * 2
    assert [c.seed for c in first[:4]] == [0, 1, 0, 1]  # each draw runs with every seed
    assert first[0].hyperparameters == first[1].hyperparameters
    sgd = [c for c in first if c.optimizer == "sgd"]
    assert all(
        1e-4 <= c.hyperparameters["lr"] <= 1 and 0 <= c.hyperparameters["momentum"] <= 0.99 for c in sgd
    )
    assert all(isinstance(c.batch_size, int) and 8 <= c.batch_size <= 128 for c in first)
    assert len({c.hyperparameters["lr"] for c in sgd}) == 5
    assert {c.hyperparameters["lr"] for c in first if c.optimizer == "adam"} <= {0.001, 0.01, 0.1, 1.0}
    # Adding a problem changes nothing drawn for the others.
    both = space(["quadratic2d-noisy", "saddle-noisy"]).sample(5, seed=3)
    assert [c for c in both if c.problem == "saddle-noisy"] == first


BAD_SPECS = {
    "unknown problem": ('problem = "rosenbrok"\n[optimizers.sgd]', "s.toml: problem: unknown problem 'rosenbrok'; did you mean 'rosenbrock'"),
    "unknown optimizer": ('problem = "saddle"\n[optimizers.adamm]', "s.toml: optimizers.adamm: unknown optimizer 'adamm'; did you mean 'adam' or 'adamw'"),
    "unknown hyperparameter": ('problem = "saddle"\n[optimizers.sgd]\nmomentun = 0.9', "s.toml: optimizers.sgd: unknown hyperparameter of sgd 'momentun'; did you mean 'momentum'"),
    "log scale from zero": ('problem = "saddle"\n[optimizers.sgd]\nlr = { low = 0, high = 1, n = 3, log = true }', "s.toml: optimizers.sgd.lr: LogGrid: low must be > 0 for a log scale; received low=0"),
    "empty range": ('problem = "saddle"\n[optimizers.sgd]\nlr = { low = 1, high = 0.1 }', "s.toml: optimizers.sgd.lr: Uniform: low must be < high; received low=1, high=0.1"),
    "one-point grid": ('problem = "saddle"\n[optimizers.sgd]\nlr = { low = 0.1, high = 1, n = 1 }', "s.toml: optimizers.sgd.lr: Grid: n must be an integer >= 2"),
    "misspelt range key": ('problem = "saddle"\n[optimizers.sgd]\nlr = { low = 0.1, hihg = 1 }', "s.toml: optimizers.sgd.lr: unknown key of a range 'hihg'; did you mean 'high'?"),
    "range without high": ('problem = "saddle"\n[optimizers.sgd]\nlr = { low = 0.1 }', "s.toml: optimizers.sgd.lr: a range needs low and high"),
    "continuous in a grid": ('problem = "saddle"\n[optimizers.sgd]\nlr = { low = 0.1, high = 1, log = true }', "s.toml: optimizers.sgd.lr: LogUniform(0.1, 1) is continuous: use LogGrid(low, high, n) for a grid, or random search"),
    "empty list": ('problem = "saddle"\n[optimizers.sgd]\nlr = []', "s.toml: optimizers.sgd.lr: Choice: give at least one value"),
    "invalid value": ('problem = "saddle"\n[optimizers.sgd]\nlr = [0.1, -1]', "s.toml: saddle with sgd lr=-1, seed 0: SGD: lr must be a finite number in [0, inf); received lr=-1"),
    "a pair not in a list": ('problem = "saddle"\n[optimizers.adam]\nbetas = [0.9, 0.999]', "s.toml: saddle with adam betas=0.9, seed 0: Adam: betas must be a pair"),
    "unknown key": ('problem = "saddle"\noptimiser = 1\n[optimizers.sgd]', "s.toml: unknown key 'optimiser'; did you mean 'optimizers'?"),
    "no optimizers": ('problem = "saddle"', "s.toml: optimizers: missing (every spec names its problems and optimizers)"),
    "no problem": ("[optimizers.sgd]", "s.toml: problem: missing"),
    "empty optimizers": ('problem = "saddle"\noptimizers = {}', "s.toml: optimizers: give at least one optimizer"),
    "bad regime": ('problem = "saddle"\nregime = "minibatch"\n[optimizers.sgd]', "s.toml: regime: unknown regime 'minibatch'; did you mean 'mini-batch'"),
    "bad budget key": ('problem = "saddle"\nbudget = { step = 3 }\n[optimizers.sgd]', "s.toml: budget: unknown budget limit 'step'; did you mean 'steps'?"),
    "bad budget value": ('problem = "saddle"\nbudget = { steps = 0 }\n[optimizers.sgd]', "s.toml: budget: Budget: steps must be a positive integer; received steps=0"),
    "negative seed": ('problem = "saddle"\nseed = [0, -1]\n[optimizers.sgd]', "s.toml: seed: must be integers >= 0; received -1"),
    "continuous seed": ('problem = "saddle"\nseed = { low = 0, high = 9 }\n[optimizers.sgd]', "s.toml: seed: seeds are a value, a list or a grid"),
    "bad batch size": ('problem = "saddle"\nbatch_size = 0\n[optimizers.sgd]', "s.toml: batch_size: must be positive integers; received 0"),
    "unknown problem option": ('problem = "saddle"\n[optimizers.sgd]\n[problem_options]\nn_sample = 3', "s.toml: problem_options.n_sample: unknown option of problem 'saddle' 'n_sample'; did you mean 'n_samples'"),
    "option of one problem only": ('problem = ["saddle", "digits-mlp"]\n[optimizers.sgd]\n[problem_options]\nn_samples = 30', "s.toml: problem_options.n_samples: unknown option of problem 'digits-mlp'"),
    "invalid option value": ('problem = "saddle"\n[optimizers.sgd]\n[problem_options]\nn_samples = -3', "s.toml: saddle with sgd n_samples=-3, seed 0: saddle: n_samples must be a positive integer"),
    "random without samples": ('problem = "saddle"\n[optimizers.sgd]\n[random]\nseed = 1', "s.toml: random: give samples"),
    "zero samples": ('problem = "saddle"\n[optimizers.sgd]\n[random]\nsamples = 0', "s.toml: random.samples: must be a positive integer; received samples=0"),
    "bad interval": ('problem = "saddle"\neval_every = "3 lightyears"\n[optimizers.sgd]', "s.toml: eval_every: an interval is a number and an optional unit"),
    "unknown scheduler": ('problem = "saddle"\nschedule = { name = "CosineAnealingLR" }\n[optimizers.sgd]', "s.toml: saddle with sgd, seed 0: unknown scheduler 'CosineAnealingLR'; did you mean 'CosineAnnealingLR'"),
    "scheduler argument torch checks when stepping": ('problem = "saddle"\nschedule = { name = "StepLR", options = { step_size = 0 } }\n[optimizers.sgd]', "s.toml: saddle with sgd, seed 0: scheduler StepLR: ZeroDivisionError: integer modulo by zero"),
    "bad data seed": ('problem = "saddle-noisy"\n[optimizers.sgd]\n[problem_options]\ndata_seed = -1', "s.toml: saddle-noisy with sgd data_seed=-1, seed 0: saddle-noisy: data_seed must be an integer from 0 to 2**32 - 1"),
    "unknown observer": ('problem = "saddle"\nobservers = ["pth"]\n[optimizers.sgd]', "s.toml: saddle with sgd, seed 0: unknown observer 'pth'; did you mean 'path'?"),
    "wrong type of setting": ('problem = "saddle"\ndrop_last = "yes"\n[optimizers.sgd]', "s.toml: drop_last: must be true or false; received 'yes'"),
    "not TOML": ('problem = "saddle\n', "s.toml: not valid TOML:"),
    "seed past 64 bits": ('problem = "saddle"\nseed = 9223372036854775808\n[optimizers.sgd]', "s.toml: saddle with sgd, seed 9223372036854775808: RunConfig: seed must be an integer from 0 to 2**63 - 1"),
    "huge grid": ('problem = "saddle"\n[optimizers.sgd]\nlr = { low = 0.001, high = 1, n = 100000000000 }', "s.toml: optimizers.sgd.lr: Grid: n must be at most 10,000; received n=100000000000"),
    "too many runs": ('problem = "saddle"\nseed = { low = 0, high = 9999, n = 9999 }\n[optimizers.sgd]\nlr = { low = 0.001, high = 1, n = 20 }', "s.toml: size: it makes 199,980 runs, more than the 100,000 one sweep may have"),
    "too many samples": ('problem = "saddle"\n[random]\nsamples = 100000000000\n[optimizers.sgd]\nlr = { low = 0.001, high = 1 }', "s.toml: size: it makes 100,000,000,000 runs"),
}  # fmt: skip


@pytest.mark.parametrize("text, message", BAD_SPECS.values(), ids=BAD_SPECS)
def test_a_malformed_spec_is_one_line_naming_the_key_and_the_problem(tmp_path, text, message):
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ValueError) as info:
        load_spec(tmp_path / "s.toml")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_spec_files_that_cannot_be_read(tmp_path):
    with pytest.raises(OSError, match=r"cannot read spec .*missing.toml"):
        load_spec(tmp_path / "missing.toml")
    (tmp_path / "s.json").write_text("{nope")
    with pytest.raises(ValueError, match=r"s.json: not valid JSON"):
        load_spec(tmp_path / "s.json")
    (tmp_path / "twice.json").write_text(
        '{"problem": "saddle", "optimizers": {"sgd": {}}, "optimizers": {"adam": {}}}'
    )
    with pytest.raises(ValueError, match=r"twice.json: not valid JSON: the key 'optimizers' appears twice"):
        load_spec(tmp_path / "twice.json")  # json would keep the last silently; TOML refuses it too
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"list.json: a spec is a table of keys; received list"):
        load_spec(tmp_path / "list.json")


def test_a_space_built_in_python_is_checked_too():
    with pytest.raises(SpaceError, match=r"space: optimizers.sgd: unknown hyperparameter of sgd 'lrr'"):
        Space(problem="saddle", optimizers={"sgd": {"lrr": 0.1}})
    with pytest.raises(SpaceError, match=r"space: problem: must be a name or a Choice of names"):
        Space(problem=["saddle"], optimizers={"sgd": {}})  # type: ignore[arg-type]
    with pytest.raises(
        SpaceError, match=r"space: settings.chunk: unknown setting 'chunk'; did you mean 'chunk_size'"
    ):
        Space(problem="saddle", optimizers={"sgd": {}}, settings={"chunk": 3})
    with pytest.raises(SpaceError, match=r"space: samples: must be a positive integer"):
        Space(problem="saddle", optimizers={"sgd": {}}).sample(0)


def test_the_sweeps_page_spec_is_a_valid_sweep(tmp_path):
    page = (Path(__file__).parents[2] / "docs" / "sweeps.md").read_text()
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", page, flags=re.DOTALL) if "[optimizers" in b]
    (tmp_path / "lr-tuning.toml").write_text(block)
    spec = load_spec(tmp_path / "lr-tuning.toml")
    assert (spec.name, len(spec.configs())) == ("lr-tuning", 2 * (7 * 2 + 7) * 3)
    random = (
        block.replace("# [random]", "[random]")
        .replace("# samples", "samples")
        .replace("# seed = 0", "seed = 0")
    )
    (tmp_path / "random.toml").write_text(random)
    assert len(load_spec(tmp_path / "random.toml").configs()) == 2 * 2 * 20 * 3
