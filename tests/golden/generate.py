"""Write ``frameworks.json``: trajectories computed by Keras 3 and optax themselves.

The golden values the convention tests replay in descentlab. Run it in an
environment that has Keras and optax (they are not test dependencies):

    python -m venv /tmp/golden && /tmp/golden/bin/pip install "jax[cpu]" optax keras
    KERAS_BACKEND=jax /tmp/golden/bin/python tests/golden/generate.py

Every case runs in float64 on the same closed-loop problem: six parameters,
gradient ``g = c * (p - p_star) + noise_k`` evaluated at the current
parameters, and (where ``scheduled``) the learning rate ``lr * (1 + 0.5 *
sin(0.3 k))`` at the k-th update (k = 0, 1, ...), given to each framework as
its own schedule object.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

keras.config.set_floatx("float64")

STEPS = 40
rng = np.random.default_rng(2024)
INIT = rng.normal(size=6)
CURVATURE = rng.uniform(0.5, 2.0, size=6)
OPTIMUM = rng.choice([-1.0, 1.0], size=6) * rng.uniform(1.0, 3.0, size=6)
NOISE = 0.3 * rng.normal(size=(STEPS, 6))


def grad(p: np.ndarray, k: int) -> np.ndarray:
    return CURVATURE * (p - OPTIMUM) + NOISE[k]


def factor(k):
    return 1 + 0.5 * math.sin(0.3 * k)


class Wavy(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, base: float) -> None:
        self.base = base

    def __call__(self, step):
        # jnp, not keras.ops: keras.ops computes this in float32 even under floatx float64
        return self.base * (1 + 0.5 * jnp.sin(0.3 * jnp.asarray(step, dtype=jnp.float64)))


def run_keras(make, lr: float, scheduled: bool) -> list[list[float]]:
    var = keras.Variable(INIT.copy(), dtype="float64")
    opt = make(Wavy(lr) if scheduled else lr)
    opt.build([var])
    out = []
    for k in range(STEPS):
        g = grad(np.asarray(var.value), k)
        opt.apply_gradients([(keras.ops.convert_to_tensor(g, dtype="float64"), var)])
        out.append(np.asarray(var.value).tolist())
    return out


def run_optax(make, lr: float, scheduled: bool) -> list[list[float]]:
    learning_rate = (lambda count: lr * (1 + 0.5 * jnp.sin(0.3 * count))) if scheduled else lr
    tx = make(learning_rate)
    params = jnp.asarray(INIT.copy())
    state = tx.init(params)
    out = []
    for k in range(STEPS):
        g = jnp.asarray(grad(np.asarray(params), k))
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.asarray(params).tolist())
    return out


def optax_ema_sgd(momentum: float):
    def make(learning_rate):
        scale = (
            optax.scale_by_schedule(lambda c: -learning_rate(c))
            if callable(learning_rate)
            else optax.scale(-learning_rate)
        )
        return optax.chain(optax.ema(momentum, debias=True), scale)

    return make


# (framework, its call as text, how to make it, lr, scheduled, descentlab equivalent, differs from torch)
K = keras.optimizers
CASES = [
    ("keras", "SGD(momentum=0.9)", lambda lr: K.SGD(lr, momentum=0.9), 0.05, True,
     ("sgd", {"momentum": 0.9, "convention": "keras"}), True),
    ("keras", "SGD(momentum=0.9, nesterov=True)", lambda lr: K.SGD(lr, momentum=0.9, nesterov=True), 0.05, True,
     ("sgd", {"momentum": 0.9, "nesterov": True, "convention": "keras"}), True),
    ("keras", "Adagrad()", lambda lr: K.Adagrad(lr), 0.3, True,
     ("adagrad", {"initial_accumulator_value": 0.1, "eps": 1e-7, "convention": "keras"}), True),
    ("keras", "RMSprop(momentum=0.9)", lambda lr: K.RMSprop(lr, momentum=0.9), 0.01, True,
     ("rmsprop", {"alpha": 0.9, "eps": 1e-7, "momentum": 0.9, "convention": "keras"}), True),
    ("keras", "RMSprop(centered=True, epsilon=1e-3)", lambda lr: K.RMSprop(lr, centered=True, epsilon=1e-3), 0.01,
     True, ("rmsprop", {"alpha": 0.9, "eps": 1e-3, "centered": True, "convention": "keras"}), True),
    ("keras", "Adam(epsilon=1e-3)", lambda lr: K.Adam(lr, epsilon=1e-3), 0.05, True,
     ("adam", {"eps": 1e-3, "convention": "keras"}), True),
    ("keras", "Adam(amsgrad=True)", lambda lr: K.Adam(lr, amsgrad=True), 0.05, True,
     ("adam", {"eps": 1e-7, "amsgrad": True, "convention": "keras"}), False),
    ("keras", "AdamW(weight_decay=0.1, epsilon=1e-3)", lambda lr: K.AdamW(lr, weight_decay=0.1, epsilon=1e-3),
     0.05, True, ("adamw", {"eps": 1e-3, "weight_decay": 0.1, "convention": "keras"}), True),
    ("optax", "sgd(momentum=0.9)", lambda lr: optax.sgd(lr, momentum=0.9), 0.05, True,
     ("sgd", {"momentum": 0.9, "convention": "optax"}), False),
    ("optax", "sgd(momentum=0.9, nesterov=True)", lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True), 0.05,
     True, ("sgd", {"momentum": 0.9, "nesterov": True, "convention": "optax"}), False),
    ("optax", "chain(ema(0.9, debias=True), scale(-lr))", optax_ema_sgd(0.9), 0.05, True,
     ("sgd", {"momentum": 0.9, "momentum_form": "ema", "debias": True, "convention": "optax"}), False),
    ("optax", "adagrad()", lambda lr: optax.adagrad(lr), 0.3, True,
     ("adagrad", {"initial_accumulator_value": 0.1, "eps": 1e-7, "convention": "optax"}), True),
    ("optax", "rmsprop(decay=0.9, momentum=0.9)", lambda lr: optax.rmsprop(lr, decay=0.9, momentum=0.9), 0.01,
     True, ("rmsprop", {"alpha": 0.9, "eps": 1e-8, "momentum": 0.9, "convention": "optax"}), True),
    ("optax", "rmsprop(decay=0.9, eps=1e-3, centered=True)",
     lambda lr: optax.rmsprop(lr, decay=0.9, eps=1e-3, centered=True), 0.01, True,
     ("rmsprop", {"alpha": 0.9, "eps": 1e-3, "centered": True, "convention": "optax"}), True),
    ("optax", "adam(eps_root=1e-4)", lambda lr: optax.adam(lr, eps_root=1e-4), 0.05, True,
     ("adam", {"eps_root": 1e-4, "convention": "optax"}), False),
    ("optax", "amsgrad(b2=0.9)", lambda lr: optax.amsgrad(lr, b2=0.9), 0.05, True,
     ("adam", {"amsgrad": True, "betas": (0.9, 0.9), "convention": "optax"}), True),
    ("optax", "adamw(weight_decay=0.1)", lambda lr: optax.adamw(lr, weight_decay=0.1), 0.05, True,
     ("adamw", {"weight_decay": 0.1, "convention": "optax"}), False),
]  # fmt: skip


def main() -> None:
    cases = []
    for framework, call, make, lr, scheduled, (name, kwargs), differs in CASES:
        runner = run_keras if framework == "keras" else run_optax
        cases.append(
            {
                "framework": framework,
                "call": call,
                "lr": lr,
                "scheduled": scheduled,
                "optimizer": name,
                "kwargs": kwargs,
                "differs_from_torch": differs,
                "trajectory": runner(make, lr, scheduled),
            }
        )
        print(f"{framework:6} {call}", file=sys.stderr)
    out = {
        "versions": {"keras": keras.__version__, "optax": optax.__version__, "jax": jax.__version__},
        "steps": STEPS,
        "init": INIT.tolist(),
        "curvature": CURVATURE.tolist(),
        "optimum": OPTIMUM.tolist(),
        "noise": NOISE.tolist(),
        "cases": cases,
    }
    path = Path(__file__).with_name("frameworks.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
