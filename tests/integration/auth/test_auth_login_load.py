"""With production argon2 parameters, 20 concurrent logins do not stall the event loop."""

from __future__ import annotations

import asyncio
import time

import httpx

from rtm.auth.bootstrap import build
from rtm.auth.settings import OWASP_MEMORY_KIB, OWASP_TIME_COST
from tests.integration.auth.conftest import make_settings


async def test_health_answers_while_twenty_logins_hash(db_url: str) -> None:
    settings = make_settings(
        db_url, argon2_memory_kib=OWASP_MEMORY_KIB, argon2_time_cost=OWASP_TIME_COST
    )
    runtime = build(settings)
    await runtime.start(serve_http=False)
    transport = httpx.ASGITransport(app=runtime.http_app)
    try:
        await runtime.wait_ready()
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as http:
            user = {"username": "alice", "password": "password-1"}
            assert (await http.post("/v1/auth/register", json=user)).status_code == 201
            logins = [
                asyncio.ensure_future(http.post("/v1/auth/login", json=user)) for _ in range(20)
            ]
            await asyncio.sleep(0)  # let the logins start hashing
            started = time.perf_counter()
            health = await http.get("/health/live")
            health_latency = time.perf_counter() - started
            pending_when_healthy = sum(not login.done() for login in logins)
            answers = await asyncio.gather(*logins)
        assert health.status_code == 200
        assert pending_when_healthy > 0  # health was answered in the middle of the hashing
        assert health_latency < 0.25  # 20 hashes take ~0.3 s of CPU on 2 workers
        assert [a.status_code for a in answers] == [200] * 20
    finally:
        await runtime.stop()
