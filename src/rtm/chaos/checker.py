"""The checker behind every "nothing lost, nothing twice, nothing out of order" verdict.

It judges two histories and lists every violation it finds (an empty list: exactly right).

* **The store** (`check_history`): what clients were acked against what PostgreSQL holds. Every
  acked message is stored exactly once, in the conversation it was sent to, under the
  `message_id` its ack named; each conversation's seqs are dense from 1 and follow JetStream's
  acceptance order (`stream_seq`); each sender's messages are stored in the order it first sent
  them. A send the client had to retry (no ack, or an error, then the same client_msg_id again)
  is exempt from sender order, as docs/protocol.md, "4. Conversations" allows ("unless one of them
  failed and was retried"); it must still be stored exactly once.
* **The receivers** (`check_receivers`): what every receiving connection was sent. On each
  connection each conversation's `message` events continue exactly from the cursor that
  connection resumed from: cursor + 1, cursor + 2, … with no gap and no repeat, resumed and live
  alike (docs/protocol.md, "6. Consumer"); every (conversation, seq) delivered is the stored
  message; nobody is sent a conversation they are not a member of; and each receiver ends with every
  stored message of its conversations.

Inputs are plain records and nothing here does I/O, so the checker is itself tested on
hand-made bad histories (tests/unit/test_checker.py).
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """What went wrong; the report counts violations by kind."""

    LOST = "lost"  # acked, never stored
    DUPLICATED = "duplicated"  # one (sender, client_msg_id) stored more than once
    WRONG_CONVERSATION = "wrong conversation"  # stored elsewhere than it was sent
    WRONG_MESSAGE_ID = "wrong message_id"  # the ack named another message_id than stored
    SEQ_NOT_DENSE = "seq not dense"  # a conversation's seqs are not 1..N
    STREAM_ORDER = "stream order"  # seq order differs from JetStream order
    SENDER_ORDER = "sender order"  # a sender's (unretried) messages stored out of its order
    RECEIVER_GAP = "receiver gap"  # a connection skipped seqs
    RECEIVER_REPEAT = "receiver repeat"  # a connection was sent a seq again (or an older one)
    RECEIVER_MISSING = "receiver missing"  # a receiver ended without some stored messages
    RECEIVER_WRONG_MESSAGE = "receiver wrong message"  # delivered (conversation, seq) not stored
    RECEIVER_FOREIGN = "receiver foreign"  # sent a conversation it is not a member of
    NOT_RECOVERED = "not recovered"  # `resumed` said recovered: false
    # Seen by the clients themselves, not by `check_*`:
    DUPLICATE_ACK = "first send acked as duplicate"  # nothing was sent before it
    MALFORMED_FRAME = "malformed frame"  # not a JSON object with its fields: the client reconnects
    UNACKED = "never acked"  # still unacked when the run stopped waiting: the system is stuck


@dataclass(frozen=True, slots=True)
class Violation:
    """`subject`: the client_msg_id concerned, when there is one (a lost message's)."""

    kind: Kind
    detail: str
    subject: uuid.UUID | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Acked:
    """A send the producer acked. Pass them in the order each sender first *sent* them.

    `retried`: the client sent it more than once before its ack (exempt from sender order).
    `message_id`: the ack's, checked against the stored row (None: not checked).
    """

    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    client_msg_id: uuid.UUID
    retried: bool = False
    message_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """A row of messaging.messages."""

    conversation_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    client_msg_id: uuid.UUID
    stream_seq: int
    message_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class ConnectionLog:
    """What one receiving connection was sent.

    `cursors`: the `resume` it sent first (conversation → last seq seen before; absent: 0).
    `seqs`: per conversation, the seqs of its `message` events in arrival order.
    `not_recovered`: conversations its `resumed` reported `recovered: false`.
    `opened_at`: when it opened (run time, for the report; None: unknown).
    """

    number: int
    cursors: Mapping[uuid.UUID, int]
    seqs: Mapping[uuid.UUID, Sequence[int]]
    not_recovered: Sequence[uuid.UUID] = ()
    opened_at: float | None = None


@dataclass(frozen=True, slots=True)
class ReceiverLog:
    """One receiving client (a user on one consumer instance) across its connections."""

    name: str
    conversations: Sequence[uuid.UUID]  # it is a member: it must end with all their messages
    connections: Sequence[ConnectionLog] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Sighting:
    """A `message` event's identity: some receiver was sent `message_id` as (conversation, seq).

    Pass each distinct triple once; the checker compares it with the stored row.
    """

    conversation_id: uuid.UUID
    seq: int
    message_id: uuid.UUID


def check_history(acked: Iterable[Acked], stored: Iterable[Stored]) -> list[Violation]:
    """Every violation of the store's history; an empty list means it is exactly right."""
    acked, stored = list(acked), list(stored)
    found: list[Violation] = []
    copies: dict[tuple[uuid.UUID, uuid.UUID], list[Stored]] = defaultdict(list)
    for s in stored:
        copies[(s.sender_id, s.client_msg_id)].append(s)
    for a in acked:
        rows = copies.get((a.sender_id, a.client_msg_id))
        if not rows:
            detail = f"{a.client_msg_id} from {a.sender_id} to {a.conversation_id}"
            found.append(Violation(Kind.LOST, detail, a.client_msg_id))
            continue
        row = rows[0]
        if row.conversation_id != a.conversation_id:
            found.append(
                Violation(
                    Kind.WRONG_CONVERSATION,
                    f"{a.client_msg_id} sent to {a.conversation_id}, stored in "
                    f"{row.conversation_id}",
                )
            )
        if None not in (a.message_id, row.message_id) and row.message_id != a.message_id:
            found.append(
                Violation(
                    Kind.WRONG_MESSAGE_ID,
                    f"{a.client_msg_id} acked as {a.message_id}, stored as {row.message_id}",
                )
            )
    for (sender, client_msg_id), rows in copies.items():
        if len(rows) > 1:
            where = ", ".join(f"seq {r.seq} of {r.conversation_id}" for r in rows)
            found.append(
                Violation(
                    Kind.DUPLICATED,
                    f"{client_msg_id} from {sender} stored {len(rows)} times ({where})",
                )
            )
    found += _conversation_order(stored)
    found += _sender_order(acked, stored)
    return found


def _conversation_order(stored: list[Stored]) -> list[Violation]:
    found: list[Violation] = []
    by_conversation: dict[uuid.UUID, list[Stored]] = defaultdict(list)
    for s in stored:
        by_conversation[s.conversation_id].append(s)
    for conversation, rows in by_conversation.items():
        rows.sort(key=lambda r: r.seq)
        seqs = [r.seq for r in rows]
        if seqs != list(range(1, len(rows) + 1)):
            missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
            found.append(
                Violation(
                    Kind.SEQ_NOT_DENSE,
                    f"{conversation}: {len(rows)} rows, seqs up to {max(seqs)}, "
                    f"missing {missing[:10]}{'…' if len(missing) > 10 else ''}",
                )
            )
        for before, after in itertools.pairwise(rows):
            if after.stream_seq < before.stream_seq:
                found.append(
                    Violation(
                        Kind.STREAM_ORDER,
                        f"{conversation}: seq {after.seq} has stream_seq {after.stream_seq}, "
                        f"before it seq {before.seq} has {before.stream_seq}",
                    )
                )
    return found


def _sender_order(acked: list[Acked], stored: list[Stored]) -> list[Violation]:
    found: list[Violation] = []
    position = {(s.sender_id, s.client_msg_id): (s.conversation_id, s.seq) for s in stored}
    last_seen: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for a in acked:
        where = position.get((a.sender_id, a.client_msg_id))
        if a.retried or where is None or where[0] != a.conversation_id:
            continue
        key = (a.sender_id, a.conversation_id)
        if key in last_seen and where[1] < last_seen[key]:
            found.append(
                Violation(
                    Kind.SENDER_ORDER,
                    f"{a.client_msg_id} from {a.sender_id} stored at seq {where[1]} of "
                    f"{a.conversation_id}, after the sender's later message at seq "
                    f"{last_seen[key]}",
                )
            )
        last_seen[key] = max(where[1], last_seen.get(key, 0))
    return found


def check_receivers(
    receivers: Iterable[ReceiverLog],
    stored: Iterable[Stored],
    sightings: Iterable[Sighting] = (),
) -> list[Violation]:
    """Every violation of what receivers were sent, judged against the stored rows."""
    stored = list(stored)
    heads: dict[uuid.UUID, int] = defaultdict(int)
    at: dict[tuple[uuid.UUID, int], Stored] = {}
    for s in stored:
        heads[s.conversation_id] = max(heads[s.conversation_id], s.seq)
        at[(s.conversation_id, s.seq)] = s
    found: list[Violation] = []
    for receiver in receivers:
        found += _receiver_streams(receiver, heads)
    for seen in sightings:
        row = at.get((seen.conversation_id, seen.seq))
        if row is None or (row.message_id is not None and row.message_id != seen.message_id):
            what = "nothing" if row is None else f"{row.message_id}"
            found.append(
                Violation(
                    Kind.RECEIVER_WRONG_MESSAGE,
                    f"{seen.message_id} delivered as seq {seen.seq} of {seen.conversation_id}, "
                    f"where {what} is stored",
                )
            )
    return found


def _receiver_streams(receiver: ReceiverLog, heads: Mapping[uuid.UUID, int]) -> list[Violation]:
    found: list[Violation] = []
    members = set(receiver.conversations)
    seen: dict[uuid.UUID, set[int]] = defaultdict(set)
    for connection in receiver.connections:
        where = f"{receiver.name} connection {connection.number}"
        if connection.opened_at is not None:
            where += f" (opened at {connection.opened_at:.1f}s)"
        for conversation in connection.not_recovered:
            found.append(Violation(Kind.NOT_RECOVERED, f"{where}: resume of {conversation}"))
        for conversation, seqs in connection.seqs.items():
            if conversation not in members and seqs:
                found.append(
                    Violation(
                        Kind.RECEIVER_FOREIGN,
                        f"{where}: sent {len(seqs)} messages of {conversation}, not a member",
                    )
                )
                continue
            expected = connection.cursors.get(conversation, 0) + 1
            for seq in seqs:
                if seq > expected:
                    found.append(
                        Violation(
                            Kind.RECEIVER_GAP,
                            f"{where}: {conversation} went from seq {expected - 1} to {seq}",
                        )
                    )
                    expected = seq + 1
                elif seq < expected:
                    found.append(
                        Violation(
                            Kind.RECEIVER_REPEAT,
                            f"{where}: {conversation} sent seq {seq} after {expected - 1}",
                        )
                    )
                else:
                    expected += 1
            seen[conversation].update(seqs)
    for conversation in receiver.conversations:
        missing = set(range(1, heads.get(conversation, 0) + 1)) - seen[conversation]
        if missing:
            first = sorted(missing)[:10]
            found.append(
                Violation(
                    Kind.RECEIVER_MISSING,
                    f"{receiver.name} ended without {len(missing)} of the "
                    f"{heads.get(conversation, 0)} messages of {conversation}: seqs {first}"
                    f"{'…' if len(missing) > 10 else ''}",
                )
            )
    return found
