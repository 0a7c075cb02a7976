"""Configurations and records go to JSON and back exactly; settings validate themselves;
files are written atomically; run(config) is deterministic and leaves global state alone."""

from __future__ import annotations

import io
import json
import math
import random
import re

import numpy as np
import pytest
import torch
from rich.console import Console

from descentlab import _files
from descentlab._progress import Phases
from descentlab._registry import UnknownNameError
from descentlab.train import (
    Budget,
    Every,
    FullBatch,
    MiniBatch,
    RunConfig,
    RunRecord,
    Schedule,
    build_optimizer,
    default_config,
    fit,
    run,
)
from descentlab.train.run import run_id


def strict_loads(text):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_config_round_trips_through_json():
    config = RunConfig(
        "rosenbrock-noisy",
        "adam",
        {"lr": 0.1 + 0.2, "betas": [0.9, 0.999], "amsgrad": True},
        regime="online",
        budget=Budget(steps=10, seconds=2.5),
        seed=3,
        eval_every=Every(250, "samples"),
        schedule=Schedule("StepLR", {"step_size": 5}, "epoch"),
        problem_options={"noise_scale": 1.5, "start": [0.0, 1.0]},
        observers=("path", "effective-lr"),
        skip_nonfinite=True,
    )
    text = config.to_json()
    strict_loads(text)
    again = RunConfig.from_json(text)
    assert again == config and again.hyperparameters["lr"] == 0.1 + 0.2
    assert isinstance(again.observers, tuple) and isinstance(again.budget.seconds, float)


def test_numpy_numbers_in_a_config_become_python_numbers():
    # Values read from arrays once passed validation and then failed to write as JSON.
    config = RunConfig(
        "saddle",
        "sgd",
        {"lr": 0.1},
        budget=Budget(steps=np.int64(3), seconds=np.float32(2.5)),
        seed=np.int64(3),
        batch_size=np.int32(4),
        eval_every=Every(np.int64(2)),
    )
    assert (config.seed, config.batch_size, config.budget.steps, config.eval_every.n) == (3, 4, 3, 2)
    assert (
        type(config.seed) is int and type(config.budget.steps) is int and type(config.budget.seconds) is float
    )
    assert RunConfig.from_json(config.to_json()) == config
    record = run(config)
    assert record.updates == 3 and strict_loads(record.to_json())
    # plain Python values are kept as they are: a run's store key is its configuration's JSON
    assert type(Budget(seconds=5).seconds) is int
    # hyperparameters and problem options too, in lists as well
    options = RunConfig(
        "digits-mlp",
        "adam",
        {"lr": np.float32(0.5), "betas": [np.float64(0.9), 0.999], "amsgrad": np.bool_(True)},
        problem_options={"data_seed": np.int64(3)},
        budget=Budget(steps=1),
    )
    assert options.hyperparameters == {"lr": 0.5, "betas": [0.9, 0.999], "amsgrad": True}
    assert [type(v) for v in (options.hyperparameters["lr"], options.hyperparameters["amsgrad"])] == [
        float,
        bool,
    ]
    assert type(options.problem_options["data_seed"]) is int
    assert RunConfig.from_json(options.to_json()) == options and run_id(options)


def test_record_round_trips_including_divergence():
    config = RunConfig(
        "saddle", "sgd", {"lr": 50.0}, regime="full-batch", budget=Budget(steps=50), observers=("path",)
    )
    record = run(config)
    assert record.diverged and not math.isfinite(record.diverged_loss)
    text = record.to_json()
    strict_loads(text)
    again = RunRecord.from_json(text)
    assert again.to_json() == text  # (== on the records would fail on NaN != NaN)
    assert math.isnan(again.held_out.loss[-1]) and again.train_loss == record.train_loss
    assert again.observations["path"].value[0] == [1.5, 1e-3]
    assert again.summary() == record.summary() and "diverged    yes" in again.summary()


def test_record_json_is_checked():
    with pytest.raises(ValueError, match="not valid JSON"):
        RunRecord.from_json("{")
    with pytest.raises(ValueError, match="unknown field"):
        RunRecord.from_json('{"regime": "online", "colour": 1}')
    with pytest.raises(ValueError, match="version 99"):
        RunRecord.from_json('{"regime": "online", "version": 99}')
    with pytest.raises(ValueError, match="train_loss\\[0\\]: expected float"):
        RunRecord.from_json('{"regime": "online", "train_loss": ["x"]}')


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Budget(), "at least one of steps"),
        (lambda: Budget(steps=0), "steps must be a positive integer"),
        (lambda: Budget(epochs=2.5), "epochs must be a positive integer"),
        (lambda: Budget(seconds=float("nan")), "seconds must be a finite number > 0"),
        (lambda: MiniBatch(0), "batch_size must be a positive integer"),
        (lambda: FullBatch(-1), "chunk_size must be a positive integer"),
        (lambda: Every(0), "n must be a positive integer"),
        (lambda: Every(3, "hours"), "unit must be one of"),
        (lambda: Every.parse("3 weeks"), "an interval is a number and an optional unit"),
        (lambda: Every.parse("1.5epochs"), "whole number"),
        (lambda: RunConfig("digits-mlp", "sgd", regime="batch"), "regime must be one of"),
        (lambda: RunConfig("digits-mlp", "sgd", seed=-1), r"seed must be an integer from 0 to 2\*\*63 - 1"),
        (lambda: RunConfig("digits-mlp", "sgd", seed=2**63), r"received seed=9223372036854775808"),
        (lambda: RunConfig("digits-mlp", "sgd", {"lr": float("inf")}), "hyperparameter lr must be finite"),
        (lambda: Schedule("StepLR", interval="sometimes"), "interval must be 'step' or 'epoch'"),
    ],
)
def test_settings_validate_themselves(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_every_parses_units():
    assert Every.parse("100") == Every(100, "steps")
    assert Every.parse("5000samples") == Every(5000, "samples")
    assert Every.parse("1epoch") == Every(1, "epochs")
    assert Every.parse("2.5seconds") == Every(2.5, "seconds")


def test_hyperparameters_and_schedules_are_checked_by_name(tmp_path):
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(
        UnknownNameError, match="unknown hyperparameter of sgd 'momentun'; did you mean 'momentum'"
    ):
        build_optimizer("sgd", params, {"momentun": 0.9})
    with pytest.raises(ValueError, match="lr must be a finite number"):
        build_optimizer("sgd", params, {"lr": -1.0})
    with pytest.raises(ValueError, match="lr must be a real number"):
        build_optimizer("sgd", params, {"lr": "fast"})
    adam = build_optimizer("adam", params, {"betas": [0.8, 0.9]})
    assert adam.param_groups[0]["betas"] == (0.8, 0.9)
    # JSON cannot hold a torch.dtype: a configuration names it
    assert build_optimizer("adam", params, {"state_dtype": "bfloat16"}).param_groups[0]["state_dtype"] is (
        torch.bfloat16
    )
    with pytest.raises(ValueError, match=r"state_dtype must name a torch dtype.*received state_dtype='bf16'"):
        build_optimizer("adam", params, {"state_dtype": "bf16"})
    config = RunConfig(
        "saddle", "sgd", {"lr": 0.1}, schedule=Schedule("StepLr", {"step_size": 2}), budget=Budget(steps=2)
    )
    with pytest.raises(UnknownNameError, match="did you mean 'StepLR'"):
        run(config)


def test_schedule_from_config_sets_the_learning_rate():
    config = RunConfig(
        "saddle",
        "sgd",
        {"lr": 0.1},
        regime="full-batch",
        budget=Budget(steps=6),
        schedule=Schedule("StepLR", {"step_size": 2, "gamma": 0.5}),
    )
    assert run(config).lr == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_run_is_deterministic_and_leaves_global_generators_alone():
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    states = torch.random.get_rng_state(), np.random.get_state(), random.getstate()
    config = default_config("sparse-logreg", budget=Budget(epochs=1))
    first, second = run(config), run(config)
    other = run(RunConfig(**{**config.__dict__, "seed": 1}))
    assert torch.equal(torch.random.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1][1]) and random.getstate() == states[2]
    assert first.train_loss == second.train_loss and first.held_out.loss == second.held_out.loss
    assert first.train_loss != other.train_loss  # another data order


def test_default_config_fills_in_the_problems_setting():
    config = default_config("digits-mlp")
    assert (config.optimizer, config.hyperparameters, config.budget) == (
        "adam",
        {"lr": 0.003},
        Budget(epochs=15),
    )
    config = default_config(
        "digits-mlp", optimizer="sgd", lr=0.1, hyperparameters={"momentum": 0.9}, regime="online"
    )
    assert config.hyperparameters == {"lr": 0.1, "momentum": 0.9} and config.regime == "online"
    with pytest.raises(UnknownNameError, match="did you mean 'adagrad'"):
        default_config("digits-mlp", optimizer="adagard")


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "record.json"
    _files.write_text_atomic(path, "old")
    with pytest.raises(RuntimeError), _files.atomic_writer(path) as file:
        file.write(b"half of the new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_check_writable_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match=r"cannot write .*file/out\.json"):
        _files.check_writable(blocker / "out.json")
    with pytest.raises(OSError, match="it is a directory"):
        _files.check_writable(tmp_path)
    with pytest.raises(OSError, match=r"cannot write .*file/deeper/out\.json.*is a file, not a folder"):
        _files.check_writable(blocker / "deeper" / "out.json")
    assert (
        _files.check_writable(tmp_path / "new" / "deeper" / "out.json")
        == tmp_path / "new" / "deeper" / "out.json"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"], "nothing is created before the write"
    _files.write_text_atomic(tmp_path / "new" / "deeper" / "out.json", "{}")
    assert (tmp_path / "new" / "deeper" / "out.json").read_text() == "{}"


def fit_with_progress(progress):
    model = torch.nn.Linear(2, 1)
    x, y = torch.randn(32, 2), torch.randn(32, 1)
    return fit(
        model, torch.optim.SGD(model.parameters(), lr=0.1), (x, y),
        loss=torch.nn.functional.mse_loss, budget=Budget(steps=20), regime=FullBatch(), progress=progress,
    )  # fmt: skip


def test_fit_shows_its_progress_as_one_phase(capsys):
    fit_with_progress(True)  # stderr is captured: not a terminal, so one line when the run ends
    assert re.fullmatch(r"training: step 20, loss \S+ \(\d+\.\d s\)\n", capsys.readouterr().err)
    fit_with_progress(False)
    fit_with_progress(Phases(quiet=True))
    assert capsys.readouterr().err == ""
    terminal = io.StringIO()
    fit_with_progress(Phases(console=Console(file=terminal, force_terminal=True, width=100)))
    drawn = terminal.getvalue()
    assert "training" in drawn and "100%" in drawn and "step 20, loss" in drawn and "\x1b[" in drawn


def test_configs_and_records_pickle_for_worker_processes():
    import pickle

    config = RunConfig("saddle-noisy", "sgd", {"lr": 0.05}, budget=Budget(steps=5), observers=("path",))
    record = run(pickle.loads(pickle.dumps(config)))
    assert pickle.loads(pickle.dumps(record)).to_json() == record.to_json()


def test_skip_nonfinite_is_a_run_setting_not_a_hyperparameter():
    with pytest.raises(ValueError, match=r"RunConfig\.skip_nonfinite"):
        build_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1))], {"skip_nonfinite": True})
    record = run(RunConfig("saddle", "sgd", {"lr": 0.1}, budget=Budget(steps=3), skip_nonfinite=True))
    assert record.skipped_steps == 0 and record.updates == 3


def test_prequential_curve_is_the_running_mean_online_only():
    online = run(RunConfig("sparse-logreg", "adagrad", {"lr": 0.5}, regime="online", budget=Budget(steps=50)))
    curve = online.prequential_curve()
    assert len(curve) == 50 and curve[0] == online.train_loss[0]
    assert curve[-1] == pytest.approx(online.prequential_loss, rel=1e-12)
    batch = run(RunConfig("sparse-logreg", "adagrad", {"lr": 0.5}, budget=Budget(steps=5)))
    assert batch.prequential_curve() == [] and batch.prequential_loss is None


def test_atomic_writes_give_files_the_usual_mode(tmp_path):
    import os

    mask = os.umask(0o022)  # this test's own process state, restored below
    try:
        _files.write_text_atomic(tmp_path / "a.json", "{}")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize(
    ("state", "share", "size"),
    [({}, 0.0, 8), ({"lean_state": "bfloat16"}, 1.0, 4), ({"lean_state": "8bit"}, 1.0, 2)],
)
def test_the_lean_state_observer_records_which_share_of_the_parameters_kept_lean_state(state, share, size):
    config = RunConfig(
        "quadratic-deep",
        "adam",
        {"lr": 0.01, **state},
        budget=Budget(steps=2),
        problem_options={"dim": 4096, "rotated": False, "n_train": 8, "n_test": 8},
        observers=("lean-state",),
    )
    values = run(config).observations["lean-state"].value
    first, last = values[0], values[-1]
    assert first == [0.0, 0.0]  # before the first step there is no state
    assert last[0] == share and last[1] == pytest.approx(size, abs=0.05)  # step counts and block scales


@pytest.mark.skipif(_files.fcntl is None, reason="no flock: abandoned temporary files are left (documented)")
def test_a_write_removes_what_a_killed_writer_left_and_spares_a_live_one(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "run.ckpt"
    killed = subprocess.Popen(
        [sys.executable, "-c", "import time; from descentlab import _files\n"
         f"with _files.atomic_writer({str(path)!r}) as f:\n"
         "    f.write(b'half'); f.flush(); print('writing', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert killed.stdout.readline() == "writing\n"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    (abandoned,) = tmp_path.glob(".run.ckpt.*.tmp")
    _files.write_text_atomic(path, "first")
    assert abandoned.exists(), "a fresh temporary file may be one whose writer has not locked it yet"
    old = abandoned.stat().st_mtime - 2 * _files.ABANDONED_AFTER
    os.utime(abandoned, (old, old))
    with _files.atomic_writer(path) as live:  # another writer, still at work, its file as old
        live.write(b"live")
        (writing,) = set(tmp_path.glob(".run.ckpt.*.tmp")) - {abandoned}
        os.utime(writing, (old, old))
        _files.write_text_atomic(path, "second")
        assert not abandoned.exists() and writing.exists()
    assert path.read_text() == "live" and not writing.exists()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.skipif(_files.fcntl is None, reason="no flock: abandoned temporary files are left (documented)")
def test_only_our_own_abandoned_temporary_files_are_removed(tmp_path):
    import os

    old = 0.0  # 1970: past any age limit
    ours = tmp_path / ".data.0123abcd.tmp"
    others = [tmp_path / ".data.backup.tmp", tmp_path / ".data.json.0123abcd.tmp"]  # a user's; another file's
    for path in (ours, *others):
        path.write_text("")
        os.utime(path, (old, old))
    link = tmp_path / ".data.89abcdef.tmp"
    link.symlink_to(tmp_path / "elsewhere")
    fifo = tmp_path / ".data.fedcba98.tmp"
    os.mkfifo(fifo)  # opening it to read would wait for a writer
    _files.write_text_atomic(tmp_path / "data", "x")
    assert not ours.exists() and all(p.exists() for p in others) and link.is_symlink() and fifo.exists()


def test_a_link_to_nothing_where_a_folder_should_be_is_refused_before_the_run(tmp_path):
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    with pytest.raises(OSError, match=r"cannot write .*out/x\.json.*out' is a link to nothing"):
        _files.check_writable(tmp_path / "out" / "x.json")
