r"""Lean optimizer state: bfloat16 or 8-bit block-wise, written back with stochastic rounding.

An optimizer step is memory-bound, so once it streams every byte at the
memory's speed the way to go faster, and to fit a larger model, is to keep
fewer bytes of state. ``lean_state`` (a constructor argument of every
optimizer) stores the moments and accumulators of large parameters as:

``"bfloat16"``
    2 bytes per element. The rule's arithmetic runs in float32; the new state
    is rounded to bfloat16 *stochastically*: up with probability equal to the
    fraction of a bfloat16 step that it lies above the value below. Plain
    (nearest) rounding loses small updates: with 8 mantissa bits,
    :math:`0.999\,v` rounds back to :math:`v`, so Adam's second moment never
    decays. Stochastic rounding is unbiased, :math:`E[\mathrm{sr}(x)] = x`.

``"8bit"``
    1 byte per element plus one float32 scale per block of :data:`BLOCK`
    elements (2.03 bytes per parameter for Adam's two moments). Each block is
    scaled by its largest magnitude (*absmax*) and each element coded by one of
    256 values of a non-linear *dynamic tree* map (Dettmers et al. 2022,
    "8-bit optimizers via block-wise quantization"), built here as: decade
    :math:`i` below the block's absmax (values in :math:`(10^{-i-1}, 10^{-i}]`)
    gets :math:`2^{b-1-i}` evenly spaced levels, for :math:`b` = 8 magnitude
    bits (unsigned map, second moments and accumulators: 8 decades) or 7 and a
    sign bit (signed map, first moments: 7 decades). Precision is finest near
    the absmax, where the elements that dominate a step are. The map is a
    formula, not a table (code :math:`j`'s highest set bit gives its decade,
    the bits below it the level; see :func:`level`), so that encoding and
    decoding compile to plain vector arithmetic: no search, no lookup. The state is
    written back with stochastic rounding between the two neighbouring codes,
    except that a positive second moment never rounds to 0 (it rounds up to
    the smallest code instead: a zero there would divide a nonzero first
    moment by ``eps``).

Both are dequantised to the compute dtype, updated by the rule's own
``update`` and requantised in one pass (one compiled kernel on the fast path;
for 8-bit state on the CPU two, which meet in float32 scratch of one chunk
that the optimizer keeps: see ``_flat.LEAN_CHUNK_ELEMENTS``).

The random numbers of stochastic rounding come from a counter-based hash (32-bit
integer arithmetic) of the value being rounded (without its last 8 bits), its
place in its block of :data:`BLOCK`, the step count and the state's name: no generator, no global
state, so a checkpointed run resumes bit-exactly; a parameter's bfloat16
states are rounded in pairs, the second of a pair by the other half of the
first's draw (see :func:`bfloat16_states`); the fast and the per-tensor
path draw the same numbers (they round differently only where their float32
arithmetic differs), and so does a parameter sharded at multiples of
:data:`BLOCK` elements.

Small parameters (fewer than :data:`MIN_ELEMENTS` elements, counted by
``numel()``) keep full-precision state: they cost little memory, and biases
and norms are where precision matters. The rule depends on the parameter
alone, so a parameter gets the same precision under DDP, ZeRO or one process.
Complex parameters keep full precision too. DTensor parameters (FSDP2, tensor
parallelism) of that size get their lean state sharded as they are, each
rank rounding its own shard: bfloat16 DTensors, or 8-bit codes with block
scales that are one process's, sharded on dim 0 with the parameter's rows,
where its shards are whole blocks in step with them (see :func:`dtensor_blocks`).

Error bounds (``x`` the value, ``a`` its block's absmax):

- bfloat16, one rounding: :math:`|\mathrm{sr}(x) - x| < 2^{-7}|x|` (one
  bfloat16 step); nearest rounding (checkpoint conversion) half that.
- 8-bit, one rounding: less than one gap of the map at :math:`|x|/a`, times
  :math:`a`; for :math:`|x| \ge a/10`, :math:`0.9a/64` (signed) or
  :math:`0.9a/128` (unsigned), i.e. 1.4% and 0.7% of :math:`a`; in decade
  :math:`i` below :math:`a` the gap is :math:`2^i` times that times
  :math:`10^{-i}`. Nearest rounding (checkpoint conversion) has half the gap.
  See :func:`gap`.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Collection
from typing import Any

import torch
import torch.nn.functional as F

#: The elements of one 8-bit block, sharing one float32 scale (absmax).
BLOCK = 256

#: Parameters with fewer elements keep full-precision state (see the module docstring).
MIN_ELEMENTS = 4096

#: The values of ``lean_state``.
KINDS = ("bfloat16", "8bit")

#: The key of a state's block scales: ``exp_avg`` -> ``exp_avg_absmax``.
ABSMAX = "{}_absmax"


def _int32(c: int) -> int:
    """A 32-bit pattern as the int32 that holds it (the hash's constants, some above 2**31)."""
    return c - (1 << 32) if c >= 1 << 31 else c


_PLACE = _int32(0x2545F491)
_MIX1, _MIX2 = _int32(0x7FEB352D), _int32(0x846CA68B)


def _select(bits: torch.Tensor, factors: tuple[int, ...]) -> torch.Tensor:
    """The product of ``factors[b]`` over the set bits ``b`` of the integers ``bits``, in float32.

    With the factors 10, 100 and 10**4 this is a power of 10 with an exponent
    below 8, exact, from three multiplications by ``1 + (f - 1) * bit``: no
    table lookup, which a compiled CPU kernel does one element at a time. The
    factors are integers: dynamo compiles an integer of a module's tuple in as
    a constant, but passes a float of one as a 0-dim float64 tensor, which the
    kernel then reloads and converts at every vector of elements.
    """
    out = 1.0 + (factors[0] - 1.0) * (bits & 1).to(torch.float32)
    out = out * (1.0 + (factors[1] - 1.0) * ((bits >> 1) & 1).to(torch.float32))
    return out * (1.0 + (factors[2] - 1.0) * ((bits >> 2) & 1).to(torch.float32))


_TENS = (10, 100, 10**4)  # 10**d, exact in float32


def _power_of_two(e: torch.Tensor) -> torch.Tensor:
    """``2.0 ** e`` (float32) of integers ``e`` in [-126, 127], exact: the exponent's bits set directly."""
    return ((e + 127) << 23).view(torch.float32)


def _highest_bit(j: torch.Tensor) -> torch.Tensor:
    """The place of the highest set bit of integers ``j`` in [1, 2**24), from their float32 exponent."""
    return (j.to(torch.float32).view(torch.int32) >> 23) - 127


def _decade_tops(bits: int) -> tuple[int, ...]:
    """The bits of the float32 value at the top of each decade ``d`` (its last level, 10**-d rounded).

    Bits, an integer each, so that a compiled kernel has them as constants (see
    :func:`_select`); for values >= 0, comparing bits compares the values.
    """
    return tuple((1.0 / _select(torch.arange(bits, dtype=torch.int32), _TENS)).view(torch.int32).tolist())


_TOPS = {bits: _decade_tops(bits) for bits in (7, 8)}


def level(j: torch.Tensor, bits: int) -> torch.Tensor:
    """The map's magnitude (in [0, 1], float32) of integer codes ``j`` of ``bits`` magnitude bits.

    Code 0 is 0. A code ``j >= 1`` with highest set bit ``e`` (``2**e <= j <
    2**(e+1)``) is level ``k = j - 2**e + 1`` of the ``n = 2**e`` levels of
    decade ``d = bits - 1 - e``: :math:`(0.1 + 0.9\\,k/n) / 10^{d}`. Computed in
    float32 by the same operations in eager and compiled code (which contracts
    no multiply-add), so both paths decode a code to the same number.
    """
    e = _highest_bit(torch.clamp(j, min=1))
    inverse_n = _power_of_two(-e)
    k = j.to(torch.float32) * inverse_n - 1.0 + inverse_n  # (j - n + 1) / n, exact
    value = (0.1 + 0.9 * k) / _select((bits - 1) - e, _TENS)
    return value * (j != 0).to(torch.float32)


def magnitude_map(bits: int) -> torch.Tensor:
    """The ascending magnitudes of the dynamic tree map with ``bits`` magnitude bits, 0 first.

    Decade ``i`` below 1 gets ``2**(bits - 1 - i)`` levels ending at ``10**-i``:
    ``1 + 2**bits - 1`` values in all, the last exactly 1 (see :func:`level`).
    """
    return level(torch.arange(2**bits, dtype=torch.int32), bits)


_MAPS: dict[tuple[bool, str], torch.Tensor] = {}


def table(signed: bool, device: torch.device | str = "cpu") -> torch.Tensor:
    """The magnitudes of the signed (7 bits + sign) or unsigned (8 bits) map, on ``device``."""
    key = (signed, str(device))
    if key not in _MAPS:
        _MAPS[key] = magnitude_map(7 if signed else 8).to(device)
    return _MAPS[key]


def decode(codes: torch.Tensor, signed: bool) -> torch.Tensor:
    """The map's value of each code, in [-1, 1] (signed) or [0, 1], as float32."""
    c = codes.to(torch.int32)
    if not signed:
        return level(c, 8)
    value = level(c & 0x7F, 7)
    return torch.where(c >= 0x80, -value, value)


def gap(values: torch.Tensor, signed: bool) -> torch.Tensor:
    """The distance between the two codes around each of ``values`` (in [-1, 1] or [0, 1]).

    One stochastic rounding moves a value by less than this (times the
    block's absmax); nearest rounding by at most half of it.
    """
    magnitudes = table(signed, values.device)
    a = values.abs().float().clamp(max=1.0)
    i = (torch.bucketize(a, magnitudes, right=True) - 1).clamp(0, magnitudes.numel() - 2)
    return magnitudes[i + 1] - magnitudes[i]


# -- counter-based random numbers ---------------------------------------------------


#: Devices where :func:`_hash` mixes the place in int64 and wraps it (see there); the bits are
#: the same as int32 arithmetic's (the tests run both forms on the CPU).
_WIDE_PLACE_DEVICES = ("cuda",)


def _hash(x: torch.Tensor, seed: Any, salt: int) -> torch.Tensor:
    """32 pseudo-random bits (an int32) for each element of blocks ``x`` (float32 bits as int32).

    The bits depend on the element's value, its place in its block of
    :data:`BLOCK`, the seed and the salt: the seed, salt and place mixed into
    the value by Wellons's *lowbias32* (two multiply-xorshift rounds). int32
    arithmetic that wraps, with logical shifts written as an arithmetic shift
    and a mask, so that it compiles to plain vector instructions. The low 8
    bits of the value are left out: a value computed with a last-bit
    difference almost always gets the same number, so the fast and the
    per-tensor path round alike. The place in the block keeps equal values (a
    constant initial state) from rounding alike.
    """
    # the seed and the salt mixed in int64 (no product reaches 2**63), then wrapped to 32 bits
    key = (seed * 0x9E3779B1 + salt * 0x632BE5AB) & 0xFFFFFFFF
    if x.device.type in _WIDE_PLACE_DEVICES:
        # Inductor's Triton code computes an arange's arithmetic in its int64 index type,
        # where this hash wants int32's wrapping (and a bit cast of the result then fails
        # to compile): the place is mixed in int64 and wrapped explicitly, the same bits.
        place = torch.arange(x.shape[-1], device=x.device, dtype=torch.int64)
        mixed = ((place * _PLACE + key) & 0xFFFFFFFF).to(torch.int32)
    else:
        place = torch.arange(x.shape[-1], device=x.device, dtype=torch.int32)
        key = key.to(torch.int32) if isinstance(key, torch.Tensor) else _int32(key)
        mixed = place * _PLACE + key
    h = (x & -256) ^ mixed
    h = h ^ ((h >> 16) & 0xFFFF)
    h = h * _MIX1
    h = h ^ ((h >> 15) & 0x1FFFF)
    h = h * _MIX2
    return h ^ ((h >> 16) & 0xFFFF)


def _seed(seed: Any) -> Any:
    """The seed as an integer (a 0-dim tensor, as the compiled kernel gets it, or a number)."""
    return seed.to(torch.int64) if isinstance(seed, torch.Tensor) else int(seed)


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.float().view(torch.int32)


def uniform(x: torch.Tensor, seed: Any, salt: int) -> torch.Tensor:
    """A number in [0, 1) for each element of blocks ``x`` (blocks, BLOCK): see :func:`_hash`."""
    return ((_hash(_bits(x), _seed(seed), salt) >> 8) & 0xFFFFFF).to(torch.float32) * 2.0**-24


# -- bfloat16 ------------------------------------------------------------------------


def _add_and_clear(x: torch.Tensor, random: torch.Tensor) -> torch.Tensor:
    """float32 ``x`` rounded to bfloat16: 16 ``random`` bits added below its last bfloat16 bit, then cleared.

    The conversion that follows is exact: the magnitude goes up one bfloat16
    step with probability equal to the fraction of the step it lay above.
    Infinities and NaN pass unchanged: an infinity's cleared bits are its
    own, and a NaN is kept aside, as the add could carry into its sign
    (0x7FFFxxxx to -0.0). Testing ``x == x`` rather than ``isfinite`` costs
    half the instructions (Adam's step, one thread: 29.5 -> 27.6 ms).
    """
    rounded = ((x.view(torch.int32) + random) & -65536).view(torch.float32)
    return torch.where(x == x, rounded, x).to(torch.bfloat16)


def bfloat16_blocks(x: torch.Tensor, seed: Any, salt: int = 0) -> torch.Tensor:
    """Blocks ``x`` (blocks, BLOCK) rounded stochastically to bfloat16: the low 16 bits of :func:`_hash`."""
    x = x.float()
    return _add_and_clear(x, _hash(x.view(torch.int32), _seed(seed), salt) & 0xFFFF)


def bfloat16_states(values: list[torch.Tensor], seed: Any, salts: list[int]) -> list[torch.Tensor]:
    """Blocks ``values`` (each (blocks, BLOCK)) rounded stochastically to bfloat16, two per draw of the hash.

    The values go in pairs, in order: the first of a pair is rounded as
    :func:`bfloat16_blocks` rounds it (with its own salt), by the low 16 of
    the hash's 32 bits, and the second by the high 16 bits of the same draw
    (a last, unpaired value as the first of a pair). The hash is most of the
    cost of a bfloat16 step, and one draw has the bits for two roundings
    (Adam on 16.8M elements, one thread: 33.5 -> 29 ms per step, 2026-12-06).
    Each rounding still gets 16 bits that vary with the step and the place
    as the hash's, so it stays unbiased; the pair's two roundings are
    independent as far as the hash's two halves are.
    """
    out = []
    for i in range(0, len(values), 2):
        first = values[i].float()
        h = _hash(first.view(torch.int32), _seed(seed), salts[i])
        out.append(_add_and_clear(first, h & 0xFFFF))
        if i + 1 < len(values):
            out.append(_add_and_clear(values[i + 1].float(), (h >> 16) & 0xFFFF))
    return out


def to_bfloat16(x: torch.Tensor, seed: Any = None, salt: int = 0) -> torch.Tensor:
    """Dense ``x`` rounded to bfloat16: stochastically given a ``seed`` (by blocks in memory order).

    Without a seed, to nearest (used when a checkpoint is converted).
    """
    if seed is None:
        return x.to(torch.bfloat16)
    return states_to_bfloat16([x], seed, [salt])[0]


def states_to_bfloat16(values: list[torch.Tensor], seed: Any, salts: list[int]) -> list[torch.Tensor]:
    """Dense ``values`` rounded stochastically to bfloat16 as :func:`bfloat16_states` rounds their blocks."""
    rounded = bfloat16_states([_padded(x) for x in values], seed, salts)
    out = []
    for x, blocks_ in zip(values, rounded, strict=True):
        dense = torch.empty_like(x, dtype=torch.bfloat16)
        flat = _flat(dense)
        flat.copy_(blocks_.view(-1)[: flat.numel()])
        out.append(dense)
    return out


# -- 8-bit blocks ----------------------------------------------------------------------


def encode_blocks(
    x: torch.Tensor, signed: bool, seed: Any = None, salt: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (uint8) and absmax (float32) of ``x``, shaped (blocks, BLOCK).

    Stochastic rounding between the neighbouring codes given a ``seed``, else
    nearest. An unsigned (second-moment) value above 0 never becomes 0.

    The code below each value is found from the map's formula (see
    :func:`level`), not by a search: the decade from ``bits - 1`` comparisons,
    then the position ``t`` in it, on a scale where the decade's levels sit at
    the integers; the fraction of ``t`` above its integer part is the fraction
    of the gap above the lower code.
    """
    bits = 7 if signed else 8
    x = x.float()
    absmax = x.abs().amax(dim=1)
    # a division, not a multiplication by 1 / absmax, which overflows for a subnormal absmax
    a = (x.abs() / torch.where(absmax > 0, absmax, torch.ones_like(absmax))[:, None]).clamp(max=1.0)
    # Decade d's power of ten and its number of levels n = 2**(bits - 1 - d), by walking down the
    # decades: the tops descend, so the last that a lies at or below is its decade's. One compare
    # and two selections of constants a decade: half the operations of counting the decades and
    # then computing both from the count, the same values (10**d and 2**e are exact in float32).
    a_bits = a.view(torch.int32)
    ten, n, lowest = torch.ones_like(a), torch.full_like(a, 2.0 ** (bits - 1)), None
    for d, top in enumerate(_TOPS[bits][1:], start=1):
        lowest = a_bits <= top
        ten = torch.where(lowest, float(10**d), ten)
        n = torch.where(lowest, 2.0 ** (bits - 1 - d), n)
    scaled = a * ten  # in (0.1, 1] in decade d (in [0, 1] in the lowest)
    t = torch.where(lowest, scaled, (scaled - 0.1) * (n * (1 / 0.9)))  # the lowest decade: n = 1
    k = torch.minimum(t.floor().clamp(min=0.0), n - 1.0)
    fraction = t - k
    threshold = 0.5 if seed is None else uniform(x, seed, salt)
    code = (n + k - 1.0).to(torch.int32) + (fraction > threshold).to(torch.int32)
    code = torch.maximum(code, (a >= 1.0).to(torch.int32) * (2**bits - 1))  # the absmax is kept exactly
    if signed:
        # the sign bit as an integer test: torch.signbit compiles to a scalar loop on the CPU
        code = code + (_bits(x) < 0).to(torch.int32) * 0x80
    else:
        code = code + ((x != 0) & (code == 0)).to(torch.int32)
    return code.to(torch.uint8), absmax


_DECODED: dict[tuple[bool, str], torch.Tensor] = {}


def decoded(signed: bool, device: torch.device | str = "cpu") -> torch.Tensor:
    """The value of each of the 256 codes, float32 on ``device``: :func:`decode` of 0 to 255."""
    key = (signed, str(device))
    if key not in _DECODED:
        _DECODED[key] = decode(torch.arange(256, dtype=torch.int32), signed).to(device)
    return _DECODED[key]


def decode_blocks(
    codes: torch.Tensor, absmax: torch.Tensor, signed: bool, dtype: torch.dtype
) -> torch.Tensor:
    """The values of ``codes`` (blocks, BLOCK) scaled by each block's ``absmax``, in ``dtype``.

    Looked up in :func:`decoded` (the per-tensor path, in eager mode: two
    operations instead of the formula's thirty), which holds the formula's own
    float32 values, so both give the same numbers; the fast path's compiled
    kernel computes the formula, which vectorises where a lookup would not.
    """
    return (decoded(signed, codes.device)[codes.long()] * absmax[:, None]).to(dtype)


def blocks(numel: int) -> int:
    """The number of 8-bit blocks of a tensor of ``numel`` elements."""
    return math.ceil(numel / BLOCK)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """A dense tensor's elements in memory order, as a 1-D view (the order blocks follow).

    For a DTensor, this rank's shard's: each rank rounds its own elements,
    their places counted from the shard's start.
    """
    t = _local(t)
    return t.as_strided((t.numel(),), (1,))


def _local(t: torch.Tensor) -> torch.Tensor:
    """``t``'s elements on this rank: a DTensor's local shard (a view of it), any other tensor itself."""
    return t.to_local() if is_dtensor(t) else t


def is_dtensor(t: Any) -> bool:
    """Whether ``t`` is a DTensor (without importing torch.distributed.tensor: none exists until it is)."""
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(t, module.DTensor)


def _chunks(start: int, end: int, n: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut in ``n`` as torch.chunk cuts it, and DTensor's ``Shard`` places the pieces."""
    size = -(-(end - start) // n)
    return [(min(start + i * size, end), min(start + (i + 1) * size, end)) for i in range(n)]


def dtensor_blocks(p: torch.Tensor) -> str | None:
    """Why a DTensor ``p``'s shards cannot keep 8-bit state, or None where they can.

    A DTensor's 8-bit state is one process's, sharded: codes sharded as ``p``
    is, and block scales ``(blocks(p.numel()),)`` over its elements in
    row-major order, sharded on dim 0 where ``p`` is (and replicated where it
    is). That needs every shard to be a run of whole blocks that torch's
    chunking of the scales gives to the same rank: ``p`` sharded on dim 0 only,
    with shards of whole blocks (rows of a multiple of 256 elements cut evenly do).
    Checked for every rank's place in the mesh, so every rank gives the same answer.
    """
    problem = _shards_problem(tuple(p.shape), tuple(p.placements), tuple(p.device_mesh.shape))
    if problem is None and not p.to_local().is_contiguous():
        return "its local shard is not contiguous (its blocks would not follow the tensor's order)"
    return problem


@functools.lru_cache(maxsize=256)
def _shards_problem(shape: tuple[int, ...], placements: tuple[Any, ...], mesh: tuple[int, ...]) -> str | None:
    """:func:`dtensor_blocks` for a shape, placements and mesh shape (asked at every step: kept)."""
    from torch.distributed.tensor import Replicate, Shard

    numel = math.prod(shape)
    row = numel // shape[0]
    shards, scales = [(0, shape[0])], [(0, blocks(numel))]
    for placement, n in zip(placements, mesh, strict=True):
        if type(placement) is Replicate or n == 1:  # a mesh dimension of one cuts nothing
            continue
        if type(placement) is not Shard or placement.dim != 0:
            return f"its placement {placement!r} is not Shard(dim=0) or Replicate()"
        shards = [piece for r in shards for piece in _chunks(*r, n)]
        scales = [piece for r in scales for piece in _chunks(*r, n)]
    for (r0, r1), (b0, b1) in zip(shards, scales, strict=True):
        if (r0 * row, r1 * row) != (min(b0 * BLOCK, numel), min(b1 * BLOCK, numel)):
            return (
                f"a shard holds its elements {r0 * row} to {r1 * row}, but the scales sharded "
                f"alike give that rank blocks {b0} to {b1} (elements {b0 * BLOCK} to "
                f"{min(b1 * BLOCK, numel)})"
            )
    return None


def _new_scales(x: torch.Tensor) -> torch.Tensor:
    """Uninitialised block scales for the 8-bit codes of ``x`` (a DTensor: see :func:`dtensor_blocks`)."""
    local = torch.empty(blocks(_local(x).numel()), dtype=torch.float32, device=x.device)
    if not is_dtensor(x):
        return local
    problem = dtensor_blocks(x)
    if problem is not None:  # the optimizer refuses such a parameter first: a guard against silent harm
        raise RuntimeError(f"8-bit state for a DTensor whose shards cannot keep it: {problem}")
    from torch.distributed.tensor import DTensor, Replicate, Shard

    placements = [Shard(0) if isinstance(q, Shard) else Replicate() for q in x.placements]
    return DTensor.from_local(
        local, x.device_mesh, placements, run_check=False, shape=(blocks(x.numel()),), stride=(1,)
    )


def _padded(t: torch.Tensor) -> torch.Tensor:
    flat = _flat(t)
    return F.pad(flat, (0, blocks(flat.numel()) * BLOCK - flat.numel())).view(-1, BLOCK)


def quantise(
    x: torch.Tensor, signed: bool, seed: Any = None, salt: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """8-bit codes shaped (and strided) like ``x``, and the block scales, of a dense tensor ``x``.

    Blocks follow ``x``'s memory order. Raises ValueError if ``x`` holds a NaN
    or an infinity (a block's scale would be meaningless), or if an unsigned
    ``x`` holds a negative value.
    """
    if not bool(torch.isfinite(x).all()):
        raise ValueError(
            "lean_state='8bit': cannot quantise a state tensor that holds NaN or infinity "
            "(its block's scale would be meaningless)"
        )
    if not signed and bool((x < 0).any()):
        raise ValueError(
            "lean_state='8bit': a second moment or accumulator must be >= 0 to be quantised; "
            f"received a minimum of {x.min().item()!r}"
        )
    codes = torch.empty_like(x, dtype=torch.uint8)
    absmax = _new_scales(x)
    write_8bit_(codes, absmax, x, signed, seed, salt)
    return codes, absmax


def dequantise(codes: torch.Tensor, absmax: torch.Tensor, signed: bool, dtype: torch.dtype) -> torch.Tensor:
    """The values of 8-bit ``codes`` (a dense tensor) and their block scales, shaped like ``codes``."""
    local = _flat(codes)
    values = decode_blocks(_padded(codes), _local(absmax), signed, dtype).view(-1)[: local.numel()]
    out = torch.empty_like(codes, dtype=dtype)
    _flat(out).copy_(values)
    return out


def write_8bit_(
    codes: torch.Tensor, absmax: torch.Tensor, x: torch.Tensor, signed: bool, seed: Any, salt: int
) -> None:
    """Quantise ``x`` into ``codes`` and ``absmax`` in place (``x`` strided as ``codes``)."""
    new_codes, new_absmax = encode_blocks(_padded(x), signed, seed, salt)
    local = _flat(codes)
    local.copy_(new_codes.view(-1)[: local.numel()])
    _local(absmax).copy_(new_absmax)


# -- which parameters, and the state's form -------------------------------------------


def kind(group: dict[str, Any], p: torch.Tensor) -> str | None:
    """The lean form of ``p``'s state in ``group``: ``"bfloat16"``, ``"8bit"`` or None (full precision)."""
    wanted = group.get("lean_state")
    if wanted is None or p.is_complex() or p.numel() < MIN_ELEMENTS:
        return None
    return wanted


def read(state: dict[str, Any], name: str, signed: bool, dtype: torch.dtype) -> torch.Tensor:
    """``state[name]`` as a full-precision tensor of ``dtype`` (a new tensor)."""
    value = state[name]
    if value.dtype == torch.uint8:
        return dequantise(value, state[ABSMAX.format(name)], signed, dtype)
    return value.to(dtype, copy=True)


def write_(
    state: dict[str, Any], values: dict[str, torch.Tensor], unsigned: Collection[str], seed: Any
) -> None:
    """Store each of ``values`` into ``state[name]`` in the form it already has, rounding stochastically.

    The bfloat16 ones are rounded together, in ``values``' order, as the fast
    path rounds them (see :func:`bfloat16_states`); ``unsigned`` holds the
    names of second moments and accumulators.
    """
    to_round = []
    for name, value in values.items():
        stored = state[name]
        if stored.dtype == torch.uint8:
            write_8bit_(stored, state[ABSMAX.format(name)], value, name not in unsigned, seed, salt(name))
        elif stored.dtype == torch.bfloat16 and value.dtype != torch.bfloat16:
            to_round.append((name, value))
        else:
            stored.copy_(value)
    if to_round:
        rounded = states_to_bfloat16([v for _, v in to_round], seed, [salt(n) for n, _ in to_round])
        for (name, _), value in zip(to_round, rounded, strict=True):
            state[name].copy_(value)


def convert(state: dict[str, Any], name: str, wanted: str | None, signed: bool, full: torch.dtype) -> None:
    """Put ``state[name]`` into the ``wanted`` form (None: full precision in ``full``), rounding to nearest.

    The error of one conversion is what the module docstring bounds for
    nearest rounding; converting to full precision is exact.
    """
    value = state[name]
    if wanted == "8bit":
        done = value.dtype == torch.uint8
    elif wanted == "bfloat16":
        done = value.dtype == torch.bfloat16
    else:
        done = value.dtype == full
    if done:
        return
    dense = read(state, name, signed, torch.float32 if full != torch.float64 else full)
    state.pop(ABSMAX.format(name), None)
    if wanted == "8bit":
        state[name], state[ABSMAX.format(name)] = quantise(dense, signed)
    elif wanted == "bfloat16":
        state[name] = dense.to(torch.bfloat16)
    else:
        state[name] = dense.to(full)


def salt(name: str) -> int:
    """A number that tells one state tensor's random stream from another's."""
    return sum(ord(c) * 31**i for i, c in enumerate(name)) & 0xFFFF
