"""The self-contained HTML report: the protocol, every claim with its evidence and verdict, the figures.

:func:`write_report` draws the figures into ``figures/`` next to
``report.html`` and writes the page, which references only those files: no
script, no stylesheet or font from elsewhere, so it opens offline. Every
string that comes from the store or the user (suite and problem names,
options, error messages) goes through :func:`html.escape`; the page is built
from the :class:`~descentlab.lab.evidence.Evidence` and the claims alone, so
rendering it twice from the same store gives the same page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import _files
from . import analysis, figures
from .claims import (
    CLAIMS,
    MIXED,
    NOT_MEASURED,
    NOT_SUPPORTED,
    SUPPORTED,
    Claim,
    Finding,
    judge_every_claim,
    number,
    sensitivity,
)
from .evidence import Evidence
from .methods import METHODS
from .mistakes import MISTAKES

FIGURES = "figures"
#: A learning rate is in the summary's good range if its run keeps this share of the best improvement.
GOOD_RANGE_KEEP = CLAIMS["C7"].params["keep"]
#: A mistaken rule "does about as well" if it keeps this share of the correct rule's improvement ...
FORMULA_CLOSE = 0.9
#: ... and "stalls" if it keeps less than this share.
FORMULA_STALLS = 0.5


def esc(value: object) -> str:
    """``value`` as text safe inside HTML elements and attribute values."""
    return html.escape(str(value), quote=True)


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (letters, digits and dashes).

    >>> slug("rosenbrock-noisy"), slug("<b>x</b> y")
    ('rosenbrock-noisy', 'b-x-b-y')
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


@dataclass(frozen=True)
class Context:
    """What the page shows besides the evidence: where the runs came from and how long they took."""

    title: str
    generated_by: str
    phases: tuple[tuple[str, float], ...] = ()
    started: str = ""


class _Figures:
    """Draws figures into the report's directory and remembers which exist (name -> caption)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: dict[str, str] = {}

    def draw(self, name: str, caption: str, drawer: Callable[[Path], bool]) -> str | None:
        path = self.directory / FIGURES / name
        if drawer(path):
            self.made[name] = caption
            return name
        return None

    def img(self, name: str | None, caption: str = "") -> str:
        if name is None:
            return '<p class="none">No data for this figure.</p>'
        text = caption or self.made.get(name, "")
        return (
            f'<figure><img src="{esc(FIGURES + "/" + name)}" alt="{esc(text)}">'
            f"<figcaption>{esc(text)}</figcaption></figure>"
        )


# -- the page -------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1180px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .86em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
.verdict { font-weight: bold; padding: .1em .5em; border-radius: .3em; }
.supported { background: #d8f0d8; } .not-supported { background: #f6d5d5; }
.mixed { background: #f8ecc8; } .not-measured { background: #e6e6e6; }
.rule { background: #f7f7fb; border-left: 3px solid #99c; padding: .4em .8em; }
.none { color: #888; font-style: italic; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


def _verdict(value: str) -> str:
    return f'<span class="verdict {esc(value.replace(" ", "-"))}">{esc(value)}</span>'


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (for cells this module built itself)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell if raw else esc(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _holds(value: bool | None) -> str:
    return {True: "holds", False: "does not hold", None: "not measurable"}[value]


def _cases_table(finding: Finding) -> str:
    columns: list[str] = []
    for case in finding.cases:
        for name, _ in case.numbers:
            if name not in columns:
                columns.append(name)
    rows = []
    for case in finding.cases:
        values = dict(case.numbers)
        rows.append(
            [
                case.label,
                *[values.get(c, "") for c in columns],
                _holds(case.holds) + (f" ({case.why})" if case.why else ""),
            ]
        )
    return _table(["case", *columns, "claim"], rows)


def _claim_section(claim: Claim, findings: list[Finding], figure_html: str) -> str:
    main = findings[0]
    share = f"{main.held} of {main.measured} measurable cases" if main.measured else "no measurable case"
    depends = main.depends_on()
    neighbours = _table(
        ["rule", "as stated", "verdict", "cases where it holds"],
        [
            [esc(f.label), esc(f.rule), _verdict(f.verdict), esc(f"{f.held} of {f.measured}")]
            for f in findings
        ],
        raw=True,
    )
    changed = sorted({f.verdict for f in findings[1:]} - {main.verdict})
    robust = (
        "The verdict is the same under every neighbouring rule."
        if not changed
        else f"The verdict changes under neighbouring rules (to {', '.join(changed)}): it depends on the "
        "rule's "
        "parameters, as the table shows."
    )
    return f"""
<section id="{esc(claim.key)}">
<h2>{esc(claim.key)}: {esc(claim.statement)}</h2>
<p><b>Verdict:</b> {_verdict(main.verdict)} ({esc(share)}).
{esc(("Where it depends: " + depends + ".") if depends else "")}</p>
<p><b>Experiment <code>{esc(claim.name)}</code>.</b> {esc(claim.experiment)}.</p>
<p><b>Measure.</b> {esc(claim.measure_text(main.params))}.</p>
<p class="rule"><b>Rule, written before the runs.</b> {esc(main.rule)}. The verdict: supported if the claim
holds in at least two thirds of the measurable cases, not supported if in at most one third, mixed in
between.</p>
{figure_html}
<h3>Numbers (medians over seeds)</h3>
{_cases_table(main)}
<h3>Neighbouring rules</h3>
{neighbours}
<p>{esc(robust)}</p>
</section>"""


def _protocol(evidence: Evidence) -> str:
    suite = evidence.suite
    methods = _table(
        ["method", "optimizer", "regime", "fixed hyperparameters", "learning rate", "description"],
        [
            [
                m.name,
                m.optimizer,
                m.regime,
                ", ".join(f"{k}={v}" for k, v in m.hyperparameters.items()) or "torch defaults",
                "tuned on the grid" if m.tuned else f"{m.matched_to}'s tuned lr x {m.lr_factor:.3g}",
                m.summary,
            ]
            for m in (METHODS[name] for name in suite.methods)
        ],
    )
    problems = _table(
        [
            "problem",
            "options",
            "target",
            "batch",
            "full-batch budget",
            "mini-batch budget",
            "online budget",
            "methods",
            "observers",
        ],
        [
            [
                p.problem,
                ", ".join(f"{k}={v}" for k, v in p.options.items()) or "defaults",
                number(evidence.target(p.problem)),
                p.batch_size,
                p.full_batch.describe(),
                p.mini_batch.describe(),
                p.online.describe(),
                ", ".join(suite.methods_on(p.problem)),
                ", ".join(p.observers) or "-",
            ]
            for p in suite.problems
        ],
    )
    grid = ", ".join(f"{lr:g}" for lr in suite.lr_grid)
    return f"""
<section id="protocol">
<h2>Protocol</h2>
<p>Suite <b>{esc(suite.name)}</b>: {esc(suite.summary)}.</p>
<p>Each tuned method runs on each problem at every learning rate of the grid [{esc(grid)}] with seed 0.
The best learning rate is the one with the lowest final held-out loss (a diverged run is the worst; ties
go to the smaller rate). That setting is rerun with seeds 1 to {suite.seeds - 1}; every number below is a
median over the {suite.seeds} seeds unless it says otherwise. <code>momentum-matched</code> is not tuned:
it runs at SGD's tuned rate times (1 - 0.9), the same effective step size lr/(1 - beta) as plain SGD. On the
2-D surfaces, seeds above 0 start at the standard start moved by up to
{esc(", ".join(sorted({f"{100 * p.start_jitter:g}%" for p in suite.problems if p.start_jitter})) or "0%")}
per coordinate; seed 0 starts at the standard start, so the seed-0 paths share their start.</p>
{methods}
{problems}
</section>"""


def _summary(evidence: Evidence) -> str:
    rows = []
    for spec in evidence.suite.problems:
        problem = spec.problem
        target = evidence.target(problem)
        kept = sensitivity(evidence, problem, GOOD_RANGE_KEEP)  # C7's measure, for the tuned methods
        for method in evidence.methods_on(problem):
            records = evidence.records(method, problem)
            lr = evidence.lr(method, problem)
            lrs = kept.get(method)
            if lrs is None:
                good = ""
            elif len(lrs) == 1:
                good = f"{lrs[0]:g} only"
            else:
                good = f"{lrs[0]:g} to {lrs[-1]:g} ({len(lrs)} points)" if lrs else "none"
            diverged = sum(r.diverged for r in records)
            rows.append(
                [
                    problem,
                    method,
                    number(lr, 3) if lr is not None else "every grid point diverged",
                    number(analysis.median([analysis.final_loss(r) for r in records])) if records else "-",
                    number(analysis.time_to(records, target, "step"))
                    if records and target is not None
                    else "-",
                    number(analysis.time_to(records, target, "seconds"), 3)
                    if records and target is not None
                    else "-",
                    good,
                    f"{diverged}/{len(records)}",
                ]
            )
    table = _table(
        [
            "problem",
            "method",
            "tuned lr",
            "final loss",
            "updates to target",
            "seconds to target",
            f"lrs keeping {100 * GOOD_RANGE_KEEP:g}% of the best gain",
            "diverged seeds",
        ],
        rows,
    )
    return f"""
<section id="summary">
<h2>Summary</h2>
<p>Final held-out loss, updates and training seconds until the held-out loss first reaches the problem's
documented target ("never": not within the budget), medians over seeds at the tuned learning rate; and the
learning rates of the grid whose run keeps at least {GOOD_RANGE_KEEP:.0%} of the method's best improvement
over the starting loss.</p>
{table}
</section>"""


def _formula_rows(evidence: Evidence) -> list[list[str]]:
    rows = []
    for problem in evidence.suite.formula_problems:
        start = evidence.start(problem)
        for mistake in MISTAKES.values():
            correct = evidence.records(mistake.correct, problem)
            wrong = evidence.formula(mistake.name, mistake.correct, problem)
            if not wrong or not correct or start is None:
                continue
            right_loss = analysis.median([analysis.final_loss(r) for r in correct])
            rows.append(
                [
                    problem,
                    f"{mistake.name}: {mistake.summary}, {mistake.wrong}",
                    f"{mistake.correct}: {mistake.right}",
                    number(evidence.lr(mistake.correct, problem), 3),
                    number(right_loss),
                    _outcome(wrong, start, right_loss),
                ]
            )
    return rows


def _outcome(records, start: float, right_loss: float) -> str:
    """What a mistaken rule did, in words, from its runs (the thresholds are the module's constants)."""
    diverged = [r for r in records if r.diverged]
    if diverged:
        at = analysis.median([float(r.diverged_at or 0) for r in diverged])
        return f"diverged in {len(diverged)} of {len(records)} seeds (median: after {at:g} updates)"
    loss = analysis.median([analysis.final_loss(r) for r in records])
    if loss >= start:
        return f"made the loss worse than at the start ({number(start)} -> {number(loss)})"
    if not start > right_loss:
        return f"ended at {number(loss)}, below the start, which the correct rule did not get below"
    share = (start - loss) / (start - right_loss)
    if share < FORMULA_STALLS:
        return f"stalled at {number(loss)}: {100 * share:.0f}% of the correct rule's improvement"
    if share < FORMULA_CLOSE:
        return f"ended at {number(loss)}: {100 * share:.0f}% of the correct rule's improvement"
    return f"ended at {number(loss)}, about as well as the correct rule or better ({100 * share:.0f}%)"


def _runs_section(evidence: Evidence) -> str:
    runs = evidence.runs()
    stored = [run for _, run in runs if run is not None]
    diverged = sum(1 for run in stored if run.record is not None and run.record.diverged)
    failed = [(t, run) for t, run in runs if run is not None and run.record is None]
    parts = [
        f"<p>{len(stored)} of {evidence.planned} planned runs are in the store; {diverged} diverged "
        f"(a result, counted as the worst), {len(failed)} failed.</p>"
    ]
    if evidence.missing:
        parts.append(
            f"<p><b>{len(evidence.missing)} planned runs are missing</b> (an interrupted comparison?): "
            "the verdicts below use the runs present. Rerun <code>descentlab compare</code> with the same "
            "output directory to complete them.</p>"
        )
    if failed:
        parts.append(
            _table(
                ["experiment", "method", "problem", "lr", "seed", "error"],
                [
                    [t.experiment, t.method, t.problem, f"{t.lr:g}", t.seed, run.error or ""]
                    for t, run in failed[:50]
                ],
            )
        )
    return "\n".join(parts)


def write_report(
    evidence: Evidence,
    directory: Path,
    context: Context,
    findings: Mapping[str, list[Finding]] | None = None,
) -> Path:
    """Draw every figure into ``directory/figures`` and write ``directory/report.html``; return its path.

    ``findings`` are :func:`~descentlab.lab.claims.judge_every_claim`'s, when
    the caller has judged the claims already.
    """
    if findings is None:
        findings = judge_every_claim(evidence)
    directory = Path(directory)
    (directory / FIGURES).mkdir(parents=True, exist_ok=True)
    fig = _Figures(directory)
    suite = evidence.suite

    # Figures per problem.
    problem_blocks = []
    for spec in suite.problems:
        p, s = spec.problem, slug(spec.problem)
        parts = [f'<h3 id="problem-{esc(s)}">{esc(p)}</h3>']
        if "path" in spec.observers:
            parts.append(
                fig.img(
                    fig.draw(
                        f"paths-{s}.png", f"{p}: paths", lambda path, p=p: figures.paths(evidence, p, path)
                    )
                )
            )
            parts.append(
                fig.img(
                    fig.draw(
                        f"paths-{s}.gif",
                        f"{p}: paths, animated",
                        lambda path, p=p: figures.paths_animation(evidence, p, path),
                    )
                )
            )
        parts.append(
            fig.img(
                fig.draw(
                    f"curves-{s}.png",
                    f"{p}: loss against updates, samples and time",
                    lambda path, p=p: figures.curves(evidence, p, path),
                )
            )
        )
        parts.append(
            fig.img(
                fig.draw(
                    f"sensitivity-{s}.png",
                    f"{p}: learning-rate sensitivity",
                    lambda path, p=p: figures.lr_sensitivity(evidence, p, path),
                )
            )
        )
        parts.append(
            fig.img(
                fig.draw(
                    f"effective-lr-{s}.png",
                    f"{p}: effective learning rate",
                    lambda path, p=p: figures.effective_lr(evidence, p, path),
                )
            )
        )
        problem_blocks.append("\n".join(parts))

    profile = fig.img(
        fig.draw("profiles.png", "performance profiles", lambda path: figures.profiles(evidence, path))
    )

    claim_figures = {
        "C1": [("claim-c1.png", "C1: loss against time, full batch and mini-batches", figures.regimes)],
        "C2": [("claim-c2.png", "C2: prequential loss of online SGD", figures.prequential)],
        "C3": [
            ("claim-c3.png", "C3: loss against updates on the saddle and the trap", figures.momentum_updates)
        ],
        "C4": [("claim-c4.png", "C4: sizes of single moves in the second half of the paths", figures.kicks)],
        "C5": [("claim-c5.png", "C5: weight errors on rare and common features", figures.rare_features)],
        "C6": [
            ("claim-c6.png", "C6: median effective learning rate, AdaGrad and RMSProp", figures.vanishing_lr)
        ],
        "C7": [
            (
                "claim-c7.png",
                "C7: good learning-rate range per method",
                lambda ev, path: figures.sensitivity_counts(ev, path, CLAIMS["C7"].params["keep"]),
            )
        ],
    }
    claim_sections, summary_rows = [], []
    for claim in CLAIMS.values():
        judged = findings[claim.key]
        blocks = []
        for name, caption, drawer in claim_figures[claim.key]:
            blocks.append(fig.img(fig.draw(name, caption, lambda path, d=drawer: d(evidence, path))))
        for problem in suite.claim_problems.get(claim.key, ()):
            if claim.key in ("C3", "C4") and "path" in suite.spec(problem).observers:
                methods = ("sgd", "momentum", "momentum-matched")
                name = f"claim-{claim.key.lower()}-paths-{slug(problem)}.png"
                blocks.append(
                    fig.img(
                        fig.draw(
                            name,
                            f"{claim.key}: paths on {problem}",
                            lambda path, p=problem, m=methods: figures.paths(evidence, p, path, m),
                        )
                    )
                )
        claim_sections.append(_claim_section(claim, judged, "\n".join(blocks)))
        main = judged[0]
        summary_rows.append(
            [
                f'<a href="#{esc(claim.key)}">{esc(claim.key)}</a>',
                esc(claim.statement),
                _verdict(main.verdict),
                esc(f"{main.held} of {main.measured}"),
                "<br>".join(f"{esc(f.label)}: {_verdict(f.verdict)}" for f in judged[1:]),
            ]
        )

    formula_figures = "\n".join(
        fig.img(
            fig.draw(
                f"formula-{slug(p)}.png",
                f"formula check on {p}",
                lambda path, p=p: figures.formula_check(evidence, p, path),
            )
        )
        for p in suite.formula_problems
    )
    formula_table = _table(
        [
            "problem",
            "mistaken rule",
            "correct rule",
            "lr (correct rule's tuned)",
            "correct: final loss",
            "what the mistaken rule did",
        ],
        _formula_rows(evidence),
    )

    verdicts = _table(
        ["claim", "statement", "verdict", "cases where it holds", "under neighbouring rules"],
        summary_rows,
        raw=True,
    )
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in context.phases)
    provenance = context.generated_by
    if context.started:
        provenance += f". Runs started {context.started}"
    if phases:
        provenance += f"; time per phase: {phases}"
    legend = (
        f"{_verdict(SUPPORTED)} holds in at least two thirds of the measurable cases; "
        f"{_verdict(NOT_SUPPORTED)} in at most one third; {_verdict(MIXED)} in between; "
        f"{_verdict(NOT_MEASURED)}: no case could be measured."
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(context.title)}</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<h1>{esc(context.title)}</h1>
<p>{esc(provenance)}.</p>
{_runs_section(evidence)}
<nav><p><a href="#verdicts">Verdicts</a> · <a href="#protocol">Protocol</a> · <a href="#summary">Summary</a> ·
<a href="#figures">Figures per problem</a> · <a href="#profiles">Performance profiles</a> ·
<a href="#formula">Formula check</a></p></nav>
<section id="verdicts">
<h2>Verdicts on the usual claims</h2>
<p>Every verdict is computed from the stored runs by the rule shown with its claim; none is written by hand.
{legend}</p>
{verdicts}
</section>
{_protocol(evidence)}
{_summary(evidence)}
{"".join(claim_sections)}
<section id="profiles">
<h2>Performance profiles</h2>
<p>As AlgoPerf draws them: on each problem every method ran, a method's cost to reach the documented target
(median over seeds) divided by the best method's; the curve is the share of problems where that ratio is at
most tau. A method that never reaches a target stays below 1.</p>
{profile}
</section>
<section id="formula">
<h2>Formula check: what common mistaken forms of the rules do</h2>
<p>Each mistaken rule runs on the same problems, at the tuned learning rate of the rule it gets wrong, with
every seed. The outcome is computed from its runs: diverged (and when), worse than the start, stalled
(under {FORMULA_STALLS:.0%} of the correct rule's improvement over the start), or how much of that
improvement it kept.</p>
{formula_table}
{formula_figures}
</section>
<section id="figures">
<h2>Figures per problem</h2>
<p>Paths on the 2-D surfaces (seed 0 of each method, from the same start; stars: minima, crosses: saddles),
their animation, the loss against updates, samples and training time, the learning-rate sensitivity and the
effective learning rate of the adaptive methods.</p>
{"".join(problem_blocks)}
</section>
</body>
</html>
"""
    out = directory / "report.html"
    _files.write_text_atomic(out, page)
    _remove_stale(directory / FIGURES, set(fig.made))
    return out


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete figures an earlier rendering drew and this one did not: the folder matches the page."""
    for path in folder.iterdir():
        if path.is_file() and path.suffix in (".png", ".gif") and path.name not in keep:
            path.unlink()
