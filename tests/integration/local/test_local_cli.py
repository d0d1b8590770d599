"""The `rtm` command as a user runs it: `rtm up` in its own process, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rtm.cli import main
from rtm.local.postgres import EmbeddedPostgres
from rtm.local.settings import RunnerSettings
from rtm.local.status import read_status
from rtm.local.system import System
from tests.integration.local.helpers import alive, group_members, standin_commands, wait_for


def rtm_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The test's environment minus any RTM_* of the developer's, every port free."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTM_")}
    env.update(
        RTM_DATA_DIR=str(data_dir),
        RTM_ENV="test",
        RTM_EMBEDDED_NATS_PORT="0",
        RTM_EMBEDDED_NATS_MONITOR_PORT="0",
        RTM_EMBEDDED_PG_PORT="0",
        RTM_AUTH_GRPC_PORT="0",
        RTM_AUTH_HTTP_PORT="0",
        RTM_PRODUCER_PORT="0",
        RTM_CONSUMER_PORT="0",
        RTM_STOP_TIMEOUT="5",
        RTM_SERVICE_COMMANDS=json.dumps(standin_commands()),
    )
    env.update(extra)
    return env


def test_rtm_up_prints_urls_and_sigterm_leaves_no_process_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every PID the runner reported (and every process of their groups) is gone after SIGTERM."""
    data = tmp_path / "rtm"
    output = tmp_path / "output.txt"
    with output.open("w") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "rtm.cli", "up", "--consumers", "2"],
            env=rtm_env(data),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        status: dict[str, Any] = {}

        def ready() -> bool:
            status.update(read_status(data / "status.json") or {})
            assert runner.poll() is None, output.read_text()
            return bool(status.get("urls"))

        wait_for(ready, timeout=30, what="rtm up ready")
        pids = [proc["pid"] for proc in status["processes"].values()]
        assert len(pids) == 6
        assert all(alive(pid) for pid in pids)
        assert main(["status", "--data-dir", str(data)]) == 0
        assert "consumer-2" in capsys.readouterr().out
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(20) == 0
        assert not (data / "status.json").exists()
        wait_for(lambda: not [pid for pid in pids if alive(pid)], timeout=2, what="all gone")
        assert group_members(pids) == []
    finally:
        if runner.poll() is None:  # only if the assertions above failed
            runner.kill()
            runner.wait(5)
        System(RunnerSettings.for_tests(data)).remove_data()
    printed = output.read_text()
    assert "rtm is ready in" in printed
    assert f"{status['urls']['producer']}/v1/swagger" in printed
    assert "SIGTERM: stopping everything" in printed


def test_rtm_up_refuses_a_busy_embedded_port_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        began = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "rtm.cli", "up"],
            env=rtm_env(tmp_path / "rtm", RTM_EMBEDDED_NATS_PORT=str(port)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 (embedded NATS) is already in use" in result.stderr
    assert "set RTM_EMBEDDED_NATS_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - began < 10


def test_rtm_up_reports_every_busy_port_in_one_run(tmp_path: Path) -> None:
    """Two busy ports, one run: each named with the variable that moves it."""
    with socket.socket() as first, socket.socket() as second:
        for busy in (first, second):
            busy.bind(("127.0.0.1", 0))
            busy.listen()
        nats_port, producer_port = first.getsockname()[1], second.getsockname()[1]
        env = rtm_env(
            tmp_path / "rtm",
            RTM_EMBEDDED_NATS_PORT=str(nats_port),
            RTM_PRODUCER_PORT=str(producer_port),
        )
        result = subprocess.run(
            [sys.executable, "-m", "rtm.cli", "up"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any(f"port {nats_port}" in ln and "RTM_EMBEDDED_NATS_PORT" in ln for ln in lines)
    assert any(f"port {producer_port}" in ln and "RTM_PRODUCER_PORT" in ln for ln in lines)
    assert "Traceback" not in result.stderr


def test_rtm_migrate_applies_pending_migrations_once(
    pg_server: EmbeddedPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_server.create_database("rtm_cli_migrate")
    assert main(["migrate", "--database-url", url]) == 0
    assert "0001_messaging" in capsys.readouterr().out
    assert main(["migrate", "--database-url", url]) == 0
    assert "up to date" in capsys.readouterr().out
