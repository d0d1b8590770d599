"""The consumer's continuity auditor on real NATS and PostgreSQL: it finds a message lost the
way issue #10 lost them, counts it once in `rtm_continuity_lost_total`, and the consumer runs it
by itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import httpx
import nats
import pytest
from nats.aio.client import Client as NatsClient
from prometheus_client import REGISTRY

from rtm.consumer.bootstrap import create_app
from rtm.consumer.domain.exceptions import Unavailable
from rtm.consumer.entrypoints.auditor import ContinuityAuditor
from rtm.consumer.settings import ConsumerSettings
from rtm.consumer.verify import continuity_service
from tests.integration.consumer.conftest import PARTITIONS, wait_ready
from tests.integration.consumer.continuity_support import (
    committed_offsets,
    lose_last,
    make_history,
)
from tests.support.asgi import running_consumer
from tests.support.db import opened_database
from tests.support.metrics import sample


async def committed_somewhere(database_url: str) -> dict[int, int]:
    """The committed offsets of the partitions that have committed anything (the others have
    nothing to audit)."""
    return {p: o for p, o in (await committed_offsets(database_url)).items() if o}


def lost_total() -> float:
    return REGISTRY.get_sample_value("rtm_continuity_lost_total") or 0.0


async def audited_positions(database_url: str) -> dict[int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT partition, audited_seq FROM messaging.continuity_audits")
    finally:
        await conn.close()
    return {int(r["partition"]): int(r["audited_seq"]) for r in rows}


@pytest.fixture
async def auditor(nats_url: str, database_url: str) -> AsyncIterator[ContinuityAuditor]:
    """An auditor of every partition, on its own connections."""
    client = await nats.connect(nats_url)
    try:
        async with opened_database(database_url, Unavailable) as database:
            yield ContinuityAuditor(
                continuity_service(client, database),
                lambda: list(range(PARTITIONS)),
                interval=1.0,
                max_messages=1000,
            )
    finally:
        await client.close()


async def test_the_auditor_counts_a_lost_message_once_and_logs_its_ids(
    consumer_settings: ConsumerSettings,
    nc: NatsClient,
    database_url: str,
    auditor: ContinuityAuditor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    history = await make_history(consumer_settings, nc, database_url)
    lost = await lose_last(database_url, history.conversations[0])
    before = lost_total()
    with caplog.at_level(logging.ERROR, logger="rtm.consumer.entrypoints.auditor"):
        results = await auditor.audit_once()
        again = await auditor.audit_once()
    assert [m.message_id for r in results for m in r.missing] == [lost]
    assert sum(r.checked for r in results) == 20
    assert again == []  # nothing committed since: nothing audited, nothing reported again
    assert lost_total() - before == 1
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert str(lost) in line
    assert "a secret body" not in caplog.text
    committed = await committed_somewhere(database_url)
    assert await audited_positions(database_url) == committed
    for partition, offset in committed.items():
        labels = {"partition": str(partition)}
        assert REGISTRY.get_sample_value("rtm_continuity_audited_offset", labels) == offset


async def test_the_auditor_finds_nothing_in_a_history_the_consumer_stored(
    consumer_settings: ConsumerSettings,
    nc: NatsClient,
    database_url: str,
    auditor: ContinuityAuditor,
) -> None:
    await make_history(consumer_settings, nc, database_url)
    before = lost_total()
    results = await auditor.audit_once()
    assert sum(r.checked for r in results) == 20
    assert [(r.missing, r.stored_twice, r.out_of_order) for r in results] == [
        ([], [], []) for _ in results
    ]
    assert lost_total() == before


async def test_the_consumer_audits_what_was_committed_and_counts_the_loss(
    consumer_settings: ConsumerSettings, nc: NatsClient, database_url: str
) -> None:
    history = await make_history(consumer_settings, nc, database_url)
    await lose_last(database_url, history.conversations[2])
    committed = await committed_somewhere(database_url)
    settings = consumer_settings.model_copy(update={"continuity_audit_interval_s": 0.2})
    async with running_consumer(create_app(settings)) as base, httpx.AsyncClient() as client:
        await wait_ready(base)
        before = sample(
            (await client.get(f"http://{base}/metrics")).text, "rtm_continuity_lost_total"
        )
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            text = (await client.get(f"http://{base}/metrics")).text
            lost = sample(text, "rtm_continuity_lost_total") - before
            if lost >= 1 and await audited_positions(database_url) == committed:
                break
            assert asyncio.get_running_loop().time() < deadline, f"lost {lost}, {text[-400:]}"
            await asyncio.sleep(0.1)
    assert lost == 1
