"""Lean optimizer state under torch.distributed: DDP, ZeroRedundancyOptimizer, DCP (gloo, 2 processes).

For ``lean_state="bfloat16"`` and ``"8bit"``, every optimizer, the fast and the
per-tensor path, on a float32 model with one weight of 4096 elements (lean
state) and three smaller parameters (float32 state). What holds:

- **DDP** gives, bit for bit, the parameters of one process that takes DDP's
  gradient (each rank's share backpropagated, summed, halved: see
  ``dist_workers.train_as_ddp``). Stochastic rounding draws on a hash of the
  value rounded, its place in its block, the step and the state's name, never on
  the rank or a generator, so equal gradients give equal runs. One process on
  the whole batch gets a gradient that differs from DDP's in the last bits, and
  a value that differs rounds differently (by up to one bfloat16 step or one gap
  of the 8-bit map): those runs agree to the lean state's rounding only,
  ``WHOLE_BATCH`` (1.1% was the largest difference seen after 6 steps).
- **Precision**: each parameter's state has the same form (dtype and shape, the
  8-bit scales included) under DDP on each rank, under ZeRO on the rank that
  owns it, in the consolidated and the distributed checkpoint, and in one
  process; the 4096-element weight's is lean, the others' float32. A run with
  lean state silently off fails here.
- **ZeRO**: sharded training equals unsharded (one process with DDP's gradient)
  bit for bit; ``consolidate_state_dict``, ``load_state_dict`` into a new
  ZeroRedundancyOptimizer, or into the same one after more steps, and training
  on resume bit for bit.
- **DCP**: ``get_state_dict``, ``torch.distributed.checkpoint.save`` by both
  ranks, ``load`` and ``set_state_dict`` into a fresh DDP model and optimizer
  give back every state tensor exactly (codes, ``<name>_absmax`` scales and step),
  and training on resumes bit for bit.
- **FSDP2** (``fully_shard``, DTensor parameters) with ``lean_state="bfloat16"``,
  ``"8bit"`` and with float32 state, on the fast path and the per-tensor path:
  the large weight's state is DTensors of the asked precision sharded as the
  weight is (8-bit: codes sharded as the weight, one block scale per 256 of
  its elements sharded on dim 0 with them), the rest float32; training equals
  one process with DDP's gradient on the same path bit for bit (with the fast
  path on, each rank runs the fast path's kernels on its shards: lean state's
  elements keep their places in their blocks, the shards splitting at
  multiples of 256 elements); a distributed checkpoint restores every state
  tensor exactly and resumes bit for bit.
  With 8-bit state, a checkpoint of the two ranks loads into one process
  that is not sharded and trains on to FSDP2's parameters bit for bit, and
  the full state dict (``full_state_dict=True``) is one process's state,
  which sets back into a fresh FSDP2 optimizer exactly.
  bfloat16 *parameters* with ``stochastic_rounding=True`` round as one process
  given FSDP2's gradient does, bit for bit.
- **DTensor** parameters of 4096 elements or more whose shards are not runs
  of whole blocks that the scales' own sharding gives to the same rank (rows
  cut unevenly, a Shard(1) placement) are refused ``lean_state="8bit"``, also
  when each rank's shard has fewer elements, with an error that names why and
  the ways out (bfloat16, or a group with ``lean_state=None``). Smaller ones
  keep full-precision state, as elsewhere.
"""

from __future__ import annotations

import pytest
import torch

import dist_workers as W
from descentlab.optim import OPTIMIZERS, _lean
from helpers import relative_error

# Every test reads the results of two processes spawned once for the module: 45 s, and about
# 2 min of CPU more where inductor's cache does not hold the fast path's lean kernels yet.
pytestmark = pytest.mark.slow

# One process on the whole batch against DDP: the lean state's rounding of a last-bit difference.
WHOLE_BATCH = 0.05

CASES = [
    pytest.param(name, fast, kind, id=f"{name}-{'fast' if fast else 'per-tensor'}-{kind}")
    for name in sorted(OPTIMIZERS)
    for fast in (True, False)
    for kind in W.LEAN_KINDS
]


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    """Where the workers write their results and distributed checkpoints."""
    return tmp_path_factory.mktemp("lean")


@pytest.fixture(scope="module")
def results(directory):
    return W.spawn(W.lean_worker, directory)


def equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def assert_lean_where_large(forms, kind):
    """The 4096-element weight's state is lean (8-bit codes with one scale per block, or bfloat16); the rest float32."""
    large, *small = forms
    assert large is not None and small and all(f is not None for f in small)
    shape = tuple(W.lean_model()[0].weight.shape)
    assert shape[0] * shape[1] == _lean.MIN_ELEMENTS
    names = [k for k in large if k != "step" and not k.endswith("_absmax")]
    assert names, large
    for n in names:
        if kind == "8bit":
            assert large[n] == (torch.uint8, shape), (n, large)
            blocks = (_lean.blocks(_lean.MIN_ELEMENTS),)
            assert large[_lean.ABSMAX.format(n)] == (torch.float32, blocks), (n, large)
        else:
            assert large[n] == (torch.bfloat16, shape), (n, large)
    assert len(large) == 1 + len(names) * (2 if kind == "8bit" else 1), large
    for form in small:
        assert all(dtype == torch.float32 for dtype, _ in form.values()), form


def merged(per_rank):
    """The parameters' state forms over the ranks: each parameter's from the one rank that holds it."""
    holders = [[f for f in forms if f is not None] for forms in zip(*per_rank, strict=True)]
    assert all(len(h) == 1 for h in holders), "each parameter's state lives on exactly one rank"
    return [h[0] for h in holders]


@pytest.mark.parametrize("bucket_view", [False, True], ids=["grads", "gradient_as_bucket_view"])
@pytest.mark.parametrize(("name", "fast", "kind"), CASES)
def test_ddp_gives_one_process_run_bit_for_bit_given_the_same_gradient(
    results, name, fast, kind, bucket_view
):
    reference = results[0]["reference"][(name, fast, kind)]
    assert_lean_where_large(reference["ddp gradient forms"], kind)
    for rank in results:
        run = rank["ddp"][(name, fast, kind, bucket_view)]
        assert_lean_where_large(run["forms"], kind)
        assert equal(run["params"], reference["ddp gradient"])
        assert run["forms"] == reference["ddp gradient forms"], "the same precision as in one process"
        assert run["implementation"][0].startswith("fast" if fast else "per-tensor"), run["implementation"]


@pytest.mark.parametrize(("name", "fast", "kind"), CASES)
def test_ddp_and_one_process_on_the_whole_batch_agree_to_the_lean_rounding(results, name, fast, kind):
    reference = results[0]["reference"][(name, fast, kind)]
    run = results[0]["ddp"][(name, fast, kind, False)]
    assert_lean_where_large(reference["whole batch forms"], kind)
    for a, b in zip(run["params"], reference["whole batch"], strict=True):
        assert relative_error(a, b) <= WHOLE_BATCH


@pytest.mark.parametrize(("name", "fast", "kind"), CASES)
def test_zero_shards_consolidates_and_resumes_lean_state_bit_for_bit(results, name, fast, kind):
    reference = results[0]["reference"][(name, fast, kind)]
    runs = [rank["zero"][(name, fast, kind)] for rank in results]
    for run in runs:
        assert equal(run["trained"], reference["ddp gradient"]), "sharded training equals unsharded"
        assert equal(run["resumed"], run["trained"]), "resumed from the consolidated state_dict"
        assert equal(run["rolled back"], run["trained"]), "the same optimizer loaded it after more steps"
        assert run["loaded"] == run["forms"] == run["resumed forms"], "loading kept each parameter's form"
    assert all(run["shard"] for run in runs), "each rank updates a share of the parameters"
    assert_lean_where_large(runs[0]["consolidated"], kind)  # the scales travel with the codes
    assert (
        merged([run["forms"] for run in runs]) == runs[0]["consolidated"] == reference["ddp gradient forms"]
    )


@pytest.mark.parametrize(("name", "fast", "kind"), CASES)
def test_a_distributed_checkpoint_restores_lean_state_exactly_and_resumes_bit_for_bit(
    results, name, fast, kind
):
    reference = results[0]["reference"][(name, fast, kind)]
    for rank in results:
        run = rank["dcp"][(name, fast, kind)]
        assert all(run["restored"]), "every state tensor (codes, scales, step) as saved"
        assert_lean_where_large(run["loaded"], kind)
        assert run["loaded"] == reference["ddp gradient forms"]
        assert equal(run["resumed"], run["trained"])


def test_zero_takes_lean_state_from_the_checkpoint_unless_its_groups_are_set_first(results):
    """ZeroRedundancyOptimizer.load_state_dict copies every group option of the checkpoint into each
    rank's optimizer (descentlab's own load_state_dict keeps the optimizer's lean_state): the
    workaround that docs/lean-state.md gives."""
    as_saved = merged([rank["zero switch"]["as saved"] for rank in results])
    assert all(dtype == torch.float32 for form in as_saved for dtype, _ in form.values()), as_saved
    assert_lean_where_large(merged([rank["zero switch"]["groups set to 8bit"] for rank in results]), "8bit")


@pytest.mark.parametrize("kind", [None, *W.LEAN_KINDS])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fsdp2_equals_one_process_on_the_same_path_and_resumes_from_a_distributed_checkpoint(
    results, name, fast, kind
):
    shard = (W.lean_model()[0].weight.shape[0] // W.WORLD, W.lean_model()[0].weight.shape[1])
    for rank in results:
        run = rank["fsdp"][(name, fast, kind)]
        if fast:  # every shard by a kernel of the fast path; bfloat16 state by descentlab's compiled one
            kernels = run["implementation"][0].removeprefix("fast: 4 DTensor shard(s) updated in place (")
            assert kernels != run["implementation"][0] and ("compiled kernel" in kernels) == (
                kind is not None or name == "rmsprop"
            ), run["implementation"]
        else:
            assert run["implementation"] == ["per-tensor"], run["implementation"]
        large, *small = run["forms"]
        names = [k for k in large if k != "step" and not k.endswith("_absmax")]
        state = {None: torch.float32, "bfloat16": torch.bfloat16, "8bit": torch.uint8}[kind]
        assert names and all(large[n] == ("DTensor", state, shard) for n in names), large
        scales = {_lean.ABSMAX.format(n) for n in names} if kind == "8bit" else set()
        assert set(large) == {"step", *names, *scales}, large
        assert all(large[s] == ("DTensor", torch.float32, (shard[0] * shard[1] // 256,)) for s in scales)
        assert all(dtype == torch.float32 for form in small for _, dtype, _ in form.values()), small
        assert equal(run["trained"], run["one process"]), "sharded equals one process, bit for bit"
        assert all(run["restored"]), "every state tensor as saved"
        assert run["loaded"] == run["forms"], "loading kept each parameter's form"
        assert equal(run["resumed"], run["trained"])


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled:UserWarning")  # DCP, one process: meant
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_an_fsdp2_checkpoint_of_8bit_state_loads_into_one_process_and_trains_on_as_fsdp2_did(
    results, directory, name, fast
):
    """The 8-bit state of two shards, saved by DCP at half the steps, is one process's state: loaded into
    a model and optimizer that are not sharded, they train on to FSDP2's final parameters bit for bit."""
    dcp = pytest.importorskip("torch.distributed.checkpoint")
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    net = W.lean_model()
    opt = OPTIMIZERS[name](net.parameters(), **W.HYPER[name], foreach=fast, lean_state="8bit")
    model_state, optim_state = get_state_dict(net, opt)
    loaded = {"model": model_state, "optim": optim_state}
    dcp.load(loaded, checkpoint_id=str(directory / f"fsdp-{name}-{fast}-8bit"))
    set_state_dict(net, opt, model_state_dict=loaded["model"], optim_state_dict=loaded["optim"])
    weight = opt.state[net[0].weight]
    assert {v.dtype for k, v in weight.items() if k in OPTIMIZERS[name].state_names} == {torch.uint8}, weight
    W.train_as_ddp(net, opt, range(W.STEPS // 2, W.STEPS), W.WORLD, W.lean_batch)
    assert equal(W._params(net), results[0]["fsdp"][(name, fast, "8bit")]["trained"])


def test_fsdp2_s_full_state_dict_of_8bit_state_is_one_process_s_and_sets_back_exactly(results):
    # StateDictOptions(full_state_dict=True): the codes gathered to the tensor's shape, the scales to all blocks
    for rank in results:
        run = rank["fsdp full state dict"]
        assert run["full"] == {
            "step": ("Tensor", torch.float32, ()),
            "exp_avg": ("Tensor", torch.uint8, (64, 64)), "exp_avg_absmax": ("Tensor", torch.float32, (16,)),
            "exp_avg_sq": ("Tensor", torch.uint8, (64, 64)), "exp_avg_sq_absmax": ("Tensor", torch.float32, (16,)),
        }, run["full"]  # fmt: skip
        assert run["restored"], "each rank's state, set back from the full state dict, as it was"


def test_fsdp2_rounds_bfloat16_parameters_stochastically_as_one_process_does_given_its_gradient(results):
    # the weight's shards split at a multiple of 256 elements: the same places in their blocks
    for rank in results:
        run = rank["fsdp rounding"]
        assert run["dtype"] == torch.bfloat16 and run["moved"]
        assert run["same"] == [True, True, True], run


def test_8bit_state_is_refused_where_a_dtensor_s_shards_are_not_runs_of_whole_blocks(results):
    for rank in results:
        run = rank["dtensor"]
        assert run["local elements"] < _lean.MIN_ELEMENTS  # refused by the parameter's size, not the shard's
        assert "elements 0 to 4096" in run["uneven"] and "blocks 0 to 12" in run["uneven"], run["uneven"]
        assert "placement Shard(dim=1) is not Shard(dim=0)" in run["columns"], run["columns"]
        for refused in (run["uneven"], run["columns"]):
            assert "params[1] is a DTensor" in refused and "shape" in refused, refused
            assert "lean_state='bfloat16'" in refused and "lean_state=None" in refused, refused
        assert run["small"] == {"step": ("Tensor", torch.float32), "exp_avg": ("DTensor", torch.float32),
                                "exp_avg_sq": ("DTensor", torch.float32)}  # fmt: skip


def test_8bit_state_set_later_on_such_a_dtensor_s_group_is_refused_before_anything_changes(results):
    # by an assignment to the group, then a step (the step would otherwise update the plain
    # parameter before it reached the DTensor) or a load_state_dict (which would have built
    # scales that do not match the shards)
    for rank in results:
        for fast in (True, False):
            run = rank["dtensor"][f"switched {fast}"]
            step, load = run["errors"]
            assert step is not None and load is not None, run
            for refused in (step, load):
                assert "param group 0, params[1] is a DTensor" in refused, refused
                assert "placement Shard(dim=1) is not Shard(dim=0)" in refused, refused
            assert "no parameter was updated" in step, step
            assert run["unchanged"], "parameters and state as they were"
