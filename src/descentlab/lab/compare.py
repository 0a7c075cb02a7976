"""The lab's main job: calibrate, run every claim's plan into a store, judge, vary the design, report.

``descentlab compare`` (:func:`compare`) does, in order:

1. **calibration** against theory (:mod:`descentlab.lab.calibration`): a lab
   that cannot reproduce known results is not to be trusted on the claims;
2. for the suite and then for each design variation
   (:meth:`~descentlab.lab.suite.Suite.variant`): **tune** (every rate the
   claims ask for, :func:`~descentlab.lab.plan.tuning`), **judge** (every
   claim's runs at those rates), each run stored as it finishes; the
   *formula check* runs with the suite itself;
3. **findings**: every claim judged on the suite's evidence, then again on
   each variation's, and the verdicts compared (*robust* when they survive
   every variation); written to ``findings.json``;
4. the **report** (``report.html`` and ``figures/``), rendered from the
   findings and the evidence.

Everything lives in one output directory (default ``descentlab-out/compare``):
the store ``lab.sqlite``, ``compare.json`` (the suite), ``findings.json``,
``report.html``, ``figures/``. Runs are keyed by their configuration, so a
second call resumes or, when everything is stored, only re-renders;
:func:`render` rebuilds findings and report from the directory without
training (``descentlab report DIR``).
"""

from __future__ import annotations

import datetime
import functools
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__, _files, _serde
from ..i18n import check_language
from . import formula, plan
from .batch import Batch
from .claims import CLAIMS, judge
from .evidence import Evidence
from .findings import Findings
from .methods import run_method
from .plan import DataRun, Run, SurfaceRun, SurfaceTask, Tune
from .store import STORE_FILENAME, Store, StoreError, run_key
from .suite import Suite
from .sweep import Progress, execute, run_sweep

if TYPE_CHECKING:
    from .._progress import Phases
    from .executors import Executor

DEFAULT_OUT = Path("descentlab-out") / "compare"
MANIFEST = "compare.json"
REPORT = "report.html"
FINDINGS = "findings.json"
MANIFEST_FORMAT = 2
#: The store's experiment names: data runs, and batched surface runs.
RUNS, SURFACES = "lab", "lab-surfaces"

#: What the workers run for a data run: any method, the user's and the mistaken rules included.
execute_method = functools.partial(execute, runner=run_method)


@dataclass(frozen=True)
class Manifest:
    """What an output directory remembers of its comparison: the suite, and when and how long it ran."""

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
        try:
            import json

            written = json.loads(text).get("format")
        except ValueError:
            raise ValueError(f"{str(path)!r} is not a comparison manifest (not JSON)") from None
        if written != MANIFEST_FORMAT:
            raise ValueError(
                f"{str(path)!r} has format {written}; this descentlab reads format {MANIFEST_FORMAT} "
                "(a comparison of an older descentlab: use a new --out directory)"
            )
        return _serde.from_json(cls, text)


# -- running a plan ------------------------------------------------------------------------------


class Finder:
    """Finds planned runs in the store, fetched in bulk and decoded once."""

    def __init__(self, store: Store, suite: Suite) -> None:
        self.store, self.suite = store, suite
        self._data: dict[str, Any] = {}
        self._surfaces: dict[str, Batch | None] = {}

    def fetch(self, runs: Sequence[Run]) -> None:
        """Load every run of ``runs`` not loaded yet."""
        data, surfaces = plan.partition(runs)
        keys = [run_key(plan.config(self.suite, r)) for r in data]
        missing = [k for k in keys if k not in self._data]
        if missing:
            found = self.store.get(RUNS, missing)
            for key in missing:
                stored = found.get(key)
                self._data[key] = stored.record if stored is not None else None
        for run in surfaces:
            key = plan.surface_key(self.suite, run)
            if key not in self._surfaces:
                blob = self.store.get_result(SURFACES, key)
                self._surfaces[key] = Batch.from_bytes(blob) if blob is not None else None

    def __call__(self, run: Run) -> Any:
        if isinstance(run, SurfaceRun):
            key = plan.surface_key(self.suite, run)
            if key not in self._surfaces:
                self.fetch([run])
            return self._surfaces[key]
        key = run_key(plan.config(self.suite, run))
        if key not in self._data:
            self.fetch([run])
        return self._data[key]


def execute_runs(
    store: Store,
    suite: Suite,
    runs: Sequence[Run],
    executor: Executor,
    progress: Phases | None,
    phase: str,
) -> None:
    """Run what the store lacks of ``runs`` on the executor (data and surface runs), each stored when done."""
    data, surfaces = plan.partition(runs)

    def report(p: Progress, phase: str = phase) -> None:
        if progress is not None:
            progress.update(phase, p.done, p.total, p.describe())

    configs = [plan.config(suite, r) for r in data]
    tasks = [SurfaceTask(suite, r, plan.surface_key(suite, r)) for r in surfaces]
    stored = store.result_keys(SURFACES)
    todo = [t for t in tasks if t.key not in stored]
    if configs:
        run_sweep(store, RUNS, configs, executor=executor, progress=report, worker=execute_method)
    if not tasks:
        return
    n, skipped = len(tasks), len(tasks) - len(todo)
    phase_2d = f"{phase} (2-D surfaces)"
    report(Progress(skipped, n, skipped, 0, 0, None), phase_2d)
    for done, (key, payload) in enumerate(executor.map_unordered(plan.compute_surface, todo), start=1):
        store.put_result(SURFACES, key, payload)
        report(Progress(skipped + done, n, skipped, 0, 0, None), phase_2d)


def _claims(suite: Suite, variation: str | None = None) -> list:
    """The suite's claims; under a design variation, those it applies to (the others' runs are not needed)."""
    return [CLAIMS[c] for c in suite.claims() if variation is None or variation in CLAIMS[c].variations]


def _tunes(suite: Suite, with_formula: bool, variation: str | None = None) -> list[Tune]:
    tunes = [t for claim in _claims(suite, variation) for t in claim.tunes(suite)]
    if with_formula:
        tunes += formula.tunes(suite)
    return list(dict.fromkeys(tunes))


def _judging(suite: Suite, rates: plan.Rates, with_formula: bool, variation: str | None = None) -> list[Run]:
    runs = [r for claim in _claims(suite, variation) for r in claim.runs(suite, rates)]
    if with_formula:
        runs += formula.runs(suite, rates)
    return list(dict.fromkeys(runs))


def evidence_of(
    store: Store,
    suite: Suite,
    *,
    with_formula: bool,
    executor: Executor | None = None,
    progress: Phases | None = None,
    label: str = "",
    variation: str | None = None,
) -> Evidence:
    """Tune and judge ``suite`` (running what is missing when an executor is given) and read the evidence.

    ``variation``: ``suite`` is the design variation of that name, and only the claims it applies to run.
    """
    tunes = _tunes(suite, with_formula, variation)
    tuning = plan.tuning(suite, tunes)
    finder = Finder(store, suite)
    if executor is not None:
        execute_runs(store, suite, tuning, executor, progress, f"{label}tune")
    finder.fetch(tuning)
    rates = plan.tuned_rates(suite, tunes, finder)
    judging = _judging(suite, rates, with_formula, variation)
    if executor is not None:
        execute_runs(store, suite, judging, executor, progress, f"{label}judge")
    finder.fetch(judging)
    return Evidence(suite, rates, finder, runs=tuning + judging)


def judge_all(evidence: Evidence, variations: dict[str, Evidence]) -> Findings:
    """Every claim judged on ``evidence``, with its verdicts under each variation that applies to it."""
    claims = _claims(evidence.suite)
    main = Findings(tuple(judge(claim, evidence) for claim in claims))
    judged: dict[str, Findings] = {}
    for name, other in variations.items():
        judged[name] = Findings(tuple(judge(claim, other) for claim in claims if name in claim.variations))
    return main.with_variants(judged)


def optimum(evidence: Evidence) -> dict[str, float]:
    """The lowest final held-out loss any judged data run reached, per problem (at its suite options)."""
    best: dict[str, float] = {}
    for run in evidence.runs:
        if isinstance(run, DataRun) and not run.options and run.seed in evidence.suite.judge_seeds:
            record = evidence.get(run)
            if record is not None and not record.diverged and record.held_out.loss:
                value = record.held_out.loss[-1]
                if math.isfinite(value):
                    best[run.problem] = min(best.get(run.problem, math.inf), value)
    return best


def machine() -> dict[str, Any]:
    """The machine a comparison ran on (for the report and findings)."""
    import os

    import torch

    processor = platform.processor() or platform.machine()
    try:  # Linux names the model; platform.processor() often says only the architecture
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "processor": processor,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "descentlab": __version__,
    }


def calibration_checks(suite: Suite) -> tuple[dict[str, Any], ...]:
    """The calibration checks against theory, as findings rows."""
    from .calibration import calibrate

    return tuple(check.to_data() for check in calibrate(quick=suite.name != "default"))


def prepare(out: str | Path, *, runs: bool = True) -> Path:
    """Check that ``out`` can hold a comparison before anything runs; return the report's path.

    ``runs``: whether runs will be stored (``compare``), so the store must take
    writes; ``report`` only reads it, and an empty file is no store to it.
    """
    path = _files.check_writable(Path(out) / REPORT)
    store = Path(out) / STORE_FILENAME
    if store.exists():
        # refuses a store of another version (or a damaged one) before writing to it
        Store(store, create=runs).close()
        if runs:
            try:
                open(store, "r+b").close()  # opened for writing, nothing written
            except OSError as err:
                raise OSError(f"store {str(store)!r} cannot be written: {err.strerror or err}") from None
    return path


def compare(
    out: str | Path,
    suite: Suite,
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: Phases | None = None,
    lang: str = "en",
) -> tuple[Path, Findings]:
    """Run ``suite`` into ``out`` (resuming what is stored), write ``findings.json`` and the report.

    ``progress`` shows the phases (calibration, tuning and judging, for the
    suite and each design variation, and the report) as they run. ``lang`` is
    the report's language (``findings.json`` is the same in every language).
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
            manifest = replace(manifest, started=before.started, phases=dict(before.phases))
        _files.write_text_atomic(out / MANIFEST, manifest.to_json())
        phases = {k: v for k, v in manifest.phases.items() if k != "report"}
        owned = executor is None
        pool: Executor = LocalExecutor(workers) if executor is None else executor

        def timed(name: str, fn: Callable[[], Any]) -> Any:
            clock = time.monotonic()
            try:
                return fn()
            finally:
                phases[name] = phases.get(name, 0.0) + time.monotonic() - clock

        try:
            if progress is not None:
                progress.note(
                    "calibration: reproducing known results on quadratics and Wilson et al.'s problem"
                )
            calibration = timed("calibration", lambda: calibration_checks(suite))
            evidence = timed(
                "suite",
                lambda: evidence_of(store, suite, with_formula=True, executor=pool, progress=progress),
            )
            variations = {}
            for name in suite.variants:
                variations[name] = timed(
                    name,
                    lambda name=name: evidence_of(
                        store, suite.variant(name), with_formula=False, executor=pool, progress=progress,
                        label=f"{name}: ", variation=name,
                    ),
                )  # fmt: skip
        finally:
            if owned:
                pool.close()  # type: ignore[attr-defined]
        _files.write_text_atomic(out / MANIFEST, replace(manifest, phases=phases).to_json())
        if progress is not None:
            progress.note("report: judging, drawing the figures and writing the page")
        clock = time.monotonic()
        findings = _findings(evidence, variations, calibration, replace(manifest, phases=phases))
        path = _write(out, evidence, findings, lang)
        phases["report"] = time.monotonic() - clock
        _files.write_text_atomic(out / MANIFEST, replace(manifest, phases=phases).to_json())
    return path, findings


def _findings(
    evidence: Evidence, variations: dict[str, Evidence], calibration: tuple, manifest: Manifest
) -> Findings:
    findings = judge_all(evidence, variations)
    return replace(
        findings,
        calibration=calibration,
        formula=tuple(formula.rows(evidence, optimum(evidence))),
        suite=manifest.suite.name,
        machine=machine(),
        generated=manifest.started,
        timings={k: round(v, 1) for k, v in manifest.phases.items() if k != "report"},
    )


def _write(out: Path, evidence: Evidence, findings: Findings, lang: str) -> Path:
    from .report import write_report

    _files.write_text_atomic(out / FINDINGS, findings.to_json())
    return write_report(out / REPORT, evidence, findings, lang=lang)


def render(out: str | Path, lang: str = "en") -> tuple[Path, Findings]:
    """Rebuild ``findings.json`` and the report (in ``lang``) of the comparison in ``out`` from its store."""
    check_language(lang)
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"no such directory: {str(out)!r}")
    manifest = Manifest.read(out)
    prepare(out, runs=False)
    suite = manifest.suite
    with Store(out / STORE_FILENAME, create=False) as store:
        evidence = evidence_of(store, suite, with_formula=True)
        variations = {
            name: evidence_of(store, suite.variant(name), with_formula=False, variation=name)
            for name in suite.variants
        }
        findings = _findings(evidence, variations, calibration_checks(suite), manifest)
        path = _write(out, evidence, findings, lang)
    return path, findings


__all__ = [
    "DEFAULT_OUT",
    "FINDINGS",
    "MANIFEST",
    "REPORT",
    "Manifest",
    "StoreError",
    "compare",
    "evidence_of",
    "judge_all",
    "prepare",
    "render",
]
