"""``descentlab bench``, run for real on a tiny workload: its table, its JSON and its bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest


def bench(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "descentlab", "bench", *args],
        capture_output=True, text=True, check=False, cwd=cwd,
    )  # fmt: skip


@pytest.mark.slow
def test_bench_times_every_implementation_and_writes_its_results(tmp_path):
    out = tmp_path / "results" / "bench.json"
    done = bench(
        "--workloads", "many-small", "--optimizers", "sgd,rmsprop", "--scale", "0.01",
        "--steps", "2", "--rounds", "2", "--device", "cpu", "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # torch's CPU profiler (used for the peak memory) writes these to fd 2 by itself
    assert "profiler_start" not in done.stderr and "profiler_stop" not in done.stderr, done.stderr
    # not a terminal: one line per phase, the probe and the workload
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert re.fullmatch(r"probe: streaming bandwidth \S+ GB/s \(\d+\.\d s\)", lines[0])
    assert re.fullmatch(r"many-small: 2 optimizers, 2 rounds of 2 steps \(\d+\.\d s\)", lines[1])
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
        # one float32 state tensor per parameter, and at most an 8-byte step count per tensor
        state = m["state_bytes_per_param"] * m["parameters"]
        assert 4 * m["parameters"] <= state <= 4 * m["parameters"] + 8 * 2000, (algorithm, implementation)
    # the table names every row it measured; the fastest torch implementation is the 1.00 reference
    assert "descentlab fast" in done.stdout and "probe (a += b)" in done.stdout
    for algorithm in ("sgd", "rmsprop"):
        torch_ratios = [
            m["ratio_to_torch_best"] for (a, i), m in rows.items() if a == algorithm and "torch" in i
        ]
        assert max(torch_ratios) == pytest.approx(1.0)
    assert report["rounds"] == 2 and report["steps"] == 2 and report["machine"]["date"]

    # the README's table is rendered from that file: every figure in it comes from the JSON
    done = bench("--markdown", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert report["machine"]["date"] in text and report["machine"]["processor"] in text
    assert f"{report['probe_gb_per_s']:.1f} GB/s" in text and "medians of 2 rounds of 2 steps" in text
    table = [line for line in text.splitlines() if line.startswith("| many-small (")]
    assert len(table) == 2, text
    for line, algorithm in zip(table, ("sgd", "rmsprop")):
        for implementation in ("descentlab per-tensor", "torch for-loop"):
            assert f"| {rows[(algorithm, implementation)]['ms_per_step']:.1f} |" in line
        m = rows[(algorithm, "descentlab fast")]
        assert (
            f"{m['ms_per_step']:.1f} ({m['ratio_to_torch_best']:.2f}x, {m['percent_of_probe']:.0f}%)" in line
        )
        assert line.endswith(f"| {m['state_bytes_per_param']:.1f} |")
    assert table[1].count("| none |") == 1, "torch has no fused RMSprop: said, not left blank"


def test_a_peer_that_is_not_installed_is_named_in_the_error(monkeypatch):
    from descentlab import bench

    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"--compare deepspeed: deepspeed is not installed here"):
        bench.check_peers(["deepspeed"])
    with pytest.raises(ValueError, match=r"--compare must be one of deepspeed; received --compare 'apex'"):
        bench.check_peers(["apex"])


@pytest.mark.slow
def test_markdown_of_a_file_that_is_not_a_bench_result_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "other.json").write_text('{"a": 1}')
    for path, message in ((tmp_path / "other.json", "is not a descentlab bench result"),
                          (tmp_path / "missing.json", "cannot read")):  # fmt: skip
        done = bench("--markdown", str(path), cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workloads", "huge"], "huge"),
        # each case is a process of its own: the fast loop runs one
        *(
            pytest.param(args, message, marks=pytest.mark.slow)
            for args, message in [
                (["--optimizers", "adamm"], "adam"),
                (["--steps", "0"], "--steps"),
                (["--scale", "9"], "--scale"),
                (["--device", "tpu"], "tpu"),
                (["--device", "meta"], "meta"),
            ]
        ),
    ],
)
def test_bad_bench_input_is_one_line_and_exit_2(tmp_path, args, message):
    done = bench(*args, "--out", str(tmp_path / "bench.json"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "bench.json").exists()


def test_the_targets_table_says_met_only_where_ratio_and_probe_share_reach_the_targets():
    from descentlab import bench

    def row(workload, algorithm, ratio, probe):
        return {"workload": workload, "algorithm": algorithm, "implementation": "descentlab fast",
                "parameters": 10**6, "ms_per_step": 1.0, "ratio_to_torch_best": ratio,
                "percent_of_probe": probe, "state_bytes_per_param": 8.0}  # fmt: skip

    data = {
        "machine": {"processor": "cpu", "cpu_count": 2, "torch_threads": 2, "torch": "2", "device": "cpu"},
        "probe_gb_per_s": 10.0,
        "measurements": [
            row("transformer", "adam", 1.02, 96.0),  # both reached
            row("transformer", "sgd", 1.10, 90.0),  # the probe share is short
            row("transformer", "rmsprop", 2.4, 99.0),  # RMSprop's ratio target is 2.5
            row("many-small", "adam", 3.1, 50.0),  # no probe target for small tensors
            row("many-small", "sgd", 2.9, 99.0),
        ],
    }
    lines = bench.markdown(data).splitlines()
    verdicts = {tuple(c.strip() for c in line.split("|")[1:3]): line.split("|")[-2].strip()
                for line in lines[lines.index("Against the targets (descentlab's fast path):"):] if line.startswith("| t") or line.startswith("| m")}  # fmt: skip
    assert verdicts == {
        ("transformer", "Adam"): "yes",
        ("transformer", "SGD momentum"): "no",
        ("transformer", "RMSprop"): "no",
        ("many-small", "Adam"): "yes",
        ("many-small", "SGD momentum"): "no",
    }
    assert "| transformer | RMSprop | 2.40 | >= 2.5 | 99 | >= 95 | no |" in lines


def test_the_readme_tables_are_rendered_from_the_committed_bench_result():
    """The README's figures are `descentlab bench --markdown` of the committed JSON, not typed."""
    from pathlib import Path

    from descentlab import bench

    root = Path(__file__).parents[1]
    data = json.loads((root / "benchmarks" / "results" / "bench-cpu.json").read_text())
    assert bench.markdown(data) in (root / "README.md").read_text()
