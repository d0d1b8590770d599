"""The live display: one status line rewritten in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO


class Display:
    """`status()` for the changing line (throttled), `log()` for lines that stay."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self._last = 0.0
        self._shown = False
        self._began = time.monotonic()

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self._shown = False

    def log(self, text: str) -> None:
        """A line that stays (a scenario starts, a step's outcome)."""
        if self.quiet:
            return
        self._clear()
        self.stream.write(f"[{time.monotonic() - self._began:6.1f}s] {text}\n")
        self.stream.flush()

    def status(self, text: str, *, force: bool = False) -> None:
        """The changing line: at most 5 per second on a terminal, one per 5 s otherwise."""
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\x1b[2K" + f"  … {text}"[:width])
            self._shown = True
        else:
            self.stream.write(f"  … {text}\n")
        self.stream.flush()

    def done(self) -> None:
        self._clear()
        self.stream.flush()
