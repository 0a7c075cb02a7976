"""A Ray address that takes no connection is refused at once: ray.init would retry it for minutes.

Kept apart from test_ray.py, whose module-wide Ray instance would be running here.
"""

from __future__ import annotations

import socket

import pytest

from descentlab.cli import main
from descentlab.lab import RayExecutor

ray = pytest.importorskip(
    "ray", reason="Ray is not installed (pip install 'descentlab[ray]'; dev installs it)"
)


def _closed_port() -> int:
    with socket.socket() as free:  # bound, then closed: nothing listens on that port
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


def test_a_ray_address_that_takes_no_connection_is_one_line_not_minutes_of_retries(tmp_path, capsys):
    port = _closed_port()
    (tmp_path / "s.toml").write_text(
        'problem = "saddle"\nbudget = { steps = 2 }\n[optimizers.sgd]\nlr = 0.1\n'
    )
    store = tmp_path / "lab.sqlite"
    for address, message in (
        (f"127.0.0.1:{port}", f"cannot reach a Ray cluster at '127.0.0.1:{port}': Connection refused"),
        (f"ray://127.0.0.1:{port}", "cannot reach a Ray cluster at 'ray://127.0.0.1:"),
        ("127.0.0.1", "--address must be HOST:PORT, ray://HOST:PORT, auto or local; received '127.0.0.1'"),
    ):
        args = [
            "sweep",
            str(tmp_path / "s.toml"),
            "--executor",
            "ray",
            "--address",
            address,
            "--store",
            str(store),
        ]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not ray.is_initialized() and not store.exists()


def test_an_unreachable_ray_address_from_the_environment_is_refused_too(tmp_path, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")  # what ray.init reads without an address
    with pytest.raises(ConnectionError, match=f"cannot reach a Ray cluster at '127.0.0.1:{port}'"):
        RayExecutor()
    assert not ray.is_initialized()
