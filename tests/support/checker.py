"""The checker behind every "nothing lost, nothing twice, nothing out of order" test.

Given what clients were acked and what the database holds, it lists every violation: an acked
message missing or stored twice, a conversation whose seqs are not dense from 1, a conversation
whose seq order differs from JetStream acceptance order, and a sender whose messages were stored
out of the order they were acked. A send the client had to retry (it got no ack, or an error,
and sent the same client_msg_id again) is exempt from the sender-order check, as PROTOCOL.md §4
allows ("unless one of them failed and was retried"): it must still be stored exactly once. The
checker is itself tested on hand-made histories (tests/unit/test_checker.py).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Acked:
    """A send the producer acked, in the order the sender saw the acks.

    `retried`: the client sent it more than once before its ack (exempt from sender order).
    """

    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    client_msg_id: uuid.UUID
    retried: bool = False


@dataclass(frozen=True, slots=True)
class Stored:
    """A row of messaging.messages."""

    conversation_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    client_msg_id: uuid.UUID
    stream_seq: int


def check_history(acked: Iterable[Acked], stored: Iterable[Stored]) -> list[str]:
    """Every violation found; an empty list means the history is exactly right."""
    acked = list(acked)
    stored = list(stored)
    problems: list[str] = []
    copies = Counter((s.sender_id, s.client_msg_id) for s in stored)
    for a in acked:
        count = copies.get((a.sender_id, a.client_msg_id), 0)
        if count == 0:
            problems.append(f"lost: {a.client_msg_id} from {a.sender_id}")
    for key, count in copies.items():
        if count > 1:
            problems.append(f"stored {count} times: {key[1]} from {key[0]}")
    by_conversation: dict[uuid.UUID, list[Stored]] = defaultdict(list)
    for s in stored:
        by_conversation[s.conversation_id].append(s)
    for conversation, rows in by_conversation.items():
        seqs = sorted(r.seq for r in rows)
        if seqs != list(range(1, len(rows) + 1)):
            problems.append(f"seq not dense 1..{len(rows)} in {conversation}: {seqs[:10]}...")
        in_seq_order = [r.stream_seq for r in sorted(rows, key=lambda r: r.seq)]
        if in_seq_order != sorted(in_seq_order):
            problems.append(f"seq order differs from stream order in {conversation}")
    position = {(s.sender_id, s.client_msg_id): (s.conversation_id, s.seq) for s in stored}
    last_seen: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for a in acked:
        where = position.get((a.sender_id, a.client_msg_id))
        if a.retried or where is None or where[0] != a.conversation_id:
            continue
        key = (a.sender_id, a.conversation_id)
        if key in last_seen and where[1] < last_seen[key]:
            problems.append(f"sender order broken at {a.client_msg_id} in {a.conversation_id}")
        last_seen[key] = max(where[1], last_seen.get(key, 0))
    return problems
