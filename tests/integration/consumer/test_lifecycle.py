"""The consumer as a real process: it starts with its dependencies down, becomes ready when they
come, and stops on SIGTERM with exit code 0 within a bound, closing sockets with 1012, even when
NATS is already gone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from rtm.local.nats import EmbeddedNats
from rtm.local.process import free_port
from tests.support.tokens import TokenFactory


def start_consumer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "rtm.consumer"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def consumer_env(database_url: str, auth_url: str) -> dict[str, str]:
    return {
        "RTM_DATABASE_URL": database_url,
        "RTM_AUTH_URL": auth_url,
        "RTM_CONSUMER_PORT": str(free_port()),
        "RTM_MIGRATE_ON_START": "false",
        "RTM_SHUTDOWN_TIMEOUT_S": "3",
        "RTM_PARTITIONS": "4",
        "RTM_LOG_FORMAT": "json",
    }


@pytest.fixture
def process_cleanup() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


async def wait_status(base: str, status: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(trust_env=False) as client:
        while True:
            try:
                if (await client.get(f"{base}/health/ready")).status_code == status:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{base} never answered {status}"
            await asyncio.sleep(0.1)


async def test_starts_without_nats_then_becomes_ready_and_stops_cleanly(
    consumer_env: dict[str, str],
    tmp_path: Path,
    tokens: TokenFactory,
    process_cleanup: list[subprocess.Popen[bytes]],
) -> None:
    nats_server = EmbeddedNats(tmp_path / "nats", free_port(), free_port())
    proc = start_consumer({**consumer_env, "RTM_NATS_URL": nats_server.url}, tmp_path / "c.log")
    process_cleanup.append(proc)
    base = f"http://127.0.0.1:{consumer_env['RTM_CONSUMER_PORT']}"
    await wait_status(base, 503)  # serving, not ready: NATS is not there yet
    assert proc.poll() is None
    nats_server.start()
    try:
        await wait_status(base, 200)
        headers = {"Authorization": f"Bearer {tokens.token(uuid.uuid4())}"}
        ws_url = base.replace("http", "ws") + "/v1/ws"
        async with websockets.connect(ws_url, additional_headers=headers) as ws:
            await asyncio.wait_for(ws.recv(), 5)  # ready
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)

            async def drain() -> None:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)

            with pytest.raises(ConnectionClosed) as closed:
                await drain()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012
        assert await asyncio.to_thread(proc.wait, 15) == 0
        assert time.monotonic() - began < 10
    finally:
        nats_server.stop()


async def test_stops_with_exit_0_in_bounded_time_when_nats_is_already_gone(
    consumer_env: dict[str, str],
    nats_server: EmbeddedNats,
    tmp_path: Path,
    process_cleanup: list[subprocess.Popen[bytes]],
) -> None:
    proc = start_consumer({**consumer_env, "RTM_NATS_URL": nats_server.url}, tmp_path / "c.log")
    process_cleanup.append(proc)
    base = f"http://127.0.0.1:{consumer_env['RTM_CONSUMER_PORT']}"
    await wait_status(base, 200)
    nats_server.kill()
    await wait_status(base, 503)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 20) == 0
    assert time.monotonic() - began < 10
