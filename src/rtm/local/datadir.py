"""The runner's data folder (`.rtm`): one runner at a time, and a way to delete it all.

Two runners on one folder would start two PostgreSQL servers on one cluster and two nats-servers
on one JetStream store. An exclusive `flock` on `runner.lock` prevents it; the kernel releases it
when the runner dies, however it dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from typing import IO

from rtm.local.errors import AlreadyRunningError
from rtm.local.postgres import EmbeddedPostgres


class DataDirLock:
    """Held by the running runner; `acquire` fails at once when another one holds it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "runner.lock"
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        """Raises AlreadyRunningError naming the other runner's PID."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "?"
            lock.close()
            raise AlreadyRunningError(
                f"another rtm runner (pid {owner}) is using {self.path.parent}; stop it first, "
                "or give this one its own RTM_DATA_DIR"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        self._file = lock

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def remove_data_dir(data_dir: Path) -> None:
    """Delete `data_dir`, including PostgreSQL's data relocated to /var/tmp (see postgres.py)."""
    EmbeddedPostgres(data_dir / "pg", 0).remove_data()
    shutil.rmtree(data_dir, ignore_errors=True)
