"""Made-up evidence for every claim: runs in which each sub-claim is supported, contradicted or inconclusive.

The claims are judged from stored runs only. :func:`made_up` fabricates a
result for exactly the runs a claim declares (``claim.runs(suite, rates)``
on the tiny suite, every tuned rate :data:`RATE`), written so that each of
its sub-claims goes the way asked:

- *supported*: the claimed effect, well past the sub-claim's minimum effect;
- *contradicted*: the opposite effect, as large;
- *inconclusive*: no effect (the two sides of each unit alike).

Units differ by seeded noise, so the bootstrap intervals have some width,
and every sub-claim reads its own measure, so each can be set apart from the
others of its claim. The controls show no effect; with ``control_agrees``
they show the treatment's effect, which makes a supported case inconclusive.

Each ``_cN`` below says how its claim's runs are made up; :data:`MAKERS`
names, for every claim, the sub-claims its maker can set.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from descentlab.lab.batch import Batch
from descentlab.lab.claims import CLAIMS, Claim
from descentlab.lab.evidence import Evidence
from descentlab.lab.plan import DataRun, Run, SurfaceRun, Tune
from descentlab.lab.suite import Suite, get_suite
from descentlab.problems import make_problem
from descentlab.train import HeldOut, RunRecord, Series

OUTCOMES = ("supported", "contradicted", "inconclusive")
#: Which way an outcome pushes a made-up effect: the claimed way, the other way, or not at all.
SIGN = {"supported": 1.0, "contradicted": -1.0, "inconclusive": 0.0}
#: Every tuned learning rate (matched methods get theirs from it, as :func:`~descentlab.lab.plan.tuned_rates` does).
RATE = 0.1
TARGET = 1.0


def rng(*names: object) -> np.random.Generator:
    """A generator seeded from ``names``: the same names, the same draws (units shared by two runs are paired)."""
    return np.random.default_rng(zlib.crc32(repr(names).encode()))


def rates_for(suite: Suite, claim: Claim) -> dict[Tune, float | None]:
    """Every rate ``claim`` asks tuned, at :data:`RATE` (a matched method's derived from it)."""
    methods = suite.methods()
    out: dict[Tune, float | None] = {}
    for tune in claim.tunes(suite):
        method = methods[tune.method]
        out[tune] = RATE if method.tuned else float(f"{RATE * method.lr_factor:.6g}")
    return out


@dataclass(frozen=True)
class Setting:
    """What a maker is asked for: the suite, the outcome of each sub-claim, and whether the controls agree."""

    suite: Suite
    outcomes: Mapping[str, str]
    control_agrees: bool = False

    def sign(self, sub: str, control: bool = False) -> float:
        """The sign of the effect sub-claim ``sub`` shows (on its control: none, or the same if it agrees)."""
        if control and not self.control_agrees:
            return 0.0
        return SIGN[self.outcomes[sub]]


Maker = Callable[[Setting, list[Run]], dict[Run, object]]


def evidence_from(
    suite: Suite, rates: Mapping[Tune, float | None], results: Mapping[Run, object]
) -> Evidence:
    """Evidence whose runs are ``results``; reading a run not among them fails (a claim reads only what it declares)."""

    def find(run: Run) -> object:
        if run not in results:
            raise AssertionError(f"the claim read a run it did not declare: {run}")
        return results[run]

    return Evidence(suite, rates, find, list(results))


def made_up(
    claim: str | Claim,
    outcomes: str | Mapping[str, str],
    *,
    control_agrees: bool = False,
    suite: Suite | None = None,
) -> Evidence:
    """Evidence in which ``claim``'s sub-claims go as ``outcomes`` says (one outcome for all, or one per sub-claim id)."""
    claim = CLAIMS[claim] if isinstance(claim, str) else claim
    suite = suite or get_suite("tiny")
    ids = [s.id for s in claim.subclaims]
    wanted = dict.fromkeys(ids, outcomes) if isinstance(outcomes, str) else dict(outcomes)
    if set(wanted) != set(ids) or any(o not in SIGN for o in wanted.values()):
        raise ValueError(f"{claim.id}: give one of {OUTCOMES} for each of {ids}; received {wanted}")
    maker, knows = MAKERS[claim.id]
    if set(knows) != set(ids):
        raise KeyError(f"{claim.id}: the made-up runs set {knows}, the claim has sub-claims {ids}")
    rates = rates_for(suite, claim)
    runs = claim.runs(suite, rates)
    results = maker(Setting(suite, wanted, control_agrees), runs)
    if set(results) != set(runs):
        raise AssertionError(f"{claim.id}: made up {len(results)} runs for the {len(set(runs))} declared")
    return evidence_from(suite, rates, results)


# -- records and batches ------------------------------------------------------------------------


def record(
    loss,
    *,
    seconds=None,
    steps=None,
    samples_per_step: int = 32,
    train_loss=(),
    observations: dict[str, Series] | None = None,
    diverged: bool = False,
) -> RunRecord:
    """A finished run whose held-out evaluations have losses ``loss`` (at updates ``steps``, default 0, 1, ...)."""
    steps = list(range(len(loss))) if steps is None else [int(s) for s in steps]
    seconds = [0.01 * s for s in steps] if seconds is None else [float(s) for s in seconds]
    return RunRecord(
        regime="mini-batch",
        target_loss=TARGET,
        train_loss=[float(x) for x in train_loss],
        held_out=HeldOut(
            step=steps,
            samples=[samples_per_step * s for s in steps],
            seconds=seconds,
            loss=[float(x) for x in loss],
            accuracy=[None] * len(steps),
        ),
        observations=observations or {},
        updates=max(steps[-1], len(train_loss)) if steps else len(train_loss),
        samples_seen=samples_per_step * steps[-1] if steps else 0,
        training_seconds=seconds[-1] if seconds else 0.0,
        diverged=diverged,
        diverged_at=steps[-1] if diverged else None,
        diverged_loss=math.nan if diverged else None,
        stop_reason="diverged" if diverged else "steps",
    )


def escape_batch(suite: Suite, land: str, lr: float, times) -> Batch:
    """A batch on ``land`` whose start ``j`` stays in the region until update ``times[j]`` (inf: never), then
    sits at the minimum, outside it; the losses are the landscape's own at those points."""
    spec = suite.landscape(land)
    starts = spec.start_points(suite.starts, 1)
    steps = suite.surface_steps(land)
    times = np.asarray(times, dtype=float)
    t = np.arange(steps + 1)[:, None, None]
    positions = np.where(t >= times[None, :, None], np.asarray(spec.minimum), starts[None])
    left = spec.left(positions)
    assert np.array_equal(left, t[..., 0] >= times[None]), f"{land}: a start is not inside the region"
    losses = spec(positions[..., 0], positions[..., 1])
    return Batch((lr,), positions[:, None], losses[:, None])


# -- C1: full batch against mini-batches ---------------------------------------------------------
#
# Every held-out curve falls from 10 to just under the target in its first K
# evaluations, then on for 3K more; its seconds put the target at T. Smoother:
# the rough curve has bumps of a seed's size at every odd evaluation (after
# the target as before it, never at it), the smooth one none; with no effect,
# both have the seed's bumps. Sooner: T mini-batch is the seed's, T full
# batch is e^(0.7 * sign) times it. The control's runs (the full batch's
# updates made by the mini-batch method) are the full batch's run of their
# seed again, with noise of their own; where the control agrees, the
# mini-batches' run.

K = 10


def _c1_curve(time_to_target: float, bumps: float) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(4 * K + 1)
    loss = np.where(i <= K, 10 - 9.01 * i / K, 0.99 - 0.49 * (i - K) / (3 * K))
    loss = loss + np.where(i % 2 == 1, bumps, 0.0)
    return time_to_target * i / K, loss


def _c1_run(s: Setting, run: DataRun, full: bool) -> RunRecord:
    """The made-up record of ``run`` as the full batch's (``full``) or the mini-batches' run of its seed."""
    smooth, sooner = s.sign("smoother"), s.sign("sooner")
    seed, own = rng("C1", run.problem, run.seed), rng("C1", run)
    bumps, time = seed.uniform(1.5, 2.5), seed.uniform(0.8, 1.2)
    rough = (full and smooth < 0) or (not full and smooth > 0) or smooth == 0
    time *= math.exp(own.normal(0, 0.05) + (0.7 * sooner if full else 0.0))
    seconds, loss = _c1_curve(time, bumps * (1 + 0.02 * own.normal()) if rough else 0.0)
    return record(loss, seconds=seconds)


def _c1(s: Setting, runs: list[Run]) -> dict[Run, object]:
    out: dict[Run, object] = {}
    for run in runs:
        assert isinstance(run, DataRun)
        full = run.method == "gd" or (run.whole_batches and not s.control_agrees)
        out[run] = _c1_run(s, run, full)
    return out


# -- C2: online SGD learns from a stream -------------------------------------------------------
#
# Learns: the prequential loss of online SGD goes from about 0.9 down (or
# up) by 0.75 of the way to about 0.3, or stays flat, with per-sample noise.
# As well: the held-out loss falls from 1 to a seed's level for mini-batches,
# 0.1 lower (or higher) for online SGD. At learning rate 0 (the control)
# nothing moves, unless the control agrees.


def _c2(s: Setting, runs: list[Run]) -> dict[Run, object]:
    out: dict[Run, object] = {}
    for run in runs:
        assert isinstance(run, DataRun)
        control = run.lr == 0.0
        online = run.method == "online-sgd"
        seed, own = rng("C2", control, run.seed), rng("C2", run)
        learns, well = s.sign("learns", control), s.sign("as-well", control)
        first = 0.9 + seed.normal(0, 0.02)
        last = first - 0.75 * learns * (first - 0.3) if online else first
        stream = np.linspace(first, last, 200) + own.normal(0, 0.05, 200)
        level = 0.4 + seed.normal(0, 0.02) + (0.6 if control and not well else 0.0)
        final = level - (0.1 * well if online else 0.0) + own.normal(0, 0.003)
        out[run] = record(np.linspace(1.0, final, 11), train_loss=stream)
    return out


# -- C3: momentum past saddles and traps -------------------------------------------------------
#
# From each start plain descent leaves the region after 8 to 11 updates;
# momentum (and momentum at the matched step) after 3^(-sign) times as many,
# with some noise: a third as many, three times as many (past the budget:
# never), or about as many. On the controls the same, at no effect.


def _c3(s: Setting, runs: list[Run]) -> dict[Run, object]:
    out: dict[Run, object] = {}
    sub = {"momentum": "tuned", "momentum-matched": "matched"}
    for run in runs:
        assert isinstance(run, SurfaceRun)
        control = run.landscape.endswith("-control")
        plain = rng("C3", run.landscape).integers(8, 12, s.suite.starts).astype(float)
        if run.method == "sgd":
            times = plain
        else:
            factor = 3.0 ** -s.sign(sub[run.method], control)
            noise = np.exp(rng("C3", run).normal(0, 0.1, len(plain)))
            times = np.maximum(1, np.round(plain * factor * noise))
            times[times > s.suite.surface_steps(run.landscape)] = np.inf
        out[run] = escape_batch(s.suite, run.landscape, run.lrs[0], times)
    return out


# -- C4: momentum damps outliers ---------------------------------------------------------------
#
# Over the second half of each path, a start hovers about the minimum: its
# mean squared distance to it, which is also its spread about its own mean
# (and, apart, its mean excess loss) with the Gaussian twin is the start's
# own; with outliers it is 1.5 times that for plain SGD and
# 1 + 0.5 - 0.4 * sign times for momentum. The second twin (the control)
# adds nothing, unless the control agrees: then it acts as the outliers do.


def _c4_extra(s: Setting, method: str, noise: str, what: str) -> float:
    if noise == "twin":
        return 0.0
    sign = s.sign(what, control=noise == "twin-b")
    if sign == 0 and noise == "twin-b":
        return 0.0
    return 0.5 if method == "sgd" else 0.5 - 0.4 * sign


def _tail_values(mean: np.ndarray, rows: int, draw: np.random.Generator) -> np.ndarray:
    """(rows, units) positive values whose mean over rows is exactly ``mean`` for every unit."""
    w = draw.uniform(0.5, 1.5, (rows, len(mean)))
    return mean * w / w.mean(axis=0)


def _tail_offsets(spread: np.ndarray, rows: int, draw: np.random.Generator) -> np.ndarray:
    """(rows, units, 2) offsets with mean 0 over rows and mean squared norm exactly ``spread`` for every unit."""
    offsets = draw.normal(size=(rows, len(spread), 2))
    offsets -= offsets.mean(axis=0)
    return offsets * np.sqrt(spread / (offsets**2).sum(axis=-1).mean(axis=0))[:, None]


def _c4(s: Setting, runs: list[Run]) -> dict[Run, object]:
    out: dict[Run, object] = {}
    for run in runs:
        assert isinstance(run, SurfaceRun)
        spec = s.suite.landscape(run.landscape)
        steps, units = s.suite.surface_steps(run.landscape), s.suite.starts
        half, tail = (steps + 1) // 2, steps + 1 - (steps + 1) // 2
        own = rng("C4", run)
        per = {}
        for what in ("deviation", "loss"):
            base = rng("C4", run.landscape, run.method, what).lognormal(0, 0.2, units)
            extra = 1 + _c4_extra(s, run.method, run.noise, what)
            per[what] = base * extra * np.exp(own.normal(0, 0.05, units))
        starts = spec.start_points(units, 1)
        near = np.asarray(spec.minimum) + _tail_offsets(per["deviation"], tail, own)
        toward = np.linspace(1, 0, half)[:, None, None]
        positions = np.concatenate([toward * starts + (1 - toward) * near[0], near])
        start_loss = spec(starts[:, 0], starts[:, 1])
        losses = np.concatenate(
            [np.linspace(start_loss, spec.f_min + 1, half), spec.f_min + _tail_values(per["loss"], tail, own)]
        )
        out[run] = Batch(run.lrs, positions[:, None], losses[:, None])
    return out


# -- C5: AdaGrad and rare features ---------------------------------------------------------------
#
# The final weights are the true ones plus an error of a set relative size
# on each feature set: SGD's 0.8 on the rare features and 0.4 on the common
# ones; AdaGrad's smaller by a gain of 0.5 on the rare ones only (supported),
# the common ones only (contradicted), or 0.25 on both (no effect). With
# dense features (the control) the gains are alike, unless the control agrees.


def _c5_truth(suite: Suite, problem: str, options: tuple) -> tuple[np.ndarray, np.ndarray]:
    base = make_problem(suite.data(problem).problem, **suite.options(problem))
    built = make_problem(suite.data(problem).problem, **{**suite.options(problem), **dict(options)})
    return built.true_weights.double().numpy(), base.rare_features.numpy()


def _c5(s: Setting, runs: list[Run]) -> dict[Run, object]:
    out: dict[Run, object] = {}
    truths: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    for run in runs:
        assert isinstance(run, DataRun)
        key = (run.problem, run.options)
        if key not in truths:
            truths[key] = _c5_truth(s.suite, run.problem, run.options)
        truth, rare = truths[key]
        common = np.setdiff1d(np.arange(len(truth)), rare)
        sign = s.sign("rare", control=bool(run.options))
        seed, own = rng("C5", run.options, run.seed), rng("C5", run)
        weights = truth.copy()
        for index, sgd_error, gain in ((rare, 0.8, 0.25 + 0.25 * sign), (common, 0.4, 0.25 - 0.25 * sign)):
            error = sgd_error * math.exp(seed.normal(0, 0.05) + own.normal(0, 0.03))
            if run.method != "sgd":
                error *= 1 - gain
            direction = own.normal(size=len(index))
            weights[index] += error * np.linalg.norm(truth[index]) * direction / np.linalg.norm(direction)
        snapshots = Series(step=[0, 30], samples=[0, 960], value=[[0.0] * (len(truth) + 1), [*weights, 0.0]])
        out[run] = record(np.linspace(1.0, 0.5, 11), observations={"path@1epochs": snapshots})
    return out


# -- C6: AdaGrad's vanishing step against RMSProp's ------------------------------------------------
#
# Decays: the median effective learning rate follows a power of the update
# count: RMSProp's -0.25, AdaGrad's -0.25 - 0.5 * sign (plain SGD, the
# control: -0.25, unless the control agrees). Stops short: the training loss
# falls from 1 to 0.4 for RMSProp, to 0.4 + 0.25 * sign for AdaGrad.


def _c6(s: Setting, runs: list[Run]) -> dict[Run, object]:
    out: dict[Run, object] = {}
    for run in runs:
        assert isinstance(run, DataRun)
        own = rng("C6", run)
        moved = run.method != "rmsprop"
        control = run.method == "sgd"
        slope = -0.25 - (0.5 * s.sign("decays", control) if moved else 0.0) + own.normal(0, 0.03)
        steps = np.arange(0, 201, 10)
        median = 0.1 * np.maximum(steps, 1) ** slope
        rates = Series(
            step=steps.tolist(),
            samples=(32 * steps).tolist(),
            value=[[m / 4, m / 2, m, 2 * m, 4 * m] for m in median],
        )
        end = 0.4 + (0.25 * s.sign("stops-short", control) if moved else 0.0) + own.normal(0, 0.01)
        t = np.arange(200)
        train = end + (1 - end) * np.exp(-t / 20) + own.normal(0, 0.02, len(t))
        out[run] = record(np.linspace(1.0, end, 11), train_loss=train, observations={"effective-lr": rates})
    return out


# -- C7: Adam and the learning rate ------------------------------------------------------------
#
# On the fine grid each method's final loss is good (0.1), bad (0.8),
# borderline (at the threshold of keeping 80% of the best improvement, so
# resamples differ), or diverged, as its profile says, from a start of 1.
# Supported: Adam is good at three learning rates, the others at one or two;
# contradicted: SGD is good at three, Adam at one; no effect: Adam and SGD
# alike. EMA momentum (the control) is like the others, unless the control agrees.

LEVEL = {"g": 0.1, "x": 0.8, "~": 0.28, "d": math.nan}
PROFILES = {
    "supported": {"adam": "~gggx", "sgd": "xxgxd", "rmsprop": "xggxx"},
    "contradicted": {"adam": "xxgxx", "sgd": "~gggd", "rmsprop": "xggxx"},
    "inconclusive": {"adam": "xgg~x", "sgd": "xgg~d", "rmsprop": "xxgxx"},
}
OTHER = "xxg~x"


def _c7_profile(s: Setting, method: str) -> str:
    profiles = PROFILES[s.outcomes["width"]]
    if method == "ema-momentum" and s.control_agrees:
        return profiles["adam"]
    return profiles.get(method, OTHER)


def _c7(s: Setting, runs: list[Run]) -> dict[Run, object]:
    out: dict[Run, object] = {}
    grid = s.suite.fine_grid()
    for run in runs:
        profile = _c7_profile(s, run.method)
        own = rng("C7", run)
        if isinstance(run, DataRun):
            kind = profile[grid.index(run.lr)]
            if kind == "d":
                out[run] = record([1.0, 3.0, math.nan], diverged=True)
                continue
            final = LEVEL[kind] + own.normal(0, 0.05 if kind != "g" else 0.01)
            out[run] = record(np.linspace(1.0 + own.normal(0, 0.01), final, 6))
            continue
        steps, units = s.suite.surface_steps(run.landscape), s.suite.starts
        spread = np.array([[0.01 if k == "g" else 0.05] for k in profile])
        finals = np.array([[LEVEL[k]] for k in profile]) + spread * own.normal(size=(len(profile), units))
        losses = np.linspace(np.ones_like(finals), finals, steps + 1)
        losses[0] = 1.0  # a diverged run starts where the others do
        spec = s.suite.landscape(run.landscape)
        positions = np.broadcast_to(spec.start_points(units, 1), (steps + 1, len(run.lrs), units, 2)).copy()
        out[run] = Batch(run.lrs, positions, losses)
    return out


# -- C8: lean optimizer state ---------------------------------------------------------------------
#
# Full precision's final training loss is a seed's level (about 0.5); a lean
# form's is exp(effect) times it, per seed: an effect of about 0 (within the
# tolerance: equivalent), 10 tolerances above it (not equivalent), or exactly
# the tolerance on average, spread across it (the interval straddles it).
# The control (Adam with plain-rounded state) shows the known failure, 10
# tolerances above, unless the control agrees: then it is equivalent too.
# Every run records the lean-state observer: lean forms keep 85% of the
# elements lean, the control all of them, full precision none.

C8_SPREAD = np.array([-1.2, -0.4, 0.0, 0.4, 1.2])


def _c8_effect(s: Setting, run: DataRun, tolerance: float) -> tuple[float, tuple[float, float]]:
    """(log ratio to full precision, lean-state observation) of a C8 run."""
    hyper = dict(run.hyperparameters)
    own = rng("C8", run)
    if not hyper:
        return 0.0, (0.0, 8.0)
    if "state_dtype" in hyper:  # the control
        effect = (
            own.normal(0, 0.1 * tolerance) if s.control_agrees else 10 * tolerance + own.normal(0, tolerance)
        )
        return effect, (1.0, 4.0)
    outcome = s.outcomes[hyper["lean_state"]]
    if outcome == "supported":
        effect = own.normal(0, 0.1 * tolerance)
    elif outcome == "contradicted":
        effect = 10 * tolerance + own.normal(0, tolerance)
    else:
        effect = tolerance + tolerance * C8_SPREAD[(run.seed - 1) % len(C8_SPREAD)]
    return effect, (0.85, 2.9)


def _c8(s: Setting, runs: list[Run]) -> dict[Run, object]:
    tolerance = CLAIMS["C8"].subclaims[0].min_effect
    out: dict[Run, object] = {}
    for run in runs:
        assert isinstance(run, DataRun)
        effect, (share, size) = _c8_effect(s, run, tolerance)
        final = 0.5 * math.exp(rng("C8", run.problem, run.method, run.seed).normal(0, 0.1) + effect)
        train = np.concatenate([np.linspace(2.0, final, 90), np.full(10, final)])
        state = Series(step=[0, 100], samples=[0, 3200], value=[[0.0, 0.0], [share, size]])
        out[run] = record(np.linspace(2.0, final, 6), train_loss=train, observations={"lean-state": state})
    return out


#: Every claim's maker and the sub-claims it can set (a claim or sub-claim without one fails the tests).
MAKERS: dict[str, tuple[Maker, tuple[str, ...]]] = {
    "C1": (_c1, ("smoother", "sooner")),
    "C2": (_c2, ("learns", "as-well")),
    "C3": (_c3, ("tuned", "matched")),
    "C4": (_c4, ("deviation", "loss")),
    "C5": (_c5, ("rare",)),
    "C6": (_c6, ("decays", "stops-short")),
    "C7": (_c7, ("width",)),
    "C8": (_c8, ("bfloat16", "8bit")),
}
