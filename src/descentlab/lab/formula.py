"""The formula check: what each common mistaken form of an update rule does, each tuned fairly.

Every mistaken rule of :data:`~descentlab.lab.mistakes.MISTAKES` is tuned
on its own grid (the suite's, the tuning seed, the validation half), like the
rule it gets wrong, and both run with every judging seed. The check reports
the ratio of their *excess losses* over the best loss any run of the
comparison reached on the problem, :math:`(L_{wrong} - L^*) / (L_{right} -
L^*)` (1: as good; 10: ten times as far from the optimum), the share of
seeds that diverged, the two tuned learning rates, and one line on the
mechanism. Tuning the mistake on its own grid matters: a rule whose step is
ten times too large looks broken at the right rule's rate and fine at a
tenth of it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .evidence import Evidence
from .mistakes import MISTAKES
from .plan import DataRun, Rates, Run, Tune
from .suite import Suite


def tunes(suite: Suite) -> list[Tune]:
    """The tuned rates the check needs: every mistake and its correct method on every formula problem."""
    return [
        Tune(name, problem)
        for problem in suite.formula_problems
        for m in MISTAKES.values()
        for name in (m.name, m.correct)
    ]


def _judged(suite: Suite, rates: Rates, method: str, problem: str) -> list[DataRun]:
    lr = rates.get(Tune(method, problem))
    return [] if lr is None else [DataRun(method, problem, lr, seed) for seed in suite.judge_seeds]


def runs(suite: Suite, rates: Rates) -> list[Run]:
    """The judged runs of the check."""
    return [r for t in tunes(suite) for r in _judged(suite, rates, t.method, t.problem)]


def _finals(ev: Evidence, method: str, problem: str) -> list[float]:
    out = []
    for run in _judged(ev.suite, ev.rates, method, problem):
        record = ev.get(run)
        if record is None or record.diverged or not record.held_out.loss:
            out.append(math.inf)
        else:
            out.append(record.held_out.loss[-1])
    return out


def rows(ev: Evidence, optimum: dict[str, float]) -> list[dict[str, Any]]:
    """One row per mistake and problem (see the module docstring); ``optimum`` is L* per problem."""
    out = []
    for problem in ev.suite.formula_problems:
        best = optimum.get(problem, math.inf)
        for mistake in MISTAKES.values():
            wrong, right = _finals(ev, mistake.name, problem), _finals(ev, mistake.correct, problem)
            lr_wrong, lr_right = ev.lr(mistake.name, problem), ev.lr(mistake.correct, problem)
            finite_w = [v for v in wrong if math.isfinite(v)]
            finite_r = [v for v in right if math.isfinite(v)]
            excess_w = float(np.mean(finite_w)) - best if finite_w and math.isfinite(best) else math.inf
            excess_r = float(np.mean(finite_r)) - best if finite_r and math.isfinite(best) else math.inf
            ratio = excess_w / excess_r if excess_r > 0 and math.isfinite(excess_r) else math.nan
            out.append(
                {
                    "mistake": mistake.name,
                    "summary": mistake.summary,
                    "wrong": mistake.wrong,
                    "right": mistake.right,
                    "correct": mistake.correct,
                    "problem": problem,
                    "lr_wrong": lr_wrong,
                    "lr_right": lr_right,
                    "diverged": f"{len(wrong) - len(finite_w)}/{len(wrong)}" if wrong else "-",
                    "excess_wrong": excess_w,
                    "excess_right": excess_r,
                    "excess_ratio": ratio,
                    "mechanism": _mechanism(mistake.mechanism, lr_wrong, lr_right),
                }
            )
    return out


def _mechanism(text: str, lr_wrong: float | None, lr_right: float | None) -> str:
    if lr_wrong is None:
        return f"{text} It diverged or failed at every learning rate of the grid."
    if lr_right:
        return f"{text} Tuned, its learning rate is {lr_wrong / lr_right:.3g} times the correct rule's."
    return text
