"""Steps worked out by hand, the arithmetic in the comments (the third oracle)."""

from __future__ import annotations

import math

import pytest
import torch

from descentlab.optim import SGD, Adagrad, Adam, AdamW, RMSprop


def steps(opt, w, grads):
    out = []
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(w.detach().clone().tolist())
    return out


def path(opt, w, grads):
    """The values of a one-element parameter after each step."""
    return [x[0] for x in steps(opt, w, [[g] for g in grads])]


def param(*values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def test_sgd_heavy_ball_first_step_copies_the_gradient():
    # b1 = g1 = 1 (no dampening at step 1); w1 = 1 - 0.1 * 1 = 0.9
    # b2 = 0.9 * 1 + (1 - 0.5) * 2 = 1.9; w2 = 0.9 - 0.1 * 1.9 = 0.71
    w = param(1.0)
    assert path(SGD([w], lr=0.1, momentum=0.9, dampening=0.5), w, [1.0, 2.0]) == pytest.approx(
        [0.9, 0.71], abs=1e-15
    )


def test_sgd_nesterov():
    # b1 = 1; d1 = g1 + 0.5 * b1 = 1.5; w1 = 0 - 0.1 * 1.5 = -0.15
    # b2 = 0.5 * 1 + 2 = 2.5; d2 = 2 + 0.5 * 2.5 = 3.25; w2 = -0.15 - 0.325 = -0.475
    w = param(0.0)
    assert path(SGD([w], lr=0.1, momentum=0.5, nesterov=True), w, [1.0, 2.0]) == pytest.approx(
        [-0.15, -0.475], abs=1e-15
    )


def test_sgd_ema_with_debias():
    # m1 = 0.5 * 0 + 0.5 * 2 = 1;   m_hat = 1 / (1 - 0.5)     = 2;     w1 = 0 - 0.1 * 2     = -0.2
    # m2 = 0.5 * 1 + 0.5 * 4 = 2.5; m_hat = 2.5 / (1 - 0.25)  = 10/3;  w2 = -0.2 - 1/3      = -8/15
    w = param(0.0)
    opt = SGD([w], lr=0.1, momentum=0.5, momentum_form="ema", debias=True)
    assert path(opt, w, [2.0, 4.0]) == pytest.approx([-0.2, -0.2 - 1 / 3], abs=1e-15)


def test_sgd_ema_without_debias_starts_short():
    # m1 = (1 - 0.9) * 1 = 0.1; w1 = 1 - 1.0 * 0.1 = 0.9
    w = param(1.0)
    assert path(SGD([w], lr=1.0, momentum=0.9, momentum_form="ema"), w, [1.0]) == pytest.approx(
        [0.9], abs=1e-15
    )


def test_sgd_keras_velocity_under_a_changing_learning_rate():
    # Keras: v1 = -0.1 * 1 = -0.1, w1 = 1 - 0.1 = 0.9;
    #        lr becomes 0.2: v2 = 0.9 * -0.1 - 0.2 * 1 = -0.29, w2 = 0.9 - 0.29 = 0.61
    # PyTorch: b2 = 0.9 * 1 + 1 = 1.9, w2 = 0.9 - 0.2 * 1.9 = 0.52
    for convention, expected in (("keras", 0.61), ("torch", 0.52)):
        w = param(1.0)
        opt = SGD([w], lr=0.1, momentum=0.9, convention=convention)
        path(opt, w, [1.0])
        opt.param_groups[0]["lr"] = 0.2
        assert path(opt, w, [1.0]) == pytest.approx([expected], abs=1e-15), convention


def test_adagrad_torch_and_keras():
    # torch: s = 0 + 9 = 9; w = 1 - 1.0 * 3 / (3 + 1e-10)
    w = param(1.0)
    assert steps(Adagrad([w], lr=1.0), w, [[3.0]])[0][0] == pytest.approx(1 - 3 / (3 + 1e-10), abs=1e-15)
    # keras: s = 0.1 + 9 = 9.1; w = 1 - 1.0 * 3 / sqrt(9.1 + 1e-7)
    w = param(1.0)
    opt = Adagrad.from_convention([w], "keras", lr=1.0)
    assert steps(opt, w, [[3.0]])[0][0] == pytest.approx(1 - 3 / math.sqrt(9.1 + 1e-7), abs=1e-15)


def test_adagrad_lr_decay():
    # step 2 with lr_decay 0.5: clr = 1 / (1 + 1 * 0.5) = 2/3; s2 = 1 + 1 = 2; w2 = w1 - (2/3) / sqrt(2)
    w = param(0.0)
    (w1,), (w2,) = steps(Adagrad([w], lr=1.0, lr_decay=0.5, eps=0.0), w, [[1.0], [1.0]])
    assert w1 == pytest.approx(-1.0, abs=1e-15)
    assert w2 == pytest.approx(-1.0 - (2 / 3) / math.sqrt(2), abs=1e-15)


def test_rmsprop_keras_documentation_example():
    # Keras's RMSprop docstring: lr 0.1 on loss var**2 / 2 from var = 10 gives 9.683772.
    # v = 0.1 * 100 = 10; var = 10 - 0.1 * 10 / sqrt(10 + 1e-7) = 9.6837722...
    w = param(10.0)
    opt = RMSprop.from_convention([w], "keras", lr=0.1)
    assert steps(opt, w, [[10.0]])[0][0] == pytest.approx(9.683772, abs=5e-7)


def test_rmsprop_centered_and_momentum():
    # alpha 0.5: v = 0.5 * 4 = 2; g_avg = 0.5 * 2 = 1; sigma = sqrt(2 - 1) + 0 = 1
    # b = 0 * 0.5 + 2 / 1 = 2; w = 0 - 0.1 * 2 = -0.2
    w = param(0.0)
    opt = RMSprop([w], lr=0.1, alpha=0.5, eps=0.0, centered=True, momentum=0.5)
    assert path(opt, w, [2.0]) == pytest.approx([-0.2], abs=1e-15)


def test_adam_first_step_has_size_lr():
    # m_hat = g, v_hat = g^2: the step is lr * g / (|g| + eps)
    w = param(0.0, 0.0)
    (step,) = steps(Adam([w], lr=0.1, eps=1e-8), w, [[3.0, -1e-3]])
    assert step == pytest.approx([-0.1 * 3 / (3 + 1e-8), 0.1 * 1e-3 / (1e-3 + 1e-8)], abs=1e-15)


def test_adam_keras_epsilon_hat_first_step():
    # m1 = 0.1 g, v1 = 0.001 g^2; lr_t = 0.1 * sqrt(0.001) / 0.1 = sqrt(0.001)
    # step = lr_t * m1 / (sqrt(v1) + eps) = sqrt(0.001) * 0.1 * 2 / (sqrt(0.001) * 2 + 0.01)
    w = param(0.0)
    (step,) = steps(Adam([w], lr=0.1, eps=0.01, convention="keras"), w, [[2.0]])
    s = math.sqrt(0.001)
    assert step[0] == pytest.approx(-s * 0.2 / (s * 2 + 0.01), abs=1e-15)


def test_adamw_decays_before_the_adam_step():
    # w = 2 * (1 - 0.1 * 0.5) = 1.9, then the first Adam step: -0.1 * 1 / (1 + 1e-8)
    w = param(2.0)
    (step,) = steps(AdamW([w], lr=0.1, weight_decay=0.5), w, [[1.0]])
    assert step[0] == pytest.approx(1.9 - 0.1 / (1 + 1e-8), abs=1e-15)


def test_amsgrad_torch_versus_optax():
    # g = 1 then 0.1, beta2 = 0.5, beta1 = 0:
    # v1 = 0.5, v2 = 0.25 + 0.005 = 0.255
    # torch keeps max(v) = 0.5 and divides by (1 - 0.25): v_hat2 = 0.5 / 0.75 = 2/3
    # optax keeps max(v_hat): max(0.5 / 0.5, 0.255 / 0.75) = 1
    for convention, v_hat in (("torch", 2 / 3), ("optax", 1.0)):
        w = param(0.0)
        opt = Adam([w], lr=1.0, betas=(0.0, 0.5), eps=0.0, amsgrad=True, convention=convention)
        (w1,), (w2,) = steps(opt, w, [[1.0], [0.1]])
        assert w2 - w1 == pytest.approx(-0.1 / math.sqrt(v_hat), abs=1e-15), convention
