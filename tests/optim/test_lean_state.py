"""Lean state (``lean_state="bfloat16"`` or ``"8bit"``): the rule plus one rounding of the state per step.

What is derived and tested here:

- **One step**: from the same state, a lean step moves the parameters exactly as a
  full-precision step does (the rule runs on the dequantised state in float32),
  and writes back each state tensor within one rounding of the full-precision
  result: less than one bfloat16 step (``2**-7 |x|``), or less than one gap of
  the 8-bit map at ``|x|/absmax``, times the block's absmax (see
  :func:`descentlab.optim._lean.gap`). Checked for every optimizer and
  configuration of the test table on the per-tensor path; on the fast path for
  one configuration per optimizer, convention and set of state tensors in
  bfloat16, and per optimizer and set of state tensors in 8 bits (see
  :func:`fast_lean_configs`).
- No recompiles under a scheduler: ``tests/optim/test_fast_path.py``'s test runs with lean state too.
- **Many steps**: errors of stochastic rounding are unbiased and do not add up
  systematically; on the test table's problem, with every gradient given (open
  loop, so only the state's rounding differs), the parameters after 60 steps stay
  within ``PARITY`` (10% of their size; they move by up to 3) of full precision.
  That tolerance is empirical: the largest error seen over the table was 3% in
  either form (Adagrad's growing sum in bfloat16, Adam with weight decay in 8 bits).
"""

from __future__ import annotations

import copy
import io
import itertools
import math

import pytest
import torch

from cases import CASES, all_configs, torch_kwargs
from descentlab.optim import OPTIMIZERS, Adam, _flat, _lean, to_torch_state_dict
from helpers import Problem, groups, relative_error, run

KINDS = ("bfloat16", "8bit")
# after 60 open-loop steps of the test problem, relative to the parameters' size (see the docstring)
PARITY = {"bfloat16": 0.1, "8bit": 0.1}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none here")


@pytest.fixture
def every_size(monkeypatch):
    """Lean state for the test problem's small tensors too (by default only from 4096 elements)."""
    monkeypatch.setattr(_lean, "MIN_ELEMENTS", 1)


def lean_configs(kinds=KINDS):
    """(name, config, kind) for every configuration of the test table and lean form that go together."""
    return [
        pytest.param(*c.values, kind, id=f"{c.id}-{kind}")
        for c in all_configs()
        for kind in kinds
        if not (kind == "8bit" and c.values[1].kwargs.get("centered"))  # refused: see test_..._refused
    ]


def _kernel_shape(name: str, config) -> tuple:
    """What the 8-bit part of a lean kernel depends on: the optimizer, its convention, its state tensors."""
    cls = OPTIMIZERS[name]
    opt = cls([torch.zeros(1, requires_grad=True)], **config.kwargs)
    return name, config.kwargs.get("convention"), tuple(opt._active_state(opt.param_groups[0]))


def fast_lean_configs():
    """lean_configs() for the fast path, each compiling a kernel of its own (seconds on 2 cores,
    tens of seconds for 8-bit state on a cold compiler cache).

    The lean kernel wraps the rule's update, the same code as the float32
    kernel's (which test_fast_path checks on every configuration), in
    decoding and rounding that depend on the optimizer's state tensors alone.
    With bfloat16 state: the first configuration of each optimizer,
    convention and set of state tensors, so that every convention's update
    runs inside a lean kernel; with 8-bit state, of each optimizer and set
    of state tensors. The per-tensor path runs every configuration.
    """
    seen = set()
    out = []
    for case in lean_configs():
        name, config, kind = case.values
        optimizer, convention, states = _kernel_shape(name, config)
        shape = (kind, optimizer, states) + ((convention,) if kind == "bfloat16" else ())
        if shape not in seen:
            seen.add(shape)
            out.append(case)
    return out


def one_step_cases():
    """(name, config, kind, path): the per-tensor path on every lean configuration, the fast path
    (slow) on :func:`fast_lean_configs`."""
    per_tensor = [pytest.param(*c.values, "per-tensor", id=f"{c.id}-per-tensor") for c in lean_configs()]
    fast = [
        pytest.param(*c.values, "fast", id=f"{c.id}-fast", marks=pytest.mark.slow)
        for c in fast_lean_configs()
    ]
    return per_tensor + fast


def flag(name: str) -> str:
    return "fused" if name != "rmsprop" else "foreach"


def bound(kind: str, name: str, cls, exact: torch.Tensor) -> torch.Tensor:
    """The largest error one stochastic rounding of ``exact`` (the full-precision state) may make."""
    if kind == "bfloat16":
        return exact.abs() * 2.0**-7 + 1e-38
    flat = _lean._padded(exact.float().contiguous())
    absmax = flat.abs().amax(dim=1, keepdim=True)
    scaled = flat / torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    gaps = _lean.gap(scaled, name not in cls.unsigned_state) * absmax
    return (gaps * (1 + 1e-5) + 1e-30).view(-1)[: exact.numel()].view(exact.shape)


# -- the maps and the rounding ---------------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_the_maps_are_ascending_from_zero_to_one_and_fill_a_byte(signed):
    table = _lean.table(signed)
    assert table.numel() == (128 if signed else 256)  # with the sign bit: 256 codes either way
    assert table[0] == 0 and table[-1] == 1 and bool((table.diff() > 0).all())
    assert table[1] == pytest.approx(1e-6 if signed else 1e-7)  # 7 (signed) or 8 decades


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_the_maps_values_are_the_documented_levels_and_each_encodes_to_its_own_code(signed):
    # an oracle in float64: decade d below 1 holds n = 2**(bits-1-d) levels (0.1 + 0.9 k/n) / 10**d
    bits = 7 if signed else 8
    levels = [0.0] + [
        (0.1 + 0.9 * k / 2 ** (bits - 1 - d)) / 10**d
        for d in reversed(range(bits))
        for k in range(1, 2 ** (bits - 1 - d) + 1)
    ]
    table = _lean.table(signed)
    assert torch.allclose(table.double(), torch.tensor(levels, dtype=torch.float64), rtol=2**-23, atol=0)
    # nearest rounding keeps every value of the map exactly, the decade tops included, and a
    # value one float32 step either side of a level goes to that level or a neighbour
    x = table.repeat(4)[: 2 * _lean.BLOCK].view(2, _lean.BLOCK).clone()
    x[:, 0] = 1.0  # absmax 1 in each block
    codes, absmax = _lean.encode_blocks(x, signed)
    assert torch.equal(_lean.decode_blocks(codes, absmax, signed, torch.float32), x)
    for direction in (2.0, 0.0):
        near = torch.nextafter(x, torch.tensor(direction)).clamp(0, 1)
        near[:, 0] = 1.0
        back = _lean.decode_blocks(*_lean.encode_blocks(near, signed), signed, torch.float32)
        assert bool(((back - near).abs() <= _lean.gap(near, signed) / 2 * (1 + 1e-6) + 1e-12).all())


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_decoding_by_lookup_gives_the_formulas_floats(signed):
    # the per-tensor path looks codes up; the fast path's kernel computes the formula
    g = torch.Generator().manual_seed(3)
    codes = torch.randint(0, 256, (12, 256), generator=g, dtype=torch.uint8)
    absmax = torch.rand(12, generator=g) * torch.logspace(-40, 30, 12)
    by_formula = _lean.decode(codes, signed) * absmax[:, None]
    by_lookup = _lean.decode_blocks(codes, absmax, signed, torch.float32)
    assert torch.equal(by_lookup.view(torch.int32), by_formula.view(torch.int32))


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_nearest_round_trip_is_within_half_a_gap(signed):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 256, generator=g) * torch.logspace(-6, 2, 40)[:, None]
    x = x if signed else x.abs()
    codes, absmax = _lean.encode_blocks(x, signed)
    back = _lean.decode_blocks(codes, absmax, signed, torch.float32)
    scaled = x / absmax[:, None]
    smallest = _lean.table(signed)[1]
    # unsigned values below the smallest code round up to it (never to 0): up to one gap there
    allowed = (
        torch.where((scaled < smallest) & (not signed), smallest, _lean.gap(scaled, signed) / 2)
        * absmax[:, None]
        * (1 + 1e-6)
    )
    assert bool(((back - x).abs() <= allowed).all())
    assert torch.equal(absmax, x.abs().amax(dim=1)), "the block's absmax is kept exactly"


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_stochastic_rounding_moves_less_than_a_gap_and_is_unbiased(signed):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 256, generator=g) * (1 if not signed else torch.sign(torch.randn(4, 256, generator=g)))
    x[:, 0] = 1.0  # absmax 1
    rounded = torch.stack(
        [
            _lean.decode_blocks(*_lean.encode_blocks(x, signed, seed, 7), signed, torch.float32)
            for seed in range(400)
        ]
    )
    assert bool(((rounded - x).abs() < _lean.gap(x, signed) + 1e-7).all())
    # the mean of 400 roundings is within 4 standard errors (gap / 2 / sqrt(400)) of the value
    assert bool(((rounded.mean(0) - x).abs() <= 4 * _lean.gap(x, signed) / 2 / 20 + 1e-7).all())


def test_adversarial_blocks():
    # all zeros: codes 0, scale 0, zeros back
    codes, absmax = _lean.quantise(torch.zeros(300), signed=True)
    assert not codes.any() and not absmax.any()
    assert not _lean.dequantise(codes, absmax, True, torch.float32).any()
    # one huge value among tiny ones: the huge one is exact; tiny first moments may vanish, tiny
    # second moments round up to the smallest code, never to 0
    x = torch.full((256,), 1e-30)
    x[17] = 1e30
    for signed in (True, False):
        back = _lean.dequantise(*_lean.quantise(x, signed), signed, torch.float32)
        assert back[17] == 1e30
        if signed:
            assert bool((back[x < 1] == 0).all())
        else:
            assert bool((back[x < 1] == _lean.table(False)[1] * 1e30).all())
    # subnormals: a block of them keeps its values to the map's precision
    tiny = torch.tensor([1e-40, -3e-41, 0.0, 5e-42] * 64)
    codes, absmax = _lean.quantise(tiny, signed=True)
    back = _lean.dequantise(codes, absmax, True, torch.float32)
    assert absmax.item() == pytest.approx(1e-40, rel=1e-2) and torch.isfinite(back).all()
    assert bool(((back - tiny).abs() <= 0.02 * 1e-40).all())
    # negative zero: signed keeps its sign, unsigned gives +0
    nz = torch.tensor([-0.0] * 10)
    assert torch.signbit(_lean.dequantise(*_lean.quantise(nz, True), True, torch.float32)).all()
    assert not torch.signbit(_lean.dequantise(*_lean.quantise(nz, False), False, torch.float32)).any()
    # a partial last block, and a non-contiguous tensor (blocks follow memory order)
    y = torch.randn(20, 30).t()
    back = _lean.dequantise(*_lean.quantise(y, True), True, torch.float32)
    assert back.stride() == y.stride() and relative_error(back, y) < 0.02


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_refused_with_a_clear_error(bad):
    x = torch.ones(300)
    x[5] = bad
    with pytest.raises(ValueError, match="cannot quantise a state tensor that holds NaN or infinity"):
        _lean.quantise(x, signed=True)
    with pytest.raises(ValueError, match="must be >= 0 to be quantised"):
        _lean.quantise(-torch.ones(3), signed=False)


def test_bfloat16_stochastic_rounding_is_exact_on_bfloat16_values_and_unbiased():
    exact = torch.randn(1000).to(torch.bfloat16).float()
    assert torch.equal(_lean.to_bfloat16(exact, 3, 1).float(), exact)
    x = torch.linspace(0.3, 3.0, 5000)
    rounded = torch.stack([_lean.to_bfloat16(x, seed, 1).float() for seed in range(200)])
    ulp = 2.0 ** (torch.floor(torch.log2(x)) - 7)
    assert bool(((rounded - x).abs() < ulp).all())
    error = (rounded.mean(0) - x) / ulp  # per element, 200 roundings: standard error <= 0.5 / sqrt(200)
    assert error.abs().mean() < 0.05  # nearest rounding: 0.25 on average
    assert abs(error.mean()) < 0.005  # no bias over the 5000 elements
    special = torch.tensor([float("inf"), -float("inf"), float("nan"), -0.0])
    out = _lean.to_bfloat16(special, 1, 1).float()
    assert out[0] == math.inf and out[1] == -math.inf and out[2].isnan() and torch.signbit(out[3])


def test_a_nan_whose_bits_would_carry_into_the_sign_stays_nan():
    # adding the random bits to 0x7FFFFFFF or 0xFFFFFFFF wraps past the sign: a NaN would become 0
    nans = torch.tensor([0x7FFFFFFF, -1, 0x7FFF0001, 0x7FC00000], dtype=torch.int32).view(torch.float32)
    for seed in range(20):
        assert bool(_lean.to_bfloat16(nans, seed, 1).isnan().all()), seed


def test_bfloat16_states_round_a_pair_from_one_draw_each_unbiased():
    # the second of a pair takes the high half of the first's draw; the first rounds as alone
    x = torch.linspace(0.3, 3.0, 5120).view(-1, _lean.BLOCK)
    y = torch.linspace(-7.0, -0.1, 5120).view(-1, _lean.BLOCK)
    ulp = 2.0 ** (torch.floor(torch.log2(y.abs())) - 7)
    draws = [_lean.bfloat16_states([x, y, x * 2], seed, [1, 2, 3]) for seed in range(200)]
    for seed, (a, _, c) in enumerate(draws):
        assert torch.equal(a, _lean.bfloat16_blocks(x, seed, 1))
        assert torch.equal(c, _lean.bfloat16_blocks(x * 2, seed, 3))
    second = torch.stack([b.float() for _, b, _ in draws])
    assert bool(((second - y).abs() < ulp).all())
    error = (second.mean(0) - y) / ulp
    assert error.abs().mean() < 0.05 and abs(error.mean()) < 0.005
    # the two halves of a draw round independently: no correlation between rounding away from 0
    away_x = torch.stack([a.float() > x for a, _, _ in draws]).float()
    away_y = torch.stack([b.float() < y for _, b, _ in draws]).float()  # y < 0
    residuals = torch.stack([(t - t.mean(0)).flatten() for t in (away_x, away_y)])
    assert abs(torch.corrcoef(residuals)[0, 1]) < 0.01  # 1M draws: standard error 0.001


def test_the_random_numbers_are_uniform_and_change_with_seed_and_salt():
    x = torch.randn(100_000)
    u = _lean.uniform(x, 5, 1)
    counts = torch.histc(u, 20, 0, 1)
    expected = x.numel() / 20
    assert ((counts - expected) ** 2 / expected).sum() < 50  # chi-square, 19 degrees of freedom
    assert (u != _lean.uniform(x, 6, 1)).float().mean() > 0.99
    assert (u != _lean.uniform(x, 5, 2)).float().mean() > 0.99


# -- the known failure: plain bfloat16 rounding freezes Adam's second moment --------------------


@pytest.mark.slow
def test_stochastic_rounding_keeps_adams_second_moment_decaying_where_plain_rounding_freezes_it():
    def second_moment(**kwargs):
        w = torch.ones(8192, requires_grad=True)
        opt = Adam([w], lr=1e-3, foreach=False, **kwargs)
        w.grad = torch.ones_like(w)
        opt.step()
        for _ in range(1000):  # then no gradient signal: v should decay as 0.999**t
            w.grad = torch.zeros_like(w)
            opt.step()
        return opt.state[w]["exp_avg_sq"].float().mean().item()

    exact = 1e-3 * 0.999**1000
    assert second_moment() == pytest.approx(exact, rel=1e-4)
    assert second_moment(lean_state="bfloat16") == pytest.approx(exact, rel=0.02)
    frozen = second_moment(state_dtype=torch.bfloat16)  # plain rounding: 0.999 v rounds back to v
    assert frozen > 2 * exact and frozen == pytest.approx(1e-3, rel=0.01)


# -- one step: the rule, then one rounding of the state --------------------------------------------


# The fast path compiles a kernel per configuration (seconds each): the whole table runs in CI,
# the fast loop (pytest -m "not slow") takes the per-tensor path's half.
@pytest.mark.parametrize(("name", "config", "kind", "path"), one_step_cases())
def test_one_lean_step_is_the_full_precision_step_then_one_rounding(name, config, kind, path, every_size):
    cls = OPTIMIZERS[name]
    problem = Problem()
    lean_params = problem.params(torch.float32)
    kwargs = {**config.kwargs, flag(name): path == "fast"}
    lean = cls(groups(lean_params, kwargs), **kwargs, lean_state=kind)
    for t in range(1, 11):
        for i, p in enumerate(lean_params):
            g = problem.grad(i, problem.init[i], t)
            p.grad = None if g is None else torch.as_tensor(g, dtype=torch.float32)
        lean.step()
    # the same state, dequantised exactly, in a full-precision optimizer
    full_params = [p.detach().clone().requires_grad_() for p in lean_params]
    full = cls(groups(full_params, kwargs), **{**kwargs, flag(name): False})
    full.load_state_dict(copy.deepcopy(lean.state_dict()))  # a copy: loading shares the step tensors
    for a, b in zip(lean_params, full_params):
        for key, value in full.state[b].items():
            if key != "step":
                assert torch.equal(
                    value, _lean.read(lean.state[a], key, key not in cls.unsigned_state, torch.float32)
                )
    for params in (lean_params, full_params):
        for i, p in enumerate(params):
            p.grad = torch.as_tensor(problem.noise[i][11], dtype=torch.float32)
    lean.step()
    full.step()
    for a, b in zip(lean_params, full_params):
        assert relative_error(a, b) <= 1e-6
        for key, exact in full.state[b].items():
            if key == "step":
                continue
            got = _lean.read(lean.state[a], key, key not in cls.unsigned_state, torch.float32)
            assert bool(((got - exact).abs() <= bound(kind, key, cls, exact)).all()), key


# -- many steps ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("name", "config", "kind"), lean_configs())
def test_lean_state_stays_within_the_stated_tolerance_of_full_precision(name, config, kind, every_size):
    kwargs = {**config.kwargs, flag(name): False}
    full, _ = run(OPTIMIZERS[name], kwargs, torch.float32, closed_loop=False)
    lean, opt = run(OPTIMIZERS[name], {**kwargs, "lean_state": kind}, torch.float32, closed_loop=False)
    stored = [v.dtype for s in opt.state.values() for k, v in s.items() if k != "step"]
    assert all(d in (torch.uint8, torch.bfloat16, torch.float32) for d in stored)
    assert not stored or {torch.uint8, torch.bfloat16} & set(stored), "SGD without momentum keeps no state"
    for a, b in zip(lean, full):
        assert relative_error(a, b) <= PARITY[kind]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "config", "kind"), fast_lean_configs())
def test_the_fast_path_matches_the_per_tensor_path_on_lean_state(name, config, kind, every_size):
    fast, opt = run(OPTIMIZERS[name], {**config.kwargs, flag(name): True, "lean_state": kind},
                    torch.float32, closed_loop=False)  # fmt: skip
    slow, _ = run(OPTIMIZERS[name], {**config.kwargs, flag(name): False, "lean_state": kind},
                  torch.float32, closed_loop=False)  # fmt: skip
    if any(opt.state.values()):  # a rule with state runs the lean kernel (SGD without momentum has none)
        assert all(i.endswith("(compiled kernel)") for i in opt.implementation()), opt.implementation()
    for a, b in zip(fast, slow):
        assert relative_error(a, b) <= PARITY[kind]


def test_the_8bit_cpu_step_keeps_its_scratch_one_chunk_per_state_from_step_to_step(monkeypatch):
    monkeypatch.setattr(_flat, "LEAN_CHUNK_ELEMENTS", 4 * _lean.BLOCK)
    params = [torch.zeros(n, requires_grad=True) for n in (40 * _lean.BLOCK, 5000, 100)]
    opt = Adam(params, lr=0.01, fused=True, lean_state="8bit", amsgrad=True)
    seen = []
    for step in range(3):
        for p in params:
            p.grad = torch.full_like(p, 0.1 * (step + 1))
        opt.step()
        buffers = opt._fast_path.scratch.buffers
        seen.append({key: b.data_ptr() for key, b in buffers.items()})
    # one chunk of float32 for each of the three states, made at the first step and kept
    assert len(seen[0]) == 3 and seen[0] == seen[1] == seen[2]
    assert all(b.numel() == 4 * _lean.BLOCK and b.dtype == torch.float32 for b in buffers.values())


@pytest.mark.slow
def test_the_8bit_kernel_run_in_chunks_gives_the_same_bits(every_size, monkeypatch):
    # on the CPU the 8-bit kernel runs on a bucket LEAN_CHUNK_ELEMENTS at a time (it bounds the
    # scratch its two passes share); here one block per call against the whole bucket in one
    out = []
    for chunk in (_lean.BLOCK, 1 << 30):
        monkeypatch.setattr(_flat, "LEAN_CHUNK_ELEMENTS", chunk)
        params, opt = run(Adam, {"lr": 0.01, "fused": True, "lean_state": "8bit"}, torch.float32,
                          closed_loop=False)  # fmt: skip
        (bucket,) = opt._fast_path.buckets[id(opt.param_groups[0])]
        assert bucket.lean == "8bit" and bucket.param_buffer.numel() >= 2 * _lean.BLOCK  # two chunks or more
        states = [v for p in opt.param_groups[0]["params"] for _, v in sorted(opt.state[p].items())]
        out.append((params, states))
    (params_a, states_a), (params_b, states_b) = out
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b))
    assert len(states_a) == len(states_b) and all(torch.equal(a, b) for a, b in zip(states_a, states_b))


# -- checkpoints --------------------------------------------------------------------------------


def _train(params, opt, ts):
    problem = Problem()
    for t in ts:
        for i, p in enumerate(params):
            g = problem.grad(i, p.detach().double().numpy(), t)
            p.grad = None if g is None else torch.as_tensor(g, dtype=p.dtype)
        opt.step()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", ["per-tensor", pytest.param("fast", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_lean_run_resumes_bit_exactly_from_its_state_dict(name, path, kind, every_size):
    kwargs = {"lr": 0.01, flag(name): path == "fast", "lean_state": kind}
    kwargs |= {"sgd": {"momentum": 0.9}, "rmsprop": {"momentum": 0.5}}.get(name, {})
    params = Problem().params(torch.float32)
    opt = OPTIMIZERS[name](groups(params, kwargs), **kwargs)
    _train(params, opt, range(1, 11))
    saved = io.BytesIO()
    torch.save({"p": [p.detach() for p in params], "o": opt.state_dict()}, saved)
    _train(params, opt, range(11, 21))
    saved.seek(0)
    checkpoint = torch.load(saved, weights_only=True)
    resumed = [p.clone().requires_grad_() for p in checkpoint["p"]]
    opt2 = OPTIMIZERS[name](groups(resumed, kwargs), **kwargs)
    opt2.load_state_dict(checkpoint["o"])
    _train(resumed, opt2, range(11, 21))
    assert all(torch.equal(a, b) for a, b in zip(params, resumed))
    for a, b in zip(params, resumed):
        for key, value in opt.state[a].items():
            assert torch.equal(value, opt2.state[b][key]), key


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_lean_and_full_precision_checkpoints_load_into_each_other(name, kind, every_size):
    cls = OPTIMIZERS[name]
    kwargs = {"lr": 0.01} | {"sgd": {"momentum": 0.9}, "rmsprop": {"centered": kind != "8bit"}}.get(name, {})
    params = Problem().params(torch.float32)
    full = cls(groups(params, kwargs), **kwargs)
    _train(params, full, range(1, 11))
    # full -> lean: rounded to nearest, within half the bound of one stochastic rounding
    lean = cls(
        groups([p.detach().clone().requires_grad_() for p in params], kwargs), **kwargs, lean_state=kind
    )
    lean.load_state_dict(full.state_dict())
    assert lean.param_groups[0]["lean_state"] == kind, "the optimizer keeps its own lean_state"
    for a, b in zip(params, lean.param_groups[0]["params"] + lean.param_groups[1]["params"]):
        for key, exact in full.state[a].items():
            if key != "step":
                got = _lean.read(lean.state[b], key, key not in cls.unsigned_state, torch.float32)
                assert lean.state[b][key].dtype == {"bfloat16": torch.bfloat16, "8bit": torch.uint8}[kind]
                assert bool(((got - exact).abs() <= bound(kind, key, cls, exact) / 2 * (1 + 1e-3)).all())
    # lean -> full: exact (the values the lean optimizer computes with)
    back = cls(groups([p.detach().clone().requires_grad_() for p in params], kwargs), **kwargs)
    back.load_state_dict(lean.state_dict())
    assert back.param_groups[0]["lean_state"] is None
    for a, b in zip(lean.state, back.state):
        for key, value in back.state[b].items():
            assert value.dtype == torch.float32
            if key != "step":
                assert torch.equal(
                    value, _lean.read(lean.state[a], key, key not in cls.unsigned_state, torch.float32)
                )
    # and lean -> lean unchanged
    again = cls(
        groups([p.detach().clone().requires_grad_() for p in params], kwargs), **kwargs, lean_state=kind
    )
    again.load_state_dict(lean.state_dict())
    for a, b in zip(lean.state, again.state):
        for key, value in lean.state[a].items():
            assert torch.equal(value, again.state[b][key]), key


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "config"), all_configs(torch_only=True))
def test_to_torch_state_dict_loads_into_torch_optim(name, config, kind, every_size):
    if kind == "8bit" and config.kwargs.get("centered"):
        pytest.skip(
            "centered RMSprop refuses 8-bit state (test_invalid_and_contradictory_choices_are_refused)"
        )
    cls = OPTIMIZERS[name]
    params = Problem().params(torch.float32)
    lean = cls(groups(params, config.kwargs), **config.kwargs, lean_state=kind)
    _train(params, lean, range(1, 11))
    converted = to_torch_state_dict(lean.state_dict())
    assert not any(v.dtype in (torch.uint8, torch.bfloat16) for s in converted["state"].values()
                   for v in s.values())  # fmt: skip
    copies = [[p.detach().clone().requires_grad_() for p in params] for _ in range(2)]
    theirs = CASES[name].torch_cls(groups(copies[0], config.kwargs), **torch_kwargs(config.kwargs))
    theirs.load_state_dict(copy.deepcopy(converted))  # copies: loading shares the step tensors
    ours = cls(groups(copies[1], config.kwargs), **config.kwargs)
    ours.load_state_dict(copy.deepcopy(lean.state_dict()))
    _train(copies[0], theirs, range(11, 21))
    _train(copies[1], ours, range(11, 21))
    for a, b in zip(*copies):
        assert relative_error(a, b) <= 1e-5


# -- choosing, validating, measuring --------------------------------------------------------------


def test_only_parameters_of_4096_elements_or_more_get_lean_state():
    small, large = torch.zeros(4095, requires_grad=True), torch.zeros(64, 64, requires_grad=True)
    opt = Adam([small, large], lean_state="8bit", foreach=False)
    small.grad, large.grad = torch.ones_like(small), torch.ones_like(large)
    opt.step()
    assert opt.state[small]["exp_avg"].dtype == torch.float32
    assert opt.state[large]["exp_avg"].dtype == torch.uint8
    assert opt.state[large]["exp_avg_absmax"].shape == (16,)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lean_state": "int8"}, ValueError,
         r"Adam: lean_state must be one of 'bfloat16', '8bit'; received lean_state='int8'"),
        ({"lean_state": "bfloat16", "state_dtype": torch.bfloat16}, ValueError,
         r"lean_state='bfloat16' cannot be combined with state_dtype=torch.bfloat16"),
        ({"lean_state": "8bit", "state_dtype": torch.float16}, ValueError,
         r"received lean_state='8bit', state_dtype=torch.float16"),
        ({"lean_state": "8bit", "centered": True}, ValueError,
         r"RMSprop: centered=True cannot be combined with lean_state='8bit'"),
    ],
)  # fmt: skip
def test_invalid_and_contradictory_choices_are_refused(kwargs, error, message):
    cls = OPTIMIZERS["rmsprop" if "centered" in kwargs else "adam"]
    with pytest.raises(error, match=message):
        cls([torch.zeros(3, requires_grad=True)], **kwargs)
    Adam([torch.zeros(3, requires_grad=True)], lean_state="8bit", state_dtype=torch.float64)  # consistent


def test_a_damaged_8bit_checkpoint_is_refused():
    w = torch.zeros(5000, requires_grad=True)
    opt = Adam([w], lean_state="8bit", foreach=False)
    w.grad = torch.ones_like(w)
    opt.step()
    good = opt.state_dict()

    def damaged(change):
        sd = {"state": {0: dict(good["state"][0])}, "param_groups": good["param_groups"]}
        change(sd["state"][0])
        return sd

    cases = [
        (lambda s: s.pop("exp_avg_absmax"), "holds 8-bit codes without their block scales 'exp_avg_absmax'"),
        (lambda s: s.update(exp_avg_absmax=torch.ones(3)), r"must have shape \(20,\)"),
        (lambda s: s.update(exp_avg_absmax=torch.full((20,), math.nan)), "must be finite and >= 0"),
        (lambda s: s.update(exp_avg=s["exp_avg"].float()), "belongs to 8-bit codes"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            opt.load_state_dict(damaged(change))


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "limit"), [("8bit", 2.1), ("bfloat16", 4.0)])
def test_state_bytes_per_parameter_of_adam_on_large_tensors(kind, limit):
    from descentlab.bench import state_bytes

    params = [torch.zeros(1024, 1024, requires_grad=True) for _ in range(2)]
    opt = Adam(params, lean_state=kind, foreach=False)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    n = sum(p.numel() for p in params)
    # the step counters (4 bytes per tensor, torch.optim's format) come on top
    assert (state_bytes(opt) - 4 * len(params)) / n <= limit


# -- CUDA (skipped without a device) ------------------------------------------------------------


@CUDA
@pytest.mark.parametrize(("name", "config", "kind"), lean_configs())
def test_lean_state_on_cuda_matches_the_per_tensor_path_on_the_cpu(name, config, kind, every_size):
    problem = Problem()
    out = []
    for device, fast in (("cuda", True), ("cpu", False)):
        params = [p.detach().to(device).requires_grad_() for p in problem.params(torch.float32)]
        kwargs = {**config.kwargs, flag(name): fast, "lean_state": kind}
        opt = OPTIMIZERS[name](groups(params, kwargs), **kwargs)
        for t in range(1, 31):
            for i, p in enumerate(params):
                g = problem.grad(i, problem.init[i], t)
                p.grad = None if g is None else torch.as_tensor(g, dtype=torch.float32, device=device)
            opt.step()
        out.append([p.cpu() for p in params])
    for a, b in zip(*out):
        assert relative_error(a, b) <= PARITY[kind]


@pytest.mark.slow
@pytest.mark.parametrize("kind", [None, "bfloat16"])
def test_kernels_compiled_for_the_size_hint_give_the_same_numbers(kind, every_size, monkeypatch):
    # CUDA kernels are compiled for _flat.SIZE_HINT elements (or that many in blocks), not for
    # the first buffer's length: here the same on the CPU, where the tests can run it
    if not _flat._HINTS:
        pytest.skip("this torch's mark_dynamic takes no hint_override")
    monkeypatch.setattr(_flat, "_HINTED_DEVICES", ("cpu", "cuda"))
    monkeypatch.setattr(_flat, "_KERNELS", {})  # compiled afresh, with the hint
    hints = []
    mark = torch._dynamo.mark_dynamic
    monkeypatch.setattr(
        torch._dynamo,
        "mark_dynamic",
        lambda t, i, **kw: hints.append((t.dim(), kw["hint_override"])) or mark(t, i, **kw),
    )
    kwargs = {"lr": 0.01, "momentum": 0.5, "lean_state": kind}
    out = []
    for fast in (True, False):
        params, _ = run(OPTIMIZERS["rmsprop"], {**kwargs, "foreach": fast}, torch.float32, steps=20)
        out.append(params)
    expected = (2, _flat.SIZE_HINT // _lean.BLOCK) if kind else (1, _flat.SIZE_HINT)
    assert hints and set(hints) == {expected}, hints
    for a, b in zip(*out):
        assert relative_error(a, b) <= (PARITY[kind] if kind else 1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("fn", [_lean.bfloat16_blocks, _lean.uniform], ids=["bfloat16_blocks", "uniform"])
def test_the_hashs_int64_form_for_cuda_gives_the_int32_forms_bits(fn, monkeypatch):
    # CUDA mixes the place into the hash in int64 and wraps it (see _lean._hash): run that form
    # on the CPU, eagerly and compiled, against the int32 form's bits, over seeds and salts
    x = torch.randn(16, _lean.BLOCK, generator=torch.Generator().manual_seed(1))
    cases = [(0, 0), (7, 3), (123456, 65535), (2**24 - 1, 1)]
    want = [fn(x, seed, salt) for seed, salt in cases]
    monkeypatch.setattr(_lean, "_WIDE_PLACE_DEVICES", ("cpu", "cuda"))
    compiled = torch.compile(fn, fullgraph=True, dynamic=True)
    for (seed, salt), expected in zip(cases, want):
        assert torch.equal(fn(x, seed, salt), expected), (seed, salt)
        assert torch.equal(compiled(x, torch.tensor(float(seed)), salt), expected), (seed, salt)


@CUDA
@pytest.mark.parametrize("fn", [_lean.bfloat16_blocks, _lean.uniform], ids=["bfloat16_blocks", "uniform"])
def test_the_random_bits_on_cuda_are_the_cpus(fn):
    # the hash wants int32 arithmetic that wraps; inductor's Triton code computes an
    # arange's in int64, so CUDA mixes the place in explicitly: the same bits everywhere
    x = torch.randn(64, _lean.BLOCK, generator=torch.Generator().manual_seed(0))
    want = fn(x, 7, 3)
    assert torch.equal(fn(x.cuda(), 7, 3).cpu(), want), "eager CUDA"
    compiled = torch.compile(fn, fullgraph=True, dynamic=True)
    assert torch.equal(compiled(x.cuda(), torch.tensor(7.0, device="cuda"), 3).cpu(), want), "compiled"


@pytest.mark.parametrize("path", ["per-tensor", "fast"])
def test_changing_lean_state_mid_run_converts_the_state(path):
    w = torch.randn(64, 64, requires_grad=True)
    opt = Adam([w], lr=1e-2, foreach=path == "fast")
    expected = {None: torch.float32, "bfloat16": torch.bfloat16, "8bit": torch.uint8}
    for kind in (None, "8bit", None, "bfloat16", "8bit", None):
        opt.param_groups[0]["lean_state"] = kind
        for _ in range(3):
            w.grad = torch.sin(w.detach())
            opt.step()
        assert opt.state[w]["exp_avg"].dtype == expected[kind]
        assert ("exp_avg_absmax" in opt.state[w]) == (kind == "8bit")
        m = _lean.read(opt.state[w], "exp_avg", True, torch.float32)
        assert m.abs().max() <= 1, "a moving average of gradients in [-1, 1]"
    assert opt.state[w]["step"].item() == 18 and torch.isfinite(w).all()


# -- stochastic rounding of bfloat16 parameters ---------------------------------------------------


@pytest.mark.parametrize(
    ("lean_state", "path"),
    [
        (None, "per-tensor"),
        pytest.param(None, "fast", marks=pytest.mark.slow),
        pytest.param("8bit", "per-tensor", marks=pytest.mark.slow),
        pytest.param("8bit", "fast", marks=pytest.mark.slow),
    ],
)
def test_stochastic_rounding_lets_bfloat16_parameters_take_steps_below_half_their_precision(lean_state, path):
    """Adam's first steps move each coordinate by about lr = 1e-3; a bfloat16 1.0 has steps of 2**-8
    below it, so plain rounding returns 0.999 to 1.0 at every step and the parameter never moves."""

    def after(**kwargs):
        w = torch.ones(8192, dtype=torch.bfloat16, requires_grad=True)
        opt = Adam(
            [w], lr=1e-3, lean_state=lean_state, state_dtype=torch.float32, fused=path == "fast", **kwargs
        )
        for _ in range(100):
            w.grad = torch.ones_like(w)
            opt.step()
        return w.detach().float(), opt

    frozen, _ = after()
    assert torch.equal(frozen, torch.ones(8192))
    moved, opt = after(stochastic_rounding=True)
    assert moved.mean().item() == pytest.approx(0.9, abs=0.003)  # 100 steps of 1e-3
    assert opt.implementation()[0].startswith("fast" if path == "fast" else "per-tensor")
    again, _ = after(stochastic_rounding=True)
    assert torch.equal(moved, again), "deterministic: the same numbers in every run"


def _first_with_state(name: str):
    return next(
        c.values[1] for c in all_configs() if c.values[0] == name and _kernel_shape(name, c.values[1])[2]
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kind"),
    [(name, kind) for name in sorted(OPTIMIZERS) for kind in (None, "bfloat16")] + [("adam", "8bit")],
)
def test_stochastic_rounding_of_parameters_is_the_same_on_both_paths(name, kind, every_size):
    """The fast path rounds bfloat16 parameters back with the same random numbers as the per-tensor
    path: bit for bit, where both do the rule's arithmetic in float32 (float32 or lean state)."""
    config = _first_with_state(name)
    extra = {
        "stochastic_rounding": True,
        "lean_state": kind,
        "state_dtype": torch.float32 if kind is None else None,
    }
    out = []
    for fast in (True, False):
        params, opt = run(OPTIMIZERS[name], {**config.kwargs, flag(name): fast, **extra}, torch.bfloat16,
                          closed_loop=False)  # fmt: skip
        assert all(i.endswith("(compiled kernel)") == fast for i in opt.implementation()), (
            opt.implementation()
        )
        out.append((params, opt))
    (fast_params, fast_opt), (slow_params, slow_opt) = out
    for a, b in zip(fast_params, slow_params):
        assert torch.equal(a, b)
        for key, value in slow_opt.state[b].items():
            assert torch.equal(fast_opt.state[a][key], value), key


def test_stochastic_rounding_needs_a_step_count():
    with pytest.raises(ValueError, match=r"SGD: stochastic_rounding=True draws on the step count"):
        OPTIMIZERS["sgd"]([torch.zeros(3, requires_grad=True)], stochastic_rounding=True)
    with pytest.raises(TypeError, match=r"stochastic_rounding must be True or False; received"):
        Adam([torch.zeros(3, requires_grad=True)], stochastic_rounding=1)
    OPTIMIZERS["sgd"]([torch.zeros(3, requires_grad=True)], momentum=0.9, stochastic_rounding=True)


# Shapes, placements and meshes for the DTensor block rule: even and uneven rows, rows of 256
# elements and of other lengths, 1-D, HSDP (Replicate, Shard(0)), two Shard(0) mesh dims, and
# Shard(1) ("C") on mesh dimensions of one and two.
DTENSOR_LAYOUTS = [
    ((64, 64), ("S",), (2,), True),
    ((4096, 4096), ("S",), (8,), True),
    ((4096, 4096), ("R", "S"), (2, 4), True),
    ((10, 256), ("S",), (4,), True),  # uneven rows of one block each: the scales cut alike
    ((8192,), ("S",), (2,), True),
    ((7, 5, 256), ("S", "S"), (2, 2), False),  # 7 rows in 4: 2, 2, 2, 1, but 35 blocks in 4 are 9, 9, 9, 8
    ((3, 2048), ("S",), (2,), False),  # 2 rows and 1 (16 and 8 blocks) against scales of 12 and 12
    ((10, 512), ("S",), (4,), False),
    ((50257, 768), ("S",), (8,), False),  # GPT-2's embedding on 8 ranks: 6283 rows a rank, uneven
    ((4100,), ("S",), (2,), False),  # 2050 elements a rank: not whole blocks
    ((64, 64), ("R",), (2,), True),
    ((64, 64), ("S", "C"), (2, 1), True),  # Shard(1) on a mesh dimension of one cuts nothing
    ((64, 64), ("C", "S"), (1, 2), True),
    ((64, 64), ("C",), (2,), False),  # on two, it cuts the rows
]


@pytest.mark.parametrize("shape, kinds, mesh, fits", DTENSOR_LAYOUTS, ids=str)
def test_the_dtensor_block_rule_agrees_with_torchs_own_sharding_of_the_tensor_and_its_scales(
    shape, kinds, mesh, fits
):
    """Every mesh coordinate's shard, as DTensor computes it, against the blocks the scales put there."""
    tensor = pytest.importorskip("torch.distributed.tensor", reason="this torch has no torch.distributed")
    from torch.distributed.tensor._utils import _compute_local_shape_and_global_offset as local_of

    placements = tuple(
        {"S": tensor.Shard(0), "C": tensor.Shard(1), "R": tensor.Replicate()}[k] for k in kinds
    )
    # the scales are sharded on dim 0 wherever the tensor is sharded (_lean._new_scales)
    by_blocks = [tensor.Replicate() if k == "R" else tensor.Shard(0) for k in kinds]
    numel, scales = math.prod(shape), (_lean.blocks(math.prod(shape)),)
    row = numel // shape[0]
    agree = []
    for coordinate in itertools.product(*map(range, mesh)):
        (rows, *columns), (first, *_) = local_of(shape, mesh, list(coordinate), placements)
        (count,), (block,) = local_of(scales, mesh, list(coordinate), by_blocks)
        # a run of the row-major order only where the shard holds whole rows
        elements = (first * row, (first + rows) * row) if math.prod(columns) == row else None
        agree.append(elements == (min(block * _lean.BLOCK, numel), min((block + count) * _lean.BLOCK, numel)))
    assert all(agree) == fits, agree
    problem = _lean._shards_problem(shape, placements, mesh)
    assert (problem is None) == fits, problem


def test_the_dtensor_block_rule_refuses_placements_other_than_rows_and_copies():
    tensor = pytest.importorskip("torch.distributed.tensor", reason="this torch has no torch.distributed")
    problem = _lean._shards_problem((64, 64), (tensor.Shard(1),), (2,))
    assert problem == "its placement Shard(dim=1) is not Shard(dim=0) or Replicate()"
