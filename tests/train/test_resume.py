"""A run killed at any point and resumed from its checkpoint is bit-identical to one never
interrupted, in all three regimes: killed in-process (an exception at chosen points, even in
the middle of a full-batch accumulation or an evaluation) and as a process (SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from descentlab import _serde
from descentlab.optim import Adam
from descentlab.train import (
    Budget,
    Every,
    FullBatch,
    GeneratedStream,
    MiniBatch,
    Online,
    RunConfig,
    RunRecord,
    accuracy,
    effective_lr,
    fit,
    load_checkpoint,
    parameter_path,
    run,
)
from helpers import same


class Crash(Exception):
    """Stands for the process dying."""


def without_times(record: RunRecord) -> dict:
    """The record as data, minus wall times (which differ between runs by nature)."""
    data = _serde.to_data(record)
    for key in ("seconds", "training_seconds"):
        data.pop(key)
    data["held_out"].pop("seconds")
    return data


DATA = torch.Generator().manual_seed(0)
X = torch.randn(60, 4, generator=DATA)
Y = (X[:, 0] - X[:, 2] > 0).long() + (X[:, 1] > 1).long()
HELD_OUT = (X[:20] + 0.1, Y[:20])


def sample(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(4, generator=generator)
    return x, (x[0] > 0).long()


class Replayable:
    """A stream without state_dict: a resumed run reads it again from the start and skips."""

    def __iter__(self):
        return iter(zip(X, Y))


# regime, budget, data, and after how many loss calls each attempt dies (the loss is
# called once per update, once per full-batch chunk and once per evaluation).
REGIMES = {
    "full-batch": (FullBatch(16), Budget(steps=12), lambda: (X, Y), (3, 30, 25)),
    "mini-batch": (MiniBatch(8), Budget(epochs=3), lambda: (X, Y), (3, 13, 9)),
    "online-data": (Online(), Budget(steps=75), lambda: (X, Y), (3, 30, 30)),  # crosses a pass at 60
    "online-stream": (Online(), Budget(steps=40), lambda: GeneratedStream(sample, seed=5), (3, 20, 15)),
    "online-replay": (Online(), Budget(steps=50), lambda: Replayable(), (3, 20, 20)),
}


def setup():
    """Model (with dropout), optimizer with state, and a scheduler, built the same way every time."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.Dropout(0.2), torch.nn.Tanh(), torch.nn.Linear(16, 3)
        )
    optimizer = Adam(model.parameters(), lr=0.02)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=30)
    return model, optimizer, scheduler


def train(regime_name, loss, checkpoint=None, resume=False):
    regime, budget, data, _ = REGIMES[regime_name]
    model, optimizer, scheduler = setup()
    record = fit(
        model,
        optimizer,
        data(),
        loss=loss,
        regime=regime,
        budget=budget,
        held_out=HELD_OUT,
        accuracy=accuracy,
        scheduler=scheduler,
        eval_every=Every(4),
        observers=[parameter_path(), effective_lr(every=Every(3))],
        seed=7,
        checkpoint=checkpoint,
        checkpoint_every=Every(5),
        resume=resume,
    )
    return record, model, optimizer, scheduler


def crash_after(calls: int):
    count = 0

    def loss(output, target):
        nonlocal count
        count += 1
        if count > calls:
            raise Crash
        return torch.nn.functional.cross_entropy(output, target)

    return loss


@pytest.mark.parametrize("regime_name", list(REGIMES))
def test_resume_after_crashes_is_bit_identical(regime_name, tmp_path):
    reference = train(regime_name, torch.nn.functional.cross_entropy)

    checkpoint = tmp_path / "run.ckpt"
    # Killed three times: before the first checkpoint, and twice later, wherever the loss
    # happens to be called then (an update, a full-batch chunk, or an evaluation).
    steps = []
    for calls in REGIMES[regime_name][3]:
        with pytest.raises(Crash):
            train(regime_name, crash_after(calls), checkpoint, resume=True)
        steps.append(load_checkpoint(checkpoint)["position"]["step"] if checkpoint.exists() else 0)
    assert steps[0] == 0 < steps[1] < steps[2] < reference[0].updates
    resumed = train(regime_name, torch.nn.functional.cross_entropy, checkpoint, resume=True)

    record, model, optimizer, scheduler = resumed
    assert without_times(record) == without_times(reference[0])
    assert same(model.state_dict(), reference[1].state_dict())
    assert same(optimizer.state_dict(), reference[2].state_dict())
    assert same(scheduler.state_dict(), reference[3].state_dict())
    assert not record.diverged and record.updates == len(record.train_loss) > 0


def test_resuming_a_finished_run_returns_its_record_and_a_larger_budget_extends_it(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    first = train("mini-batch", torch.nn.functional.cross_entropy, checkpoint)[0]
    again = train("mini-batch", torch.nn.functional.cross_entropy, checkpoint, resume=True)[0]
    assert without_times(again) == without_times(first)

    model, optimizer, scheduler = setup()
    longer = fit(
        model, optimizer, (X, Y), loss=torch.nn.functional.cross_entropy, regime=MiniBatch(8), budget=Budget(epochs=4),
        held_out=HELD_OUT, accuracy=accuracy, scheduler=scheduler, eval_every=Every(4),
        observers=[parameter_path(), effective_lr(every=Every(3))], seed=7, checkpoint=checkpoint, resume=True,
    )  # fmt: skip
    assert longer.updates == 32 and longer.train_loss[:24] == first.train_loss


def test_budgets_extended_twice_give_the_record_of_the_longest_run_from_the_start(tmp_path):
    """Each extension takes back the end's evaluation and evaluates on; the checkpoint then holds the
    new entries in the old one's place, even where the column has grown past its old length."""
    checkpoint = tmp_path / "run.ckpt"

    def go(steps: int, resume: bool, path=checkpoint) -> RunRecord:
        model, optimizer, _ = setup()
        return fit(
            model, optimizer, (X, Y), loss=torch.nn.functional.cross_entropy, regime=FullBatch(),
            budget=Budget(steps=steps), held_out=HELD_OUT, eval_every=Every(3),
            observers=[effective_lr(every=Every(4))], seed=7, checkpoint=path, resume=resume,
            checkpoint_every=Every(1000),  # at the end only: nothing written between taking back and after
        )  # fmt: skip

    go(10, False)
    go(14, True)  # the end's evaluation at 10 taken back, then 12 in its place and 14 at the end
    extended = go(20, True)  # read from the checkpoint written at 14
    fresh = go(20, False, tmp_path / "fresh.ckpt")
    assert extended.held_out.step == fresh.held_out.step == [0, 3, 6, 9, 12, 15, 18, 20]
    assert without_times(extended) == without_times(fresh)


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    train("mini-batch", torch.nn.functional.cross_entropy, checkpoint)
    model, optimizer, _ = setup()
    with pytest.raises(ValueError, match=r"another run's .*regime"):
        fit(model, optimizer, (X, Y), loss=torch.nn.functional.cross_entropy, regime=Online(), budget=Budget(steps=3),
            seed=7, checkpoint=checkpoint, resume=True)  # fmt: skip
    with pytest.raises(ValueError, match="seed: checkpoint 7, this run 8"):
        fit(model, optimizer, (X, Y), loss=torch.nn.functional.cross_entropy, regime=MiniBatch(8), budget=Budget(steps=3),
            seed=8, checkpoint=checkpoint, resume=True)  # fmt: skip


def test_checkpoints_load_with_weights_only_and_bad_files_are_named(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    train("full-batch", torch.nn.functional.cross_entropy, checkpoint)
    payload = torch.load(checkpoint, weights_only=True)
    assert payload["position"]["step"] == 12 and RunRecord.from_json(payload["record"]).updates == 12
    # no temporary files left behind; the record's columns are in the columns file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt", "run.ckpt.columns"]

    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"run\.ckpt' is not a readable run checkpoint"):
        load_checkpoint(checkpoint)
    torch.save({"something": "else"}, checkpoint)
    with pytest.raises(ValueError, match="is not a descentlab run checkpoint"):
        load_checkpoint(checkpoint)
    whole = {k: v for k, v in payload.items() if k != "identity"}
    torch.save(whole, checkpoint)
    with pytest.raises(ValueError, match="is not a complete run checkpoint: it lacks identity"):
        load_checkpoint(checkpoint)
    torch.save(payload, checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:3000])  # cut short, as a full disk leaves it
    with pytest.raises(
        ValueError, match=r"run\.ckpt' is not a readable run checkpoint \(damaged or cut short"
    ):
        load_checkpoint(checkpoint)


def test_a_checkpoint_writes_what_changed_not_the_whole_record(tmp_path, monkeypatch):
    """The bytes each checkpoint writes stay flat as the run grows (the columns are appended)."""
    from descentlab.train import loop

    written = []
    save = loop.save_checkpoint

    def measured(path, payload):
        columns = tmp_path / "run.ckpt.columns"
        before = columns.stat().st_size if columns.exists() else 0
        # the columns file was appended just before: count that chunk and the rewritten file
        save(path, payload)
        written.append(path.stat().st_size + payload["columns"]["bytes"] - written_columns[-1])
        written_columns.append(payload["columns"]["bytes"])
        assert before == payload["columns"]["bytes"]

    written_columns = [0]
    monkeypatch.setattr(loop, "save_checkpoint", measured)
    model, optimizer, _ = setup()
    fit(model, optimizer, GeneratedStream(sample, seed=5), loss=torch.nn.functional.cross_entropy,
        regime=Online(), budget=Budget(steps=2000), eval_every=Every(100), seed=7,
        checkpoint=tmp_path / "run.ckpt", checkpoint_every=Every(100))  # fmt: skip
    assert len(written) == 21  # every 100 updates, and at the end
    # the 20th checkpoint (2000 updates in the record) writes no more than the 2nd (200)
    assert written[19] <= 1.05 * written[1], written


def test_a_run_killed_between_appending_columns_and_writing_its_checkpoint_resumes_exactly(
    tmp_path, monkeypatch
):
    from descentlab.train import loop

    reference = train("online-stream", torch.nn.functional.cross_entropy)
    checkpoint = tmp_path / "run.ckpt"
    save, calls = loop.save_checkpoint, []

    def dies_at_the_third(path, payload):
        calls.append(1)
        if len(calls) == 3:
            raise Crash  # the columns were appended; the checkpoint still holds the second save
        save(path, payload)

    monkeypatch.setattr(loop, "save_checkpoint", dies_at_the_third)
    with pytest.raises(Crash):
        train("online-stream", torch.nn.functional.cross_entropy, checkpoint, resume=True)
    monkeypatch.setattr(loop, "save_checkpoint", save)
    stale = (tmp_path / "run.ckpt.columns").stat().st_size
    assert stale > load_checkpoint(checkpoint)["columns"]["bytes"], "the columns file ran ahead"
    record = train("online-stream", torch.nn.functional.cross_entropy, checkpoint, resume=True)[0]
    assert without_times(record) == without_times(reference[0])


def test_a_missing_or_cut_columns_file_is_named(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    train("mini-batch", torch.nn.functional.cross_entropy, checkpoint)
    columns = tmp_path / "run.ckpt.columns"
    columns.write_bytes(columns.read_bytes()[:-10])
    with pytest.raises(
        ValueError, match=r"columns file .*run\.ckpt\.columns' has \d+ bytes; the checkpoint needs"
    ):
        train("mini-batch", torch.nn.functional.cross_entropy, checkpoint, resume=True)
    columns.unlink()
    with pytest.raises(ValueError, match=r"needs its columns file .* which is missing"):
        train("mini-batch", torch.nn.functional.cross_entropy, checkpoint, resume=True)


def test_a_damaged_columns_file_is_named_with_its_line(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    train("mini-batch", torch.nn.functional.cross_entropy, checkpoint)
    columns = tmp_path / "run.ckpt.columns"
    data = bytearray(columns.read_bytes())
    data[20:22] = b"xx"
    columns.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"columns file .*run\.ckpt\.columns' is damaged at line 1"):
        train("mini-batch", torch.nn.functional.cross_entropy, checkpoint, resume=True)


def test_resuming_with_a_budget_the_checkpoint_went_past_is_refused(tmp_path):
    # Else the record would say "budget 10 steps" and hold the checkpoint's 24 updates.
    checkpoint = tmp_path / "run.ckpt"
    train("mini-batch", torch.nn.functional.cross_entropy, checkpoint)
    model, optimizer, scheduler = setup()
    with pytest.raises(ValueError, match=r"went past this run's budget \(24 updates made, against 10\)"):
        fit(model, optimizer, (X, Y), loss=torch.nn.functional.cross_entropy, regime=MiniBatch(8),
            budget=Budget(steps=10), held_out=HELD_OUT, accuracy=accuracy, scheduler=scheduler,
            eval_every=Every(4), observers=[parameter_path(), effective_lr(every=Every(3))], seed=7,
            checkpoint=checkpoint, resume=True)  # fmt: skip


def test_run_resumes_from_its_config(tmp_path):
    config = RunConfig(
        "digits-mlp", "sgd", {"lr": 0.05, "momentum": 0.9}, budget=Budget(epochs=2), eval_every=Every(10)
    )
    reference = run(config)
    checkpoint = tmp_path / "digits.ckpt"
    partial = run(
        RunConfig(**{**config.__dict__, "budget": Budget(steps=17)}),
        checkpoint=checkpoint,
        checkpoint_every=Every(5),
    )
    assert partial.updates == 17
    resumed = run(config, checkpoint=checkpoint, resume=True)
    assert without_times(resumed) == without_times(reference)
    other = RunConfig(**{**config.__dict__, "hyperparameters": {"lr": 0.1}})
    # the field that differs, not two whole run identities
    with pytest.raises(
        ValueError,
        match=r"another run's \(hyperparameters\.lr: checkpoint 0\.05, this run 0\.1; "
        r"hyperparameters\.momentum: checkpoint 0\.9, this run not set\)$",
    ):
        run(other, checkpoint=checkpoint, resume=True)


# -- killed as a process ----------------------------------------------------------------------------


KILLED = {
    "full-batch": [
        "--problem",
        "quadratic-deep",
        "--regime",
        "full-batch",
        "--steps",
        "400",
        "--chunk-size",
        "300",
    ],
    "mini-batch": [
        "--problem",
        "sparse-logreg",
        "--regime",
        "mini-batch",
        "--epochs",
        "6",
        "--checkpoint-every",
        "7",
    ],
    "online": [
        "--problem",
        "sparse-logreg",
        "--regime",
        "online",
        "--steps",
        "2500",
        "--checkpoint-every",
        "50",
    ],
}


def cli(args, **kwargs):
    # One thread, as in the in-process reference: thread counts change float reductions.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "descentlab", "run", *args], env=env, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("regime", list(KILLED))
def test_sigkill_then_resume_is_bit_identical(regime, tmp_path):
    out, checkpoint = tmp_path / "record.json", tmp_path / "run.ckpt"
    args = [*KILLED[regime], "--out", str(out), "--checkpoint", str(checkpoint)]
    process = cli(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.2)  # let it run on past the first checkpoint, to somewhere in the middle
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed: make it longer"
    assert not out.exists()  # nothing half-written
    killed_at = load_checkpoint(checkpoint)["position"]["step"]

    resumed = cli([*args, "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    record = RunRecord.from_json(out.read_text())
    assert 0 < killed_at < record.updates

    reference = run(record.config)
    assert without_times(record) == without_times(reference)
    assert "diverged    no" in stdout
