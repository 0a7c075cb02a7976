"""The playground's test fixtures: one real server for the session (the browser is tests/conftest.py's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
