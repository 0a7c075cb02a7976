"""The playground's benchmark: what it records, how the page renders it, and its refusals."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from descentlab.playground import bench

STORED = Path(__file__).parents[2] / "benchmarks" / "playground.json"


def test_the_benchmark_keeps_each_timing_with_its_machine(tmp_path, capsys):
    out = tmp_path / "playground.json"
    bench.main(["--repeats", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["repeats"] == 1 and data["request"] == {
        "surface": "rosenbrock",
        "optimizers": 6,
        "updates": 500,
    }
    assert [row["key"] for row in data["rows"]] == ["http", "compute", "json", "steps"]
    assert all(len(row["times_ms"]) == 1 and row["times_ms"][0] > 0 for row in data["rows"])
    assert data["answer_bytes"] > 100_000 and data["machine"]["date"] and data["machine"]["processor"]
    printed = capsys.readouterr().out
    assert printed.startswith(bench.markdown(data)) and f"written to {out}" in printed


def test_the_stored_run_renders_with_its_machine_and_every_row():
    data = json.loads(STORED.read_text())
    text = bench.markdown(data)
    assert data["machine"]["processor"] in text and data["machine"]["date"] in text
    for row in data["rows"]:
        assert row["times_ms"], row  # the stored run measured every row, HTTP included
        assert f"| {row['name']} | {statistics.median(row['times_ms']):.0f} |" in text


def test_a_row_not_measured_says_why_and_a_machine_without_a_load_average_renders():
    data = json.loads(STORED.read_text())
    data["rows"][0]["times_ms"] = None
    data["machine"]["load_average"] = None
    assert "cores), torch" in bench.markdown(data)
    assert "| POST /api/paths over HTTP | not measured: the playground extra is not installed |" in (
        bench.markdown(data)
    )


def test_fewer_than_one_repeat_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--repeats", "0"])
    assert exit_.value.code == 2 and "--repeats must be at least 1; received 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="repeats must be at least 1; received 0"):
        bench.measure(0)


def test_an_unwritable_out_is_refused_before_anything_is_measured(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "measure", lambda repeats: pytest.fail("measured before --out was checked"))
    (tmp_path / "afile").write_text("")
    for out in (tmp_path, tmp_path / "afile" / "x.json"):
        with pytest.raises(SystemExit) as exit_:
            bench.main(["--out", str(out)])
        assert exit_.value.code == 2 and f"--out: cannot write {str(out)!r}" in capsys.readouterr().err
