"""Engine.IO v4 / Socket.IO v5 framing over a WebSocket, as much as the socket.io baseline needs.

The load generator speaks the protocol itself on its picows clients rather than through a
Socket.IO client library, so that the same clients (and the same per-frame cost on the load
generator's side) drive rtm, the bare servers and the socket.io servers. The exchange, with the
websocket transport only (`/socket.io/?EIO=4&transport=websocket`):

    server → `0{"sid":...,"pingInterval":...}`   Engine.IO open
    client → `40{...auth}`                         Socket.IO connect to the main namespace
    server → `40{"sid":...}`                       connected (or `44{...}`: refused)
    client → `42<ack id>["send",{...}]`            an event that asks for an ack
    server → `43<ack id>[{...}]`                   its ack
    server → `42["message",{...}]`                 an event
    server → `2` / client → `3`                    Engine.IO heartbeat: ping, pong

Pure functions on bytes, unit-tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

PATH = "/socket.io/?EIO=4&transport=websocket"
PONG = b"3"

# Engine.IO packet types (the first character of a frame)
EIO_OPEN = 0
EIO_CLOSE = 1
EIO_PING = 2
EIO_PONG = 3
EIO_MESSAGE = 4
# Socket.IO packet types (the second character of an Engine.IO message)
SIO_CONNECT = 0
SIO_DISCONNECT = 1
SIO_EVENT = 2
SIO_ACK = 3
SIO_CONNECT_ERROR = 4

EVENT_PREFIX = b"42"  # an Engine.IO message carrying a Socket.IO event on the main namespace


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded frame: the Engine.IO type; for a message also the Socket.IO type, the ack id
    (when it has one) and the JSON data (an event's `[name, *args]`, an ack's `[*args]`, a
    connect's object), else `data` is the open or ping payload, decoded when it is JSON."""

    eio: int
    sio: int | None = None
    ack_id: int | None = None
    data: Any = None


def url(base: str) -> str:
    """`ws://h:p` → the Socket.IO endpoint with the websocket transport only."""
    return base.rstrip("/") + PATH


def connect(auth: dict[str, Any] | None = None) -> bytes:
    """The client's Socket.IO connect to the main namespace, with its auth payload."""
    return b"40" if auth is None else b"40" + orjson.dumps(auth)


def event(name: str, *args: Any, ack_id: int | None = None) -> bytes:
    """`42[name, *args]`, with an ack id after the type when the sender wants an ack."""
    head = EVENT_PREFIX if ack_id is None else EVENT_PREFIX + str(ack_id).encode()
    return head + orjson.dumps([name, *args])


def ack(ack_id: int, *args: Any) -> bytes:
    """`43<ack id>[*args]`: the answer to an event sent with that ack id."""
    return b"43" + str(ack_id).encode() + orjson.dumps(list(args))


def parse(frame: bytes) -> Packet:
    """Decode one text frame; `ValueError` when it is not Engine.IO v4 / Socket.IO v5."""
    if not frame or not frame[:1].isdigit():
        raise ValueError(f"not an Engine.IO packet: {frame[:20]!r}")
    eio = frame[0] - 48
    rest = frame[1:]
    if eio != EIO_MESSAGE:
        return Packet(eio, data=orjson.loads(rest) if rest[:1] in (b"{", b"[") else rest)
    if not rest or not rest[:1].isdigit():
        raise ValueError(f"not a Socket.IO packet: {frame[:20]!r}")
    sio = rest[0] - 48
    i = 1
    if rest[i : i + 1] == b"/":  # a namespace other than the main one: "/chat,"
        comma = rest.find(b",", i)
        i = len(rest) if comma < 0 else comma + 1
    start = i
    while i < len(rest) and rest[i : i + 1].isdigit():
        i += 1
    ack_id = int(rest[start:i]) if i > start else None
    body = rest[i:]
    return Packet(eio, sio, ack_id, orjson.loads(body) if body else None)
