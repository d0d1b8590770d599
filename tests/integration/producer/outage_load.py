"""Clients for the outage tests: sockets and an HTTP client sending to many conversations before,
during and after an outage, recording every answer; then the checks every outage must pass.

`sends_through(base, world, outage, stack)` runs the scenario; `outage` is an async context
manager that breaks a dependency on entry and restores it on exit
(`test_producer_outages_under_load.py` has the ones for PostgreSQL and NATS).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
import orjson
import psycopg
from websockets.exceptions import ConnectionClosed

from rtm.shared.contract import STREAM, AcceptedMessage
from tests.integration.producer.conftest import (
    NewUser,
    Socket,
    User,
    create_conversation,
    open_socket,
)
from tests.support.db import register_users

USERS = 6  # one socket each, every user a member of every conversation
KNOWN = 6  # conversations created through this producer: in its membership cache
UNSEEN = 6  # conversations created behind its back: never in its cache before the outage
SEND_INTERVAL_S = 0.15  # per socket; well under the 20 frames/s limit and 64 in flight
OUTAGE_S = 5.0  # longer than every dependency timeout of the producer (0.5 s and 2 s)
SETTLE_S = 60.0  # a bound for waits that must end (never asserted as a latency)

Outage = Callable[[], AbstractAsyncContextManager[None]]


# -- clients ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A conversation to send to; `known`: in the producer's membership cache beforehand."""

    conversation: str
    known: bool


@dataclass
class Sender:
    """One user's producer socket: records every answer by client_msg_id, noting which came
    while the outage lasted, and anything else the server sent."""

    user: User
    socket: Socket
    outage: asyncio.Event
    targets: dict[str, Target] = field(default_factory=dict)
    sends: Counter[str] = field(default_factory=Counter)
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    during_outage: list[tuple[Target, dict[str, Any]]] = field(default_factory=list)
    strays: list[dict[str, Any]] = field(default_factory=list)
    dropped: str | None = None

    async def read(self) -> None:
        try:
            async for raw in self.socket.connection:
                frame: dict[str, Any] = orjson.loads(raw)
                key = frame.get("client_msg_id") if frame["type"] == "ack" else frame.get("ref")
                if frame["type"] not in ("ack", "error") or key not in self.targets:
                    self.strays.append(frame)
                    continue
                self.answers[key].append(frame)
                if self.outage.is_set():
                    self.during_outage.append((self.targets[key], frame))
        except ConnectionClosed as exc:
            self.dropped = repr(exc)
            return
        self.dropped = f"closed by the server: {self.socket.connection.close_code}"

    async def send(self, target: Target, key: str | None = None) -> str:
        key = key or str(uuid.uuid4())
        self.targets[key] = target
        self.sends[key] += 1
        await self.socket.send_message(target.conversation, "during an outage", key)
        return key

    def unanswered(self) -> int:
        return sum(count - len(self.answers[key]) for key, count in self.sends.items())

    async def settled(self) -> None:
        """Until every send has its answer (or the socket is gone)."""
        deadline = asyncio.get_running_loop().time() + SETTLE_S
        while self.unanswered() > 0 and self.dropped is None:
            assert asyncio.get_running_loop().time() < deadline, f"{self.unanswered()} unanswered"
            await asyncio.sleep(0.05)
        assert self.dropped is None, self.dropped

    async def keep_sending(self, targets: list[Target], start: int, stop: asyncio.Event) -> None:
        for i in itertools.count(start):
            if stop.is_set():
                return
            await self.send(targets[i % len(targets)])
            await asyncio.sleep(SEND_INTERVAL_S)

    async def resend_until_acked(self) -> None:
        """What a client does after `unavailable`: the same client_msg_id again, after
        `retry_after_ms`, until it is acked."""
        for key, target in list(self.targets.items()):
            attempts = 0
            while not any(answer["type"] == "ack" for answer in self.answers[key]):
                attempts += 1
                assert attempts <= 30, (key, self.answers[key])
                last = self.answers[key][-1]
                if last["type"] == "error" and attempts > 1:
                    await asyncio.sleep(last.get("retry_after_ms", 1000) / 1000)
                await self.send(target, key)
                await self.settled()
                await asyncio.sleep(0.06)  # stay under the frame rate limit


@dataclass
class World:
    """Users and conversations made before the outage."""

    users: list[User]
    known: list[Target]
    unseen: list[Target]

    @property
    def targets(self) -> list[Target]:
        return [t for pair in zip(self.known, self.unseen, strict=True) for t in pair]


async def make_world(base: str, database_url: str, new_user: NewUser) -> World:
    users = [new_user() for _ in range(USERS)]
    register_users(database_url, [user.id for user in users])  # the outage's own database
    creator, others = users[0], users[1:]
    known = [
        Target((await create_conversation(base, creator, "group", *others))["id"], known=True)
        for _ in range(KNOWN)
    ]
    unseen = [Target(str(uuid.uuid4()), known=False) for _ in range(UNSEEN)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for target in unseen:
            conn.execute(
                "INSERT INTO messaging.conversations (id, kind, title, created_by, created_at)"
                " VALUES (%s, 'group', 'unseen', %s, now())",
                (target.conversation, creator.id),
            )
            for user in users:
                conn.execute(
                    "INSERT INTO messaging.members (conversation_id, user_id) VALUES (%s, %s)",
                    (target.conversation, user.id),
                )
    return World(users, known, unseen)


@dataclass
class HttpOutcome:
    """One HTTP answer: `send` (POST /v1/messages, `key` its client_msg_id) or `create`."""

    route: str
    status: int
    body: dict[str, Any]
    user: User
    key: str | None = None


async def keep_posting(
    base: str, user: User, targets: list[Target], stop: asyncio.Event, log: list[HttpOutcome]
) -> None:
    """HTTP sends (and now and then a conversation) while the outage lasts."""
    async with httpx.AsyncClient(base_url=f"http://{base}", timeout=SETTLE_S) as http:
        for i in itertools.count():
            if stop.is_set():
                return
            key = str(uuid.uuid4())
            body = {"client_msg_id": key, "conversation_id": targets[i % len(targets)].conversation}
            response = await http.post(
                "/v1/messages", headers=user.headers, json={**body, "body": "over http"}
            )
            log.append(HttpOutcome("send", response.status_code, response.json(), user, key))
            if i % 3 == 0:
                response = await http.post(
                    "/v1/conversations",
                    headers=user.headers,
                    json={"kind": "group", "member_ids": [], "title": "new"},
                )
                log.append(HttpOutcome("create", response.status_code, response.json(), user))
            await asyncio.sleep(0.3)


async def stream_copies(nats_url: str) -> dict[str, list[AcceptedMessage]]:
    """Every message in the stream, by `Nats-Msg-Id` (`<sender>:<client_msg_id>`)."""
    copies: dict[str, list[AcceptedMessage]] = defaultdict(list)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(STREAM)).state
        for seq in range(state.first_seq, state.last_seq + 1):
            raw = await js.get_msg(STREAM, seq)
            assert raw.headers is not None
            assert raw.data is not None
            copies[raw.headers["Nats-Msg-Id"]].append(AcceptedMessage.decode(raw.data))
    finally:
        await nc.close()
    return copies


# -- the scenario ----------------------------------------------------------------------------


@dataclass
class Run:
    """Everything the clients saw."""

    senders: list[Sender]
    http: list[HttpOutcome]


async def sends_through(base: str, world: World, outage: Outage, stack: AsyncExitStack) -> Run:
    """Sockets sending to every conversation before, during and after `outage`; then every
    unacked send is resent until acked and every socket sends to every unseen conversation."""
    during = asyncio.Event()
    senders = []
    for user in world.users:
        socket = await stack.enter_async_context(open_socket(base, user))
        sender = Sender(user, socket, during)
        senders.append(sender)
        reader = asyncio.create_task(sender.read())
        stack.callback(reader.cancel)
    for sender in senders:  # each socket's first sends: the producer is warm, the pool open
        for target in world.known:
            await sender.send(target)
        await sender.settled()
    stop = asyncio.Event()
    http: list[HttpOutcome] = []
    targets = world.targets
    traffic = [
        asyncio.create_task(sender.keep_sending(targets, i, stop))
        for i, sender in enumerate(senders)
    ]
    traffic.append(asyncio.create_task(keep_posting(base, world.users[0], targets, stop, http)))
    try:
        await asyncio.sleep(SEND_INTERVAL_S * 3)
        async with outage():
            during.set()
            await asyncio.sleep(OUTAGE_S)
            during.clear()
        await asyncio.sleep(SEND_INTERVAL_S * 3)
    finally:
        stop.set()
        await asyncio.gather(*traffic)
    for sender in senders:
        await sender.settled()
    await asyncio.gather(*(sender.resend_until_acked() for sender in senders))
    for sender in senders:  # the dependency is back: conversations never cached are served
        for target in world.unseen:
            key = await sender.send(target)
            await sender.settled()
            assert sender.answers[key][-1]["type"] == "ack", sender.answers[key]
            await asyncio.sleep(0.06)
    return Run(senders, http)


def assert_only_acks_and_unavailable(run: Run) -> None:
    """Every WebSocket answer is an ack or `unavailable` with `retry_after_ms`, one per send,
    on sockets still open; every HTTP answer a success or 503 `unavailable`."""
    wrong: list[dict[str, Any]] = []
    for sender in run.senders:
        assert sender.dropped is None, sender.dropped
        assert sender.strays == []
        for key, count in sender.sends.items():
            answers = sender.answers[key]
            assert len(answers) == count, (key, answers)
            wrong += [
                answer
                for answer in answers
                if answer["type"] == "error"
                and not (
                    answer["code"] == "unavailable"
                    and isinstance(answer.get("retry_after_ms"), int)
                    and answer["retry_after_ms"] > 0
                )
            ]
            acked = {answer["message_id"] for answer in answers if answer["type"] == "ack"}
            assert len(acked) == 1, (key, answers)
    wrong_http = [
        outcome
        for outcome in run.http
        if outcome.status != (202 if outcome.route == "send" else 201)
        and not (outcome.status == 503 and outcome.body["error"]["code"] == "unavailable")
    ]
    codes = Counter(answer["code"] for answer in wrong)
    assert (codes, wrong[:3], wrong_http) == (Counter(), [], [])


async def assert_each_acked_send_stored_once(run: Run, nats_url: str) -> None:
    """The stream holds one copy of every acked send, the one its acks name."""
    acked: dict[str, str] = {}
    for sender in run.senders:
        for key, answers in sender.answers.items():
            message_ids = {a["message_id"] for a in answers if a["type"] == "ack"}
            acked[f"{sender.user.id}:{key}"] = message_ids.pop()
    for outcome in run.http:
        if outcome.route == "send" and outcome.status == 202:
            acked[f"{outcome.user.id}:{outcome.key}"] = outcome.body["message_id"]
    copies = await stream_copies(nats_url)
    twice = {msg_id: len(found) for msg_id, found in copies.items() if len(found) > 1}
    assert twice == {}
    for msg_id, message_id in acked.items():
        assert [str(c.message_id) for c in copies[msg_id]] == [message_id], msg_id


def felt(run: Run, *, known: bool, kind: str) -> bool:
    """Did some send to a known (or unseen) conversation get `kind` while the outage lasted?"""
    return any(
        target.known is known and answer["type"] == kind
        for sender in run.senders
        for target, answer in sender.during_outage
    )
