"""A small history on real servers for the continuity tests, and the ways to damage it.

`make_history` publishes messages the way the producer does and lets the real consumer store
them (its auditor off), until every partition has committed them. The damage helpers then edit
PostgreSQL behind the consumer's back, each the shape of one kind of finding.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from nats.aio.client import Client as NatsClient

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.contract import AcceptedMessage, message_subject, msg_id_header, partition_of
from tests.integration.consumer.conftest import PARTITIONS, wait_ready
from tests.support.asgi import running_consumer
from tests.support.db import create_conversation


@dataclass(frozen=True, slots=True)
class Published:
    stream_seq: int
    message: AcceptedMessage

    @property
    def partition(self) -> int:
        return partition_of(self.message.conversation_id, PARTITIONS)


@dataclass(frozen=True, slots=True)
class History:
    conversations: tuple[uuid.UUID, ...]
    sender: uuid.UUID
    published: tuple[Published, ...]

    def of(self, conversation: uuid.UUID) -> list[Published]:
        return [p for p in self.published if p.message.conversation_id == conversation]


async def publish_message(
    nc: NatsClient,
    conversation: uuid.UUID,
    sender: uuid.UUID,
    *,
    client_msg_id: uuid.UUID | None = None,
    msg_id: str | None = None,
) -> Published:
    """Publish like the producer (`Nats-Msg-Id` from sender and client_msg_id unless `msg_id`
    overrides it, as a resend past the duplicate window would get through)."""
    client = client_msg_id or uuid.uuid4()
    message = AcceptedMessage(
        uuid.uuid4(), conversation, sender, client, "a secret body", datetime.now(UTC)
    )
    ack = await nc.jetstream().publish(
        message_subject(partition_of(conversation, PARTITIONS), conversation),
        message.encode(),
        headers={"Nats-Msg-Id": msg_id or msg_id_header(sender, client)},
    )
    return Published(int(ack.seq), message)


async def committed_offsets(database_url: str) -> dict[int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT partition, stream_seq FROM messaging.partition_offsets")
    finally:
        await conn.close()
    return {int(r["partition"]): int(r["stream_seq"]) for r in rows}


async def consume(
    settings: ConsumerSettings, database_url: str, up_to: dict[int, int], timeout: float = 30
) -> None:
    """Run the real consumer (auditor off) until each partition committed its `up_to` seq."""
    quiet = settings.model_copy(update={"continuity_audit_interval_s": 0.0})
    async with running_consumer(create_app(quiet)) as base:
        await wait_ready(base)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            offsets = await committed_offsets(database_url)
            if all(offsets.get(p, 0) >= seq for p, seq in up_to.items()):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"committed {offsets}, waiting for {up_to}")
            await asyncio.sleep(0.05)


def last_seqs(published: list[Published]) -> dict[int, int]:
    """The last stream seq of each partition among `published`."""
    last: dict[int, int] = {}
    for item in published:
        last[item.partition] = max(last.get(item.partition, 0), item.stream_seq)
    return last


async def make_history(
    settings: ConsumerSettings, nc: NatsClient, database_url: str, count: int = 20
) -> History:
    """`count` messages over three conversations, all stored by the real consumer."""
    sender = uuid.uuid4()
    conversations = tuple([await create_conversation(database_url, [sender]) for _ in range(3)])
    published = [await publish_message(nc, conversations[n % 3], sender) for n in range(count)]
    await consume(settings, database_url, last_seqs(published))
    return History(conversations, sender, tuple(published))


async def execute(database_url: str, *statements: tuple[str, list[object]]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            for sql, args in statements:
                await conn.execute(sql, *args)
    finally:
        await conn.close()


async def lose_last(database_url: str, conversation: uuid.UUID) -> uuid.UUID:
    """Issue #10's shape: the conversation's last message was never stored; seqs stay dense
    (the row goes, the head steps back). Returns its message_id."""
    conn = await asyncpg.connect(database_url)
    try:
        message_id: uuid.UUID = await conn.fetchval(
            "DELETE FROM messaging.messages WHERE conversation_id = $1 AND seq ="
            " (SELECT last_seq FROM messaging.conversation_heads WHERE conversation_id = $1)"
            " RETURNING message_id",
            conversation,
        )
        await conn.execute(
            "UPDATE messaging.conversation_heads SET last_seq = last_seq - 1"
            " WHERE conversation_id = $1",
            conversation,
        )
    finally:
        await conn.close()
    return message_id
