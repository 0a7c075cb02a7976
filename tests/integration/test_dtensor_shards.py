"""DTensor parameters on the fast path's kernels, in one process (a gloo group of one rank).

FSDP2's parameters are DTensors, which cannot join flat buffers; with the fast
path asked for, each shard's local tensors are updated in place by the kernels
the fast path runs on its buckets (``_flat.shard_steps``): torch's fused kernel
where the rule is torch's, once for all shards of a dtype and step count, else
descentlab's compiled kernel. What holds, for every optimizer, torch's and
Keras's conventions, float32, bfloat16 and 8-bit state:

- the parameters and every state tensor equal, bit for bit, those of one
  process running the fast path on plain tensors, also where one parameter
  has no gradient at the first step, so that its first step is the others'
  second (torch's SGD kernel takes one first-step flag per call);
- a shard no kernel can take (lean state on a parameter that is not a
  whole number of 256-element blocks) is left to the per-tensor path, and
  equals one process's per-tensor path; ``implementation()`` says which ran;
- bfloat16 parameters with ``stochastic_rounding=True`` (bfloat16 and float32
  state): shards that are whole blocks are rounded by the compiled kernel, the
  others on the per-tensor path, bit for bit as one process does on each path;
- a group's ``lean_state`` switched between steps converts DTensor state as
  it converts plain tensors' state, bit for bit, on both paths;
- no FastPathWarning is given for DTensor parameters (they have their own way).

The two-process FSDP2 runs are in test_distributed_lean_state.py.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from descentlab.optim import OPTIMIZERS, _flat

dist = pytest.importorskip("torch.distributed", reason="this torch has no torch.distributed")
if not dist.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)
from torch.distributed.fsdp import fully_shard  # noqa: E402
from torch.distributed.tensor import DTensor  # noqa: E402

from dist_workers import HYPER  # noqa: E402

# 5120 and 4100 elements get lean state (4100 is not a whole number of blocks); 33 and 35 do not
SHAPES = [(64, 80), (4100,), (33,), (7, 5)]
NOT_IN_BLOCKS = 1
STEPS = 4


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    init = tmp_path_factory.mktemp("gloo") / "init"
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def params() -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES]


def gradients(step: int) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(100 + step)
    grads: list[torch.Tensor | None] = [torch.randn(s, generator=g) for s in SHAPES]
    if step == 0:
        grads[2] = None  # this parameter's first step is the others' second
    return grads


def make(name: str, convention: str, groups: list[dict], kind: str | None):
    return OPTIMIZERS[name].from_convention(groups, convention, **HYPER[name], lean_state=kind)


@pytest.mark.parametrize("kind", [None, "bfloat16", "8bit"])
@pytest.mark.parametrize("convention", ["torch", "keras"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_shards_equal_one_process_on_the_same_path_bit_for_bit(group, name, convention, kind):
    model = torch.nn.ParameterList(params())
    fully_shard(model)
    sharded = list(model.parameters())
    opt = make(name, convention, [{"params": sharded, "foreach": True}], kind)
    plain = params()
    # one process: the fast path, but the per-tensor path where the shard's path is per-tensor
    per_tensor = {NOT_IN_BLOCKS} if kind is not None else set()
    groups = [
        {"params": [p for i, p in enumerate(plain) if i not in per_tensor], "foreach": True},
        {"params": [p for i, p in enumerate(plain) if i in per_tensor], "foreach": False},
    ]
    one = make(name, convention, [g for g in groups if g["params"]], kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error", _flat.FastPathWarning)
        for step in range(STEPS):
            for p, q, grad in zip(sharded, plain, gradients(step), strict=True):
                p.grad = None if grad is None else DTensor.from_local(grad, p.device_mesh, p.placements)
                q.grad = grad
            opt.step()
            one.step()

    (described,) = opt.implementation()
    fused = OPTIMIZERS[name].torch_fused is not None and convention == "torch"
    expected = {  # lean state: the large parameters' kernel is descentlab's; the small ones' is not lean
        "torch's fused kernel": fused,
        "compiled kernel": not fused or kind is not None,
        "per-tensor": kind is not None,
    }
    assert all((k in described) == v for k, v in expected.items()), described
    for p, q in zip(sharded, plain, strict=True):
        assert torch.equal(p.to_local(), q.detach()), "parameters, bit for bit"
        state, reference = opt.state[p], one.state[q]
        assert sorted(state) == sorted(reference)
        for k, v in reference.items():
            local = v if k == "step" else state[k].to_local()
            assert torch.equal(local, v), f"state {k!r}, bit for bit"


def test_without_the_fast_path_dtensor_parameters_take_the_per_tensor_path(group):
    model = torch.nn.ParameterList(params())
    fully_shard(model)
    opt = OPTIMIZERS["adam"](model.parameters(), lr=0.01, foreach=False)
    plain = params()
    one = OPTIMIZERS["adam"](plain, lr=0.01, foreach=False)
    for p, q, grad in zip(model.parameters(), plain, gradients(1), strict=True):
        p.grad, q.grad = DTensor.from_local(grad, p.device_mesh, p.placements), grad
    opt.step()
    one.step()
    assert opt.implementation() == ["per-tensor"]
    assert all(torch.equal(p.to_local(), q.detach()) for p, q in zip(model.parameters(), plain, strict=True))


@pytest.mark.parametrize("state_dtype", [None, torch.float32], ids=["bf16-state", "f32-state"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_bfloat16_shards_rounded_stochastically_equal_one_process_bit_for_bit(group, name, state_dtype):
    kwargs = {**HYPER[name], "stochastic_rounding": True, "state_dtype": state_dtype}
    model = torch.nn.ParameterList(params()).to(torch.bfloat16)
    fully_shard(model)
    sharded = list(model.parameters())
    opt = OPTIMIZERS[name]([{"params": sharded, "foreach": True}], **kwargs)
    plain = [torch.nn.Parameter(p.detach().to(torch.bfloat16)) for p in params()]
    # the rounding numbers places in blocks of 256: a shard that is not whole blocks goes per-tensor
    whole = [i for i, s in enumerate(SHAPES) if torch.Size(s).numel() % 256 == 0]
    groups = [
        {"params": [p for i, p in enumerate(plain) if i in whole], "foreach": True},
        {"params": [p for i, p in enumerate(plain) if i not in whole], "foreach": False},
    ]
    one = OPTIMIZERS[name](groups, **kwargs)
    for step in range(STEPS):
        for p, q, grad in zip(sharded, plain, gradients(step), strict=True):
            grad = None if grad is None else grad.to(torch.bfloat16)
            p.grad = None if grad is None else DTensor.from_local(grad, p.device_mesh, p.placements)
            q.grad = grad
        opt.step()
        one.step()
    (described,) = opt.implementation()
    assert described.startswith(f"fast: {len(whole)} DTensor shard(s) updated in place (compiled kernel)")
    assert f"{len(SHAPES) - len(whole)} DTensor parameter(s) per-tensor" in described, described
    for p, q in zip(sharded, plain, strict=True):
        assert p.dtype == torch.bfloat16 and torch.equal(p.to_local(), q.detach()), "bit for bit"


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
def test_switching_lean_state_converts_dtensor_state_as_it_converts_a_tensor_s(group, fast):
    """A group's lean_state changed between steps (float32 -> 8-bit -> bfloat16 -> float32): the DTensor
    state is converted as one process converts plain tensors' state, bit for bit, 8-bit scales included."""
    # without the parameter that is not whole blocks: its shard takes the per-tensor path, one process
    # the fast path, whose numbers differ in the last bits
    keep = [i for i in range(len(SHAPES)) if i != NOT_IN_BLOCKS]
    model = torch.nn.ParameterList([params()[i] for i in keep])
    fully_shard(model)
    sharded, plain = list(model.parameters()), [params()[i] for i in keep]
    opt, one = (OPTIMIZERS["adam"](ps, lr=0.01, foreach=fast) for ps in (sharded, plain))
    forms = []
    for step, kind in enumerate([None, "8bit", "8bit", "bfloat16", None]):
        opt.param_groups[0]["lean_state"] = one.param_groups[0]["lean_state"] = kind
        grads = [gradients(step)[i] for i in keep]
        for p, q, grad in zip(sharded, plain, grads, strict=True):
            p.grad = None if grad is None else DTensor.from_local(grad, p.device_mesh, p.placements)
            q.grad = grad
        opt.step()
        one.step()
        forms.append(tuple(v.dtype for k, v in sorted(opt.state[sharded[0]].items()) if k != "step"))
        for p, q in zip(sharded, plain, strict=True):
            assert torch.equal(p.to_local(), q.detach()), (step, "parameters, bit for bit")
            assert sorted(opt.state[p]) == sorted(one.state[q]), step
            for k, v in one.state[q].items():
                local = opt.state[p][k].to_local() if k != "step" else opt.state[p][k]
                assert torch.equal(local, v), (step, k)
    u8, f32, bf16 = torch.uint8, torch.float32, torch.bfloat16
    # sorted names: exp_avg, exp_avg_absmax, exp_avg_sq, exp_avg_sq_absmax
    assert forms == [(f32, f32), (u8, f32, u8, f32), (u8, f32, u8, f32), (bf16, bf16), (f32, f32)], forms


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
def test_a_column_placement_on_a_mesh_dimension_of_one_keeps_8bit_state_as_one_process(group, fast):
    # Shard(1) over one rank cuts nothing: the shard is the whole tensor, in its order
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (1,))
    start = torch.randn(64, 80, generator=torch.Generator().manual_seed(0))
    column = torch.nn.Parameter(distribute_tensor(start.clone(), mesh, [Shard(1)]))
    plain = torch.nn.Parameter(start.clone())
    opts = [OPTIMIZERS["adam"]([p], lr=0.01, lean_state="8bit", foreach=fast) for p in (column, plain)]
    for step in range(3):
        grad = gradients(step)[0]
        column.grad, plain.grad = distribute_tensor(grad, mesh, [Shard(1)]), grad
        for opt in opts:
            opt.step()
    assert torch.equal(column.to_local(), plain.detach())
    state, reference = opts[0].state[column], opts[1].state[plain]
    assert sorted(state) == sorted(reference) and "exp_avg_absmax" in state
    for k, v in reference.items():
        assert torch.equal(v if k == "step" else state[k].to_local(), v), k
