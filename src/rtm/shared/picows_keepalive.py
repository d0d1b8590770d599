"""`Keepalive`: one timer per server that pings quiet picows connections and drops silent ones.

It is the server-wide half of keeping a `rtm.shared.picows_server.PicowsSocket` alive (the
socket's half is its `heard` flag, `ping` and `drop_unanswered`); it lives apart from the socket
because it is a scheduler over every connection of a server, not part of one connection.
`picows_protocol` makes one per server and hands it to each socket its route builds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtm.shared.picows_server import PicowsSocket


class Keepalive:
    """Pings the connections of one server that have been quiet for `interval` seconds, from
    one timer, and drops those that do not answer within `timeout` (1001).

    Why not picows's own auto-ping: it runs a task per connection (the task, its coroutine, a
    sleeping future and its timer: ~1.5 KB of an idle connection). Here a connection costs a
    set entry and a flag. A sweep every `interval` pings each connection nothing was heard from
    since the previous sweep, so a quiet connection is pinged after `interval` to 2 x `interval`
    and dropped `timeout` later if still silent; anything it sends counts as an answer."""

    def __init__(self, interval: float, timeout: float) -> None:
        self._interval = interval
        self._timeout = timeout
        self._sockets: set[PicowsSocket] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, socket: PicowsSocket) -> None:
        self._sockets.add(socket)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._sweep)

    def forget(self, socket: PicowsSocket) -> None:
        self._sockets.discard(socket)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        pinged = []
        for socket in list(self._sockets):  # a ping that fails may drop a socket
            if socket.heard:
                socket.heard = False
            else:
                socket.ping()
                pinged.append(socket)
        if pinged:
            loop.call_later(self._timeout, self._expire, pinged)
        # Stops when the last connection has gone; `watch` starts it again.
        self._timer = loop.call_later(self._interval, self._sweep) if self._sockets else None

    def _expire(self, pinged: list[PicowsSocket]) -> None:
        for socket in pinged:
            if not socket.heard:
                socket.drop_unanswered(self._timeout)
