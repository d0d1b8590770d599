"""The outbox: sends kept and written again, with the same id, until acked, across reconnects
and restarts (a `FileStore`), in order, within a window."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from rtm.client import Ack, FileStore, MemoryStore, OutboxOptions, RtmError, Store
from rtm.client.outbox import Outbox
from rtm.client.protocol import Frame

USER = "0193a0b0-0000-7000-8000-00000000000a"
CHAT = "0193a0b0-0000-7000-8000-000000000001"
FAST = OutboxOptions(max_in_flight=4, rate_per_second=1e6, rate_burst=1e6)


class FakeProducerSocket:
    """Records the frames written; `open` says whether a write succeeds."""

    def __init__(self) -> None:
        self.open = True
        self.frames: list[Frame] = []

    async def write(self, frame: Frame) -> bool:
        if not self.open:
            return False
        self.frames.append(frame)
        return True

    def ids(self) -> list[str]:
        return [f["client_msg_id"] for f in self.frames]


def ack_frame(client_msg_id: str, seq: int, *, duplicate: bool = False) -> dict[str, Any]:
    return {
        "type": "ack",
        "client_msg_id": client_msg_id,
        "message_id": f"m-{client_msg_id}",
        "stream_seq": seq,
        "duplicate": duplicate,
        "accepted_at": "2026-12-04T09:00:00.000Z",
        "seq": seq,
    }


def make_outbox(
    socket: FakeProducerSocket, store: Store | None = None, options: OutboxOptions = FAST
) -> tuple[Outbox, list[Ack]]:
    acked: list[Ack] = []
    outbox = Outbox(
        store or MemoryStore(), USER, socket.write, lambda a, _e: acked.append(a), options
    )
    return outbox, acked


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_sends_are_written_in_order_within_the_window_and_resolve_with_their_ack() -> None:
    socket = FakeProducerSocket()
    outbox, _ = make_outbox(socket)
    outbox.start()
    outbox.connected()
    sends = [asyncio.create_task(outbox.add(CHAT, f"body {i}", f"id-{i}")) for i in range(6)]
    await settle()
    assert socket.ids() == ["id-0", "id-1", "id-2", "id-3"], "at most max_in_flight unacked"
    outbox.handle_ack(ack_frame("id-0", 1))
    await settle()
    assert socket.ids()[4:] == ["id-4"]
    for i in range(1, 6):
        outbox.handle_ack(ack_frame(f"id-{i}", i + 1))
        await settle()
    acks = await asyncio.gather(*sends)
    assert [a.seq for a in acks] == [1, 2, 3, 4, 5, 6]
    assert socket.frames[0]["wait"] == "stored"
    await outbox.stop()


async def test_unacked_sends_are_written_again_with_the_same_id_after_a_reconnect() -> None:
    socket = FakeProducerSocket()
    outbox, _ = make_outbox(socket)
    outbox.start()
    outbox.connected()
    sends = [asyncio.create_task(outbox.add(CHAT, f"body {i}", f"id-{i}")) for i in range(3)]
    await settle()
    outbox.handle_ack(ack_frame("id-0", 1))
    socket.open = False
    outbox.disconnected()  # the producer died: id-1 and id-2 were written, never acked
    socket.open = True
    socket.frames.clear()
    outbox.connected()
    await settle()
    assert socket.ids() == ["id-1", "id-2"]
    assert outbox.resent == 2
    outbox.handle_ack(ack_frame("id-1", 2, duplicate=True))
    outbox.handle_ack(ack_frame("id-2", 3))
    outbox.handle_ack(ack_frame("id-2", 3, duplicate=True))  # a second ack changes nothing
    assert [a.seq for a in await asyncio.gather(*sends)] == [1, 2, 3]
    assert outbox.entries() == []
    await outbox.stop()


async def test_not_stored_yet_is_transient_the_same_id_is_written_again_after_the_delay() -> None:
    socket = FakeProducerSocket()
    outbox, _ = make_outbox(socket)
    outbox.start()
    outbox.connected()
    send = asyncio.create_task(outbox.add(CHAT, "hello", "id-0"))
    await settle()
    handled = outbox.handle_error(
        {"type": "error", "code": "not_stored_yet", "ref": "id-0", "retry_after_ms": 20}
    )
    assert handled
    await settle()
    assert socket.ids() == ["id-0"], "not before retry_after_ms"
    await asyncio.sleep(0.05)
    assert socket.ids() == ["id-0", "id-0"]
    outbox.handle_ack(ack_frame("id-0", 1, duplicate=True))
    assert (await send).seq == 1
    await outbox.stop()


async def test_a_refusal_for_good_raises_to_the_sender_and_drops_the_send() -> None:
    socket = FakeProducerSocket()
    store = MemoryStore()
    outbox, _ = make_outbox(socket, store)
    outbox.start()
    outbox.connected()
    send = asyncio.create_task(outbox.add(CHAT, "x", "id-0"))
    await settle()
    outbox.handle_error(
        {"type": "error", "code": "forbidden", "ref": "id-0", "message": "not a member"}
    )
    with pytest.raises(RtmError) as refused:
        await send
    assert refused.value.code == "forbidden"
    await settle()
    assert await store.load_outbox(USER) == []
    await outbox.stop()


async def test_sends_are_paced_below_the_producers_frame_rate() -> None:
    """With a burst of 2 and 50/s, the third write waits ~20 ms for a token."""
    socket = FakeProducerSocket()
    options = OutboxOptions(max_in_flight=10, rate_per_second=50, rate_burst=2)
    outbox, _ = make_outbox(socket, options=options)
    outbox.start()
    outbox.connected()
    for i in range(3):
        asyncio.create_task(outbox.add(CHAT, "x", f"id-{i}"))  # noqa: RUF006
    await settle()
    assert len(socket.frames) == 2
    await asyncio.sleep(0.06)
    assert len(socket.frames) == 3
    await outbox.stop()


async def test_a_restarted_process_resends_what_the_file_store_kept(tmp_path: Path) -> None:
    """The first process stored three sends and got one ack; the next one writes the other
    two first, in order, with their ids."""
    path = tmp_path / "state" / "rtm.json"
    first_socket = FakeProducerSocket()
    first, _ = make_outbox(first_socket, FileStore(path))
    first.start()
    first.connected()
    sends = [asyncio.create_task(first.add(CHAT, f"body {i}", f"id-{i}")) for i in range(3)]
    await asyncio.sleep(0.2)
    first.handle_ack(ack_frame("id-0", 1))
    assert (await sends[0]).seq == 1
    await asyncio.sleep(0.2)
    await first.stop()
    for task in sends[1:]:
        task.cancel()
    saved = json.loads(path.read_text("utf-8"))
    assert sorted(saved["outbox"][USER]) == ["id-1", "id-2"]
    assert list(path.parent.iterdir()) == [path], "no temporary file is left behind"

    second_socket = FakeProducerSocket()
    second, acked = make_outbox(second_socket, FileStore(path))
    await second.restore()
    second.start()
    second.connected()
    await settle()
    assert second_socket.ids() == ["id-1", "id-2"]
    assert [f["body"] for f in second_socket.frames] == ["body 1", "body 2"]
    second.handle_ack(ack_frame("id-1", 2, duplicate=True))
    second.handle_ack(ack_frame("id-2", 3))
    assert [a.client_msg_id for a in acked] == ["id-1", "id-2"], "restored acks are reported"
    await asyncio.sleep(0.2)
    assert json.loads(path.read_text("utf-8"))["outbox"][USER] == {}
    await second.stop()


async def test_the_file_store_keeps_cursors_per_user_and_coalesces_writes(tmp_path: Path) -> None:
    path = tmp_path / "rtm.json"
    store = FileStore(path)
    await asyncio.gather(*(store.put_cursors(USER, {CHAT: seq}) for seq in range(1, 101)))
    await store.put_cursors("someone-else", {CHAT: 7})
    reopened = FileStore(path)
    assert await reopened.load_cursors(USER) == {CHAT: 100}
    assert await reopened.load_cursors("someone-else") == {CHAT: 7}
    await reopened.delete_cursor(USER, CHAT)
    assert await FileStore(path).load_cursors(USER) == {}


async def test_a_send_the_store_cannot_keep_is_refused_and_never_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    socket = FakeProducerSocket()
    outbox, _ = make_outbox(socket, FileStore(blocker / "rtm.json"))
    outbox.start()
    outbox.connected()
    with pytest.raises(RtmError) as refused:
        await outbox.add(CHAT, "x", "id-0")
    assert refused.value.code == "store_failed"
    await settle()
    assert socket.frames == []
    await outbox.stop()


class SlowFailingStore(MemoryStore):
    """A store whose `put_outbox` takes a while and then fails (a full disk, a quota)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def put_outbox(self, user_id: str, entry: Any) -> None:
        await self.release.wait()
        raise OSError("no space left on device")


async def test_a_send_is_never_written_while_the_store_is_still_keeping_it() -> None:
    """Woken meanwhile (a reconnect, another send's ack), the outbox must not write a send whose
    storing has not returned: if storing then fails, `store_failed` tells the caller it was not
    sent, and a retry with a new id would store the message twice."""
    socket = FakeProducerSocket()
    store = SlowFailingStore()
    outbox, _ = make_outbox(socket, store)
    outbox.start()
    adding = asyncio.create_task(outbox.add(CHAT, "x", "id-0"))
    await settle()
    outbox.connected()  # the socket opens while the store is busy
    await settle()
    assert socket.frames == [], "written before it was stored"
    store.release.set()
    with pytest.raises(RtmError) as refused:
        await adding
    assert refused.value.code == "store_failed"
    await outbox.stop()
