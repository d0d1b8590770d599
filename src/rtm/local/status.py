"""`.rtm/status.json`: what a running `rtm up` supervises, for `rtm status` in another terminal.

Written on every state change (atomically: a reader never sees half a file) and removed when the
runner stops; `read_status` trusts it only while the runner's PID is alive, so a runner killed
with SIGKILL does not leave a lying status behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from rtm.local.plan import SystemUrls
from rtm.local.spec import ChildStatus


class StatusFile:
    """Keeps the file in step with the supervisors' `on_change` notifications."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._processes: dict[str, dict[str, Any]] = {}
        self._urls: dict[str, Any] | None = None

    def update(self, status: ChildStatus) -> None:
        self._processes[status.name] = {
            "state": status.state.value,
            "pid": status.pid,
            "restarts": status.restarts,
            "last_exit": status.last_exit,
            "detail": status.detail,
            "log": str(status.log_path) if status.log_path else None,
        }
        self._write()

    def set_urls(self, urls: SystemUrls | None) -> None:
        self._urls = dataclasses.asdict(urls) if urls is not None else None
        self._write()

    def _write(self) -> None:
        document = {
            "runner_pid": os.getpid(),
            "updated": time.time(),
            "urls": self._urls,
            "processes": self._processes,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_suffix(".tmp")
        staging.write_text(json.dumps(document, indent=2))
        staging.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def read_status(path: Path) -> dict[str, Any] | None:
    """The status a live runner wrote, or None when no runner is running there."""
    try:
        document: dict[str, Any] = json.loads(path.read_text())
        os.kill(int(document["runner_pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return document
