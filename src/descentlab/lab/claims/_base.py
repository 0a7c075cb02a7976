"""What a claim is: one unit that declares everything about itself, and the one way claims are judged.

A :class:`Claim` declares its statement, the tutorial's sentence it tests,
the roles it needs, the tuned rates and runs it needs (pure functions of the
suite and the tuned rates), its sub-claims, its figures and its text. Each
:class:`SubClaim` declares its measure, its effect (a statistic of a table of
units, see :mod:`descentlab.lab.stats`), the minimum effect that counts, its
control, and how to read its cases from the evidence. :func:`judge` turns
the cases into estimates, intervals and verdicts the same way for every
claim: nothing outside a claim's module knows what it measures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import stats
from ..evidence import Evidence
from ..findings import CaseFinding, ClaimFinding, SubFinding
from ..plan import Rates, Run, Tune
from ..suite import VARIANTS, Suite


@dataclass(frozen=True)
class Case:
    """One case's measurements: a table of units (rows) for the claim and for its control.

    ``rows`` and ``control`` have the columns the sub-claim's statistic
    reads; ``control`` is None where the case has no control that could be
    measured (the case is then not decided: inconclusive, with ``note``
    saying why, or a general note if it is empty).
    ``numbers`` are context for the reader (tuned rates, success rates);
    ``statistic`` replaces the sub-claim's where a case's table has its own
    shape (a grid of its own length).
    """

    label: str
    rows: np.ndarray
    control: np.ndarray | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    statistic: stats.Statistic | None = None


@dataclass(frozen=True)
class SubClaim:
    """One part of a claim, judged on its own (see the module docstring).

    ``rule`` reads each case's interval against ``min_effect``: an effect
    beyond it (:data:`~descentlab.lab.stats.EFFECT`), or, for a claim that two
    things do alike, an equivalence within it, the tolerance
    (:data:`~descentlab.lab.stats.EQUIVALENCE`). ``null_control``: whether the
    control is a null, where the measure should read no effect either way (a
    contradiction it shows too leaves the case inconclusive), rather than
    another method in the treated one's place (see
    :func:`~descentlab.lab.stats.case_verdict`).
    """

    id: str
    statement: str
    measure: str
    effect: str
    control: str
    min_effect: float
    statistic: stats.Statistic | None
    cases: Callable[[Evidence], list[Case]]
    rule: stats.Rule = stats.EFFECT
    null_control: bool = True


Figures = Callable[[Evidence, Path], list[tuple[str, str]]]


def no_figures(evidence: Evidence, folder: Path) -> list[tuple[str, str]]:
    """For a claim whose numbers say it all."""
    return []


@dataclass(frozen=True)
class Claim:
    """A usual claim about these methods, with everything needed to test it (see the module docstring).

    ``variations`` are the design variations that apply; ``not_varied``
    says why the others do not. ``figures(evidence, folder)`` draws the
    claim's own figures into ``folder`` and returns (file name, caption)
    pairs for those it drew.
    """

    id: str
    title: str
    statement: str
    source: str
    roles: tuple[str, ...]
    subclaims: tuple[SubClaim, ...]
    tunes: Callable[[Suite], list[Tune]]
    runs: Callable[[Suite, Rates], list[Run]]
    text: str = ""
    figures: Figures = no_figures
    variations: tuple[str, ...] = tuple(VARIANTS)
    not_varied: dict[str, str] = field(default_factory=dict)


def judge(claim: Claim, evidence: Evidence) -> ClaimFinding:
    """The claim's finding on ``evidence``: every case estimated and judged, sub-claims and claim combined."""
    subs = []
    for sub in claim.subclaims:
        cases = []
        estimates, controls = [], []
        # A control several cases share (one known failure for a whole problem) is estimated and pooled once.
        shared: dict[tuple, stats.Estimate] = {}
        for case in sub.cases(evidence):
            name = f"{claim.id}/{sub.id}/{case.label}"
            statistic = case.statistic or sub.statistic
            # A case with no rows (a partial store: a method's runs missing) is not measured,
            # whatever it would have been measured with.
            if statistic is None and len(case.rows):
                raise ValueError(f"{name}: neither the case nor the sub-claim has a statistic")
            estimate = (
                stats.bootstrap(case.rows, statistic, name=name)
                if len(case.rows) and statistic is not None
                else stats.NOT_MEASURED
            )
            control = None
            if case.control is not None and len(case.control) and statistic is not None:
                key = (case.control.shape, case.control.tobytes(), statistic)
                if key not in shared:
                    shared[key] = stats.bootstrap(case.control, statistic, name=name + "/control")
                    controls.append(shared[key])
                control = shared[key]
            verdict = stats.case_verdict(
                estimate, sub.min_effect, control, sub.rule, null_control=sub.null_control
            )
            note = case.note
            if not note and estimate.measured and not stats.decidable(estimate, control):
                note = (
                    f"{estimate.units} units, fewer than {stats.MIN_UNITS}: not decided"
                    if estimate.units < stats.MIN_UNITS
                    else "no control measured: not decided"
                )
            estimates.append(estimate)
            cases.append(
                CaseFinding(
                    label=case.label,
                    effect=estimate.effect,
                    low=estimate.low,
                    high=estimate.high,
                    control_effect=control.effect if control is not None else float("nan"),
                    control_low=control.low if control is not None else float("nan"),
                    control_high=control.high if control is not None else float("nan"),
                    verdict=verdict,
                    units=estimate.units,
                    control_agrees=stats.control_agrees(
                        estimate, sub.min_effect, control, sub.rule, null_control=sub.null_control
                    ),
                    numbers=dict(case.numbers),
                    note=note,
                )
            )
        pooled = stats.pooled(estimates, name=f"{claim.id}/{sub.id}")
        pooled_control = stats.pooled(controls, name=f"{claim.id}/{sub.id}/control")
        subs.append(
            SubFinding(
                id=f"{claim.id}.{sub.id}",
                statement=sub.statement,
                measure=sub.measure,
                effect_text=sub.effect,
                control_text=sub.control,
                min_effect=sub.min_effect,
                rule=sub.rule.name,
                effect=pooled.effect,
                low=pooled.low,
                high=pooled.high,
                control_effect=pooled_control.effect,
                control_low=pooled_control.low,
                control_high=pooled_control.high,
                verdict=stats.combine_cases([c.verdict for c in cases]),
                cases=tuple(cases),
                not_varied=dict(claim.not_varied),
            )
        )
    return ClaimFinding(
        id=claim.id,
        title=claim.title,
        statement=claim.statement,
        source=claim.source,
        verdict=stats.combine_subclaims([s.verdict for s in subs]),
        subclaims=tuple(subs),
    )


def rows(*columns: Sequence[float]) -> np.ndarray:
    """A table of units from its columns (equal lengths)."""
    return np.column_stack([np.asarray(c, dtype=float) for c in columns]) if columns else np.zeros((0, 0))
