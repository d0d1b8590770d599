"""The consumer while PostgreSQL is frozen, killed or refusing connections (issue #10).

A probe found `GET /v1/conversations` answered 500 `internal` while the database refused
connections; a frozen database made reads hang for as long as asyncpg's 30 s timeout and the
pool's release after it, and a killed postmaster let asyncpg's `InternalClientError` out. The
contract (docs/protocol.md §7 and the consumer's extensions): every HTTP answer is a success or
503 `unavailable` with `retry_after_ms` and `Retry-After`, every `resume` is answered `resumed`
or with an `unavailable` error frame, each within a bound (no hang), no socket is dropped, and
nothing is logged as a bug. Once PostgreSQL is back, everything works again: each socket has
been sent each conversation's messages exactly once and in order, those published during the
outage included, and the live events flow.

PostgreSQL is this module's own server (`tests.support.pg_outages`): its tests freeze and kill
it. nats-server is each test's own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client as NatsClient

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from rtm.local.postgres import EmbeddedPostgres
from rtm.shared.contract import READ_EVENTS, TYPING_EVENTS, ReadEvent, TypingEvent
from rtm.shared.jetstream import ensure_stream
from tests.integration.consumer.conftest import PARTITIONS, publish, wait_ready
from tests.integration.consumer.outage_clients import (
    Answer,
    Clock,
    Receiver,
    User,
    assert_every_message_once_in_order,
    assert_only_successes_and_unavailable,
    keep_reading_http,
    new_user,
    open_receiver,
    until_every_message_arrived,
)
from tests.support.asgi import running_consumer
from tests.support.db import create_conversation
from tests.support.pg_outages import (
    POSTGRES_OUTAGES,
    assert_nothing_logged_as_a_bug,
    postgres_outage,
    private_postgres,
)
from tests.support.servers import migrated_database
from tests.support.tokens import TokenFactory

pytestmark = pytest.mark.slow

USERS = 4
CONVERSATIONS = 3
BEFORE = 5  # messages per conversation stored before the outage
DURING = 2  # messages per conversation published while it lasts
OUTAGE_S = 12.0  # longer than the "no hang" bound, so that a hang shows
SETTLE_S = 60.0  # a bound for waits that must end (never asserted as a latency)


@pytest.fixture(scope="module")
def own_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server for this module alone: its tests freeze and kill it."""
    with private_postgres(tmp_path_factory.mktemp("pg-consumer-outages")) as server:
        yield server


@pytest.fixture
def outage_db(own_pg: EmbeddedPostgres) -> Iterator[str]:
    with migrated_database(own_pg, "co_") as url:
        yield url


async def published(nc: NatsClient, conversations: list[uuid.UUID], sender: User, n: int) -> None:
    for conversation in conversations:
        for i in range(n):
            await publish(nc, conversation, sender.id, f"message {i}")


async def live_events(nc: NatsClient, conversations: list[uuid.UUID], user: User) -> None:
    """What the producer publishes for `typing` and `read` (the consumer asks PostgreSQL for
    the members, and stores read markers)."""
    now = datetime.now(UTC)
    for conversation in conversations:
        await nc.publish(TYPING_EVENTS, TypingEvent(conversation, user.id, now).encode())
        await nc.publish(READ_EVENTS, ReadEvent(conversation, user.id, 1, now).encode())


@pytest.mark.parametrize("outage", POSTGRES_OUTAGES)
async def test_postgresql_outage_answers_only_successes_or_unavailable_and_recovers(
    outage: str,
    own_pg: EmbeddedPostgres,
    outage_db: str,
    nats_url: str,
    auth_url: str,
    tokens: TokenFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """HTTP readers and resuming sockets of several users while PostgreSQL is frozen (three
    ways) or its postmaster killed and restarted: every answer is a success or `unavailable`
    within the bound, no socket drops, nothing is logged as a bug; afterwards every socket has
    every message once and in order and live events flow again."""
    caplog.set_level(logging.WARNING)
    settings = ConsumerSettings(
        database_url=outage_db,
        nats_url=nats_url,
        auth_url=auth_url,
        partitions=PARTITIONS,
        lease_ttl_s=2.0,
        instance_id="outage",
        migrate_on_start=False,
        fetch_timeout_s=0.2,
    )
    users = [new_user(tokens) for _ in range(USERS)]
    conversations = [
        await create_conversation(outage_db, [u.id for u in users]) for _ in range(CONVERSATIONS)
    ]
    total = {str(c): BEFORE + DURING for c in conversations}
    clock = Clock()
    http: list[Answer] = []
    nc = await nats.connect(nats_url)
    async with running_consumer(create_app(settings)) as base, AsyncExitStack() as stack:
        stack.push_async_callback(nc.close)
        await ensure_stream(nc.jetstream())
        await wait_ready(base)
        receivers: list[Receiver] = []
        for user in users:
            receiver, reader = await open_receiver(base, user, clock)
            stack.push_async_callback(receiver.ws.close)
            stack.callback(reader.cancel)
            receivers.append(receiver)
            assert (await receiver.resume(dict.fromkeys(total, 0))).success  # live from here
        await published(nc, conversations, users[0], BEFORE)
        before = {str(c): BEFORE for c in conversations}
        await until_every_message_arrived(receivers, before, SETTLE_S)
        assert_every_message_once_in_order(receivers, before)

        stop = asyncio.Event()
        traffic = [
            asyncio.create_task(keep_reading_http(base, u, conversations, stop, clock, http))
            for u in users
        ] + [asyncio.create_task(r.keep_resuming(conversations, stop)) for r in receivers]
        newcomers: list[Receiver] = []
        try:
            await asyncio.sleep(0.5)
            async with postgres_outage(own_pg, outage)():
                clock.during.set()
                await published(nc, conversations, users[1], DURING)
                await live_events(nc, conversations, users[2])
                for user in users:  # clients reconnecting during the outage
                    receiver, reader = await open_receiver(base, user, clock)
                    stack.push_async_callback(receiver.ws.close)
                    stack.callback(reader.cancel)
                    newcomers.append(receiver)
                    await receiver.resume(dict.fromkeys(total, 0))
                await asyncio.sleep(max(0.0, OUTAGE_S - 2))
                clock.during.clear()
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await asyncio.gather(*traffic)

        everyone = receivers + newcomers
        answers = http + [a for r in everyone for a in r.answers]
        assert_only_successes_and_unavailable(answers)
        # A frozen postmaster alone leaves pooled connections working; frozen backends alone
        # leave the postmaster forking new ones, and whether a client request meets one of the
        # frozen pooled connections first depends on timing (on a busy machine, runs where every
        # request got a fresh connection and answered 200 were seen). Those two must only never
        # hang or fail; the others cannot be served at all, so a client must have felt them.
        if outage not in ("frozen-server", "frozen-children"):
            assert any(a.unavailable and a.during for a in answers), "the outage was not felt"

        await until_every_message_arrived(everyone, total, SETTLE_S)
        assert_every_message_once_in_order(everyone, total)
        for receiver in everyone:
            answer = await receiver.resume(dict.fromkeys(total, 0))
            assert answer.success, answer
        typed = [r.typing for r in everyone]
        await live_events(nc, conversations, users[3])
        deadline = asyncio.get_running_loop().time() + SETTLE_S
        while any(
            r.typing == n for r, n in zip(everyone, typed, strict=True) if r.user != users[3]
        ):
            assert asyncio.get_running_loop().time() < deadline, "no typing after the outage"
            await asyncio.sleep(0.1)
        assert_every_message_once_in_order(everyone, total)
    assert_nothing_logged_as_a_bug(caplog.records)
