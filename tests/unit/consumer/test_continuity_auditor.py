"""The consumer's continuity auditor: counts and logs each lost message once, keeps going when
a dependency is down, and audits only the partitions it is told it owns."""

from __future__ import annotations

import logging
import uuid

import pytest
from prometheus_client import REGISTRY

from rtm.consumer.domain.continuity import StreamEntry
from rtm.consumer.entrypoints.auditor import ContinuityAuditor
from rtm.consumer.services import ContinuityService
from tests.unit.consumer.continuity_fakes import (
    InMemoryAuditPositions,
    InMemoryStoredHistory,
    InMemoryStreamHistory,
    accepted,
    consumed,
)

CONV, ALICE = uuid.uuid4(), uuid.uuid4()
SECRET_BODY = "the body must never be logged"


def lost_total() -> float:
    return REGISTRY.get_sample_value("rtm_continuity_lost_total") or 0.0


def audited_offset(partition: int) -> float | None:
    return REGISTRY.get_sample_value("rtm_continuity_audited_offset", {"partition": str(partition)})


def setup(
    lose: list[int], owned: list[int]
) -> tuple[ContinuityAuditor, list[StreamEntry], InMemoryStoredHistory]:
    entries = [StreamEntry(n, 0, accepted(CONV, ALICE, SECRET_BODY)) for n in range(1, 9)]
    stored = InMemoryStoredHistory()
    consumed(entries, stored, lose=lose)
    service = ContinuityService(InMemoryStreamHistory(entries), stored, InMemoryAuditPositions())
    return ContinuityAuditor(service, lambda: owned, interval=1, max_messages=100), entries, stored


async def test_a_lost_message_is_counted_and_logged_once_with_its_ids_not_its_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    auditor, entries, _ = setup(lose=[5], owned=[0])
    before = lost_total()
    with caplog.at_level(logging.INFO, logger="rtm.consumer.entrypoints.auditor"):
        await auditor.audit_once()
        await auditor.audit_once()
    assert lost_total() - before == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    lost = entries[4].message
    assert lost is not None
    line = errors[0].getMessage()
    assert str(lost.message_id) in line
    assert str(lost.client_msg_id) in line
    assert all(SECRET_BODY not in r.getMessage() for r in caplog.records)
    assert audited_offset(0) == 8


async def test_an_unavailable_dependency_skips_the_round_and_the_next_one_catches_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    auditor, _, stored = setup(lose=[2], owned=[0])
    before = lost_total()
    stored.down = True
    with caplog.at_level(logging.WARNING, logger="rtm.consumer.entrypoints.auditor"):
        assert await auditor.audit_once() == []
    assert "could not run" in caplog.text
    stored.down = False
    [result] = await auditor.audit_once()
    assert [m.stream_seq for m in result.missing] == [2]
    assert lost_total() - before == 1


async def test_partitions_not_owned_are_not_audited() -> None:
    auditor, _, _ = setup(lose=[3], owned=[1])
    before = lost_total()
    assert await auditor.audit_once() == []
    assert lost_total() == before
