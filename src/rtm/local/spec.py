"""What the supervisor is told about a child (`ChildSpec`) and tells about it (`ChildStatus`)."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

Probe = Callable[[], Awaitable[str | None]]
"""A readiness check: `None` when ready, else a short reason. Should return within a second."""


class State(StrEnum):
    """Where a supervised child is in its life."""

    STARTING = "starting"  # preparing or spawned, not ready yet
    READY = "ready"
    NOT_READY = "not ready"  # was ready, its probe now fails (a dependency is down)
    BACKOFF = "backoff"  # crashed; waiting before the restart
    STOPPING = "stopping"
    STOPPED = "stopped"  # deliberately down
    FAILED = "failed"  # crashed too often; no more restarts until told


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to run one child.

    Attributes:
        name: unique name, used as output prefix and log file name.
        argv: the command.
        env: its whole environment (`None` inherits ours).
        cwd: working directory.
        run_as: OS user to run as (only when we are root; PostgreSQL refuses root).
        probe: readiness check; `None` means ready as soon as it is running.
        prepare: blocking work before every start (config file, initdb), run in a thread.
        stop_signal: the graceful stop request (PostgreSQL's fast shutdown is SIGINT).
        show: which output lines also go to the terminal (`None`: all of them); the log file
            gets every line. A server's expected chatter (nats-server's banner, PostgreSQL's
            start-up lines) stays in its log, so the terminal shows what needs a reader.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    run_as: str | None = None
    probe: Probe | None = None
    prepare: Callable[[], object] | None = None
    stop_signal: int = signal.SIGTERM
    show: Callable[[str], bool] | None = None


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """A snapshot of one child, for `rtm status`, logs and tests."""

    name: str
    state: State
    pid: int | None = None
    restarts: int = 0
    last_exit: int | None = None
    detail: str = ""
    ready_after: float | None = None  # seconds from spawn to ready, for the current run
    log_path: Path | None = field(default=None, compare=False)
