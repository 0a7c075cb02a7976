"""``descentlab bench``, run for real on a tiny workload: its table, its JSON and its bad input."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from descentlab.bench import PEERS

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "descentlab", "bench", *args],
        capture_output=True, text=True, check=False, cwd=cwd,
    )  # fmt: skip


@pytest.mark.slow
def test_bench_times_every_implementation_and_writes_its_results(tmp_path):
    from descentlab import bench as lib

    out = tmp_path / "results" / "bench.json"
    done = bench(
        "--workloads", "many-small", "--optimizers", "sgd,rmsprop", "--scale", "0.01",
        "--steps", "2", "--rounds", "2", "--warmup", "0.01", "--device", "cpu", "--out", str(out), cwd=tmp_path,
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
    assert (report["steps"], report["rounds"], report["warmup_s"]) == (2, 2, 0.01)
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
            assert f"| {lib._ms(rows[(algorithm, implementation)]['ms_per_step'])} |" in line
        m = rows[(algorithm, "descentlab fast")]
        assert (
            f"{lib._ms(m['ms_per_step'])} ({m['ratio_to_torch_best']:.2f}x, {m['percent_of_probe']:.0f}%)"
            in line
        )
        assert line.endswith(f"| {m['state_bytes_per_param']:.1f} |")
    assert table[1].count("| none |") == 1, "torch has no fused RMSprop: said, not left blank"


def test_bfloat16_parameters_with_float32_state_are_measured_with_the_bytes_each_moves():
    from descentlab import bench

    workload = bench.WORKLOADS["transformer-bf16"].scaled(0.01)
    report = bench.run(
        [workload], [bench.ALGORITHMS["adam"]], device=torch.device("cpu"), steps=1, rounds=1, warmup_s=0
    )
    rows = {m.implementation: m for m in report.measurements}
    n = workload.parameters
    # descentlab keeps float32 moments for bfloat16 parameters: 3 x 2 bytes (p, g, p) + 2 x 2 x 4 (m, v)
    assert rows["descentlab fast"].bytes_per_step == 22 * n
    assert rows["descentlab fast"].state_bytes_per_param == pytest.approx(8, abs=0.01)
    # torch.optim keeps them in bfloat16: 3 x 2 + 2 x 2 x 2
    assert rows["torch fused"].bytes_per_step == 14 * n
    # the probe moves what descentlab's step moves, in the same dtypes
    assert rows["streaming probe"].bytes_per_step == 22 * n
    params = [torch.zeros(64, 64, dtype=torch.bfloat16, requires_grad=True)]
    params[0].grad = torch.ones_like(params[0])
    opt = bench.ALGORITHMS["adam"].ours(params, state_dtype=torch.float32, foreach=False)
    opt.step()
    assert {b.dtype for b in bench.StreamingProbe.beside(opt).buffers} == {torch.bfloat16, torch.float32}


def test_the_report_so_far_is_handed_on_after_each_workload():
    # the command line writes it out each time: a run cut short keeps the workloads it finished
    from descentlab import bench

    workloads = [bench.WORKLOADS[name].scaled(0.01) for name in ("many-small", "transformer")]
    seen = []
    report = bench.run(
        workloads, [bench.ALGORITHMS["sgd"]], device=torch.device("cpu"), steps=1, rounds=1, warmup_s=0,
        lean_workloads=(), measured=lambda so_far: seen.append({m.workload for m in so_far.measurements}),
    )  # fmt: skip
    assert seen == [{"many-small"}, {"many-small", "transformer"}]
    assert {m.workload for m in report.measurements} == seen[-1]


def test_a_torch_flag_refused_at_the_first_step_leaves_its_row_out():
    # torch's fused Adagrad is built on CUDA and refuses to step there; on the CPU it
    # refuses a complex parameter the same way, with the same error
    from descentlab import bench

    p = torch.zeros(4, dtype=torch.complex64, requires_grad=True)
    p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError) as refused:
        torch.optim.Adagrad([p], fused=True).step()
    assert bench._refused_by_torch("torch fused", refused.value)
    assert not bench._refused_by_torch("descentlab fast", refused.value), "descentlab's own rows never are"
    assert not bench._refused_by_torch("torch fused", RuntimeError("CUDA out of memory")), "only the flag"


def test_a_peer_that_is_not_installed_is_named_in_the_error(monkeypatch):
    from descentlab import bench

    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name: None)
    for name, module in (
        ("deepspeed", "deepspeed"),
        ("bitsandbytes", "bitsandbytes"),
        ("torchao", "torchao"),
    ):
        with pytest.raises(
            ValueError, match=rf"--compare {name}: {module} is not installed here \(pip install"
        ):
            bench.check_peers([name])
    with pytest.raises(
        ValueError,
        match=r"--compare must be one of deepspeed, bitsandbytes, torchao; received --compare 'apex'",
    ):
        bench.check_peers(["apex"])


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


@pytest.mark.slow
@pytest.mark.parametrize(
    "peer",
    [
        pytest.param(
            name, marks=pytest.mark.skipif(not _missing(module), reason=f"{module} is installed here")
        )
        for name, module in (
            ("deepspeed", "deepspeed"),
            ("bitsandbytes", "bitsandbytes"),
            ("torchao", "torchao"),
        )
    ],
)
def test_compare_with_a_peer_that_is_not_installed_is_one_line_and_exit_2(tmp_path, peer):
    done = bench("--compare", peer, "--out", str(tmp_path / "bench.json"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"--compare {peer}: " in done.stderr and "is not installed here" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.slow
def test_compare_with_a_peer_whose_import_fails_is_one_line_and_exit_2(tmp_path):
    """A broken install (here a torchao package that cannot import, ahead of any real one on the path)."""
    (tmp_path / "fake" / "torchao").mkdir(parents=True)
    (tmp_path / "fake" / "torchao" / "__init__.py").write_text(
        'raise ImportError("built for another torch")\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "descentlab", "bench", "--compare", "torchao", "--out", str(tmp_path / "b.json")],
        capture_output=True, text=True, check=False, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "fake")},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "descentlab bench: error: --compare torchao: torchao.optim is installed but cannot be imported "
        f"here (ImportError: built for another torch); {PEERS['torchao'].install}"
    ), done.stderr


# -- lean state: descentlab's rows, their bytes, their probes ------------------------------------------


def _lean_bytes(shapes, state_tensors: int, kind: str) -> tuple[int, int]:
    """(state bytes without step counts, bytes a step moves) of float32 parameters with ``kind`` state,
    from the rule in docs/lean-state.md: tensors of 4096 elements or more keep lean state, 8-bit with
    one float32 scale per block of 256; smaller ones keep float32 state."""
    state = 0
    for shape in shapes:
        n = math.prod(shape)
        if n < 4096:
            per = 4 * n
        elif kind == "8bit":
            per = n + 4 * math.ceil(n / 256)
        else:
            per = 2 * n
        state += state_tensors * per
    params = sum(math.prod(s) for s in shapes)
    return state, 3 * 4 * params + 2 * state


@pytest.mark.parametrize("kind", ["8bit", "bfloat16"])
def test_lean_bytes_are_counted_at_the_stored_precision_and_the_probe_moves_them(kind):
    from descentlab import bench
    from descentlab.optim import Adam

    shapes = [(64, 128), (300, 50), (100,), (3, 7)]  # 8192 and 15000 elements (lean), 100 and 21 (float32)
    params = [torch.zeros(s, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = torch.full_like(p, 1e-2)
    opt = Adam(params, lr=1e-3, lean_state=kind, foreach=False)
    opt.step()
    state, moved = _lean_bytes(shapes, 2, kind)
    # measured from the state tensors (8-bit scales included), plus a 4-byte step count per tensor
    assert bench.state_bytes(opt) == state + 4 * len(shapes)
    assert bench.bytes_moved(opt) == moved
    n = sum(math.prod(s) for s in shapes)
    assert (
        moved < (20.1 if kind == "bfloat16" else 16.2) * n < 28 * n
    )  # float32 state would move 28 per parameter
    probe = bench.StreamingProbe.beside(opt)
    assert probe.bytes_per_step == moved
    stored = torch.uint8 if kind == "8bit" else torch.bfloat16
    assert stored in {b.dtype for b in probe.buffers} and torch.float32 in {b.dtype for b in probe.buffers}
    # one pass per kind of parameter (lean, float32), and the 8-bit scales by a pass of their own
    assert len(probe.passes) == 2 and len(probe.side) == (1 if kind == "8bit" else 0)


@pytest.mark.slow
def test_each_row_keeps_its_ratio_and_probe_share_round_by_round(tmp_path):
    out = tmp_path / "bench.json"
    done = bench(
        "--workloads", "transformer", "--optimizers", "sgd", "--scale", "0.05", "--lean-workloads", "none",
        "--steps", "3", "--rounds", "2", "--warmup", "0", "--device", "cpu", "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    rows = {m["implementation"]: m for m in report["measurements"]}

    def round_medians(m):  # the times of round r are steps 3r .. 3r + 2, in the order they ran
        times = m["step_times_ms"]
        assert len(times) == 6
        return [sorted(times[3 * r : 3 * r + 3])[1] for r in range(2)]

    # against the round's median of torch's fastest row over the run, the row the overall ratio is to
    fastest = min((m for i, m in rows.items() if i.startswith("torch ")), key=lambda m: m["ms_per_step"])
    best = round_medians(fastest)
    probe = round_medians(rows["streaming probe"])
    for implementation, m in rows.items():
        mine = round_medians(m)
        assert m["ratio_by_round"] == pytest.approx([b / t for b, t in zip(best, mine)]), implementation
        moved = m["bytes_per_step"] / rows["streaming probe"]["bytes_per_step"]
        assert m["percent_of_probe_by_round"] == pytest.approx(
            [100 * moved * p / t for p, t in zip(probe, mine)]
        )
    assert rows["streaming probe"]["percent_of_probe_by_round"] == pytest.approx([100, 100])

    done = bench("--markdown", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    m = rows["descentlab fast"]
    low, high = min(m["ratio_by_round"]), max(m["ratio_by_round"])
    assert (
        f"| transformer | SGD momentum | {m['ratio_to_torch_best']:.2f} ({low:.2f}-{high:.2f}) | >= 1 |"
        in (done.stdout)
    )
    assert "hold the median round with probability 50% if rounds are independent" in done.stdout


def test_each_round_is_compared_with_the_torch_row_that_is_fastest_over_the_run():
    from descentlab import bench as lib

    def row(implementation, times):
        return {"implementation": implementation, "step_times_ms": times, "bytes_per_step": 8}

    rows = [
        row("torch foreach", [1.0, 1.0, 4.0, 4.0, 4.0, 4.0]),  # the fastest in round 1, slowest overall
        row("torch fused", [2.0] * 6),  # torch's fastest over the run: the reference of every round
        row("descentlab fast", [2.0] * 6),
    ]
    # the fastest torch row round by round (1.0 in round 1) would favour torch by its luck
    assert lib.by_round(rows, steps=2, rounds=3)["descentlab fast"] == ([1.0, 1.0, 1.0], None)


def test_the_range_of_n_rounds_holds_their_median_with_the_stated_probability():
    import numpy as np

    from descentlab import bench as lib

    rng = np.random.default_rng(0)
    for rounds in (2, 3, 5, 8):
        # a skewed, heavy-tailed distribution of a round's ratio, as a noisy machine gives; median 1
        draws = np.exp(rng.standard_normal((40_000, rounds)) * 0.3) * rng.choice(
            [1.0, 1.0, 1.5], (40_000, rounds)
        )
        median = np.median(
            np.exp(rng.standard_normal(2_000_000) * 0.3) * rng.choice([1.0, 1.0, 1.5], 2_000_000)
        )
        held = np.mean((draws.min(axis=1) <= median) & (median <= draws.max(axis=1)))
        assert held == pytest.approx(lib.coverage(rounds), abs=0.01), rounds
    assert lib.coverage(5) == pytest.approx(0.9375)


def test_lean_rows_are_measured_on_the_transformer_with_their_own_probes(tmp_path):
    from descentlab import bench as lib

    out = tmp_path / "bench.json"
    done = bench(
        "--workloads", "transformer", "--optimizers", "adam", "--scale", "0.05",
        "--steps", "1", "--rounds", "1", "--warmup", "0", "--device", "cpu", "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    rows = {m["implementation"]: m for m in report["measurements"]}
    lean = {"descentlab fast bf16-state": "bfloat16", "descentlab fast 8-bit-state": "8bit"}
    probes = {"streaming probe bf16-state": "bfloat16", "streaming probe 8-bit-state": "8bit"}
    assert {**lean, **probes}.items() <= {i: m["lean_state"] for i, m in rows.items()}.items()
    assert rows["descentlab fast"]["lean_state"] is None and rows["streaming probe"]["lean_state"] is None
    shapes = lib.WORKLOADS["transformer"].scaled(0.05).shapes
    n = rows["descentlab fast"]["parameters"]
    best = min(m["ms_per_step"] for i, m in rows.items() if i.startswith("torch "))
    for implementation, kind in lean.items():
        m, probe = rows[implementation], rows["streaming probe " + implementation.split()[-1]]
        state, moved = _lean_bytes(shapes, 2, kind)
        # at this scale every matrix (>= 13312 elements) is lean and every vector (<= 102) float32:
        # 8-bit 2.044, bfloat16 4.008 bytes per parameter with the step counts
        assert m["state_bytes_per_param"] * n == pytest.approx(state + 4 * len(shapes))
        assert m["bytes_per_step"] == moved and probe["bytes_per_step"] == moved
        assert m["probe_gb_per_s"] == probe["gb_per_s"]
        assert m["percent_of_probe"] == pytest.approx(100 * m["gb_per_s"] / probe["gb_per_s"])
        assert probe["percent_of_probe"] == pytest.approx(100) and probe["state_bytes_per_param"] is None
        # against torch's fastest full-precision step, as the targets are stated
        assert m["ratio_to_torch_best"] == pytest.approx(best / m["ms_per_step"])
    assert rows["descentlab fast 8-bit-state"]["state_bytes_per_param"] <= 2.1
    assert rows["descentlab fast bf16-state"]["state_bytes_per_param"] == pytest.approx(4.008, abs=1e-3)
    # the full-precision rows keep their probe
    assert rows["descentlab fast"]["probe_gb_per_s"] == rows["streaming probe"]["gb_per_s"]

    done = bench("--markdown", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    main = [
        line for line in text.splitlines() if line.startswith("| workload | optimizer | descentlab fast |")
    ]
    assert len(main) == 1 and "state" not in main[0].replace("state B/param", ""), main
    m = rows["descentlab fast 8-bit-state"]
    assert (
        f"| transformer | Adam | descentlab fast 8-bit-state | {m['ms_per_step']:.1f} | "
        f"{m['ratio_to_torch_best']:.2f} | {m['bytes_per_step'] / n:.2f} | {m['percent_of_probe']:.0f} | "
        f"{m['probe_gb_per_s']:.1f} | {m['state_bytes_per_param']:.2f} |"
    ) in text
    assert "Against the targets (descentlab's fast path with lean state):" in text
    assert "medians of 1 rounds of 1 steps, each after one untimed step;" in text


class _Ticking:
    """An optimizer whose step takes ``seconds``: it notes when each step began."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.began = seconds, []

    def step(self) -> None:
        self.began.append(time.perf_counter())
        time.sleep(self.seconds)


@pytest.mark.parametrize("warmup", [0, 0.001, 0.1])
def test_each_round_warms_an_implementation_for_the_time_asked_and_at_least_one_step(warmup):
    from descentlab import bench

    ticking = _Ticking(0.01)
    start = time.perf_counter()
    bench._warm(ticking, torch.device("cpu"), warmup)
    end = time.perf_counter()
    assert ticking.began, "one step at least"
    assert end - start >= warmup
    # a step after the first begins only while the time asked has not yet passed
    assert all(t - start < warmup for t in ticking.began[1:])
    if warmup == 0.1:
        assert len(ticking.began) > 1


def test_each_round_starts_one_implementation_further_along():
    # torch's global step hook sees every optimizer's steps in the order they run (the probe is
    # not an optimizer); an implementation's warm-up and timed steps in one turn are one run of it
    import itertools

    from torch.optim.optimizer import register_optimizer_step_post_hook

    from descentlab import bench

    order: list[int] = []
    hook = register_optimizer_step_post_hook(lambda opt, *_: order.append(id(opt)))
    try:
        bench.run([bench.Workload("tiny", "3 tensors of 8 x 8", ((8, 8),) * 3)], [bench.ALGORITHMS["sgd"]],
                  device=torch.device("cpu"), steps=1, rounds=3, warmup_s=0, lean_workloads=())  # fmt: skip
    finally:
        hook.remove()
    turns = [k for k, _ in itertools.groupby(order)]
    n = len(set(order))  # made and stepped once each, in the list's order, before the rounds
    rows, rounds = turns[:n], [turns[n + r * n : n + (r + 1) * n] for r in range(3)]
    assert n >= 4 and len(turns) == 5 * n, turns  # and after the rounds, one step each: the peak memory
    assert rounds == [rows, rows[1:] + rows[:1], rows[2:] + rows[:2]]


def test_an_interleaved_workload_times_one_step_of_each_implementation_in_turn():
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from descentlab import bench

    assert bench.WORKLOADS["transformer"].interleaved and not bench.WORKLOADS["many-small"].interleaved
    order: list[int] = []
    hook = register_optimizer_step_post_hook(lambda opt, *_: order.append(id(opt)))
    tiny = bench.Workload("tiny", "3 tensors of 8 x 8", ((8, 8),) * 3, interleaved=True)
    try:
        report = bench.run([tiny], [bench.ALGORITHMS["sgd"]], device=torch.device("cpu"), steps=2, rounds=2,
                           warmup_s=0, lean_workloads=())  # fmt: skip
    finally:
        hook.remove()
    n = len(set(order))
    rows = order[:n]  # made and stepped once each, in the list's order
    for r in range(2):
        turn = rows[r:] + rows[:r]  # each round starts one further along
        # each warmed up (one step, at no warm-up time asked), then one step of each, twice
        assert order[n + r * 3 * n : n + (r + 1) * 3 * n] == turn * 3, r
    assert len(order) == 8 * n  # and after the rounds, one step each: the peak memory
    assert report.interleaved == ["tiny"]
    assert all(len(m.step_times_ms) == 4 for m in report.measurements)


def test_the_help_states_the_warmup_the_bench_uses_by_default():
    # the parser does not import the bench module (it imports torch): its help repeats the number
    from descentlab import bench, cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["bench"]
    warmup = next(a for a in sub._actions if a.dest == "warmup")
    assert f"(default {bench.WARMUP_S}:" in warmup.help


def test_the_table_says_how_long_each_round_warmed_up():
    from descentlab import bench

    data = json.loads((ROOT / "benchmarks" / "results" / "bench-cpu.json").read_text())
    for warmup, said in [
        (0.25, "each after at least 0.25 s of untimed steps"),
        (None, "each after one untimed step"),
    ]:
        text = bench.markdown({**data, "warmup_s": warmup})
        assert f"medians of {data['rounds']} rounds of {data['steps']} steps, {said};" in text


def test_the_lean_table_and_its_targets_come_from_the_rows_with_lean_state():
    from descentlab import bench

    def row(implementation, lean_state, ms, ratio, state, moved=16.1):
        return {"workload": "transformer", "algorithm": "adam", "implementation": implementation,
                "parameters": 10**6, "ms_per_step": ms, "ratio_to_torch_best": ratio,
                "bytes_per_step": int(moved * 10**6), "gb_per_s": moved / ms, "percent_of_probe": 90.0,
                "state_bytes_per_param": state, "lean_state": lean_state}  # fmt: skip

    data = {
        "machine": {"processor": "cpu", "cpu_count": 2, "torch_threads": 2, "torch": "2", "device": "cpu"},
        "probe_gb_per_s": 10.0,
        "measurements": [
            row("descentlab fast", None, 13.0, 1.0, 8.0, 28.0),
            row("torch fused", None, 13.0, 1.0, 8.0, 28.0),
            row("streaming probe", None, 12.0, 1.08, None, 28.0),
            row("descentlab fast bf16-state", "bfloat16", 10.0, 1.3, 4.008, 20.0),
            row("descentlab fast 8-bit-state", "8bit", 9.0, 1.44, 2.04),
            row("bitsandbytes 8-bit-state", "8bit", 130.0, 0.1, 2.05),
            row("streaming probe bf16-state", "bfloat16", 9.0, 1.44, None, 20.0),
            row("streaming probe 8-bit-state", "8bit", 8.0, 1.6, None),
        ],
    }
    lines = bench.markdown(data).splitlines()
    head = next(line for line in lines if line.startswith("| workload | optimizer | descentlab fast |"))
    # the main table keeps full-precision implementations; lean rows and their probes have their own
    assert (
        head == "| workload | optimizer | descentlab fast | torch fused | streaming probe | state B/param |"
    )
    assert (
        "| transformer | Adam | bitsandbytes 8-bit-state | 130.0 | 0.10 | 16.10 | 90 | 2.0 | 2.05 |" in lines
    )
    assert not any("| streaming probe 8-bit-state |" in line for line in lines)
    start = lines.index("Against the targets (descentlab's fast path with lean state):")
    # 1.44x is short of 1.5x; 4.008 bytes (small tensors keep float32 state) is over the 4 stated
    assert lines[start + 4 :] == [
        "| transformer | Adam | 8-bit | 1.44 | >= 1.5 | 2.04 | <= 2.1 | no |",
        "| transformer | Adam | bfloat16 | 1.30 | >= 1.25 | 4.01 | <= 4 | no |",
    ]


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
                (["--warmup", "-1"], "--warmup"),
                (["--device", "tpu"], "tpu"),
                (["--device", "meta"], "meta"),
                (["--lean-workloads", "transformr"], "transformr"),
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
    assert "In brackets:" not in "\n".join(lines), "a file without rounds has no ranges to explain"
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


def test_a_target_is_met_or_missed_only_where_every_round_agrees():
    from descentlab import bench

    def row(implementation, algorithm, times, moved=28):
        return {"workload": "transformer", "algorithm": algorithm, "implementation": implementation,
                "parameters": 10**6, "ms_per_step": sorted(times)[len(times) // 2], "step_times_ms": times,
                "bytes_per_step": moved, "lean_state": None}  # fmt: skip

    def run(algorithm, ours, torch_times, probe):
        rows = [row("descentlab fast", algorithm, ours), row("torch fused", algorithm, torch_times),
                row(bench.PROBE, algorithm, probe)]  # fmt: skip
        best = rows[1]["ms_per_step"]
        for r in rows:
            r["ratio_to_torch_best"] = best / r["ms_per_step"]
            r["percent_of_probe"] = 100 * rows[2]["ms_per_step"] / r["ms_per_step"]
        return rows

    data = {
        "machine": {"processor": "cpu", "cpu_count": 2, "torch_threads": 2, "torch": "2", "device": "cpu"},
        "probe_gb_per_s": 10.0, "steps": 2, "rounds": 3,
        "measurements": [
            # every round faster than torch and at 100% of the probe: met
            *run("adam", [1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.1, 1.1, 1.2, 1.2, 1.1, 1.1], [1.0] * 6),
            # faster overall, but one round slower than torch: not resolved either way
            *run("sgd", [1.0, 1.0, 1.0, 1.0, 1.3, 1.3], [1.1, 1.1, 1.2, 1.2, 1.2, 1.2], [1.0, 1.0, 1.0, 1.0, 1.3, 1.3]),
            # slower than torch in every round: missed, though one round reaches the probe share
            *run("adagrad", [1.2, 1.2, 1.3, 1.3, 1.0, 1.0], [1.0, 1.0, 1.1, 1.1, 0.9, 0.9], [1.0] * 6),
        ],
    }  # fmt: skip
    lines = bench.markdown(data).splitlines()
    assert "| transformer | Adam | 1.10 (1.10-1.20) | >= 1 | 100 (100-100) | >= 95 | yes |" in lines
    assert (
        "| transformer | SGD momentum | 1.20 (0.92-1.20) | >= 1 | 100 (100-100) | >= 95 | unresolved |"
        in lines
    )
    assert "| transformer | Adagrad | 0.83 (0.83-0.90) | >= 1 | 83 (77-100) | >= 95 | no |" in lines
    assert any(
        line.startswith("In brackets: the lowest and highest of the 3 rounds' figures") for line in lines
    )


def test_a_gpu_run_names_the_gpu_shows_its_short_steps_and_no_cpu_targets():
    from pathlib import Path

    from descentlab import bench

    data = json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / "bench-cuda.json").read_text())
    text = bench.markdown(data)
    assert text.startswith(f"One run of `descentlab bench` on {data['machine']['gpu']} (host: ")
    fast = next(m for m in data["measurements"] if m["implementation"] == "descentlab fast bf16-state")
    assert fast["ms_per_step"] < 1 and f"| {fast['ms_per_step']:.2f} |" in text, (
        "steps under 1 ms keep 2 places"
    )
    assert "Against the targets" not in text and "targets are stated for the CPU" in text
    cpu = bench.markdown({**data, "machine": {**data["machine"], "device": "cpu", "gpu": None}})
    assert "Against the targets (descentlab's fast path):" in cpu


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


PEERS_8BIT = (("bitsandbytes", "bitsandbytes 8-bit-state"), ("torchao", "torchao 8-bit-state"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("peer", "implementation"),
    [
        pytest.param(name, implementation, marks=pytest.mark.skipif(
            _missing(name), reason=f"{name} is not installed (pip install 'descentlab[bench]')"
        ))
        for name, implementation in PEERS_8BIT
    ],
)  # fmt: skip
def test_a_peer_with_8bit_state_is_measured_with_its_own_bytes_and_probe(peer, implementation):
    from descentlab import bench

    assert bench.check_peers([peer]) == [implementation]
    for name in ("adam", "adamw"):  # torch.optim's hyperparameters, whatever the peer's defaults
        algorithm = bench.ALGORITHMS[name]
        p = torch.zeros(64, 64, requires_grad=True)
        group = bench.PEERS[peer].make(algorithm, [p], torch.device("cpu")).param_groups[0]
        # (torchao keeps lr as a float32 tensor)
        assert {k: float(group[k]) for k in ("lr", "eps", "weight_decay")} == pytest.approx(
            {k: v for k, v in algorithm.adam_hyperparameters().items() if k != "betas"}, rel=1e-6
        )
        assert tuple(map(float, group["betas"])) == algorithm.adam_hyperparameters()["betas"]
    assert bench.PEERS[peer].make(bench.ALGORITHMS["sgd"], [p], torch.device("cpu")) is None

    workload = bench.WORKLOADS["transformer"].scaled(0.02)
    report = bench.run(
        [workload], [bench.ALGORITHMS["adam"]], device=torch.device("cpu"), steps=1, rounds=1, warmup_s=0,
        peers=[implementation], lean_workloads=(),
    )  # fmt: skip
    rows = {m.implementation: m for m in report.measurements}
    m, probe = rows[implementation], rows["streaming probe 8-bit-state"]
    assert m.lean_state == "8bit" and not any(i.startswith("descentlab fast ") for i in rows)
    # measured from its state tensors: codes, block scales and quantisation maps; the small tensors' float32
    # state; far below float32's 8 bytes (torchao keeps a map per tensor: 2.2 at this scale)
    assert 2.0 < m.state_bytes_per_param < 2.25
    assert m.bytes_per_step < 16.5 * m.parameters
    # with no lean row of descentlab's, the 8-bit probe is built beside the peer's optimizer
    assert probe.bytes_per_step == m.bytes_per_step and m.probe_gb_per_s == probe.gb_per_s
    # torch's fastest step is the reference, not torchao's
    torch_rows = [r for i, r in rows.items() if bench.IMPLEMENTATIONS.get(i, ("",))[0] == "torch"]
    assert max(r.ratio_to_torch_best for r in torch_rows) == pytest.approx(1)


def _cli(capsys, *args: str) -> tuple[int, str]:
    from descentlab.cli import main

    code = main(["bench", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "inf"], "--scale must be in (0, 4]; received inf"),
        (["--scale", "nan"], "--scale must be in (0, 4]; received nan"),
        (["--optimizers", "sgd,adam,sgd"], "optimizers may be named once each; received 'sgd,adam,sgd'"),
        (["--workloads", "many-small", "--lean-workloads", "transformer"], "--lean-workloads must be among"),
        (["--compare", " nopeer, deepspeed"], "received --compare 'nopeer'"),  # checked first: no install needed
        pytest.param(
            ["--device", "cuda:1"], "--device cuda:1: no CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here"),
        ),
    ],
)  # fmt: skip
def test_bad_bench_input_found_before_measuring_is_named_with_its_value(tmp_path, capsys, args, message):
    code, err = _cli(capsys, *args, "--out", str(tmp_path / "bench.json"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_markdown_of_a_damaged_bench_result_names_the_file_and_what_is_wrong(tmp_path, capsys):
    stored = json.loads((ROOT / "benchmarks" / "results" / "bench-cpu.json").read_text())
    no_time = json.loads(json.dumps(stored))
    del no_time["measurements"][3]["ms_per_step"]
    no_size = json.loads(json.dumps(stored))
    for m in no_size["measurements"]:
        m["parameters"] = 0
    for content, message in (
        ({**stored, "machine": None}, "a field has a wrong type or value"),
        ({**stored, "machine": {}}, "it lacks 'processor'"),
        (no_time, "it lacks 'ms_per_step'"),
        (no_size, "a field has a wrong type or value (division by zero)"),
        ({**stored, "probe_gb_per_s": "fast"}, "a field has a wrong type or value"),
        (b"\xff\xfe{}", "is not JSON (not UTF-8 text)"),
    ):
        path = tmp_path / "damaged.json"
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
        code, err = _cli(capsys, "--markdown", str(path))
        assert code == 2 and f"--markdown: {str(path)!r}" in err and message in err, err
        assert len(err.strip().splitlines()) == 1, err


def test_a_probe_slower_than_the_step_judges_no_probe_target():
    from descentlab import bench

    def row(algorithm, share, rounds):
        return {"workload": "transformer", "algorithm": algorithm, "implementation": "descentlab fast",
                "parameters": 10**6, "ms_per_step": 1.0, "ratio_to_torch_best": 1.5, "percent_of_probe": share,
                "percent_of_probe_by_round": rounds, "ratio_by_round": [1.5] * len(rounds)}  # fmt: skip

    data = {
        "machine": {"processor": "cpu", "cpu_count": 2, "torch_threads": 2, "torch": "2", "device": "cpu"},
        "probe_gb_per_s": 10.0,
        "steps": 1,
        "rounds": 3,
        "measurements": [
            row("adam", 130.0, [120.0, 130.0, 140.0]),  # every round past 105%: the probe is no ceiling
            row("sgd", 104.0, [99.0, 104.0, 110.0]),  # noise around the probe: judged as usual
        ],
    }
    verdicts = {line.split("|")[2].strip(): line.split("|")[-2].strip()
                for line in bench.markdown(data).splitlines() if line.startswith("| transformer |")}  # fmt: skip
    assert verdicts == {"Adam": "probe invalid", "SGD momentum": "yes"}
