"""The report is rendered with autoescape: every string from the user, the store or a claim is escaped."""

from __future__ import annotations

from dataclasses import replace

import markupsafe
import pytest

from descentlab.lab.evidence import Evidence
from descentlab.lab.findings import CaseFinding, ClaimFinding, Findings, SubFinding
from descentlab.lab.report import write_report
from descentlab.lab.suite import get_suite

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>\"'&"


def _findings() -> Findings:
    case = CaseFinding(
        HOSTILE, 0.5, 0.2, 0.8, 0.0, -0.1, 0.1, "supported", 5, numbers={HOSTILE: HOSTILE}, note=HOSTILE
    )
    sub = SubFinding(
        "C3.tuned",
        HOSTILE,
        HOSTILE,
        HOSTILE,
        HOSTILE,
        0.1,
        0.5,
        0.2,
        0.8,
        0.0,
        -0.1,
        0.1,
        "supported",
        (case,),
        variants={"grid-shift": "supported"},
    )
    claim = ClaimFinding("C3", HOSTILE, HOSTILE, HOSTILE, "supported", (sub,))
    return Findings(
        (claim,),
        calibration=(
            {
                "id": HOSTILE,
                "title": HOSTILE,
                "predicted": 2.0,
                "measured": 2.0,
                "pass": True,
                "criterion": HOSTILE,
                "detail": HOSTILE,
                "source": HOSTILE,
            },
        ),
        formula=(
            {
                "problem": HOSTILE,
                "mistake": HOSTILE,
                "summary": HOSTILE,
                "wrong": HOSTILE,
                "right": HOSTILE,
                "lr_wrong": 0.1,
                "lr_right": 0.1,
                "diverged": HOSTILE,
                "excess_ratio": 2.0,
                "mechanism": HOSTILE,
            },
        ),
        suite=HOSTILE,
        machine={"platform": HOSTILE, "descentlab": HOSTILE},
        generated=HOSTILE,
    )


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_hostile_strings_everywhere_on_the_page_are_escaped(tmp_path, lang):
    suite = replace(get_suite("tiny").restricted(("C3",), None), summary=HOSTILE)
    evidence = Evidence(suite, {}, lambda run: None)
    page = write_report(tmp_path / "report.html", evidence, _findings(), title=HOSTILE, lang=lang).read_text()
    assert "<script" not in page and "<img src=x" not in page and "onerror=alert(1)>" not in page
    escaped = str(markupsafe.escape(HOSTILE))  # what Jinja2's autoescape writes
    # each place by itself, so that losing one of them fails
    claim, number = {"en": ("<b>Claim.</b>", ": "), "zh": ("<b>说法。</b>", "：")}[lang]
    for where in (
        f"<title>{escaped}</title>",
        f"<td>{escaped}</td>",  # a case label, a formula problem, a calibration check
        f"{claim} {escaped}",
        f"{escaped}{number}{escaped}",  # a case's numbers
        f"<code>{escaped}</code>",  # the suite, inside a message of the catalogue
    ):
        assert where in page, where
