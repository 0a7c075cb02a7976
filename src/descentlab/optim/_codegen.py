"""Two corrections to the vectorised C++ that inductor writes for the fast path's mixed-precision kernels.

The kernels that mix bfloat16 with float32 (lean state, bfloat16 parameters)
are compiled by inductor's C++ backend (torch 2.13), whose code for them was
measured slow in two places on the 2-core AVX-512 machine; :func:`fast_path_codegen`
corrects both while those kernels compile, and only then.

**Bit casts.** Lean state works on float32 values' bit patterns: stochastic
rounding to bfloat16 adds random bits below a bfloat16's last bit and clears
them, and the hash that draws the random bits reads the value's bits.
Inductor writes each such reinterpretation (``Tensor.view(torch.int32)`` on
float32, and back) as a scalar loop through two stack buffers, which made
the bitcasts cost as much as the rest of a bfloat16 lean step. Here it is
written as ``at::vec::cast``, ATen's register reinterpretation: the same
bits, so the same numbers, in one instruction or none.

**Loop width.** Inductor steps a loop by one vector of its low-precision
dtype (32 bfloat16 elements on AVX-512) only when every node of the kernel
reads or writes that dtype; a kernel that also has a float32-only node (the
parameter's update beside bfloat16 moments) is stepped by one float32 vector,
16 elements, and reads and writes its bfloat16 buffers as half vectors. On
AVX-512 ATen does that with a masked 64-byte load or store, and the next
step's access to the other half waits on it: 3.8 times as long per element
in cache, 1.5 times from memory, against plain 32-byte loads and stores
(one thread, 16.8M elements, 2026-12-06). Here such a kernel is stepped by
the bfloat16 vector, as an all-bfloat16 one is: full loads and stores, two
float32 vectors per value. Elementwise arithmetic, so the same numbers.
Kernels with 8-bit buffers keep inductor's width (ATen's 8-bit vectors load
16 elements with one 16-byte access; 32 would take the masked path).

:data:`CACHE_MARK` goes into those kernels' compile options: inductor keys its
on-disk cache of compiled graphs on it, so a kernel compiled without these
corrections is never reused for one compiled with them, or the reverse.

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
    from torch._inductor.codegen import cpp as _cpp
    from torch._inductor.codegen.cpp import CppOverrides, CppVecOverrides, TilingSelect
    from torch._inductor.codegen.cpp_utils import DTYPE_TO_CPP
    from torch._inductor.custom_graph_pass import CustomGraphPass
    from torch._inductor.virtualized import V

    _ORIGINAL: Any = CppVecOverrides.__dict__["to_dtype_bitcast"]
    _ORIGINAL_TILING: Any = TilingSelect.__dict__["select_tiling"]
    _LOWP = _cpp.get_loop_body_lowp_fp
    _BODIES, _DTYPES = _cpp._get_loop_body, _cpp._get_dtype_from_loopbodies
    # the arguments inductor passes (its vector version takes them through *args)
    if list(inspect.signature(CppOverrides.to_dtype_bitcast).parameters) != ["x", "dtype", "src_dtype"]:
        raise AttributeError("another to_dtype_bitcast")  # pragma: no cover
    if list(inspect.signature(_ORIGINAL_TILING).parameters) != ["self", "fn_list", "var_sizes_list"]:
        raise AttributeError("another select_tiling")  # pragma: no cover
except (ImportError, KeyError, AttributeError):  # pragma: no cover - torch 2.13 has them all
    _ORIGINAL = _ORIGINAL_TILING = None
    CustomGraphPass = object  # type: ignore[misc,assignment]

# Same-width pairs ATen's vector types reinterpret in a register on every ISA.
_PAIRS = {frozenset((torch.float32, torch.int32))}

# Buffers whose vectors would be read in part at the bfloat16 width (see the docstring).
_EIGHT_BIT = (torch.uint8, torch.int8)


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


def _select_tiling(self: Any, fn_list: Any, var_sizes_list: Any) -> Any:
    """Inductor's loop width, by the low-precision dtype where only some nodes use it (see the docstring)."""
    bodies = _BODIES(fn_list)
    kinds = {_LOWP(body)[0] for body in bodies}
    lowp = kinds - {None}
    if len(lowp) != 1 or None not in kinds or any(d in _EIGHT_BIT for d in _DTYPES(bodies)):
        return _ORIGINAL_TILING(self, fn_list, var_sizes_list)
    (dtype,) = lowp
    # inductor reads the nodes' low-precision dtype through this module function, here only
    _cpp.get_loop_body_lowp_fp = lambda body: (_LOWP(body)[0] or dtype, _LOWP(body)[1])
    try:
        return _ORIGINAL_TILING(self, fn_list, var_sizes_list)
    finally:
        _cpp.get_loop_body_lowp_fp = _LOWP


@contextlib.contextmanager
def fast_path_codegen() -> Iterator[None]:
    """While open, inductor writes vector bit casts as register casts and mixed loops at the low width."""
    if _ORIGINAL is None:  # pragma: no cover - another torch: nothing to change
        yield
        return
    CppVecOverrides.to_dtype_bitcast = staticmethod(_vector_bitcast)
    TilingSelect.select_tiling = _select_tiling
    try:
        yield
    finally:
        CppVecOverrides.to_dtype_bitcast = _ORIGINAL
        TilingSelect.select_tiling = _ORIGINAL_TILING


class _Mark(CustomGraphPass):  # type: ignore[misc]
    """A graph pass that changes nothing: its uuid keys inductor's cache on these corrections."""

    def __call__(self, graph: torch.fx.graph.Graph) -> None:
        return None

    def uuid(self) -> str:
        return "descentlab-cpu-codegen-2"


#: Compile options that tell inductor's cache these kernels were made under :func:`fast_path_codegen`.
CACHE_MARK: dict[str, Any] = {} if _ORIGINAL is None else {"post_grad_custom_post_pass": _Mark()}
