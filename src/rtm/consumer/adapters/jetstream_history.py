"""JetStream implementation of `StreamHistory`: RTM_MESSAGES read by ephemeral pull consumers.

A read creates its own consumer (ack policy none, in memory, removed by the server after a
minute unused should we die before deleting it), so it never touches the partitions' consumers,
their acks or their redeliveries. It pulls in batches of no more than the consumer says is
pending, so a pull never waits for messages that are not there (`NoWaitPull`). Deliveries carry
a consumer sequence that must grow by one; a gap (a delivery lost with the connection) fails the
read rather than let a message go unchecked.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from rtm.consumer.adapters.jetstream_pull import NoWaitPull
from rtm.consumer.domain.continuity import StreamEntry, stream_entry
from rtm.consumer.domain.continuity_ports import StreamBounds
from rtm.consumer.domain.exceptions import ContinuityUnavailable
from rtm.shared.connect import NATS_FAILURES
from rtm.shared.contract import MESSAGE_SUBJECT_PREFIX, STREAM, partition_filter
from rtm.shared.ids import new_id


class JetStreamHistory:
    """`StreamHistory` on RTM_MESSAGES.

    Args:
        nc: a connected client.
        fetch_timeout: how long one pull may take to deliver the messages it asked for.
    """

    def __init__(self, nc: NatsClient, *, fetch_timeout: float = 5.0) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._fetch_timeout = fetch_timeout

    async def bounds(self) -> StreamBounds:
        try:
            info = await self._js.stream_info(STREAM)
        except NotFoundError as exc:
            raise ContinuityUnavailable(
                f"there is no stream {STREAM} on this NATS: is it rtm's?"
            ) from exc
        except NATS_FAILURES as exc:
            raise ContinuityUnavailable(f"JetStream: cannot read stream {STREAM}: {exc!r}") from exc
        state = info.state
        return StreamBounds(int(state.first_seq), int(state.last_seq), int(state.messages))

    async def read(
        self, *, partition: int | None, after_seq: int, up_to_seq: int, batch: int
    ) -> AsyncGenerator[list[StreamEntry], None]:
        if up_to_seq <= after_seq:
            return
        name = f"rtm-continuity-{new_id().hex}"
        config = ConsumerConfig(
            name=name,
            filter_subject=(
                partition_filter(partition)
                if partition is not None
                else f"{MESSAGE_SUBJECT_PREFIX}.>"
            ),
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after_seq + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
            mem_storage=True,
        )
        pull = NoWaitPull(self._nc, name)
        try:
            info = await self._js.add_consumer(STREAM, config)
            await pull.subscribe()
        except NATS_FAILURES as exc:
            await pull.close()
            raise ContinuityUnavailable(f"JetStream: cannot read {STREAM}: {exc!r}") from exc
        try:
            pending = int(info.num_pending or 0)
            delivered = 0
            while pending > 0:
                try:
                    messages = await pull.next(min(batch, pending), self._fetch_timeout)
                except NATS_FAILURES as exc:
                    raise ContinuityUnavailable(
                        f"JetStream: reading {STREAM} failed after stream sequence "
                        f"{after_seq} + {delivered} messages: {exc!r}"
                    ) from exc
                if not messages:
                    break  # fewer than announced: removed from the stream meanwhile
                entries: list[StreamEntry] = []
                for message in messages:
                    metadata = message.metadata
                    if metadata.sequence.consumer != delivered + 1:
                        raise ContinuityUnavailable(
                            f"JetStream: a delivery was lost while reading {STREAM} "
                            f"(consumer sequence {metadata.sequence.consumer} after {delivered})"
                        )
                    delivered = metadata.sequence.consumer
                    if metadata.sequence.stream > up_to_seq:
                        pending = 0
                        break
                    entries.append(
                        stream_entry(metadata.sequence.stream, message.subject, message.data)
                    )
                    pending = int(metadata.num_pending)
                if entries:
                    yield entries
        finally:
            await pull.close()
            with contextlib.suppress(*NATS_FAILURES):
                await self._js.delete_consumer(STREAM, name)
