"""The producer while PostgreSQL or NATS is frozen or killed under concurrent sends (issue #10).

A chaos run saw sends answered `internal` during PostgreSQL outages (a `TimeoutError`, and
asyncpg's `InternalClientError: cannot switch to state 11; another operation (2) is in
progress`). The contract (docs/protocol.md §7, docs/architecture.md "The message path"): every
answer is an `ack` (while PostgreSQL is down, a conversation the producer already knows is still
served from its membership cache) or `unavailable` with `retry_after_ms`; HTTP answers 503,
never 500; no socket is dropped; nothing is logged as a bug. Once the dependency is back, sends
succeed again, and resending what was not acked (same `client_msg_id`) leaves exactly one copy
of each send in the stream, the one its acks name.

PostgreSQL is this module's own server, because its tests freeze and kill it: frozen in the
three ways of `tests.support.processes.Freeze` (postmaster only, backends only, everything) and
killed with SIGKILL (connections reset, then refused until it is started again). nats-server is
each test's own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from rtm.local.nats import EmbeddedNats
from rtm.local.postgres import EmbeddedPostgres
from rtm.producer.bootstrap import create_app
from tests.integration.producer.conftest import NewUser, settings_for, wait_ready
from tests.integration.producer.outage_load import (
    Outage,
    Run,
    assert_each_acked_send_stored_once,
    assert_only_acks_and_unavailable,
    felt,
    make_world,
    sends_through,
)
from tests.support.asgi import running_producer
from tests.support.pg_outages import (
    assert_nothing_logged_as_a_bug,
    freezing,
    killing_postgres,
    postmaster_pid,
    private_postgres,
    restart,
)
from tests.support.processes import Freeze
from tests.support.servers import migrated_database

pytestmark = pytest.mark.slow


# -- this module's PostgreSQL ------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server for this module alone: its tests freeze and kill it."""
    with private_postgres(tmp_path_factory.mktemp("pg-outages")) as server:
        yield server


@pytest.fixture
def outage_db(own_pg: EmbeddedPostgres) -> Iterator[str]:
    """A fresh, migrated database on `own_pg`."""
    with migrated_database(own_pg, "to_") as url:
        yield url


# -- outages (PostgreSQL's: tests.support.pg_outages) ------------------------------------------


def killing_nats(server: EmbeddedNats) -> Outage:
    """SIGKILL nats-server (connections reset, then refused); start it again after."""

    @asynccontextmanager
    async def outage() -> AsyncIterator[None]:
        server.kill()
        yield
        await restart(server, server.healthy)

    return outage


def nats_pid(server: EmbeddedNats) -> Callable[[], int]:
    def pid() -> int:
        assert server.proc is not None
        return server.proc.pid

    return pid


# -- tests -----------------------------------------------------------------------------------


async def outage_run(
    settings_db: str, nats_url: str, auth_url: str, new_user: NewUser, outage: Outage
) -> Run:
    settings = settings_for(settings_db, nats_url, auth_url)
    async with running_producer(create_app(settings)) as base, AsyncExitStack() as stack:
        await wait_ready(base)
        world = await make_world(base, settings_db, new_user)
        return await sends_through(base, world, outage, stack)


async def assert_outage_survived(run: Run, nats_url: str, records: list[logging.LogRecord]) -> None:
    assert_only_acks_and_unavailable(run)
    await assert_each_acked_send_stored_once(run, nats_url)
    assert_nothing_logged_as_a_bug(records)


@pytest.mark.parametrize("how", list(Freeze), ids=[how.value for how in Freeze])
async def test_frozen_postgresql_answers_every_send_ack_or_unavailable_and_resends_once(
    how: Freeze,
    own_pg: EmbeddedPostgres,
    outage_db: str,
    nats_url: str,
    auth_url: str,
    new_user: NewUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL frozen (SIGSTOP) under sends from many sockets to many conversations: every
    answer is an ack or `unavailable` (sends to known conversations go on), HTTP is 202/201 or
    503, no socket drops, nothing is logged as a bug; after SIGCONT sends succeed, and resends
    leave one copy of each send."""
    caplog.set_level(logging.WARNING)
    outage = freezing(lambda: postmaster_pid(own_pg), how)
    run = await outage_run(outage_db, nats_url, auth_url, new_user, outage)
    await assert_outage_survived(run, nats_url, caplog.records)
    if how is not Freeze.SERVER:  # frozen backends: queries hang
        assert felt(run, known=False, kind="error"), "no send was refused during the outage"
        assert felt(run, known=True, kind="ack"), "known conversations were not served"


async def test_killed_postgresql_answers_every_send_ack_or_unavailable_and_resends_once(
    own_pg: EmbeddedPostgres,
    outage_db: str,
    nats_url: str,
    auth_url: str,
    new_user: NewUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The postmaster killed (SIGKILL: pooled connections reset, new ones refused) and started
    again: the same answers as for a freeze, and the producer serves again without a restart."""
    caplog.set_level(logging.WARNING)
    run = await outage_run(outage_db, nats_url, auth_url, new_user, killing_postgres(own_pg))
    await assert_outage_survived(run, nats_url, caplog.records)
    assert felt(run, known=False, kind="error"), "no send was refused during the outage"
    assert felt(run, known=True, kind="ack"), "known conversations were not served"


@pytest.mark.parametrize("kill", [False, True], ids=["frozen", "killed"])
async def test_nats_outage_answers_every_send_ack_or_unavailable_and_resends_once(
    kill: bool,
    database_url: str,
    nats_server: EmbeddedNats,
    auth_url: str,
    new_user: NewUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """nats-server frozen (PubAcks never come) or killed and started again, under the same
    load: sends are `unavailable` (never acked without a PubAck, never `internal`), and once it
    is back the resends leave one copy of each send."""
    caplog.set_level(logging.WARNING)
    outage = killing_nats(nats_server) if kill else freezing(nats_pid(nats_server))
    run = await outage_run(database_url, nats_server.url, auth_url, new_user, outage)
    await assert_outage_survived(run, nats_server.url, caplog.records)
    assert felt(run, known=True, kind="error"), "no send was refused during the outage"
    assert felt(run, known=False, kind="error"), "no send was refused during the outage"
