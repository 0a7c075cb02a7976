"""``descentlab bench``: time ``step()`` for every implementation, against torch.optim, in one process.

An optimizer step is memory-bound, so each result is also given as the
effective bandwidth it reaches (the bytes the rule must move, divided by the
time) and as a share of a *streaming probe* timed in the same rounds: one pass
over the same buffers that reads and writes exactly the bytes the step moves,
with one addition per element (``p += g``, ``s += g`` for each state tensor).
The probe has the step's working set, so it meets the same level of the memory
hierarchy (a 15.8M-parameter Adam step, 250 MB, may sit in a large L3 cache,
where a fixed-size ``a += b`` over 512 MB would measure DRAM instead, and a
step could seem to beat the memory). Implementations are timed in turns, round
after round, each round starting one place further along the list, so that the
machine's noise and any effect of the order fall on all of them alike; compare
ratios within one run. On the large tensors' workloads a round takes one step
of each implementation in turn, ``steps`` times, after warming each up: a
spell of noise then falls on every row at once instead of on one row's steps
(on the AMD EPYC, SGD, Adam and Adagrad in two runs each way: the width of the
five rounds' range of ratios 0.16-0.72 with each row's steps together,
0.03-0.17 interleaved, the centres within the former's spread). The many small
tensors keep each implementation's steps together: there torch's
single-threaded steps leave a core idle, which slows the parallel step timed
next. Each ratio and probe share is also given round by round (the median of
one round's steps against the same round's median of torch's fastest row, or
of the probe): their range says how much of a difference the run can resolve
(see :func:`by_round`). Before its timed steps in each round, an implementation
steps untimed for at least ``warmup_s`` (0.25 s by default): on a virtual
machine a core that sat idle (torch's single-threaded paths leave one idle)
runs the next parallel steps up to twice as slowly for about 0.2 s, which one
warm step does not cover, and which would fall on the parallel implementations
only.

Rows with lean state (descentlab's fast path with ``lean_state`` bfloat16 or
8-bit, and peers with 8-bit state) count the bytes at the precision the state
is stored in, from the optimizer's state tensors, and each precision has a
probe of its own that moves those bytes; their ratio is still to torch's
fastest full-precision step.

>>> from descentlab.bench import WORKLOADS
>>> [(w.name, round(w.parameters / 1e6, 1), len(w.shapes)) for w in WORKLOADS.values()]
[('transformer', 15.8, 60), ('many-small', 8.2, 2000), ('transformer-bf16', 15.8, 60)]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.util
import json
import logging
import math
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from . import __version__, _files
from .optim import OPTIMIZERS, Optimizer
from .optim._flat import _corrected

if TYPE_CHECKING:
    from ._progress import Phases


@dataclass(frozen=True)
class Workload:
    """A set of parameter shapes to time a step on, in one dtype, with the state in another if given."""

    name: str
    description: str
    shapes: tuple[tuple[int, ...], ...]
    dtype: torch.dtype = torch.float32
    #: descentlab's ``state_dtype`` (torch.optim keeps its state in the parameters' dtype)
    state_dtype: torch.dtype | None = None
    #: whether a round times its implementations one step of each in turn, rather than each
    #: one's steps together (see the module's text): for workloads whose every row runs on
    #: all cores
    interleaved: bool = False

    @property
    def parameters(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    def scaled(self, factor: float) -> Workload:
        """The same number of tensors, each dimension's first size scaled by ``factor``."""
        if factor == 1:
            return self
        shapes = tuple((max(1, round(s[0] * factor)), *s[1:]) for s in self.shapes)
        return dataclasses.replace(self, description=f"{self.description}, sizes x{factor:g}", shapes=shapes)


def _transformer(d: int = 512, layers: int = 5) -> tuple[tuple[int, ...], ...]:
    block = [
        (3 * d, d),
        (3 * d,),
        (d, d),
        (d,),
        (4 * d, d),
        (4 * d,),
        (d, 4 * d),
        (d,),
        (d,),
        (d,),
        (d,),
        (d,),
    ]
    return tuple(block * layers)


WORKLOADS: dict[str, Workload] = {
    "transformer": Workload(
        "transformer",
        "5 transformer blocks, d=512: 15.8M parameters in 60 tensors",
        _transformer(),
        interleaved=True,
    ),
    "many-small": Workload("many-small", "2000 tensors of 64x64: 8.2M parameters", ((64, 64),) * 2000),
    "transformer-bf16": Workload(
        "transformer-bf16",
        "the transformer's 15.8M parameters in bfloat16, descentlab's state in float32 (torch.optim's "
        "in bfloat16, the only state it keeps for bfloat16 parameters)",
        _transformer(),
        dtype=torch.bfloat16,
        state_dtype=torch.float32,
        interleaved=True,
    ),
}


@dataclass(frozen=True)
class Algorithm:
    """One optimizer configuration, as descentlab's class and torch.optim's."""

    name: str
    kwargs: dict[str, Any]

    @property
    def ours(self) -> type[Optimizer]:
        return OPTIMIZERS[self.name]

    @property
    def theirs(self) -> type[torch.optim.Optimizer]:
        return getattr(torch.optim, self.ours.__name__)

    @property
    def has_state(self) -> bool:
        """Whether the step keeps per-parameter state (so that a lean form of it can be measured)."""
        p = torch.zeros(1, requires_grad=True)
        p.grad = torch.ones(1)
        optimizer = self.ours([p], **self.kwargs)
        optimizer.step()
        return any(key != "step" for key in optimizer.state[p])

    def adam_hyperparameters(self) -> dict[str, Any]:
        """lr, betas, eps and weight_decay as torch.optim resolves them (a peer's defaults may differ)."""
        defaults = self.theirs([torch.zeros(1, requires_grad=True)], **self.kwargs).defaults
        return {k: defaults[k] for k in ("lr", "betas", "eps", "weight_decay")}


ALGORITHMS: dict[str, Algorithm] = {
    "sgd": Algorithm("sgd", {"lr": 1e-3, "momentum": 0.9}),
    "adagrad": Algorithm("adagrad", {"lr": 1e-3}),
    "rmsprop": Algorithm("rmsprop", {"lr": 1e-4}),
    "adam": Algorithm("adam", {"lr": 1e-4}),
    "adamw": Algorithm("adamw", {"lr": 1e-4}),
}

#: implementation name -> (library, constructor flags); torch's rows for the flags torch accepts
IMPLEMENTATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "descentlab fast": ("descentlab", {"foreach": True}),
    "descentlab per-tensor": ("descentlab", {"foreach": False}),
    "torch for-loop": ("torch", {"foreach": False}),
    "torch foreach": ("torch", {"foreach": True}),
    "torch fused": ("torch", {"fused": True}),
}

#: torch.optim's rows: the fastest of them is the reference of every ratio
TORCH_ROWS = frozenset(name for name, (library, _) in IMPLEMENTATIONS.items() if library == "torch")

#: how a row's name says the precision of the state it keeps (``lean_state`` -> suffix)
STATE_FORMS: dict[str, str] = {"bfloat16": "bf16-state", "8bit": "8-bit-state"}

#: descentlab's fast path with lean state (see docs/lean-state.md): implementation -> ``lean_state``
LEAN: dict[str, str] = {f"descentlab fast {suffix}": kind for kind, suffix in STATE_FORMS.items()}

#: the workloads on which :data:`LEAN` rows are measured unless asked otherwise: the large
#: tensors, where the targets are stated; the many small ones add compile time and no new
#: finding (each 64 x 64 tensor is exactly one lean buffer's worth of 16 blocks)
LEAN_WORKLOADS = ("transformer",)

#: the streaming probe's row: the step's bytes, one addition per element (see the module's docstring);
#: a row with lean state has a probe of its own, named with the same suffix
PROBE = "streaming probe"

#: Seconds each implementation steps untimed before its timed steps in a round (see the module's text).
WARMUP_S = 0.25


def probe_name(lean_state: str | None) -> str:
    """The name of the probe row that moves the bytes of a step with this ``lean_state``."""
    return PROBE if lean_state is None else f"{PROBE} {STATE_FORMS[lean_state]}"


@contextlib.contextmanager
def _quietly() -> Iterator[None]:
    """Silence the log lines and warnings a peer's import and first compile write by themselves
    (bitsandbytes and torchao report optional kernels they did not load, torchao's state class
    a missing cache hash): a bench's stderr is its progress lines."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


@dataclass(frozen=True)
class Peer:
    """Another library's optimizer, measured in the same run on request (``--compare NAME``)."""

    implementation: str  # its rows' name; the precision of its state shows in it
    module: str  # what must be importable
    install: str  # how to install it, for the error that says it is not
    make: Callable[[Algorithm, list[torch.Tensor], torch.device], torch.optim.Optimizer | None]
    lean_state: str | None = None  # the form of its state, as descentlab's ``lean_state`` names it


def _deepspeed_adam(
    algorithm: Algorithm, params: list[torch.Tensor], device: torch.device
) -> torch.optim.Optimizer | None:
    """DeepSpeed's AVX CPU Adam (the step ZeRO-Offload runs on the CPU), for Adam and AdamW only."""
    if algorithm.name not in ("adam", "adamw") or device.type != "cpu":
        return None
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    return DeepSpeedCPUAdam(params, adamw_mode=algorithm.name == "adamw", **algorithm.adam_hyperparameters())


def _bitsandbytes_8bit(
    algorithm: Algorithm, params: list[torch.Tensor], device: torch.device
) -> torch.optim.Optimizer | None:
    """bitsandbytes' block-wise 8-bit Adam and AdamW (blocks of 256; under 4096 elements, float32)."""
    if algorithm.name not in ("adam", "adamw"):
        return None
    from bitsandbytes.optim import Adam8bit, AdamW8bit

    cls = AdamW8bit if algorithm.name == "adamw" else Adam8bit
    return cls(params, **algorithm.adam_hyperparameters())


def _torchao_8bit(
    algorithm: Algorithm, params: list[torch.Tensor], device: torch.device
) -> torch.optim.Optimizer | None:
    """torchao's 8-bit Adam and AdamW (blocks of 256; tensors under 4096 elements, or not a multiple of
    256, in float32), each parameter's step compiled by torch.compile."""
    if algorithm.name not in ("adam", "adamw"):
        return None
    from torchao.optim import Adam8bit, AdamW8bit

    cls = AdamW8bit if algorithm.name == "adamw" else Adam8bit
    return cls(params, **algorithm.adam_hyperparameters())


#: peers measured in the same run on request (``--compare``), for the algorithms they implement
PEERS: dict[str, Peer] = {
    "deepspeed": Peer(
        "deepspeed cpu-adam",
        "deepspeed",
        "pip install --no-build-isolation deepspeed; its CPU Adam compiles a C++ extension on first use",
        _deepspeed_adam,
    ),
    "bitsandbytes": Peer(
        "bitsandbytes 8-bit-state",
        "bitsandbytes",
        "pip install 'bitsandbytes>=0.50', the first release whose 8-bit optimizers run on the CPU",
        _bitsandbytes_8bit,
        "8bit",
    ),
    "torchao": Peer(
        "torchao 8-bit-state",
        "torchao.optim",
        "pip install torchao, a release built for this torch",
        _torchao_8bit,
        "8bit",
    ),
}


def check_peers(names: Sequence[str]) -> list[str]:
    """The peers' implementation names; ValueError for an unknown peer or one that cannot be imported here."""
    out = []
    for name in names:
        if name not in PEERS:
            raise ValueError(f"--compare must be one of {', '.join(PEERS)}; received --compare {name!r}")
        peer = PEERS[name]
        top = peer.module.split(".")[0]
        if importlib.util.find_spec(top) is None:
            raise ValueError(
                f"--compare {name}: {top} is not installed here ({peer.install}), "
                "so its rows cannot be measured"
            )
        try:
            with _quietly():
                importlib.import_module(peer.module)
        except Exception as err:  # a broken install fails in many ways; each is this one line
            reason = (str(err).strip().splitlines() or [""])[0][:200]
            raise ValueError(
                f"--compare {name}: {peer.module} is installed but cannot be imported here "
                f"({type(err).__name__}: {reason}); {peer.install}"
            ) from None
        out.append(peer.implementation)
    return out


def _peer(implementation: str) -> tuple[str, Peer] | None:
    return next(((n, p) for n, p in PEERS.items() if p.implementation == implementation), None)


def lean_state_of(implementation: str) -> str | None:
    """The form of the state an implementation keeps, as ``lean_state`` names it (None: full precision)."""
    if implementation in LEAN:
        return LEAN[implementation]
    found = _peer(implementation)
    if found is not None:
        return found[1].lean_state
    return next((k for k in STATE_FORMS if implementation == probe_name(k)), None)


@dataclass
class Measurement:
    """One (workload, algorithm, implementation) result; times in milliseconds."""

    workload: str
    algorithm: str
    implementation: str
    parameters: int
    ms_per_step: float
    ms_first_step: float
    step_times_ms: list[float]
    bytes_per_step: int
    gb_per_s: float
    percent_of_probe: float
    extra_peak_bytes: int | None
    probe_gb_per_s: float | None = None  # the probe this row's percent_of_probe is a share of
    ratio_to_torch_best: float | None = None  # torch's fastest time / this time (> 1: faster)
    state_bytes_per_param: float | None = None  # the optimizer's state tensors' bytes / parameters
    lean_state: str | None = None  # the form of the state of large tensors: None (full), "bfloat16", "8bit"
    ratio_by_round: list[float] | None = None  # ratio_to_torch_best in each round (see by_round)
    percent_of_probe_by_round: list[float] | None = None  # percent_of_probe in each round


@dataclass
class Report:
    """Everything one ``descentlab bench`` run measured, with the machine it ran on.

    ``probe_gb_per_s`` is ``a += b`` over 2 x 256 MB, larger than most caches: the
    memory's own streaming speed, for reference. Each row's ``percent_of_probe``
    is a share of the streaming probe timed beside it (its ``probe_gb_per_s``),
    or of this one where that probe could not be compiled.
    """

    machine: dict[str, Any]
    probe_gb_per_s: float
    measurements: list[Measurement] = field(default_factory=list)
    steps: int | None = None  # timed steps per round
    rounds: int | None = None
    warmup_s: float | None = None  # untimed stepping before each implementation's steps in a round
    interleaved: list[str] | None = None  # the workloads timed one step of each implementation in turn

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "descentlab": __version__,
        "device": str(device),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        # the machine may be shared: the load when the run started says how quiet it was
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bandwidth_probe(device: torch.device, elements: int = 1 << 26, repeats: int = 10) -> float:
    """GB/s of the in-place streaming update ``a += b`` (reads a and b, writes a)."""
    a = torch.ones(elements, device=device)
    b = torch.ones(elements, device=device)
    times = []
    for _ in range(repeats + 2):
        _sync(device)
        start = time.perf_counter()
        a.add_(b)
        _sync(device)
        times.append(time.perf_counter() - start)
    return 3 * a.element_size() * elements / statistics.median(times[2:]) / 1e9


@contextlib.contextmanager
def _without_profiler_chatter() -> Iterator[None]:
    """Drop the 'profiler_start'/'profiler_stop' lines torch's CPU profiler writes to file
    descriptor 2 (no setting turns them off; in a bench they drown the progress lines);
    anything else written there meanwhile is passed on."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to keep clean
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if "profiler_start" not in line and "profiler_stop" not in line:
                    sys.stderr.write(line)


def step_peak_memory(optimizer: torch.optim.Optimizer) -> int | None:
    """Bytes the next ``step()`` allocates at its peak, above what it started with.

    On CUDA from the allocator's peak statistics; on CPU from the allocation
    records of torch's profiler (None where they are unavailable).
    """
    device = next(p.device for g in optimizer.param_groups for p in g["params"])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        optimizer.step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    try:
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile
    except ImportError:  # pragma: no cover - older torch
        optimizer.step()
        return None
    with _without_profiler_chatter(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        optimizer.step()
    allocations: list[tuple[int, int]] = []

    def walk(nodes: Sequence[Any]) -> None:
        for node in nodes:
            if node.tag == _EventType.Allocation:
                allocations.append((node.start_time_ns, node.extra_fields.alloc_size))
            walk(node.children)

    walk(prof.profiler.kineto_results.experimental_event_tree())
    level = peak = 0
    for _, size in sorted(allocations):
        level += size
        peak = max(peak, level)
    return peak


def _plain(value: Any) -> list[torch.Tensor]:
    """The plain tensors ``value`` holds: itself, or a tensor subclass's inner tensors (torchao's
    quantised state reports the parameter's shape and dtype, not the codes and scales it keeps)."""
    if not isinstance(value, torch.Tensor):
        return []
    if hasattr(type(value), "__tensor_flatten__"):
        names, _ = value.__tensor_flatten__()
        return [t for name in names for t in _plain(getattr(value, name))]
    return [value]


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def _state_tensors(
    optimizer: torch.optim.Optimizer, steps: bool = True
) -> Iterator[tuple[torch.Tensor, str, torch.Tensor]]:
    """(parameter, key, tensor) for each distinct tensor of the per-parameter state.

    A tensor that several parameters' states share (bitsandbytes' quantisation
    map) comes once; ``steps=False`` leaves the step counts out.
    """
    seen: set[tuple[int, int]] = set()
    for p in _params(optimizer):
        for key, value in optimizer.state.get(p, {}).items():
            if key == "step" and not steps:
                continue
            for t in _plain(value):
                here = (t.data_ptr(), t.numel() * t.element_size())
                if here[1] and here not in seen:
                    seen.add(here)
                    yield p, key, t


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's per-parameter state tensors (moments, 8-bit scales, steps, ...)."""
    return sum(t.numel() * t.element_size() for _, _, t in _state_tensors(optimizer))


def bytes_moved(optimizer: torch.optim.Optimizer | StreamingProbe) -> int:
    """Bytes one step must move, at the precision each tensor is stored in.

    It reads the parameters and gradients and writes the parameters, and reads
    and writes each state tensor (8-bit codes and their block scales alike), as
    the optimizer holds them after a step; step counts and padding are left out.
    """
    if isinstance(optimizer, StreamingProbe):
        return optimizer.bytes_per_step
    params = sum(p.numel() * p.element_size() for p in _params(optimizer))
    state = sum(t.numel() * t.element_size() for _, _, t in _state_tensors(optimizer, steps=False))
    return 3 * params + 2 * state


def _stream(passes: list[list[torch.Tensor]], side: list[torch.Tensor]) -> None:
    for param, grad, *states in passes:
        param.add_(grad)
        for state in states:
            state.add_(grad if state.is_floating_point() else grad.to(state.dtype))
    for state in side:
        state.add_(1)


_PROBE_KERNELS: dict[tuple[Any, ...], Callable[..., None]] = {}


class StreamingProbe:
    """The probe beside a step: the step's bytes in compiled passes, one addition per element.

    Built from an optimizer that has taken a step (:meth:`beside`), it has flat
    buffers of the same sizes and dtypes: for each kind of parameter (its dtype
    and the dtypes of its elementwise state), the parameters, the gradients and
    each state tensor, with one pass that reads them all and writes the
    parameters and the state (``p += g``, ``s += g``; 8-bit codes add ``g``
    converted to integers), as the step does; and the state that is not
    elementwise (8-bit block scales), read and written by a pass of its own
    (``s += 1``). All passes are one compiled kernel, so that the probe of a
    lean step (a pass for the lean tensors, one for the small ones, one for
    the scales) does not pay a parallel region per pass that the full-precision
    probe does not. Its code is written as the fast path's mixed-precision
    kernels' is (see ``descentlab.optim._codegen``), so that bfloat16 buffers
    beside float32 ones are read and written in whole vectors by both.
    It moves exactly :func:`bytes_moved` of that optimizer, and
    has ``step()`` and ``param_groups`` so that it is timed as an
    implementation is, in the same rounds.
    """

    def __init__(
        self,
        passes: Sequence[tuple[int, torch.dtype, Sequence[torch.dtype]]],
        side: dict[torch.dtype, int],
        device: torch.device,
    ) -> None:
        """``passes``: (elements, parameter dtype, state dtypes) per kind of parameter;
        ``side``: the elements of state that is not elementwise, by dtype."""
        self.passes = [
            [
                torch.zeros(n, dtype=dtype, device=device),
                torch.full((n,), 1e-3, dtype=dtype, device=device),
                *(torch.zeros(n, dtype=d, device=device) for d in states),
            ]
            for n, dtype, states in passes
        ]
        self.side = [torch.zeros(n, dtype=d, device=device) for d, n in side.items() if n]
        self.buffers = [b for buffers in self.passes for b in buffers] + self.side
        self.bytes_per_step = 3 * sum(b[0].numel() * b[0].element_size() for b in self.passes) + 2 * sum(
            t.numel() * t.element_size() for t in [*(s for b in self.passes for s in b[2:]), *self.side]
        )
        self.param_groups = [{"params": [b[0] for b in self.passes]}]
        self.state: dict[Any, Any] = {}
        signature = (
            tuple(tuple(b.dtype for b in buffers) for buffers in self.passes),
            tuple(t.dtype for t in self.side),
        )
        if signature not in _PROBE_KERNELS:
            # a code object per signature: dynamo's cache (and its recompile limit, 8) is per code
            # object, and a bench makes more kinds of probe than that (workloads, state forms)
            # and with the fast path's corrections to inductor's code (see optim._codegen): without
            # them a pass of bfloat16 state beside the float32 parameters' pass reads and writes
            # half vectors, and the probe of a bfloat16-state step measured inductor, not the
            # memory (Adam's, 15.8M parameters: 8.3 ms, against 5.9 ms with them, 2026-12-07)
            _PROBE_KERNELS[signature] = _corrected(_stream, f"descentlab_probe_{len(_PROBE_KERNELS)}").fn
        self.kernel = _PROBE_KERNELS[signature]

    @classmethod
    def beside(cls, optimizer: torch.optim.Optimizer) -> StreamingProbe:
        """The probe that moves what a step of ``optimizer`` (which has taken one) moves."""
        elementwise: dict[torch.Tensor, list[torch.dtype]] = {}
        side: dict[torch.dtype, int] = {}
        for p, _, t in _state_tensors(optimizer, steps=False):
            if t.numel() == p.numel():
                elementwise.setdefault(p, []).append(t.dtype)
            else:
                side[t.dtype] = side.get(t.dtype, 0) + t.numel()
        kinds: dict[tuple[torch.dtype, tuple[torch.dtype, ...]], int] = {}
        for p in _params(optimizer):
            key = (p.dtype, tuple(elementwise.get(p, ())))
            kinds[key] = kinds.get(key, 0) + p.numel()
        device = _params(optimizer)[0].device
        return cls([(n, dtype, states) for (dtype, states), n in kinds.items()], side, device)

    def step(self) -> None:
        self.kernel(self.passes, self.side)


def _refused_by_torch(implementation: str, err: Exception) -> bool:
    """Whether ``err`` is torch.optim refusing one of its own flags here, at the first step (its
    fused Adagrad is for the CPU only: on CUDA it is built, and refuses to step)."""
    return implementation in TORCH_ROWS and isinstance(err, RuntimeError) and "fused" in str(err)


def _make(
    algorithm: Algorithm,
    implementation: str,
    workload: Workload,
    device: torch.device,
    seed: int,
    made: dict[str, Any],
) -> torch.optim.Optimizer | StreamingProbe | None:
    """The implementation's optimizer (None: it has none for this algorithm); a probe is built
    beside the first row of its precision in ``made`` (the rows made so far, each stepped once)."""
    lean_state = lean_state_of(implementation)
    if implementation.startswith(PROBE):
        source = next((o for name, o in made.items() if lean_state_of(name) == lean_state), None)
        return None if source is None else StreamingProbe.beside(source)
    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in workload.shapes:
        p = torch.randn(shape, generator=generator).to(device, workload.dtype).requires_grad_()
        p.grad = (torch.randn(shape, generator=generator) * 1e-2).to(device, workload.dtype)
        params.append(p)
    peer = _peer(implementation)
    if peer is not None:
        with _quietly():
            return peer[1].make(algorithm, params, device)
    extra = {} if workload.state_dtype is None else {"state_dtype": workload.state_dtype}
    if implementation in LEAN:
        return algorithm.ours(params, **algorithm.kwargs, foreach=True, lean_state=lean_state, **extra)
    library, flags = IMPLEMENTATIONS[implementation]
    if library == "descentlab":  # every descentlab optimizer has both paths: an error here is a bug
        return algorithm.ours(params, **algorithm.kwargs, **flags, **extra)
    try:
        return algorithm.theirs(params, **algorithm.kwargs, **flags)
    except (RuntimeError, TypeError, ValueError):
        return None  # torch has no such implementation of this algorithm (e.g. fused RMSprop)


def run(
    workloads: Sequence[Workload],
    algorithms: Sequence[Algorithm],
    *,
    device: torch.device,
    steps: int = 10,
    rounds: int = 3,
    seed: int = 0,
    progress: Phases | None = None,
    peers: Sequence[str] = (),
    lean_workloads: Collection[str] = LEAN_WORKLOADS,
    measured: Callable[[Report], None] | None = None,
    warmup_s: float = WARMUP_S,
) -> Report:
    """Measure every (workload, algorithm, implementation); implementations take turns.

    ``peers`` are implementation names from :data:`PEERS` (see :func:`check_peers`),
    measured alongside for the algorithms they implement. :data:`LEAN` rows are
    measured on the workloads named in ``lean_workloads``, for the algorithms
    that keep state. Each precision of state gets its streaming probe, built
    beside the first row of that precision. ``progress`` shows the probe and
    each workload as a phase; ``measured`` is given the report so far after
    each workload (the command line writes it out, so that a run cut short
    keeps the workloads it finished). In each round an implementation first
    steps untimed for at least ``warmup_s`` seconds (at least one step).
    """

    def say(phase: str, done: int, total: int, detail: str) -> None:
        if progress is not None:
            progress.update(phase, done, total, detail)

    say("probe", 0, 1, "the memory's streaming bandwidth, a += b over 2 x 256 MB")
    report = Report(
        machine_info(device),
        bandwidth_probe(device),
        steps=steps,
        rounds=rounds,
        warmup_s=warmup_s,
        interleaved=[w.name for w in workloads if w.interleaved],
    )
    say("probe", 1, 1, f"streaming bandwidth {report.probe_gb_per_s:.1f} GB/s")
    total = len(algorithms) * (rounds + 1)
    for workload in workloads:
        done = 0
        for algorithm in algorithms:
            say(workload.name, done, total, f"{algorithm.name}: first steps, including compiles")
            lean = [*LEAN] if workload.name in lean_workloads and algorithm.has_state else []
            optimizers: dict[str, Any] = {}
            first: dict[str, float] = {}
            probes = [probe_name(None), *(probe_name(LEAN[name]) for name in lean)]
            probes += [p for p in map(probe_name, map(lean_state_of, peers)) if p not in probes]
            for implementation in [*IMPLEMENTATIONS, *lean, *peers, *probes]:
                try:
                    opt = _make(algorithm, implementation, workload, device, seed, optimizers)
                    if opt is None:
                        continue
                    _sync(device)
                    start = time.perf_counter()
                    with _quietly() if _peer(implementation) else contextlib.nullcontext():
                        opt.step()
                except Exception as err:
                    reason = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"
                    found = _peer(implementation)
                    if found is not None:
                        raise ValueError(
                            f"--compare {found[0]}: {implementation} failed on {device.type} here ({reason})"
                        ) from err
                    if _refused_by_torch(implementation, err):
                        say(workload.name, done, total, f"torch has no {implementation} {algorithm.name} on "
                            f"{device.type} ({reason}); that row is left out")  # fmt: skip
                        continue
                    if not implementation.startswith(PROBE):  # only a probe may fail: shares then use a += b
                        raise
                    say(workload.name, done, total, f"{implementation} could not be compiled here "
                        f"({type(err).__name__}); shares are of the a += b probe")  # fmt: skip
                    continue
                _sync(device)
                first[implementation] = (time.perf_counter() - start) * 1e3
                optimizers[implementation] = opt
            times: dict[str, list[float]] = {name: [] for name in optimizers}
            turns = list(optimizers.items())
            for round_ in range(rounds):
                done += 1
                say(workload.name, done, total, f"{algorithm.name}: round {round_ + 1}/{rounds}")
                # each round starts one place further along, so that no row always runs first or
                # after the same row (in 8 runs of 5 rounds, Adam's ratio to torch's fused step was
                # 0.934 +- 0.044 in a fixed order and 0.970 +- 0.036 rotated: a position effect)
                shift = round_ % len(turns)
                order = turns[shift:] + turns[:shift]
                if workload.interleaved:  # each warmed up, then one step of each in turn
                    for _, opt in order:
                        _warm(opt, device, warmup_s)
                    for _ in range(steps):
                        for implementation, opt in order:
                            times[implementation].append(_timed(opt, device))
                else:  # each warmed up, then its steps
                    for implementation, opt in order:
                        _warm(opt, device, warmup_s)
                        times[implementation].extend(_timed(opt, device) for _ in range(steps))
            rows = []
            for implementation, opt in optimizers.items():
                moved = bytes_moved(opt)
                ms = statistics.median(times[implementation])
                probe = implementation.startswith(PROBE)
                rows.append(
                    Measurement(
                        workload=workload.name,
                        algorithm=algorithm.name,
                        implementation=implementation,
                        parameters=workload.parameters,
                        ms_per_step=ms,
                        ms_first_step=first[implementation],
                        step_times_ms=times[implementation],
                        bytes_per_step=moved,
                        gb_per_s=moved / ms / 1e6,
                        percent_of_probe=0.0,
                        extra_peak_bytes=step_peak_memory(opt),
                        state_bytes_per_param=None if probe else state_bytes(opt) / workload.parameters,
                        lean_state=lean_state_of(implementation),
                    )
                )
            optimizers.clear()
            speeds = {r.lean_state: r.gb_per_s for r in rows if r.implementation.startswith(PROBE)}
            best = min((r.ms_per_step for r in rows if r.implementation in TORCH_ROWS), default=None)
            rounds_of = by_round([asdict(r) for r in rows], steps, rounds)
            for r in rows:
                r.probe_gb_per_s = speeds.get(r.lean_state, report.probe_gb_per_s)
                r.percent_of_probe = 100 * r.gb_per_s / r.probe_gb_per_s
                r.ratio_to_torch_best = None if best is None else best / r.ms_per_step
                r.ratio_by_round, r.percent_of_probe_by_round = rounds_of[r.implementation]
            report.measurements.extend(rows)
            done += 1
            detail = f"{algorithm.name} measured"
            if done == total:  # the phase's line off a terminal says what the phase did
                n = len(algorithms)
                detail = f"{n} optimizer{'s' * (n > 1)}, {rounds} rounds of {steps} steps"
            say(workload.name, done, total, detail)
        if measured is not None:
            measured(report)
    return report


def by_round(
    rows: Sequence[dict[str, Any]], steps: int, rounds: int
) -> dict[str, tuple[list[float] | None, list[float] | None]]:
    """Each row's ratio to torch's fastest and share of its probe, round by round.

    ``rows``: one workload's and optimizer's rows (as :meth:`Report.to_json`
    writes them), whose ``step_times_ms`` hold ``steps`` times per round for
    ``rounds`` rounds, in order. A round's figure compares the medians of that
    round's steps: torch's fastest row (over the whole run) over this row, and the
    probe's time in that round over this row's, scaled by the bytes each
    moves. Implementation -> (ratios, shares); None where there is no torch
    row, no probe row, or the times are not whole rounds.

    The range of ``n`` rounds' figures, lowest to highest, holds the median of
    their distribution with probability :math:`1 - 2^{1-n}` when rounds are
    independent (94% for 5 rounds, 75% for 3): every round falls on the same
    side of the median with probability :math:`2^{-n}` each way. A target is
    resolved when the whole range lies on one side of it.

    >>> rows = [
    ...     {"implementation": "torch fused", "step_times_ms": [2.0, 2.0, 3.0, 3.0], "bytes_per_step": 8},
    ...     {"implementation": "descentlab fast", "step_times_ms": [1.0, 1.0, 2.0, 2.0], "bytes_per_step": 8},
    ... ]
    >>> by_round(rows, steps=2, rounds=2)["descentlab fast"]
    ([2.0, 1.5], None)
    """
    medians = {}
    for m in rows:
        times = m.get("step_times_ms") or []
        if steps > 0 and rounds > 0 and len(times) == steps * rounds:
            medians[m["implementation"]] = [
                statistics.median(times[r * steps : (r + 1) * steps]) for r in range(rounds)
            ]
    # torch's fastest row over the whole run, as for ratio_to_torch_best: the fastest in
    # each round instead would favour torch by picking its luckiest row round by round
    fastest = min(
        (m for m in rows if m["implementation"] in TORCH_ROWS and m["implementation"] in medians),
        key=lambda m: statistics.median(m["step_times_ms"]),
        default=None,
    )
    best = None if fastest is None else medians[fastest["implementation"]]
    probes = {m.get("lean_state"): m for m in rows if m["implementation"].startswith(PROBE)}
    out: dict[str, tuple[list[float] | None, list[float] | None]] = {}
    for m in rows:
        mine = medians.get(m["implementation"])
        probe = probes.get(m.get("lean_state"))
        theirs = None if probe is None else medians.get(probe["implementation"])
        if mine is None:
            out[m["implementation"]] = (None, None)
            continue
        ratios = None if best is None else [b / t for b, t in zip(best, mine, strict=True)]
        shares = (
            None
            if theirs is None
            else [
                100 * (m["bytes_per_step"] / t) / (probe["bytes_per_step"] / p)
                for t, p in zip(mine, theirs, strict=True)
            ]
        )
        out[m["implementation"]] = (ratios, shares)
    return out


def coverage(rounds: int) -> float:
    """The probability that the range of ``rounds`` independent rounds holds their median.

    See :func:`by_round`.
    """
    return 1 - 2.0 ** (1 - rounds)


def _timed(optimizer: torch.optim.Optimizer | StreamingProbe, device: torch.device) -> float:
    """Milliseconds of one ``step()``, the device synchronised before and after."""
    _sync(device)
    start = time.perf_counter()
    optimizer.step()
    _sync(device)
    return (time.perf_counter() - start) * 1e3


def _warm(optimizer: torch.optim.Optimizer | StreamingProbe, device: torch.device, seconds: float) -> None:
    """Step ``optimizer`` untimed: once, then until ``seconds`` have passed."""
    start = time.perf_counter()
    optimizer.step()
    _sync(device)
    while time.perf_counter() - start < seconds:
        optimizer.step()
        _sync(device)


def _bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def table(report: Report) -> str:
    """The report as a text table, one row per measurement."""
    width = max([22, *(len(m.implementation) for m in report.measurements)])
    head = (
        f"{'workload':<12} {'optimizer':<9} {'implementation':<{width}} {'ms/step':>8} {'Mparam/s':>9} "
        f"{'B/param':>7} {'GB/s':>6} {'%probe':>6} {'x torch':>7} {'rounds':>11} {'state B/p':>9} "
        f"{'1st step':>9} "
        f"{'extra peak':>10}"
    )
    lines = [head, "-" * len(head)]
    for m in report.measurements:
        ratio = "-" if m.ratio_to_torch_best is None else f"{m.ratio_to_torch_best:.2f}"
        spread = _spread(m.ratio_by_round, 2).strip(" ()") or "-"
        state = "-" if m.state_bytes_per_param is None else f"{m.state_bytes_per_param:.2f}"
        lines.append(
            f"{m.workload:<12} {m.algorithm:<9} {m.implementation:<{width}} {m.ms_per_step:8.2f} "
            f"{m.parameters / m.ms_per_step / 1e3:9.0f} {m.bytes_per_step / m.parameters:7.2f} "
            f"{m.gb_per_s:6.1f} {m.percent_of_probe:6.0f} {ratio:>7} {spread:>11} {state:>9} "
            f"{m.ms_first_step / 1e3:8.2f}s {_bytes(m.extra_peak_bytes):>10}"
        )
    machine = report.machine
    lines.append(
        f"B/param: bytes a step moves per parameter, at the precision the state is kept in; %probe: "
        f"share of the {PROBE} of the row's precision (the step's bytes, one add per element) timed "
        f"beside it; x torch: torch's fastest full-precision step / this one; rounds: the lowest and "
        f"highest of that ratio round by round; state B/p: the state "
        f"tensors' bytes per parameter; probe (a += b, 2 x 256 MB): {report.probe_gb_per_s:.1f} GB/s "
        f"on {machine['processor']}, {machine['cpu_count']} cores, torch {machine['torch']} "
        f"({machine['device']})"
    )
    return "\n".join(lines)


#: The project's targets for descentlab's fast path, per workload: the least ratio to torch's
#: fastest path (per optimizer, else ``"*"``; None: none), and the least share of the probe
#: (None: none). With bfloat16 parameters torch.optim keeps bfloat16 state, half the bytes of
#: descentlab's float32 state: not the same work, so only the probe share is a target there.
TARGETS: dict[str, tuple[dict[str, float] | None, float | None]] = {
    "transformer": ({"rmsprop": 2.5, "*": 1.0}, 95.0),
    "many-small": ({"*": 3.0}, None),
    "transformer-bf16": (None, 95.0),
}


def _with_rounds(data: dict[str, Any]) -> dict[int, tuple[list[float] | None, list[float] | None]]:
    """:func:`by_round` of every row of ``data`` (a bench JSON file's content), by the row's ``id``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in data["measurements"]:
        groups.setdefault((m["workload"], m["algorithm"]), []).append(m)
    out = {}
    for group in groups.values():
        found = by_round(group, data.get("steps") or 0, data.get("rounds") or 0)
        out.update({id(m): found[m["implementation"]] for m in group})
    return out


def _spread(values: list[float] | None, digits: int) -> str:
    """`` (low-high)`` of the figures of the rounds, or nothing where there are none."""
    return "" if not values else f" ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _verdict(value: float | None, rounds: list[float] | None, want: float | None) -> str:
    """Whether ``value`` reaches ``want``: "yes" or "no" where every round agrees, else "unresolved".

    Without figures by round (a file from before they were kept) the value alone decides.
    """
    if want is None:
        return "yes"
    if value is None:
        return "no"
    low, high = (min(rounds), max(rounds)) if rounds else (value, value)
    return "yes" if low >= want else "no" if high < want else "unresolved"


#: A probe share whose every round lies above this (in %) says the probe ran slower than a step
#: that moves the same bytes: the probe is no ceiling, and no probe target is judged against it.
PROBE_SHARE_MAX = 105.0


def _probe_verdict(value: float, rounds: list[float] | None, want: float | None) -> str:
    """:func:`_verdict` of a probe share; "probe invalid" where every round is past the maximum."""
    if want is not None and min(rounds or [value]) > PROBE_SHARE_MAX:
        return "probe invalid"
    return _verdict(value, rounds, want)


def _both(*verdicts: str) -> str:
    """ "no" if one is; else the first that is not "yes" ("unresolved", "probe invalid"); else "yes"."""
    return "no" if "no" in verdicts else next((v for v in verdicts if v != "yes"), "yes")


def _targets(
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]],
    rounds: dict[int, tuple[list[float] | None, list[float] | None]],
) -> list[str]:
    """The fast path's rows against :data:`TARGETS`, as Markdown table lines."""
    lines = [
        "| workload | optimizer | x torch's fastest (rounds) | target | % of probe (rounds) | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for (workload, algorithm), found in rows.items():
        m = found.get("descentlab fast")
        if m is None or workload not in TARGETS:
            continue
        ratios, probe = TARGETS[workload]
        want = None if ratios is None else ratios.get(algorithm, ratios["*"])
        ratio = m.get("ratio_to_torch_best")
        by_ratio, by_share = rounds.get(id(m), (None, None))
        met = _both(_verdict(ratio, by_ratio, want), _probe_verdict(m["percent_of_probe"], by_share, probe))
        lines.append(
            f"| {workload} | {_NAMES.get(algorithm, algorithm)} | "
            f"{'n/a' if ratio is None else f'{ratio:.2f}{_spread(by_ratio, 2)}'} | "
            f"{'-' if want is None else f'>= {want:g}'} | "
            f"{m['percent_of_probe']:.0f}{_spread(by_share, 0)} | "
            f"{'-' if probe is None else f'>= {probe:g}'} | {met} |"
        )
    return lines


#: The project's targets for descentlab's fast path with lean state (issue 12), per (workload,
#: optimizer, ``lean_state``): the least ratio to torch's fastest full-precision step, and the
#: most state bytes per parameter, as measured from the state tensors.
LEAN_TARGETS: dict[tuple[str, str, str], tuple[float, float]] = {
    ("transformer", "adam", "8bit"): (1.5, 2.1),
    ("transformer", "adam", "bfloat16"): (1.25, 4.0),
}

_FORMS = {"bfloat16": "bfloat16", "8bit": "8-bit"}


def _lean_section(
    data: dict[str, Any],
    lean: list[dict[str, Any]],
    rounds: dict[int, tuple[list[float] | None, list[float] | None]],
    targets: bool = True,
) -> list[str]:
    """The rows with lean state (descentlab's and the peers'); descentlab's against :data:`LEAN_TARGETS`
    where ``targets`` (the targets are the CPU's)."""
    speeds = {
        (m["workload"], m["algorithm"], m.get("lean_state")): m["gb_per_s"]
        for m in data["measurements"]
        if m["implementation"].startswith(PROBE)
    }
    lines = [
        "",
        "Lean state (bfloat16 or 8-bit state for tensors of 4096 elements or more): milliseconds per "
        "step, the ratio to torch's fastest full-precision step (above 1: faster), the bytes the step "
        "moves per parameter at the precision the state is kept in (parameters and gradients, each "
        "state tensor read and written, 8-bit block scales included), the share of a streaming probe "
        "that moves those same bytes, timed in the same rounds, and the state's bytes per parameter "
        "measured from the optimizer's state tensors (small tensors' full-precision state included).",
        "",
        "| workload | optimizer | implementation | ms/step | x torch's fastest | bytes moved/param "
        "| % of probe | probe GB/s | state B/param |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in lean:
        ratio = m.get("ratio_to_torch_best")
        probe = speeds.get((m["workload"], m["algorithm"], m.get("lean_state")))
        lines.append(
            f"| {m['workload']} | {_NAMES.get(m['algorithm'], m['algorithm'])} | {m['implementation']} | "
            f"{_ms(m['ms_per_step'])} | {'n/a' if ratio is None else f'{ratio:.2f}'} | "
            f"{m['bytes_per_step'] / m['parameters']:.2f} | {m['percent_of_probe']:.0f} | "
            f"{'n/a' if probe is None else f'{probe:.1f}'} | {m['state_bytes_per_param']:.2f} |"
        )
    ours = {(m["workload"], m["algorithm"], m["lean_state"]): m for m in lean if m["implementation"] in LEAN}
    rows = [
        "| workload | optimizer | state | x torch's fastest (rounds) | target | state B/param | target "
        "| met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (workload, algorithm, kind), (want, most) in LEAN_TARGETS.items():
        m = ours.get((workload, algorithm, kind))
        if m is None:
            continue
        ratio, state = m.get("ratio_to_torch_best"), m["state_bytes_per_param"]
        by_ratio = rounds.get(id(m), (None, None))[0]
        met = _both(_verdict(ratio, by_ratio, want), "yes" if state <= most else "no")
        rows.append(
            f"| {workload} | {_NAMES.get(algorithm, algorithm)} | {_FORMS[kind]} | "
            f"{'n/a' if ratio is None else f'{ratio:.2f}{_spread(by_ratio, 2)}'} | >= {want:g} | "
            f"{state:.2f} | <= {most:g} | {met} |"
        )
    if targets and len(rows) > 2:
        lines += ["", "Against the targets (descentlab's fast path with lean state):", "", *rows]
    return lines


_NAMES = {"sgd": "SGD momentum", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW"}


def markdown(data: dict[str, Any]) -> str:
    """A bench JSON file's content (as :meth:`Report.to_json` wrote it) as the benchmarks page's table.

    One row per workload and optimizer, one column per implementation measured
    with full-precision state, in milliseconds per step; descentlab's fast path
    also as a ratio to torch's fastest path and a share of the probe. Rows with
    lean state (descentlab's and the peers') follow in a table of their own, one
    row each, with the bytes they move and keep. Every figure comes from ``data``.
    """
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    order: list[str] = []
    lean = [
        m for m in data["measurements"] if m.get("lean_state") and not m["implementation"].startswith(PROBE)
    ]
    for m in data["measurements"]:
        if m.get("lean_state"):
            continue
        rows.setdefault((m["workload"], m["algorithm"]), {})[m["implementation"]] = m
        if m["implementation"] not in order:
            order.append(m["implementation"])
    machine = data["machine"]
    load = machine.get("load_average")
    settings = (
        f"medians of {data['rounds']} rounds of {data['steps']} steps"
        if data.get("rounds") and data.get("steps")
        else "medians of the timed steps"
    )
    if data.get("warmup_s"):
        settings += f", each after at least {data['warmup_s']:g} s of untimed steps"
    elif data.get("rounds"):  # a file from before the warm-up was timed, or a run without one
        settings += ", each after one untimed step"
    if data.get("interleaved"):
        settings += f"; on {', '.join(data['interleaved'])}, one step of each implementation in turn"

    host = f"{machine['processor']}, {machine['cpu_count']} cores ({machine['torch_threads']} threads)"
    where = f"{machine['gpu']} (host: {host})" if machine.get("gpu") else host
    lines = [
        f"One run of `descentlab bench` on {where}, torch {machine['torch']}, device {machine['device']}, "
        f"{machine.get('date', 'date not recorded')}"
        + (f"; load average when it started {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}" if load else "")
        + f". Milliseconds per step, {settings}; descentlab's fast path also as a ratio to torch's "
        "fastest path (above 1: faster) and as a share of the streaming probe, which moves the step's "
        "bytes (same buffers, same dtypes) with one addition per element and is timed in the same "
        f"rounds (for reference, `a += b` over 2 x 256 MB: {data['probe_gb_per_s']:.1f} GB/s); "
        "state: the optimizer's state bytes per parameter.",
        "",
        "| workload | optimizer | " + " | ".join(order) + " | state B/param |",
        "|---|---|" + "---|" * len(order) + "---|",
    ]
    for (workload, algorithm), found in rows.items():
        cells = []
        for implementation in order:
            m = found.get(implementation)
            if m is None:
                cells.append("none")
                continue
            cell = _ms(m["ms_per_step"])
            if implementation == "descentlab fast":
                ratio = m.get("ratio_to_torch_best")
                cell += (
                    f" ({ratio:.2f}x, {m['percent_of_probe']:.0f}%)"
                    if ratio
                    else f" ({m['percent_of_probe']:.0f}%)"
                )
            cells.append(cell)
        fast = found.get("descentlab fast", next(iter(found.values())))
        state = fast.get("state_bytes_per_param")
        params = fast["parameters"] / 1e6
        label = f"{workload} ({params:.1f}M)"
        lines.append(
            f"| {label} | {_NAMES.get(algorithm, algorithm)} | "
            + " | ".join(cells)
            + f" | {'n/a' if state is None else f'{state:.1f}'} |"
        )
    on_cpu = str(machine.get("device", "cpu")).startswith("cpu")
    rounds = _with_rounds(data)
    if on_cpu:
        lines += ["", "Against the targets (descentlab's fast path):", "", *_targets(rows, rounds)]
        if data.get("rounds"):
            lines += [
                "",
                f"In brackets: the lowest and highest of the {data['rounds']} rounds' figures (each "
                "round's median step against that of torch's fastest row, or of the probe), which hold "
                f"the median round with probability {coverage(data['rounds']):.0%} if rounds are "
                'independent. Met: "yes" or "no" where every round agrees, "unresolved" where '
                "the rounds fall on both sides of the target.",
            ]
    if lean:
        lines += _lean_section(data, lean, rounds, on_cpu)
    if not on_cpu:
        lines += ["", "The project's targets are stated for the CPU; this run records where the GPU stands."]
    return "\n".join(lines)


def summary(data: dict[str, Any]) -> str:
    """A bench JSON file's short form for the README: descentlab's fast path against torch's
    fastest path on the large tensors (the transformer workload), one row per optimizer.

    Every figure comes from ``data``; the README holds this text for each stored result, and a
    test checks that it still does.
    """
    machine = data["machine"]
    where = machine.get("gpu") or f"{machine['processor']} ({machine['torch_threads']} threads)"
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for m in data["measurements"]:
        if m["workload"] == "transformer" and not m.get("lean_state"):
            found.setdefault(m["algorithm"], {})[m["implementation"]] = m
    params = next((m["parameters"] for rows in found.values() for m in rows.values()), 0)
    lines = [
        f"{where}, torch {machine['torch']}, {machine.get('date', 'date not recorded')}: the transformer "
        f"workload ({params / 1e6:.1f}M parameters in float32); the memory's copy bandwidth "
        f"(`a += b` over 2 x 256 MB) {data['probe_gb_per_s']:.0f} GB/s.",
        "",
        "| optimizer | descentlab fast, ms | torch's fastest, ms | x torch (rounds) | % of probe |",
        "|---|---|---|---|---|",
    ]
    rounds = _with_rounds(data)
    for algorithm, rows in found.items():
        fast = rows.get("descentlab fast")
        theirs = [rows[name] for name in rows if name in TORCH_ROWS]
        if fast is None or not theirs:
            continue
        best = min(theirs, key=lambda m: m["ms_per_step"])
        lines.append(
            f"| {_NAMES.get(algorithm, algorithm)} | {_ms(fast['ms_per_step'])} | "
            f"{_ms(best['ms_per_step'])} ({best['implementation']}) | "
            f"{best['ms_per_step'] / fast['ms_per_step']:.2f}{_spread(rounds[id(fast)][0], 2)} | "
            f"{fast['percent_of_probe']:.0f} |"
        )
    return "\n".join(lines)


def _ms(ms: float) -> str:
    """Milliseconds with two decimals under 1 ms (a GPU's steps), else one."""
    return f"{ms:.2f}" if ms < 1 else f"{ms:.1f}"


# -- the benchmarks/ scripts: named forms of one step, timed in turns ----------


def time_forms(
    forms: dict[str, Callable[[], object]], rounds: int, steps: int
) -> dict[str, list[list[float]]]:
    """Milliseconds of each call of each form: ``rounds`` rounds, each taking every form in turn for
    ``steps`` calls (the host's speed drifts; a round puts the forms side by side)."""
    times: dict[str, list[list[float]]] = {form: [] for form in forms}
    for _ in range(rounds):
        for form, call in forms.items():
            ms = []
            for _ in range(steps):
                start = time.perf_counter()
                call()
                ms.append((time.perf_counter() - start) * 1e3)
            times[form].append(ms)
    return times


def forms_parser(description: str, rounds: int, steps: int) -> argparse.ArgumentParser:
    """A benchmarks/ script's parser with ``--rounds``, ``--steps``, ``--scale`` and ``--out``; a script
    adds its own arguments, parses, and passes the result through :func:`forms_check`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"rounds over the forms (default {rounds})"
    )
    parser.add_argument(
        "--steps", type=int, default=steps, help=f"timed steps per form and round (default {steps})"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="scale the workload's sizes (default 1)")
    parser.add_argument(
        "--out", type=pathlib.Path, help="where to keep the timings as JSON (docs render them)"
    )
    return parser


def forms_check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """``args`` checked, ``--out`` included, before the minutes of measuring (a wrong one: exit 2)."""
    if args.rounds < 1 or args.steps < 1:
        parser.error(f"--rounds and --steps must be at least 1; received {args.rounds} and {args.steps}")
    if not 0 < args.scale <= 4:  # also refuses nan (as descentlab bench does)
        parser.error(f"--scale must be in (0, 4]; received {args.scale}")
    if args.out is not None:
        try:
            _files.check_writable(args.out)
        except OSError as err:
            parser.error(f"--out: {err}")
    args.machine = machine_info(torch.device("cpu"))  # the date and load when the measuring starts
    return args


def keep_forms(
    args: argparse.Namespace, script: str, argv: Sequence[str] | None, title: str, rows: list[dict[str, Any]]
) -> None:
    """Write what a benchmarks/ script measured to ``args.out`` (if given), atomically: the rows
    (each ``group``, ``form``, ``round_ms``: per round, each call's milliseconds, or None where the
    form did not run, and ``note``), the machine and date, and the command that measured them."""
    if args.out is None:
        return
    data = {
        "benchmark": script,
        "command": " ".join(["python", script, *(sys.argv[1:] if argv is None else argv)]),
        "title": title,
        "machine": args.machine,
        "rounds": args.rounds,
        "steps": args.steps,
        "rows": rows,
    }
    _files.write_text_atomic(args.out, json.dumps(data, indent=1) + "\n")
    print(f"written to {args.out}")


def forms_markdown(data: dict[str, Any]) -> str:
    """A benchmarks/ script's ``--out`` file as a Markdown table: each form's median milliseconds per
    step, with the lowest and highest round's median, and the machine, its load and the date."""
    m = data["machine"]
    load = m.get("load_average")
    grouped = any(row.get("group") for row in data["rows"])
    lines = [
        f"{data['title']}. `{data['command']}` on {m['processor']} ({m['cpu_count']} cores, "
        f"{m['torch_threads']} threads), torch {m['torch']}, {m['date']}"
        + (f"; load average when it started {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}" if load else "")
        + f". Median milliseconds per step over {data['rounds']} rounds of {data['steps']} steps, in "
        "brackets the lowest and highest round's median.",
        "",
        ("| optimizer " if grouped else "") + "| form | ms per step (rounds) | notes |",
        ("|---" if grouped else "") + "|---|---|---|",
    ]
    for row in data["rows"]:
        rounds = row["round_ms"]
        if rounds is None:
            cell = "does not run"
        else:
            medians = [statistics.median(r) for r in rounds]
            every = statistics.median([ms for r in rounds for ms in r])
            cell = _ms(every) + (f" ({_ms(min(medians))}-{_ms(max(medians))})" if len(medians) > 1 else "")
        group = f"| {row.get('group') or ''} " if grouped else ""
        form, note = (str(text or "").replace("|", "\\|") for text in (row["form"], row.get("note")))
        lines.append(f"{group}| {form} | {cell} | {note} |")
    return "\n".join(lines)
