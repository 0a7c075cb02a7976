"""The scripts in benchmarks/ that the documentation quotes: they keep their timings as JSON
(``--out``), the pages render that JSON, and a wrong argument is one line, before any measuring."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from descentlab import bench

ROOT = Path(__file__).parents[1]
STORED = {"fsdp_step.py": "fsdp-step.json", "bf16_rounding.py": "bf16-rounding.json"}


def _script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def _generated():
    spec = importlib.util.spec_from_file_location("generated", ROOT / "docs" / "_ext" / "generated.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "forms"),
    [
        ("bf16_rounding.py", ["--scale", "0.01", "--rounds", "2", "--steps", "1"], 4),
        ("fsdp_step.py", ["--optimizer", "sgd", "--scale", "0.005", "--rounds", "2", "--steps", "1"], 10),
    ],
)
def test_a_script_keeps_what_it_printed_as_json_that_renders_to_the_same_figures(
    tmp_path, script, args, forms
):
    out = tmp_path / "deep" / "timings.json"
    done = _script(script, *args, "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["benchmark"] == f"benchmarks/{script}"
    assert data["command"] == f"python benchmarks/{script} {' '.join(args)} --out {out}"
    assert (data["rounds"], data["steps"]) == (2, 1)
    assert data["machine"]["torch"] and data["machine"]["date"]
    assert len(data["rows"]) == forms
    table = bench.forms_markdown(data)
    for row in data["rows"]:
        if row["round_ms"] is None:
            assert row["note"], "a form that does not run says why"
            continue
        assert [len(r) for r in row["round_ms"]] == [1, 1]
        assert all(ms > 0 for r in row["round_ms"] for ms in r)
        # the figure printed is the figure kept (the median of every step)
        median = sorted(ms for r in row["round_ms"] for ms in r)
        assert (
            f"{row['form']}: {(median[0] + median[1]) / 2:.{2 if script == 'bf16_rounding.py' else 1}f} ms"
            in (done.stdout)
        )
        assert f"| {row['form']} | " in table
    assert data["machine"]["date"] in table and data["command"] in table


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("bf16_rounding.py", ["--rounds", "0"], "--rounds and --steps must be at least 1; received 0 and 10"),
        ("bf16_rounding.py", ["--scale", "nan"], "--scale must be in (0, 4]; received nan"),
        ("fsdp_step.py", ["--steps", "0"], "--rounds and --steps must be at least 1; received 3 and 0"),
        ("fsdp_step.py", ["--scale", "inf"], "--scale must be in (0, 4]; received inf"),
        ("fsdp_step.py", ["--optimizer", "adam,nadam"], "--optimizer: 'adam,nadam'; give each of"),
        ("fsdp_step.py", ["--optimizer", "sgd,sgd"], "--optimizer: 'sgd,sgd'; give each of"),
        ("fsdp_step.py", ["--out", "file/timings.json"], "--out: "),
        ("bf16_rounding.py", ["--out", "file/timings.json"], "--out: "),
    ],
)
def test_a_wrong_argument_is_one_line_before_any_measuring(
    tmp_path, monkeypatch, capsys, script, args, message
):
    (tmp_path / "file").write_text("a file, not a folder")
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location(script[:-3], ROOT / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exited:
        module.main(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"], "nothing written"


def test_the_pages_render_the_stored_timings_of_each_script():
    pages = "".join(
        (ROOT / "docs" / page).read_text() for page in ("fast-path.md", "benchmarks.md", "lean-state.md")
    )
    for script, stored in STORED.items():
        marker = f"<!-- generated: forms benchmarks/{stored} -->"
        assert marker in pages, f"no page renders benchmarks/{stored}"
        data = json.loads((ROOT / "benchmarks" / stored).read_text())
        assert data["benchmark"] == f"benchmarks/{script}"
        assert all(row["round_ms"] is None or len(row["round_ms"]) == data["rounds"] for row in data["rows"])
        assert _generated().expand(marker) == bench.forms_markdown(data)


def test_a_form_table_names_what_did_not_run_and_escapes_its_cells():
    data = {
        "benchmark": "benchmarks/x.py",
        "command": "python benchmarks/x.py",
        "title": "Two forms",
        "machine": {"processor": "CPU", "cpu_count": 2, "torch_threads": 2, "torch": "2.13.0", "date": "D"},
        "rounds": 3,
        "steps": 2,
        "rows": [
            {
                "group": "Adam",
                "form": "a | b",
                "round_ms": [[1.0, 3.0], [2.0, 2.5], [9.0, 10.0]],
                "note": None,
            },
            {"group": "Adam", "form": "c", "round_ms": None, "note": "NotImplementedError: no rule"},
        ],
    }
    table = bench.forms_markdown(data)
    assert "| Adam | a \\| b | 2.8 (2.0-9.5) |  |" in table
    assert "| Adam | c | does not run | NotImplementedError: no rule |" in table
    assert "load average" not in table, "a machine without one says nothing of it"
    ungrouped = bench.forms_markdown({**data, "rows": [{**r, "group": None} for r in data["rows"]]})
    assert "| form | ms per step (rounds) | notes |" in ungrouped and "| Adam |" not in ungrouped
