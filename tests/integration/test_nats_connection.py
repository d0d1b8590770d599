"""A NATS connection whose reading has died is noticed and made again.

nats-py ends its read loop on any exception a parsed message raises in it (it logs "nats:
encountered error" and stops reading) without closing or reconnecting: the client still says
it is connected, every request times out, and subscriptions get nothing, for ever. A chaos run
saw a consumer in that state: its sockets stayed open and were sent nothing. `connect_nats`
pings the server often enough that unanswered pings (nothing is read) make the client reconnect
within seconds; the watcher hears of the disconnect, so the consumer closes its sockets and the
clients resume elsewhere or after.
"""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from nats.errors import FlushTimeoutError

from rtm.local.nats import EmbeddedNats
from rtm.shared.connect import connect_nats, flush_within
from tests.support.processes import Freeze, frozen


class Watcher:
    def __init__(self) -> None:
        self.disconnects = 0
        self.reconnects = 0

    def disconnected(self) -> None:
        self.disconnects += 1

    def reconnected(self) -> None:
        self.reconnects += 1

    def slow_consumer(self, error: object) -> None:
        del error


async def test_a_connection_that_stopped_reading_reconnects_by_itself(nats_url: str) -> None:
    watcher = Watcher()
    nc = await connect_nats(nats_url, "dead-read-loop", watcher)
    try:
        reading = nc._reading_task  # the library's task that dies in the bug (private)
        assert reading is not None
        reading.cancel()  # what nats-py's read loop does on an exception: stop, nothing else
        started = time.monotonic()
        while watcher.reconnects == 0:
            assert time.monotonic() - started < 20, "a connection that reads nothing was kept"
            await asyncio.sleep(0.1)
        assert watcher.disconnects >= 1
        await nc.flush(timeout=5)  # reads again: the PONG comes back
    finally:
        await nc.close()


async def test_a_flush_given_up_on_leaves_the_connection_reading(
    nats_server: EmbeddedNats,
) -> None:
    """The likely trigger: nats-py's own `flush(timeout)` cancels its PONG future when it gives
    up and leaves it queued; the late PONG then raises in the read loop, which ends. Our flush
    gives up on its side only, so the PONG finds its future and reading goes on."""
    # Pings far apart: on a loaded machine connect_nats's stale check (3 pings 2 s apart) fired
    # while the server was frozen, and the flush then ended by the reconnect instead.
    nc = await nats.connect(nats_server.url, name="late-pong", ping_interval=3600)
    assert nats_server.proc is not None
    try:
        # The server answers nothing: the PONG comes late.
        with frozen(nats_server.proc.pid, Freeze.SERVER), pytest.raises(FlushTimeoutError):
            await flush_within(nc, 0.3)
        await nc.flush(timeout=5)  # the late PONG came and was read, and so is this one
        reading = nc._reading_task  # the library's task that dies in the bug (private)
        assert reading is not None
        assert not reading.done(), "the read loop ended: the connection reads nothing"
    finally:
        await nc.close()
