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
after round, so that the machine's noise falls on all of them alike; compare
ratios within one run.

>>> from descentlab.bench import WORKLOADS
>>> [(w.name, round(w.parameters / 1e6, 1), len(w.shapes)) for w in WORKLOADS.values()]
[('transformer', 15.8, 60), ('many-small', 8.2, 2000), ('transformer-bf16', 15.8, 60)]
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from . import __version__
from .optim import OPTIMIZERS, Optimizer
from .optim._flat import _COMPILE_OPTIONS

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
        "transformer", "5 transformer blocks, d=512: 15.8M parameters in 60 tensors", _transformer()
    ),
    "many-small": Workload("many-small", "2000 tensors of 64x64: 8.2M parameters", ((64, 64),) * 2000),
    "transformer-bf16": Workload(
        "transformer-bf16",
        "the transformer's 15.8M parameters in bfloat16, descentlab's state in float32 (torch.optim's "
        "in bfloat16, the only state it keeps for bfloat16 parameters)",
        _transformer(),
        dtype=torch.bfloat16,
        state_dtype=torch.float32,
    ),
}


@dataclass(frozen=True)
class Algorithm:
    """One optimizer configuration, as descentlab's class and torch.optim's."""

    name: str
    kwargs: dict[str, Any]

    @property
    def state_tensors(self) -> int:
        """Per-parameter state tensors the step reads and writes, counted after one step."""
        p = torch.zeros(1, requires_grad=True)
        p.grad = torch.ones(1)
        optimizer = self.ours([p], **self.kwargs)
        optimizer.step()
        return sum(1 for key, value in optimizer.state[p].items() if key != "step" and torch.is_tensor(value))

    @property
    def ours(self) -> type[Optimizer]:
        return OPTIMIZERS[self.name]

    @property
    def theirs(self) -> type[torch.optim.Optimizer]:
        return getattr(torch.optim, self.ours.__name__)

    def bytes_per_element(self, element_size: int, state_size: int | None = None) -> int:
        """Bytes one step must move per parameter: read p, g and the state; write p and the state."""
        return 3 * element_size + 2 * self.state_tensors * (state_size or element_size)


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

#: the streaming probe's row: the step's bytes, one addition per element (see the module's docstring)
PROBE = "streaming probe"

#: peers measured in the same run on request (``--compare``): name -> (implementation, module it needs)
PEERS: dict[str, tuple[str, str]] = {"deepspeed": ("deepspeed cpu-adam", "deepspeed")}


def check_peers(names: Sequence[str]) -> list[str]:
    """The peers' implementation names; ValueError for an unknown peer or one that is not installed."""
    out = []
    for name in names:
        if name not in PEERS:
            raise ValueError(f"--compare must be one of {', '.join(PEERS)}; received --compare {name!r}")
        implementation, module = PEERS[name]
        if importlib.util.find_spec(module) is None:
            raise ValueError(
                f"--compare {name}: {module} is not installed here (pip install {module}; its CPU "
                "Adam compiles a C++ extension on first use), so its row cannot be measured"
            )
        out.append(implementation)
    return out


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


def _state_element_size(optimizer: torch.optim.Optimizer) -> int | None:
    """The element size of the optimizer's state tensors (None: it keeps none)."""
    for state in optimizer.state.values():
        for key, value in state.items():
            if key != "step" and isinstance(value, torch.Tensor) and value.dim() > 0:
                return value.element_size()
    return None


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's per-parameter state tensors (moments, steps, ...)."""
    return sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    )


def _deepspeed_adam(algorithm: Algorithm, params: list[torch.Tensor]) -> torch.optim.Optimizer | None:
    """DeepSpeed's AVX CPU Adam (the step ZeRO-Offload runs on the CPU), for Adam and AdamW only."""
    if algorithm.name not in ("adam", "adamw"):
        return None
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    kwargs = {k: v for k, v in algorithm.kwargs.items() if k in ("lr", "betas", "eps", "weight_decay")}
    adamw = algorithm.name == "adamw"
    if adamw:
        kwargs.setdefault("weight_decay", 1e-2)  # torch's and descentlab's AdamW default
    return DeepSpeedCPUAdam(params, adamw_mode=adamw, **kwargs)


def _stream(param: torch.Tensor, grad: torch.Tensor, *states: torch.Tensor) -> None:
    param.add_(grad)
    for state in states:
        state.add_(grad)


class StreamingProbe:
    """The probe beside a step: the step's bytes in one compiled pass, one addition per element.

    It reads the parameters, the gradients and each state tensor, and writes the
    parameters and the state, as the step does, in flat buffers of the same
    dtypes; it has ``step()`` and ``param_groups`` so that it is timed as an
    implementation is, in the same rounds.
    """

    def __init__(self, workload: Workload, state_tensors: int, device: torch.device) -> None:
        n, kind = workload.parameters, {"dtype": workload.dtype, "device": device}
        self.buffers = [torch.zeros(n, **kind), torch.full((n,), 1e-3, **kind)]
        self.buffers += [
            torch.zeros(n, dtype=workload.state_dtype or workload.dtype, device=device)
            for _ in range(state_tensors)
        ]
        self.param_groups = [{"params": self.buffers[:1]}]
        self.state: dict[Any, Any] = {}
        self.kernel = torch.compile(_stream, fullgraph=True, dynamic=True, options=_COMPILE_OPTIONS)

    def step(self) -> None:
        self.kernel(*self.buffers)


def _make(
    algorithm: Algorithm, implementation: str, workload: Workload, device: torch.device, seed: int
) -> torch.optim.Optimizer | StreamingProbe | None:
    if implementation == PROBE:
        return StreamingProbe(workload, algorithm.state_tensors, device)
    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in workload.shapes:
        p = torch.randn(shape, generator=generator).to(device, workload.dtype).requires_grad_()
        p.grad = (torch.randn(shape, generator=generator) * 1e-2).to(device, workload.dtype)
        params.append(p)
    if implementation == PEERS["deepspeed"][0]:
        return _deepspeed_adam(algorithm, params) if device.type == "cpu" else None
    library, flags = IMPLEMENTATIONS[implementation]
    if library == "descentlab":  # every descentlab optimizer has both paths: an error here is a bug
        extra = {} if workload.state_dtype is None else {"state_dtype": workload.state_dtype}
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
) -> Report:
    """Measure every (workload, algorithm, implementation); implementations take turns.

    ``peers`` are implementation names from :data:`PEERS` (see :func:`check_peers`),
    measured alongside for the algorithms they implement. ``progress`` shows
    the probe and each workload as a phase.
    """

    def say(phase: str, done: int, total: int, detail: str) -> None:
        if progress is not None:
            progress.update(phase, done, total, detail)

    say("probe", 0, 1, "the memory's streaming bandwidth, a += b over 2 x 256 MB")
    report = Report(machine_info(device), bandwidth_probe(device), steps=steps, rounds=rounds)
    say("probe", 1, 1, f"streaming bandwidth {report.probe_gb_per_s:.1f} GB/s")
    total = len(algorithms) * (rounds + 1)
    for workload in workloads:
        done = 0
        for algorithm in algorithms:
            say(workload.name, done, total, f"{algorithm.name}: first steps, including compiles")
            optimizers: dict[str, Any] = {}
            first: dict[str, float] = {}
            for implementation in [*IMPLEMENTATIONS, *peers, PROBE]:
                opt = _make(algorithm, implementation, workload, device, seed)
                if opt is None:
                    continue
                _sync(device)
                start = time.perf_counter()
                try:
                    opt.step()
                except Exception as err:  # only the probe may fail: the shares then use a += b
                    if implementation != PROBE:
                        raise
                    say(f"the streaming probe could not be compiled here ({type(err).__name__}); "
                        "shares are of the a += b probe")  # fmt: skip
                    continue
                _sync(device)
                first[implementation] = (time.perf_counter() - start) * 1e3
                optimizers[implementation] = opt
            times: dict[str, list[float]] = {name: [] for name in optimizers}
            for round_ in range(rounds):
                done += 1
                say(workload.name, done, total, f"{algorithm.name}: round {round_ + 1}/{rounds}")
                for implementation, opt in optimizers.items():
                    opt.step()  # warm
                    for _ in range(steps):
                        _sync(device)
                        start = time.perf_counter()
                        opt.step()
                        _sync(device)
                        times[implementation].append((time.perf_counter() - start) * 1e3)
            rows = []
            for implementation, opt in optimizers.items():
                element = next(p.element_size() for g in opt.param_groups for p in g["params"])
                # the probe moves state of the dtype descentlab keeps; an optimizer, of the dtype it keeps
                kept = (
                    (workload.state_dtype or workload.dtype).itemsize
                    if implementation == PROBE
                    else _state_element_size(opt)
                )
                moved = algorithm.bytes_per_element(element, kept) * workload.parameters
                ms = statistics.median(times[implementation])
                gbs = moved / ms / 1e6
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
                        gb_per_s=gbs,
                        percent_of_probe=0.0,
                        extra_peak_bytes=step_peak_memory(opt),
                        state_bytes_per_param=None
                        if implementation == PROBE
                        else state_bytes(opt) / workload.parameters,
                    )
                )
            optimizers.clear()
            probe = next((r.gb_per_s for r in rows if r.implementation == PROBE), report.probe_gb_per_s)
            for r in rows:
                r.probe_gb_per_s = probe
                r.percent_of_probe = 100 * r.gb_per_s / probe
            best = min((r.ms_per_step for r in rows if r.implementation.startswith("torch")), default=None)
            for r in rows:
                r.ratio_to_torch_best = None if best is None else best / r.ms_per_step
            report.measurements.extend(rows)
            done += 1
            detail = f"{algorithm.name} measured"
            if done == total:  # the phase's line off a terminal says what the phase did
                n = len(algorithms)
                detail = f"{n} optimizer{'s' * (n > 1)}, {rounds} rounds of {steps} steps"
            say(workload.name, done, total, detail)
    return report


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
    head = (
        f"{'workload':<12} {'optimizer':<9} {'implementation':<22} {'ms/step':>8} {'Mparam/s':>9} "
        f"{'GB/s':>6} {'%probe':>6} {'x torch':>7} {'1st step':>9} {'extra peak':>10}"
    )
    lines = [head, "-" * len(head)]
    for m in report.measurements:
        ratio = "-" if m.ratio_to_torch_best is None else f"{m.ratio_to_torch_best:.2f}"
        lines.append(
            f"{m.workload:<12} {m.algorithm:<9} {m.implementation:<22} {m.ms_per_step:8.2f} "
            f"{m.parameters / m.ms_per_step / 1e3:9.0f} {m.gb_per_s:6.1f} {m.percent_of_probe:6.0f} "
            f"{ratio:>7} {m.ms_first_step / 1e3:8.2f}s {_bytes(m.extra_peak_bytes):>10}"
        )
    machine = report.machine
    lines.append(
        f"%probe: share of the {PROBE} (the step's bytes, one add per element) timed beside it; "
        f"probe (a += b, 2 x 256 MB): {report.probe_gb_per_s:.1f} GB/s on {machine['processor']}, "
        f"{machine['cpu_count']} cores, torch {machine['torch']} ({machine['device']})"
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


def _targets(rows: dict[tuple[str, str], dict[str, dict[str, Any]]]) -> list[str]:
    """The fast path's rows against :data:`TARGETS`, as Markdown table lines."""
    lines = [
        "| workload | optimizer | x torch's fastest | target | % of probe | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for (workload, algorithm), found in rows.items():
        m = found.get("descentlab fast")
        if m is None or workload not in TARGETS:
            continue
        ratios, probe = TARGETS[workload]
        want = None if ratios is None else ratios.get(algorithm, ratios["*"])
        ratio = m.get("ratio_to_torch_best")
        met = (want is None or (ratio is not None and ratio >= want)) and (
            probe is None or m["percent_of_probe"] >= probe
        )
        lines.append(
            f"| {workload} | {_NAMES.get(algorithm, algorithm)} | "
            f"{'n/a' if ratio is None else f'{ratio:.2f}'} | {'-' if want is None else f'>= {want:g}'} | "
            f"{m['percent_of_probe']:.0f} | {'-' if probe is None else f'>= {probe:g}'} | "
            f"{'yes' if met else 'no'} |"
        )
    return lines


_NAMES = {"sgd": "SGD momentum", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW"}


def markdown(data: dict[str, Any]) -> str:
    """A bench JSON file's content (as :meth:`Report.to_json` wrote it) as the benchmarks page's table.

    One row per workload and optimizer, one column per implementation measured,
    in milliseconds per step; descentlab's fast path also as a ratio to torch's
    fastest path and a share of the probe. Every figure comes from ``data``.
    """
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    order: list[str] = []
    for m in data["measurements"]:
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
    lines = [
        f"One run of `descentlab bench` on {machine['processor']}, {machine['cpu_count']} cores "
        f"({machine['torch_threads']} threads), torch {machine['torch']}, device {machine['device']}, "
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
            cell = f"{m['ms_per_step']:.1f}"
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
    lines += ["", "Against the targets (descentlab's fast path):", "", *_targets(rows)]
    return "\n".join(lines)
