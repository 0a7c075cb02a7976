"""``descentlab bench``, run for real on a tiny workload: its table, its JSON and its bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch


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
    expected |= {("sgd", "streaming probe"), ("rmsprop", "streaming probe")}
    assert expected <= set(rows), sorted(rows)
    for algorithm in ("sgd", "rmsprop"):
        # every row's share is of the probe timed beside it, which moves the step's bytes
        probe = rows[(algorithm, "streaming probe")]
        assert probe["state_bytes_per_param"] is None and probe["percent_of_probe"] == pytest.approx(100)
        for (a, i), m in rows.items():
            if a == algorithm:
                assert m["probe_gb_per_s"] == probe["gb_per_s"], (a, i)
                assert m["percent_of_probe"] == pytest.approx(100 * m["gb_per_s"] / probe["gb_per_s"])
    for (algorithm, implementation), m in rows.items():
        assert m["ms_per_step"] > 0 and len(m["step_times_ms"]) == 2 * 2, (algorithm, implementation)
        assert m["ratio_to_torch_best"] > 0
        assert m["extra_peak_bytes"] is not None and m["extra_peak_bytes"] >= 0
        # SGD with momentum and RMSprop read p, g and one state tensor and write p and the state
        assert m["bytes_per_step"] == 5 * 4 * m["parameters"], (algorithm, implementation)
        if implementation == "streaming probe":
            continue
        # one float32 state tensor per parameter, and at most an 8-byte step count per tensor
        state = m["state_bytes_per_param"] * m["parameters"]
        assert 4 * m["parameters"] <= state <= 4 * m["parameters"] + 8 * 2000, (algorithm, implementation)
    # the table names every row it measured; the fastest torch implementation is the 1.00 reference
    assert "descentlab fast" in done.stdout and "probe (a += b, 2 x 256 MB)" in done.stdout
    for algorithm in ("sgd", "rmsprop"):
        torch_ratios = [
            m["ratio_to_torch_best"] for (a, i), m in rows.items() if a == algorithm and "torch" in i
        ]
        assert max(torch_ratios) == pytest.approx(1.0)
    assert report["rounds"] == 2 and report["steps"] == 2 and report["machine"]["date"]

    # the benchmarks page's table is rendered from that file: every figure in it comes from the JSON
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


def test_bfloat16_parameters_with_float32_state_are_measured_with_the_bytes_each_moves():
    from descentlab import bench

    workload = bench.WORKLOADS["transformer-bf16"].scaled(0.01)
    report = bench.run([workload], [bench.ALGORITHMS["adam"]], device=torch.device("cpu"), steps=1, rounds=1)
    rows = {m.implementation: m for m in report.measurements}
    n = workload.parameters
    # descentlab keeps float32 moments for bfloat16 parameters: 3 x 2 bytes (p, g, p) + 2 x 2 x 4 (m, v)
    assert rows["descentlab fast"].bytes_per_step == 22 * n
    assert rows["descentlab fast"].state_bytes_per_param == pytest.approx(8, abs=0.01)
    # torch.optim keeps them in bfloat16: 3 x 2 + 2 x 2 x 2
    assert rows["torch fused"].bytes_per_step == 14 * n
    # the probe moves what descentlab's step moves, in the same dtypes
    assert rows["streaming probe"].bytes_per_step == 22 * n
    assert {b.dtype for b in bench.StreamingProbe(workload, 2, torch.device("cpu")).buffers} == {
        torch.bfloat16,
        torch.float32,
    }


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
            row("transformer-bf16", "adam", None, 96.0),  # only the probe share is a target
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
        ("transformer-bf16", "Adam"): "yes",
    }
    assert "| transformer | RMSprop | 2.40 | >= 2.5 | 99 | >= 95 | no |" in lines


def test_the_benchmarks_page_renders_every_committed_bench_result():
    """The site's figures are `descentlab bench --markdown` of the committed JSON, rendered at build time."""
    import importlib.util
    from pathlib import Path

    from descentlab import bench

    root = Path(__file__).parents[1]
    marker = "<!-- generated: bench benchmarks/results/*.json -->"
    assert marker in (root / "docs" / "benchmarks.md").read_text()
    spec = importlib.util.spec_from_file_location("generated", root / "docs" / "_ext" / "generated.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    page = generated.expand(marker)
    results = sorted((root / "benchmarks" / "results").glob("*.json"))
    assert results
    for file in results:
        assert bench.markdown(json.loads(file.read_text())) in page
