"""The producer's WebSocket `GET /v1/ws` (docs/protocol.md, "5. Producer"): the route (ASGI) and
picows's protocol for it. Each socket is a `ProducerConnection`
(`rtm.producer.entrypoints.ws_connection`).

`rtm-producer` serves `/v1/ws` with picows (`ws_protocol`, as the consumer does:
`rtm.shared.picows_server`): a frame is read and an answer written from C, without the ASGI
`receive`/`send` coroutines, Starlette's wrappers and uvicorn's writer task per frame (a profile
at 1,000 msgs/s put 11-16% of the producer's CPU in writing acks through them). The ASGI route
below serves the same session under any other ASGI server (tests, documentation).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, WebSocket

from rtm.producer.entrypoints.deps import ProducerContext
from rtm.producer.entrypoints.ws_connection import ProducerConnection
from rtm.producer.settings import ProducerSettings
from rtm.shared.picows_server import PicowsSocket, endpoint_protocol
from rtm.shared.ws import ServerSocket, bind_connection_log_context

logger = logging.getLogger(__name__)

router = APIRouter()


@router.websocket("/v1/ws")
async def producer_socket(websocket: WebSocket) -> None:
    """Send messages, typing indicators and read markers (docs/protocol.md, "5. Producer"). The
    producer's server serves this path with picows (`ws_protocol`); this ASGI route documents it and
    serves it under any other ASGI server."""
    # The query string means nothing here, and a client may have put a token in it: drop it
    # before the server logs the accepted connection (uvicorn logs this scope's path and query).
    websocket.scope["query_string"] = b""
    await serve_socket(websocket)


def ws_protocol(app: FastAPI, settings: ProducerSettings) -> type:
    """uvicorn's `ws=` for the producer: `/v1/ws` on picows, on the HTTP API's port (see
    `rtm.shared.picows_server`). picows logs no request line, so a token a client put in the
    query string is never logged either."""
    return endpoint_protocol(app, b"/v1/ws", serve_socket, settings)


async def serve_socket(websocket: ServerSocket) -> None:
    """One producer WebSocket, under picows or any ASGI server."""
    context: ProducerContext = websocket.app.state.producer  # a picows socket is no HTTPConnection
    bind_connection_log_context(websocket)
    if isinstance(websocket, PicowsSocket):
        # uvicorn logs the sockets it serves itself, picows does not (neither logs the query
        # string, where a client may have put a token). One line per connection: DEBUG, as
        # uvicorn's are (rtm.shared.logging).
        logger.debug('"WebSocket /v1/ws" accepted')
    await ProducerConnection(websocket, context).serve()
