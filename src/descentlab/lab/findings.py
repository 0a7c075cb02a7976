"""``findings.json``: the one machine-readable record of a comparison's verdicts.

The report and the verdicts ``descentlab compare`` prints are rendered from
a :class:`Findings`; it is written beside the report as ``findings.json``:

- ``claims``: ``{id, title, statement, source, verdict, robust, subclaims}``,
  each sub-claim ``{id, statement, measure, effect, ci: [low, high],
  min_effect, rule, verdict, robust, control: {effect, ci}, variants: {name:
  verdict}, cases}`` (``rule``: ``"effect"``, or ``"equivalence"``, where
  ``min_effect`` is the tolerance), each case ``{label, effect, ci, control, verdict,
  units, numbers, note}``;
- ``calibration``: ``{id, title, predicted, measured, pass, ...}``;
- ``formula``: the formula check's rows;
- ``suite``, ``machine``, ``generated``, ``timings``.

Non-finite numbers are written as strings (``"inf"``, ``"nan"``), so the
file is strict JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

from ..i18n import Catalogue


def _number(value: Any) -> Any:
    """``value`` made strict-JSON-ready: non-finite floats as strings, NumPy numbers as Python ones."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, dict):
        return {str(k): _number(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_number(v) for v in value]
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _interval(low: float, high: float) -> list[float | str | None]:
    return [_number(low), _number(high)]


@dataclass(frozen=True)
class CaseFinding:
    """One case of a sub-claim: its effect, interval, control, verdict and context numbers."""

    label: str
    effect: float
    low: float
    high: float
    control_effect: float
    control_low: float
    control_high: float
    verdict: str
    units: int
    control_agrees: bool = False
    numbers: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_data(self) -> dict[str, Any]:
        """This case as JSON-ready data."""
        return {
            "label": self.label,
            "effect": _number(self.effect),
            "ci": _interval(self.low, self.high),
            "control": {
                "effect": _number(self.control_effect),
                "ci": _interval(self.control_low, self.control_high),
                "agrees": self.control_agrees,
            },
            "verdict": self.verdict,
            "units": self.units,
            "numbers": _number(self.numbers),
            "note": self.note,
        }


@dataclass(frozen=True)
class SubFinding:
    """A sub-claim judged: its pooled effect over cases, verdict, control, cases and design variations."""

    id: str
    statement: str
    measure: str
    effect_text: str
    control_text: str
    min_effect: float
    effect: float
    low: float
    high: float
    control_effect: float
    control_low: float
    control_high: float
    verdict: str
    cases: tuple[CaseFinding, ...]
    variants: dict[str, str] = field(default_factory=dict)
    not_varied: dict[str, str] = field(default_factory=dict)
    rule: str = "effect"

    @property
    def robust(self) -> bool:
        """Whether the verdict survives every design variation judged (and at least one was)."""
        return bool(self.variants) and all(v == self.verdict for v in self.variants.values())

    def depends_on(self, words: Catalogue | None = None) -> str:
        """Where the cases go each way, and which variations change the verdict, in ``words``' language."""
        words = words or Catalogue("descentlab.lab")
        parts = []
        yes = [words.translate(c.label) for c in self.cases if c.verdict == "supported"]
        no = [words.translate(c.label) for c in self.cases if c.verdict == "contradicted"]
        if yes and no:
            parts.append(words("depends.cases", yes=", ".join(yes), no=", ".join(no)))
        changed = [
            words("depends.changed", name=name, verdict=words(f"verdict.{verdict}"))
            for name, verdict in self.variants.items()
            if verdict != self.verdict
        ]
        if changed:
            parts.append(words("depends.variations", changed=", ".join(changed)))
        return words("depends.separator").join(parts)

    def to_data(self) -> dict[str, Any]:
        """This sub-claim as JSON-ready data."""
        return {
            "id": self.id,
            "statement": self.statement,
            "measure": self.measure,
            "effect_definition": self.effect_text,
            "effect": _number(self.effect),
            "ci": _interval(self.low, self.high),
            "min_effect": self.min_effect,
            "rule": self.rule,
            "verdict": self.verdict,
            "robust": self.robust,
            "control": {
                "definition": self.control_text,
                "effect": _number(self.control_effect),
                "ci": _interval(self.control_low, self.control_high),
            },
            "variants": dict(self.variants),
            "not_varied": dict(self.not_varied),
            "depends_on": self.depends_on(),
            "cases": [c.to_data() for c in self.cases],
        }


@dataclass(frozen=True)
class ClaimFinding:
    """A claim judged: its statement, source sentence, verdict and sub-claims."""

    id: str
    title: str
    statement: str
    source: str
    verdict: str
    subclaims: tuple[SubFinding, ...]
    variants: dict[str, str] = field(default_factory=dict)

    @property
    def robust(self) -> bool:
        """Whether every sub-claim's verdict is robust."""
        return all(s.robust for s in self.subclaims)

    def to_data(self) -> dict[str, Any]:
        """This claim as JSON-ready data."""
        return {
            "id": self.id,
            "title": self.title,
            "statement": self.statement,
            "source": self.source,
            "verdict": self.verdict,
            "robust": self.robust,
            "variants": dict(self.variants),
            "subclaims": [s.to_data() for s in self.subclaims],
        }


@dataclass(frozen=True)
class Findings:
    """Everything a comparison concluded (see the module docstring)."""

    claims: tuple[ClaimFinding, ...]
    calibration: tuple[dict[str, Any], ...] = ()
    formula: tuple[dict[str, Any], ...] = ()
    suite: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    generated: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def claim(self, claim_id: str) -> ClaimFinding:
        """The finding of claim ``claim_id``."""
        return next(c for c in self.claims if c.id == claim_id)

    def with_variants(self, judged: dict[str, Findings]) -> Findings:
        """These findings with each sub-claim's (and claim's) verdict under each variation filled in."""
        claims = []
        for claim in self.claims:
            subs = []
            for sub in claim.subclaims:
                variants = {}
                for name, other in judged.items():
                    found = [
                        s for c in other.claims if c.id == claim.id for s in c.subclaims if s.id == sub.id
                    ]
                    if found:
                        variants[name] = found[0].verdict
                subs.append(replace(sub, variants=variants))
            verdicts = {
                name: c.verdict for name, other in judged.items() for c in other.claims if c.id == claim.id
            }
            claims.append(replace(claim, subclaims=tuple(subs), variants=verdicts))
        return replace(self, claims=tuple(claims))

    def to_data(self) -> dict[str, Any]:
        """The whole record as JSON-ready data (what ``findings.json`` holds)."""
        return {
            "format": 1,
            "suite": self.suite,
            "generated": self.generated,
            "machine": self.machine,
            "timings": _number(self.timings),
            "calibration": _number(list(self.calibration)),
            "claims": [c.to_data() for c in self.claims],
            "formula": _number(list(self.formula)),
        }

    def to_json(self) -> str:
        """``findings.json``'s text (strict JSON)."""
        return json.dumps(self.to_data(), indent=1, allow_nan=False) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "-"
    return f"{value:.3g}"


def markdown(data: dict[str, Any], lang: str = "en") -> str:
    """A ``findings.json`` (as data) as Markdown: the run, calibration, and every sub-claim's verdict.

    The documentation's "what one run found" page is this, for each stored findings file
    (``descentlab report --markdown FILE [--lang zh]`` prints it), so no figure in it
    is typed. ``lang`` is the language of its words (the file itself is the same in every
    language).
    """
    words = Catalogue("descentlab.lab", lang)
    machine = data.get("machine", {})
    timings = data.get("timings", {})
    lines = [
        words(
            "md.run",
            suite=data.get("suite", ""),
            generated=data.get("generated", ""),
            processor=machine.get("processor", ""),
            cores=machine.get("cores", "?"),
            torch=machine.get("torch", ""),
            version=machine.get("descentlab", ""),
            timings=", ".join(
                f"{words.translate(k)} {float(v):.0f} s" for k, v in timings.items() if not isinstance(v, str)
            ),
        ),
        "",
    ]
    checks = data.get("calibration", [])
    passed = sum(1 for c in checks if c.get("pass"))
    measured = [
        words(
            "md.calibration_check", id=c["id"], predicted=_fmt(c["predicted"]), measured=_fmt(c["measured"])
        )
        for c in checks
    ]
    lines += [
        words("md.calibration", passed=passed, total=len(checks))
        + (": " + "; ".join(measured) if checks else "")
        + ".",
        "",
        words("md.header"),
        "|---|---|---|---|---|---|---|---|",
    ]

    def verdict(name: str) -> str:
        return words(f"verdict.{name}")

    def threshold(sub: dict[str, Any]) -> str:
        value = _fmt(sub["min_effect"])
        return words("md.tolerance", value=value) if sub.get("rule") == "equivalence" else value

    for claim in data.get("claims", []):
        for sub in claim["subclaims"]:
            ci, ctrl = sub["ci"], sub["control"]
            changed = {k: v for k, v in sub["variants"].items() if v != sub["verdict"]}
            robust = (
                words("md.not_rejudged")
                if not sub["variants"]
                else words("word.yes")
                if sub["robust"]
                else words("word.no")
                + (
                    " (" + ", ".join(f"{k}: {verdict(v)}" for k, v in changed.items()) + ")"
                    if changed
                    else ""
                )
            )
            found = [c["verdict"] for c in sub["cases"]]
            cases = words(
                "md.cases",
                supported=found.count("supported"),
                contradicted=found.count("contradicted"),
                agrees=sum(1 for c in sub["cases"] if c["control"].get("agrees")),
                total=len(found),
            )
            lines.append(
                f"| {claim['id']} ({verdict(claim['verdict'])}) | {sub['id']} | {verdict(sub['verdict'])} | "
                f"{cases} | {_fmt(sub['effect'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] | "
                f"{_fmt(ctrl['effect'])} [{_fmt(ctrl['ci'][0])}, {_fmt(ctrl['ci'][1])}] | "
                f"{threshold(sub)} | {robust} |"
            )
    return "\n".join(lines) + "\n"
