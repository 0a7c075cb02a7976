"""descentlab compare and descentlab report end to end, on the tiny suite: store, figures, page, resume, browser.

One comparison runs through the command line (a process pool of two
workers, as ``descentlab compare`` runs by default on two cores) and the
tests read what it wrote.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sqlite3
from pathlib import Path

import pytest

from browser import check_page, find_chromium
from descentlab.cli import main
from descentlab.lab.claims import CLAIMS
from descentlab.lab.compare import MANIFEST, REPORT
from descentlab.lab.store import STORE_FILENAME

PHASES = ("tune", "seeds", "checks: rare features", "checks: formulas")


def _compare(out: Path, capsys) -> tuple[str, str]:
    assert main(["compare", "--suite", "tiny", "--out", str(out), "--workers", "2"]) == 0
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
        return db.execute("SELECT experiment, key, finished_at FROM runs ORDER BY id").fetchall()


def test_compare_writes_a_store_a_report_and_its_figures(first_run):
    out, stdout, stderr = first_run
    assert {p.name for p in out.iterdir()} >= {STORE_FILENAME, MANIFEST, REPORT, "figures"}
    assert f"report      {out / REPORT}" in stdout
    for key in CLAIMS:
        assert re.search(rf"^{key}\s+(supported|not supported|mixed|not measured)\s", stdout, re.M)
    # Not a terminal: one line per phase.
    for phase in PHASES:
        assert re.search(rf"^{re.escape(phase)}: (\d+)/\1 runs \(0 already stored\)", stderr, re.M), stderr
    experiments = {row[0] for row in _rows(out / STORE_FILENAME)}
    assert experiments == {"tune", "seeds", "rare-features", "formula-check"}


def test_every_figure_is_drawn_and_referenced_and_nothing_is_fetched(first_run):
    out, _, _ = first_run
    html = (out / REPORT).read_text()
    referenced = _images(html)
    files = {p.name for p in (out / "figures").iterdir()}
    assert {Path(src).name for src in referenced} == files
    assert all(src.startswith("figures/") for src in referenced)
    kinds = ["paths-", "curves-", "sensitivity-", "effective-lr-", "profiles.png", "formula-"]
    kinds += [f"claim-c{i}.png" for i in range(1, 8)]
    for kind in kinds:
        assert any(name.startswith(kind) for name in files), kind
    assert any(name.endswith(".gif") for name in files)
    for name in files:
        head = (out / "figures" / name).read_bytes()[:8]
        assert head.startswith(b"\x89PNG") or head.startswith(b"GIF8")
    # Self-contained: no script, no address outside the directory.
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=\"(https?:|//)", html)


def test_every_claim_section_has_its_rule_numbers_verdict_and_neighbouring_rules(first_run):
    out, _, _ = first_run
    html = (out / REPORT).read_text()
    printed = {
        line[:4].strip(): line[4:19].strip() for line in first_run[1].splitlines() if re.match(r"C\d ", line)
    }
    for key, claim in CLAIMS.items():
        section = html.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]
        assert "Rule, written before the runs." in section
        verdict = re.search(r'<b>Verdict:</b> <span class="verdict [a-z-]+">([^<]+)</span>', section)
        assert verdict and verdict.group(1) == printed[key], (key, printed)  # the page says what was printed
        assert "<h3>Numbers (medians over seeds)</h3>" in section and "<table>" in section
        neighbours = section.split("<h3>Neighbouring rules</h3>", 1)[1]
        assert neighbours.count("<tr>") == 1 + 1 + len(claim.neighbours)  # header, declared, neighbours
        assert claim.name in section
    assert 'id="formula"' in html and "adam-no-sqrt" in html


def test_a_second_compare_trains_nothing_and_keeps_every_run(first_run, capsys):
    out, _, _ = first_run
    before = _rows(out / STORE_FILENAME)
    stdout, stderr = _compare(out, capsys)
    for phase in PHASES:
        assert re.search(rf"^{re.escape(phase)}: (\d+)/\1 runs \(\1 already stored\)", stderr, re.M), stderr
    assert _rows(out / STORE_FILENAME) == before
    assert "report" in stdout
    # the verdicts it prints are the first run's: one line per claim, from the same stored runs
    printed = [line for line in stdout.splitlines() if re.match(r"C\d ", line)]
    assert printed == [line for line in first_run[1].splitlines() if re.match(r"C\d ", line)]
    assert [line.split()[0] for line in printed] == list(CLAIMS)


def test_report_renders_the_same_page_and_figures_from_the_store(first_run, capsys):
    out, _, _ = first_run
    figures = out / "figures"
    page = (out / REPORT).read_bytes()
    drawn = {p.name: p.read_bytes() for p in figures.iterdir()}
    (out / REPORT).unlink()
    for path in figures.iterdir():
        path.unlink()
    rows = _rows(out / STORE_FILENAME)
    assert main(["report", str(out)]) == 0
    assert f"report      {out / REPORT}" in capsys.readouterr().out
    assert (out / REPORT).read_bytes() == page
    assert {p.name: p.read_bytes() for p in figures.iterdir()} == drawn
    assert _rows(out / STORE_FILENAME) == rows  # nothing trained, nothing added


def test_the_report_opens_in_a_browser_with_every_image_and_no_console_error(first_run):
    chromium = find_chromium()
    if chromium is None:
        message = (
            "headless Chromium is not installed: apt-get install chromium (Debian/Ubuntu), as .ci/run does"
        )
        if os.environ.get("DESCENTLAB_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    out, _, _ = first_run
    page = check_page((out / REPORT).resolve().as_uri(), chromium)
    assert page.images and len(page.images) == len(_images((out / REPORT).read_text()))
    broken = [image for image in page.images if not (image["complete"] and image["width"] > 0)]
    assert not broken, broken
    assert not page.errors, page.errors
    directory = (out / REPORT).resolve().parent.as_uri()
    assert all(url.startswith(directory) for url in page.requests), page.requests


def test_the_browser_check_sees_a_missing_image_and_a_script_error(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="missing.png"><script>console.error("boom")</script></body></html>')
    check = check_page(page.as_uri(), chromium)
    assert check.images == [{"src": "missing.png", "complete": True, "width": 0, "height": 0}]
    assert any("boom" in e for e in check.errors) and any(
        "missing.png" in e or "ERR_FILE" in e for e in check.errors
    )
