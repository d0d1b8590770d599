"""The supervisor with real child processes: restarts with backoff, giving up, stopping cleanly."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from pathlib import Path

import pytest

from rtm.local.backoff import RestartPolicy
from rtm.local.errors import ServiceFailedError
from rtm.local.supervisor import ChildSpec, State, Supervisor
from tests.integration.local.helpers import alive, group_members, until

FAST = RestartPolicy(initial=0.05, cap=0.2, jitter=0.0, max_restarts=3, window=60)


class Lines:
    """A `LineSink` that remembers what it was given."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def write_line(self, name: str, line: str) -> None:
        self.lines.append((name, line))


def python(name: str, code: str) -> ChildSpec:
    return ChildSpec(name, [sys.executable, "-c", code])


@pytest.fixture
def caplog_supervisor(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="rtm.local.supervisor")
    return caplog


async def test_a_crashed_child_is_restarted_after_backoff_and_the_log_says_so(
    tmp_path: Path, caplog_supervisor: pytest.LogCaptureFixture
) -> None:
    """First run exits 3; the supervisor logs the code and delay, and the second run stays up."""
    marker = tmp_path / "crashed-once"
    code = (
        "import pathlib, sys, time\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "print('run', flush=True)\n"
        "if not marker.exists():\n"
        "    marker.touch(); sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    lines = Lines()
    supervisor = Supervisor(
        [python("svc", code)], log_dir=tmp_path / "logs", policy=FAST, sink=lines, stop_timeout=2
    )
    supervisor.start()
    try:
        await until(
            lambda: supervisor.status()["svc"].state is State.READY and len(lines.lines) == 2,
            what="restarted, ready, and printing again",
        )
        status = supervisor.status()["svc"]
        assert status.restarts == 1
        assert status.last_exit == 3
        assert status.pid is not None
        assert alive(status.pid)
    finally:
        await supervisor.stop()
    assert re.search(
        r"svc exited with code 3; restarting in \d+\.\ds \(restart 1\)", caplog_supervisor.text
    )
    assert lines.lines == [("svc", "run"), ("svc", "run")]
    log = (tmp_path / "logs" / "svc.log").read_text()
    assert log.count("\nrun\n") == 2
    assert "rtm: exited with code 3" in log


async def test_the_supervisor_gives_up_loudly_after_too_many_crashes(
    tmp_path: Path, caplog_supervisor: pytest.LogCaptureFixture
) -> None:
    """max_restarts=3: the fourth crash within the window marks it failed, naming its log."""
    supervisor = Supervisor(
        [python("doomed", "import sys; sys.exit(2)")], log_dir=tmp_path, policy=FAST
    )
    supervisor.start()
    try:
        failed = await asyncio.wait_for(supervisor.wait_failed(), 10)
        assert failed.name == "doomed"
        assert failed.restarts == 3
        with pytest.raises(ServiceFailedError, match="doomed is failed"):
            await supervisor.wait_ready(timeout=1)
    finally:
        await supervisor.stop()
    errors = [r for r in caplog_supervisor.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "crashed 4 times within 60s; giving up" in errors[0].getMessage()
    assert str(tmp_path / "doomed.log") in errors[0].getMessage()


async def test_a_killed_child_is_restarted_as_a_new_process(
    tmp_path: Path, caplog_supervisor: pytest.LogCaptureFixture
) -> None:
    supervisor = Supervisor(
        [python("victim", "import time; time.sleep(60)")], log_dir=tmp_path, policy=FAST
    )
    supervisor.start()
    try:
        await supervisor.wait_ready(timeout=5)
        first = supervisor.pid("victim")
        await supervisor.kill("victim")
        assert supervisor.status()["victim"].state is State.BACKOFF
        await until(lambda: supervisor.pid("victim") not in (None, first), what="new process")
        await supervisor.wait_ready(timeout=5)
    finally:
        await supervisor.stop()
    assert "victim exited with code -9; restarting in" in caplog_supervisor.text


async def test_stop_kills_a_child_ignoring_sigterm_and_its_grandchildren(tmp_path: Path) -> None:
    """SIGTERM, then SIGKILL to the whole group after stop_timeout: no process is left."""
    stubborn = (
        "import signal, subprocess, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    lines = Lines()
    supervisor = Supervisor(
        [python("stubborn", stubborn), python("polite", "import time; time.sleep(60)")],
        log_dir=tmp_path,
        sink=lines,
        stop_timeout=0.5,
    )
    supervisor.start()
    await supervisor.wait_ready(timeout=5)
    await until(lambda: bool(lines.lines), what="grandchild pid printed")
    pids = [supervisor.pid("stubborn"), supervisor.pid("polite"), int(lines.lines[0][1])]
    assert all(pid is not None and alive(pid) for pid in pids)
    began = time.monotonic()
    await supervisor.stop()
    assert time.monotonic() - began < 3
    # SIGKILL is delivered asynchronously and an orphan is reaped by init: allow a moment.
    await until(lambda: not [pid for pid in pids if pid is not None and alive(pid)], timeout=2)
    assert group_members(pid for pid in pids[:2] if pid is not None) == []
    status = supervisor.status()
    assert status["polite"].state is State.STOPPED
    assert status["polite"].last_exit == -15
    assert status["stubborn"].last_exit == -9


async def test_a_deliberate_restart_is_not_counted_as_a_crash(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [python("svc", "import time; time.sleep(60)")], log_dir=tmp_path, policy=FAST
    )
    supervisor.start()
    try:
        await supervisor.wait_ready(timeout=5)
        first = supervisor.pid("svc")
        await supervisor.restart("svc")
        await supervisor.wait_ready(timeout=5)
        assert supervisor.pid("svc") not in (None, first)
        assert supervisor.status()["svc"].restarts == 0
    finally:
        await supervisor.stop()


async def test_a_held_child_stays_down_until_released(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [python("svc", "import time; time.sleep(60)")], log_dir=tmp_path, policy=FAST
    )
    supervisor.start()
    try:
        await supervisor.wait_ready(timeout=5)
        first = supervisor.pid("svc")
        await supervisor.hold("svc")
        await asyncio.sleep(0.2)
        assert supervisor.status()["svc"].state is State.STOPPED
        assert first is not None
        assert not alive(first)
        supervisor.release("svc")
        await supervisor.wait_ready(["svc"], timeout=5)
    finally:
        await supervisor.stop()
