"""What can go wrong when the local runner starts or supervises the system.

Exception tree:

    RunnerError               -- the runner cannot bring the system up; its message says what to do
      PortBusyError           -- a port the runner needs is taken; names the port and the setting
      AlreadyRunningError     -- another `rtm up` owns this data folder
      NotReadyError           -- a process did not become ready in time; names it and its log
      ServiceFailedError      -- a process crashed too often and the supervisor gave up on it

The CLI prints these messages as they are (no traceback): they are meant for people.
"""

from __future__ import annotations


class RunnerError(Exception):
    """Root of the runner's errors."""


class PortBusyError(RunnerError):
    """A port is already in use by some other program."""

    def __init__(self, port: int, host: str, owner: str, setting: str) -> None:
        self.port = port
        self.setting = setting
        super().__init__(
            f"port {port} on {host} ({owner}) is already in use by another program; "
            f"set {setting} to another port (0 picks a free one) or stop what is using it"
        )


class AlreadyRunningError(RunnerError):
    """Two runners on one data folder would fight over the same PostgreSQL and NATS data."""


class NotReadyError(RunnerError):
    """Raised when the whole system (or one process) misses its readiness deadline."""


class ServiceFailedError(RunnerError):
    """Raised when a supervised process keeps crashing and the supervisor stopped restarting it."""
