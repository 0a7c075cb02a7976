"""Invariants that every optimizer and configuration in the table must keep."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

from cases import CASES, all_configs, torch_kwargs
from descentlab.optim import OPTIMIZERS
from helpers import Problem, groups, relative_error, run, same


def quadratic(w: torch.Tensor) -> torch.Tensor:
    target = torch.tensor([1.0, -2.0, 0.5], dtype=w.dtype)
    curvature = torch.tensor([1.0, 3.0, 0.3], dtype=w.dtype)
    return 0.5 * (curvature * (w - target) ** 2).sum()


def descend(name, kwargs, steps=40, dtype=torch.float64):
    w = torch.tensor([3.0, 2.0, -1.0], dtype=dtype, requires_grad=True)
    opt = OPTIMIZERS[name]([w], **kwargs)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = quadratic(w)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    losses.append(quadratic(w).item())
    return losses, w, opt


@pytest.mark.parametrize(("name", "config"), all_configs())
def test_loss_falls_and_rises_with_maximize(name, config):
    falling, _, _ = descend(name, {**config.kwargs, "maximize": False})
    rising, _, _ = descend(name, {**config.kwargs, "maximize": True})
    assert falling[-1] < 0.9 * falling[0]
    assert rising[-1] > 1.1 * rising[0]


@pytest.mark.parametrize(("name", "config"), all_configs())
def test_zero_gradients_change_no_parameter(name, config):
    # Weight decay moves the weights with a zero gradient by design: switch it off.
    kwargs = {**config.kwargs, "weight_decay": 0.0}
    params = Problem().params()
    before = [p.detach().clone() for p in params]
    opt = OPTIMIZERS[name](groups(params, kwargs), **kwargs)
    for _ in range(3):
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p, b)


@pytest.mark.parametrize(("name", "config"), all_configs())
def test_missing_gradients_change_nothing(name, config):
    params = Problem().params()
    opt = OPTIMIZERS[name](groups(params, config.kwargs), **config.kwargs)
    untouched = params[1]
    before = untouched.detach().clone()
    state_before = copy.deepcopy(opt.state.get(untouched, {}))
    for _ in range(3):
        for p in params:
            p.grad = None if p is untouched else torch.ones_like(p)
        opt.step()
    assert torch.equal(untouched, before)
    state_after = opt.state.get(untouched, {})
    assert state_after.keys() == state_before.keys()
    for key, value in state_before.items():
        assert torch.equal(state_after[key], value)
    assert not torch.equal(params[0], Problem().params()[0])  # the others did move


@pytest.mark.parametrize(("name", "config"), all_configs())
def test_groups_with_different_learning_rates(name, config):
    """Two groups behave as two optimizers with those learning rates; lr=0 freezes a group."""
    lr = config.kwargs["lr"]
    kwargs = {k: v for k, v in config.kwargs.items() if k != "lr"}
    a, b, frozen = (Problem().params()[0] for _ in range(3))
    joint = OPTIMIZERS[name](
        [{"params": [a], "lr": lr}, {"params": [b], "lr": 3 * lr}, {"params": [frozen], "lr": 0.0}], **kwargs
    )
    alone = [Problem().params()[0] for _ in range(2)]
    separate = [
        OPTIMIZERS[name]([alone[0]], lr=lr, **kwargs),
        OPTIMIZERS[name]([alone[1]], lr=3 * lr, **kwargs),
    ]
    start = frozen.detach().clone()
    for t in range(1, 6):
        for p in (a, b, frozen, *alone):
            p.grad = torch.full_like(p, float(t)) + p.detach()
        joint.step()
        for opt in separate:
            opt.step()
    assert torch.equal(a, alone[0]) and torch.equal(b, alone[1])
    assert not torch.equal(a, b)
    assert torch.equal(frozen, start)


# -- learning-rate schedulers ---------------------------------------------------

SCHEDULERS = {
    "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 0.95**t),
    "MultiplicativeLR": lambda o: torch.optim.lr_scheduler.MultiplicativeLR(o, lambda t: 0.9),
    "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5),
    "MultiStepLR": lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[3, 7], gamma=0.3),
    "ConstantLR": lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=0.25, total_iters=5),
    "LinearLR": lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=8),
    "ExponentialLR": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9),
    "PolynomialLR": lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=12, power=2.0),
    "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6),
    "CosineAnnealingWarmRestarts": lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=5),
    "CyclicLR": lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, base_lr=0.01, max_lr=0.1, step_size_up=4, cycle_momentum=_has_momentum(o)
    ),
    "OneCycleLR": lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.1, total_steps=40, cycle_momentum=_has_momentum(o)
    ),
    "SequentialLR": lambda o: torch.optim.lr_scheduler.SequentialLR(
        o,
        [
            torch.optim.lr_scheduler.LinearLR(o, 0.2, total_iters=4),
            torch.optim.lr_scheduler.ExponentialLR(o, 0.8),
        ],
        milestones=[4],
    ),
    "ChainedScheduler": lambda o: torch.optim.lr_scheduler.ChainedScheduler(
        [
            torch.optim.lr_scheduler.ConstantLR(o, 0.5, total_iters=3),
            torch.optim.lr_scheduler.ExponentialLR(o, 0.9),
        ]
    ),
    "ReduceLROnPlateau": lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=1, factor=0.5),
}


def _has_momentum(opt) -> bool:
    group = opt.param_groups[0]
    return "betas" in group or group.get("momentum", 0) > 0


def test_every_torch_scheduler_is_covered():
    module = torch.optim.lr_scheduler
    found = {
        name
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and (issubclass(obj, module.LRScheduler) or obj is module.ReduceLROnPlateau)
        and obj.__module__ == module.__name__
        and name not in {"LRScheduler", "_LRScheduler"}
    }
    assert found <= set(SCHEDULERS), f"add these schedulers to the test: {sorted(found - set(SCHEDULERS))}"


SCHEDULED = {"sgd": {"lr": 0.05, "momentum": 0.9}, "adagrad": {"lr": 0.1}, "rmsprop": {"lr": 0.01, "momentum": 0.5},
             "adam": {"lr": 0.05}, "adamw": {"lr": 0.05}}  # fmt: skip


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
@pytest.mark.parametrize("name", sorted(SCHEDULED))
def test_schedulers_take_effect_as_in_torch(name, scheduler):
    """Each scheduler drives descentlab's optimizer exactly as it drives torch.optim's."""
    kwargs = SCHEDULED[name]
    trajectories, lrs, momenta = [], [], []
    for make in (OPTIMIZERS[name], CASES[name].torch_cls):
        w = torch.tensor([3.0, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
        opt = make([w], **kwargs)
        sched = SCHEDULERS[scheduler](opt)
        seen_lr, seen_momentum = [], []
        for _ in range(20):
            opt.zero_grad()
            loss = quadratic(w)
            loss.backward()
            opt.step()
            seen_lr.append(float(opt.param_groups[0]["lr"]))
            seen_momentum.append(str(opt.param_groups[0].get("betas", opt.param_groups[0].get("momentum"))))
            sched.step(1.0) if scheduler == "ReduceLROnPlateau" else sched.step()
        trajectories.append(w.detach().clone())
        lrs.append(seen_lr)
        momenta.append(seen_momentum)
    assert len(set(lrs[0])) > 1, "the scheduler never changed lr: the test would prove nothing"
    assert lrs[0] == lrs[1]
    assert momenta[0] == momenta[1]
    assert relative_error(trajectories[0], trajectories[1]) <= 1e-12


# -- checkpoints, copies, dtypes -------------------------------------------------


@pytest.mark.parametrize(("name", "config"), all_configs())
def test_state_dict_resumes_bit_exactly(name, config, tmp_path):
    problem = Problem()
    make = OPTIMIZERS[name]

    def steps(params, opt, ts):
        for t in ts:
            for i, p in enumerate(params):
                g = problem.grad(i, p.detach().numpy(), t)
                p.grad = None if g is None else torch.as_tensor(g)
            opt.step()

    params = problem.params()
    opt = make(groups(params, config.kwargs), **config.kwargs)
    steps(params, opt, range(1, 11))
    torch.save({"params": [p.detach() for p in params], "optimizer": opt.state_dict()}, tmp_path / "ckpt.pt")
    steps(params, opt, range(11, 21))

    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    resumed = [p.clone().requires_grad_() for p in saved["params"]]
    opt2 = make(groups(resumed, config.kwargs), **config.kwargs)
    opt2.load_state_dict(saved["optimizer"])
    steps(resumed, opt2, range(11, 21))
    for a, b in zip(params, resumed):
        assert torch.equal(a, b)
    for a, b in zip(params, resumed):
        assert opt.state[a].keys() == opt2.state[b].keys()
        for key in opt.state[a]:
            assert torch.equal(opt.state[a][key], opt2.state[b][key])


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
@pytest.mark.parametrize("name", ["adagrad", "rmsprop", "adam", "adamw"])
def test_a_torch_checkpoint_with_the_step_saved_as_a_number_loads_as_in_torch(name, fast):
    """torch < 1.12 saved ``step`` as a Python number; torch.optim's classes still load such checkpoints."""
    make, reference = OPTIMIZERS[name], CASES[name].torch_cls
    flag = "fused" if "fused" in inspect.signature(make.__init__).parameters else "foreach"
    w = torch.tensor([3.0, 2.0, -1.0], requires_grad=True)
    source = reference([w], lr=0.1)
    for _ in range(3):
        w.grad = torch.tensor([0.5, -1.0, 2.0])
        source.step()
    saved = source.state_dict()
    saved["state"][0]["step"] = 3
    out = []
    for load in (reference, lambda p, **kw: make(p, **kw, **{flag: fast})):
        v = w.detach().clone().requires_grad_()
        opt = load([v], lr=0.1)
        opt.load_state_dict(copy.deepcopy(saved))
        for _ in range(2):
            v.grad = torch.tensor([0.5, -1.0, 2.0])
            opt.step()
        out.append((v.detach(), opt.state[v]["step"]))
    (a, step_a), (b, step_b) = out
    assert torch.equal(step_a, step_b) and step_b.item() == 5
    assert relative_error(a, b) <= 1e-6


def test_load_state_dict_post_hooks_see_the_state_as_the_optimizer_keeps_it():
    w = torch.randn(64, 64, requires_grad=True)
    opt = OPTIMIZERS["adam"]([w], lr=0.1, lean_state="8bit")
    w.grad = torch.randn(64, 64)
    opt.step()
    seen = []
    opt.register_load_state_dict_post_hook(lambda o: seen.append(o.state[w]["exp_avg"].dtype))
    opt.load_state_dict(opt.state_dict())
    assert seen == [torch.uint8]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize(("name", "config"), all_configs())
def test_parameters_and_state_keep_their_dtype(name, config, dtype):
    _, w, opt = descend(name, config.kwargs, steps=5, dtype=dtype)
    assert w.dtype == dtype
    assert torch.isfinite(w).all()
    for key, value in opt.state[w].items():
        assert value.dtype == (torch.float32 if key == "step" else dtype), key


@pytest.mark.parametrize(("name", "config"), all_configs())
def test_deepcopy_is_independent_and_identical(name, config):
    params = Problem().params()
    opt = OPTIMIZERS[name](groups(params, config.kwargs), **config.kwargs)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    params2, opt2 = copy.deepcopy((params, opt))
    for ps, o in ((params, opt), (params2, opt2)):
        for p in ps:
            p.grad = p.detach() * 0.5 - 1
        o.step()
    for a, b in zip(params, params2):
        assert torch.equal(a, b) and a is not b
    assert type(opt2) is type(opt)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_repr_names_class_and_hyperparameters(name):
    opt = OPTIMIZERS[name]([torch.zeros(2, requires_grad=True)], lr=0.125)
    text = repr(opt)
    assert text.startswith(OPTIMIZERS[name].__name__ + " (")
    assert "lr: 0.125" in text


# -- torch.optim's argument conventions -------------------------------------------


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_signature_matches_torch_optim(name):
    """Same argument names, order, kinds and defaults: changing the import is enough."""
    ours = inspect.signature(OPTIMIZERS[name].__init__).parameters
    theirs = inspect.signature(CASES[name].torch_cls.__init__).parameters
    positional = [n for n, p in theirs.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [n for n, p in ours.items() if p.kind is p.POSITIONAL_OR_KEYWORD] == positional
    for n, p in theirs.items():
        assert n in ours, f"{name} lacks torch's argument {n}"
        assert ours[n].kind == p.kind, n
        assert ours[n].default == p.default, n


@pytest.mark.parametrize(("name", "config"), all_configs())
def test_tensor_learning_rate_works_as_in_torch(name, config):
    """A 0-dim tensor lr gives the float's numbers, and changing it in place takes effect."""
    make, kwargs = OPTIMIZERS[name], dict(config.kwargs)
    as_float, _ = run(make, kwargs)
    as_tensor, _ = run(make, {**kwargs, "lr": torch.tensor(kwargs["lr"], dtype=torch.float64)})
    for a, b in zip(as_float, as_tensor):
        assert torch.equal(a, b)
    lr = torch.tensor(kwargs.pop("lr"))
    w = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = make([w], lr=lr, **kwargs)
    assert opt.param_groups[0]["lr"] is lr
    lr.fill_(0.0)
    w.grad = torch.ones_like(w)
    opt.step()
    assert torch.equal(w, torch.ones(3, dtype=torch.float64))


@pytest.mark.slow  # the fast path compiles the rule for each configuration
@pytest.mark.parametrize(("name", "config"), all_configs())
def test_implementation_flags_are_accepted_and_change_no_number(name, config):
    """False selects the per-tensor loop, bit for bit; True the fast path, equal to rounding."""
    accepted = inspect.signature(OPTIMIZERS[name].__init__).parameters
    baseline, _ = run(OPTIMIZERS[name], dict(config.kwargs))  # small: automatic keeps the per-tensor path
    flags = ["foreach", "fused"] if "fused" in accepted else ["foreach"]
    for flag in flags:
        params, opt = run(OPTIMIZERS[name], {**config.kwargs, flag: False})
        assert all(torch.equal(a, b) for a, b in zip(params, baseline)), f"{flag}=False"
        assert opt.implementation() == ["per-tensor", "per-tensor"]
        params, opt = run(OPTIMIZERS[name], {**config.kwargs, flag: True})
        assert max(relative_error(a, b) for a, b in zip(params, baseline)) <= 1e-12, f"{flag}=True"
        assert all(i.startswith("fast") for i in opt.implementation()), opt.implementation()


def _takes(flag: str) -> list:
    return [
        p for p in all_configs() if flag in inspect.signature(OPTIMIZERS[p.values[0]].__init__).parameters
    ]


@pytest.mark.parametrize(("name", "config"), _takes("capturable"))
def test_capturable_gives_the_same_numbers(name, config):
    baseline, _ = run(OPTIMIZERS[name], dict(config.kwargs))
    params, opt = run(OPTIMIZERS[name], {**config.kwargs, "capturable": True})
    for a, b in zip(params, baseline):
        assert relative_error(a, b) <= 1e-12
    assert all(s["step"].device == p.device for p, s in opt.state.items())


@pytest.mark.parametrize(("name", "config"), all_configs(torch_only=True))
def test_complex_parameters_match_torch(name, config):
    kwargs = dict(config.kwargs)
    results = []
    for make in (OPTIMIZERS[name], CASES[name].torch_cls):
        z = torch.tensor([1 + 2j, -0.5 + 0.1j, 3 - 1j], dtype=torch.complex128, requires_grad=True)
        opt = make([z], **(kwargs if make is OPTIMIZERS[name] else torch_kwargs(kwargs)))
        for _ in range(20):
            opt.zero_grad()
            loss = ((z - (0.5 - 1j)).abs() ** 2).sum()
            (-loss if kwargs.get("maximize") else loss).backward()
            opt.step()
        results.append(torch.view_as_real(z.detach()))
    assert relative_error(results[0], results[1]) <= 1e-12


# -- the non-finite gradient guard -----------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("name", "config"), all_configs())
def test_skip_nonfinite_leaves_everything_untouched_and_counts(name, config, bad):
    params = Problem().params()
    opt = OPTIMIZERS[name](groups(params, config.kwargs), **config.kwargs, skip_nonfinite=True)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    before = copy.deepcopy(([p.detach() for p in params], opt.state_dict()))
    for p in params:
        p.grad = torch.ones_like(p)
    params[2].grad = torch.tensor(bad, dtype=torch.float64)  # the 0-dim parameter in group 1
    opt.step()
    assert opt.skipped_steps == 1
    after = ([p.detach() for p in params], opt.state_dict())
    assert same(after[0], before[0])
    assert same(after[1]["state"], before[1]["state"])
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()  # a finite step proceeds, and the count survives a checkpoint
    assert not same([p.detach() for p in params], before[0])
    fresh = OPTIMIZERS[name](groups(Problem().params(), config.kwargs), **config.kwargs, skip_nonfinite=True)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.skipped_steps == 1


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_without_the_guard_a_nan_gradient_flows_into_the_parameters(name):
    w = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = OPTIMIZERS[name]([w], lr=0.1)
    w.grad = torch.tensor([1.0, float("nan"), 1.0], dtype=torch.float64)
    opt.step()
    assert torch.isnan(w[1]) and opt.skipped_steps == 0
