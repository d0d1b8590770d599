"""Storing a partition's messages: from JetStream into PostgreSQL, in order, exactly once."""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass

from rtm.consumer.domain.exceptions import OutOfOrder
from rtm.consumer.domain.model import FenceToken, Pending, StoredMessage, StreamPosition
from rtm.consumer.domain.ports import (
    Delivery,
    Fanout,
    MessageStore,
    PartitionSource,
    PartitionSources,
)
from rtm.shared.contract import AcceptedMessage

logger = logging.getLogger(__name__)


class PartitionWorker:
    """Moves one partition's messages from JetStream into PostgreSQL, in order, exactly once.

    Run by the partition manager for the owner holding `token`: `open` takes the partition over,
    then `step` processes one batch at a time. Every batch's transaction checks the partition is
    still fenced by `token` and its offset is still ours, so a worker whose partition moved on
    cannot commit (`Fenced`, `OffsetMoved`); the source vouches that its deliveries are the
    partition's messages after the offset, none missing.

    Live delivery misses nothing either: a batch's fan-out must have reached the message bus
    before the next batch commits (the row then stops naming it as the last batch), and a new
    owner sends the last committed batch's fan-out again, since its owner may have died or been
    stopped between the commit and the fan-out. Receivers drop what they already have.
    """

    def __init__(
        self,
        partition: int,
        token: FenceToken,
        store: MessageStore,
        sources: PartitionSources,
        fanout: Fanout,
        *,
        batch_size: int,
        fetch_timeout: float,
    ) -> None:
        self.partition = partition
        self.token = token
        self.offset = 0
        self.rewound = False  # the stream did not hold what the offset said: started over
        self._store = store
        self._sources = sources
        self._fanout = fanout
        self._batch_size = batch_size
        self._fetch_timeout = fetch_timeout
        self._source: PartitionSource | None = None
        self._fanned: asyncio.Task[None] | None = None  # the last fan-out, on its way to the bus

    async def open(self) -> None:
        """Take the partition over: claim it with our token (`Fenced` if a newer owner has),
        check the stream still holds the message the committed offset names (if not, it was
        created again or lost its tail: start over from its beginning, stored messages are
        skipped), send the last committed batch's fan-out again, open a source after the
        offset."""
        claim = await self._store.claim(self.partition, self.token)
        if not await self._sources.holds(claim.position):
            logger.error(
                "partition %s: the stream does not hold the message at the committed offset %s "
                "(it was created again, or lost its tail): starting the partition over from the "
                "stream's first message; messages stored already are skipped",
                self.partition,
                claim.position.seq,
            )
            claim = await self._store.rewind(self.partition, self.token)
            self.rewound = True
        if claim.last_batch:
            batch = await self._store.load_batch(claim.last_batch)
            if batch.messages:
                await self._fanout.publish(batch)
                await self._fanout.flush()
        self.offset = claim.position.seq
        self._source = await self._sources.open(self.partition, self.offset, self.token)

    async def step(self) -> BatchOutcome:
        """Process one batch (an empty outcome when idle).

        Raises `Fenced` when a newer owner claimed the partition, `OffsetMoved` when another
        worker committed, `OutOfOrder` when the source handed over something other than the
        continuation of our offset, and store/transport errors as they come: the caller stops
        (fenced) or restarts the partition from the committed offset.
        """
        source = self._opened()
        deliveries = await source.next_batch(self._batch_size, self._fetch_timeout)
        if not deliveries:
            return BatchOutcome(0, 0, 0)
        stale = [d for d in deliveries if d.stream_seq <= self.offset]
        fresh = [d for d in deliveries if d.stream_seq > self.offset]
        if any(b.stream_seq <= a.stream_seq for a, b in itertools.pairwise(fresh)):
            raise OutOfOrder(self.partition, [d.stream_seq for d in fresh])
        if not fresh:
            await source.ack(stale)
            return BatchOutcome(len(deliveries), 0, len(stale))
        pending = [p for p in (_decode(d) for d in fresh) if p is not None]
        end = StreamPosition.of(fresh[-1].stream_seq, fresh[-1].payload)
        if self._fanned is not None:  # this commit stops naming the last batch: it must be out
            fanned, self._fanned = self._fanned, None
            await fanned
        batch = await self._store.store_batch(self.partition, self.token, self.offset, end, pending)
        if batch.skipped:
            _log_skipped(pending, batch.messages)
        self.offset = end.seq
        await source.ack(deliveries)
        if batch.messages:
            await self._fanout.publish(batch)
            self._fanned = asyncio.create_task(self._fanout.flush())  # awaited before the next
        return BatchOutcome(len(deliveries), len(batch.messages), batch.skipped)

    async def lag(self) -> tuple[int, int]:
        return await self._opened().lag()

    async def close(self) -> None:
        """Close the source. A fan-out still on its way is let go: the batch is the last one
        committed, and the next owner of the partition sends it again."""
        fanned, self._fanned = self._fanned, None
        if fanned is not None:
            fanned.cancel()
            await asyncio.wait({fanned})
            if not fanned.cancelled():
                fanned.exception()  # retrieved: its outcome no longer matters
        if self._source is not None:
            await self._source.close()

    def _opened(self) -> PartitionSource:
        if self._source is None:
            raise RuntimeError("open() the worker first")
        return self._source


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one step did: deliveries taken from the source, messages stored, ones skipped."""

    delivered: int
    stored: int
    skipped: int


def _log_skipped(pending: list[Pending], stored: list[StoredMessage]) -> None:
    """One line per message of a batch that was not stored: a redelivered duplicate of a stored
    send, or a message to a conversation that does not exist (ids only, never the body)."""
    kept = {message.message_id for message in stored}
    for item in pending:
        message = item.message
        if message.message_id not in kept:
            logger.info(
                "not stored: a duplicate, or its conversation does not exist",
                extra={
                    "message_id": message.message_id,
                    "client_msg_id": message.client_msg_id,
                    "conversation_id": message.conversation_id,
                    "stream_seq": item.stream_seq,
                },
            )


def _decode(delivery: Delivery) -> Pending | None:
    try:
        return Pending(delivery.stream_seq, AcceptedMessage.decode(delivery.payload))
    except ValueError as exc:  # not written by our producer: skipped (the offset covers it)
        logger.error("skipping undecodable message at stream seq %s: %s", delivery.stream_seq, exc)
        return None
