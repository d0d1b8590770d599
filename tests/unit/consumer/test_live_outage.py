"""While PostgreSQL cannot answer, a connection never sends a live message past a gap: a failed
resume leaves it at the client's cursor, a gap fill is tried again, and everything goes out in
order once PostgreSQL is back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import cast

import pytest

from rtm.consumer.domain.exceptions import Unavailable
from rtm.consumer.entrypoints.hub import FILL_MAX_WAITING, LiveConnection
from rtm.consumer.services import ReadService, Recovery
from rtm.shared.backoff import ExponentialBackoff
from rtm.shared.ws import CloseCode, Outbox
from tests.support.outbox import FakeOutbox
from tests.unit.consumer.test_live_hold import CONV, USER, live, stored


class FlakyReads:
    """Stored messages 1..head; raises `Unavailable` while `down`."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.down = True

    async def recover(
        self,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        after: int,
        *,
        head: int | None = None,
    ) -> Recovery:
        if self.down:
            raise Unavailable("the database is unavailable")
        messages = [stored(seq) for seq in range(after + 1, self.head + 1)]
        return Recovery(conversation_id, messages, self.head, recovered=True)


FAST = ExponentialBackoff(base=0.01, cap=0.02)


def connection(
    reads: FlakyReads, *, max_waiting: int = FILL_MAX_WAITING
) -> tuple[LiveConnection, FakeOutbox, list[int]]:
    outbox, closed = FakeOutbox(), []
    conn = LiveConnection(
        USER,
        uuid.uuid4(),
        cast(Outbox, outbox),
        cast(ReadService, reads),
        lambda code, reason: closed.append(code),
        backoff=FAST,
        max_waiting=max_waiting,
    )
    return conn, outbox, closed


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll `condition`: the fill retries on timers, nothing a test could await."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - state the connection's own tasks change
            await asyncio.sleep(0.005)


async def test_a_failed_resume_keeps_held_messages_behind_the_gap_until_it_is_filled() -> None:
    reads = FlakyReads(head=6)
    conn, outbox, closed = connection(reads)
    for seq in (5, 6):  # fanned out before the resume; 3 and 4 are only in PostgreSQL
        conn.offer(CONV, seq, live(seq))
    with pytest.raises(Unavailable):
        await conn.catch_up(CONV, 2)
    conn.end_hold()
    await asyncio.sleep(0.05)  # the gap fill has tried (and failed) a few times
    assert outbox.seqs() == []
    reads.down = False
    await until(lambda: outbox.seqs() == [3, 4, 5, 6])
    conn.offer(CONV, 7, live(7))
    assert (outbox.seqs(), closed) == ([3, 4, 5, 6, 7], [])


async def test_after_a_failed_resume_the_message_after_the_cursor_goes_out_at_once() -> None:
    conn, outbox, _ = connection(FlakyReads(head=3))
    conn.offer(CONV, 3, live(3))
    with pytest.raises(Unavailable):
        await conn.catch_up(CONV, 2)
    assert outbox.seqs() == [3]


async def test_the_cursor_of_a_conversation_not_tried_holds_its_live_messages_too() -> None:
    reads = FlakyReads(head=4)
    conn, outbox, _ = connection(reads)
    conn.offer(CONV, 4, live(4))
    conn.keep_from(CONV, 1)  # the resume failed before reaching this conversation
    conn.end_hold()
    assert outbox.seqs() == []
    reads.down = False
    await until(lambda: outbox.seqs() == [2, 3, 4])


async def test_a_gap_fill_during_an_outage_is_tried_again_and_keeps_the_order() -> None:
    reads = FlakyReads(head=5)
    conn, outbox, closed = connection(reads)
    conn.end_hold()
    conn.offer(CONV, 1, live(1))
    conn.offer(CONV, 4, live(4))  # 2 and 3 were lost on the way: a fill, which fails for now
    conn.offer(CONV, 5, live(5))
    await asyncio.sleep(0.05)
    assert outbox.seqs() == [1]
    reads.down = False
    await until(lambda: outbox.seqs() == [1, 2, 3, 4, 5])
    assert closed == []


async def test_a_gap_fill_holding_too_many_messages_closes_4008() -> None:
    conn, outbox, closed = connection(FlakyReads(head=9), max_waiting=2)
    conn.end_hold()
    conn.offer(CONV, 1, live(1))
    for seq in (4, 5, 6):
        conn.offer(CONV, seq, live(seq))
    await until(lambda: closed == [CloseCode.SLOW_CONSUMER])
    assert outbox.seqs() == [1]
