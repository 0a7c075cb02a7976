"""The convention presets reproduce numbers computed by Keras 3 and optax themselves.

``tests/golden/frameworks.json`` holds float64 trajectories that the real
frameworks computed (``tests/golden/generate.py`` writes it); each case is
replayed here with descentlab and must agree at every step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from descentlab.optim import OPTIMIZERS
from helpers import relative_error

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "frameworks.json").read_text())


def replay(optimizer: str, kwargs: dict, lr: float, scheduled: bool) -> list[torch.Tensor]:
    curvature, optimum = np.array(GOLDEN["curvature"]), np.array(GOLDEN["optimum"])
    noise = np.array(GOLDEN["noise"])
    p = torch.tensor(GOLDEN["init"], dtype=torch.float64, requires_grad=True)
    opt = OPTIMIZERS[optimizer]([p], lr=lr, **kwargs)
    out = []
    for k in range(GOLDEN["steps"]):
        opt.param_groups[0]["lr"] = lr * (1 + 0.5 * math.sin(0.3 * k)) if scheduled else lr
        p.grad = torch.from_numpy(curvature * (p.detach().numpy() - optimum) + noise[k])
        opt.step()
        out.append(p.detach().clone())
    return out


def _kwargs(case: dict) -> dict:
    kwargs = dict(case["kwargs"])
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return kwargs


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: f"{c['framework']}.{c['call']}")
def test_preset_reproduces_the_framework(case):
    ours = replay(case["optimizer"], _kwargs(case), case["lr"], case["scheduled"])
    for k, (p, expected) in enumerate(zip(ours, case["trajectory"])):
        assert relative_error(p, torch.tensor(expected, dtype=torch.float64)) <= 1e-12, f"step {k + 1}"


@pytest.mark.parametrize(
    "case",
    [c for c in GOLDEN["cases"] if c["differs_from_torch"]],
    ids=lambda c: f"{c['framework']}.{c['call']}",
)
def test_the_torch_convention_would_not(case):
    """The golden test can fail: PyTorch's rule gives other numbers on the same case."""
    kwargs = {**_kwargs(case), "convention": "torch"}
    if case["optimizer"] != "sgd":
        kwargs.pop("momentum_form", None)
    ours = replay(case["optimizer"], kwargs, case["lr"], case["scheduled"])
    assert relative_error(ours[-1], torch.tensor(case["trajectory"][-1], dtype=torch.float64)) > 1e-9
