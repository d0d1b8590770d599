"""The consumer WebSocket `/v1/ws`: live events and `resume` (docs/protocol.md, "6. Consumer").

The route (ASGI) and picows's protocol for it, and the handshake they share (`serve_socket`:
origin, `auth`, the per-user connection limit, the connect options); the connection after it
is a `rtm.consumer.entrypoints.ws_session.ConsumerSession`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from rtm.consumer.entrypoints.deps import ConsumerContext
from rtm.consumer.entrypoints.schemas import connect_options
from rtm.consumer.entrypoints.ws_session import ConsumerSession
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.errors import RtmError
from rtm.shared.picows_server import endpoint_protocol
from rtm.shared.ws import (
    CloseCode,
    HandshakeFailed,
    ServerSocket,
    authenticate,
    bind_connection_log_context,
    close_quietly,
    origin_allowed,
)

router = APIRouter()


@router.websocket("/v1/ws")
async def consumer_socket(websocket: WebSocket) -> None:
    """Live events and `resume` (docs/protocol.md, "6. Consumer"). The consumer's server serves this
    path with picows (`ws_protocol`); this ASGI route documents it and serves it under any other
    ASGI server."""
    await serve_socket(websocket)


def ws_protocol(app: FastAPI, settings: ConsumerSettings) -> type:
    """uvicorn's `ws=` for the consumer: `/v1/ws` on picows, on the HTTP API's port (see
    `rtm.shared.picows_server` and docs/architecture.md, "The WebSocket stack")."""
    return endpoint_protocol(app, b"/v1/ws", serve_socket, settings)


async def serve_socket(websocket: ServerSocket) -> None:
    """One consumer WebSocket, under picows or any ASGI server. One coroutine from the accept to
    the session: each coroutine an idle connection waits in is ~0.2 KB of it."""
    bind_connection_log_context(websocket)
    context: ConsumerContext = websocket.app.state.consumer  # a picows socket is no HTTPConnection
    settings = context.settings
    await websocket.accept()
    if not origin_allowed(websocket.headers.get("origin"), settings.allowed_origins):
        # accepted first so the browser sees close code 1008, not a bare HTTP 403
        await close_quietly(websocket, CloseCode.POLICY, "origin not allowed")
        return
    try:
        claims = await authenticate(
            websocket, context.verifier, settings.auth_timeout_s, revoked=context.revoked.is_revoked
        )
    except HandshakeFailed as failed:
        await close_quietly(websocket, failed.code, failed.reason)
        return
    except (WebSocketDisconnect, RuntimeError):
        return
    except RtmError as error:  # JWKS unavailable
        await close_quietly(websocket, CloseCode.INTERNAL, error.message)
        return
    if context.hub.count_for(claims.user_id) >= settings.max_connections_per_user:
        await close_quietly(websocket, CloseCode.TOO_MANY_CONNECTIONS, "too many connections")
        return
    options = connect_options(
        websocket.query_params, max_resume_conversations=settings.max_resume_conversations
    )
    session = ConsumerSession(websocket, claims, context, options)
    await session.run()
