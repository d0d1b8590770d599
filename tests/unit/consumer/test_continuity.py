"""The continuity comparison on hand-made histories: what is lost, what is legitimately not
stored, what is stored twice or out of order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from rtm.consumer.domain.continuity import (
    ConversationScan,
    Evidence,
    OrderKind,
    Outcome,
    StoredRow,
    StoredTwice,
    StreamEntry,
    check_entries,
    check_order,
    distinct_stored_twice,
    is_due,
    rows_sharing_stream_seq,
    stream_entry,
)
from rtm.consumer.domain.continuity_report import ContinuityTally
from rtm.shared.contract import AcceptedMessage, message_subject

PARTITION = 2
CONV, ALICE, BOB = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def accepted(
    *,
    conversation: uuid.UUID = CONV,
    sender: uuid.UUID = ALICE,
    client: uuid.UUID | None = None,
    message_id: uuid.UUID | None = None,
) -> AcceptedMessage:
    return AcceptedMessage(
        message_id or uuid.uuid4(),
        conversation,
        sender,
        client or uuid.uuid4(),
        "a body",
        datetime(2025, 1, 1, tzinfo=UTC),
    )


def entry(stream_seq: int, message: AcceptedMessage | None = None) -> StreamEntry:
    return StreamEntry(stream_seq, PARTITION, message or accepted())


def stored(item: StreamEntry, seq: int) -> StoredRow:
    """The row the consumer writes for `item`."""
    message = item.message
    assert message is not None
    return StoredRow(
        message.message_id,
        message.conversation_id,
        seq,
        message.sender_id,
        message.client_msg_id,
        item.stream_seq,
    )


def history(count: int, first_stream_seq: int = 10) -> tuple[list[StreamEntry], list[StoredRow]]:
    """`count` messages of one conversation, all stored in stream order with seqs 1..count."""
    entries = [entry(first_stream_seq + n) for n in range(count)]
    return entries, [stored(e, n + 1) for n, e in enumerate(entries)]


def test_a_fully_stored_history_is_all_stored_and_reports_nothing() -> None:
    entries, rows = history(4)
    found = check_entries(entries, {PARTITION: 13}, Evidence(rows, frozenset({CONV})))
    assert found.outcomes[Outcome.STORED] == 4
    assert (found.missing, found.not_stored, found.stored_twice) == ([], [], [])
    assert found.stored == rows


def test_a_processed_message_stored_under_neither_id_nor_key_is_missing_with_its_ids() -> None:
    entries, rows = history(4)
    lost = entries[2]
    kept = [r for r in rows if r.stream_seq != lost.stream_seq]
    found = check_entries(entries, {PARTITION: 13}, Evidence(kept, frozenset({CONV})))
    assert found.outcomes[Outcome.MISSING] == 1
    [missing] = found.missing
    assert lost.message is not None
    assert (missing.stream_seq, missing.partition, missing.committed_offset) == (12, PARTITION, 13)
    assert (missing.message_id, missing.sender_id, missing.client_msg_id) == (
        lost.message.message_id,
        lost.message.sender_id,
        lost.message.client_msg_id,
    )
    assert missing.conversation_id == CONV


def test_a_message_above_its_partitions_committed_offset_is_pending_not_missing() -> None:
    entries, rows = history(4)
    found = check_entries(entries, {PARTITION: 11}, Evidence(rows[:2], frozenset({CONV})))
    assert found.outcomes[Outcome.PENDING] == 2
    assert found.missing == []


def test_a_partition_that_committed_nothing_has_only_pending_messages() -> None:
    entries, _ = history(3)
    assert not any(is_due(e, {PARTITION + 1: 100}) for e in entries)
    found = check_entries(entries, {}, Evidence())
    assert found.outcomes[Outcome.PENDING] == 3


def test_a_resend_the_stream_accepted_past_its_duplicate_window_is_accounted_for() -> None:
    """Same sender and client_msg_id, a new message_id; the first copy is the stored one."""
    entries, rows = history(2)
    first = entries[0].message
    assert first is not None
    resend = entry(20, accepted(client=first.client_msg_id))
    found = check_entries([*entries, resend], {PARTITION: 20}, Evidence(rows, frozenset({CONV})))
    assert found.outcomes[Outcome.RESENT] == 1
    assert found.missing == []
    assert found.stored_twice == []


def test_a_message_the_stream_holds_twice_is_accounted_for_by_its_stored_copy() -> None:
    entries, rows = history(2)
    again = StreamEntry(30, PARTITION, entries[1].message)
    found = check_entries([*entries, again], {PARTITION: 30}, Evidence(rows, frozenset({CONV})))
    assert (found.outcomes[Outcome.STORED], found.outcomes[Outcome.RESENT]) == (2, 1)
    assert found.missing == []


def test_a_message_whose_conversation_is_gone_is_listed_apart_not_as_missing() -> None:
    gone = uuid.uuid4()
    item = entry(5, accepted(conversation=gone))
    found = check_entries([item], {PARTITION: 5}, Evidence((), frozenset({CONV})))
    assert found.missing == []
    [apart] = found.not_stored
    assert (apart.outcome, apart.stream_seq, apart.conversation_id) == (
        Outcome.CONVERSATION_GONE,
        5,
        gone,
    )


def test_an_undecodable_payload_or_subject_is_listed_apart_whatever_the_offset() -> None:
    good = accepted().encode()
    entries = [
        stream_entry(7, message_subject(PARTITION, CONV), b"{not json"),
        stream_entry(8, "rtm.msg.x.y", good),
        stream_entry(9, message_subject(PARTITION, CONV), b'{"message_id": 5}'),
    ]
    found = check_entries(entries, {PARTITION: 100}, Evidence())
    assert found.outcomes[Outcome.UNDECODABLE] == 3
    assert [n.stream_seq for n in found.not_stored] == [7, 8, 9]
    assert found.missing == []


def test_the_partition_comes_from_the_subject() -> None:
    message = accepted()
    parsed = stream_entry(3, message_subject(5, message.conversation_id), message.encode())
    assert (parsed.partition, parsed.message) == (5, message)
    assert stream_entry(3, "rtm.msg.5.a.b", message.encode()).partition is None
    assert stream_entry(3, "other.5.a", message.encode()).partition is None


def test_one_stream_message_behind_two_rows_is_stored_twice() -> None:
    entries, _ = history(1)
    message = entries[0].message
    assert message is not None
    # one row under its message_id, another (wrongly) under its sender key
    own = StoredRow(message.message_id, CONV, 1, BOB, uuid.uuid4(), entries[0].stream_seq)
    other = StoredRow(uuid.uuid4(), CONV, 2, ALICE, message.client_msg_id, 99)
    found = check_entries(entries, {PARTITION: 10}, Evidence([own, other], frozenset({CONV})))
    [twice] = found.stored_twice
    assert set(twice.message_ids) == {own.message_id, other.message_id}
    assert twice.stream_seqs == (entries[0].stream_seq,)


def test_rows_naming_one_stream_seq_are_stored_twice() -> None:
    _, rows = history(3)
    copy = StoredRow(uuid.uuid4(), CONV, 4, ALICE, uuid.uuid4(), rows[1].stream_seq)
    [twice] = rows_sharing_stream_seq([*rows, copy])
    assert twice.stream_seqs == (rows[1].stream_seq,)
    assert set(twice.message_ids) == {rows[1].message_id, copy.message_id}
    assert rows_sharing_stream_seq(rows) == []


def test_a_pair_of_rows_found_by_both_rules_is_reported_once() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    seen: set[frozenset[uuid.UUID]] = set()
    first = distinct_stored_twice([StoredTwice((a, b), (1,), "x")], seen)
    again = distinct_stored_twice(
        [StoredTwice((b, a), (1,), "y"), StoredTwice((a, uuid.uuid4()), (2,), "z")], seen
    )
    assert len(first) == 1
    assert [t.reason for t in again] == ["z"]


def test_dense_rows_in_stream_order_up_to_the_head_are_in_order() -> None:
    _, rows = history(5)
    assert check_order(rows, head=5) == []


def test_a_higher_seq_holding_an_earlier_stream_message_is_out_of_order() -> None:
    _, rows = history(4)
    swapped = [
        rows[0],
        StoredRow(rows[1].message_id, CONV, 3, ALICE, rows[1].client_msg_id, rows[1].stream_seq),
        StoredRow(rows[2].message_id, CONV, 2, ALICE, rows[2].client_msg_id, rows[2].stream_seq),
        rows[3],
    ]
    [problem] = check_order(swapped, head=4)
    assert (problem.kind, problem.seq, problem.message_id) == (
        OrderKind.REVERSED,
        3,
        rows[1].message_id,
    )


def test_a_seq_without_a_row_is_a_gap() -> None:
    _, rows = history(5)
    [problem] = check_order([r for r in rows if r.seq != 3], head=5)
    assert (problem.kind, problem.seq) == (OrderKind.GAP, 3)


def test_a_whole_conversation_must_reach_its_head() -> None:
    _, rows = history(3)
    [problem] = check_order(rows, head=5)
    assert (problem.kind, problem.seq) == (OrderKind.GAP, 4)
    assert check_order(rows, head=5, complete=False) == []


def test_rows_above_the_head_or_without_a_head_disagree_with_it() -> None:
    _, rows = history(3)
    assert [p.kind for p in check_order(rows, head=2, complete=False)] == [OrderKind.HEAD]
    assert [p.kind for p in check_order(rows, head=None)] == [OrderKind.HEAD]


def test_a_window_of_a_conversation_starts_at_its_first_seq() -> None:
    _, rows = history(6)
    assert check_order(rows[3:], head=6, first_seq=4, complete=False) == []
    [problem] = check_order(rows[4:], head=6, first_seq=4, complete=False)
    assert (problem.kind, problem.seq) == (OrderKind.GAP, 4)


def test_a_scan_checks_each_conversation_and_counts_rows() -> None:
    other = uuid.uuid4()
    _, rows = history(3)
    others = [StoredRow(uuid.uuid4(), other, n, BOB, uuid.uuid4(), 50 + n) for n in (1, 3)]
    scan = ConversationScan()
    problems = [p for row in rows for p in scan.add(row, 3)]
    problems += [p for row in others for p in scan.add(row, 3)]
    problems += scan.finish()
    assert [(p.conversation_id, p.kind, p.seq) for p in problems] == [(other, OrderKind.GAP, 2)]
    assert (scan.rows, scan.conversations) == (5, 2)


def test_a_tally_keeps_a_bounded_sample_and_the_full_count() -> None:
    entries, _ = history(5)
    tally = ContinuityTally(limit=2)
    tally.add_entries(check_entries(entries, {PARTITION: 100}, Evidence((), frozenset({CONV}))))
    report = tally.report(
        stream_first_seq=10,
        stream_last_seq=14,
        committed={PARTITION: 100},
        rows_checked=0,
        conversations_checked=0,
    )
    assert report.missing.count == 5
    assert [m.stream_seq for m in report.missing.items] == [10, 11]
    assert (report.checked, report.problems, report.clean) == (5, 5, False)
