"""descentlab compare and descentlab report end to end, on the tiny suite: store, figures, page, resume, browser.

One comparison runs through the command line (a process pool of two
workers, as ``descentlab compare`` runs by default on two cores) and the
tests read what it wrote.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from descentlab.cli import main
from descentlab.i18n import messages
from descentlab.lab.claims import CLAIMS
from descentlab.lab.compare import FINDINGS, MANIFEST, REPORT
from descentlab.lab.methods import METHODS
from descentlab.lab.store import STORE_FILENAME
from descentlab.lab.suite import get_suite

PHASES = ("tune", "judge", "grid-shift: tune", "grid-shift: judge")


def _compare(out: Path, capsys, *flags: str) -> tuple[str, str]:
    assert main(["compare", "--suite", "tiny", "--out", str(out), "--workers", "2", *flags]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The tiny comparison, run once for the module: (output directory, stdout, stderr)."""
    out = tmp_path_factory.mktemp("compare") / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["compare", "--suite", "tiny", "--out", str(out), "--workers", "2"])
    assert code == 0, stderr.getvalue()
    return out, stdout.getvalue(), stderr.getvalue()


def _images(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def _rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        runs = db.execute("SELECT experiment, key, finished_at FROM runs ORDER BY id").fetchall()
        results = db.execute("SELECT * FROM results ORDER BY rowid").fetchall()
    return runs + results


def _verdict_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(r"C\d ", line)]


@pytest.mark.slow
def test_compare_writes_a_store_findings_a_report_and_its_figures(first_run):
    out, stdout, stderr = first_run
    assert {p.name for p in out.iterdir()} >= {STORE_FILENAME, MANIFEST, REPORT, FINDINGS, "figures"}
    assert f"report      {out / REPORT}" in stdout
    assert re.search(r"^calibration \d+/\d+ checks pass", stdout, re.M)
    suite = get_suite("tiny")
    for key in suite.claims():
        assert re.search(
            rf"^{key}\s+(supported|contradicted|depends|inconclusive)\s+(robust|not robust)", stdout, re.M
        )
    # Not a terminal: one line per phase, the design variation's phases included, and the notes.
    for phase in PHASES:
        assert (
            len(re.findall(rf"^{re.escape(phase)}: (\d+)/\1 runs \(\d+ already stored\)", stderr, re.M)) == 1
        ), stderr
    assert stderr.startswith("descentlab compare: suite tiny") and "\ncalibration: " in stderr
    assert stderr.splitlines()[-1] == "report: judging, drawing the figures and writing the page", stderr


@pytest.mark.slow
def test_findings_json_holds_every_verdict_with_its_interval_control_and_variations(first_run):
    out, stdout, _ = first_run
    data = json.loads((out / FINDINGS).read_text())
    suite = get_suite("tiny")
    assert [c["id"] for c in data["claims"]] == list(suite.claims())
    assert data["calibration"] and all(
        {"id", "predicted", "measured", "pass"} <= set(c) for c in data["calibration"]
    )
    for claim in data["claims"]:
        assert {"id", "statement", "source", "verdict", "subclaims"} <= set(claim)
        for sub in claim["subclaims"]:
            assert {
                "id",
                "measure",
                "effect",
                "ci",
                "min_effect",
                "verdict",
                "robust",
                "control",
                "variants",
            } <= set(sub)
            assert len(sub["ci"]) == 2 and {"effect", "ci"} <= set(sub["control"])
            # every variation of the suite that applies to the claim (the others say why not)
            assert set(sub["variants"]) == set(suite.variants) & set(CLAIMS[claim["id"]].variations)
            assert set(sub["variants"]) | set(sub["not_varied"]) >= set(suite.variants)
            assert sub["robust"] == (
                bool(sub["variants"]) and all(v == sub["verdict"] for v in sub["variants"].values())
            )
            assert sub["cases"], sub["id"]
    # the printed verdicts are the findings'
    printed = {line.split()[0]: line.split()[1] for line in _verdict_lines(stdout)}
    assert printed == {c["id"]: c["verdict"] for c in data["claims"]}
    assert data["formula"] and {"mistake", "problem", "excess_ratio", "mechanism"} <= set(data["formula"][0])


@pytest.mark.slow
def test_every_figure_is_drawn_and_referenced_and_nothing_is_fetched(first_run):
    out, _, _ = first_run
    html = (out / REPORT).read_text()
    referenced = _images(html)
    files = {p.name for p in (out / "figures").iterdir()}
    assert {Path(src).name for src in referenced} == files
    assert all(src.startswith("figures/") for src in referenced)
    for claim in get_suite("tiny").claims():
        assert f"{claim.lower()}-effects.png" in files
    for name in files:
        assert (out / "figures" / name).read_bytes()[:8].startswith(b"\x89PNG")
    # Self-contained: no script, no address outside the directory.
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=\"(https?:|//)", html)


@pytest.mark.slow
def test_every_sub_claim_section_shows_its_effect_interval_control_and_variations(first_run):
    out, _, _ = first_run
    html = (out / REPORT).read_text()
    data = json.loads((out / FINDINGS).read_text())
    for claim in data["claims"]:
        section = html.split(f'<h2 id="{claim["id"]}">', 1)[1].split("<h2 ", 1)[0]
        assert f'<span class="verdict {claim["verdict"]}">{claim["verdict"]}</span>' in section
        for sub in claim["subclaims"]:
            assert f"<h3>{sub['id']}: " in section
            assert "pooled effect [95% CI]" in section and "control" in section and "grid-shift: " in section
    assert 'id="calibration"' in html and 'id="formula"' in html and "adam-no-sqrt" in html


@pytest.mark.slow
def test_a_second_compare_trains_nothing_and_keeps_every_run(first_run, capsys):
    out, _, _ = first_run
    before = _rows(out / STORE_FILENAME)
    stdout, stderr = _compare(out, capsys)
    lines = [line for line in stderr.splitlines() if " runs (" in line]
    assert lines and all(re.search(r": (\d+)/\1 runs \(\1 already stored\)", line) for line in lines), stderr
    assert _rows(out / STORE_FILENAME) == before
    assert "report" in stdout
    # the verdicts it prints are the first run's, from the same stored runs
    assert _verdict_lines(stdout) == _verdict_lines(first_run[1])
    stdout, stderr = _compare(out, capsys, "--quiet")
    assert stderr == "" and _verdict_lines(stdout) == _verdict_lines(first_run[1])


@pytest.mark.slow
def test_report_renders_the_same_page_and_figures_from_the_store(first_run, capsys):
    out, _, _ = first_run
    figures = out / "figures"
    page = (out / REPORT).read_bytes()
    findings = (out / FINDINGS).read_bytes()
    drawn = {p.name: p.read_bytes() for p in figures.iterdir()}
    (out / REPORT).unlink()
    for path in figures.iterdir():
        path.unlink()
    rows = _rows(out / STORE_FILENAME)
    assert main(["report", str(out)]) == 0
    assert f"report      {out / REPORT}" in capsys.readouterr().out
    assert (out / REPORT).read_bytes() == page
    assert (out / FINDINGS).read_bytes() == findings
    assert {p.name: p.read_bytes() for p in figures.iterdir()} == drawn
    assert _rows(out / STORE_FILENAME) == rows  # nothing trained, nothing added


@pytest.mark.slow
def test_report_of_a_store_that_lacks_runs_marks_their_cases_not_measured(first_run, tmp_path, capsys):
    # As an interrupted comparison leaves it: a third of the runs and every surface result missing.
    out = tmp_path / "partial"
    shutil.copytree(first_run[0], out)
    with sqlite3.connect(out / STORE_FILENAME) as db:
        db.execute("DELETE FROM runs WHERE id % 3 = 0")
        db.execute("DELETE FROM results")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["report", str(out)]) == 0, capsys.readouterr().err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    findings = json.loads((out / FINDINGS).read_text())
    cases = [c for claim in findings["claims"] for sub in claim["subclaims"] for c in sub["cases"]]
    assert any(c["effect"] == "nan" and c["units"] == 0 for c in cases)  # not measured: no rows
    assert "planned runs are missing or failed" in (out / REPORT).read_text()


ENGLISH_WORDS = re.compile(r"[A-Za-z][A-Za-z'-]*(?:[ ,]+[A-Za-z][A-Za-z'-]*){2,}")


def _visible_text(page: str) -> str:
    page = re.sub(r"<style.*?</style>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "\n", page))


@pytest.mark.slow
def test_the_report_and_the_verdicts_render_in_chinese_from_the_same_findings(first_run, tmp_path, capsys):
    out = tmp_path / "zh"
    shutil.copytree(first_run[0], out)
    assert main(["report", str(out), "--lang", "zh"]) == 0
    stdout = capsys.readouterr().out
    assert re.search(r"^校准 \d+/\d+ 项检查通过", stdout, re.M), stdout
    for key in get_suite("tiny").claims():
        assert re.search(rf"^{key}\s+(支持|反驳|不确定|视情况而定)\s+(稳健|不稳健)\s+\S", stdout, re.M), (
            stdout
        )
    # findings.json is the one record, the same whatever language the report is in
    assert (out / FINDINGS).read_bytes() == (first_run[0] / FINDINGS).read_bytes()
    page = (out / REPORT).read_text()
    assert '<html lang="zh">' in page
    text = _visible_text(page)
    # No English sentence of the catalogue is left on the page ...
    for key, english in messages("descentlab.lab", "en").items():
        for part in re.split(r"\{\w+\}|<[^>]+>", english):
            if len(re.findall(r"[A-Za-z]+", part)) >= 3:
                assert part.strip(" .,;:()") not in text, (key, part)
    # ... nor any other run of English words, but for the papers' titles, the notation that the
    # Chinese messages keep (lr x lambda) and lists of method names
    findings = json.loads((out / FINDINGS).read_text())
    kept = " ".join(c["source"] for c in findings["calibration"])
    kept += " ".join(messages("descentlab.lab", "zh").values())
    names = set(METHODS)
    left = [
        run
        for run in ENGLISH_WORDS.findall(text)
        if run not in kept and not set(re.split(r"[ ,]+", run)) <= names
    ]
    assert not left, left


@dataclass
class PageCheck:
    """What loading a page showed: its images, and what the console and the network reported."""

    images: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


IMAGES = """Array.from(document.images).map(i => ({
    src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))"""


def check_page(browser, url: str) -> PageCheck:
    """Load ``url``; report every image's state and every error and request seen."""
    check = PageCheck()
    page = browser.new_page()
    page.on(
        "console",
        lambda m: check.errors.append(f"console: {m.text}") if m.type in ("error", "assert") else None,
    )
    page.on("pageerror", lambda e: check.errors.append(f"exception: {e}"))
    page.on("requestfailed", lambda r: check.errors.append(f"network: {r.failure} ({r.url})"))
    page.on("request", lambda r: check.requests.append(r.url))
    try:
        page.goto(url, wait_until="load")
        check.images = page.evaluate(IMAGES)
    finally:
        page.close()
    return check


@pytest.mark.slow
def test_the_report_opens_in_a_browser_with_every_image_and_no_console_error(first_run, browser):
    out, _, _ = first_run
    page = check_page(browser, (out / REPORT).resolve().as_uri())
    assert page.images and len(page.images) == len(_images((out / REPORT).read_text()))
    broken = [image for image in page.images if not (image["complete"] and image["width"] > 0)]
    assert not broken, broken
    assert not page.errors, page.errors
    directory = (out / REPORT).resolve().parent.as_uri()
    assert page.requests and all(url.startswith(directory) for url in page.requests), page.requests


CHECKER = "test_the_browser_check_sees_a_missing_image_and_a_script_error"


def test_the_browser_check_sees_a_missing_image_and_a_script_error(tmp_path, browser):
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="missing.png"><script>console.error("boom")</script></body></html>')
    check = check_page(browser, page.as_uri())
    assert check.images == [{"src": "missing.png", "complete": True, "width": 0, "height": 0}]
    assert any("boom" in e for e in check.errors) and any(
        "missing.png" in e or "ERR_FILE" in e for e in check.errors
    ), check.errors


@pytest.mark.slow
@pytest.mark.parametrize("required", [True, False], ids=["required", "optional"])
def test_without_chromium_the_browser_tests_fail_when_required_and_skip_otherwise(required):
    # The browser check above, in a pytest of its own whose PATH holds no chromium.
    env = {k: v for k, v in os.environ.items() if k != "DESCENTLAB_REQUIRE_BROWSER"}
    env["PATH"] = str(Path(sys.executable).parent)
    if required:
        env["DESCENTLAB_REQUIRE_BROWSER"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-rs", f"{__file__}::{CHECKER}"],
        cwd=Path(__file__).parents[2], env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "headless Chromium is not installed" in done.stdout, done.stdout
    if required:
        assert done.returncode == 1 and "1 error" in done.stdout, done.stdout
    else:
        assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout
