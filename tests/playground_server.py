"""A real playground server for the tests: the installed command, in its own process, and HTTP calls to it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """``descentlab playground --no-browser`` in a child process, and the address it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "descentlab", "playground", "--no-browser", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if "serving on" not in line:
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r} {process.stderr.read()!r}")
    return process, line.split("serving on ", 1)[1].split()[0]


def stop_server(process: subprocess.Popen) -> tuple[int, str, str]:
    """Ctrl-C, as a user stops it; the exit code and what it printed."""
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def call(url: str, path: str, body: object = None, raw: bytes | None = None) -> tuple[int, dict]:
    """One API request; the status and the decoded JSON answer (also for 4xx and 5xx)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        url.rstrip("/") + path, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
