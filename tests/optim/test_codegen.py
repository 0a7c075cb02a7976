"""The mixed-precision kernels' code: vector bit casts, loops at the bfloat16 width, eager's bits.

See ``descentlab.optim._codegen``: inductor writes a float32 <-> int32
reinterpretation of a vector as a scalar loop through memory, and steps a
loop that mixes bfloat16 with a float32-only node by the float32 vector
(half-vector bfloat16 loads and stores); under ``fast_path_codegen()`` it
writes ``at::vec::cast`` and steps such a loop by the bfloat16 vector.
Checked here on the code inductor generates (so a torch whose code
generator changed fails here, not silently in the bench) and on the
numbers (bit for bit against eager, the per-tensor path's arithmetic).
"""

from __future__ import annotations

import contextlib
import re

import pytest
import torch
from torch._inductor import config as inductor_config
from torch._inductor.cpu_vec_isa import pick_vec_isa
from torch._inductor.utils import run_and_get_code

from descentlab.optim import Adam, _lean
from descentlab.optim._codegen import CACHE_MARK, fast_path_codegen

# compiled with inductor's caches off, so that the code is generated here: torch says so once
pytestmark = pytest.mark.filterwarnings("ignore:dynamo_pgo force disabled:UserWarning")


def _rounded(x: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """Stochastic rounding to bfloat16, returned as its float32 bits: hash, add, clear, reinterpret."""
    return _lean.bfloat16_blocks(x, seed, salt=7).float().view(torch.int32)


def _mixed(x: torch.Tensor, y: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """The same on a loop that also reads bfloat16 (inductor then holds two vectors per float32 value)."""
    return _rounded(x + y.float(), seed)


def _adam_on_bfloat16_moments(p, g, m, v):
    """A float32 parameter updated in place from bfloat16 moments: float32-only nodes beside bfloat16 ones."""
    m_new = m.float() * 0.9 + g * 0.1
    v_new = v.float() * 0.999 + g * g * 0.001
    p.sub_(m_new / (v_new.sqrt() + 1e-8) * 1e-3)
    m.copy_(m_new.to(torch.bfloat16))
    v.copy_(v_new.to(torch.bfloat16))


def _compiled_code(fn, *args, corrected=True):
    with inductor_config.patch(force_disable_caches=True):
        compiled = torch.compile(fn, fullgraph=True, dynamic=True, options=CACHE_MARK)
        with fast_path_codegen() if corrected else contextlib.nullcontext():
            out, codes = run_and_get_code(compiled, *args)
    return out, "\n".join(codes)


def _bfloat16_load_widths(code: str) -> set[int]:
    """The element counts of the bfloat16 vector loads in generated code."""
    pattern = r"Vectorized<at::BFloat16>::loadu\([^;]*static_cast<int64_t>\((\d+)L?\)\)"
    return {int(n) for n in re.findall(pattern, code)}


_VECTORS = pick_vec_isa()
needs_vectors = pytest.mark.skipif(
    not _VECTORS, reason="inductor finds no vector ISA on this CPU: scalar code"
)


@pytest.mark.slow  # each compiles a kernel (a few seconds on 2 cores)
@pytest.mark.parametrize("mixed", [False, True], ids=["float32", "with-bfloat16"])
def test_bit_casts_are_vector_casts_with_the_bits_eager_code_gives(mixed):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(37, _lean.BLOCK, generator=generator) * torch.logspace(-30, 30, 37)[:, None]
    x[0, :4] = torch.tensor([0.0, -0.0, float("inf"), float("nan")])
    x[1, :2] = torch.tensor([1e-40, -1e-42])  # subnormals
    seed = torch.tensor(12345.0)
    if mixed:
        y = torch.randn(37, _lean.BLOCK, generator=generator).to(torch.bfloat16)
        out, code = _compiled_code(_mixed, x, y, seed)
        expected = _mixed(x, y, seed)
    else:
        out, code = _compiled_code(_rounded, x, seed)
        expected = _rounded(x, seed)
    nan = torch.isnan(out.view(torch.float32))
    assert torch.equal(nan, torch.isnan(expected.view(torch.float32)))
    assert torch.equal(out[~nan], expected[~nan])  # the same bits (a NaN's payload may differ)
    assert "at::vec::cast<int32_t>" in code and "at::vec::cast<float>" in code
    assert "c10::bit_cast" not in code  # inductor's scalar spelling is gone


@pytest.mark.slow
@needs_vectors
def test_a_loop_mixing_bfloat16_with_float32_steps_by_full_bfloat16_vectors_with_the_same_bits():
    generator = torch.Generator().manual_seed(0)
    p, g = torch.randn(2, 8, _lean.BLOCK, generator=generator)
    m = torch.randn(8, _lean.BLOCK, generator=generator).to(torch.bfloat16)
    v = torch.rand(8, _lean.BLOCK, generator=generator).to(torch.bfloat16)
    plain, before = [t.clone() for t in (p, g, m, v)], p.clone()
    full = _VECTORS.nelements(torch.bfloat16)  # 32 on AVX-512, 16 on AVX2

    _, code = _compiled_code(_adam_on_bfloat16_moments, p, g, m, v)
    assert _bfloat16_load_widths(code) == {full}
    # inductor alone steps it by the float32 vector, reading half bfloat16 vectors, to the same bits
    _, code = _compiled_code(_adam_on_bfloat16_moments, *plain, corrected=False)
    assert _bfloat16_load_widths(code) == {full // 2}
    for corrected, uncorrected in zip((p, m, v), (plain[0], plain[2], plain[3]), strict=True):
        assert torch.equal(corrected, uncorrected)
    assert not torch.equal(p, before)  # the step ran


@pytest.mark.slow
@needs_vectors
def test_a_loop_with_8bit_buffers_keeps_inductors_width():
    def decode_update(p, g, codes, m):  # _adam_on_bfloat16_moments' shape, with an 8-bit input
        m_new = m.float() * 0.9 + codes.float() * g
        p.sub_(m_new * 1e-3)
        m.copy_(m_new.to(torch.bfloat16))

    p, g = torch.randn(2, 8, _lean.BLOCK)
    codes = torch.randint(0, 255, (8, _lean.BLOCK), dtype=torch.uint8)
    m = torch.randn(8, _lean.BLOCK).to(torch.bfloat16)
    _, corrected = _compiled_code(decode_update, p.clone(), g, codes, m.clone())
    _, plain = _compiled_code(decode_update, p.clone(), g, codes, m.clone(), corrected=False)
    assert _bfloat16_load_widths(corrected) == _bfloat16_load_widths(plain)


def test_inductor_code_generator_is_restored_after_the_lean_kernels_compile():
    from torch._inductor.codegen.cpp import CppVecOverrides, TilingSelect

    def patched():
        return CppVecOverrides.__dict__["to_dtype_bitcast"], TilingSelect.__dict__["select_tiling"]

    before = patched()
    with fast_path_codegen():
        assert all(now is not then for now, then in zip(patched(), before, strict=True))
    assert patched() == before
    with pytest.raises(ZeroDivisionError), fast_path_codegen():
        raise ZeroDivisionError  # an error while compiling restores it too
    assert patched() == before


@pytest.mark.slow
def test_the_users_own_compiled_code_keeps_inductors_spelling():
    with inductor_config.patch(force_disable_caches=True):
        _, codes = run_and_get_code(torch.compile(_rounded, dynamic=True), torch.ones(2, _lean.BLOCK),
                                    torch.tensor(1.0))  # fmt: skip
    assert "c10::bit_cast" in "\n".join(codes)


def _adam_step_code(lean_state: str) -> tuple[Adam, str]:
    """A fast-path Adam with ``lean_state`` after its first step, and the code that step compiled."""
    p = torch.zeros(_lean.BLOCK * 16, requires_grad=True)
    p.grad = torch.linspace(-1, 1, p.numel())
    opt = Adam([p], lr=1e-3, fused=True, lean_state=lean_state)
    with inductor_config.patch(force_disable_caches=True):
        _, codes = run_and_get_code(opt.step)
    return opt, "\n".join(codes)


@pytest.mark.slow
def test_the_bfloat16_lean_kernel_of_the_fast_path_uses_vector_casts_and_full_vectors():
    opt, code = _adam_step_code("bfloat16")
    assert "at::vec::cast<int32_t>" in code and "c10::bit_cast" not in code
    if _VECTORS:
        assert _bfloat16_load_widths(code) == {_VECTORS.nelements(torch.bfloat16)}
    assert opt.implementation() == ["fast: 1 parameter(s) in 1 flat bucket(s) (compiled kernel)"]


@pytest.mark.slow
def test_the_8bit_lean_kernel_has_its_map_constants_compiled_in_not_passed_as_float64():
    # A Python float of a module's tuple reaches dynamo as an input: inductor passes it as a
    # 0-dim float64 tensor that the kernel reloads and converts at every vector (the map's
    # constants did, 2026-12-07: 69 -> 58 ms per 8-bit Adam step on 16.8M parameters).
    opt, code = _adam_step_code("8bit")
    signatures = re.findall(r"cpp_pybinding\(\[([^]]*)\]", code)
    assert signatures and not any("double" in s for s in signatures), signatures
    assert opt.implementation() == ["fast: 1 parameter(s) in 1 flat bucket(s) (compiled kernel)"]


@pytest.mark.slow
def test_the_8bit_cpu_step_allocates_no_temporary_as_large_as_its_chunk():
    # Inductor allocates a graph's temporaries at every call; malloc hands large ones back to
    # the system, and each 4 KB page then faults again at the next step (2026-12-07: 21-27
    # thousand faults per step, 34 or 70 ms by the process, on 2000 x 4096 parameters). The
    # 8-bit CPU step is two passes through scratch the optimizer keeps: the only allocations
    # left are the block scales (one number per block of 256) that the second pass returns.
    _, code = _adam_step_code("8bit")
    assert code.count("def call(") == 2, "two compiled passes"
    shapes = re.findall(r"empty_strided_cpu\(\(([^)]*)\)", code)
    assert shapes and all(len([d for d in shape.split(",") if d.strip()]) == 1 for shape in shapes), shapes


@pytest.mark.slow
@needs_vectors
def test_the_bench_probe_of_bfloat16_state_reads_and_writes_full_vectors(monkeypatch):
    # The probe beside a bfloat16-state step has a float32-only pass (the parameters) beside
    # bfloat16 ones: compiled as inductor writes it, it read half vectors and timed that, not the memory.
    from descentlab import bench

    p = torch.zeros(_lean.BLOCK * 16, requires_grad=True)
    p.grad = torch.linspace(-1, 1, p.numel())
    opt = Adam([p], lr=1e-3, fused=True, lean_state="bfloat16")
    opt.step()
    monkeypatch.setattr(bench, "_PROBE_KERNELS", {})  # compiled here, not taken from an earlier test's
    probe = bench.StreamingProbe.beside(opt)
    with inductor_config.patch(force_disable_caches=True):
        _, codes = run_and_get_code(probe.step)
    assert _bfloat16_load_widths("\n".join(codes)) == {_VECTORS.nelements(torch.bfloat16)}
