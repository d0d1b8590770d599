"""The per-connection send queue: bounded in bytes, never waits, reports overflow."""

from __future__ import annotations

import asyncio

from rtm.shared.ws import Outbox


class StuckSocket:
    """A peer that stopped reading: every send waits until released."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.release = asyncio.Event()

    async def send_text(self, text: str) -> None:
        await self.release.wait()
        self.sent.append(text)


async def test_a_stuck_reader_overflows_the_queue_without_blocking_the_caller() -> None:
    socket = StuckSocket()
    outbox = Outbox(socket, limit_bytes=100)  # type: ignore[arg-type]
    writer = asyncio.create_task(outbox.run())
    accepted = [outbox.put("x" * 30) for _ in range(5)]
    await asyncio.sleep(0)
    assert accepted[:3] == [True, True, True]
    assert accepted[4] is False
    assert outbox.overflowed
    socket.release.set()
    await asyncio.wait_for(writer, 1)
    assert len(socket.sent) <= 1  # nothing more is written once it overflowed


async def test_a_reading_peer_gets_every_frame_in_order() -> None:
    socket = StuckSocket()
    socket.release.set()
    outbox = Outbox(socket, limit_bytes=100)  # type: ignore[arg-type]
    writer = asyncio.create_task(outbox.run())
    for n in range(50):
        assert outbox.put(f"frame-{n:02d}")
        await asyncio.sleep(0)
    outbox.close()
    await asyncio.wait_for(writer, 1)
    assert socket.sent == [f"frame-{n:02d}" for n in range(50)]
    assert not outbox.overflowed


class DirectPeer:
    """A socket written synchronously (as picows is), which keeps everything written buffered."""

    def __init__(self) -> None:
        self.buffered = 0
        self.sent: list[bytes] = []

    def send_now(self, data: bytes) -> bool:
        self.sent.append(data)
        self.buffered += len(data)
        return True

    def buffered_bytes(self) -> int:
        return self.buffered


async def test_the_queue_bound_counts_utf8_bytes_not_characters() -> None:
    outbox = Outbox(StuckSocket(), limit_bytes=100)  # type: ignore[arg-type]
    frame = "é" * 30  # 30 characters, 60 bytes
    assert outbox.put(frame)
    assert not outbox.put(frame)  # 120 bytes queued would pass the 100-byte bound
    assert outbox.overflowed


async def test_a_direct_socket_bound_counts_utf8_bytes_and_gets_them_encoded_once() -> None:
    peer = DirectPeer()
    outbox = Outbox(peer, limit_bytes=100)  # type: ignore[arg-type]
    assert outbox.direct
    assert outbox.put("€" * 30)  # 90 bytes
    assert peer.sent == ["€".encode() * 30]
    assert not outbox.put("€" * 4)  # fits as 4 characters, not as 12 bytes: 90 + 12 > 100
    assert outbox.overflowed
