"""Freezing a server that a test started, the way an outage freezes it.

`SIGSTOP` of one PID stops that process only. PostgreSQL's postmaster forks a process per
connection (a *backend*) and makes each one a session leader, so an operator's
`kill -STOP <postmaster pid>` leaves every existing connection answering: only new connections
and cancel requests (both go through the postmaster) hang. What makes queries hang is a frozen
backend, as when the whole machine, container or VM is paused. `Freeze` names these cases, and
`frozen` applies one to a process tree and always thaws it.

Only processes the test started are signalled: the server's PID and the children it forked.
"""

from __future__ import annotations

import enum
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PROC = Path("/proc")


class Freeze(enum.Enum):
    """Which processes of a server tree an outage stops."""

    SERVER = "server"  # the parent only: `kill -STOP <postmaster pid>`
    CHILDREN = "children"  # every child (PostgreSQL's backends), the parent still accepting
    EVERYTHING = "everything"  # the whole tree: a paused machine or container


def _stat_fields(pid: int) -> list[str] | None:
    """`/proc/<pid>/stat` after the command name (state first, then the parent PID)."""
    return _stat_fields_of(_PROC / str(pid))


def _stat_fields_of(folder: Path) -> list[str] | None:
    """The `stat` of a process's or thread's `/proc` folder, after the command name."""
    try:
        text = (folder / "stat").read_text()
    except OSError:  # gone meanwhile
        return None
    return text.rpartition(")")[2].split()


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (zombies excluded)."""
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` that still run (not exited, not a zombie)."""
    living = []
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None and fields[0] != "Z":
            living.append(pid)
    return living


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # a backend that exited meanwhile
            continue


def _wait_stopped(pids: list[int], timeout: float = 10.0) -> None:
    """Until every thread of `pids` is stopped (state T).

    Why: `kill` returns before the stop has happened. The kernel wakes one thread of the
    process to stop the rest, and on a loaded machine that thread may wait for a CPU while the
    others run on: a nats-server answered a PING sent after its SIGSTOP (3 tries in 300 with the
    CPUs busy), and a test that froze it saw the flush it expected to hang complete."""
    deadline = time.monotonic() + timeout
    while True:
        running = [
            task.name
            for pid in pids
            for task in _tasks(pid)
            if (fields := _stat_fields_of(task)) is not None and fields[0] not in ("T", "t", "Z")
        ]
        if not running:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"threads {running} still run {timeout:g} s after SIGSTOP")
        time.sleep(0.001)


def _tasks(pid: int) -> list[Path]:
    """The `/proc` folders of `pid`'s threads (none once it is gone)."""
    try:
        return list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return []


@contextmanager
def frozen(server_pid: int, how: Freeze) -> Iterator[list[int]]:
    """Stop the processes `how` names in the tree of `server_pid`; yields their PIDs and sends
    them SIGCONT on exit, whatever happened.

    The server is stopped first, so that it forks nothing new while its children are listed.
    On entry every thread of the stopped processes has stopped (`_wait_stopped`).
    """
    stopped: list[int] = []
    try:
        if how is not Freeze.CHILDREN:
            _signal_all([server_pid], signal.SIGSTOP)
            stopped.append(server_pid)
        if how is not Freeze.SERVER:
            children = children_of(server_pid)
            _signal_all(children, signal.SIGSTOP)
            stopped.extend(children)
        _wait_stopped(stopped)
        yield list(stopped)
    finally:
        _signal_all(stopped, signal.SIGCONT)
