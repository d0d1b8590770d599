"""A WebSocket endpoint served by picows inside uvicorn's HTTP server, on the same port and URL.

Why: the consumer writes every stored message to every member's socket. Through ASGI each write
is a coroutine through Starlette's middleware `send` wrappers and uvicorn's protocol, woken by a
per-connection writer task; the benchmark (docs/architecture.md, "The WebSocket stack") measured
the ASGI path at about twice picows's CPU per delivered frame. picows writes a frame
synchronously from C, so a message can go to all local members without a task switch.

How: uvicorn takes a WebSocket protocol class (`ws=`). On an upgrade request it builds one,
hands it the connection's transport and replays the request's bytes into it. `picows_protocol`
returns a class that builds picows's server protocol instead; picows then parses the replayed
request, asks `route` for a listener, answers 101, and frames the connection from then on.
FastAPI keeps serving every plain HTTP request of the port.

`PicowsSocket` gives the endpoint code the small part of Starlette's `WebSocket` it uses
(`headers`, `receive`, `receive_text`, `send_text`, `close`), plus `send_now` and
`buffered_bytes` for writes that need no task at all (see `rtm.shared.ws.Outbox`).

picows gets the connection's transport through `OwnedBuffers`, which copies what picows
passes to `writelines` (see there: without it a slow reader got corrupted frames, issue #10).
That handover plumbing is in `rtm.shared.picows_handover`; the server-wide ping timer,
`Keepalive`, in `rtm.shared.picows_keepalive`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, cast
from urllib.parse import parse_qsl

import picows
from picows import picows as picows_impl
from starlette.websockets import WebSocketDisconnect

from rtm.shared.logging import PICOWS_LOGGER
from rtm.shared.picows_handover import Handover
from rtm.shared.picows_keepalive import Keepalive
from rtm.shared.settings import WebSocketClientSettings

logger = logging.getLogger(__name__)
# What picows logs through. Not a `logging.Logger`: given one, picows 2.3 makes a child logger per
# connection (`<name>.<fd>`, about 1 KB each, kept until the connection goes); given anything
# else with the same methods it logs through that. Its own name: `setup_logging` turns its
# per-connection lines into DEBUG.
PICOWS_LOG = logging.LoggerAdapter(logging.getLogger(PICOWS_LOGGER))

Handler = Callable[["PicowsSocket"], Awaitable[None]]
Route = Callable[[picows.WSUpgradeRequest], picows.WSListener | None]

_MESSAGE_TOO_BIG = 1009
_INVALID_TEXT = 1007
_PROTOCOL_ERROR = 1002
_NO_STATUS = 1005
_ABNORMAL = 1006
# How long a close we initiate may wait for the peer to take what was written before it.
CLOSE_LINGER_S = 30.0
# The request headers a WebSocket endpoint reads (authentication, origin check, correlation id).
# Only these are kept for the connection's life: a client's full set costs ~2.5 KB per socket.
KEPT_HEADERS = ("authorization", "origin", "x-request-id")
NO_QUERY: Mapping[str, str] = MappingProxyType({})


class PicowsSocket(picows.WSListener):
    """One upgraded connection: picows's callbacks on one side, Starlette's `WebSocket` calls on
    the other. Fragmented messages are reassembled (bounded by `max_message_bytes`), text is
    checked to be UTF-8 (1007 otherwise), and a client's close is answered with its code."""

    __slots__ = (
        "_fragment_bytes",
        "_fragment_type",
        "_fragments",
        "_handler",
        "_inbox",
        "_linger",
        "_linger_timer",
        "_max",
        "_task",
        "_transport",
        "_waiter",
        "app",
        "disconnected",
        "headers",
        "heard",
        "keepalive",
        "query_params",
    )

    def __init__(
        self,
        request: picows.WSUpgradeRequest,
        handler: Handler,
        *,
        app: Any,
        max_message_bytes: int,
        close_linger_s: float = CLOSE_LINGER_S,
    ) -> None:
        super().__init__()
        self.app = app
        self.headers: Mapping[str, str] = {
            name: request.headers[name] for name in KEPT_HEADERS if name in request.headers
        }
        # The upgrade request's query (the consumer reads `cursors` and `resume`); most
        # connections have none and share one empty mapping.
        query = request.path.partition(b"?")[2]
        self.query_params: Mapping[str, str] = (
            dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else NO_QUERY
        )
        self._handler = handler
        self._max = max_message_bytes
        self._linger = close_linger_s
        self._linger_timer: asyncio.TimerHandle | None = None
        # A list and one future, not an asyncio.Queue: a queue costs ~2 kB per idle connection.
        self._inbox: list[dict[str, Any]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._transport: picows.WSTransport | None = None
        self._fragments: list[bytes] = []
        self._fragment_type: picows.WSMsgType | None = None
        self._fragment_bytes = 0
        self._task: asyncio.Task[None] | None = None
        self.disconnected = False
        # Set by `picows_protocol`'s route; `heard`: a frame came since the last sweep.
        self.keepalive: Keepalive | None = None
        self.heard = True

    # -- picows's side ------------------------------------------------------------------------

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self._transport = transport
        # picows keeps the upgrade request and its 101 response on the transport for the
        # connection's life; their headers are read by now (`KEPT_HEADERS`) and are most of
        # what an idle connection holds in Python objects.
        transport.request.headers.clear()
        transport.response.headers.clear()
        if self.keepalive is not None:
            self.keepalive.watch(self)
        # Held here: the loop keeps only a weak reference to a task.
        self._task = asyncio.create_task(self._serve(), name="ws-session")

    async def _serve(self) -> None:
        try:
            await self._handler(self)
        except Exception:  # last line of defence of the session task
            logger.exception("WebSocket session failed")
            self.close_now(1011, "internal error")
        finally:
            if not self.disconnected and self._transport is not None:
                self._transport.disconnect(graceful=True)

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        self.heard = True
        kind = frame.msg_type
        if self.disconnected:
            # We closed and are reading only so that nothing is left unread (`close_now`): the
            # peer's close answers ours, and nothing follows it.
            if kind == picows.WSMsgType.CLOSE:
                transport.disconnect(graceful=True)
            return
        if kind == picows.WSMsgType.CLOSE:
            code: Any = frame.get_close_code()  # an int for codes picows's enum lacks (4xxx)
            self._closed_by_peer(int(code) if code is not None else _NO_STATUS)
            return
        if kind in (picows.WSMsgType.PING, picows.WSMsgType.PONG):
            return  # picows answers pings itself
        if kind == picows.WSMsgType.CONTINUATION:
            if self._fragment_type is None:
                self.close_now(_PROTOCOL_ERROR, "continuation without a first frame")
                return
        elif self._fragment_type is not None:
            self.close_now(_PROTOCOL_ERROR, "new message inside a fragmented one")
            return
        else:
            self._fragment_type = kind
        self._fragment_bytes += frame.payload_size
        if self._fragment_bytes > self._max:
            self.close_now(_MESSAGE_TOO_BIG, "frame too big")
            return
        self._fragments.append(frame.get_payload_as_bytes())
        if frame.fin:
            self._deliver()

    def _deliver(self) -> None:
        payload = b"".join(self._fragments)
        kind = self._fragment_type
        self._fragments, self._fragment_type, self._fragment_bytes = [], None, 0
        if kind == picows.WSMsgType.BINARY:
            self._put({"type": "websocket.receive", "bytes": payload})
            return
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            self.close_now(_INVALID_TEXT, "invalid UTF-8")
            return
        self._put({"type": "websocket.receive", "text": text})

    def _put(self, message: dict[str, Any]) -> None:
        self._inbox.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _closed_by_peer(self, code: int) -> None:
        """Answer the peer's close and end the connection once what is buffered is sent; a
        peer that closed and does not read is aborted after `close_linger_s`."""
        if self._transport is not None and not self.disconnected:
            self._transport.send_close(_close_code(code if code != _NO_STATUS else 1000))
            self._transport.disconnect(graceful=True)
            self._abort_after_linger()
        self._gone(code)

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        if self._linger_timer is not None:  # it would hold the transport for the linger
            self._linger_timer.cancel()
            self._linger_timer = None
        self._gone(_ABNORMAL)

    def _gone(self, code: int) -> None:
        if not self.disconnected:
            self.disconnected = True
            if self.keepalive is not None:
                self.keepalive.forget(self)
            self._put({"type": "websocket.disconnect", "code": code})

    def ping(self) -> None:
        if self._transport is not None and not self.disconnected:
            self._transport.send_ping()

    def drop_unanswered(self, timeout: float) -> None:
        """The peer has not answered a ping (nor sent anything) within `timeout`: 1001, and
        drop the connection without waiting for it to read (it is gone, or does not read)."""
        if self._transport is None or self.disconnected:
            return
        logger.debug("no pong within %.1fs: dropping the connection", timeout)
        self._transport.send_close(picows.WSCloseCode.GOING_AWAY, b"no pong in time")
        self._transport.disconnect(graceful=False)
        self._gone(1001)

    # -- the endpoint's side (Starlette's WebSocket, the part we use) --------------------------

    async def accept(self) -> None:
        """picows answered 101 before the session started."""

    async def receive(self) -> dict[str, Any]:
        while not self._inbox:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._inbox.pop(0)

    async def receive_text(self) -> str:
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message["code"])
        text: str = message["text"]  # KeyError for a binary frame, as in Starlette
        return text

    async def send_text(self, text: str) -> None:
        if not self.send_now(text.encode()):
            raise WebSocketDisconnect(_ABNORMAL)

    def send_now(self, data: bytes) -> bool:
        """Write a text frame of UTF-8 `data` at once (picows buffers what the socket does not
        take yet); False when the connection is gone."""
        if self.disconnected or self._transport is None:
            return False
        self._transport.send(picows.WSMsgType.TEXT, data)
        return True

    def buffered_bytes(self) -> int:
        """Bytes written and not yet taken by the socket: the connection's real send queue."""
        if self._transport is None:
            return 0
        return int(self._transport.underlying_transport.get_write_buffer_size())

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.close_now(code, reason or "")

    def close_now(self, code: int, reason: str = "") -> None:
        """Send a close frame, half-close the TCP connection once everything written is sent,
        and keep reading (discarding) until the peer answers the close or ends the connection;
        abort it when that has not happened within `close_linger_s`.

        The close frame goes behind every frame written before it, the one the socket has only
        partly taken included: a frame never starts inside another (RFC 6455 §5.2, §5.4).

        Why not simply close the socket: a peer that is still sending (it does not know it is
        cut off) leaves data we have not read, and closing a socket with unread data makes the
        kernel send a reset and drop what the peer had not taken yet, our close frame included.
        So the connection lingers, reading, as HTTP servers do (nginx's `lingering_close`).

        A 4008 cut-off is for a peer that does not read, though, and the half-close waits for
        it to read: without the bound, such a peer would keep the connection and up to
        `send_queue_bytes` forever. Aborting is the RFC's "fail the connection" (§7.1.7)."""
        if self._transport is None or self.disconnected:
            return
        self._transport.send_close(_close_code(code), reason.encode()[:120])
        # picows sends nothing after its close frame; the FIN follows what is buffered. A
        # transport already closing (aborted, or a write failed) has nothing left to half-close.
        underlying = self._transport.underlying_transport
        if not underlying.is_closing():
            if underlying.can_write_eof():
                underlying.write_eof()
            else:  # TLS has no half-close: close (the old risk of a reset remains there)
                self._transport.disconnect(graceful=True)
        self._abort_after_linger()
        self._gone(code)

    def _abort_after_linger(self) -> None:
        """However the close went, the connection ends within `close_linger_s`."""
        if self._transport is not None:
            self._linger_timer = asyncio.get_running_loop().call_later(
                self._linger, _abort_if_open, self._transport
            )


def _abort_if_open(transport: picows.WSTransport) -> None:
    """The peer did not take what was written before our close frame in time: drop it all."""
    if not transport.is_disconnected:
        logger.info("closed connection not drained in time: aborted")
        transport.disconnect(graceful=False)


def _close_code(code: int) -> picows.WSCloseCode:
    """picows's stubs type close codes as its enum; at run time any int code goes through."""
    result: Any = code
    return cast(picows.WSCloseCode, result)


def endpoint_protocol(
    app: Any, path: bytes, handler: Handler, settings: WebSocketClientSettings
) -> type:
    """uvicorn's `ws=` for a service whose WebSocket endpoint is `path` (the producer's and the
    consumer's `/v1/ws`): served by `handler` on picows, on the HTTP API's port, with the
    service's frame limit and ping settings; any other upgrade is answered 404."""

    def route(request: picows.WSUpgradeRequest) -> PicowsSocket | None:
        if request.path.split(b"?", 1)[0] != path:
            return None
        return PicowsSocket(request, handler, app=app, max_message_bytes=settings.max_frame_bytes)

    return picows_protocol(
        route,
        max_frame_bytes=settings.max_frame_bytes,
        ping_interval=settings.ws_ping_interval_s,
        ping_timeout=settings.ws_ping_timeout_s,
    )


def picows_protocol(
    route: Route,
    *,
    max_frame_bytes: int,
    ping_interval: float = 20.0,
    ping_timeout: float = 20.0,
    handshake_timeout: float = 5.0,
) -> type:
    """A uvicorn `ws=` protocol class whose upgrades picows serves; `route` picks the listener
    by request (None: 404). A connection quiet for `ping_interval` seconds is pinged and
    dropped when the pong does not come within `ping_timeout` (`Keepalive`, one per server)."""
    keepalive = Keepalive(ping_interval, ping_timeout)

    def kept_alive(request: picows.WSUpgradeRequest) -> picows.WSListener | None:
        listener = route(request)
        if isinstance(listener, PicowsSocket):
            listener.keepalive = keepalive
        return listener

    def build() -> Any:
        # The arguments of picows's own ws_create_server (picows 2.3): see its source.
        return picows_impl.WSProtocol(  # type: ignore[attr-defined]  # not in picows's stubs
            None,  # host and port (client side only)
            None,  # path (client side only)
            False,  # is_client_side
            kept_alive,
            PICOWS_LOG,
            True,  # disconnect_on_exception
            handshake_timeout,
            False,  # enable_auto_ping: `Keepalive` pings, with one timer for every connection
            ping_interval,
            ping_timeout,
            picows.WSAutoPingStrategy.PING_WHEN_IDLE,
            True,  # enable_auto_pong
            max_frame_bytes,
            None,  # extra headers
            2048,  # read buffer's initial size: clients send little; it grows when needed
        )

    class PicowsUpgrade(Handover):
        __slots__ = ()

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(build())

    return PicowsUpgrade
