"""The producer through outages, limits and shutdown: each test gets its own nats-server,
database and producer, because each one breaks something."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import nats
import psycopg
import pytest

from rtm.local.nats import EmbeddedNats
from rtm.local.postgres import EmbeddedPostgres
from rtm.local.process import free_port
from rtm.producer.bootstrap import create_app, server
from rtm.shared.contract import STREAM
from rtm.shared.settings import REPO_ROOT
from rtm.shared.ws import CloseCode
from tests.integration.producer.conftest import (
    NewUser,
    create_conversation,
    open_socket,
    settings_for,
    wait_ready,
)
from tests.support.asgi import running_producer
from tests.support.db import register_users
from tests.support.processes import Freeze, frozen


@contextmanager
def paused(nats_server: EmbeddedNats) -> Iterator[None]:
    """nats-server frozen (SIGSTOP): connections stay open, nothing is answered."""
    assert nats_server.proc is not None
    with frozen(nats_server.proc.pid, Freeze.SERVER):
        yield


async def readiness(base: str) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{base}/health/ready")
    body: dict[str, object] = response.json()
    return response.status_code, body


async def expect_ready_failing(base: str, *names: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, body = await readiness(base)
        failing = body.get("failing", {})
        assert isinstance(failing, dict)
        if status == 503 and set(names) <= set(failing):
            return
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)


async def test_unresponsive_nats_gets_unavailable_in_time_and_too_many_in_flight(
    database_url: str, nats_server: EmbeddedNats, auth_url: str, new_user: NewUser
) -> None:
    """Frozen NATS: sends answer `unavailable` within ~2 s (never an ack, never a hang), the
    send beyond the in-flight limit is refused at once, and retries after recovery are
    deduplicated: one message per client_msg_id in the stream."""
    settings = settings_for(database_url, nats_server.url, auth_url, max_in_flight=2)
    async with running_producer(create_app(settings)) as base:
        await wait_ready(base)
        alice, bob = new_user(), new_user()
        conversation = (await create_conversation(base, alice, "direct", bob))["id"]
        async with open_socket(base, alice) as ws:
            with paused(nats_server):
                loop = asyncio.get_running_loop()
                started = loop.time()
                keys = [await ws.send_message(conversation, f"m{i}") for i in range(3)]
                refused = await ws.recv()
                assert (refused["code"], refused["ref"]) == ("too_many_in_flight", keys[2])
                assert loop.time() - started < 1.0
                unavailable = [await ws.recv(timeout=4) for _ in range(2)]
                assert [(e["code"], e["ref"]) for e in unavailable] == [
                    ("unavailable", keys[0]),
                    ("unavailable", keys[1]),
                ]
                assert loop.time() - started < 3.0
                assert unavailable[0]["retry_after_ms"] > 0
            acks = []
            for key in keys:  # retry with the same ids (one at a time: the limit is 2)
                await ws.send_message(conversation, "retry", client_msg_id=key)
                acks.append(await ws.recv())
            assert [a.get("client_msg_id") for a in acks] == keys, acks
            assert {a["type"] for a in acks} == {"ack"}
            assert len({a["message_id"] for a in acks}) == 3
        nc = await nats.connect(nats_server.url)
        info = await nc.jetstream().stream_info(STREAM)
        await nc.close()
        assert info.state.messages == 3


async def test_stopped_nats_is_unavailable_at_once_and_recovers(
    database_url: str, nats_server: EmbeddedNats, auth_url: str, new_user: NewUser
) -> None:
    settings = settings_for(database_url, nats_server.url, auth_url)
    async with running_producer(create_app(settings)) as base:
        await wait_ready(base)
        alice, bob = new_user(), new_user()
        conversation = (await create_conversation(base, alice, "direct", bob))["id"]
        async with open_socket(base, alice) as ws:
            nats_server.stop()
            await expect_ready_failing(base, "nats", "jetstream")
            key = await ws.send_message(conversation)
            error = await ws.recv(timeout=1)
            assert (error["code"], error["ref"]) == ("unavailable", key)
            nats_server.start()
            await wait_ready(base)
            await ws.send_message(conversation, client_msg_id=key)
            assert (await ws.recv())["type"] == "ack"


async def test_database_outage_keeps_known_conversations_open_and_recovers(
    database_url: str,
    nats_url: str,
    auth_url: str,
    new_user: NewUser,
    pg_server: EmbeddedPostgres,
) -> None:
    """Connections killed and refused: a conversation this producer knows keeps taking sends
    (JetStream dedups resends), one it never saw and conversation commands are `unavailable`,
    and the producer stays ready; once PostgreSQL is back, everything is served again."""
    name = database_url.rsplit("/", 1)[1]
    settings = settings_for(database_url, nats_url, auth_url)
    async with running_producer(create_app(settings)) as base:
        await wait_ready(base)
        alice, bob = new_user(), new_user()
        known = (await create_conversation(base, alice, "direct", bob))["id"]
        unseen = str(uuid.uuid4())  # made by another producer: never seen by this one
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO messaging.conversations (id, kind, title, created_by, created_at)"
                " VALUES (%s, 'group', 't', %s, now())",
                (unseen, alice.id),
            )
            conn.execute(
                "INSERT INTO messaging.members (conversation_id, user_id) VALUES (%s, %s)",
                (unseen, alice.id),
            )

        def send(conversation: str, key: str | None = None) -> dict[str, str]:
            body = {"conversation_id": conversation, "body": "x"}
            return {"client_msg_id": key or str(uuid.uuid4()), **body}

        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            try:
                async with httpx.AsyncClient(base_url=f"http://{base}") as http:
                    key = str(uuid.uuid4())
                    acks = []
                    for _ in range(2):  # the first meets a killed pooled connection
                        response = await http.post(
                            "/v1/messages", headers=alice.headers, json=send(known, key)
                        )
                        assert response.status_code == 202, response.text
                        acks.append(response.json())
                    assert [a["duplicate"] for a in acks] == [False, True]
                    assert acks[0]["message_id"] == acks[1]["message_id"]
                    refused = await http.post(
                        "/v1/messages", headers=alice.headers, json=send(unseen)
                    )
                    assert refused.status_code == 503, refused.text
                    assert refused.json()["error"]["code"] == "unavailable"
                    created = await http.post(
                        "/v1/conversations",
                        headers=alice.headers,
                        json={"kind": "group", "member_ids": [], "title": "x"},
                    )
                    assert created.status_code == 503, created.text
                status, body = await readiness(base)
                assert status == 200, body
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        async with open_socket(base, alice) as ws:
            await ws.send_message(unseen)
            assert (await ws.recv())["type"] == "ack"
            await ws.send_message(known)
            assert (await ws.recv())["type"] == "ack"


async def test_starts_without_its_dependencies_and_becomes_ready_when_they_come(
    pg_server: EmbeddedPostgres, auth_url: str, new_user: NewUser, tmp_path: Path
) -> None:
    """NATS and PostgreSQL down at start: the process runs, reports not ready, then serves
    (applying the migrations itself) once they are up, without a restart."""
    name = "tl_" + uuid.uuid4().hex[:12]
    database_url = f"postgresql://postgres@{pg_server.host}:{pg_server.port}/{name}"
    nats_server = EmbeddedNats(tmp_path / "nats", free_port(), free_port())
    settings = settings_for(
        database_url,
        nats_server.url,
        auth_url,
        migrate_on_start=True,
        migrations_dir=REPO_ROOT / "migrations",
    )
    try:
        async with running_producer(create_app(settings)) as base:
            await expect_ready_failing(base, "nats", "jetstream", "postgres")
            pg_server.create_database(name)
            nats_server.start()
            await wait_ready(base)
            alice, bob = new_user(), new_user()
            register_users(database_url, [alice.id, bob.id])  # a database of its own
            conversation = (await create_conversation(base, alice, "direct", bob))["id"]
            async with open_socket(base, alice) as ws:
                await ws.send_message(conversation)
                assert (await ws.recv())["type"] == "ack"
    finally:
        nats_server.stop()
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def graceful(
    database_url: str, nats_server: EmbeddedNats, auth_url: str
) -> AsyncIterator[tuple[str, object]]:
    settings = settings_for(database_url, nats_server.url, auth_url, producer_port=free_port())
    uvicorn_server = server(settings)
    task = asyncio.create_task(uvicorn_server.serve())
    base = f"127.0.0.1:{settings.producer_port}"
    await wait_ready(base)
    yield base, uvicorn_server
    uvicorn_server.should_exit = True
    await asyncio.wait_for(task, 20)


async def test_shutdown_acks_in_flight_sends_then_closes_1012(
    graceful: tuple[str, object], nats_server: EmbeddedNats, new_user: NewUser
) -> None:
    base, uvicorn_server = graceful
    alice, bob = new_user(), new_user()
    conversation = (await create_conversation(base, alice, "direct", bob))["id"]
    async with open_socket(base, alice) as ws:
        await ws.ping()
        with paused(nats_server):  # PubAcks pending while the shutdown starts
            keys = [await ws.send_message(conversation, f"m{i}") for i in range(5)]
            await asyncio.sleep(0.2)
            uvicorn_server.should_exit = True  # type: ignore[attr-defined]
            await asyncio.sleep(0.5)
        acks = [await ws.recv() for _ in keys]
        assert [(a["type"], a["client_msg_id"]) for a in acks] == [("ack", k) for k in keys]
        assert await ws.closed_with() == CloseCode.RESTARTING


async def test_python_m_rtm_producer_runs_and_exits_0_on_sigterm(
    database_url: str, nats_url: str, auth_url: str, new_user: NewUser, tmp_path: Path
) -> None:
    """The real entry point, configured by environment variables only."""
    port = free_port()
    env = {
        **os.environ,
        "RTM_PRODUCER_PORT": str(port),
        "RTM_NATS_URL": nats_url,
        "RTM_DATABASE_URL": database_url,
        "RTM_AUTH_URL": auth_url,
        "RTM_TOKEN_ISSUER": "rtm-auth",
        "RTM_LOG_FORMAT": "json",
    }
    log = tmp_path / "producer.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - starting it is instantaneous
            [sys.executable, "-m", "rtm.producer"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        base = f"127.0.0.1:{port}"
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            try:
                await wait_ready(base, timeout=1)
                break
            except (httpx.HTTPError, TimeoutError):
                assert proc.poll() is None, log.read_text()
                assert asyncio.get_running_loop().time() < deadline, log.read_text()
                await asyncio.sleep(0.1)
        alice, bob = new_user(), new_user()
        conversation = (await create_conversation(base, alice, "direct", bob))["id"]
        async with open_socket(base, alice) as ws:
            await ws.send_message(conversation)
            assert (await ws.recv())["type"] == "ack"
            proc.send_signal(signal.SIGTERM)
            assert await ws.closed_with(timeout=10) == CloseCode.RESTARTING
        assert await asyncio.to_thread(proc.wait, 15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
