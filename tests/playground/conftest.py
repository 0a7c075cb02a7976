"""The playground's test fixtures: one real server for the session, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from browser import find_chromium  # only the executable's lookup; Playwright drives it
from playground_server import start_server, stop_server


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """The base address of one server shared by the session's tests."""
    pytest.importorskip("starlette", reason="the playground extra is not installed (pip install -e '.[dev]')")
    process, url = start_server()
    try:
        yield url
    finally:
        stop_server(process)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; fails (in CI) or skips (elsewhere) when it is missing."""
    chromium = find_chromium()
    missing = None
    if chromium is None:
        missing = (
            "headless Chromium is not installed: apt-get install chromium (Debian/Ubuntu), as .ci/run does"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "Playwright is not installed: it is in the dev extra (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("DESCENTLAB_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        # Playwright's own browser download is not used: it drives the system's Chromium.
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
