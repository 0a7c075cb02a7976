"""Shared pytest configuration for descentlab's tests."""

import os
import shutil

import pytest
import torch

# The golden-value generator needs Keras and optax, which are not test
# dependencies; it is a script, not a test module.
collect_ignore = ["golden/generate.py"]


# Training, problem, lab and `descentlab run` tests run torch single-threaded:
# results then do not depend on how busy the machine is, and small models run
# several times faster on two shared cores (with another process on them,
# torch's two threads made an MNIST-1D CNN over 100 times slower). The
# optimizer tests keep both threads for the compiled fast-path kernels.
SINGLE_THREADED = ("train", "problems", "lab", "test_cli_run.py")


@pytest.fixture(autouse=True)
def _one_thread(request):
    if not any(part in SINGLE_THREADED for part in request.node.path.parts):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright, for the session; fails (in CI) or skips (elsewhere) without it.

    Playwright's own browser download is not used: it drives the system's
    ``chromium`` (``.ci/run`` installs it and sets DESCENTLAB_REQUIRE_BROWSER,
    so that a missing browser fails the browser tests instead of skipping them).
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
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
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
