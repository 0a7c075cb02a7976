"""The store: what a run row holds, no duplicates, commit order, WAL, files it must refuse untouched,
the defaults version, damaged files, and results that are not one configuration."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import json
import re
import sqlite3
import time

import numpy as np
import pytest

from descentlab import __version__
from descentlab.cli import main
from descentlab.lab import (
    SCHEMA_VERSION,
    SerialExecutor,
    Store,
    StoredRun,
    StoreError,
    execute,
    run_key,
    run_sweep,
)
from descentlab.lab import store as store_module
from descentlab.lab.store import APPLICATION_ID, DEFAULTS_VERSION, default_values, defaults_digest
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


# -- the defaults version -----------------------------------------------------------------

# The digest of every default under each defaults version. A default that changes
# without a new version would silently give stored keys another meaning.
DEFAULTS_DIGESTS = {
    # Version 1's digest changed once without a new version, on purpose: RunConfig gained
    # held_out="all", whose default is exactly what every run did before it existed, and run_key
    # omits fields at their defaults, so every stored key still means what it meant.
    1: "3c3d293ad47381b2f56c1437ef44e1fa67a4fbfe2d4c24596a54e19f1f25b180",
}


def test_no_default_changes_without_a_new_defaults_version():
    digest_now = defaults_digest()
    assert DEFAULTS_DIGESTS.get(DEFAULTS_VERSION) == digest_now, (
        f"a default that gives stored configurations their meaning changed (a RunConfig field, a problem "
        f"option, an optimizer argument; see default_values()). Bump DEFAULTS_VERSION in "
        f"descentlab/lab/store.py to {DEFAULTS_VERSION + 1} and add {DEFAULTS_VERSION + 1}: "
        f"{digest_now!r} to DEFAULTS_DIGESTS here. Stores written under version {DEFAULTS_VERSION} will "
        f"then be refused (their runs meant other configurations); say so in the release notes."
    )


def test_the_digest_covers_each_kind_of_default():
    values = default_values()
    assert values["config"]["RunConfig"]["batch_size"] == 32
    assert values["config"]["RunConfig"]["budget"] == {
        "steps": None,
        "epochs": 1,
        "samples": None,
        "seconds": None,
    }
    assert values["config"]["MiniBatch"]["shuffle"] is True  # what regime="mini-batch" builds
    assert values["problems"]["rosenbrock-noisy"]["noise"] == "gaussian"  # fixed by the registry entry
    assert values["problems"]["mnist1d-mlp"]["data_seed"] == 42
    assert values["surfaces"]["rosenbrock"]["start"] == [-1.2, 1.0]  # what start=None means
    assert (
        values["optimizers"]["adam"]["eps"] == 1e-8 and values["optimizers"]["adamw"]["weight_decay"] == 1e-2
    )
    assert "params" not in values["optimizers"]["sgd"]
    assert len(defaults_digest()) == 64 and defaults_digest() == defaults_digest()


def test_version_1_keys_are_the_keys_stores_already_hold():
    config = RunConfig("saddle", "adam", {"lr": 0.01, "betas": (0.9, 0.99)}, budget=Budget(epochs=2))
    # The key this configuration had before keys carried a version: every store on disk holds such keys.
    v1 = "2fc9dfcec0619d984190ef4995a372047965eab441cb0bfd74adad5078ac630c"
    assert run_key(config, defaults_version=1) == v1
    # A later version is mixed into the hash: its keys never name runs made under version 1.
    v2 = "914034b3183e8274bba762f4a4e04b73143218da5fc22c8057df6d44ea28f618"
    assert run_key(config, defaults_version=2) == v2
    assert run_key(config) == run_key(config, defaults_version=DEFAULTS_VERSION)
    with pytest.raises(ValueError, match="defaults_version must be an integer >= 1; received 0"):
        run_key(config, defaults_version=0)


def meta(path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT name, value FROM meta").fetchall())
    finally:
        db.close()


def test_a_store_records_its_defaults_version_and_who_created_it(tmp_path):
    Store(tmp_path / "lab.sqlite").close()
    assert meta(tmp_path / "lab.sqlite") == {
        "defaults_version": str(DEFAULTS_VERSION),
        "created_by": __version__,
    }


def test_a_store_of_other_defaults_is_refused_untouched(tmp_path):
    path = tmp_path / "lab.sqlite"
    with Store(path) as store:
        store.add(stored(tiny()))
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE meta SET value = ? WHERE name = 'defaults_version'", (str(DEFAULTS_VERSION + 1),))
    db.close()
    before, mtime = digest(path), path.stat().st_mtime_ns
    with pytest.raises(StoreError) as info:
        Store(path)
    message = str(info.value)
    assert message.startswith(f"{str(path)!r} was written under defaults version {DEFAULTS_VERSION + 1} ")
    assert f"(by descentlab {__version__}); this descentlab ({__version__}) uses defaults version " in message
    assert f"version {DEFAULTS_VERSION}, under which its runs would mean other configurations" in message
    assert message.endswith(
        f"use a new --out directory (or --store file), or descentlab {__version__} to read it"
    )
    assert "\n" not in message
    assert (digest(path), path.stat().st_mtime_ns) == (before, mtime)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.sqlite"]


# A store as descentlab wrote it before schema version 2: runs only, no meta table.
SCHEMA_1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, experiment TEXT NOT NULL, key TEXT NOT NULL,
    problem TEXT NOT NULL, optimizer TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('finished', 'diverged', 'failed')),
    config TEXT NOT NULL, record TEXT, error TEXT, versions TEXT NOT NULL, finished_at REAL NOT NULL,
    UNIQUE (experiment, key)
);
CREATE INDEX runs_by_problem ON runs (experiment, problem, optimizer);
"""


def store_of_schema_1(path, runs: list[StoredRun]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(f"{SCHEMA_1}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1;")
    db.execute("PRAGMA journal_mode = WAL")
    for r in runs:
        db.execute(
            "INSERT INTO runs (experiment, key, problem, optimizer, seed, status, config, record, error, "
            "versions, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (r.experiment, r.key, r.config.problem, r.config.optimizer, r.config.seed, r.status,
             r.config.to_json(), r.record.to_json(), r.error, json.dumps(r.versions), r.finished_at),
        )  # fmt: skip
    db.close()


def test_a_schema_1_store_is_migrated_in_place_and_its_runs_stay_valid(tmp_path):
    path = tmp_path / "lab.sqlite"
    configs = [tiny(0.01), tiny(0.02)]
    old = [stored(c) for c in configs]
    store_of_schema_1(path, old)
    with Store(path) as store:
        assert store.runs("e") == old
        # Its keys are today's keys: a sweep of the same configurations finds them and runs nothing.
        assert run_sweep(store, "e", configs, executor=SerialExecutor()) == old
        assert store.put_result("e", "batch", b"new table")
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    assert meta(path) == {"defaults_version": "1"}
    with Store(path, create=False) as store:  # migrated once; opened again, as it is
        assert store.runs("e") == old and store.get_result("e", "batch") == b"new table"


def test_a_schema_1_store_is_refused_untouched_by_a_descentlab_of_later_defaults(tmp_path, monkeypatch):
    path = tmp_path / "lab.sqlite"
    store_of_schema_1(path, [stored(tiny())])
    before = digest(path)
    monkeypatch.setattr(store_module, "DEFAULTS_VERSION", 2)  # what a later descentlab would say
    with pytest.raises(StoreError, match=r"was written under defaults version 1; this descentlab .* uses "
                       r"defaults version 2, .*or the descentlab that wrote it to read it"):  # fmt: skip
        Store(path)
    assert digest(path) == before


# -- damaged stores -------------------------------------------------------------------------


def damaged_message(path) -> str:
    return (
        f"{str(path)!r} is damaged (SQLite: database disk image is malformed); "
        f'check it with: sqlite3 {path} "PRAGMA integrity_check"'
    )


@pytest.fixture
def healthy(tmp_path):
    """A store of a few runs and a result, and what SQLite says of its pages."""
    path = tmp_path / "lab.sqlite"
    with Store(path) as store:
        for config in [tiny(0.01), tiny(0.02), tiny(0.03)]:
            store.add(stored(config))
        store.put_result("e", "batch", b"\x00" * 20_000)
    db = sqlite3.connect(path)
    size = db.execute("PRAGMA page_size").fetchone()[0]
    roots = dict(db.execute("SELECT name, rootpage FROM sqlite_schema WHERE rootpage > 0").fetchall())
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.sqlite"]  # all in the main file
    return path, size, roots, pages


def scribble(path, page_size: int, pages) -> None:
    """Overwrite the start of each page (its b-tree header) with bytes no SQLite page has."""
    data = bytearray(path.read_bytes())
    for page in pages:
        data[(page - 1) * page_size : (page - 1) * page_size + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["a-middle-page", "truncated"])
def test_a_damaged_store_is_refused_on_open_in_one_line_untouched(healthy, damage):
    path, size, _, pages = healthy
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: (pages // 2) * size + 100])
    else:
        scribble(path, size, [pages // 2])
    before = digest(path)
    for create in (True, False):
        with pytest.raises(StoreError) as info:
            Store(path, create=create)
        assert str(info.value) == damaged_message(path)
    assert digest(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["lab.sqlite"]


def test_every_read_and_write_of_a_store_damaged_while_open_is_one_line(healthy):
    path, size, roots, _ = healthy
    store = Store(path)
    # Damage the root page of every table and index but meta's (read on opening, so cached).
    scribble(path, size, [page for name, page in roots.items() if "meta" not in name])
    calls = {
        "runs": lambda: store.runs(),
        "runs(e)": lambda: store.runs("e"),
        "get": lambda: store.get("e", [run_key(tiny(0.01))]),
        "keys": lambda: store.keys(),
        "keys(e)": lambda: store.keys("e"),
        "experiments": lambda: store.experiments(),
        "len": lambda: len(store),
        "add": lambda: store.add(stored(tiny(0.04))),
        "put_result": lambda: store.put_result("e", "another", b"1"),
        "get_result": lambda: store.get_result("e", "batch"),
        "result_keys": lambda: store.result_keys(),
    }
    for name, call in calls.items():
        with pytest.raises(StoreError) as info:
            call()
        assert str(info.value) == damaged_message(path), name
    store.close()


def test_the_cli_says_a_store_is_damaged_in_one_line(healthy, capsys):
    path, size, _, pages = healthy
    scribble(path, size, [pages // 2])
    spec = path.parent / "demo.toml"
    spec.write_text('name = "e"\nproblem = "quadratic2d"\nregime = "full-batch"\nbudget = { steps = 5 }\n'
                    "[optimizers.sgd]\nlr = [0.01]\n")  # fmt: skip
    assert main(["sweep", str(spec), "--store", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"descentlab sweep: error: {damaged_message(path)}\n"
    assert captured.out == ""


# -- results that are not one configuration ------------------------------------------------


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_a_result_comes_back_byte_for_byte_and_the_first_write_wins(tmp_path):
    path = tmp_path / "lab.sqlite"
    losses = np.linspace(0.0, 1.0, 6000).reshape(3, 2000)  # many 2-D runs computed as one tensor
    payload = npz(losses=losses)
    with Store(path) as store:
        assert store.put_result("grid", "lr-0.1", payload, meta={"runs": 3, "lr": 0.1})
        assert not store.put_result("grid", "lr-0.1", b"a second write")  # the first one stays
        assert store.put_result("grid", "lr-0.2", bytearray(b"2"))
        assert store.put_result("other", "lr-0.1", b"3")
        assert store.get_result("grid", "missing") is None and store.get_result("nope", "lr-0.1") is None
        # Results are not runs.
        assert len(store) == 0 and store.keys() == set() and store.experiments() == []
    with Store(path, create=False) as store:  # on disk
        assert np.array_equal(np.load(io.BytesIO(store.get_result("grid", "lr-0.1")))["losses"], losses)
        assert store.get_result("grid", "lr-0.2") == b"2"
        assert store.result_keys("grid") == {"lr-0.1", "lr-0.2"} and store.result_keys("other") == {"lr-0.1"}
        assert store.result_keys() == {"lr-0.1", "lr-0.2"} and store.result_keys("none") == set()
    db = sqlite3.connect(path)
    row = db.execute(
        "SELECT meta, versions, finished_at FROM results WHERE key = 'lr-0.1' AND experiment = 'grid'"
    )
    kept, stamped, at = row.fetchone()
    assert json.loads(kept) == {"lr": 0.1, "runs": 3}
    assert sorted(json.loads(stamped)) == ["descentlab", "platform", "python", "torch"]
    assert abs(at - time.time()) < 60
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


@pytest.mark.parametrize("args, kwargs, message", [
    (("", "k", b""), {}, "experiment must be a non-empty string; received ''"),
    (("e", None, b""), {}, "key must be a non-empty string; received None"),
    (("e", "k", "text"), {}, "payload must be bytes; received a str"),
    (("e", "k", b""), {"meta": [1]}, "meta must be a dict or None; received a list"),
    (("e", "k", b""), {"meta": {"x": float("nan")}}, "meta must hold JSON values only"),
    (("e", "k", b""), {"meta": {"x": object()}}, "meta must hold JSON values only"),
])  # fmt: skip
def test_put_result_checks_its_arguments_before_writing(tmp_path, args, kwargs, message):
    with Store(tmp_path / "lab.sqlite") as store:
        with pytest.raises(ValueError, match=f"Store.put_result: {re.escape(message)}"):
            store.put_result(*args, **kwargs)
        assert store.result_keys() == set()


def test_an_argument_added_with_the_behaviour_it_replaces_leaves_the_digest_alone(monkeypatch):
    from descentlab.lab import store as store_module
    from descentlab.optim import Adam

    assert "lean_state" not in default_values()["optimizers"]["adam"]  # None: full precision, as before
    digest = defaults_digest()
    # were its default to change, the digest would change (and the test above ask for a new version)
    signature = inspect.signature(Adam.__init__)
    changed = signature.replace(
        parameters=[
            p.replace(default="8bit") if p.name == "lean_state" else p for p in signature.parameters.values()
        ]
    )
    monkeypatch.setattr(Adam.__init__, "__signature__", changed, raising=False)
    assert default_values()["optimizers"]["adam"]["lean_state"] == "8bit"
    assert defaults_digest() != digest
    assert store_module._NEUTRAL["lean_state"] is None


def test_a_problem_option_added_with_the_behaviour_it_replaces_leaves_the_digest_alone(monkeypatch):
    import dataclasses

    from descentlab.problems import NoisyQuadratic

    assert "rotated" not in default_values()["problems"]["quadratic-deep"]  # True: rotated, as before
    digest = defaults_digest()
    field = next(f for f in dataclasses.fields(NoisyQuadratic) if f.name == "rotated")
    monkeypatch.setattr(field, "default", False)  # were its default to change, the digest would change
    assert default_values()["problems"]["quadratic-deep"]["rotated"] is False
    assert defaults_digest() != digest
