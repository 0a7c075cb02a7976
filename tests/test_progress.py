"""The one progress display: a bar on a terminal, one line per phase elsewhere, nothing when quiet."""

from __future__ import annotations

import io
import re

from rich.console import Console

from descentlab._progress import Phases


def run_phases(phases: Phases) -> None:
    phases.note("starting")
    for done in range(4):
        phases.update("tune", done, 3, f"{done}/3 runs")
    for done in range(3):
        phases.update("judge", done, 5, f"{done}/5 runs")  # left unfinished: written when it ends
    phases.note("report")
    phases.update("surfaces", 2, 2, "2/2 runs")  # complete when first seen
    phases.end()
    phases.end()  # nothing more


def test_off_a_terminal_each_phase_is_one_line_when_it_ends():
    log = io.StringIO()
    run_phases(Phases(console=Console(file=log)))
    lines = log.getvalue().splitlines()
    assert len(lines) == 5, lines
    assert lines[0] == "starting" and lines[3] == "report"
    for line, text in zip(
        [lines[1], lines[2], lines[4]], ["tune: 3/3 runs", "judge: 2/5 runs", "surfaces: 2/2 runs"]
    ):
        assert re.fullmatch(rf"{re.escape(text)} \(\d+\.\d s\)", line), line
    assert "\x1b" not in log.getvalue() and "\r" not in log.getvalue()


def test_a_long_line_is_not_wrapped_off_a_terminal():
    log = io.StringIO()
    with Phases(console=Console(file=log, width=40)) as phases:
        phases.update("sweep", 1, 1, "x" * 100)
    assert len(log.getvalue().splitlines()) == 1


def test_quiet_writes_nothing(capsys):
    terminal = io.StringIO()
    run_phases(Phases(quiet=True))
    run_phases(Phases(quiet=True, console=Console(file=terminal, force_terminal=True)))
    assert capsys.readouterr().err == "" and terminal.getvalue() == ""


def test_the_default_console_is_stderr(capsys):
    run_phases(Phases())
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 5


def test_on_a_terminal_each_phase_is_a_bar_that_stays():
    terminal = io.StringIO()
    run_phases(Phases(console=Console(file=terminal, force_terminal=True, width=100)))
    drawn = terminal.getvalue()
    assert "\x1b[" in drawn  # drawn in place, with the terminal's control sequences
    assert "━" in drawn  # rich's bar
    for text in ("tune", "3/3 runs", "100%", "judge", "2/5 runs", "40%", "surfaces", "starting", "report"):
        assert text in drawn, text
    # the notes and the phases appear in their order
    order = [drawn.index(t) for t in ("starting", "tune", "judge", "report", "surfaces")]
    assert order == sorted(order)
