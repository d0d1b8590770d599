"""`rtm.shared.picows_server` on uvloop, as the consumer runs it: a reader that reads nothing while
frames of every size pile up gets them all intact, in order, then an intact 4008 close.

This is issue #10 without the consumer around it: picows writes a frame over 8 KiB from a
header buffer it reuses, and uvloop keeps what it cannot send at once without copying it, so
before the fix every frame written while the socket was full rewrote the pending headers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import picows
import pytest
from fastapi import FastAPI

from rtm.shared.picows_server import CLOSE_LINGER_S, PicowsSocket, picows_protocol
from rtm.shared.ws import Outbox
from tests.support.uvloop_server import running_on_uvloop
from tests.support.wsstream import CLOSE, TEXT, ServerStream, SlowReader

LIMIT = 256 * 1024  # the outbox bound: the socket's own write buffer
LINGER_S = 0.5  # on /linger: how long a cut-off reader gets to take the rest
SIZES = [50, 125, 126, 3000, 8192, 8193, 20_000, 65_535, 65_536, 70_000]  # UTF-8 bytes


def payload(n: int) -> str:
    """Frame n: its number, then filler of 1- to 4-byte characters, SIZES[n % len] bytes."""
    head = f"{n:06d}"
    filler = "aé€😀"[n % 4]
    width = len(filler.encode())
    size = SIZES[n % len(SIZES)]
    return head + filler * ((size - len(head)) // width) + "z" * ((size - len(head)) % width)


async def flood(socket: PicowsSocket) -> None:
    """On "flood", write frames until the outbox overflows, then close 4008 as the consumer's
    hub does."""
    outbox = Outbox(socket, limit_bytes=LIMIT)
    message = await socket.receive()
    assert message.get("text") == "flood"
    for n in range(100_000):
        if not outbox.put(payload(n)):
            await socket.close(4008, "send queue full: reconnect and resume")
            return


@dataclass
class Served:
    address: str
    lost: threading.Event  # set once a connection's TCP connection is gone
    cut_off: threading.Event  # set once a connection's flood ended in its close


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    app = FastAPI()
    lost, cut_off = threading.Event(), threading.Event()

    async def flood_then_tell(socket: PicowsSocket) -> None:
        await flood(socket)
        cut_off.set()

    async def fill_then_wait(socket: PicowsSocket) -> None:
        """Write more than the kernel holds for a reader that reads nothing, then wait."""
        outbox = Outbox(socket, limit_bytes=LIMIT)
        for n in range(40):
            outbox.put(payload(3 + 10 * n))  # 3,000 bytes each
        await socket.receive()

    async def break_then_close(socket: PicowsSocket) -> None:
        await socket.receive()
        transport = socket._transport  # what a failed write does: uvloop closes it (private)
        assert transport is not None
        transport.underlying_transport.abort()
        socket.close_now(4008, "send queue full: reconnect and resume")
        cut_off.set()

    class Observed(PicowsSocket):
        __slots__ = ()

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            lost.set()
            super().on_ws_disconnected(transport)

    def route(request: picows.WSUpgradeRequest) -> PicowsSocket:
        handler = {b"/broken": break_then_close, b"/fill": fill_then_wait}.get(
            request.path, flood_then_tell
        )
        linger = LINGER_S if request.path in (b"/linger", b"/fill") else CLOSE_LINGER_S
        return Observed(request, handler, app=app, max_message_bytes=1024, close_linger_s=linger)

    async with running_on_uvloop(
        app, ws=picows_protocol(route, max_frame_bytes=1024), send_buffer_bytes=32 * 1024
    ) as address:
        yield Served(address, lost, cut_off)


async def test_a_reader_that_reads_nothing_gets_every_frame_intact_then_4008(
    served: Served,
) -> None:
    reader = await asyncio.to_thread(SlowReader, served.address)
    try:
        # The flood is written in one loop turn: it is all buffered before the first read.
        await asyncio.to_thread(reader.send_text, "flood")
        stream = await asyncio.to_thread(reader.drain)
    finally:
        reader.close()
    texts = intact_frames_then_4008(stream)
    assert sum(len(text.encode()) for text in texts) > LIMIT - max(SIZES)


async def test_a_reader_still_sending_after_the_cut_off_gets_every_frame_then_4008(
    served: Served,
) -> None:
    """A client keeps sending while the server closes (a chat client does not know it is cut
    off). Data the server has not read when it closes its socket makes the kernel answer with a
    reset and drop what it had not sent yet, the close frame included: the server must go on
    reading (and discarding) until the peer has taken the close, and only then close."""
    reader = await asyncio.to_thread(SlowReader, served.address)
    try:
        await asyncio.to_thread(reader.send_text, "flood")
        assert await asyncio.to_thread(served.cut_off.wait, 10), "the flood was not cut off"
        await asyncio.to_thread(reader.send_text, "still here")
        stream = await asyncio.to_thread(reader.drain)
    finally:
        reader.close()
    intact_frames_then_4008(stream)


def intact_frames_then_4008(stream: ServerStream) -> list[str]:
    """The flood's first frames, each whole and in order, then the 4008 close; returns them."""
    texts = [frame.text for frame in stream.frames if frame.opcode == TEXT]
    assert texts == [payload(n) for n in range(len(texts))]
    assert stream.close is not None, "the stream ended without a close frame"
    assert stream.close.opcode == CLOSE
    assert (stream.close.close_code, stream.close.close_reason) == (
        4008,
        "send queue full: reconnect and resume",
    )
    return texts


async def test_a_close_after_the_connection_broke_is_a_no_op(served: Served) -> None:
    """A write can fail (the peer reset) and uvloop close the transport while a fan-out goes on
    in the same loop turn: a close then must neither raise nor touch the closed transport (uvloop
    raises on a half-close of a closed handle), or the fan-out to every later socket fails."""
    reader = await asyncio.to_thread(SlowReader, served.address, path="/broken")
    try:
        await asyncio.to_thread(reader.send_text, "break")
        assert await asyncio.to_thread(served.cut_off.wait, 10), "the close raised"
    finally:
        reader.close()


async def test_a_peer_that_closes_and_then_reads_nothing_is_aborted_after_the_linger(
    served: Served,
) -> None:
    """The peer's close is answered once what was written before it is sent; a peer that closed
    and reads nothing would otherwise hold the connection and its buffer for ever."""
    await aborted_after_the_linger(served, "/fill", lambda reader: reader.send_close(1000))


async def test_a_cut_off_reader_that_never_reads_is_aborted_after_the_linger(
    served: Served,
) -> None:
    """The close waits for the peer to take what came before it, but not forever: a peer that
    never reads would otherwise hold the connection and its buffer."""
    await aborted_after_the_linger(served, "/linger", lambda reader: reader.send_text("flood"))


async def aborted_after_the_linger(
    served: Served, path: str, act: Callable[[SlowReader], None]
) -> None:
    """Connect to `path`, `act`, then read nothing: only the linger's abort can end it."""
    reader = await asyncio.to_thread(SlowReader, served.address, path=path)
    try:
        await asyncio.to_thread(act, reader)
        assert await asyncio.to_thread(served.lost.wait, 20), "the connection was not aborted"
    finally:
        reader.close()
