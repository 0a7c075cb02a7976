"""Compiled training steps, hooks, parameter-group edits, named parameters, and switching library mid-run."""

from __future__ import annotations

import pytest
import torch

import dist_workers as W
from cases import CASES
from descentlab.optim import OPTIMIZERS
from helpers import relative_error

PATHS = [pytest.param(True, id="fast"), pytest.param(False, id="per-tensor")]


def _compiled_run(make, steps=12):
    """A training step wrapped in torch.compile; returns parameters, graphs after warm-up and at the end, breaks."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    net = W.model()
    opt = make(net.parameters())
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)

    @torch.compile
    def train_step(x, y):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        return loss

    warm = None
    for t in range(steps):
        train_step(*W.batch(t))
        sched.step()
        if t == 2:
            warm = (counters["stats"]["unique_graphs"], sum(counters["graph_break"].values()))
    end = (counters["stats"]["unique_graphs"], sum(counters["graph_break"].values()))
    return [p.detach().clone() for p in net.parameters()], warm, end


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_compiled_training_step_neither_recompiles_nor_breaks_more_than_torch_optim(name):
    def hyper():  # a tensor lr, as torch advises for compiled steps under a scheduler
        return {**W.HYPER[name], "lr": torch.tensor(W.HYPER[name]["lr"], dtype=torch.float64)}

    ours, warm, end = _compiled_run(lambda ps: OPTIMIZERS[name](ps, **hyper()))
    _, torch_warm, torch_end = _compiled_run(lambda ps: CASES[name].torch_cls(ps, **hyper()))
    assert end[0] == warm[0], f"no graph compiled after the warm-up steps: {warm} -> {end}"
    breaks_per_step = (end[1] - warm[1]) / 9
    torch_breaks_per_step = (torch_end[1] - torch_warm[1]) / 9
    assert breaks_per_step <= torch_breaks_per_step, (breaks_per_step, torch_breaks_per_step)
    eager = W.model()
    opt = OPTIMIZERS[name](eager.parameters(), **hyper())
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)
    for t in range(12):
        opt.zero_grad()
        torch.nn.functional.mse_loss(eager(W.batch(t)[0]), W.batch(t)[1]).backward()
        opt.step()
        sched.step()
    for a, b in zip(ours, eager.parameters(), strict=True):
        assert relative_error(a, b) <= 1e-12


def _graphs_of_a_compiled_step(make):
    """Graphs and breaks of ``opt.step()`` compiled alone, called 6 times after 2 eager steps."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    net = W.model()
    opt = make(net.parameters())
    step = torch.compile(opt.step)
    for t in range(8):
        if t == 2:
            counters.clear()
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(W.batch(t)[0]), W.batch(t)[1]).backward()
        opt.step() if t < 2 else step()
    return counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())


@pytest.mark.slow
def test_a_step_compiled_after_fast_eager_steps_neither_recompiles_nor_breaks_more_than_torch_optim():
    # the fast path's eager steps leave optimizer.state counting its changes (see _flat.StateTable)
    ours = _graphs_of_a_compiled_step(lambda ps: OPTIMIZERS["adam"](ps, lr=0.01, fused=True))
    theirs = _graphs_of_a_compiled_step(lambda ps: torch.optim.Adam(ps, lr=0.01))
    assert ours[0] <= theirs[0] and ours[1] <= theirs[1], (ours, theirs)


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_step_hooks_run_around_each_step(name, fast):
    net = W.model()
    opt = OPTIMIZERS[name](net.parameters(), **W.HYPER[name], foreach=fast)
    calls = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", o is opt)))
    post = opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", o is opt)))
    W.train(net, opt, range(2))
    pre.remove()
    post.remove()
    W.train(net, opt, range(2, 3))
    assert calls == [("pre", True), ("post", True)] * 2


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_param_group_edits_between_steps_take_effect_as_in_torch(name, fast):
    def edit(opt, t):
        group = opt.param_groups[0]
        group["lr"] = W.HYPER[name]["lr"] * (1 + t)
        group["weight_decay"] = 0.01 * t
        if "betas" in group:
            group["betas"] = (0.8, 0.99)
        if group.get("momentum"):
            group["momentum"] = 0.5

    runs = []
    for make in (lambda ps: OPTIMIZERS[name](ps, **W.HYPER[name], foreach=fast),
                 lambda ps: CASES[name].torch_cls(ps, **W.HYPER[name])):  # fmt: skip
        net = W.model()
        opt = make(net.parameters())
        for t in range(5):
            edit(opt, t)
            W.train(net, opt, range(t, t + 1))
        runs.append(list(net.parameters()))
    for a, b in zip(*runs, strict=True):
        assert relative_error(a, b) <= 1e-12


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_named_parameters_reach_the_state_dict_and_load_both_ways(name):
    net = W.model()
    opt = OPTIMIZERS[name](net.named_parameters(), **W.HYPER[name])
    W.train(net, opt, range(2))
    saved = opt.state_dict()
    assert saved["param_groups"][0]["param_names"] == [n for n, _ in net.named_parameters()]
    theirs = CASES[name].torch_cls(W.model().named_parameters(), **W.HYPER[name])
    theirs.load_state_dict(saved)
    back = OPTIMIZERS[name](W.model().named_parameters(), **W.HYPER[name])
    back.load_state_dict(theirs.state_dict())
    assert back.state_dict()["param_groups"][0]["param_names"] == saved["param_groups"][0]["param_names"]


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_switching_library_mid_training_both_ways(name, fast):
    """torch.optim for 3 steps, descentlab for 3 (and back) equals either library for all 6."""
    ours = lambda ps: OPTIMIZERS[name](ps, **W.HYPER[name], foreach=fast)  # noqa: E731
    theirs = lambda ps: CASES[name].torch_cls(ps, **W.HYPER[name])  # noqa: E731
    for first, second in ((theirs, ours), (ours, theirs)):
        net = W.model()
        opt = first(net.parameters())
        W.train(net, opt, range(3))
        switched = second(net.parameters())
        switched.load_state_dict(opt.state_dict())
        W.train(net, switched, range(3, 6))
        for a, b in zip(net.parameters(), W.reference(name, 6), strict=True):
            assert relative_error(a, b) <= 1e-12
