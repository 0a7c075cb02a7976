"""The fast path (one compiled pass over flat buffers): same numbers, same state, wherever users put it."""

from __future__ import annotations

import collections
import copy
import inspect
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn

from cases import CASES, all_configs, torch_kwargs
from descentlab.optim import OPTIMIZERS, SGD, Adagrad, Adam, _flat
from helpers import Problem, groups, relative_error, run, same

TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-6}
# On CUDA the compiled kernel is Triton's, whose float32 division is not correctly
# rounded by default (inductor's eager_numerics.division_rounding is off) and which
# may contract a * b + c into one fused multiply-add, so after 50 steps it can
# differ from eager CUDA ops by a few ulp. Measured on an H200 with torch 2.11, the
# worst of the 42 configurations: 3.2e-6 (Adagrad, optax's convention with
# lr_decay, a 0-dim parameter at -0.012); a wrong term in a rule is orders larger.
CUDA_TOLERANCE = 1e-5
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none here")


def force(name: str) -> str:
    """The flag that forces the fast path: torch's `fused` where it exists, else `foreach`."""
    return "fused" if "fused" in inspect.signature(OPTIMIZERS[name].__init__).parameters else "foreach"


def fast(name: str, **kwargs):
    return OPTIMIZERS[name], {**kwargs, force(name): True}


def slow(name: str, **kwargs):
    return OPTIMIZERS[name], {**kwargs, force(name): False}


def assert_close(a, b, dtype=torch.float64):
    for i, (x, y) in enumerate(zip(a, b)):
        assert relative_error(x, y) <= TOLERANCE[dtype], f"parameter {i}: {relative_error(x, y):.3g}"


def has_torch_kernel(name: str, config) -> bool:
    """Whether the fast path runs torch's fused kernel for this configuration (torch's rule)."""
    return OPTIMIZERS[name].torch_fused is not None and config.torch


# Compiling the rule for each configuration takes seconds: the fast loop runs torch's kernels for
# the whole table, and the compiled rule in the tests that do not take this fixture.
@pytest.fixture(params=["torch kernels", pytest.param("compiled kernels", marks=pytest.mark.slow)])
def kernels(request, monkeypatch):
    """Both kernels the fast path can run on the CPU: torch's fused ones where the rule is torch's, and
    descentlab's compiled rule (everywhere else, and as the fallback where torch lacks a kernel)."""
    monkeypatch.setattr(_flat, "TORCH_KERNELS", request.param == "torch kernels")
    return request.param


def expected_kernel(name: str, config, kernels: str) -> str:
    return (
        "torch's fused kernel"
        if kernels == "torch kernels" and has_torch_kernel(name, config)
        else "compiled kernel"
    )


# -- same numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "config"), all_configs())
def test_fast_path_matches_the_per_tensor_path(name, config, dtype, kernels):
    """60 steps, two groups, a changing lr, a parameter that misses gradients: every configuration,
    with torch's kernels where the rule is torch's and with descentlab's compiled rule."""
    if kernels == "torch kernels" and not has_torch_kernel(name, config):
        pytest.skip("torch has no fused kernel for this rule: the compiled-kernel case covers it")
    closed = dtype == torch.float64
    ours, opt = run(*fast(name, **config.kwargs), dtype, closed_loop=closed)
    theirs, ref = run(*slow(name, **config.kwargs), dtype, closed_loop=closed)
    assert all(i.startswith("fast") for i in opt.implementation()), opt.implementation()
    assert all(i.endswith(f"({expected_kernel(name, config, kernels)})") for i in opt.implementation())
    assert_close(ours, theirs, dtype)
    for a, b in zip(ours, theirs):
        assert opt.state[a].keys() == ref.state[b].keys()
        for key in ref.state[b]:
            assert opt.state[a][key].dtype == ref.state[b][key].dtype
            assert relative_error(opt.state[a][key], ref.state[b][key]) <= TOLERANCE[dtype], key


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("name", "config"), [c for c in all_configs(torch_only=True) if OPTIMIZERS[c.values[0]].torch_fused]
)
def test_with_torch_kernels_the_fast_path_matches_torch_optims_fused_path_to_a_few_ulps(name, config, dtype):
    """The same kernel on one flat buffer instead of per tensor: the same numbers but for the last bits.

    torch's kernel rounds its vectorised body and its scalar tail differently, and which
    elements fall into the tail depends on the tensor's length, so a few ulps may differ.
    Every parameter gets a gradient at every step: torch's fused SGD fails on a missing one.
    """
    problem = Problem()
    out = []
    for make, kwargs in (
        fast(name, **config.kwargs),
        (CASES[name].torch_cls, {**torch_kwargs(config.kwargs), "fused": True}),
    ):
        params = problem.params(dtype)
        opt = make(groups(params, config.kwargs), **kwargs)
        base = [g["lr"] for g in opt.param_groups]
        sign = -1.0 if config.kwargs.get("maximize") else 1.0
        for t in range(1, 31):
            for group, lr in zip(opt.param_groups, base):
                group["lr"] = lr * problem.lr_factor(t)
            for i, p in enumerate(params):
                g = problem.grad(i, problem.init[i], t, sign)
                p.grad = torch.as_tensor(problem.noise[i][t] if g is None else g, dtype=dtype)
            opt.step()
        out.append(params)
    ulps = 16 * torch.finfo(dtype).eps
    for i, (a, b) in enumerate(zip(*out)):
        assert relative_error(a, b) <= ulps, f"parameter {i}: {relative_error(a, b):.3g}"


@pytest.mark.parametrize("name", ["sgd", "adagrad", "adam", "adamw"])
def test_without_torchs_kernel_the_compiled_rule_takes_over(name, monkeypatch):
    """An older torch lacks ``torch._fused_*_``: the same numbers from descentlab's kernel, no warning."""
    kernel = {
        "sgd": "_fused_sgd_",
        "adagrad": "_fused_adagrad_",
        "adam": "_fused_adam_",
        "adamw": "_fused_adamw_",
    }[name]
    monkeypatch.delattr(torch, kernel)
    monkeypatch.setattr(_flat, "_TORCH_KERNELS_MISSING", {})
    monkeypatch.setattr(_flat, "_TORCH_KERNELS_RAN", set())
    kwargs = {"lr": 0.05, "momentum": 0.9} if name == "sgd" else {"lr": 0.05}
    ours, opt = run(*fast(name, **kwargs), torch.float64)
    theirs, _ = run(*slow(name, **kwargs), torch.float64)
    assert_close(ours, theirs)
    assert opt.implementation()[0].endswith("(compiled kernel)"), opt.implementation()
    assert (OPTIMIZERS[name], torch.float64) in _flat._TORCH_KERNELS_MISSING


# -- same state: checkpoints move between the paths -----------------------------------------


def _steps(params, opt, ts):
    problem = Problem()
    for t in ts:
        for i, p in enumerate(params):
            g = problem.grad(i, p.detach().numpy(), t)
            p.grad = None if g is None else torch.as_tensor(g)
        opt.step()


@pytest.mark.parametrize(("name", "config"), all_configs())
def test_a_checkpoint_moves_between_the_paths(name, config, tmp_path, kernels):
    if kernels == "torch kernels" and not has_torch_kernel(name, config):
        pytest.skip("torch has no fused kernel for this rule: the compiled-kernel case covers it")
    kwargs = dict(config.kwargs)
    results = {}
    for first, second in (("fast", "slow"), ("slow", "fast"), ("fast", "fast")):
        make1, kw1 = (fast if first == "fast" else slow)(name, **kwargs)
        params = Problem().params()
        opt = make1(groups(params, kwargs), **kw1)
        _steps(params, opt, range(1, 26))
        torch.save({"p": [p.detach() for p in params], "o": opt.state_dict()}, tmp_path / "c.pt")
        _steps(params, opt, range(26, 51))
        saved = torch.load(tmp_path / "c.pt", weights_only=True)
        make2, kw2 = (fast if second == "fast" else slow)(name, **kwargs)
        resumed = [p.clone().requires_grad_() for p in saved["p"]]
        opt2 = make2(groups(resumed, kwargs), **kw2)
        opt2.load_state_dict(saved["o"])
        # as torch.optim's, a load takes the checkpoint's implementation flags too: set this one's again
        for group in opt2.param_groups:
            group[force(name)] = kw2[force(name)]
        _steps(resumed, opt2, range(26, 51))
        assert opt2.implementation()[0].startswith("fast" if second == "fast" else "per-tensor")
        results[(first, second)] = (params, resumed, opt, opt2)
    # within the fast path a resume is bit-exact; across paths, the same to rounding
    params, resumed, opt, opt2 = results[("fast", "fast")]
    assert all(torch.equal(a, b) for a, b in zip(params, resumed))
    for params, resumed, _, _ in results.values():
        assert_close(resumed, params)
    # the format is the same whichever path wrote it
    fast_sd, slow_sd = results[("fast", "slow")][2].state_dict(), results[("slow", "fast")][2].state_dict()
    assert fast_sd["state"].keys() == slow_sd["state"].keys()
    for k in fast_sd["state"]:
        for key, value in fast_sd["state"][k].items():
            other = slow_sd["state"][k][key]
            assert (value.shape, value.dtype, value.device) == (other.shape, other.dtype, other.device), key


@pytest.mark.parametrize(("name", "config"), all_configs(torch_only=True))
def test_a_fast_path_checkpoint_loads_into_torch_optim(name, config, kernels):
    params = Problem().params()
    make, kw = fast(name, **config.kwargs)
    opt = make(groups(params, config.kwargs), **kw)
    _steps(params, opt, range(1, 11))
    theirs = CASES[name].torch_cls(groups([p.detach().clone().requires_grad_() for p in params], config.kwargs),
                                   **torch_kwargs(config.kwargs))  # fmt: skip
    theirs.load_state_dict(opt.state_dict())
    for a, b in zip(opt.param_groups[0]["params"], theirs.param_groups[0]["params"]):
        for key, value in theirs.state[b].items():
            assert torch.equal(value, opt.state[a][key])


# -- correct wherever users put it ------------------------------------------------------------


def _twins():
    """The same small model twice, one for each path."""
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double())
    x = torch.randn(16, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return models, x


@pytest.mark.parametrize("set_to_none", [True, False])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_real_training_loop_with_zero_grad(name, set_to_none):
    models, x = _twins()
    opts = [OPTIMIZERS[name](models[0].parameters(), lr=0.01, **{force(name): True}),
            OPTIMIZERS[name](models[1].parameters(), lr=0.01, **{force(name): False})]  # fmt: skip
    for _ in range(30):
        for model, opt in zip(models, opts):
            opt.zero_grad(set_to_none=set_to_none)
            if set_to_none:
                assert all(p.grad is None for p in model.parameters())
            model(x).pow(2).mean().backward()
            opt.step()
    assert_close(list(models[0].parameters()), list(models[1].parameters()))
    assert opts[0].implementation()[0].startswith("fast")
    storages = {p.grad.untyped_storage().data_ptr() for p in models[0].parameters()}
    assert len(storages) == 1, "gradients live in one flat buffer after a fast step"


def wiggle(p: torch.Tensor, t: int) -> torch.Tensor:
    """A bounded gradient that changes with the step (complex sines overflow)."""
    x = p.detach()
    return x * (0.1 * t / (1 + x.abs())) + 0.1 if x.is_complex() else torch.sin(x * t) + 0.1


def _pair(name, build, kwargs, steps, every_step=None):
    """Run ``build`` (which makes parameters) under both paths, calling ``every_step(t, params, opt)``."""
    out = []
    for maker in (fast, slow):
        params = build()
        make, kw = maker(name, **kwargs)
        opt = make(params, **kw)
        flat = [p for g in opt.param_groups for p in g["params"]]
        for t in range(1, steps + 1):
            if every_step:
                every_step(t, flat, opt)
            else:
                for p in flat:
                    p.grad = wiggle(p, t)
            opt.step()
        out.append((flat, opt))
    return out


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_gradients_that_are_views_of_another_buffer(name):
    """As DDP's gradient_as_bucket_view: gradients live in someone else's flat buffer."""

    def assign(t, params, opt):
        bucket = torch.empty(sum(p.numel() for p in params), dtype=torch.float64)
        offset = 0
        for p in params:
            view = bucket[offset : offset + p.numel()].view_as(p)
            view.copy_(torch.cos(p.detach() * t))
            p.grad = view
            offset += p.numel()

    (a, _), (b, _) = _pair(name, lambda: Problem().params(), {"lr": 0.01}, 20, assign)
    assert_close(a, b)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_add_param_group_and_different_hyperparameters_per_group(name):
    extra = {"sgd": {"momentum": 0.5}, "adagrad": {"lr_decay": 0.1}, "rmsprop": {"alpha": 0.9},
             "adam": {"betas": (0.8, 0.9)}, "adamw": {"weight_decay": 0.3}}[name]  # fmt: skip

    def step(t, params, opt):
        if t == 6:
            opt.add_param_group({"params": late[len(runs)], "lr": 0.02, **extra})
        for g in opt.param_groups:
            for p in g["params"]:
                p.grad = torch.sin(p.detach() * t) + 0.1

    late = [[torch.ones(3, 2, dtype=torch.float64, requires_grad=True)] for _ in range(2)]
    runs = []
    for maker in (fast, slow):
        params = Problem().params()
        make, kw = maker(name, lr=0.01)
        opt = make(params, **kw)
        for t in range(1, 21):
            step(t, params, opt)
            opt.step()
        runs.append(([p for g in opt.param_groups for p in g["params"]], opt))
    assert_close(runs[0][0], runs[1][0])
    assert runs[0][1].implementation()[1].startswith("fast")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_parameters_without_gradients_in_some_steps_keep_their_own_step_counts(name):
    def step(t, params, opt):
        for i, p in enumerate(params):
            p.grad = None if (i + t) % 3 == 0 else torch.sin(p.detach() * t) + 0.1

    (a, fa), (b, sb) = _pair(name, lambda: Problem().params(), {"lr": 0.01}, 30, step)
    assert_close(a, b)
    for p, q in zip(a, b):
        if "step" in sb.state[q]:
            assert fa.state[p]["step"].item() == sb.state[q]["step"].item()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_mixed_dtypes_complex_and_non_contiguous_parameters(name):
    def build():
        g = torch.Generator().manual_seed(3)
        return [
            torch.randn(4, 3, dtype=torch.float64, generator=g).requires_grad_(),
            torch.randn(5, dtype=torch.float32, generator=g).requires_grad_(),
            torch.randn(3, 6, dtype=torch.float64, generator=g)
            .t()
            .detach()
            .requires_grad_(),  # strides (1, 6)
            torch.randn(4, dtype=torch.complex128, generator=g).requires_grad_(),
            torch.randn(2, 2, dtype=torch.bfloat16, generator=g).requires_grad_(),
        ]

    (a, fa), (b, _) = _pair(name, build, {"lr": 0.01}, 25)
    assert [p.dtype for p in a] == [p.dtype for p in b]
    assert a[2].stride() == (1, 6), "a non-contiguous parameter keeps its layout"
    for x, y in zip(a, b):
        tolerance = {torch.float32: 1e-6, torch.bfloat16: 2e-2}.get(x.dtype, 1e-12)
        assert relative_error(torch.view_as_real(x) if x.is_complex() else x,
                              torch.view_as_real(y) if y.is_complex() else y) <= tolerance  # fmt: skip
    assert (
        "3 flat bucket(s)" in fa.implementation()[0]
    )  # float64 (with complex128's parts), float32, bfloat16


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_complex_parameter_after_a_real_one_of_odd_length_starts_on_a_pair(name):
    def build():
        g = torch.Generator().manual_seed(5)
        return [
            torch.randn(5, dtype=torch.float32, generator=g).requires_grad_(),
            torch.randn(3, dtype=torch.complex64, generator=g).requires_grad_(),
            torch.randn(3, dtype=torch.float32, generator=g).requires_grad_(),
        ]

    (a, fa), (b, _) = _pair(name, build, {"lr": 0.01}, 10)
    for x, y in zip(a, b):
        assert relative_error(torch.view_as_real(x) if x.is_complex() else x,
                              torch.view_as_real(y) if y.is_complex() else y) <= 1e-6  # fmt: skip
    assert "1 flat bucket(s)" in fa.implementation()[0]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_complex_parameter_may_come_first_in_a_bucket(name):
    """The bucket's state buffers hold real parts whichever parameter leads it."""

    def build():
        g = torch.Generator().manual_seed(4)
        return [
            torch.randn(6, dtype=torch.complex128, generator=g).requires_grad_(),
            torch.randn(3, 2, dtype=torch.float64, generator=g).requires_grad_(),
        ]

    kwargs = {"lr": 0.01, **({"momentum": 0.9} if name in ("sgd", "rmsprop") else {})}
    (a, fa), (b, _) = _pair(name, build, kwargs, 10)
    assert_close([torch.view_as_real(a[0]), a[1]], [torch.view_as_real(b[0]), b[1]])
    assert "1 flat bucket(s)" in fa.implementation()[0]
    assert fa.state[a[0]][next(k for k in fa.state[a[0]] if k != "step")].dtype == torch.complex128


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_moved_parameters_and_changed_options_rebuild_the_buckets(name):
    """model.to(...), a parameter whose data is replaced, and amsgrad/momentum turned on mid-run."""
    switch = {"sgd": {"momentum": 0.9}, "rmsprop": {"momentum": 0.9, "centered": True},
              "adam": {"amsgrad": True}, "adamw": {"amsgrad": True}, "adagrad": {"eps": 1e-3}}[name]  # fmt: skip

    def step(t, params, opt):
        if t == 8:
            params[0].data = params[0].data.clone()  # as module.to() does
        if t == 15:
            opt.param_groups[0].update(switch)
        for p in params:
            p.grad = torch.sin(p.detach() * t) + 0.1

    (a, fa), (b, _) = _pair(name, lambda: Problem().params(), {"lr": 0.01}, 25, step)
    assert_close(a, b)
    assert fa.implementation()[0].startswith("fast")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_set_from_outside_is_what_the_next_step_uses(name):
    """As ZeroRedundancyOptimizer.load_state_dict, and users resetting a moment, do: between steps,
    a state tensor assigned, a parameter's whole entry replaced or removed, the whole table replaced."""
    kwargs = {"lr": 0.01, **({"momentum": 0.9} if name == "sgd" else {})}
    saved = {}

    def step(t, params, opt, meddle=True):
        p, q = params[0], params[1]
        if t == 3:
            saved.update(copy.deepcopy(dict(opt.state[p])))
        if meddle and t == 6:
            moment = next(k for k in opt.state[p] if k != "step")
            opt.state[p][moment] = torch.full_like(opt.state[p][moment], 0.25)
        if meddle and t == 10:
            opt.state[p] = copy.deepcopy(saved)  # the state (and step count) of step 3
        if meddle and t == 14:
            del opt.state[q]  # q starts afresh
        if meddle and t == 18:
            opt.state = collections.defaultdict(dict)  # everything starts afresh
        for x in params:
            x.grad = wiggle(x, t)

    (a, fa), (b, _) = _pair(name, lambda: Problem().params(), kwargs, 24, step)
    assert_close(a, b)
    assert fa.implementation()[0].startswith("fast")
    (c, _), _ = _pair(name, lambda: Problem().params(), kwargs, 24, lambda *args: step(*args, meddle=False))
    assert all(relative_error(x, y) > 1e-6 for x, y in zip(a[:2], c[:2])), "each change made a difference"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_written_in_place_is_what_the_next_step_uses(name):
    """The state tensors are views into the fast path's buffers: a step count or a moment written in
    place (``state[p]["step"].zero_()``, an in-place checkpoint load) counts from the next step on."""
    kwargs = {"lr": 0.01, **{"sgd": {"momentum": 0.9}, "adagrad": {"lr_decay": 0.5}}.get(name, {})}

    def step(t, params, opt, meddle=True):
        p = params[0]
        if meddle and t == 6:
            opt.state[p]["step"].zero_()
        if meddle and t == 10:
            moment = next(k for k in opt.state[p] if k != "step")
            opt.state[p][moment].mul_(0.5)
        for x in params:
            x.grad = wiggle(x, t)

    (a, fa), (b, _) = _pair(name, lambda: Problem().params(), kwargs, 14, step)
    assert_close(a, b)
    assert fa.implementation()[0].startswith("fast")
    assert fa.state[a[0]]["step"].item() == 9, "counted afresh from step 6"
    (c, _), _ = _pair(name, lambda: Problem().params(), kwargs, 14, lambda *args: step(*args, meddle=False))
    assert relative_error(a[0], c[0]) > 1e-6, "the writes made a difference"


def test_the_state_dict_of_a_fast_optimizer_holds_plain_dicts(tmp_path):
    params = Problem().params()
    opt = Adam(params, lr=0.01, fused=True)
    _steps(params, opt, range(1, 3))
    state = opt.state_dict()["state"]
    assert state and all(type(entry) is dict for entry in state.values())
    torch.save(opt.state_dict(), tmp_path / "o.pt")
    assert torch.load(tmp_path / "o.pt", weights_only=True)["state"].keys() == state.keys()


def test_sparse_gradients_leave_the_fast_path_for_the_per_tensor_one():
    results = []
    for flag in (True, False):
        torch.manual_seed(0)
        emb = nn.Embedding(10, 4, sparse=True, dtype=torch.float64)
        head = nn.Linear(4, 1, dtype=torch.float64)
        opt = Adagrad(list(emb.parameters()) + list(head.parameters()), lr=0.1, fused=flag)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for batch in ([1, 2, 2], [3, 1], [7, 8, 9]):
                opt.zero_grad()
                head(emb(torch.tensor(batch))).sum().backward()
                opt.step()
        said = [str(w.message) for w in caught if issubclass(w.category, _flat.FastPathWarning)]
        assert len(said) == flag and all("where its gradient is sparse (1 here)" in m for m in said)
        results.append((emb.weight.detach(), head.weight.detach(), opt))
    assert relative_error(results[0][0], results[1][0]) <= 1e-12
    assert relative_error(results[0][1], results[1][1]) <= 1e-12
    assert "fast: 2 parameter(s)" in results[0][2].implementation()[0]  # the head's weight and bias


def test_parameters_that_alias_other_tensors_are_left_in_place():
    base = torch.zeros(10, dtype=torch.float64)
    sliced = nn.Parameter(base[2:6])  # a slice of a tensor the user keeps
    twin_a = nn.Parameter(torch.ones(3, dtype=torch.float64))
    twin_b = nn.Parameter(twin_a.data)  # two parameters on one storage
    own = nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = SGD([sliced, twin_a, twin_b, own], lr=0.5, fused=True)
    for p in (sliced, twin_a, twin_b, own):
        p.grad = torch.ones_like(p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt.step()
    said = sorted(str(w.message).split(" where ")[1] for w in caught if w.category is _flat.FastPathWarning)
    assert said == ["it shares a larger storage with other tensors (1 here)",
                    "it shares its storage with another parameter (2 here)"]  # fmt: skip
    assert torch.equal(base[2:6], sliced.detach()), "the user's tensor still sees the parameter"
    assert twin_a.data_ptr() == twin_b.data_ptr()
    assert "fast: 1 parameter(s)" in opt.implementation()[0]


# -- no recompiles, automatic choice, fallback, memory -------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        {},
        pytest.param({"state_dtype": torch.float64}, marks=pytest.mark.slow),
        pytest.param({"lean_state": "bfloat16"}, marks=pytest.mark.slow),
        pytest.param({"lean_state": "8bit"}, marks=pytest.mark.slow),
    ],
    ids=["same-dtype", "float64-state", "bfloat16-lean-state", "8bit-lean-state"],
)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_no_recompilation_on_the_second_step_nor_when_schedulers_change_hyperparameters(
    name, state, monkeypatch
):
    from torch._dynamo.utils import counters

    from descentlab.optim import _lean

    # torch's fused kernels compile nothing: this is about descentlab's compiled rule
    monkeypatch.setattr(_flat, "TORCH_KERNELS", False)
    monkeypatch.setattr(_lean, "MIN_ELEMENTS", 1000)  # lean state for the 40 x 30 weight
    w = [torch.randn(40, 30, dtype=torch.float32, requires_grad=True), torch.randn(30, requires_grad=True)]
    kwargs = {"sgd": {"momentum": 0.9}, "rmsprop": {"momentum": 0.9}}.get(name, {})
    opt = OPTIMIZERS[name](w, lr=0.01, **kwargs, **{force(name): True}, **state)
    cycle = "betas" in opt.param_groups[0] or "momentum" in kwargs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=30, cycle_momentum=cycle)
    for p in w:
        p.grad = torch.ones_like(p)
    opt.step()
    sched.step()
    graphs = counters["stats"]["unique_graphs"]
    lrs = set()
    for _ in range(20):
        opt.step()
        sched.step()
        lrs.add(opt.param_groups[0]["lr"])
    assert len(lrs) == 20, "the scheduler changed lr at every step"
    assert counters["stats"]["unique_graphs"] == graphs, "no graph was compiled after the first step"
    group = opt.param_groups[0]
    was_zero = group["weight_decay"] == 0  # AdamW's default is 0.01, the others' 0
    kernels = len(_flat._KERNELS)
    group["weight_decay"] += 0.05
    opt.step()
    turned_on = counters["stats"]["unique_graphs"]
    # a zero term is compiled away, so turning it on may compile one kernel per bucket (the
    # lean and the full-precision one; none that this process already has); a nonzero
    # value is a runtime value
    new_kernels = len(_flat._KERNELS) - kernels
    assert turned_on - graphs == new_kernels <= (len(opt._fast_path.buckets[id(group)]) if was_zero else 0)
    specialised = [key for key in _flat._KERNELS if ("weight_decay", 0.0) in key[2]]
    assert not was_zero or any(key[0] is OPTIMIZERS[name].update for key in specialised)
    for _ in range(3):
        group["weight_decay"] *= 1.5
        opt.step()
    assert counters["stats"]["unique_graphs"] == turned_on, "any nonzero weight decay shares one kernel"
    lean = {torch.bfloat16, torch.uint8} & {v.dtype for v in opt.state[w[0]].values()}
    assert bool(lean) == ("lean_state" in state)


def test_automatic_choice_follows_the_size_and_the_flags():
    small = [torch.zeros(100, requires_grad=True)]
    large = [torch.zeros(_flat.AUTO_MIN_ELEMENTS, requires_grad=True)]
    cases = [(small, {}, "per-tensor"), (large, {}, "fast"), (large, {"fused": False}, "per-tensor"),
             (large, {"foreach": False}, "per-tensor"), (small, {"foreach": True}, "fast"),
             # as in torch, the flag set True wins: fused=True, foreach=False is torch's fused path
             (small, {"fused": True, "foreach": False}, "fast"), (small, {"fused": False, "foreach": True}, "fast"),
             (large, {"fused": False, "foreach": False}, "per-tensor")]  # fmt: skip
    for params, flags, expected in cases:
        opt = Adam(params, **flags)
        params[0].grad = torch.ones_like(params[0])
        opt.step()
        assert opt.implementation()[0].startswith(expected), (flags, opt.implementation())


def test_capturable_keeps_the_per_tensor_path():
    w = [torch.zeros(10, requires_grad=True)]
    opt = Adam(w, capturable=True, foreach=True)
    w[0].grad = torch.ones(10)
    opt.step()
    assert opt.implementation() == ["per-tensor"]


@pytest.mark.slow
def test_compile_options_this_torch_lacks_are_left_out():
    # torch.compile refuses an option it does not know (torch 2.11 has no
    # realize_cpu_opcount_threshold): the kernel compiles with the options it has
    options = {"cpp.dynamic_threads": True, "realize_reads_threshold": 8, "no_such_option_in_any_torch": 1}
    assert _flat.known_options(options) == {"cpp.dynamic_threads": True, "realize_reads_threshold": 8}
    assert set(_flat.known_options(_flat._COMPILE_OPTIONS)) == set(_flat._COMPILE_OPTIONS), (
        "every option exists in the torch the tests run with"
    )


def test_without_a_compiler_it_warns_once_and_gives_the_per_tensor_numbers(tmp_path):
    """Keras's Adam needs descentlab's compiled kernel: without a compiler, the per-tensor path.
    torch's rule runs torch's own kernel, which needs no compiler."""
    script = textwrap.dedent(
        """
        import warnings, torch
        from descentlab.optim import Adam
        def train(fused, convention):
            w = torch.linspace(-1, 1, 50, dtype=torch.float64).requires_grad_()
            opt = Adam([w], lr=0.1, fused=fused, convention=convention)
            for t in range(5):
                w.grad = torch.sin(w.detach() * t)
                opt.step()
            return w, opt
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a, opt = train(True, "keras")
            a2, _ = train(True, "keras")
            c, torch_rule = train(True, "torch")
        b, _ = train(False, "keras")
        ours = [str(c.message) for c in caught if "descentlab" in str(c.message)]
        print(torch_rule.implementation()[0])
        print(len(ours), torch.equal(a, b), torch.equal(a2, b), opt.implementation()[0])
        print(ours[0])
        """
    )
    env = {**os.environ, "CXX": "/nonexistent/c++", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    torch_rule, first, message = done.stdout.strip().splitlines()[-3:]
    assert torch_rule == "fast: 1 parameter(s) in 1 flat bucket(s) (torch's fused kernel)"
    assert first.startswith("1 True True per-tensor (the fast path is off: ")
    assert "the fast path cannot compile Adam's update on cpu (torch.float64)" in message
    assert "No working C++ compiler" in message


@pytest.mark.parametrize("lean_state", [None, "bfloat16", "8bit"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_fast_step_allocates_less_than_one_percent_of_the_parameter_bytes(name, lean_state):
    # measured after the first step, which makes the 8-bit CPU step's scratch chunks (kept);
    # on CUDA an 8-bit step allocates a float32 temporary (docs/fast-path.md, "Memory")
    from descentlab.bench import step_peak_memory

    params = [torch.randn(128, 128, requires_grad=True) for _ in range(30)]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = OPTIMIZERS[name](params, lr=1e-3, lean_state=lean_state, **{force(name): True})
    opt.step()
    extra = step_peak_memory(opt)
    assert extra <= 0.01 * sum(p.numel() * p.element_size() for p in params), extra


def test_deepcopy_and_pickle_of_a_fast_optimizer():
    import pickle

    params = Problem().params()
    opt = Adam(params, lr=0.01, fused=True)
    _steps(params, opt, range(1, 6))
    params2, opt2 = copy.deepcopy((params, opt))
    _steps(params, opt, range(6, 11))
    _steps(params2, opt2, range(6, 11))
    assert all(torch.equal(a, b) for a, b in zip(params, params2))
    assert opt2.implementation() == opt.implementation(), "the copy keeps the fast path"
    opt3 = pickle.loads(pickle.dumps(opt))
    assert same(opt3.state_dict()["param_groups"], opt.state_dict()["param_groups"])
    assert same(opt3.state_dict(), opt.state_dict()), "the state travels with it"


# -- CUDA (skipped without a device) ----------------------------------------------------------


@CUDA
@pytest.mark.parametrize(("name", "config"), all_configs())
def test_fast_path_on_cuda_matches_the_per_tensor_path(name, config):
    problem = Problem()
    out = []
    for maker in (fast, slow):
        params = [p.detach().cuda().requires_grad_() for p in problem.params(torch.float32)]
        make, kw = maker(name, **config.kwargs)
        opt = make(groups(params, config.kwargs), **kw)
        for t in range(1, 51):
            for i, p in enumerate(params):
                g = problem.grad(i, problem.init[i], t)
                p.grad = None if g is None else torch.as_tensor(g, dtype=torch.float32, device="cuda")
            opt.step()
        out.append([p.cpu() for p in params])
    for i, (x, y) in enumerate(zip(*out)):
        assert relative_error(x, y) <= CUDA_TOLERANCE, f"parameter {i}: {relative_error(x, y):.3g}"


@CUDA
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_parameters_on_two_devices(name):
    def build():
        g = torch.Generator().manual_seed(0)
        return [torch.randn(5, 3, dtype=torch.float64, generator=g).requires_grad_(),
                torch.randn(7, dtype=torch.float64, generator=g).cuda().requires_grad_()]  # fmt: skip

    (a, fa), (b, _) = _pair(name, build, {"lr": 0.01}, 20)
    assert [p.device.type for p in a] == ["cpu", "cuda"]
    assert_close([p.cpu() for p in a], [p.cpu() for p in b])
    assert "2 flat bucket(s)" in fa.implementation()[0]
