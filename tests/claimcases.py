"""Made-up stored runs for the tiny suite's plan, in which every claim clearly holds, or clearly fails.

The claims and the report are computed from stored runs only; feeding them
runs written here to make each claim hold (or fail) and checking that the
verdicts follow shows that no verdict is fixed in the code.
"""

from __future__ import annotations

import numpy as np

from descentlab.lab import protocol
from descentlab.lab.evidence import Evidence
from descentlab.lab.store import StoredRun, run_key
from descentlab.lab.suite import get_suite
from descentlab.problems import make_problem
from descentlab.train import HeldOut, RunRecord, Series

START, TARGET = 10.0, 1.0
BEST_LR = 0.1


def record(
    losses, *, seconds_per_step=0.01, samples_per_step=10, train_loss=(), observations=None, diverged=False
):
    """A run record with a held-out evaluation after every update."""
    steps = list(range(len(losses)))
    return RunRecord(
        regime="mini-batch",
        target_loss=TARGET,
        train_loss=list(train_loss),
        held_out=HeldOut(
            step=steps,
            samples=[s * samples_per_step for s in steps],
            seconds=[s * seconds_per_step for s in steps],
            loss=[float(x) for x in losses],
            accuracy=[None] * len(steps),
        ),
        observations=observations or {},
        updates=len(steps) - 1,
        samples_seen=(len(steps) - 1) * samples_per_step,
        training_seconds=(len(steps) - 1) * seconds_per_step,
        diverged=diverged,
        diverged_at=len(steps) - 1 if diverged else None,
    )


def smooth(final: float, n: int = 11) -> list[float]:
    """A monotone curve from START to ``final``."""
    return list(np.linspace(START, final, n))


def rough(final: float, n: int = 11) -> list[float]:
    """A zigzag curve from START to ``final``."""
    base = np.linspace(START, final, n)
    wiggle = np.where(np.arange(n) % 2 == 1, 3.0, 0.0)
    wiggle[0] = wiggle[-1] = 0.0
    return list(base + wiggle)


def early(n: int = 11) -> list[float]:
    """Reaches the target after 2 updates and stays there."""
    return [START, 5.0] + [0.5] * (n - 2)


def never(n: int = 11) -> list[float]:
    """Never reaches the target."""
    return list(np.linspace(START, 5.0, n))


def _path(kick: float, seed: int, n: int = 40) -> Series:
    rng = np.random.default_rng(seed)
    moves = rng.normal(0, 0.001, size=(n, 2))
    moves[n // 2 + 5 :: 6] *= kick  # a few large kicks in the second half
    points = np.cumsum(moves, axis=0)
    return Series(step=list(range(n)), samples=list(range(n)), value=points.tolist())


def _weights(rate: float, truth: np.ndarray, n: int = 8) -> Series:
    t = np.linspace(0, 1, n)
    values = [[*(truth * (1 - np.exp(-rate * x))), 0.0] for x in t]
    return Series(step=list(range(n)), samples=[int(50 * x * (n - 1)) for x in t], value=values)


def _effective(decays: bool, n: int = 10) -> Series:
    steps = list(range(n + 1))
    lr = [0.1 * (max(s, 1) ** -0.5 if decays else 1.0) for s in steps]
    return Series(step=steps, samples=steps, value=[[x / 2, x / 1.5, x, x * 1.5, x * 2] for x in lr])


def fake_record(trial: protocol.Trial, holds: bool, truth: np.ndarray) -> RunRecord:
    """The made-up record of ``trial`` in the world where every claim holds (or fails)."""
    m, p, lr = trial.method, trial.problem, trial.lr
    best = lr == BEST_LR or trial.experiment != protocol.TUNE
    final = 0.5 if best else 5.0

    if p == "sparse-logreg":
        if m == "gd":  # C1: smoother but slower, or rougher and faster
            return record(smooth(final) if holds else rough(final), seconds_per_step=0.1 if holds else 0.001)
        if m == "sgd" and trial.experiment != protocol.RARE:
            return record(rough(final) if holds else smooth(final), seconds_per_step=0.001 if holds else 0.1)
        if m == "online-sgd":  # C2: the prequential loss falls, or rises
            stream = np.linspace(1.0, 0.5, 100) if holds else np.linspace(0.5, 1.0, 100)
            return record(smooth(final), train_loss=stream)
        if trial.experiment == protocol.RARE:  # C5: AdaGrad's rare weights converge faster, or slower
            fast = (m == "adagrad") == holds
            return record(
                smooth(final), observations={"path@50samples": _weights(8.0 if fast else 1.0, truth)}
            )
        if m in ("adagrad", "rmsprop"):  # C6
            decays = (m == "adagrad") == holds
            behind = m == "adagrad" and holds and best
            return record(smooth(2.0 if behind else final), observations={"effective-lr": _effective(decays)})
        if m == "adam":  # C7: good at every learning rate, or only at the best
            return record(smooth(0.5 if holds else final))
        # C7: the others good only at their best learning rate, or at every one.
        return record(smooth(0.5 if (best or not holds) else 9.0))
    if p == "saddle":  # C3: plain descent never gets there and momentum does, or the reverse
        if m == "sgd":
            return record(never() if holds else early())
        if m in ("momentum", "momentum-matched"):
            return record(early() if holds else never())
        return record(smooth(final))
    if p == "quadratic2d-outliers":  # C4: momentum's kicks are small, or large
        if m in ("momentum", "momentum-matched"):
            kick = 1.0 if holds else 100.0
        elif m == "sgd":
            kick = 100.0 if holds else 1.0
        else:
            kick = 10.0
        good_everywhere = holds if m == "adam" else not holds  # C7 again
        loss = smooth(0.5 if good_everywhere else final)
        return record(loss, observations={"path": _path(kick, trial.seed)})
    raise AssertionError(f"no made-up run for {p}")


def fake_evidence(holds: bool, alter=None) -> Evidence:
    """The tiny suite's evidence, from made-up runs in which every claim holds (or fails).

    ``alter(trial, record)``, when given, returns the record to store instead.
    """
    suite = get_suite("tiny")
    spec = suite.spec("sparse-logreg")
    truth = make_problem(spec.problem, **spec.options).true_weights.double().numpy()

    def find(trial: protocol.Trial) -> StoredRun:
        rec = fake_record(trial, holds, truth)
        if alter is not None:
            rec = alter(trial, rec)
        return StoredRun(
            key=run_key(trial.config),
            experiment=trial.experiment,
            config=trial.config,
            status="diverged" if rec.diverged else "finished",
            record=rec,
            error=None,
        )

    return Evidence(protocol.build_plan(suite, find), find)
