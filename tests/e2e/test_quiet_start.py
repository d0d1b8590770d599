"""`rtm up` as `make run` starts it, real services and all: a short, quiet start (issue 14).

Before the summary, only lines that deserve a reader: no nats-server banner, no PostgreSQL
start-up FATAL/ERROR lines, no JWKS 503 retries, no uvicorn "Press CTRL+C"; the summary names
every URL; the log files keep everything, as plain text. Checked on a first start (initdb,
migrations) and on the next one (data already there), as a developer meets them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from rtm.local.plan import SystemUrls
from rtm.local.settings import RunnerSettings
from rtm.local.status import read_status
from rtm.local.system import System
from tests.integration.local.helpers import wait_for

# What the terminal showed before issue 14, none of which may come back.
NOISE = re.compile(
    r"JETSTREAM|_ ___ _____|Starting nats-server|FATAL|ERROR|WARNING|\[WRN\]|Press CTRL\+C"
    r"|color_message|JWKS unavailable|HTTP Request:|\x1b"
)
MAX_LINES_BEFORE_SUMMARY = 45  # ~90 to 110 before issue 14


def rtm_up_until_ready(data: Path, folder: Path) -> tuple[str, dict[str, Any]]:
    """Run `rtm up` on free ports until its summary, then SIGTERM it; its output and URLs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTM_")}
    ports = ("EMBEDDED_NATS", "EMBEDDED_NATS_MONITOR", "EMBEDDED_PG", "AUTH_GRPC", "AUTH_HTTP")
    env.update({f"RTM_{name}_PORT": "0" for name in (*ports, "PRODUCER", "CONSUMER")})
    env.update(RTM_DATA_DIR=str(data), RTM_LOG_FORMAT="text", RTM_STOP_TIMEOUT="5")
    output = folder / "output.txt"
    with output.open("w") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "rtm.cli", "up"],
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> bool:
            assert runner.poll() is None, output.read_text()
            return "Ctrl-C stops everything." in output.read_text()

        wait_for(ready, timeout=90, what="rtm up ready")
        urls = (read_status(data / "status.json") or {})["urls"]
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(30) == 0
    finally:
        if runner.poll() is None:  # only if the assertions above failed
            runner.kill()
            runner.wait(5)
    return output.read_text(), urls


def assert_quiet_start(printed: str, urls: dict[str, Any]) -> None:
    before, _, summary = printed.partition("rtm is ready in")
    assert [line for line in before.splitlines() if NOISE.search(line)] == [], printed
    assert len(before.splitlines()) <= MAX_LINES_BEFORE_SUMMARY, printed
    for base in (urls["producer"], urls["consumers"][0]):
        assert f"WebSocket {SystemUrls.websocket_endpoint(base)}" in summary
        assert f"AsyncAPI {SystemUrls.asyncapi(base)}" in summary
        assert f"Swagger {SystemUrls.swagger(base)}" in summary
    assert f"gRPC {urls['auth_grpc']}" in summary
    # the web chat page: its URL, or how to build it and then its URL
    assert re.search(rf"\n  chat +(\S.*then open )?{re.escape(urls['auth'])}/chat/\n", summary)


def test_rtm_up_prints_a_short_clean_start_and_every_url(tmp_path: Path) -> None:
    data = tmp_path / "rtm"
    try:
        for run in ("first", "again"):
            folder = tmp_path / run
            folder.mkdir()
            assert_quiet_start(*rtm_up_until_ready(data, folder))
        logs = {log.name: log.read_bytes() for log in (data / "logs").glob("*.log")}
    finally:
        System(RunnerSettings.for_tests(data)).remove_data()
    assert b"Starting nats-server" in logs["nats.log"]  # kept, in the log file only
    assert b"database system is ready to accept connections" in logs["postgres.log"]
    assert [name for name, text in logs.items() if b"\x1b" in text] == []
