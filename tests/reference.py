"""Independent float64 references, written from the docstrings' formulas in NumPy.

They share no code with ``descentlab.optim``: each function reads one
parameter group's hyperparameters (a plain dict), the parameter, its gradient,
its state (a dict of arrays this module owns) and the step number ``t``
(1-based, counted per parameter), and returns the new parameter. They are the
oracle for everything torch.optim lacks: the EMA momentum, ``eps_root`` and the
Keras and optax conventions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray
State = dict[str, Array]


def sgd(p: Array, g: Array, state: State, t: int, h: dict[str, Any]) -> Array:
    if h["maximize"]:
        g = -g
    g = g + h["weight_decay"] * p
    mu, lr = h["momentum"], h["lr"]
    if mu == 0:
        return p - lr * g
    lr_inside = h["lr_inside_momentum"]
    x = lr * g if lr_inside else g
    if h["momentum_form"] == "ema":
        b = mu * state.get("b", np.zeros_like(p)) + (1 - mu) * x
        nesterov_weight = 1 - mu
    else:
        b = x.copy() if t == 1 else mu * state["b"] + (1 - h["dampening"]) * x
        nesterov_weight = 1.0
    state["b"] = b
    b_hat = b / (1 - mu**t) if h["debias"] else b
    d = nesterov_weight * x + mu * b_hat if h["nesterov"] else b_hat
    return p - d if lr_inside else p - lr * d


def adagrad(p: Array, g: Array, state: State, t: int, h: dict[str, Any]) -> Array:
    if h["maximize"]:
        g = -g
    g = g + h["weight_decay"] * p
    clr = h["lr"] / (1 + (t - 1) * h["lr_decay"])
    s = state.get("s", np.full_like(p, h["initial_accumulator_value"])) + g * g
    state["s"] = s
    denom = np.sqrt(s + h["eps"]) if h["eps_inside_sqrt"] else np.sqrt(s) + h["eps"]
    return p - clr * g / denom


def rmsprop(p: Array, g: Array, state: State, t: int, h: dict[str, Any]) -> Array:
    if h["maximize"]:
        g = -g
    g = g + h["weight_decay"] * p
    a, lr, mu, eps = h["alpha"], h["lr"], h["momentum"], h["eps"]
    v = a * state.get("v", np.zeros_like(p)) + (1 - a) * g * g
    state["v"] = v
    var = v
    if h["centered"]:
        ga = a * state.get("ga", np.zeros_like(p)) + (1 - a) * g
        state["ga"] = ga
        var = v - ga * ga
    sigma = np.sqrt(var + eps) if h["eps_inside_sqrt"] else np.sqrt(var) + eps
    if mu == 0:
        return p - lr * g / sigma
    b = state.get("b", np.zeros_like(p))
    if h["lr_inside_momentum"]:
        b = mu * b + lr * g / sigma
        state["b"] = b
        return p - b
    b = mu * b + g / sigma
    state["b"] = b
    return p - lr * b


def adam(p: Array, g: Array, state: State, t: int, h: dict[str, Any]) -> Array:
    if h["maximize"]:
        g = -g
    lr, wd, eps = h["lr"], h["weight_decay"], h["eps"]
    b1, b2 = h["betas"]
    if h["decoupled_weight_decay"]:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = b1 * state.get("m", np.zeros_like(p)) + (1 - b1) * g
    v = b2 * state.get("v", np.zeros_like(p)) + (1 - b2) * g * g
    state["m"], state["v"] = m, v
    if h["eps_hat"]:
        if h["amsgrad"]:
            state["vmax"] = np.maximum(state.get("vmax", np.zeros_like(p)), v)
            v = state["vmax"]
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        return p - lr_t * m / (np.sqrt(v) + eps)
    m_hat = m / (1 - b1**t)
    if h["amsgrad"] and h["amsgrad_max_of_corrected"]:
        state["vmax"] = np.maximum(state.get("vmax", np.zeros_like(p)), v / (1 - b2**t))
        v_hat = state["vmax"]
    elif h["amsgrad"]:
        state["vmax"] = np.maximum(state.get("vmax", np.zeros_like(p)), v)
        v_hat = state["vmax"] / (1 - b2**t)
    else:
        v_hat = v / (1 - b2**t)
    return p - lr * m_hat / (np.sqrt(v_hat + h["eps_root"]) + eps)


REFERENCES: dict[str, Callable[[Array, Array, State, int, dict[str, Any]], Array]] = {
    "sgd": sgd,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adam,  # AdamW is Adam with decoupled_weight_decay=True in its groups
}
