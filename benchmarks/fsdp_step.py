"""How long an optimizer step takes on FSDP2's DTensor parameters, by the form of the state.

A benchmark, not a test: it prints the median step time for each ``lean_state``
(None: float32 state). Run it with

    python benchmarks/fsdp_step.py --optimizer adam --steps 8

It shards the bench's transformer workload (15.8M parameters in 60 tensors) with
``fully_shard`` on one gloo process (so each parameter is a DTensor holding all
of it) and times ``step()`` alone, with fixed gradients. DTensor parameters
take the per-tensor path; with bfloat16 state each shard is updated by the fast
path's compiled kernel in place (see docs/lean-state.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from descentlab import bench
from descentlab.optim import OPTIMIZERS
from descentlab.optim._flat import FastPathWarning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS))
    parser.add_argument("--steps", type=int, default=8, help="timed steps per form (default 8)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FastPathWarning)  # DTensors leave the flat buffers: known
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group("gloo", init_method=f"file://{Path(tmp) / 'init'}", rank=0, world_size=1)
        try:
            generator = torch.Generator().manual_seed(0)
            shapes = bench.WORKLOADS["transformer"].shapes
            model = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.randn(s, generator=generator)) for s in shapes]
            )
            fully_shard(model)
            for p in model.parameters():
                local = torch.randn(p.to_local().shape, generator=generator) * 1e-2
                p.grad = DTensor.from_local(local, p.device_mesh, p.placements)
            print(f"{args.optimizer}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters:")
            for kind in (None, "bfloat16"):
                opt = OPTIMIZERS[args.optimizer](model.parameters(), lr=1e-3, lean_state=kind)
                for _ in range(3):  # state made, kernels compiled
                    opt.step()
                times = []
                for _ in range(args.steps):
                    start = time.perf_counter()
                    opt.step()
                    times.append((time.perf_counter() - start) * 1e3)
                print(f"  lean_state={kind!r}: {statistics.median(times):.1f} ms per step")
        finally:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
