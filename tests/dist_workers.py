"""The multi-process tests' shared model, data and worker functions.

A module of its own because processes that ``torch.multiprocessing`` spawns
import their function by name (``tests/`` is on their path). Every run is
float64 and deterministic: the model's weights and each step's global batch
come from fixed seeds, and rank r of w trains on its 1/w of the global batch,
so DDP's averaged gradient is the single-process gradient of the whole batch.
"""

from __future__ import annotations

import copy
import gc
from itertools import product
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

from descentlab.optim import OPTIMIZERS

HYPER: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.05, "momentum": 0.9},
    "adagrad": {"lr": 0.1},
    "rmsprop": {"lr": 0.01, "momentum": 0.5},
    "adam": {"lr": 0.01},
    "adamw": {"lr": 0.01, "weight_decay": 0.1},
}
GLOBAL_BATCH = 8


def model() -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    return net


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(GLOBAL_BATCH, 5, generator=g, dtype=torch.float64)
    return x, torch.randn(GLOBAL_BATCH, 2, generator=g, dtype=torch.float64)


def train(net: torch.nn.Module, opt: Any, steps: range, rank: int = 0, world: int = 1) -> None:
    n = GLOBAL_BATCH // world
    for t in steps:
        x, y = batch(t)
        opt.zero_grad()
        torch.nn.functional.mse_loss(
            net(x[rank * n : (rank + 1) * n]), y[rank * n : (rank + 1) * n]
        ).backward()
        opt.step()


def reference(name: str, steps: int) -> list[torch.Tensor]:
    """Single-process training on the whole global batch (the per-tensor path)."""
    net = model()
    train(net, OPTIMIZERS[name](net.parameters(), **HYPER[name], foreach=False), range(steps))
    return [p.detach().clone() for p in net.parameters()]


def _setup(rank: int, world: int, init: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)


# Each run's DDP model lives in a function of its own, so that it is freed while the
# process group is still alive. Freed after destroy_process_group, the model's
# reducer holds the last reference to the group, whose destructor (run with the
# GIL held) joins a gloo thread that waits for the GIL: the worker hangs for good.


def _ddp_run(name: str, fast: bool, bucket_view: bool, rank: int, world: int):
    net = DistributedDataParallel(model(), gradient_as_bucket_view=bucket_view)
    opt = OPTIMIZERS[name](net.parameters(), **HYPER[name], foreach=fast)
    train(net, opt, range(6), rank, world)
    return [p.detach().clone() for p in net.module.parameters()], opt.implementation()


def ddp_worker(rank: int, world: int, init: str, out: str) -> None:
    """Every optimizer, both paths, with and without DDP's gradient_as_bucket_view."""
    _setup(rank, world, init)
    try:
        results = {}
        for name in OPTIMIZERS:
            for fast in (True, False):
                for bucket_view in (False, True):
                    results[(name, fast, bucket_view)] = _ddp_run(name, fast, bucket_view, rank, world)
        if rank == 0:
            torch.save(results, out)
    finally:
        gc.collect()  # any DDP model in a reference cycle goes while the group is alive
        dist.destroy_process_group()


def zero_worker(rank: int, world: int, init: str, out: str) -> None:
    """ZeroRedundancyOptimizer over each optimizer: train, consolidate, resume on every rank."""
    _setup(rank, world, init)
    try:
        results = {
            name_fast: _zero_run(*name_fast, rank, world) for name_fast in product(OPTIMIZERS, (True, False))
        }
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, results)
        if rank == 0:
            torch.save(gathered, out)
    finally:
        gc.collect()
        dist.destroy_process_group()


def _zero_run(name: str, fast: bool, rank: int, world: int):
    """One optimizer under ZeroRedundancyOptimizer: train, consolidate, resume on every rank."""
    kwargs = {**HYPER[name], "foreach": fast}
    net = DistributedDataParallel(model())
    zero = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=OPTIMIZERS[name], **kwargs)
    train(net, zero, range(3), rank, world)
    zero.consolidate_state_dict(to=0)
    # state_dict() holds the live state tensors: copy before training on
    saved = [copy.deepcopy(zero.state_dict()) if rank == 0 else None]
    dist.broadcast_object_list(saved, src=0)
    snapshot = [p.detach().clone() for p in net.module.parameters()]
    owns_state = len(zero.optim.state) > 0  # this rank's shard holds state
    train(net, zero, range(3, 6), rank, world)

    resumed = DistributedDataParallel(model())
    with torch.no_grad():
        for p, q in zip(resumed.module.parameters(), snapshot, strict=True):
            p.copy_(q)
    zero2 = ZeroRedundancyOptimizer(resumed.parameters(), optimizer_class=OPTIMIZERS[name], **kwargs)
    zero2.load_state_dict(saved[0])
    train(resumed, zero2, range(3, 6), rank, world)
    return (
        [p.detach().clone() for p in net.module.parameters()],
        [p.detach().clone() for p in resumed.module.parameters()],
        sum(len(g["params"]) for g in zero.optim.param_groups),
        owns_state,
    )
