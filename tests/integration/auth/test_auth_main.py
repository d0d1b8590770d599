"""`python -m rtm.auth` as a real process: serves both ports, then exits 0 on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from rtm.local.process import free_port, stop, wait_until
from tests.integration.auth.conftest import KEY_SECRET


def test_the_process_serves_until_sigterm_then_exits_zero(
    db_url: str, nats_url: str, tmp_path: Path
) -> None:
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "RTM_ENV": "test",
        "RTM_DATABASE_URL": db_url,
        "RTM_NATS_URL": nats_url,
        "RTM_AUTH_KEY_SECRET": KEY_SECRET,
        "RTM_AUTH_HTTP_PORT": str(http_port),
        "RTM_AUTH_GRPC_PORT": str(grpc_port),
        "RTM_AUTH_ARGON2_MEMORY_KIB": "64",
        "RTM_AUTH_ARGON2_TIME_COST": "1",
        "RTM_LOG_FORMAT": "json",
    }
    log = tmp_path / "auth.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtm.auth"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{http_port}"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"auth exited early: {log.read_text()}")
            try:
                return httpx.get(f"{base}/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, what="auth readiness")
        user = {"username": "alice", "password": "password-1"}
        assert httpx.post(f"{base}/v1/auth/register", json=user).status_code == 201
        assert httpx.post(f"{base}/v1/auth/login", json=user).status_code == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
        assert time.monotonic() - started < 10
        assert b'"msg": "auth stopped"' in log.read_bytes()
    finally:
        stop(proc)
