"""The `resume` scenario's client process: how long a client takes to recover missed messages.

Each round: the resumer connects to the consumer and leaves; senders (several users, so no
per-connection rate limit is hit) send `messages` messages to the conversation and wait for every
ack; a watcher (another member, connected throughout) sees the last one delivered, so all are
stored; then the resumer reconnects and sends `{"type":"resume","cursors":{conv: last seen}}`.
Measured: from that frame to `resumed` (every missed message received before it), and from the
reconnect to `resumed`. Checked: exactly the missed seqs, in order, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import traceback
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson
import uvloop
from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from rtm.bench.model import Failed, Progress

_TEXT = WSMsgType.TEXT
_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ResumePlan:
    consumer_url: str
    producer_url: str
    conversation: str
    resumer_token: str
    watcher_token: str
    sender_tokens: tuple[str, ...]
    messages: int = 1000
    rounds: int = 5
    body_chars: int = 100


@dataclass(frozen=True, slots=True)
class ResumeRound:
    resume_ms: float  # resume frame sent → `resumed` received
    reconnect_ms: float  # connect + auth + `ready`
    received: int
    correct: bool


@dataclass(frozen=True, slots=True)
class ResumeResult:
    rounds: list[ResumeRound] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Client(WSListener):
    """A socket that keeps what the resume scenario needs to know."""

    def __init__(self, conversation: str) -> None:
        super().__init__()
        loop = asyncio.get_running_loop()
        self.conversation = conversation
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.resumed: asyncio.Future[float] = loop.create_future()
        self.reached: asyncio.Future[None] | None = None
        self.target = 0
        self.seqs: list[int] = []
        self.acks = 0
        self.acked: asyncio.Future[None] | None = None
        self.expected_acks = 0
        self.errors: list[str] = []

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for future in (self.ready, self.resumed, self.reached, self.acked):
            if future is not None and not future.done():
                future.set_exception(ConnectionError("socket closed"))
                future.exception()  # whoever awaits it still gets the error; nobody: no warning

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not _TEXT:
            return
        data: dict[str, Any] = orjson.loads(frame.get_payload_as_bytes())
        kind = data.get("type")
        if kind == "message" and data.get("conversation_id") == self.conversation:
            seq = int(data["seq"])
            self.seqs.append(seq)
            if self.reached is not None and seq >= self.target and not self.reached.done():
                self.reached.set_result(None)
        elif kind == "resumed":
            if not self.resumed.done():
                self.resumed.set_result(time.perf_counter())
        elif kind in ("ready", "pong"):
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "ack":
            self.acks += 1
            acked = self.acked
            if acked is not None and self.acks >= self.expected_acks and not acked.done():
                acked.set_result(None)
        elif kind == "error":
            self.errors.append(str(data.get("code")))

    def send(self, payload: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.send(_TEXT, orjson.dumps(payload))

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            with contextlib.suppress(OSError, RuntimeError, TimeoutError, WSError):
                self.transport.send_close(WSCloseCode.OK)
                self.transport.disconnect()
                await asyncio.wait_for(self.transport.wait_disconnected(), 5)


async def _connect(url: str, token: str, conversation: str, *, ping: bool) -> _Client:
    client = _Client(conversation)
    await ws_connect(
        lambda: client,
        url,
        extra_headers={"Authorization": f"Bearer {token}"},
        websocket_handshake_timeout=10,
        max_frame_size=1 << 20,
    )
    if ping:
        client.send({"type": "ping"})
    await asyncio.wait_for(client.ready, _TIMEOUT)
    return client


async def run_resume(plan: ResumePlan, report: Any) -> ResumeResult:
    """All rounds; `report(done, total)` is told after each."""
    conv = plan.conversation
    watcher = await _connect(plan.consumer_url, plan.watcher_token, conv, ping=False)
    senders = [
        await _connect(plan.producer_url, token, conv, ping=True) for token in plan.sender_tokens
    ]
    per_sender = -(-plan.messages // len(senders))
    result = ResumeResult()
    cursor = 0
    try:
        for done in range(plan.rounds):
            resumer = await _connect(plan.consumer_url, plan.resumer_token, conv, ping=False)
            await resumer.close()
            await asyncio.sleep(0.2)
            target = cursor + plan.messages
            watcher.target = target
            watcher.reached = asyncio.get_running_loop().create_future()
            left = plan.messages
            for sender in senders:
                count = min(per_sender, left)
                left -= count
                sender.acks = 0
                sender.expected_acks = count
                sender.acked = asyncio.get_running_loop().create_future()
                if count == 0:
                    sender.acked.set_result(None)
                for _ in range(count):
                    sender.send(
                        {
                            "type": "send",
                            "client_msg_id": str(uuid.uuid4()),
                            "conversation_id": conv,
                            "body": "r" * plan.body_chars,
                        }
                    )
            await asyncio.wait_for(
                asyncio.gather(*(s.acked for s in senders if s.acked is not None)), _TIMEOUT
            )
            await asyncio.wait_for(watcher.reached, _TIMEOUT)
            began = time.perf_counter()
            resumer = await _connect(plan.consumer_url, plan.resumer_token, conv, ping=False)
            connected = time.perf_counter()
            asked = time.perf_counter()
            resumer.send({"type": "resume", "cursors": {conv: cursor}})
            finished = await asyncio.wait_for(resumer.resumed, _TIMEOUT)
            expected = list(range(cursor + 1, target + 1))
            correct = resumer.seqs == expected
            if not correct:
                result.problems.append(
                    f"round {done + 1}: got {len(resumer.seqs)} messages, "
                    f"seqs {resumer.seqs[:3]}…{resumer.seqs[-3:]}, expected {cursor + 1}..{target}"
                )
            result.rounds.append(
                ResumeRound(
                    resume_ms=(finished - asked) * 1000,
                    reconnect_ms=(connected - began) * 1000,
                    received=len(resumer.seqs),
                    correct=correct,
                )
            )
            await resumer.close()
            cursor = target
            report(done + 1, plan.rounds)
            await asyncio.sleep(1.0)  # senders' rate-limit buckets refill
        for sender in senders:
            result.problems.extend(f"send error {code}" for code in sender.errors)
    finally:
        for client in (watcher, *senders):
            await client.close()
    return result


def resume_main(conn: Connection, plan: ResumePlan) -> None:
    """Entry point of the resume client process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def report(done: int, total: int) -> None:
        conn.send(Progress(0, "resume rounds", done, total))

    async def main() -> None:
        try:
            conn.send(await run_resume(plan, report))
        except Exception:  # last line of defence: the traceback goes to the parent's report
            conn.send(Failed(0, traceback.format_exc()))

    try:
        uvloop.run(main())
    finally:
        conn.close()
