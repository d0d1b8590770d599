"""What can go wrong when the local runner starts or supervises the system.

Exception tree:

    RunnerError               -- the runner cannot bring the system up; its message says what to do
      PortBusyError           -- ports the runner needs are taken; names each, and its setting
      AlreadyRunningError     -- another `rtm up` owns this data folder
      NotReadyError           -- a process did not become ready in time; names it and its log
      ServiceFailedError      -- a process crashed too often and the supervisor gave up on it

The CLI prints these messages as they are (no traceback): they are meant for people.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class RunnerError(Exception):
    """Root of the runner's errors."""


class BusyPort(NamedTuple):
    """A port the runner needs that another program holds, and the setting that moves it."""

    port: int
    host: str
    owner: str
    setting: str


class PortBusyError(RunnerError):
    """Ports are already in use by other programs: all of them, found in one run."""

    def __init__(self, busy: Sequence[BusyPort]) -> None:
        self.busy = list(busy)
        if len(self.busy) == 1:
            port, host, owner, setting = self.busy[0]
            message = (
                f"port {port} on {host} ({owner}) is already in use by another program; "
                f"set {setting} to another port (0 picks a free one) or stop what is using it"
            )
        else:
            lines = [f"{len(self.busy)} ports are already in use by other programs:"]
            lines += [
                f"  port {port} on {host} ({owner}): set {setting} to another port"
                for port, host, owner, setting in self.busy
            ]
            lines.append("(0 picks a free one), or stop what is using them")
            message = "\n".join(lines)
        super().__init__(message)


class AlreadyRunningError(RunnerError):
    """Two runners on one data folder would fight over the same PostgreSQL and NATS data."""


class NotReadyError(RunnerError):
    """Raised when the whole system (or one process) misses its readiness deadline."""


class ServiceFailedError(RunnerError):
    """Raised when a supervised process keeps crashing and the supervisor stopped restarting it."""
