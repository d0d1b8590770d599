"""`SendingMixin`: the part of `Client` that writes on the producer socket.

Messages go through the `rtm.client.outbox.Outbox` (kept until acked, written again after
reconnects, `wait: stored` acks); typing and read markers are written beside it and take a
token of the outbox's pacing, so the socket stays under the producer's frame rate. The
producer's frames are dispatched here: acks and send errors to the outbox, `read_ok` and read
refusals to `rtm.client.reads.ReadMarkers`, anything else out as an `ErrorEvent`.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

from rtm.client.base import ClientBase, frame_error
from rtm.client.errors import RtmError
from rtm.client.events import ErrorEvent
from rtm.client.models import Ack, ReadState
from rtm.client.protocol import Frame, read_frame, typing_frame
from rtm.client.store import OutboxEntry


class SendingMixin(ClientBase):
    """Send, typing and read markers, and the producer socket's callbacks."""

    async def send(
        self, conversation_id: str, body: str, *, client_msg_id: str | None = None
    ) -> Ack:
        """Send a message; returns its ack once it is stored (history holds it; `ack.seq` is
        its position). It is kept, and written again with the same `client_msg_id` after
        reconnects and restarts (with a `FileStore`), until then: the application only
        awaits, it never retries.

        Raises:
            RtmError: only when the server refuses the message for good (`validation_failed`,
                `forbidden`), or `store_failed`, or `closed` before `connect()` and once
                `close()` is called (the send stays in the store for the next client).
        """
        if self._closed:
            raise RtmError("closed", "the client was closed")
        if self._outbox is None:
            raise RtmError("closed", "call connect() first")
        return await self._outbox.add(conversation_id, body, client_msg_id or str(uuid.uuid4()))

    def pending(self) -> list[OutboxEntry]:
        """Sends waiting for their ack (for a "sending..." state)."""
        return self._outbox.entries() if self._outbox is not None else []

    async def typing(self, conversation_id: str) -> bool:
        """Say the user is typing (ephemeral: False when the producer socket is not open)."""
        return await self._write_producer(typing_frame(conversation_id))

    async def mark_read(self, conversation_id: str, seq: int) -> None:
        """Move the read marker on the producer socket; returns on its `read_ok` (written now,
        or as soon as the socket is open again), or, after an error frame that may have refused
        it (`ref` null: which frame it refused is unknown), on HTTP's answer for it. For an
        answer saying what is stored, use `mark_read_stored`.

        Raises:
            RtmError: `forbidden`, or `validation_failed` for a bad `seq`.
        """
        future, fresh = self._reads.add(conversation_id, seq)
        if fresh and await self._write_producer(read_frame(conversation_id, seq)):
            self._reads.written(conversation_id, seq)
        await asyncio.shield(future)

    async def mark_read_stored(self, conversation_id: str, seq: int) -> ReadState:
        """Move the read marker over HTTP; returns what is stored (it never moves backwards)."""
        answer = await self._call(
            "consumer", "POST", f"/v1/conversations/{quote(conversation_id)}/read", {"seq": seq}
        )
        return ReadState.from_json(answer)

    @property
    def resent(self) -> int:
        """Sends written again with the same `client_msg_id`."""
        return self._outbox.resent if self._outbox is not None else 0

    # -- the producer socket ---------------------------------------------------------------

    async def _write_producer_send(self, frame: Frame) -> bool:
        return self._producer is not None and await self._producer.send(frame)

    async def _write_producer(self, frame: Frame) -> bool:
        """A frame outside the outbox (it takes a token of the outbox's pacing)."""
        written = self._producer is not None and await self._producer.send(frame)
        if written and self._outbox is not None:
            self._outbox.spend()
        return written

    async def _on_producer_open(self) -> None:
        await self._write_reads()
        if self._outbox is not None:
            self._outbox.connected()

    def _on_producer_down(self) -> None:
        self._reads.disconnected()
        if self._outbox is not None:
            self._outbox.disconnected()

    async def _write_reads(self) -> None:
        for conversation_id, seq in self._reads.unwritten():
            if await self._write_producer(read_frame(conversation_id, seq)):
                self._reads.written(conversation_id, seq)

    def _on_producer_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ack" and self._outbox is not None:
            self._outbox.handle_ack(frame)
        elif kind == "read_ok":
            self._reads.on_read_ok(frame)
        elif kind == "error":
            if self._outbox is not None and self._outbox.handle_error(frame):
                return
            asked = self._reads.refused(frame) if frame.get("ref") is None else []
            for conversation_id, seq in asked:
                self._spawn(self._read_over_http(conversation_id, seq))
            if not asked:
                self._emit(ErrorEvent(frame_error(frame)))

    async def _read_over_http(self, conversation_id: str, seq: int) -> None:
        """Ask HTTP about a marker an error frame may have refused (`ReadMarkers.refused`)."""
        try:
            await self.mark_read_stored(conversation_id, seq)
        except RtmError as exc:
            self._reads.answered(conversation_id, seq, exc)
            if self._reads.unwritten():
                await self._write_reads_later(exc.retry_after_ms)
            return
        self._reads.answered(conversation_id, seq, None)

    async def _write_reads_later(self, retry_after_ms: object) -> None:
        await asyncio.sleep(retry_after_ms / 1000 if isinstance(retry_after_ms, int) else 1.0)
        await self._write_reads()
