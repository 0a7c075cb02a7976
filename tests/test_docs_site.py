"""The documentation site builds with warnings as errors, and its pages fetch nothing from elsewhere."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

pytest.importorskip("sphinx", reason="the docs extra (in dev) is not installed")


# Building the site takes about 20 s: CI builds it; the fast loop leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), "docs", str(out / "html")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    return out / "html"


def test_the_site_builds_with_every_page(site):
    for page in ("index", "getting-started", "concepts", "zh/concepts", "optimizers", "fast-path", "training",
                 "problems", "cli", "integration", "lab", "sweeps", "playground", "benchmarks", "findings",
                 "testing", "layout", "changelog", "api"):  # fmt: skip
        assert (site / f"{page}.html").is_file(), page
    assert (site / "api" / "descentlab.optim.adam.html").is_file()
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_no_page_loads_anything_from_another_host(site):
    remote = re.compile(
        r"<(?:script|img|iframe)[^>]*\ssrc=\"(?:https?:)?//|<link[^>]*\shref=\"(?:https?:)?//"
    )
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        assert not remote.search(page.read_text()), page
    math = (site / "concepts.html").read_text()
    assert 'src="_static/mathjax/tex-chtml.js' in math


def test_the_generated_pages_show_the_stored_results(site):
    bench = (site / "benchmarks.html").read_text()
    assert "One run of <code" in bench and "streaming probe" in bench
    findings = (site / "findings.html").read_text()
    assert findings.count("Calibration:") == 3 and "C7.width" in findings and "C8.8bit" in findings
    playground = (site / "playground.html").read_text()
    stored = json.loads((ROOT / "benchmarks" / "playground.json").read_text())
    assert "POST /api/paths over HTTP" in playground and stored["machine"]["date"] in playground
