"""`verify_continuity` on real NATS and PostgreSQL: a history stored by the real consumer,
then damaged behind its back in each way the check must report, and in none."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from nats.aio.client import Client as NatsClient

from rtm.consumer.domain.continuity import OrderKind
from rtm.consumer.domain.exceptions import ContinuityUnavailable
from rtm.consumer.settings import ConsumerSettings
from rtm.consumer.verify import verify_continuity
from rtm.shared.contract import message_subject, partition_of
from tests.integration.consumer.conftest import PARTITIONS
from tests.integration.consumer.continuity_support import (
    consume,
    execute,
    last_seqs,
    lose_last,
    make_history,
    publish_message,
)


async def test_a_history_stored_by_the_consumer_verifies_clean(
    consumer_settings: ConsumerSettings, nc: NatsClient, nats_url: str, database_url: str
) -> None:
    history = await make_history(consumer_settings, nc, database_url)
    report = await verify_continuity(nats_url, database_url)
    assert report.clean
    assert (report.checked, report.stored, report.pending, report.resent) == (20, 20, 0, 0)
    assert (report.rows_checked, report.conversations_checked) == (20, 3)
    assert report.stream_last_seq == history.published[-1].stream_seq


async def test_a_message_lost_as_in_issue_10_is_reported_missing_and_nothing_else(
    consumer_settings: ConsumerSettings, nc: NatsClient, nats_url: str, database_url: str
) -> None:
    history = await make_history(consumer_settings, nc, database_url)
    conversation = history.conversations[1]
    lost = await lose_last(database_url, conversation)
    report = await verify_continuity(nats_url, database_url)
    [missing] = report.missing.items
    [published] = [p for p in history.published if p.message.message_id == lost]
    assert (missing.message_id, missing.stream_seq) == (lost, published.stream_seq)
    assert (missing.sender_id, missing.client_msg_id, missing.conversation_id) == (
        history.sender,
        published.message.client_msg_id,
        conversation,
    )
    assert missing.partition == partition_of(conversation, PARTITIONS)
    assert missing.committed_offset >= published.stream_seq
    assert (report.missing.count, report.stored_twice.count, report.out_of_order.count) == (
        1,
        0,
        0,
    )
    assert not report.clean


async def test_a_deleted_row_is_missing_and_leaves_a_gap_in_its_conversation(
    consumer_settings: ConsumerSettings, nc: NatsClient, nats_url: str, database_url: str
) -> None:
    history = await make_history(consumer_settings, nc, database_url)
    conversation = history.conversations[0]
    victim = history.of(conversation)[2].message.message_id  # stored with seq 3
    await execute(database_url, ("DELETE FROM messaging.messages WHERE message_id = $1", [victim]))
    report = await verify_continuity(nats_url, database_url)
    assert [m.message_id for m in report.missing.items] == [victim]
    assert [(o.conversation_id, o.seq, o.kind) for o in report.out_of_order.items] == [
        (conversation, 3, OrderKind.GAP)
    ]
    assert report.stored_twice.count == 0


async def test_a_message_stored_twice_is_reported_with_both_rows(
    consumer_settings: ConsumerSettings, nc: NatsClient, nats_url: str, database_url: str
) -> None:
    history = await make_history(consumer_settings, nc, database_url)
    conversation = history.conversations[2]
    original = history.of(conversation)[-1]
    copy = uuid.uuid4()
    await execute(
        database_url,
        (
            "INSERT INTO messaging.messages (message_id, conversation_id, seq, sender_id,"
            " client_msg_id, body, sent_at, stream_seq)"
            " SELECT $1, conversation_id, seq + 1, sender_id, $2, body, sent_at, stream_seq"
            " FROM messaging.messages WHERE message_id = $3",
            [copy, uuid.uuid4(), original.message.message_id],
        ),
        (
            "UPDATE messaging.conversation_heads SET last_seq = last_seq + 1"
            " WHERE conversation_id = $1",
            [conversation],
        ),
    )
    report = await verify_continuity(nats_url, database_url)
    [twice] = report.stored_twice.items
    assert set(twice.message_ids) == {original.message.message_id, copy}
    assert twice.stream_seqs == (original.stream_seq,)
    assert (report.missing.count, report.out_of_order.count, report.stored_twice.count) == (
        0,
        0,
        1,
    )


async def test_two_messages_stored_out_of_stream_order_are_reported(
    consumer_settings: ConsumerSettings, nc: NatsClient, nats_url: str, database_url: str
) -> None:
    history = await make_history(consumer_settings, nc, database_url)
    conversation = history.conversations[0]
    second, third = history.of(conversation)[1:3]  # seqs 2 and 3
    await execute(
        database_url,
        *[
            ("UPDATE messaging.messages SET seq = $2 WHERE message_id = $1", [message_id, seq])
            for message_id, seq in (
                (second.message.message_id, 1000),
                (third.message.message_id, 2),
                (second.message.message_id, 3),
            )
        ],
    )
    report = await verify_continuity(nats_url, database_url)
    [problem] = report.out_of_order.items
    assert (problem.conversation_id, problem.seq, problem.kind, problem.message_id) == (
        conversation,
        3,
        OrderKind.REVERSED,
        second.message.message_id,
    )
    assert (report.missing.count, report.stored_twice.count) == (0, 0)


async def test_resends_gone_conversations_undecodable_and_pending_messages_are_not_problems(
    consumer_settings: ConsumerSettings, nc: NatsClient, nats_url: str, database_url: str
) -> None:
    history = await make_history(consumer_settings, nc, database_url, count=6)
    conversation = history.conversations[0]
    first = history.of(conversation)[0].message
    resent = await publish_message(
        nc, conversation, history.sender, client_msg_id=first.client_msg_id, msg_id="past-window"
    )
    gone = await publish_message(nc, uuid.uuid4(), history.sender)
    garbage = await nc.jetstream().publish(message_subject(resent.partition, conversation), b"{x")
    await consume(
        consumer_settings,
        database_url,
        {**last_seqs([resent, gone]), resent.partition: int(garbage.seq)},
    )
    pending = [await publish_message(nc, conversation, history.sender) for _ in range(2)]
    report = await verify_continuity(nats_url, database_url)
    assert report.clean
    assert (report.resent, report.pending) == (1, 2)
    assert [n.message_id for n in report.conversation_gone.items] == [gone.message.message_id]
    assert [n.stream_seq for n in report.undecodable.items] == [int(garbage.seq)]
    assert report.stored == 6
    assert report.stream_last_seq == pending[-1].stream_seq


async def test_a_bounded_list_of_ids_still_counts_every_missing_message(
    consumer_settings: ConsumerSettings, nc: NatsClient, nats_url: str, database_url: str
) -> None:
    history = await make_history(consumer_settings, nc, database_url)
    for conversation in history.conversations:
        await lose_last(database_url, conversation)
    report = await verify_continuity(nats_url, database_url, limit=2)
    assert (report.missing.count, len(report.missing.items)) == (3, 2)


async def test_a_database_without_the_consumers_tables_cannot_be_verified(
    nats_url: str, database_url: str, nc: NatsClient
) -> None:
    """Pointing the check at the wrong database is an error, not a clean report."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP TABLE messaging.partition_offsets")
    finally:
        await conn.close()
    with pytest.raises(ContinuityUnavailable, match="PostgreSQL"):
        await verify_continuity(nats_url, database_url)
