"""The producer's `/metrics` and its membership cache across producer instances, on real NATS
and PostgreSQL.

Metrics are process-global (every producer app of this test process counts into the same
registry): assertions are on deltas between two reads around an action, never on absolutes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from rtm.local.nats import EmbeddedNats
from rtm.producer.bootstrap import create_app
from tests.integration.producer.conftest import (
    NewUser,
    create_conversation,
    open_socket,
    settings_for,
    wait_ready,
)
from tests.support.asgi import running_producer
from tests.support.metrics import sample

Series = tuple[str, dict[str, str]]


async def deltas(
    base: str, series: list[Series], action: Callable[[], Awaitable[Any]]
) -> list[float]:
    """How much each series moved while `action` ran."""
    async with httpx.AsyncClient(base_url=f"http://{base}") as http:
        before = (await http.get("/metrics")).text
        await action()
        after = (await http.get("/metrics")).text
    return [sample(after, name, labels) - sample(before, name, labels) for name, labels in series]


def ws_(name: str, **labels: str) -> Series:
    return f"rtm_producer_{name}", labels


async def test_websocket_metrics_count_frames_errors_acks_and_cache_lookups(
    database_url: str, nats_url: str, auth_url: str, new_user: NewUser
) -> None:
    settings = settings_for(database_url, nats_url, auth_url)
    async with running_producer(create_app(settings)) as base:
        await wait_ready(base)
        alice, bob, eve = new_user(), new_user(), new_user()
        conversation = (await create_conversation(base, alice, "direct", bob))["id"]
        foreign = (await create_conversation(base, bob, "direct", eve))["id"]

        async def talk() -> None:
            async with open_socket(base, alice) as ws:
                await ws.ping()
                for _ in range(2):
                    await ws.send_message(conversation)
                    assert (await ws.recv())["type"] == "ack"
                await ws.send_message(foreign)
                assert (await ws.recv())["code"] == "forbidden"
                await ws.send_raw("{not json")
                assert (await ws.recv())["code"] == "invalid_json"

        series = [
            ws_("frames_in_total", type="ping"),
            ws_("frames_in_total", type="send"),
            ws_("frames_in_total", type="invalid"),
            ws_("messages_published_total", transport="ws"),
            ws_("ack_latency_seconds_count", transport="ws"),
            ws_("errors_total", transport="ws", code="forbidden"),
            ws_("errors_total", transport="ws", code="invalid_json"),
            ws_("sends_total", transport="ws", outcome="accepted"),
            # Both conversations were created here: their memberships are cached.
            ws_("membership_checks_total", result="hit"),
            ws_("membership_checks_total", result="miss"),
            ws_("frames_out_total", type="ack"),
            ws_("frames_out_total", type="error"),
            ws_("frames_out_total", type="pong"),
        ]
        assert await deltas(base, series, talk) == [1, 3, 1, 2, 2, 1, 1, 2, 3, 0, 2, 2, 1]


async def test_rate_limits_and_in_flight_refusals_are_counted(
    database_url: str, nats_server: EmbeddedNats, auth_url: str, new_user: NewUser
) -> None:
    settings = settings_for(
        database_url,
        nats_server.url,
        auth_url,
        max_in_flight=1,
        rate_burst=3,
        rate_per_second=0.01,
    )
    async with running_producer(create_app(settings)) as base:
        await wait_ready(base)
        alice, bob = new_user(), new_user()
        conversation = (await create_conversation(base, alice, "direct", bob))["id"]

        async def crowd() -> None:
            async with open_socket(base, alice) as ws:
                assert nats_server.proc is not None
                os.kill(nats_server.proc.pid, signal.SIGSTOP)  # the first send waits
                try:
                    first = await ws.send_message(conversation)
                    second = await ws.send_message(conversation)
                    refused = await ws.recv()
                    assert (refused["code"], refused["ref"]) == ("too_many_in_flight", second)
                    await ws.send({"type": "ping"})  # the third token
                    assert await ws.recv() == {"type": "pong"}
                    await ws.send({"type": "ping"})
                    assert (await ws.recv())["code"] == "rate_limited"
                finally:
                    os.kill(nats_server.proc.pid, signal.SIGCONT)
                ack = await ws.recv(timeout=5)
                assert (ack["type"], ack["client_msg_id"]) == ("ack", first)
            async with httpx.AsyncClient(base_url=f"http://{base}") as http:
                for expected in (202, 202, 202, 429):
                    response = await http.post(
                        "/v1/messages",
                        headers=alice.headers,
                        json={
                            "client_msg_id": str(uuid.uuid4()),
                            "conversation_id": conversation,
                            "body": "x",
                        },
                    )
                    assert response.status_code == expected, response.text

        series = [
            ws_("in_flight_refusals_total"),
            ws_("rate_limited_total", transport="ws"),
            ws_("rate_limited_total", transport="http"),
            ws_("errors_total", transport="http", code="rate_limited"),
            ws_("errors_total", transport="ws", code="too_many_in_flight"),
            ws_("messages_published_total", transport="http"),
            ws_("ack_latency_seconds_count", transport="http"),
        ]
        assert await deltas(base, series, crowd) == [1, 1, 1, 1, 1, 3, 3]


async def test_another_producers_membership_change_reaches_this_producers_cache(
    database_url: str, nats_url: str, auth_url: str, new_user: NewUser
) -> None:
    """Bob's membership is cached by producer B (TTL 30 s); Alice removes him through producer
    A: B learns it from A's conversation event, not from its TTL."""
    settings = settings_for(database_url, nats_url, auth_url)
    async with (
        running_producer(create_app(settings)) as a,
        running_producer(create_app(settings)) as b,
    ):
        await asyncio.gather(wait_ready(a), wait_ready(b))
        alice, bob = new_user(), new_user()
        group = (await create_conversation(a, alice, "group", bob, title="t"))["id"]
        async with open_socket(b, bob) as ws:
            await ws.send_message(group)
            assert (await ws.recv())["type"] == "ack"  # B read and cached the membership
            async with httpx.AsyncClient(base_url=f"http://{a}") as http:
                removed = await http.delete(
                    f"/v1/conversations/{group}/members/{bob.id}", headers=alice.headers
                )
                assert removed.status_code == 204
            deadline = asyncio.get_running_loop().time() + 5
            while True:
                await ws.send_message(group)
                answer = await ws.recv()
                if answer["type"] == "error":
                    assert answer["code"] == "forbidden"
                    break
                assert asyncio.get_running_loop().time() < deadline, "event never applied"
                await asyncio.sleep(0.05)
