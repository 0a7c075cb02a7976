"""The usual claims about these methods, each with its experiment, measure, rule and neighbouring rules.

Every claim is a constant written before any run: what is claimed, which
runs it reads, what it measures, and the rule that turns the measurements
into a verdict, with its parameters. Nothing here knows what the data will
say. A claim is assessed per *case* (a problem, or a problem and a
comparison); the verdict then follows one rule shared by all claims
(:func:`verdict`): **supported** when the claim holds in at least two thirds
of the cases that could be measured, **not supported** when it holds in at
most one third, **mixed** in between (the report then lists where it holds
and where not), **not measured** when no case could be measured. Each claim
is also judged under neighbouring rules (another target depth, another
tolerance), and the report shows whether the verdict survives them.

Fair comparison: every method runs at its own tuned learning rate;
momentum is also compared at plain SGD's effective step size
(``momentum-matched``); every number is a median over the suite's seeds
(at least 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ..problems import make_problem
from . import analysis
from .evidence import Evidence
from .methods import METHODS

SUPPORTED, NOT_SUPPORTED, MIXED, NOT_MEASURED = "supported", "not supported", "mixed", "not measured"
#: A claim is supported when it holds in at least this share of the measurable cases ...
SUPPORT_SHARE = 2 / 3
#: ... and not supported when it holds in at most this share.
REJECT_SHARE = 1 / 3

Params = Mapping[str, float]


@dataclass(frozen=True)
class Case:
    """One comparison a claim makes: where, whether it holds there (None: not measurable), the numbers."""

    label: str
    holds: bool | None
    numbers: tuple[tuple[str, str], ...] = ()
    why: str = ""


@dataclass(frozen=True)
class Finding:
    """A claim judged under one rule: the cases, the verdict and the counts it came from."""

    label: str
    params: dict[str, float]
    rule: str
    cases: tuple[Case, ...]
    verdict: str
    held: int
    measured: int

    def depends_on(self) -> str:
        """Where the claim holds and where not, in words (empty when it holds everywhere or nowhere)."""
        yes = [c.label for c in self.cases if c.holds is True]
        no = [c.label for c in self.cases if c.holds is False]
        if not yes or not no:
            return ""
        return f"it holds for {', '.join(yes)}; it does not for {', '.join(no)}"


def verdict(cases: tuple[Case, ...] | list[Case]) -> tuple[str, int, int]:
    """The shared verdict rule (see the module docstring): (verdict, cases where it holds, cases measured).

    >>> verdict([Case("a", True), Case("b", True), Case("c", False), Case("d", None)])
    ('supported', 2, 3)
    >>> verdict([Case("a", True), Case("b", False)])[0], verdict([Case("a", None)])[0]
    ('mixed', 'not measured')
    """
    measured = [c for c in cases if c.holds is not None]
    held = sum(1 for c in measured if c.holds)
    if not measured:
        return NOT_MEASURED, 0, 0
    share = held / len(measured)
    if share >= SUPPORT_SHARE - 1e-12:
        return SUPPORTED, held, len(measured)
    if share <= REJECT_SHARE + 1e-12:
        return NOT_SUPPORTED, held, len(measured)
    return MIXED, held, len(measured)


Assess = Callable[[Evidence, Params], list[Case]]


@dataclass(frozen=True)
class Claim:
    """A claim, its experiment and measure, its rule (a template over ``params``) and neighbouring rules.

    ``neighbours`` are (label, parameter changes) pairs: the same measure
    judged with another target depth or tolerance.
    """

    key: str
    name: str
    statement: str
    experiment: str
    measure: str
    rule: str
    params: dict[str, float]
    neighbours: tuple[tuple[str, dict[str, float]], ...]
    assess: Assess = field(repr=False)

    def rule_text(self, params: Params) -> str:
        """The rule with its parameters filled in."""
        return self.rule.format(**{k: _param_text(k, v) for k, v in params.items()})

    def measure_text(self, params: Params) -> str:
        """The measure with its parameters filled in."""
        return self.measure.format(**{k: _param_text(k, v) for k, v in params.items()})

    def judge(self, evidence: Evidence, changes: Params | None = None, label: str = "as declared") -> Finding:
        """The claim judged on ``evidence`` under the declared rule, or with ``changes`` to its parameters."""
        params = {**self.params, **(changes or {})}
        cases = tuple(self.assess(evidence, params))
        result, held, measured = verdict(cases)
        return Finding(label, params, self.rule_text(params), cases, result, held, measured)

    def judge_all(self, evidence: Evidence) -> list[Finding]:
        """The declared rule's finding, then one for each neighbouring rule."""
        return [self.judge(evidence)] + [
            self.judge(evidence, changes, label) for label, changes in self.neighbours
        ]


def _param_text(name: str, value: float) -> str:
    if name in ("margin", "keep", "window", "drop", "at"):
        return f"{100 * value:g}%"
    if name == "scan":  # C3's switch between the tuned settings and a scan of the grid
        return (
            "plain descent at every learning rate of the grid against momentum at the same effective "
            "step, lr x 0.1, seed 0"
            if value
            else "each at its tuned setting, and momentum also at plain descent's effective step"
        )
    return f"{value:g}"


# -- formatting helpers --------------------------------------------------------------------


def number(value: float | None, digits: int = 4) -> str:
    """A number for a table: significant digits, 'never' for inf, '-' for None or NaN.

    >>> number(0.000123456), number(math.inf), number(None)
    ('0.0001235', 'never', '-')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "never" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _less(a: float, b: float, margin: float) -> bool:
    """``a`` is below ``b`` by at least ``margin`` of ``b`` (inf is above everything finite)."""
    if math.isinf(a):
        return False
    if math.isinf(b):
        return True
    return a < b - margin * abs(b)


def _medians(evidence: Evidence, method: str, problem: str, measure: Callable) -> float:
    return analysis.median([measure(r) for r in evidence.records(method, problem)])


# -- C1: full batch against mini-batches ------------------------------------------------------


def _per_update(record) -> float:
    return record.samples_seen / record.updates if record.updates else math.nan


def _c1(evidence: Evidence, params: Params) -> list[Case]:
    cases = []
    for problem in evidence.suite.claim_problems.get("C1", ()):
        gd, sgd = evidence.records("gd", problem), evidence.records("sgd", problem)
        level = evidence.level(problem, params["depth"])
        if not gd or not sgd or level is None:
            cases.append(Case(f"{problem}: smoother", None, why="gd or sgd has no runs"))
            cases.append(Case(f"{problem}: sooner", None, why="gd or sgd has no runs"))
            continue
        # Both curves at the same update counts (where both were evaluated), over the updates both made.
        steps = analysis.shared_steps([*gd, *sgd])
        rough_gd = analysis.median([analysis.roughness(analysis.losses_at(r, steps)) for r in gd])
        rough_sgd = analysis.median([analysis.roughness(analysis.losses_at(r, steps)) for r in sgd])
        per_update = {
            name: analysis.median([r.training_seconds / r.updates for r in runs if r.updates])
            for name, runs in (("gd", gd), ("sgd", sgd))
        }
        cases.append(
            Case(
                f"{problem}: smoother",
                _less(rough_gd, rough_sgd, params["margin"]),
                (
                    ("updates compared", str(len(steps))),
                    ("roughness gd", number(rough_gd, 3)),
                    ("roughness sgd", number(rough_sgd, 3)),
                    ("samples/update gd : sgd", f"{_per_update(gd[0]):g} : {_per_update(sgd[0]):g}"),
                    ("ms/update gd : sgd", f"{1e3 * per_update['gd']:.3g} : {1e3 * per_update['sgd']:.3g}"),
                ),
            )
        )
        t_gd = analysis.time_to(gd, level, "seconds")
        t_sgd = analysis.time_to(sgd, level, "seconds")
        measurable = math.isfinite(t_gd) or math.isfinite(t_sgd)
        cases.append(
            Case(
                f"{problem}: sooner",
                _less(t_sgd, t_gd, params["margin"]) if measurable else None,
                (
                    ("target loss", number(level)),
                    ("seconds to target gd", number(t_gd, 3)),
                    ("seconds to target sgd", number(t_sgd, 3)),
                    ("updates to target gd", number(analysis.time_to(gd, level, "step"))),
                    ("updates to target sgd", number(analysis.time_to(sgd, level, "step"))),
                ),
                "" if measurable else "neither reached the target",
            )
        )
    return cases


C1 = Claim(
    key="C1",
    name="regimes",
    statement="Full-batch updates are smoother but each costs a pass over the data; "
    "mini-batches reach a target loss sooner in wall time.",
    experiment="gd (full batch) and sgd (mini-batches), each at its tuned learning rate, "
    "on the problems listed, every seed",
    measure="roughness of the held-out loss curve at the update counts where both were evaluated (total "
    "variation over net "
    "decrease: 1 is a monotone curve); training seconds until the held-out loss first reaches the "
    "target (the problem's documented target at depth 1; depth 0.5 is halfway from the start)",
    rule="on each problem, two cases: 'smoother' holds if gd's median roughness is below sgd's by at least "
    "{margin}; 'sooner' holds if sgd's median time to the target at depth {depth} is below gd's by at least "
    "{margin} (a run that never reaches it takes forever; neither reaching it is not measurable)",
    params={"depth": 1.0, "margin": 0.0},
    neighbours=(
        ("shallower target (depth 0.5)", {"depth": 0.5}),
        ("deeper target (depth 1.5)", {"depth": 1.5}),
        ("25% tolerance", {"margin": 0.25}),
    ),
    assess=_c1,
)


# -- C2: online SGD learns from a stream ---------------------------------------------------------


def _c2(evidence: Evidence, params: Params) -> list[Case]:
    cases = []
    for problem in evidence.suite.claim_problems.get("C2", ()):
        runs = [r for r in evidence.records("online-sgd", problem) if r.train_loss]
        if not runs:
            cases.append(Case(problem, None, why="online-sgd has no runs"))
            continue
        windows = [analysis.window_means(r.train_loss, params["window"]) for r in runs]
        first = analysis.median([w[0] for w in windows])
        last = analysis.median([w[1] for w in windows])
        falls = [(a - b) / abs(a) if a else -math.inf for a, b in windows]
        fall = analysis.median(falls)
        diverged = sum(r.diverged for r in runs)
        cases.append(
            Case(
                problem,
                bool(fall >= params["drop"]) and not diverged,
                (
                    ("samples (one pass)", str(runs[0].samples_seen)),
                    ("first-window loss", number(first)),
                    ("last-window loss", number(last)),
                    ("fall", f"{100 * fall:.1f}%" if math.isfinite(fall) else "-"),
                    ("diverged runs", f"{diverged}/{len(runs)}"),
                ),
            )
        )
    return cases


C2 = Claim(
    key="C2",
    name="stream",
    statement="Online SGD learns from a stream one sample at a time: its prequential loss falls.",
    experiment="online-sgd at its tuned learning rate, one pass over the data (every sample new), every seed",
    measure="the prequential (test-then-train) loss: each sample's loss before the model learns from it; "
    "mean over the first and over the last {window} of the stream",
    rule="holds on a problem if the median relative fall from the first to the last window ({window} of the "
    "stream each) is at least {drop}, and no run diverged",
    params={"window": 0.1, "drop": 0.1},
    neighbours=(
        ("any fall", {"drop": 0.0}),
        ("fall of 25%", {"drop": 0.25}),
        ("windows of 5%", {"window": 0.05}),
        ("windows of 25%", {"window": 0.25}),
    ),
    assess=_c2,
)


# -- C3: momentum past saddles and traps ------------------------------------------------------------


def _reaches(record, level: float) -> float:
    hit = analysis.crossing(record, level) if record is not None else None
    return float(hit.step) if hit is not None else math.inf


def _c3_scan(evidence: Evidence, params: Params) -> list[Case]:
    """C3 at every step size of the grid: plain descent at lr against momentum at lr x (1 - beta), seed 0."""
    factor = METHODS["momentum-matched"].lr_factor
    cases = []
    for problem in evidence.suite.claim_problems.get("C3", ()):
        level = evidence.level(problem, params["depth"])
        heavy = dict(evidence.grid("momentum", problem))
        for lr, plain in evidence.grid("sgd", problem):
            match = [r for x, r in heavy.items() if math.isclose(x, lr * factor, rel_tol=1e-2)]
            if plain is None or not match or match[0] is None or level is None:
                continue
            u_plain, u_heavy = _reaches(plain, level), _reaches(match[0], level)
            holds = math.isfinite(u_heavy) and (math.isinf(u_plain) or u_plain >= params["ratio"] * u_heavy)
            cases.append(
                Case(
                    f"{problem}, step {lr:g}",
                    holds,
                    (
                        ("target loss", number(level)),
                        ("lr plain : momentum", f"{lr:g} : {lr * factor:.3g}"),
                        ("updates to target plain", number(u_plain)),
                        ("updates to target momentum", number(u_heavy)),
                    ),
                )
            )
    return cases


def _c3(evidence: Evidence, params: Params) -> list[Case]:
    if params.get("scan"):
        return _c3_scan(evidence, params)
    cases = []
    for problem in evidence.suite.claim_problems.get("C3", ()):
        level = evidence.level(problem, params["depth"])
        plain = evidence.records("sgd", problem)
        for label, method in (("tuned", "momentum"), ("matched step", "momentum-matched")):
            heavy = evidence.records(method, problem)
            if not plain or not heavy or level is None:
                cases.append(Case(f"{problem}, {label}", None, why=f"sgd or {method} has no runs"))
                continue
            u_plain = analysis.time_to(plain, level, "step")
            u_heavy = analysis.time_to(heavy, level, "step")
            holds = math.isfinite(u_heavy) and (math.isinf(u_plain) or u_plain >= params["ratio"] * u_heavy)
            cases.append(
                Case(
                    f"{problem}, {label}",
                    holds,
                    (
                        ("target loss", number(level)),
                        (
                            "lr plain : momentum",
                            f"{number(evidence.lr('sgd', problem), 3)} : "
                            f"{number(evidence.lr(method, problem), 3)}",
                        ),
                        ("updates to target plain", number(u_plain)),
                        ("updates to target momentum", number(u_heavy)),
                        ("final loss plain", number(_medians(evidence, "sgd", problem, analysis.final_loss))),
                        (
                            "final loss momentum",
                            number(_medians(evidence, method, problem, analysis.final_loss)),
                        ),
                    ),
                    "neither reached the target" if math.isinf(u_plain) and math.isinf(u_heavy) else "",
                )
            )
    return cases


C3 = Claim(
    key="C3",
    name="saddle-and-trap",
    statement="Plain gradient descent stalls at a saddle point or in a local-minimum trap where momentum "
    "carries on.",
    experiment="exact-gradient descent (sgd on a one-sample clean surface) against heavy-ball momentum 0.9, "
    "at each one's tuned learning rate and at the same effective step size (momentum-matched), on the "
    "saddle and the tilted double well; seeds start at jittered points",
    measure="updates until the loss first reaches the target (depth 1: the surface's documented target, "
    "within its tolerance of the global minimum), median over seeds",
    rule="holds for a surface and comparison if momentum reaches the target at depth {depth} and plain "
    "descent "
    "either never does within the budget or needs at least {ratio} times as many updates; compared: "
    "{scan}",
    params={"depth": 1.0, "ratio": 1.5, "scan": 0.0},
    neighbours=(
        ("ratio 1.2", {"ratio": 1.2}),
        ("ratio 2", {"ratio": 2.0}),
        ("shallower target (depth 0.5)", {"depth": 0.5}),
        ("every step size of the grid (seed 0)", {"scan": 1.0}),
    ),
    assess=_c3,
)


# -- C4: momentum damps outliers --------------------------------------------------------------------


def _kicks(record, quantile: float) -> float:
    return float(np.quantile(analysis.step_lengths(analysis.path_tail(record)), quantile))


def _spread(record) -> float:
    tail = analysis.path_tail(record)
    return float(np.linalg.norm(tail - tail.mean(axis=0), axis=1).mean()) if len(tail) else math.nan


def _c4(evidence: Evidence, params: Params) -> list[Case]:
    cases = []
    q = params["quantile"]
    for problem in evidence.suite.claim_problems.get("C4", ()):
        plain = [r for r in evidence.records("sgd", problem) if "path" in r.observations and not r.diverged]
        for label, method in (("tuned", "momentum"), ("matched step", "momentum-matched")):
            heavy = [
                r for r in evidence.records(method, problem) if "path" in r.observations and not r.diverged
            ]
            if not plain or not heavy:
                cases.append(Case(f"{problem}, {label}", None, why=f"sgd or {method} has no path"))
                continue
            k_plain = analysis.median([_kicks(r, q) for r in plain])
            k_heavy = analysis.median([_kicks(r, q) for r in heavy])
            cases.append(
                Case(
                    f"{problem}, {label}",
                    _less(k_heavy, k_plain, params["margin"]),
                    (
                        (
                            "lr plain : momentum",
                            f"{number(evidence.lr('sgd', problem), 3)} : "
                            f"{number(evidence.lr(method, problem), 3)}",
                        ),
                        (f"q{q:g} step plain", number(k_plain, 3)),
                        (f"q{q:g} step momentum", number(k_heavy, 3)),
                        ("spread plain", number(analysis.median([_spread(r) for r in plain]), 3)),
                        ("spread momentum", number(analysis.median([_spread(r) for r in heavy]), 3)),
                        ("final loss plain", number(_medians(evidence, "sgd", problem, analysis.final_loss))),
                        (
                            "final loss momentum",
                            number(_medians(evidence, method, problem, analysis.final_loss)),
                        ),
                    ),
                )
            )
    return cases


C4 = Claim(
    key="C4",
    name="outliers",
    statement="Momentum with beta = 0.9 damps the effect of outlier samples on the path.",
    experiment="mini-batch SGD against heavy-ball momentum 0.9, at each one's tuned learning rate and at the "
    "same effective step size, on 2-D surfaces whose gradient noise sits mostly in 2% of the samples; "
    "the path is recorded after every update",
    measure="over the second half of each path (where it hovers near the minimum): the {quantile} quantile "
    "of the length of one update's move, i.e. the size of the largest kicks; also the mean distance from "
    "the path's centre (spread) and the final loss, for context",
    rule="holds for a surface and comparison if momentum's median kick size (the {quantile} quantile of its "
    "moves) is below plain SGD's by at least {margin}",
    params={"quantile": 0.99, "margin": 0.1},
    neighbours=(
        ("any reduction", {"margin": 0.0}),
        ("25% reduction", {"margin": 0.25}),
        ("largest kick (quantile 1)", {"quantile": 1.0}),
        ("quantile 0.9", {"quantile": 0.9}),
    ),
    assess=_c4,
)


# -- C5: AdaGrad and rare features ------------------------------------------------------------------

CHECKPOINTS = (0.25, 0.5, 1.0)


def _weight_errors(record, rare: np.ndarray, common: np.ndarray, truth: np.ndarray, name: str):
    """Relative errors of the rare and common features' weights at each snapshot: (samples, rare, common)."""
    series = record.observations.get(name)
    if series is None:
        return None
    weights = np.asarray(series.value, dtype=float)[:, : len(truth)]

    def error(index: np.ndarray) -> np.ndarray:
        scale = np.linalg.norm(truth[index])
        if not len(index) or scale == 0:
            return np.full(len(weights), math.nan)
        return np.linalg.norm(weights[:, index] - truth[index], axis=1) / scale

    return np.asarray(series.samples, dtype=float), error(rare), error(common)


def rare_feature_errors(evidence: Evidence, method: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each of C5's runs of ``method``: samples seen, rare-feature and common-feature weight errors."""
    problem = evidence.suite.rare_features
    if problem is None:
        return []
    spec = evidence.suite.spec(problem)
    built = make_problem(spec.problem, **spec.options)
    truth = built.true_weights.double().numpy()  # type: ignore[attr-defined]
    rare = built.rare_features.numpy()  # type: ignore[attr-defined]
    common = np.setdiff1d(np.arange(len(truth)), rare)
    snapshots = evidence.suite.rare_snapshots
    name = f"path@{snapshots.n}{snapshots.unit}"
    out = []
    for record in evidence.rare(method):
        errors = _weight_errors(record, rare, common, truth, name)
        if errors is not None and not record.diverged:
            out.append(errors)
    return out


def _at(errors, fraction: float, column: int) -> float:
    samples = errors[0]
    i = int(np.argmin(np.abs(samples - fraction * samples[-1])))
    return float(errors[column][i])


def _c5(evidence: Evidence, params: Params) -> list[Case]:
    problem = evidence.suite.rare_features
    if problem is None or problem not in evidence.suite.claim_problems.get("C5", ()):
        return []
    ada, sgd = rare_feature_errors(evidence, "adagrad"), rare_feature_errors(evidence, "sgd")
    cases = []
    for fraction in CHECKPOINTS:
        label = f"{problem}, after {100 * fraction:g}% of the budget"
        if not ada or not sgd:
            cases.append(Case(label, None, why="adagrad or sgd has no weight snapshots"))
            continue
        rare_a = analysis.median([_at(e, fraction, 1) for e in ada])
        rare_s = analysis.median([_at(e, fraction, 1) for e in sgd])
        common_a = analysis.median([_at(e, fraction, 2) for e in ada])
        common_s = analysis.median([_at(e, fraction, 2) for e in sgd])
        measurable = not (math.isnan(rare_a) or math.isnan(rare_s))
        cases.append(
            Case(
                label,
                _less(rare_a, rare_s, params["margin"]) if measurable else None,
                (
                    ("rare-weight error adagrad", number(rare_a, 3)),
                    ("rare-weight error sgd", number(rare_s, 3)),
                    ("common-weight error adagrad", number(common_a, 3)),
                    ("common-weight error sgd", number(common_s, 3)),
                ),
                "" if measurable else "the problem has no rare features with weight",
            )
        )
    return cases


C5 = Claim(
    key="C5",
    name="rare-features",
    statement="AdaGrad learns sparse, rare features faster than SGD.",
    experiment="AdaGrad and mini-batch SGD, each at its tuned learning rate, on sparse logistic regression "
    "whose rare features (in under 1% of samples) carry most of the signal, every seed, with snapshots "
    "of the weights during training",
    measure="relative error of the rare features' weights against the true weights, ||w_rare - w*_rare|| / "
    "||w*_rare|| (1 at the start), after a quarter, half and all of the budget; the common features' error "
    "is shown for contrast",
    rule="holds at a checkpoint if AdaGrad's median rare-weight error is below SGD's by at least {margin}",
    params={"margin": 0.1},
    neighbours=(("any reduction", {"margin": 0.0}), ("25% reduction", {"margin": 0.25})),
    assess=_c5,
)


# -- C6: AdaGrad's vanishing step against RMSProp's ---------------------------------------------------


def _c6(evidence: Evidence, params: Params) -> list[Case]:
    cases = []
    for problem in evidence.suite.claim_problems.get("C6", ()):
        ada, rms = evidence.records("adagrad", problem), evidence.records("rmsprop", problem)
        if not ada or not rms:
            cases.append(Case(problem, None, why="adagrad or rmsprop has no runs"))
            continue
        slope_a = analysis.median([analysis.effective_lr_decay(r) for r in ada])
        slope_r = analysis.median([analysis.effective_lr_decay(r) for r in rms])
        final_a = analysis.median([analysis.final_loss(r) for r in ada])
        final_r = analysis.median([analysis.final_loss(r) for r in rms])
        start = evidence.start(problem)
        if any(math.isnan(v) for v in (slope_a, slope_r)) or start is None:
            cases.append(Case(problem, None, why="no effective learning rate recorded"))
            continue
        decays = slope_a <= params["decay"]
        steady = slope_r > params["decay"]
        stalls = math.isfinite(final_r) and (
            math.isinf(final_a) or final_a - final_r > params["margin"] * (start - final_r)
        )
        cases.append(
            Case(
                problem,
                decays and steady and stalls,
                (
                    ("slope adagrad", number(slope_a, 3)),
                    ("slope rmsprop", number(slope_r, 3)),
                    ("final loss adagrad", number(final_a)),
                    ("final loss rmsprop", number(final_r)),
                    (
                        "adagrad decays / rmsprop steady / adagrad behind",
                        " / ".join("yes" if v else "no" for v in (decays, steady, stalls)),
                    ),
                ),
            )
        )
    return cases


C6 = Claim(
    key="C6",
    name="effective-lr",
    statement="AdaGrad's effective learning rate decays towards zero and it stalls before the optimum; "
    "RMSProp's does not.",
    experiment="AdaGrad and RMSProp at their tuned learning rates, every seed, with the quantiles of the "
    "per-coordinate effective learning rate recorded during training",
    measure="the log-log slope of the median effective learning rate against updates over the second half "
    "of training (AdaGrad's lr/sqrt(sum g^2) falls like t^-0.5 on steady gradients; a constant rate has "
    "slope 0); the final held-out loss",
    rule="holds on a problem if AdaGrad's median slope is at most {decay}, RMSProp's is above it, and "
    "AdaGrad ends behind RMSProp by more than {margin} of RMSProp's improvement over the start",
    params={"decay": -0.25, "margin": 0.0},
    neighbours=(
        ("slope threshold -0.1", {"decay": -0.1}),
        ("slope threshold -0.4", {"decay": -0.4}),
        ("behind by 5%", {"margin": 0.05}),
    ),
    assess=_c6,
)


# -- C7: Adam's sensitivity to the learning rate ------------------------------------------------------


def sensitivity(evidence: Evidence, problem: str, keep: float) -> dict[str, list[float]]:
    """For each tuned method on ``problem``: the grid's learning rates that keep ``keep`` of its best gain."""
    start = evidence.start(problem)
    out: dict[str, list[float]] = {}
    if start is None:
        return out
    for method in evidence.methods_on(problem):
        grid = evidence.grid(method, problem)
        if not any(r is not None for _, r in grid) or method not in _tuned(evidence, problem):
            continue
        out[method] = analysis.good_lrs([(lr, analysis.final_loss(r)) for lr, r in grid], start, keep)
    return out


def _tuned(evidence: Evidence, problem: str) -> set[str]:
    return {m for m, p in evidence.plan.tuned_lr if p == problem}


def _c7(evidence: Evidence, params: Params) -> list[Case]:
    cases = []
    grid = evidence.suite.lr_grid
    for problem in evidence.suite.claim_problems.get("C7", ()):
        good = sensitivity(evidence, problem, params["keep"])
        if "adam" not in good or len(good) < 2:
            cases.append(Case(problem, None, why="adam or the others have no tuning runs"))
            continue
        counts = {m: len(lrs) for m, lrs in good.items()}
        others = max(v for m, v in counts.items() if m != "adam")
        holds = counts["adam"] > others if params["strict"] else counts["adam"] >= others
        edge = [m for m, lrs in good.items() if lrs and (lrs[0] == grid[0] or lrs[-1] == grid[-1])]
        cases.append(
            Case(
                problem,
                holds,
                (
                    ("good grid points", ", ".join(f"{m} {c}" for m, c in counts.items())),
                    ("at the grid's edge", ", ".join(edge) or "none"),
                ),
            )
        )
    return cases


C7 = Claim(
    key="C7",
    name="lr-sensitivity",
    statement="Adam is the least sensitive to the choice of learning rate.",
    experiment="the tuning grid (seed 0) of every tuned method on the problems listed: the same "
    "learning rates for every method, evenly spaced in log scale",
    measure="for each method, the number of grid points whose final held-out loss keeps at least {keep} of "
    "the method's best improvement over the starting loss (not a ratio to the best loss, which breaks when "
    "it is near zero); a diverged run keeps nothing",
    rule="holds on a problem if no other method keeps {keep} of its best improvement on more grid points "
    "than Adam (strict = {strict}: 1 means Adam must have strictly more)",
    params={"keep": 0.8, "strict": 0.0},
    neighbours=(
        ("keep 50%", {"keep": 0.5}),
        ("keep 90%", {"keep": 0.9}),
        ("strictly more points", {"strict": 1.0}),
    ),
    assess=_c7,
)

#: The claims in the order the report shows them.
CLAIMS: Mapping[str, Claim] = MappingProxyType({c.key: c for c in (C1, C2, C3, C4, C5, C6, C7)})


def judge_every_claim(evidence: Evidence) -> dict[str, list[Finding]]:
    """Every claim's findings (the declared rule's first, then its neighbours'), keyed by claim."""
    return {key: claim.judge_all(evidence) for key, claim in CLAIMS.items()}
