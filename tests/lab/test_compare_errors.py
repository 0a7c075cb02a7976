"""Bad input to descentlab compare and descentlab report: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from descentlab.cli import main
from descentlab.lab.compare import MANIFEST, Manifest
from descentlab.lab.store import STORE_FILENAME
from descentlab.lab.suite import get_suite
from sweepcases import store_of_version


def fails(argv, capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--suite", "defualt"], "unknown suite 'defualt'; did you mean 'default'?"),
        (["--suite", "tiny", "--claims", "C33,C1"], "did you mean 'C3'"),
        (["--suite", "tiny", "--problems", "sadle"], "did you mean 'saddle'?"),
        (["--quick", "--suite", "tiny"], "--quick is --suite quick"),
        (["--suite", "tiny", "--workers", "0"], "--workers must be a positive integer"),
        (["--suite", "tiny", "--address", "localhost:6379"], "--address is for --executor ray"),
        (["--suite", "tiny", "--claims", ","], "expected comma-separated names"),
        (["--suite", "tiny", "--method", "mine=torch.optim:SGD"], "give the roles it fills"),
        (["--suite", "tiny", "--method", "mine=no.such.module:Opt;role=adam"], "cannot import module"),
        (
            ["--suite", "tiny", "--method", "a=torch.optim:SGD;role=momentum", "--method", "a=sgd;role=adam"],
            "a method name is given twice",
        ),
        (["--suite", "tiny", "--methods-file", "/nonexistent/methods.toml"], "no such methods file"),
        (["--suite", "tiny", "--lang", "fr"], "--lang must be one of en, zh; received --lang='fr'"),
    ],
)
def test_bad_names_and_flags_are_one_line_and_write_nothing(flags, message, tmp_path, capsys):
    out = tmp_path / "out"
    line = fails(["compare", "--out", str(out), *flags], capsys)
    assert line.startswith("descentlab compare: error: ") and message in line
    assert not out.exists()


def test_an_unwritable_output_directory_is_refused_before_anything_runs(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    line = fails(["compare", "--suite", "tiny", "--out", str(blocker / "out")], capsys)
    assert "cannot write" in line and str(blocker) in line
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


@pytest.mark.parametrize("command", ["compare", "report"])
def test_a_store_of_another_version_is_refused_and_left_as_it_was(command, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    store_of_version(out / STORE_FILENAME, 99)
    if command == "report":  # a comparison directory whose store is of another version
        (out / MANIFEST).write_text(Manifest(get_suite("tiny"), "0", "today").to_json())
    before = tree(out)
    argv = ["compare", "--suite", "tiny", "--out", str(out)] if command == "compare" else ["report", str(out)]
    line = fails(argv, capsys)
    assert "schema version 99" in line
    assert tree(out) == before


def test_report_refuses_an_unknown_language_before_reading_anything(tmp_path, capsys):
    line = fails(["report", str(tmp_path), "--lang", "de"], capsys)
    assert line == "descentlab report: error: --lang must be one of en, zh; received --lang='de'"
    assert list(tmp_path.iterdir()) == []


def test_report_needs_a_comparison_directory(tmp_path, capsys):
    assert "no such directory" in fails(["report", str(tmp_path / "nowhere")], capsys)
    assert f"{MANIFEST} is missing" in fails(["report", str(tmp_path)], capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_comparison_of_an_older_format_is_refused_with_what_to_do(tmp_path, capsys):
    (tmp_path / MANIFEST).write_text('{"format": 1, "suite": {}}')
    line = fails(["report", str(tmp_path)], capsys)
    assert "has format 1" in line and "use a new --out directory" in line


def test_report_leaves_an_empty_store_file_as_it_was(tmp_path, capsys):
    (tmp_path / MANIFEST).write_text(Manifest(get_suite("tiny"), "0", "today").to_json())
    (tmp_path / STORE_FILENAME).write_bytes(b"")
    assert "no descentlab store at" in fails(["report", str(tmp_path)], capsys)
    assert (tmp_path / STORE_FILENAME).read_bytes() == b""
