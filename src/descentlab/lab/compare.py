"""The lab's main job: run a suite's plan into a store and write the report (``descentlab compare``).

An output directory (default ``descentlab-out/compare``) holds everything:
the store (``lab.sqlite``), the suite the comparison was declared with
(``compare.json``), ``report.html`` and its ``figures/``. :func:`compare`
runs the plan stage by stage (tune, seeds, checks; see
:mod:`descentlab.lab.protocol`) through :func:`~descentlab.lab.run_sweep`,
which skips what the store already holds, so running it again on the same
directory resumes or, when everything is there, only re-renders.
:func:`render` rebuilds the report from the directory without training
(``descentlab report DIR``).
"""

from __future__ import annotations

import datetime
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .. import __version__, _files, _serde
from ..train import RunConfig
from . import protocol
from .claims import Finding, judge_every_claim
from .evidence import Evidence
from .mistakes import run_mistake
from .protocol import Plan, Trial
from .report import Context, write_report
from .store import STORE_FILENAME, Store, StoredRun, StoreError, run_key
from .suite import Suite
from .sweep import Progress, execute, run_sweep

if TYPE_CHECKING:
    from .executors import Executor

DEFAULT_OUT = Path("descentlab-out") / "compare"
MANIFEST = "compare.json"
REPORT = "report.html"
MANIFEST_FORMAT = 1

#: The worker of the formula checks: :func:`~descentlab.lab.sweep.execute` with the mistaken rules' runner.
execute_mistake = functools.partial(execute, runner=run_mistake)


@dataclass(frozen=True)
class Manifest:
    """What an output directory remembers of its comparison: the suite, and when and how long it ran.

    The suite is the whole declaration; with the store it determines every
    run of the plan, so nothing else needs keeping.
    """

    suite: Suite
    descentlab: str
    started: str
    phases: dict[str, float] = field(default_factory=dict)
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        """The manifest as JSON text."""
        return _serde.to_json(self, indent=1)

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """The manifest of ``directory``; a ValueError if there is none or it is not readable."""
        path = Path(directory) / MANIFEST
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ValueError(
                f"{str(directory)!r} holds no comparison ({MANIFEST} is missing); "
                "run descentlab compare --out DIR first"
            ) from None
        manifest = _serde.from_json(cls, text)
        if manifest.format != MANIFEST_FORMAT:
            raise ValueError(
                f"{str(path)!r} has format {manifest.format}; this descentlab reads format {MANIFEST_FORMAT}"
            )
        return manifest


PhaseProgress = Callable[[str, Progress], None]


class PhaseLines:
    """Shows a comparison's progress: a line redrawn in place on a terminal, else one line per phase.

    Call it with (phase, :class:`~descentlab.lab.Progress`) as runs finish;
    :meth:`close` ends the last line.
    """

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty()) if tty is None else tty
        self.phase: str | None = None
        self.started = time.monotonic()
        self.last: Progress | None = None

    def __call__(self, phase: str, progress: Progress) -> None:
        if phase != self.phase:
            self.close()
            self.phase, self.started = phase, time.monotonic()
        self.last = progress
        if self.tty:
            width = 20
            filled = round(width * progress.done / progress.total) if progress.total else width
            self.stream.write(f"\r{phase}: [{'#' * filled}{'-' * (width - filled)}] {self._counts(progress)}")
            self.stream.flush()
        elif progress.done == progress.total:
            self.stream.write(f"{phase}: {self._counts(progress)}\n")
            self.stream.flush()
            self.phase = None

    def _counts(self, p: Progress) -> str:
        return (
            f"{p.done}/{p.total} runs ({p.skipped} already stored), {p.diverged} diverged, "
            f"{p.failed} failed, "
            f"{time.monotonic() - self.started:.0f} s"
        )

    def note(self, text: str) -> None:
        """A line of its own (ends the progress line first)."""
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the line being redrawn, if any."""
        if self.tty and self.phase is not None:
            self.stream.write("\n")
            self.stream.flush()
        self.phase = None


def _found(store: Store, experiment: str, trials: Sequence[Trial]) -> dict[str, StoredRun]:
    return store.get(experiment, [run_key(t.config) for t in trials])


def _finder(store: Store, plan_trials: Sequence[Trial]) -> Callable[[Trial], StoredRun | None]:
    by_experiment: dict[str, list[Trial]] = {}
    for trial in plan_trials:
        by_experiment.setdefault(trial.experiment, []).append(trial)
    found = {
        (e, k): run for e, trials in by_experiment.items() for k, run in _found(store, e, trials).items()
    }
    return lambda trial: found.get((trial.experiment, run_key(trial.config)))


def load_evidence(store: Store, suite: Suite) -> Evidence:
    """The plan of ``suite`` rebuilt from the store, with every run the store holds (no training)."""
    plan = protocol.start_plan(suite)
    protocol.choose(plan, _finder(store, plan.tuning))
    protocol.add_seeds(plan)
    protocol.add_checks(plan)
    return Evidence(plan, _finder(store, plan.all_trials()))


def _sweep(
    store: Store,
    experiment: str,
    trials: Sequence[Trial],
    executor: Executor,
    progress: PhaseProgress | None,
    phase: str,
    worker: Callable[[RunConfig], object] = execute,
) -> None:
    report = (lambda p: progress(phase, p)) if progress is not None else None
    run_sweep(
        store, experiment, [t.config for t in trials], executor=executor, progress=report, worker=worker
    )  # type: ignore[arg-type]


def prepare(out: str | Path) -> Path:
    """Check that ``out`` can hold a comparison before anything runs; return the report's path.

    Creates ``out`` if missing (and nothing else); an unwritable directory
    is an OSError naming it, a store of another version in it a
    :class:`~descentlab.lab.StoreError`; neither writes anything.
    """
    path = _files.check_writable(Path(out) / REPORT)
    store = Path(out) / STORE_FILENAME
    if store.exists():
        Store(store).close()  # refuses a store of another version before writing to it
    return path


def compare(
    out: str | Path,
    suite: Suite,
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: PhaseProgress | None = None,
    on_report: Callable[[], None] | None = None,
) -> tuple[Path, dict[str, list[Finding]]]:
    """Run ``suite`` into ``out`` (resuming what is stored) and write the report.

    Returns the report's path and every claim's findings (as
    :func:`~descentlab.lab.claims.judge_every_claim` gives them).

    Everything is checked before anything runs or is written: the output
    directory must be writable and a store already in it must be of this
    version (:class:`~descentlab.lab.StoreError` otherwise). Without
    ``executor``, a :class:`~descentlab.lab.LocalExecutor` of ``workers``
    processes (default: one per core) runs the runs.
    """
    from .executors import LocalExecutor

    out = Path(out)
    prepare(out)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with Store(out / STORE_FILENAME) as store:
        manifest = Manifest(suite, __version__, started)
        try:
            before = Manifest.read(out)
        except ValueError:
            before = None
        if before is not None and before.suite == suite:
            # The same comparison resumed: it started when it first started, and its
            # phases took the time of every invocation together.
            manifest = replace(manifest, started=before.started, phases=dict(before.phases))
        # Written before the runs: an interrupted comparison can still be reported on.
        _files.write_text_atomic(out / MANIFEST, manifest.to_json())
        phases = {name: seconds for name, seconds in manifest.phases.items() if name != "report"}
        owned = executor is None
        pool: Executor = LocalExecutor(workers) if executor is None else executor
        try:
            plan = protocol.start_plan(suite)
            clock = time.monotonic()
            _sweep(store, protocol.TUNE, plan.tuning, pool, progress, "tune")
            phases["tune"] = phases.get("tune", 0.0) + time.monotonic() - clock

            clock = time.monotonic()
            protocol.choose(plan, _finder(store, plan.tuning))
            protocol.add_seeds(plan)
            _sweep(store, protocol.SEEDS, plan.seeds, pool, progress, "seeds")
            phases["seeds"] = phases.get("seeds", 0.0) + time.monotonic() - clock

            clock = time.monotonic()
            protocol.add_checks(plan)
            rare = [t for t in plan.checks if t.experiment == protocol.RARE]
            formula = [t for t in plan.checks if t.experiment == protocol.FORMULA]
            _sweep(store, protocol.RARE, rare, pool, progress, "checks: rare features")
            _sweep(store, protocol.FORMULA, formula, pool, progress, "checks: formulas", execute_mistake)
            phases["checks"] = phases.get("checks", 0.0) + time.monotonic() - clock
        finally:
            if owned:
                pool.close()  # type: ignore[attr-defined]
        # Kept before drawing: a report that fails to draw loses none of the runs' timings.
        _files.write_text_atomic(out / MANIFEST, replace(manifest, phases=phases).to_json())
        if on_report is not None:
            on_report()
        clock = time.monotonic()
        evidence = Evidence(plan, _finder(store, plan.all_trials()))
        findings = judge_every_claim(evidence)
        path = write_report(evidence, out, _context(replace(manifest, phases=phases)), findings)
        phases["report"] = time.monotonic() - clock
        _files.write_text_atomic(out / MANIFEST, replace(manifest, phases=phases).to_json())
    return path, findings


def render(out: str | Path) -> tuple[Path, dict[str, list[Finding]]]:
    """Rebuild the report of the comparison in ``out`` from its store and manifest, without training."""
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"no such directory: {str(out)!r}")
    manifest = Manifest.read(out)
    prepare(out)
    with Store(out / STORE_FILENAME, create=False) as store:
        evidence = load_evidence(store, manifest.suite)
        findings = judge_every_claim(evidence)
        path = write_report(evidence, out, _context(manifest), findings)
    return path, findings


def _context(manifest: Manifest) -> Context:
    phases = tuple((name, seconds) for name, seconds in manifest.phases.items() if name != "report")
    return Context(
        title=f"descentlab compare: {manifest.suite.name} suite",
        generated_by=f"descentlab {manifest.descentlab}",
        phases=phases,
        started=manifest.started,
    )


__all__ = [
    "DEFAULT_OUT",
    "MANIFEST",
    "REPORT",
    "Manifest",
    "PhaseLines",
    "Plan",
    "StoreError",
    "compare",
    "load_evidence",
    "prepare",
    "render",
]
