"""How long the playground takes to answer: 6 optimizers x 500 updates, as the playground page reports it.

Run ``python -m descentlab.playground.bench``. It times each of these
several times (the median and the fastest are printed, with the machine and
its load, since other processes on a shared machine change the figures):

- ``POST /api/paths`` over HTTP to a real server on 127.0.0.1 (what the page waits for);
- :func:`~descentlab.playground.paths.compute_paths` in this process, and the
  JSON encoding of its answer (about 0.9 MB: every term of every update);
- for comparison, the same 3,000 updates made by ``optimizer.step()`` with a
  fixed gradient and nothing recorded: the per-call plumbing that
  ``compute_paths`` avoids by calling each class's rule directly.

A benchmark, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable

import torch

from ..bench import _cpu_name  # the optimizer benchmark's machine line, the same way
from ..optim import OPTIMIZERS
from .paths import compute_paths, parse_request

UPDATES = 500
RUNS = [
    {"optimizer": "sgd", "hyperparameters": {"lr": 0.001}},
    {"optimizer": "sgd", "hyperparameters": {"lr": 0.001, "momentum": 0.9}},
    {"optimizer": "adagrad", "hyperparameters": {"lr": 0.1}},
    {"optimizer": "rmsprop", "hyperparameters": {"lr": 0.01}},
    {"optimizer": "adam", "hyperparameters": {"lr": 0.05}},
    {"optimizer": "adamw", "hyperparameters": {"lr": 0.05}},
]
REQUEST = {"surface": "rosenbrock", "updates": UPDATES, "runs": RUNS}


def _times(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up: imports, allocator, the server's first request
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _steps_only() -> None:
    for run in RUNS:
        p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor([0.5, -0.25], dtype=torch.float64)
        optimizer = OPTIMIZERS[run["optimizer"]]([p], **run["hyperparameters"])
        for _ in range(UPDATES):
            optimizer.step()


def _over_http(repeats: int) -> list[float] | None:
    try:
        import uvicorn

        from . import bind, url_of
        from .server import create_app
    except ImportError:
        return None
    sock = bind()
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    body = json.dumps(REQUEST).encode()
    url = url_of(sock) + "api/paths"

    def post() -> None:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            response.read()

    try:
        return _times(post, repeats)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main(repeats: int = 7) -> None:
    """Print the timings with the machine they ran on."""
    request = parse_request(REQUEST)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {_cpu_name()}, {os.cpu_count()} cores, load average {load:.1f}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )
    print(
        f"request: {len(RUNS)} optimizers x {UPDATES} updates on rosenbrock (median and fastest of {repeats})"
    )
    answer = compute_paths(request)
    rows = [
        ("POST /api/paths over HTTP", _over_http(repeats)),
        ("compute_paths", _times(lambda: compute_paths(request), repeats)),
        ("its JSON encoding", _times(lambda: json.dumps(answer), repeats)),
        ("the same updates by step()", _times(_steps_only, repeats)),
    ]
    for name, times in rows:
        if times is None:
            print(f"  {name:<30} skipped: the playground extra is not installed")
        else:
            median, fastest = 1000 * statistics.median(times), 1000 * min(times)
            print(f"  {name:<30} {median:7.0f} ms   fastest {fastest:5.0f} ms")


if __name__ == "__main__":
    main()
