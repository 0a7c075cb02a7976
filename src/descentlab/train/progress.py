"""A one-line progress bar on stderr, redrawn in place; silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Draws ``[#####-----]  50%  step 120  loss 0.1234  3.2s`` with carriage returns.

    ``enabled=None`` turns it on only when ``stream`` is a terminal, so logs
    and pipes get no control characters. Redraws at most ten times a second.
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None, width: int = 24) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) if enabled is None else enabled
        self.width = width
        self._last = 0.0
        self._drawn = False

    def update(
        self, fraction: float, step: int, loss: float | None, seconds: float, force: bool = False
    ) -> None:
        """Redraw for ``fraction`` (0 to 1) of the budget done."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        shown = "" if loss is None else f"  loss {loss:.4g}"
        self.stream.write(f"\r[{bar}] {100 * fraction:3.0f}%  step {step}{shown}  {seconds:.1f}s ")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the line, so what is printed next starts on a new one."""
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
