"""The multi-process tests' shared models, data and worker functions.

A module of its own because processes that ``torch.multiprocessing`` spawns
import their function by name (``tests/`` is on their path). Every run is
deterministic: the model's weights and each step's global batch come from
fixed seeds, and rank r of w trains on its 1/w of the global batch, so DDP's
averaged gradient is the single-process gradient of the whole batch (to
rounding: see :func:`train_as_ddp` for the exact one).

Two setups: float64 (:func:`model`, :func:`batch`), where DDP and ZeRO match
one process to 1e-12; and float32 with lean state (:func:`lean_model`,
:func:`lean_batch`), whose first weight has ``_lean.MIN_ELEMENTS`` elements.
"""

from __future__ import annotations

import copy
import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.distributed.tensor import DTensor, Shard, distribute_tensor
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
STEPS = 6
WORLD = 2
TIMEOUT = 600  # seconds; the workers take about a minute on two busy cores

Batch = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


def _seeded(net: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return net


def model() -> torch.nn.Module:
    return _seeded(
        torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2)).double()
    )


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(GLOBAL_BATCH, 5, generator=g, dtype=torch.float64)
    return x, torch.randn(GLOBAL_BATCH, 2, generator=g, dtype=torch.float64)


def lean_model() -> torch.nn.Module:
    """float32; the first weight (64 x 64 = 4096 elements) gets lean state, the three other parameters do not."""
    return _seeded(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2)))


def lean_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(GLOBAL_BATCH, 64, generator=g), torch.randn(GLOBAL_BATCH, 2, generator=g)


@dataclass(frozen=True)
class Setup:
    """What a run trains: a model and its data."""

    model: Callable[[], torch.nn.Module]
    batch: Batch


FLOAT64 = Setup(model, batch)
LEAN = Setup(lean_model, lean_batch)
LEAN_KINDS = ("bfloat16", "8bit")


def train(
    net: torch.nn.Module, opt: Any, steps: range, rank: int = 0, world: int = 1, data: Batch = batch
) -> None:
    n = GLOBAL_BATCH // world
    for t in steps:
        x, y = data(t)
        opt.zero_grad()
        torch.nn.functional.mse_loss(
            net(x[rank * n : (rank + 1) * n]), y[rank * n : (rank + 1) * n]
        ).backward()
        opt.step()


def train_as_ddp(net: torch.nn.Module, opt: Any, steps: range, world: int, data: Batch) -> None:
    """One process, with the gradient that DDP gives: each rank's share backpropagated, summed, averaged.

    For two ranks this is DDP's gradient bit for bit: a sum of two terms does not
    depend on their order, and halving is exact, before or after the sum. The
    whole batch's gradient (:func:`train`) differs from it in the last bits.
    """
    n = GLOBAL_BATCH // world
    for t in steps:
        x, y = data(t)
        opt.zero_grad()
        for r in range(world):
            torch.nn.functional.mse_loss(net(x[r * n : (r + 1) * n]), y[r * n : (r + 1) * n]).backward()
        for p in net.parameters():
            p.grad.div_(world)
        opt.step()


def reference(name: str, steps: int) -> list[torch.Tensor]:
    """Single-process training on the whole global batch (the per-tensor path)."""
    net = model()
    train(net, OPTIMIZERS[name](net.parameters(), **HYPER[name], foreach=False), range(steps))
    return _params(net)


def forms(
    state: Any, params: list[torch.Tensor]
) -> list[dict[str, tuple[torch.dtype, tuple[int, ...]]] | None]:
    """Each parameter's state as {name: (dtype, shape)}; None where there is none (another rank's shard)."""
    return [
        {k: (v.dtype, tuple(v.shape)) for k, v in state[p].items()} if state.get(p) else None for p in params
    ]


def _params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def spawn(worker: Callable[..., None], directory: Path) -> Any:
    """Run ``worker(rank, WORLD, init_file, results_file)`` in WORLD processes; what rank 0 saved."""
    out = directory / "results.pt"
    context = mp.spawn(worker, args=(WORLD, str(directory / "init"), str(out)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIMEOUT
    # A hung worker (a deadlock in torch.distributed) fails the tests instead of hanging CI.
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{worker.__name__}: the workers did not finish in {TIMEOUT} s")
    return torch.load(out, weights_only=False)


def _setup(rank: int, world: int, init: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)


def _save_gathered(results: Any, rank: int, world: int, out: str) -> None:
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, results)
    if rank == 0:
        torch.save(gathered, out)


# Each run's DDP model lives in a function of its own, so that it is freed while the
# process group is still alive. Freed after destroy_process_group, the model's
# reducer holds the last reference to the group, whose destructor (run with the
# GIL held) joins a gloo thread that waits for the GIL: the worker hangs for good.


def _ddp_run(
    name: str, kwargs: dict[str, Any], bucket_view: bool, rank: int, world: int, setup: Setup = FLOAT64
) -> dict[str, Any]:
    net = DistributedDataParallel(setup.model(), gradient_as_bucket_view=bucket_view)
    opt = OPTIMIZERS[name](net.parameters(), **HYPER[name], **kwargs)
    train(net, opt, range(STEPS), rank, world, setup.batch)
    return {
        "params": _params(net.module),
        "implementation": opt.implementation(),
        "forms": forms(opt.state, list(net.module.parameters())),
    }


def ddp_worker(rank: int, world: int, init: str, out: str) -> None:
    """Every optimizer, both paths, with and without DDP's gradient_as_bucket_view."""
    _setup(rank, world, init)
    try:
        results = {}
        for name in OPTIMIZERS:
            for fast in (True, False):
                for bucket_view in (False, True):
                    run = _ddp_run(name, {"foreach": fast}, bucket_view, rank, world)
                    results[(name, fast, bucket_view)] = run
        if rank == 0:
            torch.save(results, out)
    finally:
        gc.collect()  # any DDP model in a reference cycle goes while the group is alive
        dist.destroy_process_group()


def zero_worker(rank: int, world: int, init: str, out: str) -> None:
    """ZeroRedundancyOptimizer over each optimizer: train, consolidate, resume on every rank."""
    _setup(rank, world, init)
    try:
        results = {(name, fast): _zero_run(name, {"foreach": fast}, rank, world) for name, fast in
                   product(OPTIMIZERS, (True, False))}  # fmt: skip
        results.update({("groups", fast): _zero_groups_run(fast, rank, world) for fast in (True, False)})
        _save_gathered(results, rank, world, out)
    finally:
        gc.collect()
        dist.destroy_process_group()


def decay_groups(net: torch.nn.Module) -> list[dict[str, Any]]:
    """The usual split: weights with weight decay, biases without (under ZeRO, one rank's share of a
    group may be empty)."""
    named = list(net.named_parameters())
    return [
        {"params": [p for n, p in named if n.endswith("weight")], "weight_decay": 0.1},
        {"params": [p for n, p in named if n.endswith("bias")], "weight_decay": 0.0},
    ]


def grouped_reference(steps: int) -> list[torch.Tensor]:
    """AdamW with :func:`decay_groups` in one process, on the whole global batch (the per-tensor path)."""
    net = model()
    train(net, OPTIMIZERS["adamw"](decay_groups(net), lr=0.01, foreach=False), range(steps))
    return _params(net)


def _zero_groups_run(fast: bool, rank: int, world: int) -> dict[str, Any]:
    """AdamW with weight-decay groups under ZeroRedundancyOptimizer."""
    net = DistributedDataParallel(model())
    zero = ZeroRedundancyOptimizer(
        decay_groups(net.module), optimizer_class=OPTIMIZERS["adamw"], lr=0.01, foreach=fast
    )
    train(net, zero, range(STEPS), rank, world, batch)
    return {"params": _params(net.module), "local": [len(g["params"]) for g in zero.optim.param_groups]}


def _zero_run(
    name: str, kwargs: dict[str, Any], rank: int, world: int, setup: Setup = FLOAT64
) -> dict[str, Any]:
    """One optimizer under ZeroRedundancyOptimizer: train, consolidate, resume; the state's form at each point."""
    kwargs = {**HYPER[name], **kwargs}
    half = STEPS // 2
    net = DistributedDataParallel(setup.model())
    zero = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=OPTIMIZERS[name], **kwargs)
    train(net, zero, range(half), rank, world, setup.batch)
    zero.consolidate_state_dict(to=0)
    # state_dict() holds the live state tensors: copy before training on
    saved = [copy.deepcopy(zero.state_dict()) if rank == 0 else None]
    dist.broadcast_object_list(saved, src=0)
    snapshot = _params(net.module)
    # (before load_state_dict, which sets the entries of other ranks' parameters to None)
    consolidated = forms(saved[0]["state"], list(range(len(snapshot))))
    train(net, zero, range(half, STEPS), rank, world, setup.batch)

    resumed = DistributedDataParallel(setup.model())
    with torch.no_grad():
        for p, q in zip(resumed.module.parameters(), snapshot, strict=True):
            p.copy_(q)
    zero2 = ZeroRedundancyOptimizer(resumed.parameters(), optimizer_class=OPTIMIZERS[name], **kwargs)
    # a copy: ZeRO's load_state_dict keeps the given CPU tensors as the state, which the steps change
    zero2.load_state_dict(copy.deepcopy(saved[0]))
    loaded = forms(zero2.optim.state, list(resumed.module.parameters()))
    train(resumed, zero2, range(half, STEPS), rank, world, setup.batch)

    # Back to the checkpoint in the optimizer that has gone on since (its buckets built):
    # ZeRO's load_state_dict writes the local optimizer's state entries directly.
    trained = _params(net.module)
    with torch.no_grad():
        for p, q in zip(net.module.parameters(), snapshot, strict=True):
            p.copy_(q)
    zero.load_state_dict(copy.deepcopy(saved[0]))
    train(net, zero, range(half, STEPS), rank, world, setup.batch)
    return {
        "trained": trained,
        "rolled back": _params(net.module),
        "resumed": _params(resumed.module),
        "shard": sum(len(g["params"]) for g in zero.optim.param_groups),
        "forms": forms(zero.optim.state, list(net.module.parameters())),
        "consolidated": consolidated,
        "loaded": loaded,
        "resumed forms": forms(zero2.optim.state, list(resumed.module.parameters())),
    }


# -- lean state ------------------------------------------------------------------------
#
# One spawn runs DDP, ZeRO and a distributed checkpoint with lean state, so that each
# process compiles the fast path's lean kernels once; the single-process references
# run on rank 0 for the same reason (one process's training, no DDP, no collective:
# only the compiled kernels are shared).


def _round_trip(
    fresh: Callable[[], tuple[Any, Any]],
    params_of: Callable[[Any], list[torch.Tensor]],
    forms_of: Callable[[Any, list[torch.Tensor]], Any],
    rank: int,
    world: int,
    checkpoint: str,
) -> dict[str, Any]:
    """Train a fresh (model, optimizer) half the steps, save a distributed checkpoint and train on; load
    it into fresh ones and train those on too. Both pairs, whether each loaded state is as saved, and its form."""
    half = STEPS // 2
    net, opt = fresh()
    train(net, opt, range(half), rank, world, lean_batch)
    model_state, optim_state = get_state_dict(net, opt)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=checkpoint)
    saved = [copy.deepcopy(opt.state[p]) for p in params_of(net)]
    train(net, opt, range(half, STEPS), rank, world, lean_batch)

    net2, opt2 = fresh()
    model_state, optim_state = get_state_dict(net2, opt2)
    loaded = {"model": model_state, "optim": optim_state}
    dcp.load(loaded, checkpoint_id=checkpoint)
    set_state_dict(net2, opt2, model_state_dict=loaded["model"], optim_state_dict=loaded["optim"])
    params2 = params_of(net2)
    restored = [
        sorted(s) == sorted(opt2.state[p]) and all(torch.equal(v, opt2.state[p][k]) for k, v in s.items())
        for s, p in zip(saved, params2, strict=True)
    ]
    loaded_forms = forms_of(opt2.state, params2)
    train(net2, opt2, range(half, STEPS), rank, world, lean_batch)
    return {"trained": (net, opt), "resumed": (net2, opt2), "restored": restored, "loaded": loaded_forms}


def _dcp_run(name: str, kwargs: dict[str, Any], rank: int, world: int, checkpoint: str) -> dict[str, Any]:
    """DDP with a distributed checkpoint of model and optimizer: save, load into fresh ones, resume."""

    def fresh() -> tuple[Any, Any]:
        net = DistributedDataParallel(lean_model())
        return net, OPTIMIZERS[name](net.parameters(), **HYPER[name], **kwargs)

    run = _round_trip(fresh, lambda net: list(net.module.parameters()), forms, rank, world, checkpoint)
    return {"trained": _params(run["trained"][0].module), "resumed": _params(run["resumed"][0].module),
            "restored": run["restored"], "loaded": run["loaded"]}  # fmt: skip


def _lean_reference(name: str, kwargs: dict[str, Any], world: int) -> dict[str, Any]:
    """Single-process runs, on the whole batch and with DDP's gradient (see :func:`train_as_ddp`)."""
    out = {}
    for label in ("whole batch", "ddp gradient"):
        net = lean_model()
        opt = OPTIMIZERS[name](net.parameters(), **HYPER[name], **kwargs)
        if label == "whole batch":
            train(net, opt, range(STEPS), data=lean_batch)
        else:
            train_as_ddp(net, opt, range(STEPS), world, lean_batch)
        out[label] = _params(net)
        out[f"{label} forms"] = forms(opt.state, list(net.parameters()))
    return out


def _dtensor_run(world: int) -> dict[str, Any]:
    """8-bit state and DTensor parameters whose shards cannot keep it: refused; small ones: full precision.

    (3, 2048) cut in rows of 2 and 1 gives the ranks blocks 0-16 and 16-24,
    while the scales cut alike would go 0-12 and 12-24; Shard(1) cuts the
    tensor's row-major order into pieces that are not runs of whole blocks.
    """
    mesh = init_device_mesh("cpu", (world,))
    uneven = torch.nn.Parameter(distribute_tensor(torch.ones(3, 2048), mesh, [Shard(0)]))
    columns = torch.nn.Parameter(distribute_tensor(torch.ones(64, 64), mesh, [Shard(1)]))
    small = torch.nn.Parameter(distribute_tensor(torch.ones(64), mesh, [Shard(0)]))
    out: dict[str, Any] = {"local elements": columns.to_local().numel()}
    for label, large in (("uneven", uneven), ("columns", columns)):
        try:
            OPTIMIZERS["adam"]([small, large], lr=0.01, lean_state="8bit")
        except ValueError as err:
            out[label] = str(err)
    opt = OPTIMIZERS["adam"]([small], lr=0.01, lean_state="8bit")
    small.grad = distribute_tensor(torch.full((64,), 0.5), mesh, [Shard(0)])
    opt.step()
    out["small"] = {k: (type(v).__name__, v.dtype) for k, v in opt.state[small].items()}
    out.update(_switched_to_8bit(mesh, columns))
    return out


def _switched_to_8bit(mesh: Any, columns: torch.nn.Parameter) -> dict[str, Any]:
    """lean_state="8bit" set on a group (then a step, or a load) that holds ``columns``: refused, nothing changed."""
    out: dict[str, Any] = {}
    for fast in (True, False):
        plain = torch.nn.Parameter(torch.ones(64, 64))  # takes 8-bit state: it would be stepped first
        opt = OPTIMIZERS["adam"]([plain, columns], lr=0.01, foreach=fast)
        for p in (plain, columns):
            p.grad = torch.full_like(p, 0.5)
        opt.step()
        saved = copy.deepcopy(opt.state_dict())
        values = [_local(p).detach().clone() for p in (plain, columns)]
        opt.param_groups[0]["lean_state"] = "8bit"
        errors = []
        for act, arguments in ((opt.step, ()), (opt.load_state_dict, (saved,))):
            try:
                act(*arguments)
                errors.append(None)
            except ValueError as err:
                errors.append(str(err))
        out[f"switched {fast}"] = {
            "errors": errors,
            "unchanged": all(map(torch.equal, values, (_local(p) for p in (plain, columns))))
            and _same_state(saved["state"], opt.state_dict()["state"]),
        }
    return out


def _same_state(a: dict[Any, Any], b: dict[Any, Any]) -> bool:
    return a.keys() == b.keys() and all(
        a[i].keys() == b[i].keys() and all(torch.equal(_local(a[i][k]), _local(b[i][k])) for k in a[i])
        for i in a
    )


def _local_forms(state: Any, params: list[torch.Tensor]) -> list[dict[str, tuple[str, torch.dtype, Any]]]:
    """Each parameter's state on this rank as {name: (type, dtype, shape of this rank's part)}."""

    def form(v: torch.Tensor) -> tuple[str, torch.dtype, Any]:
        local = v.to_local() if isinstance(v, DTensor) else v
        return type(v).__name__, v.dtype, tuple(local.shape)

    return [{k: form(v) for k, v in state[p].items()} for p in params]


def _zero_switch_run(rank: int, world: int) -> dict[str, Any]:
    """A full-precision ZeRO checkpoint loaded into ZeRO with ``lean_state="8bit"``, as it is and with the
    checkpoint's groups set to 8-bit first: the state's form after a step, on this rank, each way."""
    net = DistributedDataParallel(lean_model())
    full = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=OPTIMIZERS["adam"], lr=0.01)
    train(net, full, range(2), rank, world, lean_batch)
    full.consolidate_state_dict(to=0)
    saved = [copy.deepcopy(full.state_dict()) if rank == 0 else None]
    dist.broadcast_object_list(saved, src=0)
    out = {}
    for label in ("as saved", "groups set to 8bit"):
        checkpoint = copy.deepcopy(saved[0])
        if label != "as saved":
            for group in checkpoint["param_groups"]:
                group["lean_state"] = "8bit"
        zero = ZeroRedundancyOptimizer(
            net.parameters(), optimizer_class=OPTIMIZERS["adam"], lr=0.01, lean_state="8bit"
        )
        zero.load_state_dict(checkpoint)
        train(net, zero, range(2, 3), rank, world, lean_batch)
        out[label] = forms(zero.optim.state, list(net.module.parameters()))
    return out


def _fsdp_run(name: str, kwargs: dict[str, Any], rank: int, world: int, checkpoint: str) -> dict[str, Any]:
    """FSDP2 (``fully_shard``): train, distributed checkpoint, load into fresh ones, resume; one process beside."""

    def fresh() -> tuple[Any, Any]:
        net = fully_shard(lean_model())
        return net, OPTIMIZERS[name](net.parameters(), **HYPER[name], **kwargs)

    def gathered(net: torch.nn.Module) -> list[torch.Tensor]:
        return [p.full_tensor().detach().clone() for p in net.parameters()]

    run = _round_trip(fresh, lambda net: list(net.parameters()), _local_forms, rank, world, checkpoint)
    (net, opt), (net2, _) = run["trained"], run["resumed"]
    # One process on the path FSDP2's shards take: the fast path's kernels, or the per-tensor path.
    one = lean_model()
    train_as_ddp(
        one, OPTIMIZERS[name](one.parameters(), **HYPER[name], **kwargs), range(STEPS), world, lean_batch
    )
    return {"trained": gathered(net), "resumed": gathered(net2), "restored": run["restored"],
            "forms": _local_forms(opt.state, list(net.parameters())), "loaded": run["loaded"],
            "implementation": opt.implementation(), "one process": _params(one)}  # fmt: skip


def _fsdp_full_state_dict_run(rank: int, world: int) -> dict[str, Any]:
    """FSDP2 with 8-bit Adam: the full (unsharded) state dict, and it set into a fresh model and optimizer."""
    full = StateDictOptions(full_state_dict=True)
    net = fully_shard(lean_model())
    opt = OPTIMIZERS["adam"](net.parameters(), lr=0.01, lean_state="8bit")
    train(net, opt, range(3), rank, world, lean_batch)
    model_state, optim_state = get_state_dict(net, opt, options=full)
    net2 = fully_shard(lean_model())
    opt2 = OPTIMIZERS["adam"](net2.parameters(), lr=0.01, lean_state="8bit")
    set_state_dict(net2, opt2, model_state_dict=model_state, optim_state_dict=optim_state, options=full)
    weight, weight2 = next(net.parameters()), next(net2.parameters())
    return {
        "full": {
            k: (type(v).__name__, v.dtype, tuple(v.shape))
            for k, v in optim_state["state"]["0.weight"].items()
        },
        "restored": sorted(opt.state[weight]) == sorted(opt2.state[weight2])
        and all(torch.equal(_local(v), _local(opt2.state[weight2][k])) for k, v in opt.state[weight].items()),
    }


def _local(v: Any) -> Any:
    return v.to_local() if isinstance(v, DTensor) else v


def _fsdp_rounding_run(rank: int, world: int) -> dict[str, Any]:
    """FSDP2 with bfloat16 parameters and ``stochastic_rounding=True``, replayed on each rank unsharded.

    The replay takes FSDP2's gradients (gathered) at each step, so the two runs
    differ only in how the step rounds: each rank rounds its own shard.
    """
    net = fully_shard(lean_model().to(torch.bfloat16))
    opt = OPTIMIZERS["adam"](net.parameters(), lr=0.01, stochastic_rounding=True)
    replay = lean_model().to(torch.bfloat16)
    replay_opt = OPTIMIZERS["adam"](replay.parameters(), lr=0.01, stochastic_rounding=True, foreach=False)
    n = GLOBAL_BATCH // world
    same = []
    for t in range(3):
        x, y = lean_batch(t)
        opt.zero_grad()
        out = net(x[rank * n : (rank + 1) * n].to(torch.bfloat16))
        torch.nn.functional.mse_loss(out, y[rank * n : (rank + 1) * n].to(torch.bfloat16)).backward()
        grads = [p.grad.full_tensor() for p in net.parameters()]
        opt.step()
        for q, g in zip(replay.parameters(), grads, strict=True):
            q.grad = g
        replay_opt.step()
        weight = next(net.parameters()).full_tensor()
        same.append(torch.equal(weight, replay[0].weight.detach()))
    before = lean_model().to(torch.bfloat16)[0].weight
    return {"same": same, "dtype": weight.dtype, "moved": not torch.equal(weight, before)}


def lean_worker(rank: int, world: int, init: str, out: str) -> None:
    """Every optimizer, path and lean form under DDP (with and without bucket views), ZeRO and DCP; FSDP2."""
    _setup(rank, world, init)
    try:
        results: dict[str, dict[Any, Any]] = {"ddp": {}, "zero": {}, "dcp": {}, "reference": {}}
        for name, fast, kind in product(OPTIMIZERS, (True, False), LEAN_KINDS):
            key, kwargs = (name, fast, kind), {"foreach": fast, "lean_state": kind}
            for bucket_view in (False, True):
                results["ddp"][(*key, bucket_view)] = _ddp_run(name, kwargs, bucket_view, rank, world, LEAN)
            results["zero"][key] = _zero_run(name, kwargs, rank, world, LEAN)
            checkpoint = os.path.join(os.path.dirname(out), f"dcp-{name}-{fast}-{kind}")
            results["dcp"][key] = _dcp_run(name, kwargs, rank, world, checkpoint)
            if rank == 0:
                results["reference"][key] = _lean_reference(name, kwargs, world)
        results["dtensor"] = _dtensor_run(world)
        results["fsdp"] = {}
        for name, fast, kind in product(OPTIMIZERS, (True, False), (None, *LEAN_KINDS)):
            checkpoint = os.path.join(os.path.dirname(out), f"fsdp-{name}-{fast}-{kind}")
            kwargs = {"foreach": fast, "lean_state": kind}
            results["fsdp"][(name, fast, kind)] = _fsdp_run(name, kwargs, rank, world, checkpoint)
        results["fsdp rounding"] = _fsdp_rounding_run(rank, world)
        results["fsdp full state dict"] = _fsdp_full_state_dict_run(rank, world)
        results["zero switch"] = _zero_switch_run(rank, world)
        _save_gathered(results, rank, world, out)
    finally:
        gc.collect()
        dist.destroy_process_group()
