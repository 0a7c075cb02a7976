"""Numerical parity: with torch.optim, and with the independent float64 reference.

Over 60 steps, two parameter groups, a changing learning rate and a parameter
that misses some gradients, descentlab must agree with torch.optim on every
parameter and every state tensor torch keeps (relative error <= 1e-12 in
float64 with gradients fed back from the parameters, <= 1e-6 in float32 with
the same gradient sequence on both sides), and with the NumPy reference on
every parameter for every configuration in the table, including those torch
lacks.
"""

from __future__ import annotations

import pytest
import torch

from cases import CASES, all_configs, torch_kwargs
from descentlab.optim import OPTIMIZERS
from helpers import hyperparameters, relative_error, run, run_reference

TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-6}


def test_table_covers_registry():
    assert set(CASES) == set(OPTIMIZERS), "every registered optimizer needs an entry in tests/cases.py"
    for case in CASES.values():
        assert case.torch_cls.__name__ == OPTIMIZERS[case.name].__name__


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "config"), all_configs(torch_only=True))
def test_matches_torch_optim(name, config, dtype):
    closed = dtype == torch.float64
    ours, opt = run(OPTIMIZERS[name], dict(config.kwargs), dtype, closed_loop=closed)
    theirs, torch_opt = run(CASES[name].torch_cls, torch_kwargs(config.kwargs), dtype, closed_loop=closed)
    tolerance = TOLERANCE[dtype]
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == b.dtype == dtype
        assert relative_error(a, b) <= tolerance, f"parameter {i}"
        expected = torch_opt.state[b]
        got = opt.state[a]
        for key, value in expected.items():
            assert key in got, f"parameter {i} lacks state {key!r}"
            if key == "step":
                assert got[key].item() == value.item(), f"parameter {i} step"
            else:
                assert got[key].dtype == value.dtype
                assert relative_error(got[key], value) <= tolerance, f"parameter {i} state {key!r}"


@pytest.mark.parametrize(("name", "config"), all_configs())
def test_matches_float64_reference(name, config):
    ours, _ = run(OPTIMIZERS[name], dict(config.kwargs), torch.float64)
    expected = run_reference(name, hyperparameters(OPTIMIZERS[name], dict(config.kwargs)))
    for i, (a, b) in enumerate(zip(ours, expected)):
        assert relative_error(a, b) <= 1e-12, f"parameter {i}"


def test_the_parity_problem_tells_conventions_apart():
    """The parity runs can fail: each convention's numbers differ from torch's on this problem."""
    for name, kwargs in [
        ("sgd", {"lr": 0.05, "momentum": 0.9, "convention": "keras"}),
        ("rmsprop", {"lr": 0.01, "momentum": 0.9, "convention": "keras"}),
        ("adagrad", {"lr": 0.1, "eps": 1e-3, "convention": "optax"}),
        ("adam", {"lr": 0.05, "eps": 1e-3, "convention": "keras"}),
        ("adam", {"lr": 0.05, "amsgrad": True, "betas": (0.9, 0.9), "convention": "optax"}),
        ("sgd", {"lr": 0.05, "momentum": 0.9, "momentum_form": "ema"}),
    ]:
        ours, _ = run(OPTIMIZERS[name], kwargs)
        theirs, _ = run(CASES[name].torch_cls, torch_kwargs(kwargs))
        assert max(relative_error(a, b) for a, b in zip(ours, theirs)) > 1e-6, (name, kwargs)
