"""Crash tests (issue 4): nothing acked is lost, stored twice or reordered through `kill -9`.

Two senders pipeline 2,000 messages into four group conversations over the producer WebSocket,
behaving as a well-behaved client does: every ack is recorded; on a disconnect, an `unavailable`
error or a silent timeout the unacked sends are sent again, in order, with the same
client_msg_id. Two receivers (one on each consumer instance, members of every conversation)
record every `message` frame; when their connection drops they reconnect to the same instance
and `resume` from the last seq they saw per conversation.

While the messages flow, consumer-1, the producer, nats-server (restarted on its data folder,
`sync_interval: always`) and consumer-2 are each killed with SIGKILL, one after another. Then:

* the database holds every acked message exactly once, seqs dense 1..N per conversation, seq
  order = JetStream order, per-sender order kept (`check_history`), and every ack's
  `message_id` is the stored one;
* each receiver saw, on every connection, each conversation's messages with seq exactly one
  more than the last it had (no gap, no duplicate, live and resumed alike), and ends with all of
  them.

The figures (stalls after each kill, reconnects, duration) are printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from rtm.chaos.checker import Acked, Stored, check_history
from rtm.local.runner import LocalSystem
from rtm.local.settings import RunnerSettings
from tests.e2e.client import User, next_frame, sign_up, ws_url

pytestmark = pytest.mark.slow

TOTAL = 2000
SENDERS = 2
CONVERSATIONS = 4
WINDOW = 32  # sends in flight per connection (the producer allows 64)
RATE = 80.0  # new messages per second, all senders together: about 25 s of sending
ANSWER_TIMEOUT = 6.0  # no answer for this long with sends in flight: reconnect (PubAck: 2 s)
KILLS = [(250, "consumer-1"), (650, "producer"), (1050, "nats"), (1450, "consumer-2")]
CONNECT_ERRORS = (OSError, TimeoutError, websockets.WebSocketException)


@pytest.fixture(scope="module")
def crash_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    settings = RunnerSettings.for_tests(
        tmp_path_factory.mktemp("rtm-crash"),
        consumers=2,
        # The per-connection frame rate limit is not under test here; the pace is set below.
        service_env={"RTM_RATE_PER_SECOND": "1000", "RTM_RATE_BURST": "1000"},
        restart_max=10,
    )
    with LocalSystem(settings, cleanup=True) as running:
        yield running


@dataclass
class Outgoing:
    index: int
    client_msg_id: str
    conversation_id: str
    body: str
    attempts: int = 0

    def frame(self) -> str:
        return json.dumps(
            {
                "type": "send",
                "client_msg_id": self.client_msg_id,
                "conversation_id": self.conversation_id,
                "body": self.body,
            }
        )


@dataclass
class AckRecord:
    message: Outgoing
    frame: dict[str, Any]
    at: float


class Sender:
    """A well-behaved sending client: pipelines, records acks, resends what was not acked."""

    def __init__(self, user: User, url: str, messages: list[Outgoing], rate: float) -> None:
        self.user = user
        self.url = url
        self.messages = messages
        self.rate = rate
        self.next = 0  # index of the next message never sent
        self.unacked: dict[str, Outgoing] = {}
        self.acks: list[AckRecord] = []
        self.errors: dict[str, int] = {}
        self.connections = 0
        self.problems: list[str] = []
        self.started = 0.0

    @property
    def done(self) -> bool:
        return self.next == len(self.messages) and not self.unacked

    async def run(self) -> None:
        self.started = time.monotonic()
        while not self.done:
            try:
                async with websockets.connect(
                    ws_url(self.url), additional_headers=self.user.headers, open_timeout=5
                ) as ws:
                    self.connections += 1
                    await self._session(ws)
            except CONNECT_ERRORS:
                await asyncio.sleep(0.2)

    async def _session(self, ws: websockets.ClientConnection) -> None:
        # Everything sent before and not acked goes again first, in the order it was first sent.
        resend = sorted(self.unacked.values(), key=lambda m: m.index)
        in_flight: dict[str, Outgoing] = {}
        hold_until = 0.0
        last_answer = time.monotonic()
        while not self.done:
            now = time.monotonic()
            while len(in_flight) < WINDOW and now >= hold_until:
                if resend:
                    message = resend.pop(0)
                elif self.next < len(self.messages) and now >= self._due(self.next):
                    message = self.messages[self.next]
                    self.next += 1
                    self.unacked[message.client_msg_id] = message
                else:
                    break
                message.attempts += 1
                in_flight[message.client_msg_id] = message
                await ws.send(message.frame())
            if not in_flight:
                last_answer = now
            wait = 0.05
            if self.next < len(self.messages):
                wait = max(0.001, min(wait, self._due(self.next) - now))
            try:
                raw = await asyncio.wait_for(ws.recv(), wait)
            except TimeoutError:
                if in_flight and time.monotonic() - last_answer > ANSWER_TIMEOUT:
                    self.errors["timeout"] = self.errors.get("timeout", 0) + 1
                    return  # reconnect; in-flight sends are resent with the same ids
                continue
            frame = json.loads(raw)
            last_answer = time.monotonic()
            if frame["type"] == "ack":
                message = in_flight.pop(frame["client_msg_id"])
                del self.unacked[message.client_msg_id]
                self.acks.append(AckRecord(message, frame, time.monotonic()))
                if frame["duplicate"] and message.attempts == 1:
                    self.problems.append(f"first send acked as a duplicate: {frame}")
            elif frame["type"] == "error":
                code = frame["code"]
                self.errors[code] = self.errors.get(code, 0) + 1
                if code not in ("unavailable", "rate_limited", "too_many_in_flight"):
                    self.problems.append(f"unexpected error frame: {frame}")
                message = in_flight.pop(frame.get("ref") or "", None)
                if message is not None:
                    bisect.insort(resend, message, key=lambda m: m.index)
                pause = frame.get("retry_after_ms") or 300
                hold_until = time.monotonic() + pause / 1000

    def _due(self, index: int) -> float:
        return self.started + index / self.rate


class Receiver:
    """A receiving client on one consumer instance; reconnects and resumes from its cursors."""

    def __init__(self, name: str, user: User, url: str, conversations: list[str]) -> None:
        self.name = name
        self.user = user
        self.url = url
        self.cursor = dict.fromkeys(conversations, 0)
        self.seen: dict[str, list[int]] = {c: [] for c in conversations}
        self.problems: list[str] = []
        self.connections = 0
        self.resumed_at: list[float] = []
        self.dropped_at: list[float] = []  # connection lost (not a failed reconnect attempt)
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with websockets.connect(
                    ws_url(self.url), additional_headers=self.user.headers, open_timeout=5
                ) as ws:
                    self.connections += 1
                    await next_frame(ws, "ready")
                    await ws.send(json.dumps({"type": "resume", "cursors": self.cursor}))
                    try:
                        await self._receive(ws, stop)
                    except CONNECT_ERRORS:
                        self.dropped_at.append(time.monotonic())
                        raise
            except CONNECT_ERRORS:
                await asyncio.sleep(0.2)

    async def _receive(self, ws: websockets.ClientConnection, stop: asyncio.Event) -> None:
        connection = self.connections
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.2)
            except TimeoutError:
                continue
            frame = json.loads(raw)
            if frame["type"] == "message":
                conversation, seq = frame["conversation_id"], frame["seq"]
                if conversation not in self.cursor:
                    continue
                expected = self.cursor[conversation] + 1
                if seq != expected:
                    self.problems.append(
                        f"{self.name} connection {connection}: seq {seq} in {conversation},"
                        f" expected {expected}"
                    )
                self.seen[conversation].append(seq)
                self.cursor[conversation] = max(self.cursor[conversation], seq)
            elif frame["type"] == "resumed":
                self.resumed_at.append(time.monotonic())
                self.ready.set()
                for conversation, report in frame["conversations"].items():
                    if not report["recovered"]:
                        self.problems.append(f"{self.name}: not recovered: {frame}")
                    if report["last_seq"] < self.cursor[conversation]:
                        self.problems.append(f"{self.name}: resumed behind its cursor: {frame}")

    def complete(self, counts: dict[str, int]) -> bool:
        return all(len(self.seen[c]) >= n for c, n in counts.items())


async def _conversations(urls: Any, owner: User, others: list[User]) -> list[str]:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        ids = []
        for n in range(CONVERSATIONS):
            created = await http.post(
                f"{urls.producer}/v1/conversations",
                headers=owner.headers,
                json={"kind": "group", "member_ids": [u.id for u in others], "title": f"c{n}"},
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        return ids


async def _counts(pool: asyncpg.Pool, conversations: list[str]) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT conversation_id, count(*) AS n FROM messaging.messages"
        " WHERE conversation_id = ANY($1::uuid[]) GROUP BY conversation_id",
        conversations,
    )
    counts = dict.fromkeys(conversations, 0)
    counts.update({str(row["conversation_id"]): int(row["n"]) for row in rows})
    return counts


async def _sample(
    pool: asyncpg.Pool, conversations: list[str], timeline: list[tuple[float, dict[str, int]]]
) -> None:
    while True:
        timeline.append((time.monotonic(), await _counts(pool, conversations)))
        await asyncio.sleep(0.1)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def _longest_pause(times: list[float], since: float, until: float) -> float:
    """The longest interval without an event, between `since` and `until`."""
    inside = [since, *(t for t in times if since < t < until), until]
    return max(b - a for a, b in itertools.pairwise(inside))


def _stall(timeline: list[tuple[float, dict[str, int]]], since: float, until: float) -> float:
    """The longest time a conversation's stored count did not grow, between `since` and
    `until` (each conversation gets about 20 new messages a second)."""
    longest = 0.0
    for conversation in timeline[0][1]:
        grew = [
            t
            for (_, before), (t, now) in itertools.pairwise(timeline)
            if now[conversation] > before[conversation]
        ]
        longest = max(longest, _longest_pause(grew, since, until))
    return longest


async def test_acked_messages_survive_kill_9_of_consumers_producer_and_nats(
    crash_system: LocalSystem,
) -> None:
    system = crash_system
    urls = system.urls
    began = time.monotonic()
    senders_users = [await sign_up(urls) for _ in range(SENDERS)]
    receivers_users = [await sign_up(urls) for _ in range(2)]
    conversations = await _conversations(
        urls, senders_users[0], [*senders_users[1:], *receivers_users]
    )

    senders = []
    for s, user in enumerate(senders_users):
        mine = [
            Outgoing(i, str(uuid.uuid4()), conversations[i % CONVERSATIONS], f"s{s} m{i}")
            for i in range(TOTAL // SENDERS)
        ]
        senders.append(Sender(user, urls.producer, mine, RATE / SENDERS))
    receivers = [
        Receiver(f"receiver on consumer-{n + 1}", user, urls.consumers[n], conversations)
        for n, user in enumerate(receivers_users)
    ]

    stop_receiving = asyncio.Event()
    receiving = [asyncio.create_task(r.run(stop_receiving)) for r in receivers]
    await asyncio.wait_for(asyncio.gather(*(r.ready.wait() for r in receivers)), 10)

    pool = await asyncpg.create_pool(system.database_url, min_size=1, max_size=2)
    timeline: list[tuple[float, dict[str, int]]] = []
    sampler = asyncio.create_task(_sample(pool, conversations, timeline))
    sending = [asyncio.create_task(s.run()) for s in senders]
    kills: list[tuple[str, float, float]] = []  # name, killed at, ready again after
    try:
        for threshold, name in KILLS:
            while sum(len(s.acks) for s in senders) < threshold:
                assert not any(t.done() for t in sending), "a sender stopped early"
                await asyncio.sleep(0.02)
            killed_at = time.monotonic()
            await asyncio.to_thread(system.kill, name)
            await asyncio.to_thread(system.wait_ready, [name], 30)
            kills.append((name, killed_at, time.monotonic() - killed_at))
        await asyncio.wait_for(asyncio.gather(*sending), 60)
        sent_after = time.monotonic() - began

        acked = [a for s in senders for a in s.acks]

        async def all_stored() -> bool:
            return sum((await _counts(pool, conversations)).values()) >= len(acked)

        await _eventually(all_stored, 30)
        stored_after = time.monotonic() - began
        rows = await pool.fetch(
            "SELECT message_id, conversation_id, seq, sender_id, client_msg_id, stream_seq"
            " FROM messaging.messages WHERE conversation_id = ANY($1::uuid[])",
            conversations,
        )
        counts = {c: 0 for c in conversations}
        for row in rows:
            counts[str(row["conversation_id"])] += 1

        async def all_received() -> bool:
            return all(r.complete(counts) for r in receivers)

        await _eventually(all_received, 20)
    finally:
        stop_receiving.set()
        sampler.cancel()
        for task in sending:
            task.cancel()
        await asyncio.gather(*receiving, *sending, sampler, return_exceptions=True)
        await pool.close()
    finished_after = time.monotonic() - began

    # -- the figures ------------------------------------------------------------------------
    ack_times = sorted(a.at for s in senders for a in s.acks)
    print(f"\n{TOTAL} messages: all acked after {sent_after:.1f}s, stored after "
          f"{stored_after:.1f}s, receivers done after {finished_after:.1f}s")  # fmt: skip
    ends = [k[1] for k in kills[1:]] + [ack_times[-1]]
    for (name, killed_at, ready_after), until in zip(kills, ends, strict=True):
        print(
            f"kill -9 {name}: ready again after {ready_after:.1f}s; longest ack pause "
            f"{_longest_pause(ack_times, killed_at, until):.1f}s; longest storage "
            f"stall {_stall(timeline, killed_at, until):.1f}s"
        )
    for s in senders:
        retried = sum(1 for a in s.acks if a.message.attempts > 1)
        duplicates = sum(1 for a in s.acks if a.frame["duplicate"])
        print(
            f"sender: {s.connections} connections, {retried} retried sends "
            f"({duplicates} acked as duplicates), errors {s.errors}"
        )
    for r in receivers:
        gaps = ", ".join(
            f"{min((t for t in r.resumed_at if t > d), default=finished_after) - d:.1f}s"
            for d in r.dropped_at
        )
        print(
            f"{r.name}: {r.connections} connections, resumed {gaps or '-'} after a drop, "
            f"{len(r.problems)} problems"
        )

    # -- the verdict ------------------------------------------------------------------------
    assert [p for s in senders for p in s.problems] == []
    assert len(acked) == TOTAL
    stored = [
        Stored(
            row["conversation_id"],
            int(row["seq"]),
            row["sender_id"],
            row["client_msg_id"],
            int(row["stream_seq"]),
        )
        for row in rows
    ]
    history = [
        Acked(
            uuid.UUID(a.message.conversation_id),
            uuid.UUID(s.user.id),
            uuid.UUID(a.message.client_msg_id),
            retried=a.message.attempts > 1,
        )
        for s in senders
        for a in s.acks
    ]
    problems = check_history(history, stored)
    by_id = {a.message.client_msg_id: a for a in acked}
    lost = [by_id[str(p.subject)].frame for p in problems if str(p.subject) in by_id]
    assert problems == [], f"lost acks: {lost}"
    assert len(stored) == TOTAL
    message_ids = {str(row["client_msg_id"]): str(row["message_id"]) for row in rows}
    wrong_ids = [
        a.frame for a in acked if message_ids.get(a.message.client_msg_id) != a.frame["message_id"]
    ]
    assert wrong_ids == [], "acks whose message_id is not the stored one"
    for r in receivers:
        assert r.problems == [], "\n".join(r.problems)
        for conversation, n in counts.items():
            assert r.seen[conversation] == list(range(1, n + 1)), (r.name, conversation)
