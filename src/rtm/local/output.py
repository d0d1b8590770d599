"""Where supervised processes' output goes: the terminal (one prefix per line) and a log file each.

Children write whatever they like, in chunks that need not end at a line; `LineSplitter` turns a
byte stream into whole lines so that lines of different processes never interleave mid-line on
the terminal.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TextIO

_COLORS = ("36", "33", "35", "32", "34", "91", "96", "93", "95", "92")


class LineSink(Protocol):
    """Receives each whole output line of a supervised process (without its newline).

    Called on the supervisor's event loop; must not block for long.
    """

    def write_line(self, name: str, line: str) -> None: ...


class LineSplitter:
    """Accumulates bytes and yields complete lines; `flush` returns a trailing partial line."""

    def __init__(self, max_line: int = 64 * 1024) -> None:
        self._buffer = bytearray()
        self._max_line = max_line

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._buffer.extend(chunk)
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            yield line
        # A child that never prints a newline must not grow our memory without bound.
        if len(self._buffer) >= self._max_line:
            yield bytes(self._buffer)
            self._buffer.clear()

    def flush(self) -> Iterator[bytes]:
        if self._buffer:
            yield bytes(self._buffer)
            self._buffer.clear()


class TerminalSink:
    """Prints `name | line`, names padded to one width and coloured when the stream is a tty."""

    def __init__(self, names: Iterable[str], stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        self._broken = False
        ordered = list(dict.fromkeys(names))
        self._width = max((len(name) for name in ordered), default=0)
        use_color = self._stream.isatty() and "NO_COLOR" not in os.environ
        palette = _COLORS if use_color else ("",)
        self._colors = {name: palette[index % len(palette)] for index, name in enumerate(ordered)}

    def write_line(self, name: str, line: str) -> None:
        color = self._colors.get(name, "")
        label = f"{name:<{self._width}}"
        if color:
            label = f"\x1b[{color}m{label}\x1b[0m"
        with self._lock:  # the runner's own log lines may come from worker threads
            if self._broken:
                return
            try:
                self._stream.write(f"{label} | {line}\n")
                self._stream.flush()
            except (OSError, ValueError):  # terminal gone (closed pipe): log files still work
                self._broken = True


# CSI sequences (colours, cursor moves) and OSC ones (titles, links), as a tty-minded program
# may print them even into a pipe.
_ANSI = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def strip_ansi(line: bytes) -> bytes:
    """`line` without ANSI escape sequences."""
    return _ANSI.sub(b"", line) if b"\x1b" in line else line


class LogFile:
    """Appends one process's output to `<log_dir>/<name>.log`, with start/exit markers.

    Plain text: ANSI escape sequences are dropped, so the file reads the same in an editor,
    `less` or `grep` as on the terminal.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the child

    def write(self, line: bytes) -> None:
        self._file.write(strip_ansi(line) + b"\n")

    def mark(self, event: str) -> None:
        """A line saying what the supervisor did, so the file reads as a history of runs."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.write(f"--- {stamp} rtm: {event} ---".encode())

    def close(self) -> None:
        self._file.close()
