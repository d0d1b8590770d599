"""Numbering a batch: which pending messages to store, and with which `seq`.

This is the heart of "never stored twice, never out of order": given the messages of one batch in
JetStream order, what is already stored, and each conversation's current head, it returns the
messages to insert with dense seqs continuing each head, in the same order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from rtm.consumer.domain.model import Pending, StoredMessage

SenderKey = tuple[uuid.UUID, uuid.UUID]


def number_batch(
    pending: Iterable[Pending],
    *,
    already_stored: set[SenderKey],
    heads: Mapping[uuid.UUID, int],
) -> tuple[list[StoredMessage], dict[uuid.UUID, int], int]:
    """Assign seqs in stream order.

    Args:
        pending: the batch, in JetStream order.
        already_stored: `(sender_id, client_msg_id)` pairs present in the database.
        heads: last seq per conversation; a conversation missing here does not exist
            (its messages are skipped, not stored).

    Returns:
        The messages to store, the new head of every conversation that grew, and how many
        pending messages were skipped (duplicates or unknown conversations).
    """
    seen = set(already_stored)
    new_heads: dict[uuid.UUID, int] = {}
    stored: list[StoredMessage] = []
    skipped = 0
    for item in sorted(pending, key=lambda p: p.stream_seq):
        message = item.message
        key = (message.sender_id, message.client_msg_id)
        head = new_heads.get(message.conversation_id, heads.get(message.conversation_id))
        if key in seen or head is None:
            skipped += 1
            continue
        seen.add(key)
        seq = head + 1
        new_heads[message.conversation_id] = seq
        stored.append(
            StoredMessage(
                message_id=message.message_id,
                conversation_id=message.conversation_id,
                seq=seq,
                sender_id=message.sender_id,
                client_msg_id=message.client_msg_id,
                body=message.body,
                sent_at=message.accepted_at,
            )
        )
    return stored, new_heads, skipped
