"""The effective learning rate the observers and the playground report is the factor the rule applies."""

from __future__ import annotations

import pytest
import torch

from descentlab.optim import OPTIMIZERS
from descentlab.train import per_coordinate_lr

# A gradient that falls sharply after two steps, so that AMSGrad's maximum differs from v.
GRADS = [[3.0, -2.0], [2.5, -1.0], [0.1, 0.05], [0.2, -0.1]]
CASES = {
    "adam": {"lr": 0.1, "betas": (0.9, 0.5)},
    "adam-amsgrad": {"lr": 0.1, "betas": (0.9, 0.5), "amsgrad": True},
    "adam-amsgrad-optax": {"lr": 0.1, "betas": (0.9, 0.5), "amsgrad": True, "convention": "optax"},
    "adam-eps-root": {"lr": 0.1, "betas": (0.9, 0.5), "eps": 1e-2, "eps_root": 0.5},
    "adam-keras": {"lr": 0.1, "betas": (0.9, 0.5), "eps": 0.3, "convention": "keras"},
    "adamw-amsgrad": {"lr": 0.1, "betas": (0.9, 0.5), "amsgrad": True, "weight_decay": 0.0},
    "adagrad": {"lr": 0.1, "lr_decay": 0.3, "eps": 0.2},
    "adagrad-keras": {"lr": 0.1, "eps": 0.2, "convention": "keras"},
    "rmsprop": {"lr": 0.1, "eps": 0.2},
    "rmsprop-centered": {"lr": 0.1, "centered": True},
    "rmsprop-keras": {"lr": 0.1, "eps": 0.2, "convention": "keras"},
    "sgd": {"lr": 0.1},
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_effective_lr_times_the_direction_is_the_step(case):
    name = case.split("-")[0]
    p = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = OPTIMIZERS[name]([p], **CASES[case])
    for grad in GRADS:
        before = p.detach().clone()
        p.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
    state, group = opt.state[p], opt.param_groups[0]
    factor = per_coordinate_lr(group, state, p.shape)
    direction = p.grad
    if "exp_avg" in state:  # the factor multiplies the bias-corrected first moment
        direction = state["exp_avg"] / (1 - group["betas"][0] ** float(state["step"]))
    torch.testing.assert_close(p.detach() - before, -factor * direction, rtol=1e-12, atol=0)
    if "amsgrad" in case:  # the case tests something: the maximum is not the current v
        assert not torch.equal(state["max_exp_avg_sq"], state["exp_avg_sq"])


@pytest.mark.parametrize("name", ["adam", "adagrad", "rmsprop"])
def test_the_effective_lr_reads_8bit_state_as_values_not_codes(name):
    from descentlab.optim import to_torch_state_dict

    p = torch.linspace(-1, 1, 4096, requires_grad=True)  # large enough for lean state
    opt = OPTIMIZERS[name]([p], lr=0.1, lean_state="8bit", foreach=False)
    for k in range(3):
        p.grad = torch.cos(torch.arange(4096.0) * (k + 1))
        opt.step()
    state, group = opt.state[p], opt.param_groups[0]
    assert any(t.dtype == torch.uint8 for t in state.values() if isinstance(t, torch.Tensor))
    dense = to_torch_state_dict(opt.state_dict())["state"][0]
    torch.testing.assert_close(
        per_coordinate_lr(group, state, p.shape), per_coordinate_lr(group, dense, p.shape)
    )
