"""JetStream implementation of `PartitionSources`: a pull consumer per partition owner.

When a worker takes a partition it creates a consumer of its own, named after the partition and
the owner's fencing token, that starts right after the offset committed in PostgreSQL. No other
worker binds it: a stale owner that keeps running cannot take deliveries meant for the new one
(when all owners shared one durable consumer per partition, a stale worker pulled the new owner's
messages and a batch that started later than the committed offset could commit, skipping them).
Older owners' consumers of the partition are deleted when a newer owner opens its own; a consumer
nobody pulls from expires on the server after `INACTIVE_THRESHOLD_S`.

The committed offset, not a consumer's ack state, is the source of truth, so a new owner never
skips messages an old owner had fetched but not stored. Two checks make sure the deliveries are
exactly the partition's messages after that offset, in order, with none missing:

* the first delivery of a source must be the partition's first message after the offset, as
  JetStream itself answers (a "next by subject" message get);
* every later delivery's *consumer* sequence must be the one after the last: a pull consumer
  does not resend a message it delivered until `ack_wait` has passed, so a delivery that never
  reached us (lost with a connection to a nats-server that was killed, or handed out by a
  restarted server whose state says it was sent) would otherwise let later messages through
  first. A reconnect of the NATS connection since the source was opened counts as a gap too.

On a gap the source raises `DeliveryGap`; the worker restarts from the committed offset, on a
new consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from rtm.consumer.adapters.jetstream_pull import PullRefused, StandingPull
from rtm.consumer.domain.exceptions import DeliveryGap
from rtm.consumer.domain.model import FenceToken, StreamPosition, payload_check
from rtm.consumer.domain.ports import Delivery
from rtm.shared.connect import NATS_FAILURES
from rtm.shared.contract import STREAM, partition_filter

INACTIVE_THRESHOLD_S = 120.0  # a consumer no worker pulls from is removed by the server after
REQUEST_EXPIRES_S = 5.0  # how long each of a source's standing pull requests stays open
CLOSE_TIMEOUT_S = 2.0


def consumer_name(partition: int, token: FenceToken) -> str:
    """`rtm-p<partition>-<epoch>-<revision>-<random>`: unique to one owner's one attempt."""
    return f"{consumer_prefix(partition)}{token.epoch}-{token.revision}-{secrets.token_hex(4)}"


def consumer_prefix(partition: int) -> str:
    return f"rtm-p{partition}-"


def owner_of(partition: int, name: str) -> FenceToken | None:
    """The token in one of `partition`'s consumer names (None: not one of its owners' names)."""
    prefix = consumer_prefix(partition)
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split("-")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return FenceToken(int(parts[0]), int(parts[1]))


def _reconnects(nc: NatsClient | None) -> int:
    return int(nc.stats["reconnects"]) if nc is not None else 0


class PullOfMessages(Protocol):
    """What a source reads from (`StandingPull` on the owner's consumer)."""

    async def next(self, max_messages: int, timeout: float) -> list[Msg]: ...

    async def close(self) -> None: ...


class JetStreamPartitionSource:
    """Batches of one partition from its owner's pull consumer.

    Args:
        pull: standing requests on the owner's consumer.
        delivered: the consumer sequence the consumer had delivered when created.
        nc: the connection, to notice reconnects (None: not checked).
        reconnects: `nc`'s reconnect count before the consumer was created.
        first_after: JetStream's answer to "which is the partition's first message after the
            offset" (its stream sequence, None when there is none yet); asked once, when the
            first deliveries arrive, and they must begin with it (None: not checked).
        consumer_info: asks the server for the consumer's state (for `lag`).
        delete: removes the consumer on the server when the source closes.
    """

    def __init__(
        self,
        pull: PullOfMessages,
        *,
        delivered: int = 0,
        nc: NatsClient | None = None,
        reconnects: int = 0,
        first_after: Callable[[], Awaitable[int | None]] | None = None,
        consumer_info: Callable[[], Awaitable[ConsumerInfo]] | None = None,
        delete: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._pull = pull
        self._consumer_info = consumer_info
        self._delivered = delivered
        self._nc = nc
        self._reconnects = reconnects
        self._first_after = first_after
        self._delete = delete

    async def next_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        try:
            messages = await self._pull.next(max_messages, timeout)
        except PullRefused as exc:  # the consumer is gone (a newer owner?), or a server limit
            raise DeliveryGap(f"JetStream refused the partition's pull request: {exc}") from exc
        if _reconnects(self._nc) != self._reconnects:
            raise DeliveryGap("NATS reconnected: deliveries may have been lost")
        for message in messages:
            sequence = message.metadata.sequence.consumer
            if sequence != self._delivered + 1:
                raise DeliveryGap(
                    f"consumer sequence {sequence} after {self._delivered}: a delivery was "
                    "lost or repeated"
                )
            self._delivered = sequence
        if messages and self._first_after is not None:
            first = await self._first_after()
            got = messages[0].metadata.sequence.stream
            if first != got:
                raise DeliveryGap(
                    f"the first delivery is stream seq {got}, but the partition's first "
                    f"message after the offset is {first}"
                )
            self._first_after = None
        return [Delivery(m.metadata.sequence.stream, m.data, m) for m in messages]

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge a batch with one ack, of its last delivery: the consumer's policy is
        `AckPolicy.ALL`, so that acks every delivery up to it (one publish per batch, not per
        message). The ack is only flow control (`max_ack_pending`, no redelivery after
        `ack_wait`): the committed offset, not the ack state, says what is stored, and the
        consumer sequence checks above do not depend on it."""
        if deliveries:
            message = deliveries[-1].token
            assert isinstance(message, Msg)
            await message.ack()

    async def lag(self) -> tuple[int, int]:
        if self._consumer_info is None:
            return 0, 0
        info = await self._consumer_info()
        return int(info.num_pending or 0), int(info.num_redelivered or 0)

    async def close(self) -> None:
        """Unsubscribe and delete the consumer; best effort (NATS may be down: the server then
        removes the consumer once it has been inactive for `INACTIVE_THRESHOLD_S`)."""
        await self._pull.close()
        if self._delete is not None:
            with contextlib.suppress(*NATS_FAILURES):
                await asyncio.wait_for(self._delete(), CLOSE_TIMEOUT_S)


class JetStreamPartitionSources:
    """Opens partition sources on the RTM_MESSAGES stream."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        ack_wait: float = 30.0,
        request_expires: float = REQUEST_EXPIRES_S,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._ack_wait = ack_wait
        self._request_expires = request_expires

    async def holds(self, position: StreamPosition) -> bool:
        if position.seq == 0 or position.check is None:
            return True
        try:
            found = await self._js.get_msg(STREAM, seq=position.seq)
        except NotFoundError:
            # Gone: by age with everything before it (nothing at or below it remains, which is
            # what the offset says), or the stream is not the one the offset was committed on.
            state = (await self._js.stream_info(STREAM)).state
            return state.first_seq > position.seq
        return payload_check(found.data or b"") == position.check

    async def open(
        self, partition: int, after_stream_seq: int, token: FenceToken
    ) -> JetStreamPartitionSource:
        await self._remove_older_consumers(partition, token)
        name = consumer_name(partition, token)
        start = (
            {
                "deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
                "opt_start_seq": after_stream_seq + 1,
            }
            if after_stream_seq > 0
            else {"deliver_policy": DeliverPolicy.ALL}
        )
        reconnects = _reconnects(self._nc)
        info = await self._js.add_consumer(
            STREAM,
            ConsumerConfig(
                name=name,
                filter_subject=partition_filter(partition),
                ack_policy=AckPolicy.ALL,  # a batch is acked by its last delivery
                ack_wait=self._ack_wait,
                max_ack_pending=10_000,
                max_deliver=-1,
                inactive_threshold=INACTIVE_THRESHOLD_S,
                **start,
            ),
        )
        pull = StandingPull(self._nc, name, expires=self._request_expires)
        await pull.subscribe()

        async def first_after() -> int | None:
            try:
                found = await self._js.get_msg(
                    STREAM, seq=after_stream_seq + 1, subject=partition_filter(partition), next=True
                )
            except NotFoundError:
                return None
            return int(found.seq) if found.seq is not None else None

        return JetStreamPartitionSource(
            pull,
            delivered=info.delivered.consumer_seq if info.delivered is not None else 0,
            nc=self._nc,
            reconnects=reconnects,  # a reconnect while opening counts too
            first_after=first_after,
            consumer_info=lambda: self._js.consumer_info(STREAM, name),
            delete=lambda: self._js.delete_consumer(STREAM, name),
        )

    async def _remove_older_consumers(self, partition: int, token: FenceToken) -> None:
        """Delete the consumers of the partition's earlier owners (and the durable `rtm-p<N>`
        of versions before fencing): a stale worker still pulling from one then fails at once,
        and the server does not keep their state."""
        for name in await self._consumer_names():
            owner = owner_of(partition, name)
            if name == f"rtm-p{partition}" or (owner is not None and owner <= token):
                with contextlib.suppress(NotFoundError):
                    await self._js.delete_consumer(STREAM, name)

    async def _consumer_names(self) -> list[str]:
        names: list[str] = []
        while True:  # the server lists at most 256 consumers per request
            page = await self._js.consumers_info(STREAM, offset=len(names) or None)
            names.extend(info.name for info in page)
            if len(page) < 256:
                return names
