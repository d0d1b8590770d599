"""Run an ASGI app on a real uvicorn server on a free port inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import uvicorn

from rtm.consumer.entrypoints.ws import ws_protocol
from rtm.producer.entrypoints.ws import ws_protocol as producer_ws_protocol


@asynccontextmanager
async def running(
    app: Any, *, ws_max_size: int = 64 * 1024, ws: Any = "websockets-sansio", **options: Any
) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1:<free port>; yields `host:port`; shuts down gracefully.
    `options`: further `uvicorn.Config` arguments (they win over the defaults here)."""
    config = uvicorn.Config(
        app,
        **{
            "host": "127.0.0.1",
            "port": 0,
            "ws": ws,
            "ws_max_size": ws_max_size,
            "log_config": None,
            "lifespan": "on",
            "timeout_graceful_shutdown": 5,
            **options,
        },
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def running_consumer(app: Any) -> AbstractAsyncContextManager[str]:
    """A consumer app served as `rtm-consumer` serves it: `/v1/ws` on picows."""
    return running(app, ws=ws_protocol(app, app.state.consumer.settings))


def running_producer(app: Any, **options: Any) -> AbstractAsyncContextManager[str]:
    """A producer app served as `rtm-producer` serves it: `/v1/ws` on picows."""
    return running(app, ws=producer_ws_protocol(app, app.state.producer.settings), **options)
