"""How an upgraded connection passes from uvicorn to picows: `Handover` and `OwnedBuffers`.

uvicorn builds the protocol class given as `ws=` for an upgrade request, gives it the
connection's transport and replays the request's bytes into it. `Handover` is that class's
base: it feeds the bytes to picows's protocol (which takes them only through `get_buffer`) and
then installs picows's protocol on the transport in its own place. picows gets the transport
wrapped in `OwnedBuffers`, which copies what picows passes to `writelines` (issue #10).

They live apart from `rtm.shared.picows_server` because they are transport plumbing, the same
for every endpoint, with no WebSocket logic; `picows_protocol` there puts them together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any


class Handover(asyncio.Protocol):
    """What uvicorn sees as the WebSocket protocol: it replays the upgrade request into
    `data_received` (picows's protocol only takes bytes through `get_buffer`), then installs
    picows's protocol on the transport in place of itself."""

    __slots__ = ("_inner", "_transport")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._transport: Any = None  # asyncio's or uvloop's TCP transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(OwnedBuffers(transport))

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            buffer = self._inner.get_buffer(len(view))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            self._inner.buffer_updated(size)
            view = view[size:]
        asyncio.get_running_loop().call_soon(self._hand_over)

    def _hand_over(self) -> None:
        # uvicorn has called transport.set_protocol(self) by now: replace ourselves.
        if self._transport is not None and not self._transport.is_closing():
            self._transport.set_protocol(self._inner)
            # uvloop keeps our `data_received` after the switch (it only swaps the calls of the
            # protocol kind it is given): keep that from holding anything else.
            self._inner = self._transport = None

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class OwnedBuffers:
    """The connection's transport as picows sees it: the same, except that `writelines` copies
    every buffer that is not `bytes`, so the transport never holds memory picows reuses.

    Why: picows 2.3 (server side) writes a frame with over 8 KiB of payload as
    `writelines([header, payload])`, `header` being a memoryview of the one header buffer it
    reuses for every frame. uvloop's transport does not copy what the socket does not take at
    once: it keeps that memoryview and later hands its pointer to libuv. So when a reader is
    slow, each frame written meanwhile rewrites the pending header: the reader gets a wrong
    length (or, after a 4008 cut-off, the close frame's header) and loses the frame boundaries
    (issue #10). asyncio's transport copies in Python 3.11 but keeps memoryviews from 3.12.
    The copy is of the header only (2-10 bytes): the payload is immutable `bytes` already
    (`send_now` takes `bytes`). `write` needs no copy: picows passes it only `bytes` it made.
    """

    __slots__ = ("_inner", "get_write_buffer_size", "write")

    def __init__(self, inner: asyncio.BaseTransport) -> None:
        real: Any = inner  # uvloop's or asyncio's TCP transport
        self._inner = real
        # The calls made per frame: the real transport's bound methods, no Python in between.
        self.write: Callable[[bytes], None] = real.write
        self.get_write_buffer_size: Callable[[], int] = real.get_write_buffer_size

    def writelines(self, buffers: Iterable[bytes | bytearray | memoryview]) -> None:
        self._inner.writelines([b if type(b) is bytes else bytes(b) for b in buffers])

    def __getattr__(self, name: str) -> Any:
        """Everything else (`get_extra_info`, `close`, `abort`, ...) is the real transport's."""
        return getattr(self._inner, name)
