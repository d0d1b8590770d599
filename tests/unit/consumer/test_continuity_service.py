"""The continuity service over in-memory ports: the auditor's range check and its position, and
the whole-system verification."""

from __future__ import annotations

import uuid

from rtm.consumer.domain.continuity import OrderKind, Outcome, StoredRow, StreamEntry
from rtm.consumer.services import ContinuityService, VerifyProgress
from tests.unit.consumer.continuity_fakes import (
    InMemoryAuditPositions,
    InMemoryStoredHistory,
    InMemoryStreamHistory,
    accepted,
    consumed,
)

CONV, OTHER, ALICE = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def stream(count: int) -> list[StreamEntry]:
    """`count` messages alternating between partitions 0 (CONV) and 1 (OTHER), from seq 1."""
    return [
        StreamEntry(n, n % 2, accepted(CONV if n % 2 == 0 else OTHER, ALICE))
        for n in range(1, count + 1)
    ]


def service(
    entries: list[StreamEntry], stored: InMemoryStoredHistory, chunk: int = 3
) -> tuple[ContinuityService, InMemoryAuditPositions, InMemoryStreamHistory]:
    positions = InMemoryAuditPositions()
    history = InMemoryStreamHistory(entries)
    return ContinuityService(history, stored, positions, chunk=chunk), positions, history


async def test_an_audit_checks_up_to_the_committed_offset_and_moves_on() -> None:
    entries, stored = stream(10), InMemoryStoredHistory()
    consumed(entries, stored, lose=[4])
    checker, positions, _ = service(entries, stored)
    result = await checker.audit(0, max_messages=100)
    assert result is not None
    assert (result.after_seq, result.up_to_seq) == (0, 10)
    assert [m.stream_seq for m in result.missing] == [4]
    assert result.outcomes[Outcome.STORED] == 4
    assert result.out_of_order == []
    assert positions.positions == {0: 10}
    assert await checker.audit(0, max_messages=100) is None  # nothing new: no second report


async def test_an_audit_looks_only_at_its_own_partition() -> None:
    entries, stored = stream(10), InMemoryStoredHistory()
    consumed(entries, stored, lose=[4])
    checker, _, _ = service(entries, stored)
    result = await checker.audit(1, max_messages=100)
    assert result is not None
    assert (result.missing, result.outcomes[Outcome.STORED]) == ([], 5)


async def test_a_backlog_is_audited_in_slices_without_skipping_any() -> None:
    entries, stored = stream(20), InMemoryStoredHistory()
    consumed(entries, stored, lose=[16])
    checker, positions, _ = service(entries, stored, chunk=2)
    first = await checker.audit(0, max_messages=4)
    assert first is not None
    assert (first.up_to_seq, first.missing) == (8, [])
    second = await checker.audit(0, max_messages=4)
    assert second is not None
    assert (second.after_seq, second.up_to_seq) == (8, 16)
    assert [m.stream_seq for m in second.missing] == [16]
    third = await checker.audit(0, max_messages=4)
    assert third is not None
    assert (third.up_to_seq, third.missing) == (20, [])
    assert positions.positions[0] == 20


async def test_a_range_another_instance_audited_meanwhile_is_not_reported_twice() -> None:
    entries, stored = stream(6), InMemoryStoredHistory()
    consumed(entries, stored, lose=[2])
    checker, positions, history = service(entries, stored)

    def other_instance_audits() -> None:
        positions.positions[0] = 6

    history.on_read = other_instance_audits
    assert await checker.audit(0, max_messages=100) is None
    assert positions.positions[0] == 6


async def test_an_audit_finds_rows_stored_out_of_stream_order_in_its_range() -> None:
    entries, stored = stream(8), InMemoryStoredHistory()
    consumed(entries, stored)
    a, b = (r for r in stored.rows if r.seq in (2, 3) and r.conversation_id == CONV)
    stored.rows = [r for r in stored.rows if r not in (a, b)] + [
        StoredRow(a.message_id, CONV, 3, ALICE, a.client_msg_id, a.stream_seq),
        StoredRow(b.message_id, CONV, 2, ALICE, b.client_msg_id, b.stream_seq),
    ]
    checker, _, _ = service(entries, stored, chunk=2)
    result = await checker.audit(0, max_messages=100)
    assert result is not None
    assert [(p.kind, p.seq) for p in result.out_of_order] == [(OrderKind.REVERSED, 3)]
    assert result.missing == []


async def test_an_audit_finds_a_duplicate_row_of_one_stream_message() -> None:
    entries, stored = stream(4), InMemoryStoredHistory()
    consumed(entries, stored)
    last = max((r for r in stored.rows if r.conversation_id == CONV), key=lambda r: r.seq)
    copy = StoredRow(uuid.uuid4(), CONV, last.seq + 1, ALICE, uuid.uuid4(), last.stream_seq)
    stored.rows.append(copy)
    stored.heads[CONV] = copy.seq
    checker, _, _ = service(entries, stored)
    result = await checker.audit(0, max_messages=100)
    assert result is not None
    [twice] = result.stored_twice
    assert set(twice.message_ids) == {last.message_id, copy.message_id}


async def test_verify_reports_every_kind_of_finding_and_what_is_pending() -> None:
    entries, stored = stream(12), InMemoryStoredHistory()
    consumed(entries[:10], stored, lose=[3])  # 11 and 12 not processed yet
    ghost = uuid.uuid4()
    stored.heads[ghost] = 2  # a head with no rows at all
    checker, _, _ = service(entries, stored)
    seen: list[VerifyProgress] = []
    report = await checker.verify(limit=5, progress=seen.append)
    assert [m.stream_seq for m in report.missing.items] == [3]
    assert (report.checked, report.stored, report.pending) == (12, 9, 2)
    assert [(p.conversation_id, p.kind) for p in report.out_of_order.items] == [
        (ghost, OrderKind.GAP)
    ]
    assert (report.rows_checked, report.conversations_checked) == (9, 2)
    assert (report.problems, report.clean) == (2, False)
    assert seen[-1].phase == "rows"
    assert max(p.position for p in seen if p.phase == "stream") == 12


async def test_verify_of_a_consistent_system_is_clean() -> None:
    entries, stored = stream(7), InMemoryStoredHistory()
    consumed(entries, stored)
    checker, _, _ = service(entries, stored)
    report = await checker.verify()
    assert report.clean
    assert (report.checked, report.stored, report.rows_checked) == (7, 7, 7)
