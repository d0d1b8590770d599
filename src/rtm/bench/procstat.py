"""CPU seconds and memory of processes, read from /proc (Linux only).

CPU: `utime + stime` of a process; for a process tree (PostgreSQL's postmaster and its backends)
the root's own and reaped children's time (`cutime + cstime`) plus every live descendant's, so a
backend that exits during a window still counts. Memory: RSS of a single process; for a tree the
sum of PSS (`/proc/<pid>/smaps_rollup`), so shared buffers are not counted once per backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PROC = "/proc"


@dataclass(frozen=True, slots=True)
class Watched:
    """A process to sample under `name`; `tree` adds its descendants (PostgreSQL)."""

    name: str
    pid: int
    tree: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """One process's share of a window: CPU seconds, peak and last memory in bytes."""

    cpu_s: float
    mem_peak: int
    mem_end: int


@dataclass(slots=True)
class _Stat:
    ppid: int
    cpu_ticks: int  # utime + stime
    reaped_ticks: int  # cutime + cstime


def read_stat(pid: int) -> _Stat | None:
    """`/proc/<pid>/stat`, or None once the process is gone."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    return _Stat(
        ppid=int(fields[1]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
        reaped_ticks=int(fields[13]) + int(fields[14]),
    )


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (0 once it is gone)."""
    try:
        with open(f"{PROC}/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size of `pid` (its share of shared pages), falling back to RSS."""
    try:
        with open(f"{PROC}/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss_bytes(pid)


def _children() -> dict[int, list[int]]:
    """Every live process's children, from one scan of /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir(PROC):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None:
                children[stat.ppid].append(int(entry))
    return children


def _descendants(root: int, children: Mapping[int, list[int]]) -> list[int]:
    found, todo = [], list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(watched: Watched, children: Mapping[int, list[int]] | None = None) -> float:
    """Cumulative CPU seconds of a process (or its tree) since it started; NaN when it is gone."""
    root = read_stat(watched.pid)
    if root is None:
        return float("nan")
    ticks = root.cpu_ticks
    if watched.tree:
        ticks += root.reaped_ticks
        for pid in _descendants(watched.pid, children or _children()):
            stat = read_stat(pid)
            if stat is not None:
                ticks += stat.cpu_ticks + stat.reaped_ticks
    return ticks / CLOCK_TICKS


def memory_bytes(watched: Watched, children: Mapping[int, list[int]] | None = None) -> int:
    """RSS of a process, or the PSS sum of a tree."""
    if not watched.tree:
        return rss_bytes(watched.pid)
    pids = [watched.pid, *_descendants(watched.pid, children or _children())]
    return sum(pss_bytes(pid) for pid in pids)


@dataclass
class Window:
    """CPU and memory of the watched processes between `start` and `stop`.

    `sample()` (called periodically by `ProcessSampler.run`) keeps each one's peak memory.
    """

    watched: list[Watched]
    began: float = field(default_factory=time.monotonic)
    _cpu0: dict[str, float] = field(default_factory=dict)
    _peak: dict[str, int] = field(default_factory=dict)
    _last: dict[str, int] = field(default_factory=dict)

    def start(self) -> Window:
        children = _children() if any(w.tree for w in self.watched) else None
        self.began = time.monotonic()
        self._cpu0 = {w.name: cpu_seconds(w, children) for w in self.watched}
        self.sample()
        return self

    def sample(self) -> None:
        children = _children() if any(w.tree for w in self.watched) else None
        for w in self.watched:
            mem = memory_bytes(w, children)
            self._last[w.name] = mem
            self._peak[w.name] = max(self._peak.get(w.name, 0), mem)

    def stop(self) -> dict[str, Usage]:
        self.sample()
        children = _children() if any(w.tree for w in self.watched) else None
        usage: dict[str, Usage] = {}
        for w in self.watched:
            cpu = cpu_seconds(w, children) - self._cpu0.get(w.name, float("nan"))
            usage[w.name] = Usage(cpu, self._peak.get(w.name, 0), self._last.get(w.name, 0))
        return usage

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.began


class ProcessSampler:
    """Samples memory of the open windows every `interval` seconds (an asyncio task)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._open: dict[int, Window] = {}

    def open(self, watched: Iterable[Watched]) -> Window:
        window = Window(list(watched)).start()
        self._open[id(window)] = window
        return window

    def close(self, window: Window) -> dict[str, Usage]:
        self._open.pop(id(window), None)
        return window.stop()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for window in list(self._open.values()):
                with contextlib.suppress(OSError, ValueError):  # a process gone mid-read
                    await asyncio.to_thread(window.sample)
