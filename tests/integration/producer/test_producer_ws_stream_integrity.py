"""Every byte the producer's `/v1/ws` (picows in uvicorn, on uvloop as in production) sends a
sender that reads nothing is part of a valid WebSocket frame, up to and including the 4008
close that cuts it off (issue #10; the consumer's `/v1/ws` has the same test).

What piles up: the sender's acks. It sends messages (bodies of 4096, 2500, 3300 and 1000
characters and 50 emoji, as in the report) and pings, and reads nothing; the producer answers
each send with an ack and each ping with a pong, in 16- and 7-bit-length frames. picows writes
each at once; once the socket's write buffer holds more than `send_queue_bytes` the outbox
refuses the next frame and the producer closes 4008.

The close, per RFC 6455 (§5.2, §5.4: no frame starts inside another): the 4008 frame goes
behind every frame already written (`rtm.shared.picows_server.PicowsSocket.close_now`), so the
sender gets a prefix of its acks in order, then the close, once it reads.

Before `_PendingPubAck.receipt` used `asyncio.timeout_at`, a cut-off while PubAcks arrived could
leave `SendPipeline.close()` waiting forever (Python 3.11's `wait_for` dropped the
cancellation); this test caught it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rtm.producer.bootstrap import create_app
from rtm.producer.settings import ProducerSettings
from tests.integration.producer.conftest import (
    NewUser,
    create_conversation,
    settings_for,
    wait_ready,
)
from tests.support.metrics import sample
from tests.support.uvloop_server import running_producer_on_uvloop
from tests.support.wsstream import CLOSE, PING, PONG, TEXT, ServerStream, SlowReader

BODIES = ["x" * 4096, "é" * 2500, "€" * 3300, "y" * 1000, "😀" * 50]
KERNEL_SEND_BUFFER = 32 * 1024  # the server's SO_SNDBUF: its own buffer fills after ~64 kB
BATCH = 20  # frames sent at once: a ping and 19 sends
MAX_FRAMES = 5000  # ~1 MB of acks: far more than the kernel, uvicorn and the outbox hold
STALL_S = 8.0  # a batch of 20 frames not read in this long: the producer is stuck


class ProducerNeverClosed(AssertionError):
    """The producer stopped reading the socket (it decided to close it) but never closed it."""


@pytest.fixture
async def producer_on_uvloop(database_url: str, nats_url: str, auth_url: str) -> AsyncIterator[str]:
    settings: ProducerSettings = settings_for(
        database_url,
        nats_url,
        auth_url,
        send_queue_bytes=4096,
        # The sender is fast on purpose: no rate limit or in-flight refusal should answer it.
        rate_per_second=1_000_000.0,
        rate_burst=1_000_000,
        flood_limit=1_000_000,
        max_in_flight=10_000,
    )
    app = create_app(settings)
    async with running_producer_on_uvloop(app, send_buffer_bytes=KERNEL_SEND_BUFFER) as base:
        await wait_ready(base)
        yield base


async def test_a_sender_that_reads_no_acks_gets_intact_acks_then_an_intact_4008_close(
    producer_on_uvloop: str, new_user: NewUser
) -> None:
    base = producer_on_uvloop
    alice, bob = new_user(), new_user()
    conversation = (await create_conversation(base, alice, "group", bob, title="acks"))["id"]
    reader = await asyncio.to_thread(SlowReader, base, headers=alice.headers)
    try:
        sent = await _send_until_cut_off(base, reader, conversation)
        stream = await asyncio.to_thread(reader.drain)
    finally:
        reader.close()

    assert stream.close is not None, "the stream ended without a close frame"
    assert (stream.close.close_code, stream.close.close_reason) == (4008, "slow consumer")
    acks = _check_acks(stream, sent)
    assert acks > 0, "no ack came before the cut-off"


async def _send_until_cut_off(base: str, reader: SlowReader, conversation: str) -> list[str]:
    """Send messages (and a ping after every fourth) until the producer reports a 4008 close;
    returns the client_msg_ids sent, in order.

    Paced: a batch goes only once the producer has read the last one. uvicorn stops reading a
    socket whose app no longer receives, so a sender far ahead at the cut-off would block
    forever on a full TCP window (the producer's reads are not what is tested here)."""
    read_before, closes_before = await _counts(base)
    sent: list[str] = []
    for batch in range(MAX_FRAMES // BATCH):
        frames = ['{"type":"ping"}']
        for _ in range(BATCH - 1):
            sent.append(str(uuid.uuid4()))
            frame = {
                "type": "send",
                "client_msg_id": sent[-1],
                "conversation_id": conversation,
                "body": BODIES[len(sent) % len(BODIES)],
            }
            frames.append(orjson.dumps(frame).decode())
        await asyncio.to_thread(_send_all, reader, frames)
        deadline = asyncio.get_running_loop().time() + STALL_S
        while True:
            read, closes = await _counts(base)
            if closes > closes_before:
                return sent
            if read - read_before >= (batch + 1) * BATCH:
                break
            if asyncio.get_running_loop().time() > deadline:
                raise ProducerNeverClosed(
                    f"the producer stopped reading after {read - read_before:.0f} frames and "
                    f"has not closed the connection within {STALL_S:.0f} s"
                )
            await asyncio.sleep(0.02)
    pytest.fail(f"the sender was not cut off after {MAX_FRAMES} frames")


def _send_all(reader: SlowReader, frames: list[str]) -> None:
    for frame in frames:
        reader.send_text(frame)


def _check_acks(stream: ServerStream, sent: list[str]) -> int:
    """Every frame is JSON, an ack or a pong; the acks are the first sends, in the order sent,
    with increasing stream_seq. Returns how many acks came."""
    acks: list[str] = []
    last_seq = 0
    for frame in stream.frames:
        if frame.opcode in (PING, PONG, CLOSE):
            continue
        assert frame.opcode == TEXT, frame
        event = orjson.loads(frame.payload)
        if event == {"type": "pong"}:
            continue
        assert event["type"] == "ack", event
        assert event["stream_seq"] > last_seq, (frame.offset, event, last_seq)
        last_seq = event["stream_seq"]
        acks.append(event["client_msg_id"])
    assert acks == sent[: len(acks)], "acks missing or out of order"
    return len(acks)


async def _counts(base: str) -> tuple[float, float]:
    """The producer's (WebSocket frames read, 4008 closes) so far, all connections."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://{base}/metrics")).text
    read = sum(
        item.value
        for family in text_string_to_metric_families(text)
        for item in family.samples
        if item.name == "rtm_producer_frames_in_total"
    )
    return read, sample(text, "rtm_producer_ws_closes_total", {"code": "4008"})
