"""Issue 5, health and automatic recovery: PostgreSQL and NATS go away and come back under the
real processes, and nothing needs a restart.

(a) PostgreSQL down: the producer keeps acking sends to a conversation it already knows
    (JetStream holds them; a resend is deduplicated by `Nats-Msg-Id`), refuses a conversation it
    never saw with `unavailable`, and stays ready; the consumer reports not ready naming
    postgres. After PostgreSQL returns, every acked message is stored exactly once with dense
    seqs and reaches the receiver, who stayed connected (or resumed, as a client does).
(b) NATS down: sends answer `unavailable` within 2 s and are never acked; every service reports
    not ready naming nats. After NATS returns, the same processes (same PIDs) are ready again,
    and a resend with the same client_msg_id is acked once and stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import websockets

from rtm.local.runner import LocalSystem
from rtm.local.settings import RunnerSettings
from tests.e2e.client import User, next_frame, sign_up, ws_url

pytestmark = pytest.mark.slow

CONNECT_ERRORS = (OSError, TimeoutError, websockets.WebSocketException)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    settings = RunnerSettings.for_tests(tmp_path_factory.mktemp("rtm-outages"), consumers=1)
    with LocalSystem(settings, cleanup=True) as running:
        yield running


# -- helpers ---------------------------------------------------------------------------------


async def readiness(base: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        response = await http.get(f"{base}/health/ready")
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def until_ready(base: str, failing: str | None = None, timeout: float = 20.0) -> None:
    """Poll `/health/ready` until it answers 200 (`failing` None) or 503 naming `failing`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, body = await readiness(base)
        if failing is None and status == 200:
            return
        if failing is not None and status == 503 and failing in body.get("failing", {}):
            return
        assert asyncio.get_running_loop().time() < deadline, (base, status, body)
        await asyncio.sleep(0.1)


async def new_conversation(system: LocalSystem, creator: User, *members: User) -> str:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        created = await http.post(
            f"{system.urls.producer}/v1/conversations",
            headers=creator.headers,
            json={"kind": "group", "member_ids": [m.id for m in members], "title": "t"},
        )
    assert created.status_code == 201, created.text
    conversation: str = created.json()["id"]
    return conversation


def send_frame(conversation: str, client_msg_id: str, body: str = "hi") -> str:
    return json.dumps(
        {
            "type": "send",
            "client_msg_id": client_msg_id,
            "conversation_id": conversation,
            "body": body,
        }
    )


async def answer(ws: websockets.ClientConnection, timeout: float = 10) -> dict[str, Any]:
    """The next ack or error frame."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] in ("ack", "error"):
            return dict(frame)


class Receiver:
    """A member on the consumer's WebSocket, as a client app behaves: it records the
    conversation's messages; when its connection drops it reconnects and `resume`s from the
    last seq it saw. Each message must be the next seq (no gap, no duplicate)."""

    def __init__(self, base: str, user: User, conversation: str) -> None:
        self.base, self.user, self.conversation = base, user, conversation
        self.messages: list[dict[str, Any]] = []
        self.connections = 0
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        return int(self.messages[-1]["seq"]) if self.messages else 0

    async def run(self) -> None:
        while True:
            with contextlib.suppress(*CONNECT_ERRORS):
                async with websockets.connect(
                    ws_url(self.base), additional_headers=self.user.headers, open_timeout=5
                ) as ws:
                    await next_frame(ws, "ready")
                    self.connections += 1
                    if self.connections > 1:
                        cursors = {self.conversation: self.last_seq}
                        await ws.send(json.dumps({"type": "resume", "cursors": cursors}))
                    self.connected.set()
                    async for raw in ws:
                        frame = json.loads(raw)
                        if frame["type"] != "message":
                            continue
                        if frame["conversation_id"] != self.conversation:
                            continue
                        assert frame["seq"] == self.last_seq + 1, (frame, self.last_seq)
                        self.messages.append(frame)
            await asyncio.sleep(0.3)

    async def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.messages) < count:
            if self.task is not None and self.task.done():
                self.task.result()  # a broken order assertion surfaces here
            assert asyncio.get_running_loop().time() < deadline, (len(self.messages), count)
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def receiving(base: str, user: User, conversation: str) -> AsyncIterator[Receiver]:
    receiver = Receiver(base, user, conversation)
    receiver.task = task = asyncio.create_task(receiver.run())
    try:
        await asyncio.wait_for(receiver.connected.wait(), 10)
        yield receiver
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def stored(system: LocalSystem, conversation: str) -> list[tuple[int, str, str]]:
    """(seq, message_id, client_msg_id) of the conversation's stored messages, by seq."""
    with psycopg.connect(system.database_url) as conn:
        rows = conn.execute(
            "SELECT seq, message_id::text, client_msg_id::text FROM messaging.messages"
            " WHERE conversation_id = %s ORDER BY seq",
            (conversation,),
        ).fetchall()
    return [(int(seq), message_id, client_msg_id) for seq, message_id, client_msg_id in rows]


# -- tests -----------------------------------------------------------------------------------


async def test_postgresql_down_sends_to_known_conversations_are_acked_and_stored_after(
    system: LocalSystem,
) -> None:
    urls = system.urls
    alice, bob = await sign_up(urls), await sign_up(urls)
    conversation = await new_conversation(system, alice, bob)
    unseen = str(uuid.uuid4())  # exists, but this producer never handled it
    with psycopg.connect(system.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO messaging.conversations (id, kind, title, created_by, created_at)"
            " VALUES (%s, 'group', 'u', %s, now())",
            (unseen, alice.id),
        )
        conn.execute(
            "INSERT INTO messaging.members (conversation_id, user_id) VALUES (%s, %s)",
            (unseen, alice.id),
        )
    async with (
        receiving(urls.consumer, bob, conversation) as bob_receiver,
        websockets.connect(ws_url(urls.producer), additional_headers=alice.headers) as alice_ws,
    ):
        keys = [str(uuid.uuid4()) for _ in range(6)]
        await alice_ws.send(send_frame(conversation, keys[0], "before"))
        acks = [await answer(alice_ws)]
        assert acks[0]["type"] == "ack", acks
        await bob_receiver.wait_for(1)

        await asyncio.to_thread(system.hold, "postgres")
        try:
            for key in keys[1:]:
                await alice_ws.send(send_frame(conversation, key, "during"))
                acks.append(await answer(alice_ws))
            assert [a["type"] for a in acks] == ["ack"] * 6, acks
            assert not any(a["duplicate"] for a in acks)
            # A resend while PostgreSQL is down: JetStream's Nats-Msg-Id window dedups it.
            await alice_ws.send(send_frame(conversation, keys[3], "again"))
            resent = await answer(alice_ws)
            assert (resent["type"], resent["duplicate"]) == ("ack", True), resent
            assert resent["message_id"] == acks[3]["message_id"]
            # A conversation it never saw: membership cannot be checked, never accepted blindly.
            await alice_ws.send(send_frame(unseen, str(uuid.uuid4())))
            refused = await answer(alice_ws)
            assert (refused["type"], refused["code"]) == ("error", "unavailable"), refused
            await until_ready(urls.consumer, failing="postgres")
            assert (await readiness(urls.producer))[0] == 200  # it still serves sends
        finally:
            await asyncio.to_thread(system.release, "postgres")

        await bob_receiver.wait_for(6)
        await until_ready(urls.consumer)
        await alice_ws.send(send_frame(unseen, str(uuid.uuid4())))
        assert (await answer(alice_ws))["type"] == "ack"  # PostgreSQL answers again

    assert [m["message_id"] for m in bob_receiver.messages] == [a["message_id"] for a in acks]
    assert stored(system, conversation) == [
        (seq, ack["message_id"], key)
        for seq, (ack, key) in enumerate(zip(acks, keys, strict=True), start=1)
    ]


async def test_nats_down_sends_are_unavailable_in_time_and_everything_recovers_in_place(
    system: LocalSystem,
) -> None:
    urls = system.urls
    alice, bob = await sign_up(urls), await sign_up(urls)
    conversation = await new_conversation(system, alice, bob)
    services = ["auth", "producer", "consumer"]
    pids = {name: system.pid(name) for name in services}
    async with (
        receiving(urls.consumer, bob, conversation) as bob_receiver,
        websockets.connect(ws_url(urls.producer), additional_headers=alice.headers) as alice_ws,
    ):
        key = str(uuid.uuid4())
        await asyncio.to_thread(system.hold, "nats")
        try:
            for base in (urls.producer, urls.consumer, urls.auth):
                await until_ready(base, failing="nats")
            loop = asyncio.get_running_loop()
            started = loop.time()
            await alice_ws.send(send_frame(conversation, key))
            error = await answer(alice_ws, timeout=5)
            assert loop.time() - started < 2.0
            assert (error["type"], error["code"], error["ref"]) == ("error", "unavailable", key)
            started = loop.time()
            async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
                response = await http.post(
                    f"{urls.producer}/v1/messages",
                    headers=alice.headers,
                    json={"client_msg_id": key, "conversation_id": conversation, "body": "hi"},
                )
            assert loop.time() - started < 2.0
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "unavailable"
        finally:
            await asyncio.to_thread(system.release, "nats")

        for base in (urls.producer, urls.consumer, urls.auth):
            await until_ready(base)
        assert {name: system.pid(name) for name in services} == pids  # nothing restarted
        await alice_ws.send(send_frame(conversation, key))
        ack = await answer(alice_ws)
        assert (ack["type"], ack["client_msg_id"], ack["duplicate"]) == ("ack", key, False)
        await bob_receiver.wait_for(1)

    assert [m["message_id"] for m in bob_receiver.messages] == [ack["message_id"]]
    assert stored(system, conversation) == [(1, ack["message_id"], key)]
