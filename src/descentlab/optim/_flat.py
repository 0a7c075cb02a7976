"""The fast path: one compiled pass over flat buffers per group, device and dtype.

An optimizer step is memory-bound: Adam reads a parameter, its gradient and
two moments and writes three of them back, whatever the arithmetic. The
fastest step touches each byte once with no per-tensor overhead. So the fast
path keeps, for each (parameter group, device, dtype), one *bucket*:

- the parameters' data in one contiguous buffer (each ``p.data`` is re-pointed
  to its slice, keeping its shape and strides);
- the gradients in one buffer (each ``p.grad`` a view into it, so backward
  accumulates in place; a gradient that is not such a view, e.g. a fresh one
  after ``zero_grad(set_to_none=True)``, is copied in by one ``_foreach_copy_``);
- each state tensor (``exp_avg``, ...) in one buffer, ``optimizer.state[p]``
  holding views into it, so ``state_dict()`` keeps torch.optim's format;
- the step counts in one CPU tensor, ``state[p]["step"]`` a 0-dim view into it.

Each step then runs one kernel over the whole bucket:

- where the group's configuration is exactly torch's rule (torch's conventions,
  float32 or float64 on the CPU, the state in the parameters' dtype), torch's
  own fused CPU kernel (``torch._fused_adam_``, ``_fused_adamw_``,
  ``_fused_sgd_``, ``_fused_adagrad_``), called once per flat buffer; a torch
  that lacks it, or refuses the dtype, falls back to the next;
- everywhere else (RMSprop, EMA momentum, Keras's and optax's conventions,
  ``state_dtype``, CUDA), a ``torch.compile``-generated kernel of the rule's
  *elementwise* update: vectorised C++ with OpenMP on CPU, Triton on CUDA. The
  rule's *coefficients* (bias corrections, step size, and every product of
  hyperparameters such as ``1 - beta1``) are computed once per step on the
  host and reach the kernel as 0-dim tensors in the compute dtype (float32
  for float32 and half-precision parameters): the loop converts nothing and
  reads each scalar as one broadcast operand, so its body is the rule's
  arithmetic alone and it runs at the memory's speed. A scheduler changing
  ``lr``, ``betas`` or ``momentum`` never recompiles; a
  term whose hyperparameter is 0 (``weight_decay``, ``eps_root``) is compiled
  away, and turning it on compiles one more kernel. The buffer length is
  symbolic, so nothing recompiles on the second step either.

Parameters without a gradient in a step, or whose step counts differ, split
the bucket into runs of consecutive parameters, one kernel call each.

Anything the fast path cannot take is left to the per-tensor path, which works
on the same state views: sparse gradients, tensor subclasses, parameters
whose storage is shared or only partly theirs, and everything when the
compiler is missing or fails (said once, in a :class:`FastPathWarning`).
"""

from __future__ import annotations

import inspect
import operator
import sys
import types
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from . import _codegen, _lean

if TYPE_CHECKING:
    from ._base import Optimizer

#: Below this many elements in a group, ``fused=None`` (automatic) keeps the
#: per-tensor path: compiling takes seconds once per process, which a small
#: model does not win back. ``fused=True`` forces the fast path at any size.
AUTO_MIN_ELEMENTS = 1 << 20

#: The largest bucket, in elements; a larger group is split into several
#: buckets, which bounds the memory that (re)building a bucket borrows.
MAX_BUCKET_ELEMENTS = 1 << 26

#: On the CPU the 8-bit step runs on a bucket this many elements at a time, in two
#: compiled passes per chunk: the first decodes, updates and writes each new moment
#: in float32 into scratch of one chunk that the optimizer keeps (see
#: :class:`_Scratch`); the second takes each block's absmax from there and encodes.
#: Chunks bound the scratch (4 MB per state) and keep it in cache. The numbers do
#: not change: chunks start on block boundaries, and the rounding's random bits
#: depend on an element's place in its block, not on the block's place in the buffer.
LEAN_CHUNK_ELEMENTS = 1 << 20

# The 8-bit CPU passes' inductor thresholds for keeping a value in a temporary. At the
# defaults (50, 4) the first pass kept two new moments in temporaries as large as its
# chunk, allocated at every call and page-faulted afresh whenever malloc had returned
# them (21-27 thousand faults per step on 2000 x 4096 parameters: 34 or 70 ms by the
# process), and the second stored a boolean per element one byte at a time (35 against
# 10 ms per 4M elements). Raised, each pass is one loop with no temporary. In the single
# pass the 8-bit step was before, raised thresholds made lowering inline the decoded
# moments into every use of the encoding (AMSGrad compiled for 70 s); each pass alone
# compiles in 9-24 s with caches off (the changelog, 2026-12-07).
_EIGHT_BIT_OPTIONS = {"realize_cpu_opcount_threshold": 400, "realize_reads_threshold": 8}


#: Whether buckets whose rule and dtype torch has a fused CPU kernel for run it
#: (``torch._fused_adam_`` and its kin, once per flat buffer); False makes every
#: bucket run descentlab's compiled kernel (the tests compare the two).
TORCH_KERNELS = True

# (optimizer class, dtype) pairs whose torch kernel has run in this process (a later
# failure is a real error), and those whose kernel is missing or refused the dtype.
_TORCH_KERNELS_RAN: set[tuple[Any, torch.dtype]] = set()
_TORCH_KERNELS_MISSING: dict[tuple[Any, torch.dtype], str] = {}


class FastPathWarning(UserWarning):
    """The fast path could not run here; the per-tensor path gives the same numbers."""


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, FastPathWarning, stacklevel=4)


def step_dtype() -> torch.dtype:
    """The dtype of ``state["step"]``: torch.optim's float32, or float64 when that is the default dtype."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def state_dtype(group: dict[str, Any], p: torch.Tensor) -> torch.dtype:
    """The dtype of ``p``'s state tensors: the group's ``state_dtype``, else ``p``'s own.

    Complex parameters keep their dtype (``state_dtype`` is for real ones, e.g.
    float32 state for bfloat16 parameters).
    """
    wanted = group.get("state_dtype")
    return p.dtype if wanted is None or p.is_complex() else wanted


def _kept(group: dict[str, Any], lean: str | None, p: torch.Tensor) -> torch.dtype:
    """The dtype of the state buffers of a bucket led by ``p``: a complex state's parts are real."""
    dtype = _STORED.get(lean) or state_dtype(group, p)
    return dtype.to_real() if dtype.is_complex else dtype


def compute_dtype(dtype: torch.dtype, state: torch.dtype) -> torch.dtype:
    """The dtype of the rule's arithmetic on the fast path: float64 if either side is, else float32.

    Half-precision parameters or state are computed in float32, as eager ops do.
    """
    return torch.float64 if torch.float64 in (dtype, state) else torch.float32


def wanted(group: dict[str, Any]) -> bool | None:
    """True if the user forces the fast path, False if they switch it off, None for automatic.

    ``fused`` and ``foreach`` are torch.optim's flags: False selects the
    per-tensor loop (torch's "for-loop"), True selects the one-pass
    implementation, which for descentlab is this fast path. As in torch, a
    flag set True wins over the other set False (``fused=True,
    foreach=False`` runs torch's fused kernel there).
    """
    fused, foreach = group.get("fused"), group.get("foreach")
    if fused or foreach:
        return True
    if fused is False or foreach is False:
        return False
    return None


def ineligible(p: torch.Tensor) -> str | None:
    """Why ``p`` cannot live in a flat buffer, or None if it can."""
    if type(p) not in (torch.Tensor, torch.nn.Parameter):
        return f"it is a {type(p).__name__}"
    if not p.is_leaf:
        return "it is not a leaf"
    if p.device.type not in ("cpu", "cuda"):
        return f"it is on {p.device.type}"
    if p.grad is not None and (p.grad.is_sparse or p.grad.layout != torch.strided):
        return "its gradient is sparse"
    if p.is_complex() and not p.is_contiguous():
        return "it is complex and not contiguous"
    if not _dense(p):
        return "its layout has gaps or overlaps"
    if not _placed(p) and p.untyped_storage().nbytes() != p.numel() * p.element_size():
        return "it shares a larger storage with other tensors"
    return None


# Where the fast path put a parameter, kept on the parameter itself: a
# parameter that is still there lives in a descentlab buffer, whose sharing
# with other parameters is ours to undo; anywhere else, sharing a storage
# means someone aliases it (the user, or FSDP's flat parameter), and moving
# it would break that. The mark is the place within the buffer (offset and
# buffer size), which a deep copy keeps and a replaced ``p.data`` loses.
_PLACED = "_descentlab_flat_place"


def _place(p: torch.Tensor) -> tuple[int, int]:
    return p.storage_offset(), p.untyped_storage().nbytes()


def _placed(p: torch.Tensor) -> bool:
    return getattr(p, _PLACED, None) == _place(p)


def _dense(p: torch.Tensor) -> bool:
    """Whether ``p`` covers its memory exactly once (any order of dimensions)."""
    expected = 1
    for stride, size in sorted((t, s) for s, t in zip(p.shape, p.stride(), strict=True) if s != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _real(p: torch.Tensor) -> tuple[torch.dtype, int]:
    """The buffer dtype and the number of buffer elements of ``p``."""
    if p.is_complex():
        return p.real.dtype, 2 * p.numel()
    return p.dtype, p.numel()


def _shaped(buffer: torch.Tensor, offset: int, p: torch.Tensor) -> torch.Tensor:
    """The slice of ``buffer`` at ``offset`` viewed with ``p``'s shape, strides and dtype."""
    if p.is_complex():
        return torch.view_as_complex(buffer[offset : offset + 2 * p.numel()].view(*p.shape, 2))
    return buffer.as_strided(p.shape, p.stride(), buffer.storage_offset() + offset)


# -- compiled kernels --------------------------------------------------------------

# The buffer length is symbolic, and inductor's C++ backend otherwise decides at
# compile time, from the length it first sees and the thread count of that
# moment, whether the loop runs on one thread or on all: a first step on a small
# buffer (or under torch.set_num_threads(1)) would leave every later buffer, in
# this process and, through inductor's on-disk cache, in later ones, on one core.
# With dynamic threads the loop is always an OpenMP parallel loop, sized at run time.
_COMPILE_OPTIONS = {"cpp.dynamic_threads": True}

_KERNELS: dict[tuple[Any, ...], _Kernel] = {}

# On CUDA a kernel's block size is chosen for the buffer length it is first compiled
# for (inductor's size hint: a Triton block of at most that many elements), and
# inductor's on-disk cache does not key kernels on it: a kernel first compiled on a
# few dozen elements, by a test or a small model, in any earlier process, would run a
# large model's buffers in blocks of 64. The fast path's CUDA kernels are compiled
# for this length instead (torch's mark_dynamic hint_override, which the cache keys
# on); lean kernels, whose buffers come as blocks, for this length in blocks. A
# block's length stays symbolic: compiled in as a constant (mark_static), Triton keeps
# each block in registers (a persistent reduction) instead of looping over it twice
# through a float32 temporary, yet that measured slower on an H200 (2026-12-04, one
# run each, 63M parameters: 8-bit Adam 5.85 against 2.10 ms, AdamW 6.00 against
# 2.19; bfloat16-state rows moved both ways) and on the CPU (4.2M parameters, 8-bit
# Adam 36 against 26 ms).
SIZE_HINT = 1 << 24
_HINTED_DEVICES = ("cuda",)
_HINTS = "hint_override" in inspect.signature(torch._dynamo.mark_dynamic).parameters


@dataclass
class _Kernel:
    fn: Callable[..., Any]
    ok: bool = False  # has run once: later failures are real errors, not a missing compiler
    broken: str | None = None
    encode: Callable[..., Any] | None = None  # the 8-bit CPU step's second pass (see _lean_kernel)


def _kernel(
    update: Callable[..., None],
    numeric: tuple[str, ...],
    flags: tuple[tuple[str, bool | float], ...],
    present: tuple[bool, ...],
    device: str,
    dtype: torch.dtype,
    state: torch.dtype,
    rounding: bool = False,
) -> _Kernel:
    """The compiled fast-path kernel of ``update`` for one signature (cached for the process).

    ``rounding``: bfloat16 parameters updated in float32 and rounded back
    stochastically (``stochastic_rounding=True``); the buffers come as blocks
    of ``BLOCK`` and the last scalar is the seed of the rounding (the step count).
    """
    key = (update, numeric, flags, present, device, dtype, state, rounding)
    kernel = _KERNELS.get(key)
    if kernel is None:
        n_states, static = len(present), dict(flags)
        upcast = state if state != dtype else None
        salt = _lean.salt("param")

        def flat_step(param: torch.Tensor, grad: torch.Tensor, *rest: Any) -> None:
            if upcast is not None:  # fused into the kernel: the gradient is read once, never stored
                grad = grad.to(upcast)
            scalars = dict(zip(numeric, rest[n_states:], strict=True))
            if not rounding:
                update(param, grad, *rest[:n_states], **scalars, **static)
                return
            seed = scalars.pop("seed")
            exact = param.to(torch.float32)
            update(exact, grad, *rest[:n_states], **scalars, **static)
            param.copy_(_lean.bfloat16_blocks(exact, seed, salt))

        name = f"descentlab_{update.__name__}_{len(_KERNELS)}"
        mixed = rounding or upcast is not None  # bfloat16 beside float32: see _codegen
        kernel = _KERNELS[key] = (_corrected if mixed else _compiled)(flat_step, name)
    return kernel


def _corrected(flat_step: Callable[..., None], name: str, options: dict[str, Any] | None = None) -> _Kernel:
    """``flat_step`` compiled as :func:`_compiled` does, with inductor's code corrected.

    Each call (inside which inductor writes its code) runs under
    ``_codegen.fast_path_codegen``, and ``_codegen.CACHE_MARK`` keeps the
    kernels apart from uncorrected ones in inductor's cache; ``options``:
    compile options besides the fast path's.
    """
    kernel = _compiled(flat_step, name, {**_COMPILE_OPTIONS, **_codegen.CACHE_MARK, **(options or {})})
    compiled = kernel.fn

    def with_codegen(*args: Any) -> Any:
        with _codegen.fast_path_codegen():
            return compiled(*args)

    kernel.fn = with_codegen
    return kernel


def _compiled(flat_step: Callable[..., None], name: str, options: dict[str, Any] | None = None) -> _Kernel:
    """``flat_step`` compiled under a code object of its own, named ``name``.

    Dynamo keeps one cache, with a recompile limit, per code object: a code
    object of its own per kernel keeps different optimizers and dtypes from
    evicting each other.
    """
    code = flat_step.__code__.replace(co_name=name)
    fresh = types.FunctionType(code, flat_step.__globals__, code.co_name, None, flat_step.__closure__)
    options = known_options(options or _COMPILE_OPTIONS)
    return _Kernel(torch.compile(fresh, fullgraph=True, dynamic=True, options=options))


def known_options(options: dict[str, Any]) -> dict[str, Any]:
    """The inductor options in ``options`` that the running torch has.

    Each of descentlab's options is a speed setting, not part of the rule, and
    some are younger than the oldest torch descentlab supports
    (``realize_cpu_opcount_threshold`` is not in torch 2.11, which refuses a
    ``torch.compile`` given an option it does not know): an older torch
    compiles the same rule with its defaults.
    """
    from torch._inductor import config

    known = config.get_config_copy()
    return {k: v for k, v in options.items() if k in known}


#: The dtype of each lean form's state buffers.
_STORED: dict[str | None, torch.dtype] = {"bfloat16": torch.bfloat16, "8bit": torch.uint8}


def _lean_kernel(
    cls: type[Optimizer],
    lean: str,
    numeric: tuple[str, ...],
    flags: tuple[tuple[str, bool | float], ...],
    present: tuple[bool, ...],
    device: str,
    dtype: torch.dtype,
    rounding: bool = False,
) -> _Kernel:
    """The compiled kernel of ``cls.update`` on lean state: dequantise, update, requantise.

    Its arguments: the parameters and gradients (viewed as blocks of
    ``BLOCK``), each state buffer (None where absent), for 8-bit each state's
    block scales, then the scalars, the last of them the seed
    of the stochastic rounding (the step count). ``rounding``: as for :func:`_kernel`.

    One pass, except for 8-bit state on the CPU: there ``fn`` takes, after the
    scales, one float32 scratch buffer per state (None where absent), the
    shape of the state's chunk, writes each new value there and leaves the
    codes and scales alone; ``encode(seed, *scratch, *states)`` then encodes
    the scratch into the states' codes and returns the live states' block
    absmax, in order, for the caller to store in their scales. The same float32
    values are encoded as in one pass, so the codes are the same bit for bit;
    in one pass inductor would keep them in temporaries it allocates at every
    call (see :data:`_EIGHT_BIT_OPTIONS`). The absmax comes back rather than
    being written in place: a write to the scales makes inductor split the
    encoding into loops joined by temporaries again.
    """
    key = (cls.update, numeric, flags, present, device, dtype, lean, rounding)
    kernel = _KERNELS.get(key)
    if kernel is None:
        n_states, static, names = len(present), dict(flags), cls.state_names
        unsigned = tuple(n in cls.unsigned_state for n in names)
        salts = tuple(_lean.salt(n) for n in names)
        compute = compute_dtype(dtype, torch.float32)
        update = cls.update
        eight = lean == "8bit"
        two_passes = eight and device == "cpu"
        param_salt = _lean.salt("param")

        def flat_step(param: torch.Tensor, grad: torch.Tensor, *rest: Any) -> None:
            states = rest[:n_states]
            scales = rest[n_states : 2 * n_states] if eight else ()
            scratch = rest[2 * n_states : 3 * n_states] if two_passes else ()
            scalars = dict(zip(numeric, rest[len(states) + len(scales) + len(scratch) :], strict=True))
            seed = scalars.pop("seed")
            dense: list[torch.Tensor | None] = []
            for i, s in enumerate(states):
                if s is None:
                    dense.append(None)
                elif eight:
                    signed = not unsigned[i]
                    dense.append((_lean.decode(s, signed) * scales[i][:, None]).to(compute))
                else:
                    dense.append(s.to(compute))
            exact = param.to(torch.float32) if rounding else param
            update(exact, grad.to(compute), *dense, **scalars, **static)
            if rounding:
                param.copy_(_lean.bfloat16_blocks(exact, seed, param_salt))
            live = [
                i
                for i, (s, value) in enumerate(zip(states, dense, strict=True))
                if s is not None and value is not None
            ]
            if not eight:  # rounded together, as the per-tensor path's _lean.write_ rounds them
                rounded = _lean.bfloat16_states([dense[i] for i in live], seed, [salts[i] for i in live])
                for i, value in zip(live, rounded, strict=True):
                    states[i].copy_(value)
                return
            for i in live:
                if two_passes:
                    scratch[i].copy_(dense[i])
                    continue
                codes, absmax = _lean.encode_blocks(dense[i], not unsigned[i], seed, salts[i])
                states[i].copy_(codes)
                scales[i].copy_(absmax)

        name = f"descentlab_lean_{update.__name__}_{len(_KERNELS)}"
        # Inductor's default thresholds for keeping a value in a temporary, but for the
        # 8-bit CPU passes (see _EIGHT_BIT_OPTIONS).
        kernel = _KERNELS[key] = _corrected(flat_step, name, _EIGHT_BIT_OPTIONS if two_passes else None)
        if two_passes:
            kernel.encode = _encoder(unsigned, salts, present)
    return kernel


def _encoder(
    unsigned: tuple[bool, ...], salts: tuple[int, ...], present: tuple[bool, ...]
) -> Callable[..., Any]:
    """The 8-bit CPU step's second pass (see :func:`_lean_kernel`), one per rule's states.

    It does not depend on the rule's hyperparameters, so the kernels that a
    rule's flags and zero terms specialise share it instead of compiling it again.
    """
    key = (unsigned, salts, present)
    encode = _ENCODERS.get(key)
    if encode is None:

        def encode_step(seed: torch.Tensor, *rest: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
            values, states = rest[: len(present)], rest[len(present) :]
            absmax = []
            for i, (value, codes) in enumerate(zip(values, states, strict=True)):
                if value is not None and codes is not None:
                    code, scale = _lean.encode_blocks(value, not unsigned[i], seed, salts[i])
                    codes.copy_(code)
                    absmax.append(scale)
            return tuple(absmax)

        name = f"descentlab_lean_encode_{len(_ENCODERS)}"
        encode = _ENCODERS[key] = _corrected(encode_step, name, _EIGHT_BIT_OPTIONS).fn
    return encode


_ENCODERS: dict[tuple[Any, ...], Callable[..., Any]] = {}


class _Scratch:
    """Buffers of one chunk per state for the 8-bit CPU step's two passes (see :func:`_lean_kernel`).

    An optimizer keeps one (on its :class:`FastPath`), made at its first 8-bit
    step as large as the largest chunk it needs (at most
    :data:`LEAN_CHUNK_ELEMENTS` elements per state in the compute dtype, 4 MB
    in float32) and kept, so that no later step allocates: memory allocated
    and freed at every step costs a page fault per 4 KB whenever malloc hands
    it back to the system.
    """

    def __init__(self) -> None:
        self.buffers: dict[tuple[int, torch.dtype], torch.Tensor] = {}
        self.seeds: dict[torch.dtype, torch.Tensor] = {}

    def seed(self, value: torch.Tensor) -> torch.Tensor:
        """A 0-dim tensor of its own holding ``value`` (a view of a bucket's scalars).

        A view would carry its base's length into the second pass's guards, which
        dynamo may tie to an unrelated size that happens to be equal (a chunk of 5
        blocks beside 5 scalars), recompiling when the number of scalars changes.
        """
        held = self.seeds.get(value.dtype)
        if held is None:
            held = self.seeds[value.dtype] = torch.empty((), dtype=value.dtype, device=value.device)
        return held.copy_(value)

    def views(self, like: Sequence[torch.Tensor | None], dtype: torch.dtype) -> list[torch.Tensor | None]:
        """One buffer of ``dtype`` shaped as each tensor of ``like`` (None where it is None)."""
        out: list[torch.Tensor | None] = []
        for i, t in enumerate(like):
            if t is None:
                out.append(None)
                continue
            buffer = self.buffers.get((i, dtype))
            if buffer is None or buffer.numel() < t.numel():
                buffer = self.buffers[(i, dtype)] = torch.empty(t.numel(), dtype=dtype, device=t.device)
            out.append(buffer[: t.numel()].view(t.shape))
        return out


def _takes_torch_kernel(
    cls: type[Optimizer], param_buffer: torch.Tensor, state_buffers: dict[str, torch.Tensor]
) -> bool:
    """Whether torch has a fused kernel for ``cls``'s rule on these buffers.

    CPU only: on CUDA the compiled rule (Triton) keeps the hyperparameters on the
    device. float32 and float64 only, with the state in the parameters' dtype:
    torch's kernels round half-precision state after each step in their own way.
    """
    dtype = param_buffer.dtype
    return (
        TORCH_KERNELS
        and cls.torch_fused is not None
        and param_buffer.device.type == "cpu"
        and dtype in (torch.float32, torch.float64)
        and all(b.dtype == dtype for b in state_buffers.values())
        and (cls, dtype) not in _TORCH_KERNELS_MISSING
    )


def _rounds(group: dict[str, Any], dtype: torch.dtype, names: tuple[str, ...]) -> bool:
    """Whether ``group``'s parameters of ``dtype`` are rounded back stochastically (bfloat16 only)."""
    return bool(group.get("stochastic_rounding")) and dtype == torch.bfloat16 and bool(names)


_data_ptr = torch.Tensor.data_ptr
_grad = operator.attrgetter("grad")


def _is_zero(value: Any) -> bool:
    """Whether ``value`` is the number 0 (a tensor never is: its value may change in place)."""
    return not isinstance(value, torch.Tensor) and value == 0


# -- the state table ---------------------------------------------------------------
#
# The buckets hold the state, and ``optimizer.state[p]`` holds views into them.
# Whatever puts other tensors there must be seen before the next step, or the step
# would run on the buckets' old values: ZeroRedundancyOptimizer.load_state_dict
# writes ``optimizer.state[p]`` directly, and torch.optim lets a user reset a
# moment by assigning a new tensor. Comparing every entry at every step would cost
# a dictionary lookup per parameter and state tensor (a tenth of a millisecond or
# more on thousands of small tensors); instead, while the fast path holds the
# state, the table counts every entry set or removed (its parameters' entries
# included), and the buckets compare their entries only when the count has moved.


class _Counting:
    """Counts in ``self._table.changes`` each entry a dict subclass sets or removes, then lets dict do it.

    (Through ``super()``, which torch.compile traces: it cannot call ``dict.__setitem__`` itself.)
    """

    __slots__ = ()
    _table: Any

    def _count(self) -> None:
        # Not while torch.compile traces a step (which never runs the fast path):
        # a count that moves at every call would recompile the step at every call.
        if not torch.compiler.is_compiling():
            self._table.changes += 1

    def __setitem__(self, key: Any, value: Any) -> None:
        self._count()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._count()
        super().__delitem__(key)

    def pop(self, *args: Any) -> Any:
        self._count()
        return super().pop(*args)

    def popitem(self) -> Any:
        self._count()
        return super().popitem()

    def clear(self) -> None:
        self._count()
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._count()
        super().update(*args, **kwargs)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._count()
        return super().setdefault(key, default)

    def __ior__(self, other: Any) -> Any:
        self._count()
        return super().__ior__(other)


class StateEntries(_Counting, dict):
    """One parameter's state (``optimizer.state[p]``) that counts each entry set or removed in its table.

    Copies and pickles of it are plain dicts, as torch.optim's are.
    """

    __slots__ = ("_table",)

    def __init__(self, table: StateTable, entries: Any = ()) -> None:
        super().__init__(entries)
        self._table = table

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (dict(self),)


class StateTable(_Counting, defaultdict):
    """``optimizer.state`` while the fast path holds the state: counts every entry set or removed.

    A parameter's entry is created as :class:`StateEntries`, which counts in
    this table too; an entry set from outside is kept as given (counted),
    and made a :class:`StateEntries` when its parameter's bucket is next built.
    Copies and pickles of it are torch.optim's ``defaultdict(dict)``.
    """

    def __init__(self, entries: Any = ()) -> None:
        super().__init__(None, entries)
        self._table = self
        self.changes = 0

    def __missing__(self, key: Any) -> StateEntries:
        entries = self[key] = StateEntries(self)
        return entries

    def __reduce__(self) -> tuple[Any, ...]:
        return defaultdict, (dict, {k: dict(v) for k, v in self.items()})


def watched(optimizer: Optimizer) -> StateTable:
    """``optimizer.state`` as a :class:`StateTable` (made one, with the same entries, if it is not)."""
    table = optimizer.state
    if type(table) is not StateTable:
        table = optimizer.state = StateTable(table)
    return table


def entries_of(table: StateTable, p: torch.Tensor) -> StateEntries:
    """``table[p]`` as :class:`StateEntries` (made one, with the same entries, if it is not)."""
    entries = table[p]
    if type(entries) is not StateEntries or entries._table is not table:
        entries = table[p] = StateEntries(table, entries)
    return entries


# -- buckets -----------------------------------------------------------------------


@dataclass(eq=False)
class Bucket:
    """Parameters of one group, device and dtype, with their gradients and state, in flat buffers."""

    params: list[torch.Tensor]
    offsets: list[int]
    names: tuple[str, ...]
    param_buffer: torch.Tensor
    grad_buffer: torch.Tensor
    state_buffers: dict[str, torch.Tensor]
    steps: torch.Tensor  # the step count of each parameter: the truth, viewed by state[p]["step"]
    uniform: int | None  # the count all parameters share, or None
    grad_views: list[torch.Tensor]
    # ``steps``' version counter when ``uniform`` was last read from it: a write into a
    # ``state[p]["step"]`` view (``.zero_()``, an in-place checkpoint load) bumps it
    counted: int = -1
    pointers: list[int] = field(default_factory=list)
    scalars: torch.Tensor | None = None
    scalar_views: list[torch.Tensor] = field(default_factory=list)
    pinned: list[torch.Tensor] = field(default_factory=list)  # CUDA: two host buffers, used in turn
    copied: list[Any] = field(default_factory=lambda: [None, None])  # CUDA: the event of each one's copy
    turn: int = 0
    torch_kernel: bool = False  # whether to try torch's fused kernel first
    step_now: torch.Tensor = field(default_factory=lambda: torch.zeros(()))  # the step a torch kernel reads
    # each parameter's state entries and what they held when the bucket was built
    held: list[tuple[StateEntries, tuple[tuple[Any, Any], ...]]] = field(default_factory=list)
    kernel: str = ""  # which kernel ran last, for describe()
    all_present: list[bool] = field(default_factory=list)  # gather()'s answer when every gradient is in place
    lean: str | None = None  # the parameters' lean_state form, or None (full precision)
    scales: dict[str, torch.Tensor] = field(default_factory=dict)  # 8-bit: each state's block absmax
    rounding: bool = False  # bfloat16 parameters rounded back stochastically (stochastic_rounding=True)

    @classmethod
    def build(cls, optimizer: Optimizer, group: dict[str, Any], params: list[torch.Tensor]) -> Bucket:
        """Move ``params``, their gradients and state into new flat buffers."""
        active = optimizer._active_state(group)
        names = tuple(n for n in optimizer.state_names if n in active)
        dtype, _ = _real(params[0])
        device = params[0].device
        lean = _lean.kind(group, params[0]) if names else None
        rounding = _rounds(group, dtype, names)
        # 8-bit blocks never straddle two parameters: each starts on a block boundary
        # (the padding between them is zero, so the rule leaves it zero).
        # Stochastic rounding draws on each element's place in its block of 256: blocks
        # start where parameters do, as in the per-tensor path.
        align = _lean.BLOCK if lean is not None or rounding else 1
        offsets, total, padded = [], 0, align > 1
        for p in params:
            if p.is_complex() and total % 2:  # a complex view starts on a (real, imaginary) pair
                total, padded = total + 1, True
            offsets.append(total)
            total += -(-_real(p)[1] // align) * align
        kw = {"dtype": dtype, "device": device}
        # padding is zero, so that the rule leaves it zero (and out of an 8-bit block's absmax)
        param_buffer = torch.zeros(total, **kw) if padded else torch.empty(total, **kw)
        grad_buffer = torch.zeros(total, **kw)
        kept = {"dtype": _kept(group, lean, params[0]), "device": device}
        state_buffers = {n: (torch.zeros if padded else torch.empty)(total, **kept) for n in names}
        scales = {}
        if lean == "8bit":
            scales = {n: torch.zeros(total // align, dtype=torch.float32, device=device) for n in names}
        steps = torch.zeros(len(params), dtype=step_dtype())
        counts, grad_views = [], []
        held = []
        for i, (p, offset) in enumerate(zip(params, offsets, strict=True)):
            state = entries_of(optimizer.state, p)
            if lean is not None or any(_lean.ABSMAX.format(n) in state for n in names):
                # the state in the form asked for, converted if need be
                optimizer._ensure_state(p, group, state)
            # A parameter with state but no step comes from a framework that does
            # not count steps (torch's SGD): it has taken at least one.
            count = int(state["step"].item()) if "step" in state else (1 if state else 0)
            view = _shaped(param_buffer, offset, p)
            view.copy_(p.detach())
            p.data = view
            setattr(p, _PLACED, _place(p))
            for n in names:
                slot = _shaped(state_buffers[n], offset, p)
                if n in state:
                    slot.copy_(state[n])
                else:
                    state_buffers[n][offset : offset + _real(p)[1]].fill_(active[n])
                state[n] = slot
                if n in scales:
                    first = offset // align
                    scale = scales[n][first : first + _lean.blocks(p.numel())]
                    scale.copy_(state[_lean.ABSMAX.format(n)])
                    state[_lean.ABSMAX.format(n)] = scale
            counts.append(count)
            steps[i] = count
            if names:  # a rule with no state (SGD without momentum) keeps no step either
                state["step"] = steps[i]
            grad_view = _shaped(grad_buffer, offset, p)
            if p.grad is not None:
                grad_view.copy_(p.grad)
                p.grad = grad_view
            grad_views.append(grad_view)
            held.append(state)
        uniform = counts[0] if counts.count(counts[0]) == len(counts) else None
        bucket = cls(
            params, offsets, names, param_buffer, grad_buffer, state_buffers, steps, uniform, grad_views
        )
        bucket.pointers = [p.data_ptr() for p in params]
        bucket.held = [(state, tuple(state.items())) for state in held]
        bucket.all_present = [True] * len(params)
        bucket.lean, bucket.scales, bucket.rounding = lean, scales, rounding
        bucket.torch_kernel = lean is None and _takes_torch_kernel(
            type(optimizer), param_buffer, state_buffers
        )
        return bucket

    def current(self, group: dict[str, Any], optimizer: Optimizer) -> bool:
        """Whether the parameters still live in this bucket and the group still uses its state."""
        active = optimizer._active_state(group)
        # The per-parameter check runs at every step, so it runs in C (map over a
        # method descriptor), not in a Python loop: about 0.1 us per parameter.
        lean = _lean.kind(group, self.params[0]) if self.names else None
        stored = _kept(group, lean, self.params[0])
        return (
            tuple(n for n in optimizer.state_names if n in active) == self.names
            and lean == self.lean
            and _rounds(group, self.param_buffer.dtype, self.names) == self.rounding
            and all(b.dtype == stored for b in self.state_buffers.values())
            and list(map(_data_ptr, self.params)) == self.pointers
        )

    def holds(self, table: StateTable) -> bool:
        """Whether ``table`` still holds this bucket's state: each parameter's entries, the same tensors."""
        return all(
            table.get(p) is entries
            and len(entries) == len(items)
            and all(entries.get(k) is v for k, v in items)
            for p, (entries, items) in zip(self.params, self.held, strict=True)
        )

    def gather(self) -> list[bool] | None:
        """Bring every gradient into the buffer; which parameters have one (None: a sparse one)."""
        if all(map(operator.is_, map(_grad, self.params), self.grad_views)):  # the usual case: in place
            return self.all_present
        grads = [p.grad for p in self.params]
        has = [g is not None for g in grads]
        stray = [
            i
            for i, (g, v) in enumerate(zip(grads, self.grad_views, strict=True))
            if g is not None and g is not v
        ]
        if stray:
            if any(grads[i].is_sparse or grads[i].layout != torch.strided for i in stray):
                return None
            torch._foreach_copy_([self.grad_views[i] for i in stray], [grads[i] for i in stray])
            for i in stray:
                self.params[i].grad = self.grad_views[i]
        return has

    def runs(self, has: list[bool]) -> list[tuple[int, int, int]]:
        """(first, end, step) for each run of consecutive parameters with a gradient and one step count."""
        n = len(self.params)
        if self.steps._version != self.counted:  # a step count was written in place
            self._recount()
        if self.uniform is not None and all(has):  # the usual case: one run
            return [(0, n, self.uniform + 1)]
        counts = [int(c) for c in self.steps.tolist()]
        out: list[tuple[int, int, int]] = []
        start = None
        for i in range(n + 1):
            if start is not None and (i == n or not has[i] or counts[i] != counts[start]):
                out.append((start, i, counts[start] + 1))
                start = None
            if i < n and has[i] and start is None:
                start = i
        return out

    def gradients(self, has: list[bool]) -> list[torch.Tensor]:
        """The gradients this step will use (the whole buffer when every parameter has one)."""
        if all(has):
            return [self.grad_buffer]
        return [v for v, h in zip(self.grad_views, has, strict=True) if h]

    def end(self, index: int) -> int:
        return self.offsets[index] if index < len(self.params) else self.param_buffer.numel()

    def slices(self, first: int, end: int) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """The buffers' ranges for parameters ``first`` to ``end`` (the buffers themselves for all)."""
        buffers = [self.param_buffer, self.grad_buffer, *(self.state_buffers[n] for n in self.names)]
        if first > 0 or end < len(self.params):
            a, b = self.offsets[first], self.end(end)
            buffers = [x[a:b] for x in buffers]
        return buffers[0], buffers[1], buffers[2:]

    def scale_slices(self, first: int, end: int) -> list[torch.Tensor]:
        """The 8-bit block scales of parameters ``first`` to ``end``, per state name."""
        a, b = self.offsets[first] // _lean.BLOCK, self.end(end) // _lean.BLOCK
        return [self.scales[n][a:b] for n in self.names]

    def advance(self, has: list[bool]) -> None:
        """Count one step for every parameter that had a gradient."""
        self.steps.add_(torch.tensor(has, dtype=self.steps.dtype) if not all(has) else 1)
        if self.uniform is not None and all(has):
            self.uniform += 1
            self.counted = self.steps._version
        else:
            self._recount()

    def _recount(self) -> None:
        """Read ``uniform`` from the step counts themselves."""
        counts = self.steps.tolist()
        self.uniform = int(counts[0]) if counts.count(counts[0]) == len(counts) else None
        self.counted = self.steps._version

    def set_scalars(self, values: list[float], dtype: torch.dtype) -> list[torch.Tensor]:
        """0-dim tensors of ``dtype`` holding ``values``: what the kernel reads its hyperparameters from.

        ``dtype`` is the rule's compute dtype, so the kernel never converts a
        scalar: each is one broadcast load from L1 per vector, and every
        product of scalars alone was made on the host (``coefficients``), in
        float64, then rounded once, as an eager op rounds its Python scalar.

        On CPU they are host tensors. On CUDA they live on the device: a host
        scalar would make the compiled graph copy it with a blocking copy, a
        host-device synchronisation at every call. Each step's values go up by
        an asynchronous copy from one of two pinned buffers, and a pinned
        buffer is rewritten only once its previous copy has run.
        """
        device = self.param_buffer.device
        if self.scalars is None or self.scalars.numel() != len(values) or self.scalars.dtype != dtype:
            self.scalars = torch.zeros(len(values), dtype=dtype, device=device)
            self.scalar_views = [self.scalars[i] for i in range(len(values))]
            if device.type == "cuda":
                self.pinned = [torch.zeros(len(values), dtype=dtype, pin_memory=True) for _ in "ab"]
        host = torch.tensor(values, dtype=dtype)
        if device.type != "cuda":
            self.scalars.copy_(host)
            return self.scalar_views
        turn, self.turn = self.turn, 1 - self.turn
        if self.copied[turn] is not None:
            self.copied[turn].synchronize()  # waits only if the GPU is two steps behind
        self.pinned[turn].copy_(host)
        self.scalars.copy_(self.pinned[turn], non_blocking=True)
        self.copied[turn] = torch.cuda.Event()
        self.copied[turn].record()
        return self.scalar_views


class FastPath:
    """The buckets of one optimizer, per parameter group; rebuilt whenever they go stale."""

    def __init__(self) -> None:
        self.buckets: dict[int, list[Bucket]] = {}
        self.members: dict[int, set[int]] = {}
        self.order: dict[int, list[torch.Tensor]] = {}  # the members, in the group's order
        self.layout: dict[int, tuple[int, int]] = {}  # the group's params list: (id, length) at build
        self.excluded: set[int] = set()  # ids of parameters the fast path must leave alone
        self.off: dict[int, str] = {}  # groups the fast path gave up on, with the reason
        self.warned: set[str] = set()
        self.table: StateTable | None = None  # the optimizer's state table, watched
        self.seen: dict[int, int] = {}  # the table's count of changes when each group's buckets last held
        self.shards: dict[int, dict[str, int]] = {}  # DTensor parameters at the last step: kernel -> count
        self.scratch = _Scratch()  # the 8-bit CPU step's, kept from step to step

    def prepare(
        self, optimizer: Optimizer, group: dict[str, Any]
    ) -> tuple[list[tuple[Bucket, list[bool]]], list[torch.Tensor] | None]:
        """Make ``group``'s buckets current and gather their gradients; change no number.

        Returns the buckets with which of their parameters have a gradient, and
        the parameters with a gradient left to the per-tensor path (None: all
        of them, the fast path being off for this group).
        """
        key = id(group)
        if key in self.off:
            return [], None
        table = watched(optimizer)
        if table is not self.table:  # a new table (the user's, or the first step's): compare it all
            self.table = table
            self.seen.clear()
        params = group["params"]
        for _ in range(3):
            order = self.order.get(key)
            complete = (
                order is not None and len(order) == len(params) and all(map(operator.is_, order, params))
            )
            fresh: set[int] = set()
            if not complete:
                members = self.members.get(key, set())
                fresh = {id(p) for p in params if p.grad is not None and id(p) not in members}
                fresh -= self.excluded
            if fresh or self._stale(optimizer, group):
                self._build(optimizer, group, fresh)
                continue  # recheck completeness against the new buckets
            gathered = [b.gather() for b in self.buckets[key]]
            if all(has is not None for has in gathered):
                break
            # A gradient turned sparse: that parameter leaves the fast path.
            self.excluded.update(id(p) for p in params if p.grad is not None and p.grad.is_sparse)
            self.buckets.pop(key)
        else:  # pragma: no cover - settles after at most one rebuild
            return [], None
        prepared = list(zip(self.buckets[key], gathered, strict=True))
        if complete:
            return prepared, []
        members = self.members[key]
        return prepared, [p for p in params if p.grad is not None and id(p) not in members]

    def update(
        self, optimizer: Optimizer, group: dict[str, Any], prepared: list[tuple[Bucket, list[bool]]]
    ) -> list[torch.Tensor]:
        """Run the kernels; return the parameters left to the per-tensor path (after a failed compile)."""
        hyper = optimizer._scalars(group)  # once per group (a tensor lr is read once, not per bucket)
        for index, (bucket, has) in enumerate(prepared):
            try:
                self._run(optimizer, hyper, bucket, has)
            except _CompilerUnavailable as err:
                key = id(group)
                self.off[key] = str(err)
                for table in (self.buckets, self.members, self.order):
                    table.pop(key, None)
                return [p for b, h in prepared[index:] for p, x in zip(b.params, h, strict=True) if x]
        return []

    def _stale(self, optimizer: Optimizer, group: dict[str, Any]) -> bool:
        key = id(group)
        if key not in self.buckets or self.layout[key] != (id(group["params"]), len(group["params"])):
            return True
        if any(not b.current(group, optimizer) for b in self.buckets[key]):
            return True
        table = optimizer.state
        if self.seen.get(key) != table.changes:
            # an entry was set or removed somewhere since the last look: is it one of ours?
            if not all(b.holds(table) for b in self.buckets[key]):
                return True
            self.seen[key] = table.changes
        return False

    def _build(self, optimizer: Optimizer, group: dict[str, Any], fresh: set[int]) -> None:
        key = id(group)
        previous = self.members.get(key, set())
        storages: dict[int, int] = {}
        candidates = []
        reasons: dict[str, int] = {}
        for p in group["params"]:
            if id(p) in self.excluded or not (id(p) in previous or id(p) in fresh):
                continue
            optimizer._check_state(p, group)  # before any buffer is built from it
            reason = ineligible(p)
            if reason is None and not _placed(p):
                storage = p.untyped_storage().data_ptr()
                if storage in storages:  # two parameters on one storage: keep both apart
                    reason = "it shares its storage with another parameter"
                    if storages[storage] not in self.excluded:
                        self.excluded.add(storages[storage])
                        reasons[reason] = reasons.get(reason, 0) + 1
                storages[storage] = id(p)
            if reason is not None:
                self.excluded.add(id(p))
                if not _lean.is_dtensor(p):  # a DTensor's shard has its own way (shard_steps)
                    reasons[reason] = reasons.get(reason, 0) + 1
                continue
            candidates.append(p)
        for reason, count in reasons.items():
            if reason not in self.warned:  # once per optimizer and reason
                self.warned.add(reason)
                warnings.warn(
                    f"descentlab: {type(optimizer).__name__}'s fast path leaves parameters to the "
                    f"per-tensor path (same numbers, more slowly) where {reason} ({count} here)",
                    FastPathWarning,
                    stacklevel=5,
                )
        by_kind: dict[tuple[torch.device, torch.dtype, str | None], list[torch.Tensor]] = {}
        stateful = bool(optimizer._active_state(group))  # a rule without state has no lean form
        for p in candidates:
            if id(p) not in self.excluded:
                lean = _lean.kind(group, p) if stateful else None
                by_kind.setdefault((p.device, _real(p)[0], lean), []).append(p)
        buckets = []
        for same_kind in by_kind.values():
            chunk: list[torch.Tensor] = []
            size = 0
            for p in same_kind:
                if chunk and size + _real(p)[1] > MAX_BUCKET_ELEMENTS:
                    buckets.append(Bucket.build(optimizer, group, chunk))
                    chunk, size = [], 0
                chunk.append(p)
                size += _real(p)[1]
            if chunk:
                buckets.append(Bucket.build(optimizer, group, chunk))
        self.buckets[key] = buckets
        self.members[key] = {id(p) for b in buckets for p in b.params}
        self.order[key] = [p for p in group["params"] if id(p) in self.members[key]]
        self.layout[key] = (id(group["params"]), len(group["params"]))
        self.seen[key] = optimizer.state.changes

    def _run(self, optimizer: Optimizer, hyper: dict[str, Any], bucket: Bucket, has: list[bool]) -> None:
        cls = type(optimizer)
        for first, end, step in bucket.runs(has):
            param, grad, states = bucket.slices(first, end)
            where = _Range(param, grad, dict(zip(bucket.names, states, strict=True)), step)
            if bucket.lean is not None:
                scales = bucket.scale_slices(first, end) if bucket.scales else []
                scales_of = dict(zip(bucket.names, scales, strict=False))
                self._run_compiled(cls, hyper, bucket, where, scales_of, self.scratch)
                continue
            if bucket.torch_kernel and self._run_torch(cls, hyper, bucket, where):
                continue
            self._run_compiled(cls, hyper, bucket, where)
        bucket.advance(has)

    @staticmethod
    def _run_torch(cls: type[Optimizer], hyper: dict[str, Any], bucket: Bucket, where: _Range) -> bool:
        """Run torch's fused kernel on the range; False where it does not apply or cannot run here."""
        param, grad, named, step = where
        if bucket.names:
            bucket.step_now.fill_(step)
        states = {n: [named[n]] if n in named else None for n in cls.state_names}
        steps = [bucket.step_now] if bucket.names else None
        ran = _torch_kernel(cls, hyper, [param], [grad], states, steps)
        if not ran and (cls, param.dtype) in _TORCH_KERNELS_MISSING:
            bucket.torch_kernel = False
        bucket.kernel = "torch's fused kernel" if ran else "compiled kernel"
        return ran

    @staticmethod
    def _run_compiled(
        cls: type[Optimizer],
        hyper: dict[str, Any],
        bucket: Bucket,
        where: _Range,
        scales: dict[str, torch.Tensor] | None = None,
        scratch: _Scratch | None = None,
    ) -> None:
        param, grad, named, step = where
        coefficients = cls.coefficients(step if bucket.names else None, **hyper)
        # A term whose hyperparameter is 0 is compiled away (a literal 0 makes the
        # rule's ``is_set`` false) instead of being computed as ``0 * x`` per element.
        zeros = tuple(k for k in cls.zero_terms if k in coefficients and _is_zero(coefficients[k]))
        numeric = tuple(k for k, v in coefficients.items() if not isinstance(v, bool) and k not in zeros)
        flags = tuple((k, v) for k, v in coefficients.items() if isinstance(v, bool))
        flags += tuple((k, 0.0) for k in zeros)
        state_args = [named.get(n) for n in cls.state_names]
        present = tuple(s is not None for s in state_args)
        state = bucket.state_buffers[bucket.names[0]].dtype if bucket.names else param.dtype
        extra: list[Any] = []
        device, rounding = param.device.type, bucket.rounding
        if bucket.lean is not None or rounding:  # the seed of the stochastic rounding; blocks
            numeric += ("seed",)
            coefficients = {**coefficients, "seed": step}
            param, grad = param.view(-1, _lean.BLOCK), grad.view(-1, _lean.BLOCK)
            state_args = [None if s is None else s.view(-1, _lean.BLOCK) for s in state_args]
        if bucket.lean is None:
            kernel = _kernel(cls.update, numeric, flags, present, device, param.dtype, state, rounding)
            compute = compute_dtype(param.dtype, state)
        else:
            kernel = _lean_kernel(cls, bucket.lean, numeric, flags, present, device, param.dtype, rounding)
            compute = compute_dtype(param.dtype, torch.float32)
            if bucket.lean == "8bit":
                assert scales is not None
                extra = [scales.get(n) for n in cls.state_names]
        if kernel.broken:
            raise _CompilerUnavailable(kernel.broken)
        values = bucket.set_scalars([float(coefficients[k]) for k in numeric], compute)
        state_args = [*state_args, *extra]
        if not kernel.ok and device in _HINTED_DEVICES and _HINTS:  # before the first call, which compiles
            hint = SIZE_HINT // _lean.BLOCK if param.dim() == 2 else SIZE_HINT
            for t in (param, grad, *state_args):
                if t is not None and t.dim() >= 1 and t.shape[0] >= 2:
                    torch._dynamo.mark_dynamic(t, 0, hint_override=hint)
        ranges = [(param, grad, *state_args)]
        if kernel.encode is not None:  # 8-bit on the CPU: chunks of blocks, two passes through scratch
            chunk = LEAN_CHUNK_ELEMENTS // _lean.BLOCK
            ranges = [
                tuple(None if t is None else t[a : a + chunk] for t in ranges[0])
                for a in range(0, param.shape[0], chunk)
            ]
            scratch = scratch or _Scratch()
            seed, n = scratch.seed(values[numeric.index("seed")]), len(cls.state_names)
        try:
            for tensors in ranges:
                if kernel.encode is None:
                    kernel.fn(*tensors, *values)
                else:  # see _lean_kernel
                    codes, scale_args = tensors[2 : 2 + n], tensors[2 + n :]
                    kept = scratch.views(codes, compute)
                    kernel.fn(*tensors, *kept, *values)
                    absmax = kernel.encode(seed, *kept, *codes)
                    for target, a in zip([a for a in scale_args if a is not None], absmax, strict=True):
                        target.copy_(a)
                kernel.ok = True  # compiled and ran: a later failure is an error, not a missing compiler
        except Exception as err:
            if kernel.ok:
                raise
            kernel.broken = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:300]}"
            _warn_once(
                f"descentlab: the fast path cannot compile {cls.__name__}'s update on "
                f"{param.device.type} ({param.dtype}): {kernel.broken}; using the per-tensor "
                "path, which gives the same numbers, more slowly"
            )
            raise _CompilerUnavailable(kernel.broken) from err
        bucket.kernel = "compiled kernel"

    def zero_grad(self) -> set[int]:
        """Zero, in one pass per bucket, the gradients that live in a buffer; their parameters' ids."""
        done: set[int] = set()
        for buckets in self.buckets.values():
            for b in buckets:
                if all(p.grad is v for p, v in zip(b.params, b.grad_views, strict=True)):
                    b.grad_buffer.zero_()
                    done.update(id(p) for p in b.params)
        return done

    def describe(self, group: dict[str, Any]) -> str:
        """Which implementation updated ``group`` last, in words."""
        key = id(group)
        if key in self.off:
            return f"per-tensor (the fast path is off: {self.off[key]})"
        parts = []
        buckets = self.buckets.get(key)
        if buckets:
            n = sum(len(b.params) for b in buckets)
            kernels = sorted({b.kernel for b in buckets if b.kernel})
            parts.append(
                f"{n} parameter(s) in {len(buckets)} flat bucket(s)"
                + (f" ({', '.join(kernels)})" if kernels else "")
            )
        shards = self.shards.get(key, {})
        fast = {k: n for k, n in shards.items() if k != "per-tensor"}
        if fast:
            kernels = ", ".join(sorted(fast))
            parts.append(f"{sum(fast.values())} DTensor shard(s) updated in place ({kernels})")
        if not parts:
            return "per-tensor"
        if shards.get("per-tensor"):
            parts.append(f"{shards['per-tensor']} DTensor parameter(s) per-tensor")
        return "fast: " + "; ".join(parts)


def shard_steps(
    optimizer: Optimizer,
    group: dict[str, Any],
    params: list[torch.Tensor],
    hyper: dict[str, Any],
    scratch: _Scratch | None = None,
) -> tuple[list[torch.Tensor], dict[str, int]]:
    """Update the DTensor parameters among ``params`` in place on their local shards.

    DTensor parameters (FSDP2's, tensor parallelism's) cannot join flat buffers
    (their storage is FSDP2's, and their gradients arrive as new DTensors at
    each step); the per-tensor path updates them one eager DTensor operation
    after another, several passes over each state, each dispatched through
    DTensor. Here the kernels the fast path runs on its buckets run on the
    shards' local tensors instead: torch's fused kernel once for all shards
    where the rule is torch's, else descentlab's compiled kernel on each shard,
    as on a bucket of that one parameter, so the numbers are the fast path's
    on one process. A shard qualifies where it is dense and laid out as its
    gradient and state are (with lean state, or a bfloat16 parameter rounded
    back stochastically, also a whole number of 256-element blocks, so that
    the rounding numbers its places as one process does; 8-bit state's block
    scales are the shard's own, see :func:`._lean.dtensor_blocks`). ``scratch``:
    the 8-bit CPU step's (see :class:`_Scratch`).

    Returns the parameters left to the per-tensor path, and how many DTensor
    parameters each kernel (or the per-tensor path) updated.
    """
    cls = type(optimizer)
    active = optimizer._active_state(group)
    names = tuple(n for n in cls.state_names if n in active)  # not a state the options left behind
    if not names or "torch.distributed.tensor" not in sys.modules:  # no DTensor exists without it
        return params, {}
    rest, shards = [], []
    for p in params:
        shard = _Shard.of(optimizer, group, p, names) if _lean.is_dtensor(p) else None
        if shard is None:
            rest.append(p)
        else:
            shards.append(shard)
    counts = {"per-tensor": sum(map(_lean.is_dtensor, rest)), "torch's fused kernel": 0, "compiled kernel": 0}
    batches: dict[tuple[torch.dtype, float], list[_Shard]] = {}
    for x in shards:
        x.state["step"] += 1
        if x.lean is None and not x.rounding and _takes_torch_kernel(cls, x.param, x.states):
            # one call per dtype and step count (torch's SGD kernel takes one first-step flag)
            batches.setdefault((x.param.dtype, x.state["step"].item()), []).append(x)
    done: set[int] = set()
    for batch in batches.values():
        if _torch_kernel(
            cls,
            hyper,
            [x.param for x in batch],
            [x.grad for x in batch],
            {n: [x.states[n] for x in batch] if n in names else None for n in cls.state_names},
            [x.state["step"] for x in batch],
        ):
            counts["torch's fused kernel"] += len(batch)
            done.update(map(id, batch))
    for x in shards:
        if id(x) in done:
            continue
        bucket = Bucket([], [0], names, x.param, x.grad, x.states, torch.zeros(1), 0, [])
        bucket.lean, bucket.rounding = x.lean, x.rounding
        try:
            FastPath._run_compiled(
                cls,
                hyper,
                bucket,
                _Range(x.param, x.grad, x.states, x.state["step"].item()),
                x.scales,
                scratch,
            )
        except _CompilerUnavailable:  # nothing changed: the per-tensor path takes it
            x.state["step"] -= 1
            rest.append(x.p)
            counts["per-tensor"] += 1
            continue
        counts["compiled kernel"] += 1
    return rest, {k: n for k, n in counts.items() if n}


@dataclass(eq=False)
class _Shard:
    """A DTensor parameter's local tensors, flat, as a kernel takes them."""

    p: torch.Tensor
    state: dict[str, Any]
    lean: str | None
    rounding: bool  # a bfloat16 parameter rounded back stochastically
    param: torch.Tensor
    grad: torch.Tensor
    states: dict[str, torch.Tensor]
    scales: dict[str, torch.Tensor]  # 8-bit state's block scales (this rank's), by state name

    @classmethod
    def of(
        cls, optimizer: Optimizer, group: dict[str, Any], p: torch.Tensor, names: tuple[str, ...]
    ) -> _Shard | None:
        """``p``'s shard, its state made; None where no kernel can run on it here."""
        grad = p.grad
        if not _lean.is_dtensor(grad) or p.is_complex():
            return None
        state = optimizer.state[p]
        optimizer._ensure_state(p, group, state)  # refuses 8-bit state where the shards cannot keep it
        lean, rounding = _lean.kind(group, p), _rounds(group, p.dtype, names)
        local = p.to_local()
        tensors = [grad.to_local(), *(_lean._local(state[n]) for n in names)]
        if (
            local.numel() == 0
            or ((lean is not None or rounding) and local.numel() % _lean.BLOCK)
            or not _dense(local)
            or tensors[0].dtype != local.dtype
            or any(t.shape != local.shape or t.stride() != local.stride() for t in tensors)
            or any(t.dtype != (_STORED.get(lean) or state_dtype(group, p)) for t in tensors[1:])
        ):
            return None
        param, grad_, *states = (_lean._flat(t) for t in (local, *tensors))
        scales = {n: _lean._local(state[_lean.ABSMAX.format(n)]) for n in names if lean == "8bit"}
        return cls(p, state, lean, rounding, param, grad_, dict(zip(names, states, strict=True)), scales)


def _torch_kernel(
    cls: type[Optimizer],
    hyper: dict[str, Any],
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: dict[str, list[torch.Tensor] | None],
    steps: list[torch.Tensor] | None,
) -> bool:
    """Run ``cls``'s torch fused kernel on the lists; False where it does not apply or cannot run here."""
    assert cls.torch_fused is not None
    key = (cls, params[0].dtype)
    try:
        ran = cls.torch_fused(params, grads, states, steps, **hyper)
    except (AttributeError, NotImplementedError, RuntimeError) as err:
        if key in _TORCH_KERNELS_RAN:
            raise
        # An older torch without the kernel, or one that does not take this dtype:
        # descentlab's compiled kernel gives the same numbers to rounding.
        _TORCH_KERNELS_MISSING[key] = f"{type(err).__name__}: {str(err).strip()[:200]}"
        return False
    _TORCH_KERNELS_RAN.add(key)
    return ran


class _Range(NamedTuple):
    """The buffers' range one kernel call updates: parameters, gradients, state by name, and the step."""

    param: torch.Tensor
    grad: torch.Tensor
    states: dict[str, torch.Tensor]
    step: int


class _CompilerUnavailable(Exception):
    """The kernel for this update cannot be compiled here."""
