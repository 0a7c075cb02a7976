"""The report escapes every string that comes from the user or the store."""

from __future__ import annotations

from dataclasses import replace

from claimcases import fake_evidence
from descentlab.lab.evidence import Evidence
from descentlab.lab.report import Context, esc, write_report
from descentlab.lab.store import StoredRun

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>\"'&"


def test_hostile_strings_from_the_store_and_the_suite_are_escaped(tmp_path):
    evidence = fake_evidence(holds=True)
    suite = replace(evidence.suite, name=HOSTILE, summary=HOSTILE)
    plan = replace(evidence.plan, suite=suite)
    runs = {id(t): run for t, run in evidence.runs()}
    failed_trial = next(t for t, _ in evidence.runs() if t.experiment == "formula-check")

    def find(trial):
        if trial is failed_trial:
            return StoredRun("k", trial.experiment, trial.config, "failed", None, f"ValueError: {HOSTILE}")
        return runs[id(trial)]

    hostile = Evidence(plan, find)
    assert hostile.failed
    page = write_report(hostile, tmp_path, Context(title=HOSTILE, generated_by=HOSTILE, started=HOSTILE))
    html = page.read_text()
    assert "<script" not in html and "<img src=x" not in html and "onerror=alert(1)>" not in html
    assert esc(HOSTILE) in html
    assert html.count(esc(HOSTILE)) >= 5  # title, heading, provenance, suite name and summary, the error
    # each place by itself, so that losing one of them fails
    assert f"<title>{esc(HOSTILE)}</title>" in html
    assert f"ValueError: {esc(HOSTILE)}" in html  # the failed run's error, from the store
    assert f"Suite <b>{esc(HOSTILE)}</b>: {esc(HOSTILE)}." in html  # the suite's name and summary


def test_escape_covers_attributes():
    assert esc('"><b>') == "&quot;&gt;&lt;b&gt;" and esc("a'b&c") == "a&#x27;b&amp;c"
