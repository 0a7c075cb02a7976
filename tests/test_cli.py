"""The command line: ``descentlab list`` and the error convention (exit code 2, one line)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import descentlab
from descentlab import __version__
from descentlab.cli import main
from descentlab.optim import OPTIMIZERS


def test_list_names_every_optimizer_with_one_line(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for name, cls in OPTIMIZERS.items():
        assert name in lines, name
        assert cls.summary in lines[name]


@pytest.mark.slow
def test_the_installed_command_runs():
    done = subprocess.run(
        [sys.executable, "-m", "descentlab", "list"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "adam" in done.stdout
    # and the console script the package installs, next to this interpreter
    script = Path(sys.executable).with_name("descentlab")
    assert script.exists(), f"the console script is not installed: {script}"
    installed = subprocess.run([str(script), "list"], capture_output=True, text=True, check=False)
    assert installed.returncode == 0 and installed.stdout == done.stdout, installed.stderr


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert __version__ in capsys.readouterr().out


def test_version_is_the_installed_one_and_a_source_tree_reports_it_too(tmp_path):
    """The bench and the store record the version: it must not depend on how descentlab was found."""
    from importlib.metadata import version

    assert version("descentlab") == __version__  # pyproject.toml reads it from the package
    # A source tree on PYTHONPATH, not installed (as on a lent GPU machine): the
    # package alone, without the metadata an install leaves beside it, in an
    # interpreter that cannot see the installed copy (-S: no site-packages).
    source = tmp_path / "src"
    shutil.copytree(Path(descentlab.__file__).parent, source / "descentlab")
    done = subprocess.run(
        [sys.executable, "-S", "-c", "import descentlab; print(descentlab.__version__, descentlab.__file__)"],
        capture_output=True, text=True, check=False, cwd=tmp_path, env={"PYTHONPATH": str(source)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reported, where = done.stdout.split()
    assert reported == __version__ and Path(where).is_relative_to(source)


def test_unknown_command_exits_2_without_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "descentlab", "lsit"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "invalid choice: 'lsit'" in done.stderr


def test_a_reader_that_goes_away_is_no_error():
    """`descentlab list | head`: the pipe closes before everything is written."""
    reader, writer = os.pipe()
    os.close(reader)  # every write now fails with a broken pipe
    done = subprocess.run(
        [sys.executable, "-m", "descentlab", "list"],
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    os.close(writer)
    assert (done.returncode, done.stderr) == (0, "")
