"""The frames the SDK writes and the consumer URL it connects to, one function each (no I/O).

The SDK uses the issue-14 additions of docs/protocol.md: `"wait":"stored"` on every send (so
the ack carries `seq` and history holds the message once `send()` returns), cursors given with
the consumer connection (`?cursors=`, so no live message is sent past a cursor), and
`read_ok` answering a `read`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

#: Most conversations one `resume` may name (`RTM_MAX_RESUME_CONVERSATIONS`, default 1000).
MAX_RESUME_CONVERSATIONS = 1000
#: Longest `?cursors=` value the SDK puts in a URL (URLs are limited to a few kB); with more
#: cursors it connects with `?resume=1` and sends `resume` frames instead.
MAX_QUERY_CURSORS_CHARS = 3000

Frame = dict[str, Any]


def send_frame(client_msg_id: str, conversation_id: str, body: str) -> Frame:
    """A `send` acked only once the message is in PostgreSQL, its ack carrying `seq`."""
    return {
        "type": "send",
        "client_msg_id": client_msg_id,
        "conversation_id": conversation_id,
        "body": body,
        "wait": "stored",
    }


def auth_frame(token: str) -> Frame:
    return {"type": "auth", "token": token}


def ping_frame() -> Frame:
    return {"type": "ping"}


def typing_frame(conversation_id: str) -> Frame:
    return {"type": "typing", "conversation_id": conversation_id}


def read_frame(conversation_id: str, seq: int) -> Frame:
    """A read marker; the producer answers `read_ok` with the same pair (or an error)."""
    return {"type": "read", "conversation_id": conversation_id, "seq": seq}


def websocket_url(base: str) -> str:
    """`http://host:port` → `ws://host:port/v1/ws` (https → wss)."""
    return base.rstrip("/").replace("http", "ws", 1) + "/v1/ws"


def cursors_query(cursors: Mapping[str, int], limit: int = MAX_RESUME_CONVERSATIONS) -> str | None:
    """The value of `?cursors=` for these cursors, or None when it would be too long for a URL
    or name more than `limit` conversations (then the caller connects with `?resume=1` and
    sends `resume_frames`)."""
    value = ",".join(f"{conversation}:{seq}" for conversation, seq in cursors.items())
    if len(value) > MAX_QUERY_CURSORS_CHARS or len(cursors) > limit:
        return None
    return value


def consumer_url(
    ws_url: str, cursors: Mapping[str, int], limit: int = MAX_RESUME_CONVERSATIONS
) -> tuple[str, list[Frame]]:
    """The consumer URL to open and the `resume` frames to send once it is `ready`.

    Few cursors go in the URL (`?cursors=`, empty when there are none): the server resumes them
    right after `ready` and holds live messages until `resumed`, so nothing arrives past a
    cursor and no frame is needed. Many go in `resume` frames (`?resume=1` holds live messages
    until the first one is handled).
    """
    query = cursors_query(cursors, limit)
    if query is not None:
        return f"{ws_url}?{urlencode({'cursors': query}, safe=':,')}", []
    return f"{ws_url}?resume=1", resume_frames(cursors, limit)


def resume_frames(cursors: Mapping[str, int], limit: int = MAX_RESUME_CONVERSATIONS) -> list[Frame]:
    """`resume` frames naming every cursor, at most `limit` each."""
    ids = list(cursors)
    if not ids:
        return [{"type": "resume", "cursors": {}}]
    return [
        {"type": "resume", "cursors": {i: cursors[i] for i in ids[k : k + limit]}}
        for k in range(0, len(ids), limit)
    ]
