"""Seq numbering of a batch: dense, in stream order, never twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from rtm.consumer.domain.model import Pending
from rtm.consumer.domain.numbering import number_batch
from rtm.shared.contract import AcceptedMessage

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def accepted(
    conversation: uuid.UUID, sender: uuid.UUID, client: uuid.UUID | None = None
) -> AcceptedMessage:
    return AcceptedMessage(uuid.uuid4(), conversation, sender, client or uuid.uuid4(), "hi", NOW)


def test_seqs_continue_each_head_densely_in_stream_order() -> None:
    a, b, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pending = [
        Pending(12, accepted(a, user)),
        Pending(10, accepted(a, user)),
        Pending(11, accepted(b, user)),
    ]
    stored, heads, skipped = number_batch(pending, already_stored=set(), heads={a: 4, b: 0})
    assert [(m.conversation_id, m.seq) for m in stored] == [(a, 5), (b, 1), (a, 6)]
    assert stored[0].message_id == pending[1].message.message_id  # stream seq 10 first
    assert heads == {a: 6, b: 1}
    assert skipped == 0


def test_already_stored_and_repeated_sends_take_no_seq() -> None:
    conversation, user, client = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    again = uuid.uuid4()
    pending = [
        Pending(1, accepted(conversation, user, client)),
        Pending(2, accepted(conversation, user, again)),
        Pending(3, accepted(conversation, user, again)),
    ]
    stored, heads, skipped = number_batch(
        pending, already_stored={(user, client)}, heads={conversation: 7}
    )
    assert [(m.client_msg_id, m.seq) for m in stored] == [(again, 8)]
    assert heads == {conversation: 8}
    assert skipped == 2


def test_messages_of_unknown_conversations_are_skipped() -> None:
    known, unknown, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stored, heads, skipped = number_batch(
        [Pending(1, accepted(unknown, user)), Pending(2, accepted(known, user))],
        already_stored=set(),
        heads={known: 0},
    )
    assert [m.conversation_id for m in stored] == [known]
    assert heads == {known: 1}
    assert skipped == 1


def test_same_client_msg_id_from_two_senders_are_two_messages() -> None:
    conversation, client = uuid.uuid4(), uuid.uuid4()
    stored, _, _ = number_batch(
        [
            Pending(1, accepted(conversation, uuid.uuid4(), client)),
            Pending(2, accepted(conversation, uuid.uuid4(), client)),
        ],
        already_stored=set(),
        heads={conversation: 0},
    )
    assert [m.seq for m in stored] == [1, 2]
