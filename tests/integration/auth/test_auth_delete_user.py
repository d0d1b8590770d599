"""Deleting an account, by `rtm-auth delete-user` and by `DELETE /v1/auth/me`, on real PostgreSQL
and NATS: every live session's `SessionRevoked` reaches the core subject and the KV bucket within
5 s, logging in is then refused like an unknown user, and the username stays taken."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError

from rtm.auth.__main__ import main
from rtm.auth.bootstrap import Auth, build
from rtm.auth.domain.model import ClientInfo, Grant, Session
from rtm.local.process import free_port
from rtm.shared.contract import SESSION_REVOKED, SessionRevoked
from tests.integration.auth.conftest import KEY_SECRET, make_settings

PASSWORD = "password-1"
CLIENT = ClientInfo(address="203.0.113.9", user_agent="pytest")
WITHIN_S = 5.0  # the bound: revoked everywhere within 5 s


@dataclass
class Revocations:
    """`SessionRevoked` events as producer and consumer receive them (core subject, KV bucket)."""

    client: NatsClient
    seen: list[SessionRevoked] = field(default_factory=list)

    async def on_message(self, msg: Msg) -> None:
        self.seen.append(SessionRevoked.decode(msg.data))

    async def wait_for(self, *grants: Grant) -> None:
        """Until every grant's session was announced on the subject and is in the bucket."""
        expected = {SessionRevoked(g.session_id, g.user.id) for g in grants}
        deadline = time.monotonic() + WITHIN_S
        while not expected <= set(self.seen):
            assert time.monotonic() < deadline, f"announced only {self.seen}"
            await asyncio.sleep(0.02)
        kv = await self.client.jetstream().key_value("rtm_revoked_sessions")
        for event in expected:  # the KV put follows the core publish
            while True:
                try:
                    entry = await kv.get(str(event.session_id))
                    break
                except KeyNotFoundError:
                    assert time.monotonic() < deadline, f"{event} not in the bucket"
                    await asyncio.sleep(0.02)
            assert SessionRevoked.decode(entry.value or b"") == event


@pytest.fixture
async def revocations(nats_url: str) -> AsyncIterator[Revocations]:
    client = await nats.connect(nats_url)
    watched = Revocations(client)
    await client.subscribe(SESSION_REVOKED, cb=watched.on_message)
    await client.flush()
    yield watched
    await client.close()


@pytest.fixture
async def live_runtime(db_url: str, nats_url: str) -> AsyncIterator[Auth]:
    """A started auth runtime connected to a real NATS (its relay publishes revocations)."""
    started = build(make_settings(db_url, nats_url))
    await started.start(serve_http=False)
    await started.wait_ready()
    yield started
    await started.stop()


async def logins(runtime: Auth, name: str, count: int) -> list[Grant]:
    await runtime.context.accounts.register(name, PASSWORD, None)
    return [await runtime.context.logins.login(name, PASSWORD, CLIENT) for _ in range(count)]


async def published(db_url: str, grants: list[Grant]) -> list[bool]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT revocation_published FROM auth.sessions WHERE id = ANY($1::uuid[])",
            [g.session_id for g in grants],
        )
    finally:
        await conn.close()
    return [row["revocation_published"] for row in rows]


async def assert_gone(http: httpx.AsyncClient, name: str, grants: list[Grant]) -> None:
    """The account's tokens are refused, it logs in like nobody, and its name stays taken."""
    for grant in grants:
        bearer = {"Authorization": f"Bearer {grant.access_token}"}
        assert (await http.get("/v1/auth/me", headers=bearer)).status_code == 401
        refresh = await http.post("/v1/auth/refresh", json={"refresh_token": grant.refresh_token})
        assert refresh.status_code == 401
    deleted = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    unknown = await http.post("/v1/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert deleted.status_code == unknown.status_code == 401
    assert deleted.json() == unknown.json()
    again = await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_exists")


@pytest.fixture
async def live_http(live_runtime: Auth) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=live_runtime.http_app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
        yield client


# -- DELETE /v1/auth/me ------------------------------------------------------------------------


async def test_deleting_me_revokes_every_session_on_nats(
    live_runtime: Auth, live_http: httpx.AsyncClient, revocations: Revocations, db_url: str
) -> None:
    http = live_http
    grants = await logins(live_runtime, "alice", 3)
    [bob] = await logins(live_runtime, "bob", 1)
    response = await http.delete(
        "/v1/auth/me", headers={"Authorization": f"Bearer {grants[0].access_token}"}
    )
    assert (response.status_code, response.content) == (204, b"")
    await revocations.wait_for(*grants)
    assert {e.session_id for e in revocations.seen} == {g.session_id for g in grants}
    await assert_gone(http, "alice", grants)
    bob_me = await http.get("/v1/auth/me", headers={"Authorization": f"Bearer {bob.access_token}"})
    assert bob_me.status_code == 200
    deadline = time.monotonic() + WITHIN_S  # marked right after the KV put
    while await published(db_url, grants) != [True] * 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_deleting_me_needs_a_live_token(
    live_runtime: Auth, live_http: httpx.AsyncClient
) -> None:
    http = live_http
    [grant] = await logins(live_runtime, "alice", 1)
    assert (await http.delete("/v1/auth/me")).status_code == 401
    bearer = {"Authorization": f"Bearer {grant.access_token}"}
    assert (await http.get("/v1/auth/me", headers=bearer)).status_code == 200  # still there
    assert (await http.delete("/v1/auth/me", headers=bearer)).status_code == 204
    assert (await http.delete("/v1/auth/me", headers=bearer)).status_code == 401  # gone


# -- rtm-auth delete-user ----------------------------------------------------------------------


def test_the_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["delete-user", "--help"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "delete-user" in shown
    assert "USERNAME_OR_ID" in shown


async def rtm_auth(db_url: str, nats_url: str, *args: str) -> tuple[int | None, str, str]:
    """`python -m rtm.auth *args` as an operator runs it: exit status, stdout, stderr."""
    env = {
        **os.environ,
        "RTM_ENV": "test",
        "RTM_DATABASE_URL": db_url,
        "RTM_NATS_URL": nats_url,
        "RTM_AUTH_KEY_SECRET": KEY_SECRET,
        "RTM_LOG_FORMAT": "text",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtm.auth", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def test_the_command_deletes_a_user_and_publishes_every_revocation(
    runtime: Auth,
    http: httpx.AsyncClient,
    revocations: Revocations,
    db_url: str,
    nats_url: str,
) -> None:
    """The running auth has no NATS here: the events come from the command itself."""
    grants = await logins(runtime, "alice", 2)
    user = grants[0].user
    code, out, err = await rtm_auth(db_url, nats_url, "delete-user", "ALICE")
    assert code == 0, err
    assert out == f"user alice ({user.id}) deleted; 2 sessions revoked\n"
    await revocations.wait_for(*grants)
    assert await published(db_url, grants) == [True, True]
    await assert_gone(http, "alice", grants)
    announced = len(revocations.seen)
    code, out, err = await rtm_auth(db_url, nats_url, "delete-user", str(user.id))
    assert (code, out) == (0, f"user alice ({user.id}) was already deleted; 0 sessions revoked\n")
    await asyncio.sleep(0.1)
    assert len(revocations.seen) == announced  # deleting again announces nothing


async def test_without_nats_the_running_services_relay_publishes_them(
    runtime: Auth, revocations: Revocations, db_url: str, nats_url: str
) -> None:
    """And an unknown user exits 1."""
    grants = await logins(runtime, "alice", 2)
    nowhere = f"nats://127.0.0.1:{free_port()}"
    (code, _, err), unknown = await asyncio.gather(
        rtm_auth(db_url, nowhere, "delete-user", "alice"),
        rtm_auth(db_url, nowhere, "delete-user", "nobody"),
    )
    assert code == 0, err
    assert "2 revocations not published yet" in err
    assert unknown[:2] == (1, "")
    assert "rtm-auth: no such user: nobody" in unknown[2]
    relaying = build(make_settings(db_url, nats_url))  # an auth process that reaches NATS
    await relaying.start(serve_http=False)
    try:
        await revocations.wait_for(*grants)  # its relay (RTM_AUTH_RELAY_INTERVAL_SECONDS)
    finally:
        await relaying.stop()


async def test_a_session_cannot_be_opened_for_a_deleted_user(live_runtime: Auth) -> None:
    """The store side of a login racing the deletion (the service test races them for real)."""
    [grant] = await logins(live_runtime, "alice", 1)
    await live_runtime.context.accounts.delete_user(grant.user.id)
    now = grant.user.created_at
    session = Session(uuid.uuid4(), grant.user.id, now, now, now.replace(year=now.year + 1))
    assert not await live_runtime.store.create_session(session, bytes(32))
    assert await live_runtime.store.live_sessions(grant.user.id, now=now) == []
