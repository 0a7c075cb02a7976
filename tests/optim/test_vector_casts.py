"""The lean kernels' bit casts compile to vector register casts, with the same bits as eager code.

See ``descentlab.optim._vector_casts``: inductor writes a float32 <-> int32
reinterpretation of a vector as a scalar loop through memory; under
``vector_bit_casts()`` it writes ``at::vec::cast``. Checked here on the
code inductor generates (so a torch whose code generator changed fails
here, not silently in the bench) and on the numbers (bit for bit against
eager, the per-tensor path's arithmetic).
"""

from __future__ import annotations

import pytest
import torch
from torch._inductor import config as inductor_config
from torch._inductor.utils import run_and_get_code

from descentlab.optim import Adam, _lean
from descentlab.optim._vector_casts import CACHE_MARK, vector_bit_casts

# compiled with inductor's caches off, so that the code is generated here: torch says so once
pytestmark = pytest.mark.filterwarnings("ignore:dynamo_pgo force disabled:UserWarning")


def _rounded(x: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """Stochastic rounding to bfloat16, returned as its float32 bits: hash, add, clear, reinterpret."""
    return _lean.bfloat16_blocks(x, seed, salt=7).float().view(torch.int32)


def _mixed(x: torch.Tensor, y: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """The same on a loop that also reads bfloat16 (inductor then holds two vectors per float32 value)."""
    return _rounded(x + y.float(), seed)


def _compiled_code(fn, *args):
    with inductor_config.patch(force_disable_caches=True):
        compiled = torch.compile(fn, fullgraph=True, dynamic=True, options=CACHE_MARK)
        with vector_bit_casts():
            out, codes = run_and_get_code(compiled, *args)
    return out, "\n".join(codes)


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


def test_inductor_code_generator_is_restored_after_the_lean_kernels_compile():
    from torch._inductor.codegen.cpp import CppVecOverrides

    before = CppVecOverrides.__dict__["to_dtype_bitcast"]
    with vector_bit_casts():
        assert CppVecOverrides.__dict__["to_dtype_bitcast"] is not before
    assert CppVecOverrides.__dict__["to_dtype_bitcast"] is before
    with pytest.raises(ZeroDivisionError), vector_bit_casts():
        raise ZeroDivisionError  # an error while compiling restores it too
    assert CppVecOverrides.__dict__["to_dtype_bitcast"] is before


@pytest.mark.slow
def test_the_users_own_compiled_code_keeps_inductors_spelling():
    with inductor_config.patch(force_disable_caches=True):
        _, codes = run_and_get_code(torch.compile(_rounded, dynamic=True), torch.ones(2, _lean.BLOCK),
                                    torch.tensor(1.0))  # fmt: skip
    assert "c10::bit_cast" in "\n".join(codes)


@pytest.mark.slow
def test_the_bfloat16_lean_kernel_of_the_fast_path_uses_vector_casts():
    p = torch.zeros(_lean.BLOCK * 16, requires_grad=True)
    p.grad = torch.linspace(-1, 1, p.numel())
    opt = Adam([p], lr=1e-3, fused=True, lean_state="bfloat16")
    with inductor_config.patch(force_disable_caches=True):
        _, codes = run_and_get_code(opt.step)
    code = "\n".join(codes)
    assert "at::vec::cast<int32_t>" in code and "c10::bit_cast" not in code
    assert opt.implementation() == ["fast: 1 parameter(s) in 1 flat bucket(s) (compiled kernel)"]
