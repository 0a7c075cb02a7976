"""Distributed checkpoints, mixed precision and gradient clipping with descentlab's optimizers."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

import dist_workers as W
from descentlab.optim import OPTIMIZERS
from helpers import relative_error, same

PATHS = [pytest.param(True, id="fast"), pytest.param(False, id="per-tensor")]


def _optimizer(name, net, fast, **extra):
    return OPTIMIZERS[name](net.parameters(), **W.HYPER[name], foreach=fast, **extra)


@pytest.fixture(autouse=True)
def _quiet_single_process_dcp():
    with warnings.catch_warnings():
        # DCP says once that it saves and loads in one process here: that is the intent
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        yield


@pytest.mark.slow
@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_dcp_initialises_state_with_a_zero_lr_step_that_changes_no_parameter(name, fast):
    net = W.model()
    before = [p.detach().clone() for p in net.parameters()]
    opt = _optimizer(name, net, fast)
    _, optim_state = get_state_dict(net, opt)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), before, strict=True))
    assert optim_state["state"], "DCP's state dict holds the optimizer's state"
    assert opt.param_groups[0]["lr"] == W.HYPER[name]["lr"], "DCP put the learning rate back"


@pytest.mark.slow
@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_dcp_save_and_load_resume_identically(name, fast, tmp_path):
    net = W.model()
    opt = _optimizer(name, net, fast)
    W.train(net, opt, range(3))
    model_state, optim_state = get_state_dict(net, opt)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=tmp_path)
    W.train(net, opt, range(3, 6))

    net2 = W.model()
    opt2 = _optimizer(name, net2, fast)
    model_state2, optim_state2 = get_state_dict(net2, opt2)
    loaded = {"model": model_state2, "optim": optim_state2}
    dcp.load(loaded, checkpoint_id=tmp_path)
    set_state_dict(net2, opt2, model_state_dict=loaded["model"], optim_state_dict=loaded["optim"])
    W.train(net2, opt2, range(3, 6))
    for a, b in zip(net2.parameters(), net.parameters(), strict=True):
        assert torch.equal(a, b)


# -- mixed precision ----------------------------------------------------------------------


def _amp_step(net, opt, scaler, x, y, clip=None):
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = torch.nn.functional.mse_loss(net(x), y)
    scaler.scale(loss).backward()
    if clip is not None:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    scaler.step(opt)
    scaler.update()


def _float_model():
    return W.model().float()


@pytest.mark.slow
@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_grad_scaler_scales_exactly_and_skips_steps_with_infinite_gradients(name, fast):
    x, y = (t.float() for t in W.batch(0))
    # Scaling by a power of two and back is exact: the same steps as without a scaler.
    nets = [_float_model(), _float_model()]
    opts = [_optimizer(name, net, fast) for net in nets]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    for _ in range(4):
        _amp_step(nets[0], opts[0], scaler, x, y, clip=1.0)
        opts[1].zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.functional.mse_loss(nets[1](x), y).backward()
        torch.nn.utils.clip_grad_norm_(nets[1].parameters(), 1.0)
        opts[1].step()
    for a, b in zip(*(n.parameters() for n in nets), strict=True):
        assert relative_error(a, b) <= 1e-6
    # A step whose gradients overflow is skipped: parameters and state untouched.
    before = copy.deepcopy(([p.detach() for p in nets[0].parameters()], opts[0].state_dict()))
    scale = scaler.get_scale()
    opts[0].zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = torch.nn.functional.mse_loss(nets[0](x), y)
    scaler.scale(loss).backward()
    next(nets[0].parameters()).grad[0, 0] = float("inf")
    scaler.step(opts[0])
    scaler.update()
    assert same(([p.detach() for p in nets[0].parameters()], opts[0].state_dict()), before)
    assert scaler.get_scale() < scale, "the scaler backed off"


@pytest.mark.slow
@pytest.mark.parametrize("fast", PATHS)
def test_bfloat16_parameters_with_float32_state(fast):
    """Adam's second moment needs float32: (1 - beta2) g^2 is below bfloat16's resolution of v."""
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(1000, generator=g) * 1e-2 for _ in range(100)]
    start = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    second_moments = {}
    for label, dtype, state in (("float32", torch.float32, None), ("bfloat16", torch.bfloat16, None),
                                ("bfloat16+float32 state", torch.bfloat16, torch.float32)):  # fmt: skip
        w = start.to(dtype).detach().clone().requires_grad_()
        opt = OPTIMIZERS["adam"]([w], lr=1e-3, foreach=fast, state_dtype=state)
        for grad in grads:
            w.grad = grad.to(dtype)
            opt.step()
        assert w.dtype == dtype
        assert opt.state[w]["exp_avg_sq"].dtype == (state or dtype)
        second_moments[label] = opt.state[w]["exp_avg_sq"].float()
    exact = second_moments["float32"]
    kept = relative_error(second_moments["bfloat16+float32 state"], exact)
    lost = relative_error(second_moments["bfloat16"], exact)
    # (the compiled fast path keeps its intermediates in float32, so it loses
    # less than eager bfloat16 arithmetic does; float32 state wins on both)
    assert kept < 0.005 and kept < lost / 5, (kept, lost)


@pytest.mark.parametrize("fast", PATHS)
def test_float32_state_survives_a_checkpoint_of_bfloat16_parameters(fast, tmp_path):
    w = torch.randn(50, generator=torch.Generator().manual_seed(0)).bfloat16().requires_grad_()
    opt = OPTIMIZERS["adam"]([w], lr=1e-3, foreach=fast, state_dtype=torch.float32)
    for t in range(5):
        w.grad = torch.full_like(w, 1e-3 * (t + 1))
        opt.step()
    torch.save(opt.state_dict(), tmp_path / "o.pt")
    w2 = w.detach().clone().requires_grad_()
    opt2 = OPTIMIZERS["adam"]([w2], lr=1e-3, foreach=fast, state_dtype=torch.float32)
    opt2.load_state_dict(torch.load(tmp_path / "o.pt", weights_only=True))
    for key in ("exp_avg", "exp_avg_sq"):
        assert opt2.state[w2][key].dtype == torch.float32
        assert torch.equal(opt2.state[w2][key], opt.state[w][key]), "not rounded through bfloat16"
