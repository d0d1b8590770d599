"""Read markers written on the producer socket, each answered by `read_ok`.

A `read` frame is answered `read_ok` with the same `conversation_id` and `seq` (docs/protocol.md
§5), or, when refused, an error frame with `ref` null; the producer answers a connection's
frames in order, so a refusal belongs to the oldest marker still waiting. Markers not answered
when the socket goes down are written again on the next one (a marker only moves forward, so
writing it twice is harmless).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rtm.client.errors import TRANSIENT_CODES, RtmError

#: Codes that refuse a `read` for good (a transient one is written again).
_READ_REFUSALS = frozenset({"forbidden", "validation_failed"})


@dataclass(slots=True)
class _Read:
    conversation_id: str
    seq: int
    future: asyncio.Future[None]
    written: bool = False


class ReadMarkers:
    """The `read` frames waiting for their answer, in the order they were written."""

    def __init__(self) -> None:
        self._waiting: list[_Read] = []

    def add(self, conversation_id: str, seq: int) -> tuple[asyncio.Future[None], bool]:
        """A marker to write; the future resolves on its `read_ok`. The flag says whether the
        caller should write it now (False: the same marker is waiting already)."""
        for read in self._waiting:
            if (read.conversation_id, read.seq) == (conversation_id, seq):
                return read.future, False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Read(conversation_id, seq, future))
        return future, True

    def written(self, conversation_id: str, seq: int) -> None:
        for read in self._waiting:
            if (read.conversation_id, read.seq) == (conversation_id, seq):
                read.written = True

    def unwritten(self) -> list[tuple[str, int]]:
        """Markers to write on a (new) socket."""
        return [(r.conversation_id, r.seq) for r in self._waiting if not r.written]

    def disconnected(self) -> None:
        for read in self._waiting:
            read.written = False

    def on_read_ok(self, frame: Mapping[str, Any]) -> None:
        pair = (frame.get("conversation_id"), frame.get("seq"))
        for read in list(self._waiting):
            if (read.conversation_id, read.seq) == pair:
                self._waiting.remove(read)
                if not read.future.done():
                    read.future.set_result(None)

    def on_error(self, frame: Mapping[str, Any]) -> bool:
        """An error frame with `ref` null: True if it answered the oldest written marker."""
        code = str(frame.get("code", ""))
        oldest = next((r for r in self._waiting if r.written), None)
        if oldest is None or (code not in _READ_REFUSALS and code not in TRANSIENT_CODES):
            return False
        if code in TRANSIENT_CODES:
            oldest.written = False  # written again on the next pass
            return True
        self._waiting.remove(oldest)
        if not oldest.future.done():
            oldest.future.set_exception(
                RtmError(code, str(frame.get("message", "")), field=frame.get("field"))
            )
        return True

    def fail_all(self, error: RtmError) -> None:
        for read in self._waiting:
            if not read.future.done():
                read.future.set_exception(error)
        self._waiting.clear()
