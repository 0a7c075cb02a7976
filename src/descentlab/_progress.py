"""Progress on stderr, one mechanism for every command: a bar on a terminal, one line per phase elsewhere.

The drawing is rich's; what is descentlab's own is only what a phase is called
and what its line says. ``descentlab bench``, ``sweep``, ``compare`` and
``run`` (through :func:`descentlab.train.fit`) all report through
:class:`Phases`.
"""

from __future__ import annotations

import time

from . import _random

# rich draws from Python's global generator when it is imported (a style's random id): a program's
# random.seed() must not be moved by descentlab showing progress.
with _random.global_state_preserved():
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskID,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )


class Phases:
    """A command's progress on stderr, phase by phase; nothing at all when ``quiet``.

    On a terminal each phase is a bar redrawn in place, left on the screen
    when the phase ends. Elsewhere (a pipe, a CI log) each phase is one line,
    written when it is complete or ends: ``tune: 12/12 runs (4 already
    stored), 0 diverged, 0 failed (3.2 s)``. ``console`` is where to draw
    (default: rich's console on stderr, which decides whether it is a
    terminal; ``FORCE_COLOR`` makes it one).

    >>> import io
    >>> log = io.StringIO()
    >>> phases = Phases(console=Console(file=log))  # not a terminal
    >>> for done in range(4):
    ...     phases.update("tune", done, 3, f"{done}/3 runs")
    >>> phases.note("report: writing the page")
    >>> print(log.getvalue(), end="")  # doctest: +ELLIPSIS
    tune: 3/3 runs (... s)
    report: writing the page
    """

    def __init__(self, *, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console if console is not None else Console(stderr=True)
        self._phase: str | None = None
        self._detail = ""
        self._started = 0.0
        self._written = False
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def update(self, phase: str, done: float, total: float, detail: str = "") -> None:
        """``done`` of ``total`` of ``phase`` is done; a phase of another name ends the one before."""
        if self.quiet:
            return
        if phase != self._phase:
            self.end()
            self._begin(phase, total)
        self._detail = detail
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total, detail=detail)
        elif done >= total and not self._written:
            self._line()

    def note(self, text: str) -> None:
        """A line of its own, after the phase before it (which it ends)."""
        if self.quiet:
            return
        self.end()
        self._print(text)

    def end(self) -> None:
        """End the current phase: its bar stays on the terminal; elsewhere its line is written, once."""
        if self._phase is None:
            return
        if self._bar is not None:
            self._bar.stop()
        elif not self._written:
            self._line()
        self._phase, self._bar, self._task = None, None, None

    def __enter__(self) -> Phases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    def _begin(self, phase: str, total: float) -> None:
        self._phase, self._started, self._written = phase, time.monotonic(), False
        if not self.console.is_terminal:
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            console=self.console,
        )
        self._task = self._bar.add_task(phase, total=total, detail="")
        self._bar.start()

    def _line(self) -> None:
        head = f"{self._phase}: {self._detail}" if self._detail else self._phase
        self._print(f"{head} ({time.monotonic() - self._started:.1f} s)")
        self._written = True

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
