"""The machine's raw limits for the same traffic shapes, measured in the same run.

* `ws_server_main`: a bare WebSocket broadcast server on picows, the fastest Python WebSocket
  library we know of. `/r/<room>` joins a room as a receiver, `/s/<room>` as a sender; every
  frame a sender sends is forwarded as it is to every receiver of its room, and the sender gets
  `{"type":"ack","client_msg_id":...}` back. No auth, no validation, no storage, no seq: what is
  left is the WebSocket work itself. The load generator drives it exactly as it drives rtm.
* `nats_main`: a bare nats-py loop on the system's own nats-server: core NATS publish →
  subscribe (what rtm's fan-out rides on), and JetStream publish with PubAck and `Nats-Msg-Id`
  into a file stream (what the producer does per message, with the server's `sync_interval`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import time
import traceback
from array import array
from collections import defaultdict
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import orjson
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from rtm.bench.model import Failed
from rtm.bench.stats import Summary, summarize

_TEXT = WSMsgType.TEXT
# One publish at a time (the cost of one fsynced write), and many (what batching can reach).
JETSTREAM_WINDOWS = (1, 64, 512)


class _Broadcast:
    def __init__(self) -> None:
        self.rooms: dict[bytes, list[WSTransport]] = defaultdict(list)


class _Peer(WSListener):
    def __init__(self, hub: _Broadcast, room: bytes, sender: bool) -> None:
        super().__init__()
        self.hub = hub
        self.room = room
        self.sender = sender

    def on_ws_connected(self, transport: WSTransport) -> None:
        if not self.sender:
            self.hub.rooms[self.room].append(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.sender:
            with contextlib.suppress(ValueError):
                self.hub.rooms[self.room].remove(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not _TEXT or not self.sender:
            return
        payload = frame.get_payload_as_bytes()
        for receiver in self.hub.rooms[self.room]:
            receiver.send(_TEXT, payload)
        client_msg_id = orjson.loads(payload)["client_msg_id"]
        transport.send(_TEXT, orjson.dumps({"type": "ack", "client_msg_id": client_msg_id}))


def ws_server_main(conn: Connection) -> None:
    """Serve on a free loopback port (sent back over `conn`) until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    hub = _Broadcast()

    def factory(request: WSUpgradeRequest) -> WSListener | None:
        parts = request.path.strip(b"/").split(b"/")
        if len(parts) != 2 or parts[0] not in (b"r", b"s"):
            return None
        return _Peer(hub, parts[1], parts[0] == b"s")

    async def main() -> None:
        server = await ws_create_server(factory, "127.0.0.1", 0, max_frame_size=1 << 20)
        conn.send(int(server.sockets[0].getsockname()[1]))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        server.close()

    try:
        uvloop.run(main())
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class JetStreamRun:
    window: int  # publishes awaiting their PubAck, at most
    rate: float
    ack: Summary | None
    published: int


@dataclass(frozen=True, slots=True)
class NatsResult:
    core_rate: float
    core_latency: Summary | None
    jetstream: list[JetStreamRun]
    seconds: float


async def _core(
    nc: Any, duration: float, payload_size: int, window: int
) -> tuple[float, array[float]]:
    """Publish → subscribe on core NATS, at most `window` messages in flight."""
    latency: array[float] = array("f")
    received = 0
    subject = f"rtm.bench.core.{secrets.token_hex(4)}"
    pad = b"x" * max(0, payload_size - 20)

    everything = asyncio.Event()
    published = 0
    end_count = -1  # set once publishing is over

    async def on_message(msg: Any) -> None:
        nonlocal received
        received += 1
        latency.append((time.monotonic_ns() - int(msg.data[:20])) / 1e6)
        if received == end_count:
            everything.set()

    sub = await nc.subscribe(subject, cb=on_message, pending_msgs_limit=window * 4)
    began = time.monotonic()
    end = began + duration
    while time.monotonic() < end:
        if published - received < window:
            for _ in range(50):
                await nc.publish(subject, b"%020d" % time.monotonic_ns() + pad)
                published += 1
        await asyncio.sleep(0)
    await nc.flush()
    end_count = published
    if received < published:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everything.wait(), 5)
    elapsed = time.monotonic() - began
    await sub.unsubscribe()
    return received / elapsed, latency


async def _jetstream(
    nc: Any, duration: float, payload_size: int, window: int
) -> tuple[float, array[float], int]:
    """JetStream publishes with `Nats-Msg-Id`, at most `window` awaiting their PubAck."""
    from rtm.shared.connect import NATS_FAILURES  # nats: only in this process

    js = nc.jetstream()
    tag = secrets.token_hex(4)
    stream = f"RTM_BENCH_{tag.upper()}"
    subject = f"rtm.bench.js.{tag}"
    await js.add_stream(name=stream, subjects=[f"{subject}.>"], storage="file")
    latency: array[float] = array("f")
    acked = 0
    in_flight: set[asyncio.Future[object]] = set()
    payload = b"x" * payload_size
    published = 0
    try:
        began = time.monotonic()
        end = began + duration
        while time.monotonic() < end:
            while len(in_flight) < window and time.monotonic() < end:
                sent = time.monotonic_ns()
                future = await js.publish_async(
                    f"{subject}.{published % 8}",
                    payload,
                    headers={"Nats-Msg-Id": f"{tag}:{published}"},
                )
                published += 1

                def done(_: object, sent: int = sent) -> None:
                    nonlocal acked
                    acked += 1
                    latency.append((time.monotonic_ns() - sent) / 1e6)

                future.add_done_callback(done)
                in_flight.add(future)
            finished, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            in_flight -= finished
        if in_flight:
            await asyncio.wait(in_flight, timeout=10)
        elapsed = time.monotonic() - began
    finally:
        with contextlib.suppress(*NATS_FAILURES):  # a leftover test stream, nothing more
            await js.delete_stream(stream)
    return acked / elapsed, latency, published


async def run_nats(url: str, duration: float, payload_size: int) -> NatsResult:
    import nats

    began = time.monotonic()
    nc = await nats.connect(url, name="rtm-bench-baseline", allow_reconnect=False)
    runs = []
    try:
        core_rate, core_latency = await _core(nc, duration, payload_size, window=1000)
        for window in JETSTREAM_WINDOWS:
            rate, latency, published = await _jetstream(
                nc, duration / len(JETSTREAM_WINDOWS), payload_size, window
            )
            runs.append(JetStreamRun(window, rate, summarize(latency), published))
    finally:
        await nc.close()
    return NatsResult(
        core_rate=core_rate,
        core_latency=summarize(core_latency),
        jetstream=runs,
        seconds=time.monotonic() - began,
    )


def nats_main(conn: Connection, url: str, duration: float, payload_size: int) -> None:
    """Entry point of the bare nats-py loop process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def main() -> None:
        try:
            conn.send(await run_nats(url, duration, payload_size))
        except Exception:  # last line of defence: the traceback goes to the parent's report
            conn.send(Failed(0, traceback.format_exc()))

    try:
        uvloop.run(main())
    finally:
        conn.close()
