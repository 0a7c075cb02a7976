"""How long an optimizer step takes on FSDP2's DTensor parameters: descentlab's paths and torch.optim's.

A benchmark, not a test: it prints the median step time of each form. Run it with

    python benchmarks/fsdp_step.py --optimizer adam --steps 8

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

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from descentlab import bench
from descentlab.optim import OPTIMIZERS

TORCH = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS))
    parser.add_argument("--steps", type=int, default=8, help="timed steps per form and round (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the forms (default 3)")
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1:
        parser.error(f"--rounds and --steps must be at least 1; received {args.rounds} and {args.steps}")
    hyper = {"lr": 1e-3, **({"momentum": 0.9} if args.optimizer in ("sgd", "rmsprop") else {})}
    ours, theirs = OPTIMIZERS[args.optimizer], getattr(torch.optim, TORCH[args.optimizer])
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
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group("gloo", init_method=f"file://{Path(tmp) / 'init'}", rank=0, world_size=1)
        try:
            runs, failed = {}, {}
            for form, (dtype, make) in forms.items():
                model = sharded_model(dtype)
                try:
                    opt = make(list(model.parameters()))
                    for _ in range(3):  # state made, kernels compiled
                        opt.step()
                except (RuntimeError, NotImplementedError, TypeError, ValueError) as err:
                    failed[form] = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:100]}"
                    continue
                runs[form] = (model, opt)
            n = sum(p.numel() for p in sharded_model().parameters())
            print(f"{args.optimizer}, {n / 1e6:.1f}M parameters, FSDP2 on one gloo process:")
            times: dict[str, list[float]] = {form: [] for form in runs}
            for _ in range(args.rounds):
                for form, (_, opt) in runs.items():
                    for _ in range(args.steps):
                        start = time.perf_counter()
                        opt.step()
                        times[form].append((time.perf_counter() - start) * 1e3)
            for form, (_, opt) in runs.items():
                where = f"  [{opt.implementation()[0]}]" if hasattr(opt, "implementation") else ""
                print(f"  {form}: {statistics.median(times[form]):.1f} ms per step{where}")
            for form, why in failed.items():
                print(f"  {form}: does not run ({why})")
        finally:
            dist.destroy_process_group()


def sharded_model(dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The transformer workload's tensors in ``dtype``, fully_shard-ed, each with a fixed gradient."""
    generator = torch.Generator().manual_seed(0)
    shapes = bench.WORKLOADS["transformer"].shapes
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
