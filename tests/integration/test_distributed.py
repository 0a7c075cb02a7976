"""descentlab's optimizers under torch.distributed: DDP and ZeroRedundancyOptimizer (gloo, 2 processes)."""

from __future__ import annotations

import pytest
import torch

import dist_workers
from descentlab.optim import OPTIMIZERS
from helpers import relative_error

# Every test reads the results of two process groups spawned once for the module (about a minute).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    return dist_workers.spawn(dist_workers.ddp_worker, tmp_path_factory.mktemp("ddp"))


@pytest.fixture(scope="module")
def zero_results(tmp_path_factory):
    return dist_workers.spawn(dist_workers.zero_worker, tmp_path_factory.mktemp("zero"))


@pytest.mark.parametrize("bucket_view", [False, True], ids=["grads", "gradient_as_bucket_view"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_ddp_gives_the_single_process_parameters(ddp_results, name, fast, bucket_view):
    run = ddp_results[(name, fast, bucket_view)]
    expected = dist_workers.reference(name, dist_workers.STEPS)
    for a, b in zip(run["params"], expected, strict=True):
        assert relative_error(a, b) <= 1e-12
    implementation = run["implementation"]
    assert implementation[0].startswith("fast" if fast else "per-tensor"), implementation


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_zero_redundancy_optimizer_shards_consolidates_and_resumes(zero_results, name, fast):
    expected = dist_workers.reference(name, dist_workers.STEPS)
    shard_sizes = []
    for rank_results in zero_results:
        run = rank_results[(name, fast)]
        shard_sizes.append(run["shard"])
        for a, b in zip(run["trained"], expected, strict=True):
            assert relative_error(a, b) <= 1e-12, "sharded training equals unsharded"
        for a, b in zip(run["resumed"], run["trained"], strict=True):
            assert torch.equal(a, b), "resumed from the consolidated state_dict"
        for a, b in zip(run["rolled back"], run["trained"], strict=True):
            assert torch.equal(a, b), "the same optimizer loaded it after more steps"
    assert sum(shard_sizes) == 4 and all(shard_sizes), "each rank updates a share of the 4 parameters"


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
def test_zero_with_weight_decay_groups_runs_with_a_rank_s_group_empty(zero_results, fast):
    """ZeRO gives each rank a local optimizer with every group, some of them empty on a rank."""
    expected = dist_workers.grouped_reference(dist_workers.STEPS)
    local = [rank_results[("groups", fast)]["local"] for rank_results in zero_results]
    assert any(0 in sizes for sizes in local), f"no rank had an empty group: {local}"
    for rank_results in zero_results:
        for a, b in zip(rank_results[("groups", fast)]["params"], expected, strict=True):
            assert relative_error(a, b) <= 1e-12
