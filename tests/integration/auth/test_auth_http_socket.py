"""The HTTP front on a real socket: small answers are not held back by Nagle's algorithm."""

from __future__ import annotations

import statistics
import time

import httpx

from rtm.auth.bootstrap import build
from tests.integration.auth.conftest import make_settings


async def test_keep_alive_requests_answer_without_a_delayed_ack_stall(db_url: str) -> None:
    """Without TCP_NODELAY each answer waits ~40 ms for the client's delayed ACK."""
    runtime = build(make_settings(db_url))
    await runtime.start(serve_http=True)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as http:
            await http.get("/health/live")  # connect once; then time keep-alive round trips
            took = []
            for _ in range(10):
                started = time.perf_counter()
                response = await http.get("/health/live")
                took.append(time.perf_counter() - started)
                assert response.status_code == 200
        assert statistics.median(took) < 0.030
    finally:
        await runtime.stop()
