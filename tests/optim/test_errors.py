"""Bad input gets a clear error naming the argument and the value, and nothing changes."""

from __future__ import annotations

import copy
import inspect
import pickle
import re

import pytest
import torch

from cases import CASES
from descentlab.optim import OPTIMIZERS, SGD, Adagrad, Adam, OptionError, RMSprop
from descentlab.optim.conventions import KERAS, TORCH, Convention
from helpers import same


def _error_params():
    return [
        pytest.param(name, case, id=f"{name}[{','.join(f'{k}={v}' for k, v in case.kwargs.items())}]")
        for name, c in CASES.items()
        for case in c.errors
    ]


@pytest.mark.parametrize(("name", "case"), _error_params())
def test_table_of_hyperparameter_errors(name, case):
    cls = OPTIMIZERS[name]
    with pytest.raises(case.error, match=case.match) as info:
        cls([torch.zeros(2, requires_grad=True)], **case.kwargs)
    assert str(info.value).startswith(f"{cls.__name__}: ")


def _common_errors(name):
    cls = OPTIMIZERS[name]
    accepted = inspect.signature(cls.__init__).parameters
    cases = [
        ({"lr": -0.1}, ValueError, r"lr must be a finite number in \[0, inf\); received lr=-0\.1"),
        ({"lr": float("nan")}, ValueError, r"lr must be a finite number in \[0, inf\); received lr=nan"),
        ({"lr": float("inf")}, ValueError, r"lr must be a finite number in \[0, inf\); received lr=inf"),
        ({"lr": "0.1"}, TypeError, r"lr must be a real number; received lr='0\.1' \(str\)"),
        ({"lr": True}, TypeError, r"lr must be a real number; received lr=True \(bool\)"),
        (
            {"lr": torch.tensor([0.1, 0.2])},
            ValueError,
            r"lr given as a tensor must have exactly one element; received a tensor of shape \(2,\)",
        ),
        (
            {"lr": torch.tensor(-1.0)},
            ValueError,
            r"lr must be a finite number in \[0, inf\); received lr=tensor\(-1\.\)",
        ),
        (
            {"lr": torch.tensor(1)},
            TypeError,
            r"lr given as a tensor must be floating point; received dtype torch\.int64",
        ),
        ({"maximize": "no"}, TypeError, r"maximize must be True or False; received maximize='no'"),
        (
            {"convention": "kears"},
            ValueError,
            r"unknown convention 'kears'; did you mean 'keras'\? \(known: torch, keras, optax\)",
        ),
        (
            {"convention": 3},
            TypeError,
            r"convention must be a preset name \(torch, keras, optax\) or a Convention; received convention=3",
        ),
        ({"differentiable": True}, ValueError, r"differentiable=True .* is not supported by descentlab"),
        ({"foreach": "yes"}, TypeError, r"foreach must be True or False; received foreach='yes'"),
        (
            {"convention": Convention("mine", switches={name: {"no_such_switch": True}})},
            ValueError,
            rf"convention 'mine' sets no_such_switch for {name}, which reads only",
        ),
    ]
    if "fused" in accepted:
        cases.append(
            (
                {"foreach": True, "fused": True},
                ValueError,
                r"fused=True and foreach=True cannot be set together",
            )
        )
    if "capturable" in accepted:
        cases.append(
            ({"capturable": None}, TypeError, r"capturable must be True or False; received capturable=None")
        )
    return [
        pytest.param(name, *c, id=f"{name}[{next(iter(c[0]))}={next(iter(c[0].values()))!r}]") for c in cases
    ]


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "match"), [p for n in OPTIMIZERS for p in _common_errors(n)]
)
def test_errors_common_to_every_optimizer(name, kwargs, error, match):
    cls = OPTIMIZERS[name]
    with pytest.raises(error, match=match) as info:
        cls([torch.zeros(2, requires_grad=True)], **kwargs)
    assert str(info.value).startswith(f"{cls.__name__}: ")


# -- parameters and groups ----------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_an_empty_group_is_kept_as_torch_keeps_it(name, fast):
    # ZeroRedundancyOptimizer gives every rank every group, empty where the rank holds none of it
    import torch.optim

    kwargs = {"momentum": 0.9} if name == "sgd" else {}
    ours_p, theirs_p = (torch.nn.Parameter(torch.arange(6.0)) for _ in range(2))
    theirs_cls = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW"}
    ours = OPTIMIZERS[name]([{"params": []}, {"params": [ours_p]}], lr=0.1, foreach=fast, **kwargs)
    theirs = getattr(torch.optim, theirs_cls[name])(
        [{"params": []}, {"params": [theirs_p]}], lr=0.1, **kwargs
    )
    for _ in range(3):
        for p, opt in ((ours_p, ours), (theirs_p, theirs)):
            p.grad = torch.linspace(-1, 1, 6)
            opt.step()
    assert torch.allclose(ours_p, theirs_p, rtol=1e-6, atol=1e-7)
    again = OPTIMIZERS[name]([{"params": []}, {"params": [ours_p]}], lr=0.1, foreach=fast, **kwargs)
    again.load_state_dict(ours.state_dict())
    ours.add_param_group({"params": []})
    assert [len(g["params"]) for g in ours.param_groups] == [0, 1, 0]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_parameter_errors(name):
    cls = OPTIMIZERS[name]
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"got an empty parameter list"):
        cls([])
    with pytest.raises(TypeError, match=r"params must be an ordered collection \(a list\), not a set"):
        cls({w})
    with pytest.raises(TypeError, match=r"params must be a list, not a set"):
        cls([{"params": {w}}])
    with pytest.raises(ValueError, match=r"params\[1\] is not a leaf tensor"):
        cls([w, w * 2])
    with pytest.raises(TypeError, match=r"params\[0\] has dtype torch.int64; only floating-point"):
        cls([torch.zeros(2, dtype=torch.int64)])
    with pytest.raises(TypeError, match=r"params\[0\] has dtype torch.bool; only floating-point"):
        cls([torch.zeros(2, dtype=torch.bool)])
    with pytest.raises(TypeError, match=r"params\[0\] must be a torch.Tensor; received list"):
        cls([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"params\[1\] appears twice in the same group"):
        cls([w, w])
    with pytest.raises(
        ValueError,
        match=r"param group 1: params\[0\] is already in param group 0; a parameter can belong to one group only",
    ):
        cls([{"params": [w]}, {"params": [w]}])
    with pytest.raises(ValueError, match=r"a param group needs a 'params' entry"):
        cls([{"lr": 0.1}])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_rejected_param_group_leaves_the_optimizer_unchanged(name):
    cls = OPTIMIZERS[name]
    w, v = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = cls([w], lr=0.1)
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=r"lr must be a finite number in \[0, inf\); received lr=-1"):
        opt.add_param_group({"params": [v], "lr": -1})
    with pytest.raises(ValueError, match=r"param group 1: params\[0\] is already in param group 0"):
        opt.add_param_group({"params": [w]})
    assert len(opt.param_groups) == 1
    assert same(opt.state_dict(), before)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_group_may_name_its_own_convention(name):
    cls = OPTIMIZERS[name]
    w, v = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = cls([w], lr=0.1)
    opt.add_param_group({"params": [v], "convention": "keras"})
    assert "convention" not in opt.param_groups[1]
    for switch in cls.switches:
        assert opt.param_groups[0][switch] is False
    assert {s: opt.param_groups[1][s] for s in cls.switches} == KERAS.switches_for(name, cls.switches, "")
    assert any(opt.param_groups[1][s] for s in cls.switches), "keras changes a rule of every optimizer"


# -- sparse gradients ----------------------------------------------------------------


def _sparse_grad(rows=(1, 3), width=2, size=5):
    return torch.sparse_coo_tensor(
        torch.tensor([list(rows)]), torch.ones(len(rows), width), (size, width), check_invariants=True
    )


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda p: Adagrad([p], weight_decay=0.1),
            r"Adagrad: weight_decay cannot be combined with sparse gradients \(param group 0, params\[0\] has one\).*weight_decay=0\.1",
        ),
        (
            lambda p: SGD([p], momentum=0.9),
            r"SGD: sparse gradients \(param group 0, params\[0\]\) are supported without momentum and weight decay only.*momentum=0\.9",
        ),
        (
            lambda p: Adam([p]),
            r"Adam does not support sparse gradients \(param group 0, params\[0\] has one\)",
        ),
        (lambda p: RMSprop([p]), r"RMSprop does not support sparse gradients"),
    ],
    ids=["adagrad+weight_decay", "sgd+momentum", "adam", "rmsprop"],
)
def test_unsupported_sparse_gradients_raise_before_anything_changes(make, match):
    # Group 0 has a dense gradient and would be updated first: the check must
    # come before every update, not just before the sparse one's.
    dense, sparse = torch.ones(5, 2, requires_grad=True), torch.ones(5, 2, requires_grad=True)
    opt = make(dense)
    opt.add_param_group({"params": [sparse], "lr": 0.5})
    dense.grad = torch.ones(5, 2)
    sparse.grad = _sparse_grad()
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(RuntimeError, match=match.replace("param group 0", "param group 1")):
        opt.step()
    assert torch.equal(dense, torch.ones(5, 2)) and torch.equal(sparse, torch.ones(5, 2))
    assert same(opt.state_dict(), before)


def test_the_sparse_gradient_error_names_a_parameter_that_is_not_first():
    # its place is found by identity: list.index compared the tensors before it elementwise
    dense, sparse = torch.ones(5, 2, requires_grad=True), torch.ones(5, 2, requires_grad=True)
    dense.grad, sparse.grad = torch.ones(5, 2), _sparse_grad()
    with pytest.raises(
        RuntimeError, match=r"Adam does not support sparse gradients \(param group 0, params\[1\]"
    ):
        Adam([dense, sparse]).step()


# -- checkpoints ---------------------------------------------------------------------


def _trained(cls, shapes=((2, 3), (3,)), groups=1, **kwargs):
    params = [
        torch.randn(s, generator=torch.Generator().manual_seed(i), requires_grad=True)
        for i, s in enumerate(shapes)
    ]
    if groups == 1:
        opt = cls(params, **kwargs)
    else:
        opt = cls([{"params": params[:1]}, {"params": params[1:]}], **kwargs)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    return params, opt


def _snapshot(opt):
    return copy.deepcopy((opt.state_dict(), opt.param_groups))


@pytest.mark.parametrize(
    ("source", "target", "match"),
    [
        (
            lambda: _trained(SGD, lr=0.1, momentum=0.9)[1],
            lambda: _trained(Adam)[1],
            r"Adam: the checkpoint was saved by another optimizer \(probably SGD\): its param group 0 lacks betas, eps, amsgrad, which Adam stores",
        ),
        (
            lambda: _trained(Adam)[1],
            lambda: _trained(RMSprop)[1],
            r"RMSprop: the checkpoint was saved by another optimizer \(probably Adam\): its param group 0 lacks alpha, momentum, centered",
        ),
        (
            lambda: _trained(Adam, shapes=((2, 3),))[1],
            lambda: _trained(Adam)[1],
            r"Adam: param group 0 of the checkpoint has 1 parameters; this optimizer's has 2",
        ),
        (
            lambda: _trained(Adam, groups=2)[1],
            lambda: _trained(Adam)[1],
            r"Adam: the checkpoint has 2 param group\(s\); this optimizer has 1",
        ),
        (
            lambda: _trained(Adam, shapes=((3, 2), (3,)))[1],
            lambda: _trained(Adam)[1],
            r"Adam: the checkpoint's 'exp_avg' of parameter 0 has shape \(3, 2\), but the parameter has shape \(2, 3\)",
        ),
        (
            lambda: _trained(Adagrad)[1],
            lambda: _trained(Adagrad, shapes=((2, 3), (4,)))[1],
            r"Adagrad: the checkpoint's 'sum' of parameter 1 has shape \(3,\), but the parameter has shape \(4,\)",
        ),
    ],
    ids=[
        "sgd-into-adam",
        "adam-into-rmsprop",
        "fewer-parameters",
        "more-groups",
        "other-shape",
        "other-shape-adagrad",
    ],
)
def test_a_mismatched_checkpoint_raises_before_anything_is_replaced(source, target, match):
    saved = source().state_dict()
    opt = target()
    before = _snapshot(opt)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(saved)
    assert same(_snapshot(opt), before)


def _edited(opt, edit):
    saved = copy.deepcopy(opt.state_dict())
    edit(saved)
    return saved


def _nan_moment(saved):
    # a full-precision checkpoint's moment (as a float32 optimizer saves it), with a NaN in it
    saved["param_groups"][0]["lr"] = 0.5
    state = saved["state"][0]
    state.pop("exp_avg_absmax")
    state["exp_avg"] = torch.zeros(64, 64)
    state["exp_avg"][0, 0] = float("nan")


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
@pytest.mark.parametrize(
    ("make", "edit", "match"),
    [
        (  # quantised when loaded: a NaN was refused only after the options had been replaced
            lambda fast: _trained(Adam, shapes=((64, 64),), lean_state="8bit", foreach=fast),
            _nan_moment,
            r"Adam: the checkpoint's 'exp_avg' of parameter 0 holds NaN or infinity, which lean_state='8bit'",
        ),
        (  # the options are checked with the lean state this optimizer keeps
            lambda fast: _trained(RMSprop, shapes=((64, 64),), lean_state="8bit", foreach=fast),
            lambda saved: saved["param_groups"][0].update(centered=True),
            r"RMSprop: centered=True cannot be combined with lean_state='8bit'",
        ),
        (
            lambda fast: _trained(Adam, shapes=((64, 64),), lean_state="bfloat16", foreach=fast),
            lambda saved: saved["param_groups"][0].update(state_dtype=torch.bfloat16),
            r"Adam: lean_state='bfloat16' cannot be combined with state_dtype",
        ),
        (
            lambda fast: _trained(Adam, foreach=fast),
            lambda saved: saved["state"][0].update(step=torch.tensor(-3.0)),
            r"Adam: the step of parameter 0 must be a whole count >= 0; received tensor\(-3\.\)",
        ),
        (
            lambda fast: _trained(Adam, foreach=fast),
            lambda saved: saved["state"][0].update(step=torch.tensor(float("nan"))),
            r"the step of parameter 0 must be a whole count >= 0",
        ),
        (
            lambda fast: _trained(Adam, foreach=fast),
            lambda saved: saved["state"][0].update(step=2.5),
            r"the step of parameter 0 must be a whole count >= 0; received 2\.5",
        ),
        (
            lambda fast: _trained(Adam, foreach=fast),
            lambda saved: saved["state"][0].update(exp_avg=3.0),
            r"Adam: the checkpoint's 'exp_avg' of parameter 0 must be a tensor; received float 3\.0",
        ),
    ],
    ids=[
        "nan-into-8bit",
        "centered-into-8bit",
        "bf16-dtype-into-bf16-lean",
        "negative-step",
        "nan-step",
        "fractional-step",
        "number-as-state",
    ],
)
def test_a_checkpoint_the_load_would_fail_on_is_refused_before_anything_is_replaced(make, edit, match, fast):
    _, opt = make(fast)
    saved = _edited(opt, edit)
    before = _snapshot(opt)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(saved)
    assert same(_snapshot(opt), before)
    opt.step()  # and the optimizer steps on as it was


def test_a_checkpoint_with_invalid_values_or_state_is_refused():
    _, opt = _trained(Adam)
    saved = opt.state_dict()
    bad_lr = copy.deepcopy(saved)
    bad_lr["param_groups"][0]["lr"] = -1.0
    with pytest.raises(
        ValueError, match=r"Adam: lr must be a finite number in \[0, inf\); received lr=-1\.0"
    ):
        opt.load_state_dict(bad_lr)
    bad_step = copy.deepcopy(saved)
    bad_step["state"][0]["step"] = "3"
    with pytest.raises(ValueError, match=r"the step of parameter 0 must be a whole count >= 0; received '3'"):
        opt.load_state_dict(bad_step)
    foreign = copy.deepcopy(saved)
    foreign["state"][0]["square_avg"] = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"the state of parameter 0 has 'square_avg'; Adam keeps"):
        opt.load_state_dict(foreign)
    with pytest.raises(
        ValueError,
        match=re.escape("not an optimizer state_dict: expected the keys 'state' and 'param_groups'"),
    ):
        opt.load_state_dict({"model": {}})
    assert opt.state_dict()["param_groups"][0]["lr"] == saved["param_groups"][0]["lr"]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_of_another_shape_set_from_outside_raises_before_anything_changes(name, fast):
    # As ZeroRedundancyOptimizer.load_state_dict does (it writes each rank's state itself): the
    # checkpoint checks of load_state_dict do not run, so the step checks before it changes a number.
    kwargs = {"momentum": 0.9} if name == "sgd" else {}
    params, opt = _trained(OPTIMIZERS[name], shapes=((2, 3), (3,), (4,)), foreach=fast, **kwargs)
    key = next(k for k in opt.state[params[1]] if k != "step")
    opt.state[params[1]][key] = torch.zeros(5)
    before = [p.detach().clone() for p in params]
    # the first parameter's shape makes a list.index that compared tensors fail: found by identity
    match = (
        rf"{OPTIMIZERS[name].__name__}: the state '{key}' of param group 0, params\[1\] has shape \(5,\), "
    )
    with pytest.raises(ValueError, match=match + r"but the parameter has shape \(3,\)"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True)), "no parameter changed"


_CHANGED = (
    r" \(in param group 1, whose options were changed after they were checked: .*no parameter was updated\)$"
)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per-tensor"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_an_option_changed_after_it_was_checked_is_checked_before_the_step(name, fast):
    # An assignment to param_groups skips the checks of the constructor and load_state_dict;
    # the step makes them before it changes a number, and steps again once the value is mended.
    cls = OPTIMIZERS[name]
    kwargs = {"momentum": 0.9} if name == "sgd" else {}
    params, opt = _trained(cls, groups=2, foreach=fast, **kwargs)
    for p in params:
        p.grad = torch.ones_like(p)
    before = _snapshot(opt)
    values = [p.detach().clone() for p in params]
    opt.param_groups[1]["lr"] = -0.5
    with pytest.raises(
        OptionError,
        match=rf"^{cls.__name__}: lr must be a finite number in \[0, inf\); received lr=-0\.5" + _CHANGED,
    ) as caught:
        opt.step()
    assert isinstance(caught.value, ValueError) and caught.value.rule == "range"
    assert caught.value.values == {"name": "lr", "interval": "[0, inf)", "value": "-0.5"}
    # whole through pickle, as a worker process sends it back
    back = pickle.loads(pickle.dumps(caught.value))
    assert (type(back), str(back), back.rule, back.values) == (
        OptionError,
        str(caught.value),
        caught.value.rule,
        caught.value.values,
    )
    assert all(torch.equal(p, v) for p, v in zip(params, values, strict=True)), "no parameter changed"
    same(opt.state_dict()["state"], before[0]["state"])
    opt.param_groups[1]["lr"] = 0.5
    opt.step()
    assert not any(torch.equal(p, v) for p, v in zip(params, values, strict=True))


def test_a_changed_list_item_or_another_tensor_is_checked_before_the_step():
    _, opt = _trained(Adam, groups=2, lr=torch.tensor(0.1))
    opt.param_groups[1]["betas"] = betas = [0.9, 0.999]
    opt.step()
    betas[1] = 1.0  # the list the group holds, changed in place
    with pytest.raises(ValueError, match=r"^Adam: betas\[1\] must be .*received betas\[1\]=1\.0" + _CHANGED):
        opt.step()
    opt.param_groups[1]["betas"][1] = 0.99
    opt.param_groups[1]["lr"] = torch.tensor(float("nan"))
    with pytest.raises(ValueError, match=r"^Adam: lr must be .*received lr=tensor\(nan\)" + _CHANGED):
        opt.step()
    opt.param_groups[1]["lr"] = torch.tensor(0.2)
    opt.step()


def test_zero_redundancy_optimizer_loading_invalid_options_is_refused_at_the_step(tmp_path):
    # ZeroRedundancyOptimizer.load_state_dict copies a checkpoint's options into the optimizer
    # of each rank without its load_state_dict: here, a real one over a gloo group of one.
    from torch.distributed.optim import ZeroRedundancyOptimizer

    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1
    )
    try:
        params = [torch.nn.Parameter(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))]
        zero = ZeroRedundancyOptimizer(params, optimizer_class=Adam, lr=0.1)
        params[0].grad = torch.ones_like(params[0])
        zero.step()
        zero.consolidate_state_dict(to=0)
        checkpoint = copy.deepcopy(zero.state_dict())
        checkpoint["param_groups"][0]["betas"] = (0.9, 1.5)
        zero.load_state_dict(checkpoint)
        value = params[0].detach().clone()
        with pytest.raises(
            ValueError,
            match=r"^Adam: betas\[1\] must be .*received betas\[1\]=1\.5 \(in param group 0, .*ZeroRedundancy",
        ):
            zero.step()
        assert torch.equal(params[0], value)
    finally:
        torch.distributed.destroy_process_group()


def test_a_custom_convention_is_a_dataclass_replace():
    import dataclasses

    mine = dataclasses.replace(TORCH, name="eps-inside", switches={"rmsprop": {"eps_inside_sqrt": True}})
    w = torch.zeros(2, requires_grad=True)
    opt = RMSprop([w], convention=mine)
    assert opt.param_groups[0]["eps_inside_sqrt"] is True
    assert opt.param_groups[0]["lr_inside_momentum"] is False
