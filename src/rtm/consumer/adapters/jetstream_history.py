"""JetStream implementation of `StreamHistory`: RTM_MESSAGES read by ephemeral pull consumers.

A read creates its own consumer (ack policy none, in memory, removed by the server after a
minute unused should we die before deleting it), so it never touches the partitions' durable
consumers, their acks or their redeliveries. Each fetch asks for no more than the consumer
says is pending, so a read never waits for messages that are not there. Deliveries carry a
consumer sequence that must grow by one; a gap (a delivery lost with the connection) fails the
read rather than let a message go unchecked.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from rtm.consumer.domain.continuity import StreamEntry, stream_entry
from rtm.consumer.domain.continuity_ports import ContinuityUnavailable, StreamBounds
from rtm.shared.contract import MESSAGE_SUBJECT_PREFIX, STREAM, partition_filter
from rtm.shared.ids import new_id

_FAILURES = (nats.errors.Error, TimeoutError, OSError)  # nats-py's errors, and the socket's


class JetStreamHistory:
    """`StreamHistory` on RTM_MESSAGES.

    Args:
        js: a JetStream context of a connected client.
        fetch_timeout: how long one fetch may wait for messages the consumer said it had.
    """

    def __init__(self, js: JetStreamContext, *, fetch_timeout: float = 5.0) -> None:
        self._js = js
        self._fetch_timeout = fetch_timeout

    async def bounds(self) -> StreamBounds:
        try:
            info = await self._js.stream_info(STREAM)
        except NotFoundError as exc:
            raise ContinuityUnavailable(
                f"there is no stream {STREAM} on this NATS: is it rtm's?"
            ) from exc
        except _FAILURES as exc:
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
        try:
            info = await self._js.add_consumer(STREAM, config)
            subscription = await self._js.pull_subscribe_bind(consumer=name, stream=STREAM)
        except _FAILURES as exc:
            raise ContinuityUnavailable(f"JetStream: cannot read {STREAM}: {exc!r}") from exc
        try:
            pending = int(info.num_pending or 0)
            delivered = 0
            while pending > 0:
                try:
                    messages = await subscription.fetch(
                        min(batch, pending), timeout=self._fetch_timeout
                    )
                except _FAILURES as exc:
                    raise ContinuityUnavailable(
                        f"JetStream: reading {STREAM} failed after stream sequence "
                        f"{after_seq} + {delivered} messages: {exc!r}"
                    ) from exc
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
            with contextlib.suppress(*_FAILURES):
                await subscription.unsubscribe()
            with contextlib.suppress(*_FAILURES):
                await self._js.delete_consumer(STREAM, name)
