"""The runs of a plan as the store holds them: what the claims and figures read.

:class:`Evidence` answers two questions: at which learning rate does a
method run on a problem after tuning (:meth:`Evidence.lr`), and what did a
planned run record (:meth:`Evidence.get`: a
:class:`~descentlab.train.RunRecord` for a data run, a
:class:`~descentlab.lab.batch.Batch` for a surface run, None when it is
missing or failed). It reads nothing but the suite, the rates and a finder,
so the claims can be judged on made-up runs in the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .plan import Run, Tune
from .suite import Suite


class Evidence:
    """A suite's tuned rates and the results of its runs (see the module docstring)."""

    def __init__(
        self,
        suite: Suite,
        rates: Mapping[Tune, float | None],
        find: Callable[[Run], Any],
        runs: Sequence[Run] = (),
    ) -> None:
        self.suite = suite
        self.rates = dict(rates)
        #: The planned runs (tuning and judging), for readers that scan them all.
        self.runs = list(runs)
        self._find = find
        self._cache: dict[Run, Any] = {}

    def lr(self, method: str, problem: str, budget: str = "default") -> float | None:
        """The rate ``method`` runs at on ``problem`` after tuning (None: not tuned, or every run failed)."""
        return self.rates.get(Tune(method, problem, budget))

    def get(self, run: Run) -> Any:
        """What ``run`` recorded (None if it is missing, failed or diverged before recording anything)."""
        if run not in self._cache:
            self._cache[run] = self._find(run)
        return self._cache[run]
