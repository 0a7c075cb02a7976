"""The self-contained HTML report, rendered from the findings with a Jinja2 template (autoescape on).

:func:`write_report` draws each claim's forest plot and its own figures into
``figures/`` next to the page and renders ``templates/report.html.j2``: no
script, no stylesheet or font from elsewhere, so it opens offline. Every
number on the page comes from the :class:`~descentlab.lab.findings.Findings`
(the same record ``findings.json`` holds) or from the suite; none is typed
in the template. Rendering twice from the same store gives the same page.

The page's words come from the lab's message catalogue (``lab/i18n/``, see
:mod:`descentlab.i18n`) in English or Chinese (``lang``); the texts the
claims and checks wrote into the findings are English there, and are shown
in the page's language through the same catalogue.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from .. import _files
from ..i18n import Catalogue
from . import figures, stats
from .claims import CLAIMS
from .evidence import Evidence
from .findings import Findings
from .suite import VARIANTS

FIGURES = "figures"


def num(value: Any, digits: int = 4, words: Catalogue | None = None) -> str:
    """A number for the page: significant digits, 'never'/'-inf' for infinities, '-' for None or NaN.

    ``words`` writes the words (never, yes, none, and a text value) in its language.

    >>> num(0.000123456), num(math.inf), num(None), num("text")
    ('0.0001235', 'never', '-', 'text')
    """
    words = words or Catalogue("descentlab.lab")
    if value is None:
        return "-"
    if isinstance(value, bool):
        return words("word.yes" if value else "word.no")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return words("word.never") if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    if isinstance(value, dict):
        return "; ".join(f"{words.translate(str(k))}: {num(v, digits, words)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(num(v, digits, words) for v in value) if value else words("word.none")
    return words.translate(str(value))


def plain(text: str) -> str:
    r"""A docstring's reStructuredText as plain text: roles and literals unwrapped, LaTeX spelled out.

    >>> plain(r"the rate :math:`\gamma / (1 - \beta)` of ``momentum``")
    'the rate γ / (1 - β) of momentum'
    """
    text = re.sub(r":[a-z]+:`([^`]*)`", r"\1", text)
    text = text.replace("``", "").replace("**", "")
    for command, symbol in _SYMBOLS.items():
        text = text.replace(command, symbol)
    text = re.sub(r"([_^√]|mean )\{([^}]*)\}", r"\1\2", text)
    text = re.sub(r"\{([^{}]*)\}", r"\1", text)
    return re.sub(r"\\(frac|tfrac)\{([^}]*)\}\{([^}]*)\}", r"\2/\3", text)


_SYMBOLS = {
    "\\gamma": "γ", "\\beta": "β", "\\log": "log", "\\sqrt": "√", "\\sum": "Σ", "\\ge": "≥",
    "\\le": "≤", "\\overline": "mean ", "\\|": "‖", "\\xi": "ξ", "\\theta": "θ", "\\top": "ᵀ",
    "\\pm": "±", "\\,": " ",
}  # fmt: skip


def _environment(words: Catalogue):
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("descentlab.lab", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["num"] = lambda value, digits=4: num(value, digits, words)
    env.globals.update(t=words.markup, tr=words.translate, lang=words.lang, words=words)
    return env


def write_report(
    path: Path, evidence: Evidence, findings: Findings, title: str | None = None, lang: str = "en"
) -> Path:
    """Draw the figures and write the page at ``path`` in language ``lang``; returns ``path``."""
    words = Catalogue("descentlab.lab", lang)
    path = Path(path)
    folder = path.parent / FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    forest: dict[str, str | None] = {}
    drawn: dict[str, list[tuple[str, str]]] = {}
    for claim in findings.claims:
        name = f"{claim.id.lower()}-effects.png"
        forest[claim.id] = name if figures.forest(claim, folder / name) else None
        drawn[claim.id] = CLAIMS[claim.id].figures(evidence, folder)
    _remove_stale(
        folder, {n for n in forest.values() if n} | {n for pairs in drawn.values() for n, _ in pairs}
    )
    suite = evidence.suite
    machine = findings.machine
    missing = sum(1 for run in evidence.runs if evidence.get(run) is None)
    page = (
        _environment(words)
        .get_template("report.html.j2")
        .render(
            title=title or words("report.title", suite=suite.name),
            findings=findings,
            suite=suite,
            machine=machine,
            machine_line=", ".join(
                f"{words.translate(k)} {v}" for k, v in machine.items() if k != "descentlab"
            ),
            timings=[(k, v) for k, v in findings.timings.items()],
            grid=", ".join(f"{lr:g}" for lr in suite.grid),
            resamples=stats.RESAMPLES,
            variations=[(name, VARIANTS[name]) for name in suite.variants],
            calibration=findings.calibration,
            forest=forest,
            figures=drawn,
            texts={c.id: claim_text(c.id, words) for c in findings.claims},
            folder=FIGURES,
            missing=missing,
        )
    )
    _files.write_text_atomic(path, page)
    return path


def claim_text(claim_id: str, words: Catalogue) -> str:
    """How a claim is measured, in the catalogue's language: its module's docstring, or its translation."""
    english = plain(CLAIMS[claim_id].text.strip())
    return english if words.lang == "en" else words(f"claim_text.{claim_id}")


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Figures of an earlier rendering that this one did not draw (a claim with no data now)."""
    for file in folder.glob("*.png"):
        if file.name not in keep:
            file.unlink()
