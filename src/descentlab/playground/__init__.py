"""The playground: a local page on which learners watch descentlab's optimizers move, update by update.

``descentlab playground`` (or :func:`serve`) starts a local web server and
opens the page. The paths are computed by the server with descentlab's own
optimizer classes (:mod:`.paths`); the page only draws them. The server needs
the optional extra ``playground`` (Starlette and uvicorn)::

    pip install "descentlab[playground]"

The computation itself (:mod:`.paths`, :mod:`.formula`) needs only torch.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import webbrowser
from typing import TextIO

INSTALL = 'pip install "descentlab[playground]"'


class MissingExtraError(ImportError):
    """The optional extra the server needs is not installed; the message says how to install it."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port chosen by the system).

    Bound here rather than by uvicorn so that the address is known, and
    printed, before serving starts, without a race for a "free" port.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535; received port={port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """The page's address for a bound socket."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    open_browser: bool = True,
    out: TextIO | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Serve the playground until interrupted (Ctrl-C); print its address first.

    A host that is not loopback gets a warning: anyone who can reach it can
    make the server compute. ``ready`` (if given) is set once the address is
    printed. Raises :class:`MissingExtraError` without the extra.
    """
    out = out or sys.stdout
    try:
        import uvicorn

        from .server import create_app
    except ImportError as err:
        raise MissingExtraError(
            f"the playground needs the optional extra 'playground' ({err.name or err} is missing); "
            f"install it with: {INSTALL}"
        ) from None
    if not is_loopback(host):
        print(
            f"warning: serving on {host}, not on a loopback address: anyone who can reach this machine "
            "can open the playground and make it compute",
            file=sys.stderr,
        )
    sock = bind(host, port)
    url = url_of(sock)
    try:
        # Inside the try: a Ctrl-C may come as soon as the address is out.
        print(f"descentlab playground: serving on {url} (Ctrl-C to stop)", file=out, flush=True)
        if open_browser:
            # The socket already listens, so the browser's first request waits in its backlog.
            webbrowser.open(url)
        if ready is not None:
            ready.set()
        server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning", lifespan="off"))
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # Ctrl-C is how a user stops it, not an error; uvicorn has shut down, or
        # had not started yet when the interrupt came.
        pass
    finally:
        sock.close()
    print("descentlab playground: stopped", file=out, flush=True)


__all__ = ["INSTALL", "MissingExtraError", "bind", "is_loopback", "serve", "url_of"]
