"""A new connection holds live messages until its first resume, so none lands past the cursor."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import cast

import orjson

from rtm.consumer.domain.delivery import message_frame
from rtm.consumer.domain.model import StoredMessage
from rtm.consumer.entrypoints.hub import LiveConnection
from rtm.consumer.services import ReadService, Recovery
from rtm.shared.ws import Outbox
from tests.support.outbox import FakeOutbox

USER, CONV = uuid.uuid4(), uuid.uuid4()


def stored(seq: int) -> StoredMessage:
    return StoredMessage(
        uuid.uuid4(), CONV, seq, USER, uuid.uuid4(), f"m{seq}", datetime(2026, 1, 1, tzinfo=UTC)
    )


class FakeReads:
    def __init__(self, head: int) -> None:
        self.head = head

    async def recover(
        self,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        after: int,
        *,
        head: int | None = None,
    ) -> Recovery:
        messages = [stored(seq) for seq in range(after + 1, self.head + 1)]
        return Recovery(conversation_id, messages, self.head, recovered=True)


def connection(head: int) -> tuple[LiveConnection, FakeOutbox]:
    outbox = FakeOutbox()
    reads = cast(ReadService, FakeReads(head))
    conn = LiveConnection(USER, uuid.uuid4(), cast(Outbox, outbox), reads, lambda c, r: None)
    return conn, outbox


def live(seq: int) -> bytes:
    return message_frame(stored(seq))


async def test_live_messages_before_the_resume_wait_and_join_it_without_a_gap() -> None:
    conn, outbox = connection(head=6)
    for seq in (5, 6):  # stored while the client was away, fanned out before its resume
        conn.offer(CONV, seq, live(seq))
    assert outbox.frames == []
    await conn.catch_up(CONV, 2)
    conn.end_hold()
    conn.offer(CONV, 7, live(7))
    assert outbox.seqs() == [3, 4, 5, 6, 7]


async def test_the_last_seq_sent_counts_live_messages_past_the_head_the_resume_read() -> None:
    conn, outbox = connection(head=4)
    conn.offer(CONV, 5, live(5))  # stored and fanned out after the resume read the head
    recovery = await conn.catch_up(CONV, 2)
    assert outbox.seqs() == [3, 4, 5]
    assert (recovery.last_seq, conn.last_sent(CONV)) == (4, 5)


async def test_without_a_resume_the_held_messages_go_out_in_order_when_the_hold_ends() -> None:
    conn, outbox = connection(head=0)
    for seq in (9, 8):
        conn.offer(CONV, seq, live(seq))
    conn.end_hold()
    assert outbox.seqs() == [8, 9]
    conn.offer(CONV, 10, live(10))
    assert outbox.seqs() == [8, 9, 10]


async def test_once_the_hold_ended_live_messages_go_out_at_once() -> None:
    conn, outbox = connection(head=0)
    conn.end_hold()
    conn.offer(CONV, 1, live(1))
    assert outbox.seqs() == [1]


class SlowReads:
    """PostgreSQL slower than the grace period (restarting, or its postmaster stopped)."""

    def __init__(self, heads: dict[uuid.UUID, int]) -> None:
        self.heads = heads

    async def recover(
        self,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        after: int,
        *,
        head: int | None = None,
    ) -> Recovery:
        await asyncio.sleep(0.2)
        head = self.heads[conversation_id]
        messages = [stored_in(conversation_id, seq) for seq in range(after + 1, head + 1)]
        return Recovery(conversation_id, messages, head, recovered=True)


def stored_in(conversation: uuid.UUID, seq: int) -> StoredMessage:
    return StoredMessage(
        uuid.uuid4(),
        conversation,
        seq,
        USER,
        uuid.uuid4(),
        f"m{seq}",
        datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_a_resume_slower_than_the_grace_period_still_sends_every_missed_message() -> None:
    """Found by C1: the grace period ran out during a slow resume, a held live message of a
    conversation not caught up yet went out, and the catch-up then started past it."""
    other = uuid.uuid4()
    outbox = FakeOutbox()
    reads = cast(ReadService, SlowReads({other: 5, CONV: 10}))
    conn = LiveConnection(USER, uuid.uuid4(), cast(Outbox, outbox), reads, lambda c, r: None)
    conn.offer(CONV, 11, message_frame(stored_in(CONV, 11)))  # held until the resume
    conn.begin_resume()
    asyncio.get_running_loop().call_later(0.1, conn.grace_over)  # passes mid-resume
    await conn.catch_up(other, 0)  # the resume catches up one conversation after another
    await conn.catch_up(CONV, 3)
    conn.end_hold()
    sent = [f["seq"] for f in map(orjson.loads, outbox.frames) if f["conversation_id"] == str(CONV)]
    assert sent == [4, 5, 6, 7, 8, 9, 10, 11]


async def test_the_grace_period_ends_the_hold_of_a_connection_that_never_resumes() -> None:
    conn, outbox = connection(head=0)
    conn.offer(CONV, 1, live(1))
    assert outbox.frames == []
    conn.grace_over()
    assert outbox.seqs() == [1]
