"""`rtm up` as `make run` starts it, real services and all: a short, quiet start (issue 14).

Before the summary, only lines that deserve a reader: no nats-server banner, no PostgreSQL
start-up FATAL/ERROR lines, no JWKS 503 retries, no uvicorn "Press CTRL+C"; the summary names
every URL; the log files keep everything, as plain text.
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
    r"JETSTREAM|_ ___ _____|Starting nats-server|FATAL|ERROR|Press CTRL\+C|color_message"
    r"|JWKS unavailable|HTTP Request:|\x1b"
)
MAX_LINES_BEFORE_SUMMARY = 45  # ~110 before issue 14 (a first start, initdb included)


def test_rtm_up_prints_a_short_clean_start_and_every_url(tmp_path: Path) -> None:
    data = tmp_path / "rtm"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTM_")}
    env.update({f"RTM_{name}": "0" for name in ("EMBEDDED_NATS_PORT", "EMBEDDED_PG_PORT")})
    env.update({f"RTM_{name}": "0" for name in ("AUTH_GRPC_PORT", "AUTH_HTTP_PORT")})
    env.update(
        RTM_EMBEDDED_NATS_MONITOR_PORT="0",
        RTM_PRODUCER_PORT="0",
        RTM_CONSUMER_PORT="0",
        RTM_DATA_DIR=str(data),
        RTM_LOG_FORMAT="text",  # as on a terminal
        RTM_STOP_TIMEOUT="5",
    )
    output = tmp_path / "output.txt"
    with output.open("w") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "rtm.cli", "up"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    status: dict[str, Any] = {}
    try:

        def ready() -> bool:
            assert runner.poll() is None, output.read_text()
            return "Ctrl-C stops everything." in output.read_text()

        wait_for(ready, timeout=90, what="rtm up ready")
        status.update(read_status(data / "status.json") or {})
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(30) == 0
    finally:
        if runner.poll() is None:  # only if the assertions above failed
            runner.kill()
            runner.wait(5)
        logs = {log.name: log.read_bytes() for log in (data / "logs").glob("*.log")}
        System(RunnerSettings.for_tests(data)).remove_data()
    printed = output.read_text()
    before, _, summary = printed.partition("rtm is ready in")
    noisy = [line for line in before.splitlines() if NOISE.search(line)]
    assert noisy == [], printed
    assert not [line for line in before.splitlines() if " WARNING " in line], printed
    assert len(before.splitlines()) <= MAX_LINES_BEFORE_SUMMARY, printed
    urls = status["urls"]
    for base in (urls["producer"], urls["consumers"][0]):
        assert f"WebSocket {SystemUrls.websocket_endpoint(base)}" in summary
        assert f"AsyncAPI {SystemUrls.asyncapi(base)}" in summary
        assert f"Swagger {SystemUrls.swagger(base)}" in summary
    assert f"gRPC {urls['auth_grpc']}" in summary
    assert b"Starting nats-server" in logs["nats.log"]  # kept, in the log file only
    assert [name for name, text in logs.items() if b"\x1b" in text] == []
