"""``descentlab run`` and ``descentlab list``: a run writes its record and prints a summary;
every kind of bad input is one line on stderr, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from datafiles import write_mnist
from descentlab.cli import main
from descentlab.problems import PROBLEMS
from descentlab.train import RunRecord


def test_list_names_every_problem(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    names = [
        line.split()[0]
        for line in out.split("problems (descentlab.problems):")[1].splitlines()
        if line.strip()
    ]
    assert names == list(PROBLEMS)


def test_run_writes_the_record_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "runs" / "saddle.json"
    code = main(["run", "--problem", "saddle-noisy", "--optimizer", "sgd", "--lr", "0.05", "--hyper", "momentum=0.5",
                 "--regime", "mini-batch", "--batch-size", "10", "--epochs", "5", "--seed", "2",
                 "--observe", "path", "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    record = RunRecord.from_json(out.read_text())
    assert record.config.hyperparameters == {"lr": 0.05, "momentum": 0.5}
    assert (record.updates, record.epochs, record.config.seed) == (50, 5, 2)
    assert len(record.observations["path"].step) == 51
    assert "problem     saddle-noisy" in captured.out and f"record      {out}" in captured.out
    assert len(captured.out.splitlines()) <= 24  # one screen
    # not a terminal: no bar, one line when the run ends (the training phase)
    assert "\r" not in captured.err and re.fullmatch(
        r"training: step 50, loss \S+ \(\d+\.\d s\)\n", captured.err
    )
    assert main(["run", "--problem", "saddle", "--steps", "5", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_run_with_defaults_uses_the_problems_setting(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--problem", "trap"]) == 0
    record = RunRecord.from_json(
        (tmp_path / "descentlab-out/runs/trap-sgd-full-batch-seed0.json").read_text()
    )
    assert record.reached_target and record.config.hyperparameters == {"lr": 0.01, "momentum": 0.9}


def test_run_reads_a_local_data_directory(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", n_train=40, n_test=20, gz=True)
    out = tmp_path / "mnist.json"
    assert (
        main(
            [
                "run",
                "--problem",
                "mnist-mlp",
                "--data-dir",
                str(tmp_path / "mnist"),
                "--steps",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert RunRecord.from_json(out.read_text()).updates == 3


BAD = {
    "unknown optimizer": (
        ["--problem", "saddle", "--optimizer", "adamm"],
        "unknown optimizer 'adamm'; did you mean 'adam' or 'adamw'",
    ),
    "unknown problem": (["--problem", "rosenbrok"], "unknown problem 'rosenbrok'; did you mean 'rosenbrock'"),
    "unknown hyperparameter": (
        ["--problem", "saddle", "--hyper", "momentun=0.9"],
        "unknown hyperparameter of sgd 'momentun'; did you mean 'momentum' or",
    ),
    "unknown observer": (
        ["--problem", "saddle", "--observe", "paths"],
        "unknown observer 'paths'; did you mean 'path'?",
    ),
    "unknown option": (
        ["--problem", "saddle", "--option", "noise_scal=2"],
        "unknown option of problem 'saddle' 'noise_scal'; did you mean 'noise_scale' or",
    ),
    "not a number": (["--problem", "saddle", "--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    "negative lr": (
        ["--problem", "saddle", "--lr", "-1"],
        "lr must be a finite number in [0, inf); received lr=-1.0",
    ),
    "nan lr": (["--problem", "saddle", "--lr", "nan"], "hyperparameter lr must be finite"),
    "zero batch": (
        ["--problem", "saddle", "--batch-size", "0"],
        "batch_size must be a positive integer; received batch_size=0",
    ),
    "negative epochs": (
        ["--problem", "saddle", "--epochs", "-3"],
        "epochs must be a positive integer; received epochs=-3",
    ),
    "infinite seconds": (["--problem", "saddle", "--seconds", "inf"], "seconds must be a finite number > 0"),
    "negative seed": (["--problem", "saddle", "--seed", "-1"], "seed must be an integer from 0 to 2**63 - 1"),
    "zero threads": (["--problem", "saddle", "--threads", "0"], "--threads must be a positive integer"),
    "bad interval": (
        ["--problem", "saddle", "--eval-every", "often"],
        "an interval is a number and an optional unit",
    ),
    "bad regime": (
        ["--problem", "saddle", "--regime", "batch"],
        "argument --regime: invalid choice: 'batch'",
    ),
    "bad hyperparameter form": (["--problem", "saddle", "--hyper", "momentum"], "--hyper must be KEY=VALUE"),
    "bad option value": (
        ["--problem", "saddle-noisy", "--option", "n_samples=-5"],
        "n_samples must be a positive integer",
    ),
    "resume without a checkpoint": (
        ["--problem", "saddle", "--resume"],
        "--resume needs --checkpoint PATH: without it the run keeps no checkpoint",
    ),
    "checkpoint interval without a checkpoint": (
        ["--problem", "saddle", "--checkpoint-every", "5"],
        "--checkpoint-every needs --checkpoint PATH",
    ),
    "bad data seed": (
        ["--problem", "saddle-noisy", "--option", "data_seed=-1"],
        "saddle-noisy: data_seed must be an integer from 0 to 2**32 - 1; received data_seed=-1",
    ),
    "fractional data seed": (
        ["--problem", "quadratic-deep", "--option", "data_seed=1.5"],
        "received data_seed=1.5",
    ),
    "no data directory": (
        ["--problem", "mnist-mlp"],
        "mnist-mlp reads MNIST from a local directory and downloads nothing",
    ),
}


def exit_code(argv):
    """main's exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_is_one_line_and_exit_code_2(case, tmp_path, capsys):
    args, message = BAD[case]
    out = tmp_path / "never.json"
    code = exit_code(["run", *args, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("descentlab run: error: ")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_file_where_a_folder_should_be_is_named(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    for args, message in (
        (["--out", str(blocker / "x.json")], f"cannot write '{blocker / 'x.json'}': '{blocker}' is a file, not a folder"),
        (["--problem", "mnist-mlp", "--data-dir", str(blocker), "--out", str(tmp_path / "r.json")],
         f"MNIST: data directory '{blocker}' is a file, not a folder"),
    ):  # fmt: skip
        assert exit_code(["run", "--problem", "saddle", "--steps", "2", *args]) == 2
        assert message in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


def test_a_run_refused_after_the_path_checks_leaves_no_empty_folders(tmp_path, capsys):
    # MNIST's files are looked for after --out and --checkpoint were checked
    out, checkpoint = tmp_path / "runs" / "deep" / "r.json", tmp_path / "ckpt" / "r.ckpt"
    args = [
        "--problem",
        "mnist-mlp",
        "--data-dir",
        str(tmp_path),
        "--out",
        str(out),
        "--checkpoint",
        str(checkpoint),
    ]
    assert exit_code(["run", *args]) == 2
    assert "MNIST" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # and the folders are made when the files are written
    assert (
        exit_code(
            ["run", "--problem", "saddle", "--steps", "2", "--out", str(out), "--checkpoint", str(checkpoint)]
        )
        == 0
    )
    assert out.is_file() and checkpoint.is_file() and (checkpoint.parent / "r.ckpt.columns").is_file()


def test_the_record_may_not_overwrite_the_checkpoint(tmp_path, capsys):
    same = tmp_path / "run.ckpt"
    for out in (same, tmp_path / "run.ckpt.columns"):
        code = exit_code(
            ["run", "--problem", "saddle", "--steps", "3", "--out", str(out), "--checkpoint", str(same)]
        )
        err = capsys.readouterr().err
        assert code == 2 and "--out and --checkpoint must be different files" in err, err
        assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_data_directory_without_the_files_names_both(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert (
        main(
            [
                "run",
                "--problem",
                "mnist-mlp",
                "--data-dir",
                str(tmp_path / "empty"),
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        f"no data in '{tmp_path / 'empty'}': expected train-images-idx3-ubyte" in err
        and "t10k-labels-idx1-ubyte" in err
    )
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r.json").exists()


def test_unwritable_output_is_reported_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", "--problem", "digits-mlp", "--epochs", "100", "--out", str(blocker / "r.json")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"descentlab run: error: cannot write '{blocker / 'r.json'}'")
        and len(err.splitlines()) == 1
    )


def test_errors_have_no_traceback_from_the_installed_command(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "descentlab",
            "run",
            "--problem",
            "saddle",
            "--optimizer",
            "sgdd",
            "--out",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        done.stderr
        == "descentlab run: error: unknown optimizer 'sgdd'; did you mean 'sgd'? (known: sgd, adagrad, rmsprop, adam, adamw)\n"
    )
    assert list(tmp_path.iterdir()) == []
