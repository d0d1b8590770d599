"""Logout closes the session's live sockets everywhere (issue 3; docs/protocol.md,
"3. Authentication"), through real processes: auth publishes the revocation on NATS; the producer
and both consumers close that session's WebSockets with 4503 within 5 s and refuse its still
unexpired access token, while another session of the same user carries on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from rtm.local.plan import SystemUrls
from rtm.local.runner import LocalSystem
from tests.e2e.client import User, next_frame, sign_up, ws_url

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"  # the password `sign_up` registers


async def second_session(urls: SystemUrls, user: User) -> User:
    """The same user logged in again: a session of its own."""
    async with httpx.AsyncClient(base_url=urls.auth, trust_env=False, timeout=10) as http:
        login = await http.post(
            "/v1/auth/login", json={"username": user.username, "password": PASSWORD}
        )
    assert login.status_code == 200, login.text
    body = login.json()
    assert body["session_id"] != user.session_id
    return User(
        user.id, user.username, body["access_token"], body["refresh_token"], body["session_id"]
    )


@contextlib.asynccontextmanager
async def sockets(urls: SystemUrls, user: User) -> AsyncIterator[list[websockets.ClientConnection]]:
    """Live, answering WebSockets of `user`'s session: the producer's, then each consumer's."""
    async with contextlib.AsyncExitStack() as stack:
        opened = []
        for base in (urls.producer, *urls.consumers):
            ws = await stack.enter_async_context(
                websockets.connect(ws_url(base), additional_headers=user.headers, proxy=None)
            )
            await ws.send(json.dumps({"type": "ping"}))
            await next_frame(ws, "pong")
            opened.append(ws)
        yield opened


async def close_code(ws: websockets.ClientConnection, timeout: float) -> int | None:
    """Wait (reading and dropping frames) until the server closes `ws`; its close code."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        return None


async def refused_with(
    base: str, user: User, *, first_frame: bool
) -> tuple[int | None, list[dict[str, Any]]]:
    """Connect with `user`'s access token (on the upgrade, or as the first `auth` frame)."""
    headers = {} if first_frame else user.headers
    async with websockets.connect(ws_url(base), additional_headers=headers, proxy=None) as ws:
        with contextlib.suppress(ConnectionClosed):
            if first_frame:
                await ws.send(json.dumps({"type": "auth", "token": user.access_token}))
            await ws.send(json.dumps({"type": "ping"}))
        frames = []
        try:
            async with asyncio.timeout(5):
                while True:
                    frames.append(json.loads(await ws.recv()))
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), frames
        except TimeoutError:
            return None, frames


async def test_logout_closes_the_sessions_sockets_4503_and_spares_the_other_session(
    system: LocalSystem,
) -> None:
    urls = system.urls
    alice = await sign_up(urls)
    other = await second_session(urls, alice)
    async with sockets(urls, alice) as doomed, sockets(urls, other) as spared:
        async with httpx.AsyncClient(base_url=urls.auth, trust_env=False, timeout=10) as http:
            began = time.monotonic()
            logout = await http.post("/v1/auth/logout", json={"refresh_token": alice.refresh_token})
        assert logout.status_code == 204, logout.text
        codes = await asyncio.gather(*(close_code(ws, 5) for ws in doomed))
        elapsed = time.monotonic() - began
        assert codes == [4503] * len(doomed)
        assert elapsed < 5, elapsed

        # the other session of the same user is unaffected
        for ws in spared:
            await ws.send(json.dumps({"type": "ping"}))
            assert (await next_frame(ws, "pong", timeout=5)) == {"type": "pong"}

    # the logged-out session's access token has not expired, yet it opens nothing any more
    for base in (urls.producer, *urls.consumers):
        for first_frame in (False, True):
            assert await refused_with(base, alice, first_frame=first_frame) == (4503, [])
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        for base in urls.consumers:
            listed = await http.get(f"{base}/v1/conversations", headers=alice.headers)
            assert listed.status_code == 401, listed.text
            assert listed.json()["error"]["code"] == "unauthorized"
            assert (await http.get(f"{base}/v1/conversations", headers=other.headers)).is_success
        created = await http.post(
            f"{urls.producer}/v1/conversations",
            json={"kind": "group", "member_ids": [], "title": "after logout"},
            headers=alice.headers,
        )
        assert created.status_code == 401, created.text
        me = await http.get(f"{urls.auth}/v1/auth/me", headers=other.headers)
        assert me.status_code == 200, me.text
