"""``descentlab sweep``: runs a spec, resumes, summarises on one screen; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import hashlib
import re
import sys

import pytest

from descentlab.cli import main
from descentlab.lab import SCHEMA_VERSION, Store
from sweepcases import store_of_version

SPEC = """
name = "demo"
problem = ["quadratic2d", "saddle"]
regime = "full-batch"
budget = { steps = 30 }
seed = [0, 1]

[optimizers.sgd]
lr = [0.01, 0.03, 100.0]

[optimizers.adam]
lr = { low = 0.01, high = 0.1, n = 2, log = true }
"""


@pytest.mark.slow
def test_sweep_runs_a_spec_and_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.toml").write_text(SPEC)
    assert main(["sweep", "demo.toml", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("runs        20: 20 run now, 0 already stored; ")
    assert "best by final held-out loss (mean over seeds):" in captured.out
    assert lines[-1] == "store       descentlab-out/lab.sqlite (experiment 'demo')"
    assert len(lines) <= 24  # one screen
    # not a terminal: the sweep is one phase, one line when it ends
    assert re.fullmatch(
        r"sweep: 20/20 runs \(0 already stored\), \d+ diverged, 0 failed \(\d+\.\d s\)\n", captured.err
    )
    with Store(tmp_path / "descentlab-out" / "lab.sqlite") as store:
        runs = store.runs("demo")
    assert len(runs) == 20 and {r.status for r in runs} == {"finished", "diverged"}

    # The same command again runs nothing; another experiment name runs everything again.
    assert main(["sweep", "demo.toml", "--workers", "1"]) == 0
    assert capsys.readouterr().out.startswith("runs        20: 0 run now, 20 already stored; ")
    assert main(["sweep", "demo.toml", "--retry-failed"]) == 0  # none failed; diverged runs are results
    assert capsys.readouterr().out.startswith("runs        20: 0 run now, 20 already stored; ")
    store = tmp_path / "other.sqlite"
    assert main(["sweep", "demo.toml", "--store", str(store), "--experiment", "again", "--workers", "1"]) == 0
    assert "20 run now" in capsys.readouterr().out
    with Store(store) as kept:
        assert kept.experiments() == ["again"]


def exit_code(argv: list[str]) -> int:
    """main's exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


BAD = {
    "unknown problem": (
        'problem = "rosenbrok"\n[optimizers.sgd]', [],
        "demo.toml: problem: unknown problem 'rosenbrok'; did you mean 'rosenbrock'",
    ),
    "unknown optimizer": (
        'problem = "saddle"\n[optimizers.adamm]', [],
        "demo.toml: optimizers.adamm: unknown optimizer 'adamm'; did you mean 'adam'",
    ),
    "malformed range": (
        'problem = "saddle"\n[optimizers.sgd]\nlr = { low = 0, high = 1, n = 4, log = true }', [],
        "demo.toml: optimizers.sgd.lr: LogGrid: low must be > 0 for a log scale; received low=0",
    ),
    "values and a range": (
        'problem = "saddle"\n[optimizers.sgd]\nlr = { values = [0.1], low = 0.2, high = 0.3 }', [],
        "demo.toml: optimizers.sgd.lr: give either values = [...] or a range (low, high, n, log), not both",
    ),
    "invalid toml": ("problem = [", [], "demo.toml: not valid TOML"),
    "missing spec": (None, [], "cannot read spec 'missing.toml': No such file or directory"),
    "store under a file": (SPEC, ["--store", "a-file/lab.sqlite"], "cannot write 'a-file/lab.sqlite'"),
    "store is a directory": (SPEC, ["--store", "."], "is a directory"),
    "zero workers": (SPEC, ["--workers", "0"], "--workers must be a positive integer; received 0"),
    "address without ray": (SPEC, ["--address", "h:6379"], "--address is for --executor ray"),
    "address and workers": (SPEC, ["--executor", "ray", "--address", "h:6379", "--workers", "2"], "--workers sets the cores of a local Ray instance"),
    "empty experiment": (SPEC, ["--experiment", ""], "--experiment must be a non-empty name"),
    "unknown executor": (SPEC, ["--executor", "dask"], "argument --executor: invalid choice: 'dask'"),
}  # fmt: skip


@pytest.mark.parametrize("spec, flags, message", BAD.values(), ids=BAD)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path, capsys, monkeypatch, spec, flags, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    if spec is not None:
        (tmp_path / "demo.toml").write_text(spec)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = exit_code(["sweep", "demo.toml" if spec is not None else "missing.toml", *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("descentlab sweep: error: ") and err.count("\n") == 1, err
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even a directory


@pytest.mark.parametrize("make, message", [
    (lambda p: store_of_version(p, 7), f"was written with store schema version 7; this descentlab reads version {SCHEMA_VERSION}"),
    (lambda p: p.write_bytes(b"\x00" * 4096), "is not a descentlab store"),
], ids=["another-version", "not-a-store"])  # fmt: skip
def test_a_store_it_cannot_use_is_refused_and_left_as_it_was(tmp_path, capsys, make, message):
    (tmp_path / "demo.toml").write_text(SPEC)
    store = tmp_path / "lab.sqlite"
    make(store)
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert main(["sweep", str(tmp_path / "demo.toml"), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("descentlab sweep: error: ") and err.count("\n") == 1 and message in err, err
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files


def test_the_ray_executor_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    (tmp_path / "demo.toml").write_text(SPEC)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as where it is not installed
    store = tmp_path / "lab.sqlite"
    assert main(["sweep", str(tmp_path / "demo.toml"), "--executor", "ray", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "the Ray executor needs Ray: pip install 'descentlab[ray]'" in err and err.count("\n") == 1
    assert not store.exists()


def test_the_largest_seed_a_run_may_have_is_stored(tmp_path, capsys):
    # seeds are SQLite INTEGERs (64-bit signed): 2**63 is refused before anything runs (test_space)
    spec = tmp_path / "s.toml"
    spec.write_text(
        'problem = "saddle"\nseed = 9223372036854775807\nbudget = { steps = 2 }\n[optimizers.sgd]\n'
    )
    store = tmp_path / "lab.sqlite"
    assert main(["sweep", str(spec), "--store", str(store), "--workers", "1"]) == 0
    with Store(store) as kept:
        assert [(r.status, r.config.seed) for r in kept.runs("s")] == [("finished", 2**63 - 1)]


@pytest.mark.parametrize("name, text", [
    ("deep.json", "[" * 100_000),
    ("deep.toml", "problem = " + "[" * 100_000),
    ("deepish.json", '{"problem": ' + "[" * 900 + "]" * 900 + "}"),
], ids=["json", "toml", "json-under-the-parser-limit"])  # fmt: skip
def test_a_spec_nested_too_deeply_is_one_line_exit_2(tmp_path, capsys, name, text):
    (tmp_path / name).write_text(text)
    code = exit_code(["sweep", str(tmp_path / name), "--store", str(tmp_path / "lab.sqlite")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("descentlab sweep: error: ") and err.count("\n") == 1, err
    assert name in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
