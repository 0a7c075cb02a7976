"""Sparse gradients (``nn.Embedding(sparse=True)``) update only the rows they touch.

The numbers must equal the dense rule's on those rows, and every other row and
its state must stay as it was; repeated indices in a batch are summed first.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from descentlab.optim import SGD, Adagrad
from helpers import relative_error

BATCHES = [[1, 3, 3, 7], [0, 1], [7, 7, 7], [2, 9, 1, 3]]


def train(make, sparse: bool, maximize: bool = False):
    torch.manual_seed(0)
    emb = nn.Embedding(10, 4, sparse=sparse, dtype=torch.float64)
    opt = make(emb.parameters())
    touched = set()
    for batch in BATCHES:
        opt.zero_grad()
        out = emb(torch.tensor(batch))
        loss = ((out - 1.0) ** 2).sum()
        (-loss if maximize else loss).backward()
        assert emb.weight.grad.is_sparse == sparse
        opt.step()
        touched.update(batch)
    return emb.weight.detach(), opt.state[emb.weight], touched


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Adagrad(p, lr=0.3),
        lambda p: Adagrad(p, lr=0.3, lr_decay=0.1, initial_accumulator_value=0.2),
        lambda p: Adagrad(p, lr=0.3, eps=1e-3, convention="keras"),
        lambda p: Adagrad.from_convention(p, "optax", lr=0.3),
        lambda p: SGD(p, lr=0.1),
    ],
    ids=["adagrad", "adagrad-lr_decay-initial", "adagrad-keras", "adagrad-optax-defaults", "sgd"],
)
@pytest.mark.parametrize("maximize", [False, True], ids=["minimize", "maximize"])
def test_sparse_equals_dense_and_leaves_other_rows(make, maximize):
    def build(params):
        opt = make(params)
        for g in opt.param_groups:
            g["maximize"] = maximize
        return opt

    torch.manual_seed(0)
    start = nn.Embedding(10, 4, dtype=torch.float64).weight.detach().clone()
    dense, dense_state, touched = train(build, sparse=False, maximize=maximize)
    sparse, sparse_state, _ = train(build, sparse=True, maximize=maximize)
    assert relative_error(sparse, dense) <= 1e-12
    for key in dense_state:
        assert relative_error(sparse_state[key], dense_state[key]) <= 1e-12, key
    untouched = sorted(set(range(10)) - touched)
    assert untouched, "the batches must leave some rows alone for this test to mean anything"
    assert torch.equal(sparse[untouched], start[untouched])
    assert not torch.equal(sparse[sorted(touched)], start[sorted(touched)])
    if "sum" in sparse_state:
        initial = sparse_state["sum"][untouched]
        assert torch.equal(initial, torch.full_like(initial, initial.flatten()[0].item()))
        # ... and that value is the accumulator's starting value: those rows were never touched
        first = make([torch.zeros(1, dtype=torch.float64, requires_grad=True)]).param_groups[0]
        assert torch.equal(initial, torch.full_like(initial, first["initial_accumulator_value"]))
