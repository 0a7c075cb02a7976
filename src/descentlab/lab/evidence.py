"""The stored runs of a plan, found and arranged for the claims and figures.

:class:`Evidence` pairs every planned run (:class:`~descentlab.lab.protocol.Trial`)
with what the store holds for it and answers the questions the report asks:
a method's tuning grid on a problem, its tuned runs across seeds, a problem's
target and starting loss. It reads nothing but the plan and the runs, so the
claims can be tested on made-up runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..train import RunRecord
from . import analysis
from .methods import METHODS
from .protocol import FORMULA, RARE, SEEDS, TUNE, Plan, Trial

if TYPE_CHECKING:
    from .store import StoredRun


class Evidence:
    """The runs a plan made, as the store holds them (see the module docstring)."""

    def __init__(self, plan: Plan, find: Callable[[Trial], StoredRun | None]) -> None:
        self.plan = plan
        self.suite = plan.suite
        self._runs: dict[tuple, tuple[Trial, StoredRun | None]] = {}
        for trial in plan.all_trials():
            self._runs[self._key(trial)] = (trial, find(trial))
        self.missing = [t for t, run in self._runs.values() if run is None]
        self.failed = [(t, run) for t, run in self._runs.values() if run is not None and run.record is None]

    @staticmethod
    def _key(trial: Trial) -> tuple:
        return (trial.experiment, trial.method, trial.problem, trial.lr, trial.seed)

    def _get(self, experiment: str, method: str, problem: str, lr: float, seed: int) -> StoredRun | None:
        entry = self._runs.get((experiment, method, problem, lr, seed))
        return entry[1] if entry else None

    @property
    def planned(self) -> int:
        """How many runs the plan holds."""
        return len(self._runs)

    def runs(self) -> list[tuple[Trial, StoredRun | None]]:
        """Every planned run with what the store holds for it (None: missing)."""
        return list(self._runs.values())

    # -- tuning -----------------------------------------------------------------------------

    def grid(self, method: str, problem: str) -> list[tuple[float, RunRecord | None]]:
        """The tuning runs of ``method`` on ``problem``: (lr, record or None), by increasing lr."""
        out = []
        for lr in self.suite.lr_grid:
            run = self._get(TUNE, method, problem, lr, 0)
            out.append((lr, run.record if run is not None else None))
        return out

    def lr(self, method: str, problem: str) -> float | None:
        """The learning rate ``method`` runs at on ``problem`` after tuning (None: every point diverged)."""
        return self.plan.lr_of(method, problem)

    # -- tuned runs -------------------------------------------------------------------------

    def records(self, method: str, problem: str) -> list[RunRecord]:
        """The runs of ``method`` at its chosen setting on ``problem``, one per seed found."""
        lr = self.lr(method, problem)
        if lr is None:
            return []
        out = []
        for seed in range(self.suite.seeds):
            experiment = TUNE if (seed == 0 and METHODS[method].tuned) else SEEDS
            run = self._get(experiment, method, problem, lr, seed)
            if run is not None and run.record is not None:
                out.append(run.record)
        return out

    def rare(self, method: str) -> list[RunRecord]:
        """Claim C5's runs of ``method`` (with weight snapshots), one per seed found."""
        problem = self.suite.rare_features
        lr = self.lr(method, problem) if problem else None
        if problem is None or lr is None:
            return []
        found = [self._get(RARE, method, problem, lr, seed) for seed in range(self.suite.seeds)]
        return [run.record for run in found if run is not None and run.record is not None]

    def formula(self, mistake: str, correct: str, problem: str) -> list[RunRecord]:
        """The formula check's runs of ``mistake`` on ``problem`` (at ``correct``'s tuned lr)."""
        lr = self.lr(correct, problem)
        if lr is None:
            return []
        found = [self._get(FORMULA, mistake, problem, lr, seed) for seed in range(self.suite.seeds)]
        return [run.record for run in found if run is not None and run.record is not None]

    # -- problems ---------------------------------------------------------------------------

    def methods_on(self, problem: str) -> tuple[str, ...]:
        """The methods the suite runs on ``problem``."""
        return self.suite.methods_on(problem)

    def _any_record(self, problem: str) -> RunRecord | None:
        for method in self.methods_on(problem):
            for _, record in self.grid(method, problem):
                if record is not None:
                    return record
        return None

    def target(self, problem: str) -> float | None:
        """The problem's documented target loss, as its runs recorded it."""
        record = self._any_record(problem)
        return record.target_loss if record is not None else None

    def start(self, problem: str) -> float | None:
        """The held-out loss at the standard start (seed 0's initial model, the same for every method)."""
        record = self._any_record(problem)
        return analysis.initial_loss(record) if record is not None else None

    def best_final(self, problem: str) -> float:
        """The lowest final held-out loss any tuned run reached on ``problem`` (inf if none)."""
        values = [analysis.final_loss(r) for m in self.methods_on(problem) for r in self.records(m, problem)]
        return min(values, default=math.inf)

    def level(self, problem: str, depth: float) -> float | None:
        """A target at ``depth`` of the way from the starting loss to the documented target.

        Depth 1 is the documented target; 0.5 halfway there; above 1 goes
        past it towards the best loss any method reached (1.5: halfway from
        the target to that best), so a deeper target stays reachable.
        """
        start, target = self.start(problem), self.target(problem)
        if start is None or target is None:
            return None
        if depth <= 1:
            return start - depth * (start - target)
        best = self.best_final(problem)
        if not math.isfinite(best) or best >= target:
            return target
        return target - (depth - 1) * (target - best)
