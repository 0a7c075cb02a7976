"""How long an optimizer step takes on FSDP2's DTensor parameters: descentlab's paths and torch.optim's.

A benchmark, not a test: it prints the median step time of each form. Run it with

    python benchmarks/fsdp_step.py --optimizer adam --steps 8

(``--optimizer all`` for every optimizer; ``--out FILE`` keeps the timings as
JSON, which the documentation renders: benchmarks/fsdp-step.json.)

It shards the bench's transformer workload (15.8M parameters in 60 tensors) with
``fully_shard`` on one gloo process (so each parameter is a DTensor holding all
of it) and times ``step()`` alone, with fixed gradients, in rounds that take
each form in turn (the host's speed drifts; compare within a round). The forms:
descentlab with the fast path's kernels on the shards (the default for groups
of 2**20 elements or more) with float32, bfloat16 and 8-bit state; descentlab's
per-tensor path (``foreach=False``: eager DTensor operations), also with 8-bit state; torch.optim's
default (``foreach``) and, where torch has a DTensor rule for it, ``fused=True``;
then bfloat16 parameters rounded back stochastically, on both of descentlab's
paths, beside torch.optim's fused step on them.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from descentlab import bench
from descentlab.optim import OPTIMIZERS

TORCH = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW"}


def main(argv: list[str] | None = None) -> None:
    parser = bench.forms_parser(__doc__.splitlines()[0], rounds=3, steps=8)
    parser.add_argument(
        "--optimizer",
        default="adam",
        help=f"comma-separated, of {', '.join(sorted(OPTIMIZERS))}, or all (default adam)",
    )
    args = bench.forms_check(parser, parser.parse_args(argv))
    names = sorted(OPTIMIZERS) if args.optimizer == "all" else args.optimizer.split(",")
    unknown = [n for n in names if n not in OPTIMIZERS]
    if unknown or len(set(names)) != len(names):
        parser.error(
            f"--optimizer: {args.optimizer!r}; give each of {', '.join(sorted(OPTIMIZERS))} once, or all"
        )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group("gloo", init_method=f"file://{Path(tmp) / 'init'}", rank=0, world_size=1)
        try:
            n = sum(p.numel() for p in sharded_model(scale=args.scale).parameters())
            title = f"A step on {n / 1e6:.1f}M parameters in 60 tensors, FSDP2 on one gloo process"
            print(f"{title}:")
            for name in names:
                rows += measure(name, args.scale, args.rounds, args.steps)
        finally:
            dist.destroy_process_group()
    bench.keep_forms(args, "benchmarks/fsdp_step.py", argv, title, rows)


def measure(name: str, scale: float, rounds: int, steps: int) -> list[dict[str, Any]]:
    """Time every form of optimizer ``name``; print and return one row per form."""
    hyper = {"lr": 1e-3, **({"momentum": 0.9} if name in ("sgd", "rmsprop") else {})}
    ours, theirs = OPTIMIZERS[name], getattr(torch.optim, TORCH[name])
    rounded = {"stochastic_rounding": True, "state_dtype": torch.float32}
    f32, bf16 = torch.float32, torch.bfloat16
    # form -> (the parameters' dtype, the optimizer on them)
    forms: dict[str, tuple[torch.dtype, Callable[[list[torch.Tensor]], torch.optim.Optimizer]]] = {
        "descentlab, fast, float32 state": (f32, lambda ps: ours(ps, **hyper, foreach=True)),
        "descentlab, fast, bfloat16 state": (
            f32,
            lambda ps: ours(ps, **hyper, foreach=True, lean_state="bfloat16"),
        ),
        "descentlab, fast, 8-bit state": (f32, lambda ps: ours(ps, **hyper, foreach=True, lean_state="8bit")),
        "descentlab, per-tensor (foreach=False)": (f32, lambda ps: ours(ps, **hyper, foreach=False)),
        "descentlab, per-tensor (foreach=False), 8-bit state": (
            f32,
            lambda ps: ours(ps, **hyper, foreach=False, lean_state="8bit"),
        ),
        "torch.optim, default (foreach)": (f32, lambda ps: theirs(ps, **hyper)),
        "torch.optim, fused=True": (f32, lambda ps: theirs(ps, **hyper, fused=True)),
        "bfloat16 parameters, descentlab, fast, stochastic rounding, float32 state": (
            bf16,
            lambda ps: ours(ps, **hyper, foreach=True, **rounded),
        ),
        "bfloat16 parameters, descentlab, per-tensor, stochastic rounding, float32 state": (
            bf16,
            lambda ps: ours(ps, **hyper, foreach=False, **rounded),
        ),
        "bfloat16 parameters, torch.optim, fused=True (bfloat16 state, plain rounding)": (
            bf16,
            lambda ps: theirs(ps, **hyper, fused=True),
        ),
    }
    runs, failed = {}, {}
    for form, (dtype, make) in forms.items():
        model = sharded_model(dtype, scale)
        try:
            opt = make(list(model.parameters()))
            for _ in range(3):  # state made, kernels compiled
                opt.step()
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as err:
            failed[form] = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:100]}"
            continue
        runs[form] = (model, opt)
    times = bench.time_forms({form: opt.step for form, (_, opt) in runs.items()}, rounds, steps)
    rows = []
    print(f"{name}:")
    for form in forms:
        if form in runs:
            opt = runs[form][1]
            note = opt.implementation()[0] if hasattr(opt, "implementation") else ""
            every = [ms for r in times[form] for ms in r]
            print(f"  {form}: {statistics.median(every):.1f} ms per step" + (f"  [{note}]" if note else ""))
            rows.append({"group": TORCH[name], "form": form, "round_ms": times[form], "note": note})
        else:
            print(f"  {form}: does not run ({failed[form]})")
            rows.append({"group": TORCH[name], "form": form, "round_ms": None, "note": failed[form]})
    return rows


def sharded_model(dtype: torch.dtype = torch.float32, scale: float = 1.0) -> torch.nn.Module:
    """The transformer workload's tensors in ``dtype``, fully_shard-ed, each with a fixed gradient."""
    generator = torch.Generator().manual_seed(0)
    shapes = bench.WORKLOADS["transformer"].scaled(scale).shapes
    model = torch.nn.ParameterList(
        [torch.nn.Parameter(torch.randn(s, generator=generator, dtype=dtype)) for s in shapes]
    )
    fully_shard(model)
    for p in model.parameters():
        local = torch.randn(p.to_local().shape, generator=generator, dtype=dtype) * 1e-2
        p.grad = DTensor.from_local(local, p.device_mesh, p.placements)
    return model


if __name__ == "__main__":
    main()
