"""The receiving loop: gaps filled from an in-memory history before later messages, cursors
persisted, a history that lags behind the live stream waited for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from rtm.client import MemoryStore, Message, MessagePage
from rtm.client.receiver import Receiver

USER = "0193a0b0-0000-7000-8000-00000000000a"
CHAT = "0193a0b0-0000-7000-8000-000000000001"


def frame(seq: int) -> dict[str, object]:
    return {
        "type": "message",
        "message_id": f"m-{seq}",
        "conversation_id": CHAT,
        "seq": seq,
        "sender_id": "alice",
        "body": f"body {seq}",
        "client_msg_id": None,
        "sent_at": "2026-12-04T09:00:00.000Z",
    }


class InMemoryHistory:
    """What PostgreSQL holds, paged like `GET .../messages?after_seq=&limit=`."""

    def __init__(self, last_seq: int) -> None:
        self.last_seq = last_seq
        self.calls: list[int] = []

    async def page(self, conversation_id: str, after_seq: int, limit: int) -> MessagePage:
        self.calls.append(after_seq)
        seqs = list(range(after_seq + 1, min(self.last_seq, after_seq + limit) + 1))
        messages = tuple(Message.from_json(frame(s)) for s in seqs)
        return MessagePage(messages, has_more=bool(seqs) and seqs[-1] < self.last_seq)


async def until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 (polls what the callbacks record)
            await asyncio.sleep(0.01)


async def test_a_gap_is_filled_from_history_in_pages_before_the_later_message() -> None:
    history = InMemoryHistory(last_seq=9)
    store = MemoryStore()
    delivered: list[int] = []

    def handle(message: Message) -> None:  # the application takes each one at once
        delivered.append(message.seq)
        receiver.consumed(message)

    receiver = Receiver(store, USER, history.page, handle, page_size=3)
    receiver.follow(CHAT, 1)
    receiver.start()
    receiver.on_message(frame(9))
    await until(lambda: len(delivered) == 8)
    assert delivered == [2, 3, 4, 5, 6, 7, 8, 9]
    assert history.calls[:3] == [1, 4, 7]
    receiver.on_message(frame(9))
    receiver.on_message(frame(10))
    assert delivered[-1] == 10
    await receiver.stop()
    assert await store.load_cursors(USER) == {CHAT: 10}


async def test_history_that_lags_behind_the_live_message_is_asked_again() -> None:
    """The live message 5 arrived before 2..4 are readable: the fill waits for them."""
    history = InMemoryHistory(last_seq=1)
    delivered: list[int] = []
    receiver = Receiver(MemoryStore(), USER, history.page, lambda m: delivered.append(m.seq))
    receiver.follow(CHAT, 1)
    receiver.start()
    receiver.on_message(frame(5))
    await asyncio.sleep(0.2)
    assert delivered == []
    history.last_seq = 5
    await until(lambda: delivered == [2, 3, 4, 5])
    await receiver.stop()


async def test_recovered_false_pages_history_from_the_cursor() -> None:
    history = InMemoryHistory(last_seq=1500)
    delivered: list[int] = []
    receiver = Receiver(MemoryStore(), USER, history.page, lambda m: delivered.append(m.seq))
    receiver.follow(CHAT, 200)
    receiver.start()
    receiver.on_resumed({CHAT: {"last_seq": 1500, "recovered": False}})
    await until(lambda: len(delivered) == 1300)
    assert delivered == list(range(201, 1501))
    await receiver.stop()


async def test_a_marker_tells_a_reconnect_from_a_first_ever_connection() -> None:
    """A client that listed its conversations once stores a marker (with no cursor yet, as for
    a user with no conversation); the next client over that store follows a conversation it
    never saw from seq 1, not from its head."""
    store = MemoryStore()
    first = Receiver(store, USER, InMemoryHistory(last_seq=0).page, lambda m: None)
    await first.restore()
    first.start()
    first.on_listed([])
    await first.stop()

    history = InMemoryHistory(last_seq=2)
    delivered: list[int] = []

    def handle(message: Message) -> None:  # the application takes each one at once
        delivered.append(message.seq)
        second.consumed(message)

    second = Receiver(store, USER, history.page, handle)
    await second.restore()
    assert second.sequencer.cursors() == {}, "the marker is no conversation's cursor"
    second.start()
    second.on_listed([(CHAT, 2)])
    second.on_message(frame(3))
    await until(lambda: delivered == [1, 2, 3])
    await second.stop()
    assert (await store.load_cursors(USER)).get(CHAT) == 3


async def test_a_first_ever_connection_starts_listed_conversations_at_their_head() -> None:
    """An empty store: older messages are history (the application pages them), not events."""
    store = MemoryStore()
    history = InMemoryHistory(last_seq=2)
    delivered: list[int] = []

    def handle(message: Message) -> None:
        delivered.append(message.seq)
        receiver.consumed(message)

    receiver = Receiver(store, USER, history.page, handle)
    await receiver.restore()
    receiver.start()
    receiver.on_listed([(CHAT, 2)])
    receiver.on_message(frame(3))
    assert delivered == [3]
    assert history.calls == []
    await receiver.stop()
    assert (await store.load_cursors(USER)).get(CHAT) == 3
