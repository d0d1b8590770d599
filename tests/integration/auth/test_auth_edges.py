"""Auth's ports hold no idle connection: HTTP (header timeout, rtm.shared.serving) and gRPC
(HTTP/2 handshake timeout), over real sockets, with a short timeout set by settings."""

from __future__ import annotations

import asyncio
import time

import pytest

from rtm.auth.bootstrap import build
from tests.integration.auth.conftest import make_settings

TIMEOUT_S = 0.5


async def closed_within(port: int, limit_s: float) -> float:
    """Open a TCP connection, send nothing; seconds until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(4096), limit_s):
            pass  # gRPC writes its SETTINGS frame first; wait for the close
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started


@pytest.mark.parametrize("port_name", ["http_port", "grpc_port"])
async def test_an_idle_connection_to_auth_is_closed_within_the_header_timeout(
    db_url: str, port_name: str
) -> None:
    runtime = build(make_settings(db_url, http_header_timeout_s=TIMEOUT_S))
    await runtime.start(serve_http=True)
    try:
        elapsed = await closed_within(getattr(runtime, port_name), 10)
    finally:
        await runtime.stop()
    assert elapsed < TIMEOUT_S + 1.5
