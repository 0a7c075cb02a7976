"""The store: what a run row holds, no duplicates, commit order, WAL, and files it must refuse untouched."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import time

import pytest

from descentlab.lab import SCHEMA_VERSION, Store, StoredRun, StoreError, execute, run_key
from descentlab.train import Budget, RunConfig, run
from sweepcases import mixed, store_of_version, tiny, without_wall_times


def stored(config: RunConfig, experiment: str = "e") -> StoredRun:
    return execute(config).stored(config, experiment)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_comes_back_with_everything_it_was_stored_with(tmp_path):
    runs = [stored(c) for c in mixed()]
    with Store(tmp_path / "lab.sqlite") as store:
        assert all(store.add(r) for r in runs)
    with Store(tmp_path / "lab.sqlite", create=False) as store:
        back = store.runs("e")
    assert [r.key for r in back] == [r.key for r in runs]  # commit order
    for before, after in zip(runs, back):
        assert (after.config, after.status, after.error, after.versions, after.finished_at) == (
            before.config, before.status, before.error, before.versions, before.finished_at,
        )  # fmt: skip
        if before.record is None:
            assert (
                after.record is None and after.status == "failed" and after.error.startswith("ValueError: ")
            )
        else:  # float for float, wall times included
            assert after.record.to_json() == before.record.to_json()
    assert sorted(set(back[0].versions)) == ["descentlab", "platform", "python", "torch"]
    assert [r.status for r in back].count("diverged") == 1


def test_add_never_duplicates_and_experiments_are_separate(tmp_path):
    first, second = stored(tiny(0.01)), stored(tiny(0.02))
    with Store(tmp_path / "lab.sqlite") as store:
        assert store.add(first) and store.add(second)
        assert not store.add(stored(tiny(0.01)))  # the same configuration again: refused
        assert store.add(stored(tiny(0.01), experiment="other"))  # another experiment: its own run
        assert len(store) == 3
        assert store.keys("e") == {first.key, second.key} and store.keys("other") == {first.key}
        assert store.keys() == {first.key, second.key}
        assert store.experiments() == ["e", "other"]
        assert store.runs("e")[0].finished_at == first.finished_at  # the first one stays
        assert store.get("e", [second.key, "nope"]) == {second.key: store.runs("e")[1]}


def test_only_a_failed_run_can_be_replaced(tmp_path):
    failed = stored(tiny(0.01, problem_options={"n_samples": -1}))
    finished = stored(tiny(0.01))
    with Store(tmp_path / "lab.sqlite") as store:
        assert store.add(failed) and failed.status == "failed"
        retried = dataclasses.replace(finished, key=failed.key, config=failed.config)
        assert not store.add(retried)  # without replace_failed, the failure stays
        assert store.add(retried, replace_failed=True)
        assert [r.status for r in store.runs()] == ["finished"]
        assert not store.add(
            dataclasses.replace(failed, finished_at=1.0), replace_failed=True
        )  # only failures
        assert [r.finished_at for r in store.runs()] == [finished.finished_at]


def test_the_database_is_in_wal_mode_with_the_schema_version(tmp_path):
    Store(tmp_path / "lab.sqlite").close()
    db = sqlite3.connect(tmp_path / "lab.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_run_key_identifies_a_configuration():
    config = RunConfig("saddle", "adam", {"lr": 0.01, "betas": (0.9, 0.99)}, budget=Budget(epochs=2))
    # A stored key must never change meaning: stores on disk are resumed by it.
    assert run_key(config) == "2fc9dfcec0619d984190ef4995a372047965eab441cb0bfd74adad5078ac630c"
    assert run_key(RunConfig.from_json(config.to_json())) == run_key(config)
    same = RunConfig("saddle", "adam", {"betas": [0.9, 0.99], "lr": 0.01}, budget=Budget(epochs=2))
    assert run_key(same) == run_key(config)
    assert run_key(tiny(1)) == run_key(tiny(1.0))  # equal configurations, equal keys
    others = [tiny(0.03), tiny(0.03, seed=1), tiny(0.03, steps=31), tiny(0.03, problem="saddle"), tiny(0.3)]
    assert len({run_key(c) for c in others}) == len(others)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("not a database at all, but long enough to have a header" * 10),
         "is not a descentlab store"),
        (lambda p: sqlite3.connect(p).execute("CREATE TABLE notes (text)").connection.commit(),
         "is an SQLite database of another program"),
        (lambda p: store_of_version(p), f"was written with store schema version 99; this descentlab reads version {SCHEMA_VERSION}"),
    ],
    ids=["not-sqlite", "another-program", "another-version"],
)  # fmt: skip
def test_files_that_are_not_stores_of_this_version_are_refused_untouched(tmp_path, make, message):
    path = tmp_path / "lab.sqlite"
    make(path)
    before, mtime = digest(path), path.stat().st_mtime_ns
    with pytest.raises(StoreError, match=message) as info:
        Store(path)
    assert "\n" not in str(info.value)
    assert (digest(path), path.stat().st_mtime_ns) == (before, mtime)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.sqlite"]


def test_a_reader_does_not_create_a_store(tmp_path):
    with pytest.raises(StoreError, match="no descentlab store at"):
        Store(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()


def test_an_unwritable_place_is_an_os_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=r"cannot create store .*file/lab.sqlite': .*file' is not a folder"):
        Store(tmp_path / "file" / "lab.sqlite")
    with Store(tmp_path / "new" / "folder" / "lab.sqlite") as store:  # missing folders are made
        assert store.runs() == []


def test_an_empty_file_becomes_a_store(tmp_path):
    (tmp_path / "lab.sqlite").touch()  # e.g. made by mktemp
    with Store(tmp_path / "lab.sqlite") as store:
        assert store.runs() == []


def test_a_stored_run_checks_its_status():
    record = run(tiny())
    with pytest.raises(ValueError, match="status must be one of"):
        StoredRun("k", "e", tiny(), "done", record, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a failed run has no record"):
        StoredRun("k", "e", tiny(), "failed", record, "boom")
    finished = StoredRun.finished(tiny(), record, experiment="e")
    assert finished.status == "finished" and finished.key == run_key(tiny())
    assert abs(finished.finished_at - time.time()) < 60
    assert without_wall_times(finished.record) == without_wall_times(record)
