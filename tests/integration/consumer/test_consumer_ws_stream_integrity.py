"""Every byte the consumer's `/v1/ws` (picows inside uvicorn) sends a slow reader is part of a
valid WebSocket frame, up to and including the 4008 close that cuts it off (issue #10).

The reader connects with a 4 KiB receive buffer, resumes and reads nothing while messages of
50 B to 64 KiB (7-, 16- and 64-bit lengths, frames over picows's 8 KiB copy threshold, 2-, 3-
and 4-byte UTF-8) flow to it in three conversations, so nearly every frame is written while the
server's buffer is not empty; once the buffer passes `send_queue_bytes` the server closes 4008.
Then it drains and checks every byte (`tests.support.wsstream`).

The close, per RFC 6455: frames are atomic on the wire (§5.2; §5.4 lets control frames come
only *between* fragments, never inside a frame), so a close may not start inside a frame the
socket has only partly taken. The consumer's cut-off queues its close behind everything already
written, the frame in flight included, and closes the TCP connection once that is sent: the
reader gets every frame it was sent, whole, then the 4008 frame, then the end of the stream.
(Aborting without a close frame, §7.1.7, would also be correct, but would tell the client
nothing.) This test would see a close interleaved in a frame as a corrupt stream, and a close
that dropped queued frames as fewer bytes than the bound.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from nats.aio.client import Client as NatsClient

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from tests.integration.consumer.conftest import publish, wait_ready
from tests.support.db import create_conversation
from tests.support.metrics import sample
from tests.support.tokens import TokenFactory
from tests.support.uvloop_server import running_consumer_on_uvloop
from tests.support.wsstream import CLOSE, PING, PONG, TEXT, ServerStream, SlowReader

KERNEL_SEND_BUFFER = 32 * 1024  # the server's SO_SNDBUF: its own buffer fills after ~64 kB
BODIES = [
    "a" * 50,
    "é" * 1250,  # 2.5 kB of 2-byte UTF-8
    "x" * 3300,
    "€" * 3000,  # 9 kB of 3-byte UTF-8: over picows's 8 KiB threshold
    "b" * 20_000,
    "😀" * 16_384,  # 64 KiB of 4-byte UTF-8: the frame needs a 64-bit length
    "c" * 1000,
]
CONVERSATIONS = 3  # coprime with len(BODIES): every conversation gets every size
MAX_MESSAGES = 600  # ~10 MB: far more than the bound and the kernel's buffers hold


@pytest.fixture
async def consumer_on_uvloop(consumer_settings: ConsumerSettings) -> AsyncIterator[str]:
    """The consumer as `rtm-consumer` runs it (uvloop, picows), with its default 1 MiB bound."""
    async with running_consumer_on_uvloop(
        create_app(consumer_settings), send_buffer_bytes=KERNEL_SEND_BUFFER
    ) as base:
        await wait_ready(base)
        yield base


async def test_a_slow_reader_gets_intact_frames_then_an_intact_4008_close(
    consumer_on_uvloop: str,
    consumer_settings: ConsumerSettings,
    nc: NatsClient,
    database_url: str,
    tokens: TokenFactory,
) -> None:
    base = consumer_on_uvloop
    reader_id, sender = uuid.uuid4(), uuid.uuid4()
    conversations = [
        await create_conversation(database_url, [sender, reader_id]) for _ in range(CONVERSATIONS)
    ]
    headers = {"Authorization": f"Bearer {tokens.token(reader_id)}"}
    reader = await asyncio.to_thread(SlowReader, base, headers=headers)
    try:
        await asyncio.to_thread(reader.send_text, '{"type":"resume","cursors":{}}')
        sent = await _publish_until_cut_off(base, nc, conversations, sender)
        stream = await asyncio.to_thread(reader.drain)
    finally:
        reader.close()

    assert stream.close is not None, "the stream ended without a close frame"
    assert (stream.close.close_code, stream.close.close_reason) == (
        4008,
        "send queue full: reconnect and resume",
    )
    delivered = _check_messages(stream, sent)
    sizes = [len(frame.payload) for frame in stream.frames if frame.opcode == TEXT]
    assert any(8192 < size < 1 << 16 for size in sizes), "no frame between 8 KiB and 64 KiB"
    assert any(size >= 1 << 16 for size in sizes), "no frame with a 64-bit length"
    # Cut off only once more than the bound was queued, and nothing queued was dropped.
    assert sum(sizes) > consumer_settings.send_queue_bytes - max(sizes), (delivered, sum(sizes))


async def _publish_until_cut_off(
    base: str, nc: NatsClient, conversations: list[uuid.UUID], sender: uuid.UUID
) -> dict[uuid.UUID, list[str]]:
    """Publish bodies round-robin until the consumer reports a slow-consumer close; returns the
    bodies published per conversation, in order (the n-th gets seq n)."""
    before = await _slow_closes(base)
    sent: dict[uuid.UUID, list[str]] = {conversation: [] for conversation in conversations}
    for n in range(MAX_MESSAGES):
        conversation, body = conversations[n % CONVERSATIONS], BODIES[n % len(BODIES)]
        await publish(nc, conversation, sender, body)
        sent[conversation].append(body)
        if n % 20 == 19 and await _slow_closes(base) > before:
            return sent
    for _ in range(300):  # all published: give the consumer up to ~30 s to deliver them
        if await _slow_closes(base) > before:
            return sent
        await asyncio.sleep(0.1)
    pytest.fail(f"the reader was not cut off after {MAX_MESSAGES} messages")


def _check_messages(stream: ServerStream, sent: dict[uuid.UUID, list[str]]) -> int:
    """Every frame is JSON; each conversation's messages come with strictly increasing seq and
    the body published as that seq. Returns how many messages came."""
    last: dict[uuid.UUID, int] = {}
    delivered = 0
    for frame in stream.frames:
        if frame.opcode in (PING, PONG, CLOSE):
            continue
        assert frame.opcode == TEXT, frame
        event = orjson.loads(frame.payload)
        if event["type"] != "message":
            continue
        conversation, seq = uuid.UUID(event["conversation_id"]), event["seq"]
        assert seq > last.get(conversation, 0), (frame.offset, conversation, seq, last)
        assert event["body"] == sent[conversation][seq - 1], (frame.offset, conversation, seq)
        last[conversation] = seq
        delivered += 1
    return delivered


async def _slow_closes(base: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://{base}/metrics")).text
    return sample(text, "rtm_consumer_slow_consumer_closes_total")
