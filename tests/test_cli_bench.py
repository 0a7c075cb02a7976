"""``descentlab bench``, run for real on a tiny workload: its table, its JSON and its bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def bench(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "descentlab", "bench", *args],
        capture_output=True, text=True, check=False, cwd=cwd,
    )  # fmt: skip


def test_bench_times_every_implementation_and_writes_its_results(tmp_path):
    out = tmp_path / "results" / "bench.json"
    done = bench(
        "--workloads", "many-small", "--optimizers", "sgd,rmsprop", "--scale", "0.01",
        "--steps", "2", "--rounds", "2", "--device", "cpu", "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # torch's CPU profiler (used for the peak memory) writes these to fd 2 by itself
    assert "profiler_start" not in done.stderr and "profiler_stop" not in done.stderr, done.stderr
    report = json.loads(out.read_text())
    assert report["probe_gb_per_s"] > 0
    assert report["machine"]["torch"]
    rows = {(m["algorithm"], m["implementation"]): m for m in report["measurements"]}
    expected = {
        ("sgd", i) for i in ("descentlab fast", "descentlab per-tensor", "torch for-loop", "torch foreach")
    } | {("rmsprop", i) for i in ("descentlab fast", "descentlab per-tensor", "torch for-loop")}
    assert expected <= set(rows), sorted(rows)
    for (algorithm, implementation), m in rows.items():
        assert m["ms_per_step"] > 0 and len(m["step_times_ms"]) == 2 * 2, (algorithm, implementation)
        assert m["ratio_to_torch_best"] > 0
        assert m["extra_peak_bytes"] is not None and m["extra_peak_bytes"] >= 0
        # SGD with momentum and RMSprop read p, g and one state tensor and write p and the state
        assert m["bytes_per_step"] == 5 * 4 * m["parameters"], (algorithm, implementation)
    # the table names every row it measured; the fastest torch implementation is the 1.00 reference
    assert "descentlab fast" in done.stdout and "probe (a += b)" in done.stdout
    for algorithm in ("sgd", "rmsprop"):
        torch_ratios = [
            m["ratio_to_torch_best"] for (a, i), m in rows.items() if a == algorithm and "torch" in i
        ]
        assert max(torch_ratios) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workloads", "huge"], "huge"),
        (["--optimizers", "adamm"], "adam"),
        (["--steps", "0"], "--steps"),
        (["--scale", "9"], "--scale"),
        (["--device", "tpu"], "tpu"),
        (["--device", "meta"], "meta"),
    ],
)
def test_bad_bench_input_is_one_line_and_exit_2(tmp_path, args, message):
    done = bench(*args, "--out", str(tmp_path / "bench.json"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "bench.json").exists()
