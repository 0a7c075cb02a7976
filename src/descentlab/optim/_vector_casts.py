"""Bit casts as vector register casts in the lean kernels' generated CPU code.

Lean state works on float32 values' bit patterns: stochastic rounding to
bfloat16 adds random bits below a bfloat16's last bit and clears them, and the
hash that draws the random bits reads the value's bits. In the vectorised C++
that inductor (torch 2.13) generates for the CPU, each such reinterpretation
(``Tensor.view(torch.int32)`` on float32, and back) is written as a scalar
loop through two stack buffers, which made the bitcasts cost as much as the
rest of a bfloat16 lean step on the 2-core AVX-512 machine. Here it is written
as ``at::vec::cast``, ATen's register reinterpretation: the same bits, so the
same numbers, in one instruction or none.

:func:`vector_bit_casts` applies this while the lean kernels are compiled
(inductor generates code inside the first call of a compiled function).
:data:`CACHE_MARK` goes into those kernels' compile options: inductor keys its
on-disk cache of compiled graphs on it, so a kernel compiled without the
vector casts is never reused for one compiled with them, or the reverse.

Where inductor's code generator is not the one this was written for (another
torch), nothing is changed: the kernels compile as inductor writes them.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch

try:  # torch's private code generator: absent or different in another torch, then unused
    from torch._inductor.codegen.cpp import CppOverrides, CppVecOverrides
    from torch._inductor.codegen.cpp_utils import DTYPE_TO_CPP
    from torch._inductor.custom_graph_pass import CustomGraphPass
    from torch._inductor.virtualized import V

    _ORIGINAL: Any = CppVecOverrides.__dict__["to_dtype_bitcast"]
    # the arguments inductor passes (its vector version takes them through *args)
    if list(inspect.signature(CppOverrides.to_dtype_bitcast).parameters) != ["x", "dtype", "src_dtype"]:
        raise AttributeError("another to_dtype_bitcast")  # pragma: no cover
except (ImportError, KeyError, AttributeError):  # pragma: no cover - torch 2.13 has them all
    _ORIGINAL = None
    CustomGraphPass = object  # type: ignore[misc,assignment]

# Same-width pairs ATen's vector types reinterpret in a register on every ISA.
_PAIRS = {frozenset((torch.float32, torch.int32))}


def _vector_bitcast(x: Any, dtype: torch.dtype, src_dtype: torch.dtype) -> Any:
    """Inductor's ``to_dtype_bitcast`` for vectors, as ``at::vec::cast`` where the widths match."""
    original = _ORIGINAL.__func__
    if frozenset((dtype, src_dtype)) not in _PAIRS:
        return original(x, dtype, src_dtype)
    try:
        n = V.kernel._get_num_vectors(src_dtype)
    except Exception:  # a kernel object without it: leave inductor's spelling
        return original(x, dtype, src_dtype)
    to = DTYPE_TO_CPP[dtype]
    if n == 1:
        return f"at::vec::cast<{to}>({x})"
    # A loop that mixes widths (bfloat16 beside float32) holds n vectors per value.
    return (
        f"[&]() {{ at::vec::VectorizedN<{to}, {n}> cast_; "
        f"for (int i_ = 0; i_ < {n}; i_++) cast_[i_] = at::vec::cast<{to}>({x}[i_]); return cast_; }}()"
    )


@contextlib.contextmanager
def vector_bit_casts() -> Iterator[None]:
    """While open, inductor writes float32/int32 bit casts of vectors as register casts."""
    if _ORIGINAL is None:  # pragma: no cover - another torch: nothing to change
        yield
        return
    CppVecOverrides.to_dtype_bitcast = staticmethod(_vector_bitcast)
    try:
        yield
    finally:
        CppVecOverrides.to_dtype_bitcast = _ORIGINAL


class _Mark(CustomGraphPass):  # type: ignore[misc]
    """A graph pass that changes nothing: its uuid keys inductor's cache on the vector casts."""

    def __call__(self, graph: torch.fx.graph.Graph) -> None:
        return None

    def uuid(self) -> str:
        return "descentlab-vector-bit-casts-1"


#: Compile options that tell inductor's cache these kernels were made under :func:`vector_bit_casts`.
CACHE_MARK: dict[str, Any] = {} if _ORIGINAL is None else {"post_grad_custom_post_pass": _Mark()}
