"""Read markers written on the producer socket, each answered by `read_ok`.

A `read` frame is answered `read_ok` with the same `conversation_id` and `seq` (docs/protocol.md
§5), or, when refused, an error frame with `ref` null. The producer handles `read` and `typing`
frames concurrently, and refuses both with `ref` null, so such an error cannot be pinned on one
marker: every marker written and waiting is then asked over HTTP (`POST
/v1/conversations/{id}/read`), which answers each one (as clients/js/src/reads.ts does). Markers
not answered when the socket goes down, or that HTTP could not store for now, are written again
on the next socket (a marker only moves forward, so writing it twice is harmless).
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
    #: Asked over HTTP after an error frame that may have refused it.
    asking: bool = False


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
            read.written = read.asking  # one HTTP is answering stays out of the socket's way

    def on_read_ok(self, frame: Mapping[str, Any]) -> None:
        pair = (frame.get("conversation_id"), frame.get("seq"))
        for read in list(self._waiting):
            if (read.conversation_id, read.seq) == pair:
                self._waiting.remove(read)
                if not read.future.done():
                    read.future.set_result(None)

    def refused(self, frame: Mapping[str, Any]) -> list[tuple[str, int]]:
        """An error frame with `ref` null: if it may have refused a `read`, the markers written
        and waiting, to ask over HTTP and hand to `answered` (each is asked once)."""
        if str(frame.get("code", "")) not in _READ_REFUSALS | TRANSIENT_CODES:
            return []
        asked = [r for r in self._waiting if r.written and not r.asking]
        for read in asked:
            read.asking = True
        return [(r.conversation_id, r.seq) for r in asked]

    def answered(self, conversation_id: str, seq: int, error: RtmError | None) -> None:
        """HTTP's answer for a marker `refused` handed out: stored (None), refused for good
        (`forbidden`, `validation_failed`), or else written again on the socket."""
        for read in [
            r for r in self._waiting if (r.conversation_id, r.seq) == (conversation_id, seq)
        ]:
            read.asking = False
            if error is not None and error.code not in _READ_REFUSALS:
                read.written = False
                continue
            self._waiting.remove(read)
            if read.future.done():
                continue
            if error is None:
                read.future.set_result(None)
            else:
                read.future.set_exception(error)

    def fail_all(self, error: RtmError) -> None:
        for read in self._waiting:
            if not read.future.done():
                read.future.set_exception(error)
        self._waiting.clear()
