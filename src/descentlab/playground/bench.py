"""How long the playground takes to answer: 6 optimizers x 500 updates, as the playground page reports it.

Run ``python -m descentlab.playground.bench [--out FILE]``. It times each of
these several times (the median and the fastest are printed, with the machine
and its load, since other processes on a shared machine change the figures;
``--out`` keeps them as JSON, which the playground's page renders):

- ``POST /api/paths`` over HTTP to a real server on 127.0.0.1 (what the page waits for);
- :func:`~descentlab.playground.paths.compute_paths` in this process, and the
  JSON encoding of its answer (about 0.9 MB: every term of every update);
- for comparison, the same 3,000 updates made by ``optimizer.step()`` with a
  fixed gradient and nothing recorded: the per-call plumbing that
  ``compute_paths`` avoids by calling each class's rule directly.

A benchmark, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import _files
from ..bench import machine_info  # the optimizer benchmark's machine record, the same way
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


ROWS = (
    ("http", "POST /api/paths over HTTP"),
    ("compute", "compute_paths"),
    ("json", "its JSON encoding"),
    ("steps", "the same updates by step()"),
)


def measure(repeats: int = 7) -> dict[str, Any]:
    """The timings, in milliseconds, with the machine they ran on (as ``descentlab bench`` records it)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1; received {repeats!r}")
    request = parse_request(REQUEST)
    answer = compute_paths(request)
    measured = {
        "http": _over_http(repeats),
        "compute": _times(lambda: compute_paths(request), repeats),
        "json": _times(lambda: json.dumps(answer), repeats),
        "steps": _times(_steps_only, repeats),
    }
    rows = []
    for key, name in ROWS:
        times = measured[key]
        rows.append(
            {"key": key, "name": name, "times_ms": None if times is None else [1000 * t for t in times]}
        )
    return {
        "machine": machine_info(torch.device("cpu")),
        "request": {"surface": REQUEST["surface"], "optimizers": len(RUNS), "updates": UPDATES},
        "answer_bytes": len(json.dumps(answer).encode()),
        "repeats": repeats,
        "rows": rows,
    }


def markdown(data: dict[str, Any]) -> str:
    """The timings of :func:`measure` as a Markdown table, with the machine, its load and the date."""
    m, r = data["machine"], data["request"]
    load = m.get("load_average")  # None where the system has no load average
    lines = [
        f"{m['processor']} ({m['cpu_count']} cores"
        + (f", load average {load[0]:.1f} at the start), " if load else "), ")
        + f"torch {m['torch']} ({m['torch_threads']} threads), {m['date']}: {r['optimizers']} optimizers "
        f"x {r['updates']} updates on {r['surface']}, an answer of {data['answer_bytes'] / 1e6:.1f} MB; "
        f"median and fastest of {data['repeats']}.",
        "",
        "| what | median, ms | fastest, ms |",
        "|---|---|---|",
    ]
    for row in data["rows"]:
        times = row["times_ms"]
        if times is None:
            lines.append(f"| {row['name']} | not measured: the playground extra is not installed | |")
        else:
            lines.append(f"| {row['name']} | {statistics.median(times):.0f} | {min(times):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the timings with the machine they ran on; ``--out FILE`` keeps them as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m descentlab.playground.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats of each (default 7)")
    parser.add_argument("--out", type=Path, help="where to write the timings as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; received {args.repeats}")
    if args.out is not None:
        try:  # before the minutes of measuring
            _files.check_writable(args.out)
        except OSError as err:
            parser.error(f"--out: {err}")
    data = measure(args.repeats)
    print(markdown(data))
    if args.out is not None:
        _files.write_text_atomic(args.out, json.dumps(data, indent=1) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
