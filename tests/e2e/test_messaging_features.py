"""Issue 4 features end to end, over real processes (auth, producer, two consumers, nats-server,
PostgreSQL): resume with `recovered:false` past `max_recovery`, read markers and unread counts,
presence across the two consumer instances (also when one dies), and session revocation closing
every open socket of the session with 4503.

The module runs its own system with `max_recovery` 5 and a 1 s presence heartbeat (offline after
3 missed beats), so the limits are reached with a handful of messages and seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from rtm.local.plan import SystemUrls
from rtm.local.runner import LocalSystem
from rtm.local.settings import RunnerSettings
from tests.e2e.client import User, next_frame, sign_up, ws_url

MAX_RECOVERY = 5


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    settings = RunnerSettings.for_tests(
        tmp_path_factory.mktemp("rtm-features"),
        consumers=2,
        service_env={"RTM_MAX_RECOVERY": str(MAX_RECOVERY), "RTM_PRESENCE_INTERVAL_S": "1"},
    )
    with LocalSystem(settings, cleanup=True) as running:
        yield running


# -- helpers ------------------------------------------------------------------------------------


@asynccontextmanager
async def socket(base: str, user: User) -> AsyncIterator[websockets.ClientConnection]:
    async with websockets.connect(ws_url(base), additional_headers=user.headers) as ws:
        yield ws


async def live(base: str, user: User, ws_stack: list[Any]) -> websockets.ClientConnection:
    """A consumer socket past `ready` and an empty resume (live messages flow at once)."""
    ws = await websockets.connect(ws_url(base), additional_headers=user.headers)
    ws_stack.append(ws)
    await next_frame(ws, "ready")
    await ws.send(json.dumps({"type": "resume", "cursors": {}}))
    await next_frame(ws, "resumed")
    return ws


async def group(urls: SystemUrls, owner: User, *members: User) -> str:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        created = await http.post(
            f"{urls.producer}/v1/conversations",
            headers=owner.headers,
            json={"kind": "group", "member_ids": [m.id for m in members], "title": "t"},
        )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def send(urls: SystemUrls, sender: User, conversation: str, *bodies: str) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        for body in bodies:
            sent = await http.post(
                f"{urls.producer}/v1/messages",
                headers=sender.headers,
                json={
                    "client_msg_id": str(uuid.uuid4()),
                    "conversation_id": conversation,
                    "body": body,
                },
            )
            assert sent.status_code == 202, sent.text


async def conversations(urls: SystemUrls, user: User, instance: int = 0) -> dict[str, Any]:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        listed = await http.get(
            f"{urls.consumers[instance]}/v1/conversations", headers=user.headers
        )
    assert listed.status_code == 200, listed.text
    return {c["id"]: c for c in listed.json()["conversations"]}


async def until(check: Any, timeout: float = 10.0) -> Any:
    """Poll the async `check` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def stored_up_to(urls: SystemUrls, user: User, conversation: str, seq: int) -> None:
    async def reached() -> bool:
        return bool((await conversations(urls, user))[conversation]["last_seq"] >= seq)

    await until(reached)


async def presence(
    ws: websockets.ClientConnection, user: User, status: str, timeout: float
) -> None:
    """Wait for `user`'s presence `status` (skipping other frames)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await next_frame(ws, "presence", timeout=max(0.01, deadline - time.monotonic()))
        if frame["user_id"] == user.id and frame["status"] == status:
            return


async def close_code(ws: websockets.ClientConnection, timeout: float) -> int:
    """The close code of `ws`, reading (and dropping) frames until it closes."""

    async def drain() -> None:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)

    with pytest.raises(ConnectionClosed) as closed:
        await drain()
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


async def login_again(urls: SystemUrls, user: User) -> User:
    """A second session of the same user."""
    async with httpx.AsyncClient(base_url=urls.auth, trust_env=False, timeout=10) as client:
        login = await client.post(
            "/v1/auth/login",
            json={"username": user.username, "password": "correct horse battery staple"},
        )
    assert login.status_code == 200, login.text
    body = login.json()
    return User(
        user.id, user.username, body["access_token"], body["refresh_token"], body["session_id"]
    )


# -- resume --------------------------------------------------------------------------------------


async def test_resume_on_the_other_instance_sends_the_missed_messages_or_says_not_recovered(
    features: LocalSystem,
) -> None:
    urls = features.urls
    alice, bob = await sign_up(urls), await sign_up(urls)
    small, large = await group(urls, alice, bob), await group(urls, alice, bob)
    async with socket(urls.consumers[0], bob) as ws:
        await next_frame(ws, "ready")
        await ws.send(json.dumps({"type": "resume", "cursors": {}}))
        await next_frame(ws, "resumed")
        await send(urls, alice, small, "s1")
        await send(urls, alice, large, "l1")
        first = [await next_frame(ws, "message") for _ in range(2)]
    assert sorted((m["conversation_id"], m["seq"]) for m in first) == sorted(
        [(small, 1), (large, 1)]
    )

    # Bob is away: 3 messages in `small` (within max_recovery), 7 in `large` (past it).
    await send(urls, alice, small, "s2", "s3", "s4")
    await send(urls, alice, large, *(f"l{n}" for n in range(2, 9)))
    await stored_up_to(urls, bob, small, 4)
    await stored_up_to(urls, bob, large, 8)

    async with socket(urls.consumers[1], bob) as ws:
        await next_frame(ws, "ready")
        await ws.send(json.dumps({"type": "resume", "cursors": {small: 1, large: 1}}))
        recovered = []
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "resumed":
            if frame["type"] == "message":
                recovered.append((frame["conversation_id"], frame["seq"], frame["body"]))
        assert recovered == [(small, 2, "s2"), (small, 3, "s3"), (small, 4, "s4")]
        assert frame["conversations"] == {
            small: {"last_seq": 4, "recovered": True},
            large: {"last_seq": 8, "recovered": False},
        }
        # Live continues after the seam in both, with no gap and no duplicate.
        await send(urls, alice, small, "s5")
        await send(urls, alice, large, "l9")
        after = [await next_frame(ws, "message") for _ in range(2)]
    assert sorted((m["conversation_id"], m["seq"]) for m in after) == sorted(
        [(small, 5), (large, 9)]
    )
    # What was not recovered, the client pages from history.
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        page = await http.get(
            f"{urls.consumers[1]}/v1/conversations/{large}/messages",
            params={"after_seq": 1, "limit": 7},
            headers=bob.headers,
        )
    assert [m["seq"] for m in page.json()["messages"]] == list(range(2, 9))


# -- read markers and unread counts --------------------------------------------------------------


async def test_read_markers_are_fanned_out_stored_monotonic_and_counted_in_the_list(
    features: LocalSystem,
) -> None:
    urls = features.urls
    alice, bob = await sign_up(urls), await sign_up(urls)
    older, newer = await group(urls, alice, bob), await group(urls, alice, bob)
    await send(urls, alice, newer, "n1")
    await send(urls, alice, older, "o1", "o2", "o3")  # now the most recently active
    await stored_up_to(urls, bob, older, 3)
    await stored_up_to(urls, bob, newer, 1)

    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        listed = await http.get(f"{urls.consumers[1]}/v1/conversations", headers=bob.headers)
    order = [c["id"] for c in listed.json()["conversations"]]
    assert order.index(older) < order.index(newer), "newest activity first"
    entry = (await conversations(urls, bob, 1))[older]
    assert (entry["last_seq"], entry["read_seq"], entry["unread_count"]) == (3, 0, 3)
    assert (entry["last_message"]["seq"], entry["last_message"]["body"]) == (3, "o3")

    stack: list[Any] = []
    try:
        alice_ws = await live(urls.consumers[0], alice, stack)
        async with socket(urls.producer, bob) as bob_producer:
            await bob_producer.send(
                json.dumps({"type": "read", "conversation_id": older, "seq": 2})
            )
            event = await next_frame(alice_ws, "read")
            assert event == {"type": "read", "conversation_id": older, "user_id": bob.id, "seq": 2}

            async def marked() -> bool:
                got = (await conversations(urls, bob, 1))[older]
                return bool(got["read_seq"] == 2 and got["unread_count"] == 1)

            await until(marked)
            # A lower marker never moves it back.
            await bob_producer.send(
                json.dumps({"type": "read", "conversation_id": older, "seq": 1})
            )
            assert (await next_frame(alice_ws, "read"))["seq"] == 1
            await asyncio.sleep(0.5)
            got = (await conversations(urls, bob, 0))[older]
            assert (got["read_seq"], got["unread_count"]) == (2, 1)
    finally:
        for ws in stack:
            await ws.close()


async def test_a_senders_own_messages_are_never_unread(features: LocalSystem) -> None:
    # Issue 14: storing a message moves its sender's read marker to it (never backwards).
    urls = features.urls
    alice, bob = await sign_up(urls), await sign_up(urls)
    conversation = await group(urls, alice, bob)
    await send(urls, bob, conversation, "b1")
    await send(urls, alice, conversation, "a2", "a3")
    await send(urls, bob, conversation, "b4")
    await stored_up_to(urls, alice, conversation, 4)

    mine = (await conversations(urls, alice, 1))[conversation]
    assert (mine["last_seq"], mine["read_seq"], mine["unread_count"]) == (4, 3, 1)
    theirs = (await conversations(urls, bob, 0))[conversation]
    assert (theirs["read_seq"], theirs["unread_count"]) == (4, 0)


# -- presence ------------------------------------------------------------------------------------


async def test_presence_crosses_consumer_instances(features: LocalSystem) -> None:
    urls = features.urls
    alice, bob = await sign_up(urls), await sign_up(urls)
    await group(urls, alice, bob)
    stack: list[Any] = []
    try:
        alice_ws = await live(urls.consumers[0], alice, stack)
        async with socket(urls.consumers[1], bob) as bob_ws:
            await next_frame(bob_ws, "ready")
            await presence(alice_ws, bob, "online", timeout=5)
            await presence(bob_ws, alice, "online", timeout=5)  # told on connect
        await presence(alice_ws, bob, "offline", timeout=5)
    finally:
        for ws in stack:
            await ws.close()


# -- revocation ----------------------------------------------------------------------------------


async def test_logout_closes_every_socket_of_the_session_with_4503_within_5s(
    features: LocalSystem,
) -> None:
    urls = features.urls
    carol = await sign_up(urls)
    other_session = await login_again(urls, carol)
    sockets = [
        await websockets.connect(ws_url(base), additional_headers=carol.headers)
        for base in (urls.producer, *urls.consumers)
    ]
    survivor = await websockets.connect(
        ws_url(urls.consumers[0]), additional_headers=other_session.headers
    )
    try:
        for ws in sockets[1:]:
            await next_frame(ws, "ready")
        await next_frame(survivor, "ready")
        await sockets[0].send(json.dumps({"type": "ping"}))
        await next_frame(sockets[0], "pong")

        began = time.monotonic()
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            out = await http.post(
                f"{urls.auth}/v1/auth/logout", json={"refresh_token": carol.refresh_token}
            )
        assert out.status_code == 204, out.text
        codes = await asyncio.gather(*(close_code(ws, timeout=5) for ws in sockets))
        elapsed = time.monotonic() - began
        assert codes == [4503, 4503, 4503]
        assert elapsed < 5
        # The user's other session is not touched.
        await survivor.send(json.dumps({"type": "ping"}))
        await next_frame(survivor, "pong")
    finally:
        for ws in (*sockets, survivor):
            await ws.close()


# -- a consumer instance dies --------------------------------------------------------------------


@pytest.mark.slow
async def test_users_of_a_killed_consumer_instance_go_offline_by_heartbeat_ttl(
    features: LocalSystem,
) -> None:
    urls = features.urls
    alice, bob = await sign_up(urls), await sign_up(urls)
    await group(urls, alice, bob)
    stack: list[Any] = []
    try:
        alice_ws = await live(urls.consumers[0], alice, stack)
        await live(urls.consumers[1], bob, stack)
        await presence(alice_ws, bob, "online", timeout=5)
        killed = time.monotonic()
        await asyncio.to_thread(features.kill, "consumer-2")
        await presence(alice_ws, bob, "offline", timeout=10)  # no disconnect event: the TTL
        offline_after = time.monotonic() - killed
        print(f"\nbob offline {offline_after:.1f}s after his consumer instance was killed")
    finally:
        for ws in stack:
            await ws.close()
        await asyncio.to_thread(features.wait_ready, ["consumer-2"], 30)
