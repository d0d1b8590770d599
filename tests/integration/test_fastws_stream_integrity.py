"""`rtm.shared.fastws` on uvloop, as the consumer runs it: a reader that reads nothing while
frames of every size pile up gets them all intact, in order, then an intact 4008 close.

This is issue #10 without the consumer around it: picows writes a frame over 8 KiB from a
header buffer it reuses, and uvloop keeps what it cannot send at once without copying it, so
before the fix every frame written while the socket was full rewrote the pending headers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import picows
import pytest
from fastapi import FastAPI

from rtm.shared.fastws import PicowsSocket, picows_protocol
from rtm.shared.ws import Outbox
from tests.support.uvloop_server import running_on_uvloop
from tests.support.wsstream import CLOSE, TEXT, SlowReader

LIMIT = 256 * 1024  # the outbox bound: the socket's own write buffer
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


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = FastAPI()

    def route(request: picows.WSUpgradeRequest) -> PicowsSocket:
        return PicowsSocket(request, flood, app=app, max_message_bytes=1024)

    async with running_on_uvloop(
        app, ws=picows_protocol(route, max_frame_bytes=1024), send_buffer_bytes=32 * 1024
    ) as address:
        yield address


async def test_a_reader_that_reads_nothing_gets_every_frame_intact_then_4008(base: str) -> None:
    reader = await asyncio.to_thread(SlowReader, base)
    try:
        # The flood is written in one loop turn: it is all buffered before the first read.
        await asyncio.to_thread(reader.send_text, "flood")
        stream = await asyncio.to_thread(reader.drain)
    finally:
        reader.close()
    texts = [frame.text for frame in stream.frames if frame.opcode == TEXT]
    assert texts == [payload(n) for n in range(len(texts))]
    assert sum(len(text.encode()) for text in texts) > LIMIT - max(SIZES)
    assert stream.close is not None
    assert stream.close.opcode == CLOSE
    assert (stream.close.close_code, stream.close.close_reason) == (
        4008,
        "send queue full: reconnect and resume",
    )
