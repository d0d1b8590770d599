"""Clients for the consumer's PostgreSQL outage tests, and the checks every outage must pass.

Each user has an HTTP client reading its conversations and their history in a loop, and a
WebSocket that resumes from 0 in a loop (one `resume` at a time, each answer timed); during
the outage each user also opens a second socket (a client reconnecting then). Every answer is
recorded with how long it took and whether the outage lasted when it was asked.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import websockets
from websockets.exceptions import ConnectionClosed

from tests.support.tokens import TokenFactory

ANSWER_BOUND_S = 10.0  # "no hang": every answer well within this (the database timeout is 2 s)
WAIT_S = 60.0  # how long a client waits for any answer (longer than a hang, to see it end)


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def new_user(tokens: TokenFactory) -> User:
    user = uuid.uuid4()
    return User(user, tokens.token(user, ttl=900))


@dataclass(frozen=True)
class Answer:
    """One answer: an HTTP response (`status`) or a frame answering `resume` (`status` is its
    type, `resumed` or `error`)."""

    what: str
    status: int | str
    code: str | None
    retry_after_ms: object
    seconds: float
    during: bool
    detail: str = ""

    @property
    def unavailable(self) -> bool:
        """A well-formed `unavailable`: code, `retry_after_ms` > 0 (and HTTP 503 with
        `Retry-After`, checked when recorded)."""
        return (
            self.code == "unavailable"
            and isinstance(self.retry_after_ms, int)
            and self.retry_after_ms > 0
            and self.status in (503, "error")
        )

    @property
    def success(self) -> bool:
        return self.status in (200, "resumed")


class Clock:
    """Whether the outage lasts now, and the time."""

    def __init__(self) -> None:
        self.during = asyncio.Event()

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()


async def keep_reading_http(
    base: str,
    user: User,
    conversations: list[uuid.UUID],
    stop: asyncio.Event,
    clock: Clock,
    log: list[Answer],
) -> None:
    """The list, one conversation and a page of its history, again and again."""
    async with httpx.AsyncClient(base_url=f"http://{base}", timeout=WAIT_S) as http:
        for i in itertools.count():
            if stop.is_set():
                return
            conversation = conversations[i % len(conversations)]
            for what, path in (
                ("list", "/v1/conversations"),
                ("conversation", f"/v1/conversations/{conversation}"),
                ("history", f"/v1/conversations/{conversation}/messages?limit=5"),
            ):
                log.append(await http_answer(http, what, path, user, clock))
            await asyncio.sleep(0.2)


async def http_answer(
    http: httpx.AsyncClient, what: str, path: str, user: User, clock: Clock
) -> Answer:
    during, began = clock.during.is_set(), clock.now()
    try:
        response = await http.get(path, headers=user.headers)
    except httpx.TimeoutException as exc:
        return Answer(what, "timeout", None, None, clock.now() - began, during, repr(exc))
    seconds = clock.now() - began
    if response.status_code == 200:
        return Answer(what, 200, None, None, seconds, during)
    error = response.json().get("error", {})
    retry = error.get("retry_after_ms") if response.headers.get("retry-after") else None
    return Answer(
        what, response.status_code, error.get("code"), retry, seconds, during, response.text
    )


@dataclass
class Receiver:
    """One consumer socket: every `message` seq per conversation in arrival order, every
    answer to its `resume`s, and how it ended if it did."""

    user: User
    ws: websockets.ClientConnection
    clock: Clock
    seqs: dict[str, list[int]] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    others: Counter[str] = field(default_factory=Counter)
    typing: int = 0
    dropped: str | None = None
    _replies: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                frame: dict[str, Any] = orjson.loads(raw)
                kind = frame["type"]
                if kind == "message":
                    self.seqs.setdefault(frame["conversation_id"], []).append(frame["seq"])
                elif kind in ("resumed", "error"):
                    await self._replies.put(frame)
                elif kind == "typing":
                    self.typing += 1
                else:
                    self.others[kind] += 1
        except ConnectionClosed as exc:
            self.dropped = repr(exc)
        else:
            self.dropped = f"closed by the server: {self.ws.close_code}"
        await self._replies.put(None)

    async def resume(self, cursors: dict[str, int]) -> Answer:
        """Send `resume` and wait for its answer (`resumed` or an error frame)."""
        during, began = self.clock.during.is_set(), self.clock.now()
        await self.ws.send(orjson.dumps({"type": "resume", "cursors": cursors}).decode())
        try:
            reply = await asyncio.wait_for(self._replies.get(), WAIT_S)
        except TimeoutError:
            reply = None
        seconds = self.clock.now() - began
        if reply is None:
            answer = Answer("resume", "none", None, None, seconds, during, str(self.dropped))
        elif reply["type"] == "resumed":
            lost = {c: e for c, e in reply["conversations"].items() if not e["recovered"]}
            answer = Answer("resume", "resumed", None, None, seconds, during, str(lost or ""))
        else:
            code, retry = reply.get("code"), reply.get("retry_after_ms")
            answer = Answer("resume", "error", code, retry, seconds, during, str(reply))
        self.answers.append(answer)
        return answer

    async def keep_resuming(self, conversations: list[uuid.UUID], stop: asyncio.Event) -> None:
        while not stop.is_set() and self.dropped is None:
            await self.resume(dict.fromkeys(map(str, conversations), 0))
            await asyncio.sleep(0.3)


async def open_receiver(base: str, user: User, clock: Clock) -> tuple[Receiver, asyncio.Task[None]]:
    """A socket past `ready` (which needs no database), with its reader running. It says it
    will resume (`?resume=1`): its resumes from 0 then find nothing sent live before them."""
    ws = await websockets.connect(f"ws://{base}/v1/ws?resume=1", additional_headers=user.headers)
    began = clock.now()
    while True:
        remaining = ANSWER_BOUND_S - (clock.now() - began)
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), max(remaining, 0.01)))
        if frame["type"] == "ready":
            break
    receiver = Receiver(user, ws, clock)
    return receiver, asyncio.create_task(receiver.read())


# -- checks ----------------------------------------------------------------------------------


def assert_only_successes_and_unavailable(answers: list[Answer]) -> None:
    """Every answer a success or a well-formed `unavailable`, none after a hang."""
    wrong = Counter(
        f"{a.what}: {a.status} {a.code}" for a in answers if not (a.success or a.unavailable)
    )
    slow = Counter(f"{a.what}: {a.status} {a.code}" for a in answers if a.seconds > ANSWER_BOUND_S)
    lost = [a.detail for a in answers if a.status == "resumed" and a.detail]
    slowest = max(answers, key=lambda a: a.seconds)
    assert (wrong, slow, lost) == (Counter(), Counter(), []), (
        f"of {len(answers)} answers: not a success or unavailable: {dict(wrong)}; "
        f"over {ANSWER_BOUND_S:g}s: {dict(slow)}; resumed but not recovered: {lost[:3]}; "
        f"slowest: {slowest.what} {slowest.status} {slowest.code} after {slowest.seconds:.1f}s"
    )


def assert_every_message_once_in_order(receivers: list[Receiver], total: dict[str, int]) -> None:
    """Each socket was sent each conversation's messages 1..N exactly once, in order (every
    socket resumed from 0)."""
    for receiver in receivers:
        assert receiver.dropped is None, receiver.dropped
        for conversation, count in total.items():
            seqs = receiver.seqs.get(conversation)
            assert seqs == list(range(1, count + 1)), (conversation, seqs, receiver.answers)


async def until_every_message_arrived(
    receivers: list[Receiver], total: dict[str, int], timeout: float
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while any(len(r.seqs.get(c, [])) < n for r in receivers for c, n in total.items()) and all(
        r.dropped is None for r in receivers
    ):
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
