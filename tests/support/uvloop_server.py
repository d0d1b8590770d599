"""Serve an ASGI app the way `rtm-consumer` and `rtm-producer` serve it: uvicorn on uvloop.

Why: pytest-asyncio runs each test, and the servers of `tests.support.asgi.running`, on
asyncio's own event loop, while the services run uvicorn's default loop, uvloop, whose
transports behave differently where it matters: given a buffer it cannot send at once, uvloop
keeps a reference to that memory (no copy) while asyncio (3.11) copies it. Issue #10's
corrupted frames existed only on uvloop. So this server runs in a thread of its own, on a uvloop
loop of its own, on 127.0.0.1 and a free port; the test talks to it over sockets only.

`send_buffer_bytes` sets the listening socket's `SO_SNDBUF`, which its connections inherit (and
which stops Linux from growing it): on loopback the kernel otherwise takes ~3 MB a connection's
peer does not read before the server's own buffering even starts, and a test that means to
fill the server's buffer would have to send all that first.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import uvicorn

from rtm.consumer.entrypoints.ws import ws_protocol
from rtm.producer.entrypoints.ws import ws_protocol as producer_ws_protocol


@asynccontextmanager
async def running_on_uvloop(
    app: Any,
    *,
    ws: Any = "websockets-sansio",
    ws_max_size: int = 64 * 1024,
    send_buffer_bytes: int | None = None,
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on uvloop in a thread; yields `host:port`; stops it gracefully.

    The app's lifespan (pools, NATS clients, workers) runs on that thread's loop, so the app
    must be fresh: built, not started, by the caller."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        loop="uvloop",
        ws=ws,
        ws_max_size=ws_max_size,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if send_buffer_bytes is not None:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    # uvicorn installs no signal handlers outside the main thread.
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="uvicorn-uvloop", daemon=True
    )
    thread.start()
    for _ in range(2000):  # up to ~20 s on a loaded machine
        if server.started or not thread.is_alive():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        server.should_exit = True
        listener.close()
        raise RuntimeError("uvicorn on uvloop did not start (its log says why)")
    port = listener.getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
        listener.close()
        if thread.is_alive():
            raise RuntimeError("uvicorn on uvloop did not stop within 30 s")


def running_consumer_on_uvloop(
    app: Any, *, send_buffer_bytes: int | None = None
) -> AbstractAsyncContextManager[str]:
    """A consumer app served as `rtm-consumer` serves it: `/v1/ws` on picows, on uvloop."""
    return running_on_uvloop(
        app, ws=ws_protocol(app, app.state.consumer.settings), send_buffer_bytes=send_buffer_bytes
    )


def running_producer_on_uvloop(
    app: Any, *, send_buffer_bytes: int | None = None
) -> AbstractAsyncContextManager[str]:
    """A producer app served as `rtm-producer` serves it: `/v1/ws` on picows, on uvloop."""
    return running_on_uvloop(
        app,
        ws=producer_ws_protocol(app, app.state.producer.settings),
        send_buffer_bytes=send_buffer_bytes,
    )
