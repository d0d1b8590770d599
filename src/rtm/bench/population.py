"""Users and conversations, made over the public HTTP API exactly as an app would.

Every run signs up fresh users (`bench<run>-<n>`) and logs each in through auth's HTTP front:
nothing is cached across runs and no token is forged. Signing up costs two argon2 hashes per user
(register, login), so they run concurrently, a few more at once than auth's hash workers, with
progress shown. Tokens live 15 minutes: `fresh()` renews old ones with the refresh token first.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from rtm.bench.errors import BenchError

PASSWORD_BYTES = 18
RENEW_AFTER_S = 8 * 60  # access tokens live 15 min; a scenario runs a few


@dataclass
class BenchUser:
    index: int
    id: str
    username: str
    password: str
    access_token: str
    refresh_token: str
    obtained_at: float

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def _client(base_url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    return httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=60.0, limits=limits)


async def _post(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST, waiting out 429/503 answers (bounded: 10 tries)."""
    for _ in range(10):
        response = await client.post(path, json=body, headers=headers)
        if response.status_code not in (429, 503):
            return response
        retry_ms = response.json().get("error", {}).get("retry_after_ms", 500)
        await asyncio.sleep(min(5.0, max(0.05, retry_ms / 1000)))
    return response


class Population:
    """The run's users, signed up on demand, and helpers to make conversations."""

    def __init__(
        self, auth_url: str, producer_url: str, on_progress: Callable[[str], None]
    ) -> None:
        self.auth_url = auth_url
        self.producer_url = producer_url
        self.run_id = secrets.token_hex(3)
        self.users: list[BenchUser] = []
        self._progress = on_progress
        self.signup_seconds = 0.0

    async def ensure(self, count: int, concurrency: int = 6) -> list[BenchUser]:
        """At least `count` users, logged in with fresh tokens; returns the first `count`."""
        missing = count - len(self.users)
        if missing > 0:
            began = time.monotonic()
            await self._sign_up(range(len(self.users), count), concurrency)
            self.signup_seconds += time.monotonic() - began
        await self.fresh(self.users[:count])
        return self.users[:count]

    async def _sign_up(self, indexes: range, concurrency: int) -> None:
        gate = asyncio.Semaphore(concurrency)
        made: list[BenchUser] = []
        began = time.monotonic()

        async def one(client: httpx.AsyncClient, index: int) -> None:
            async with gate:
                username = f"bench{self.run_id}-{index}"
                password = secrets.token_urlsafe(PASSWORD_BYTES)
                created = await _post(
                    client, "/v1/auth/register", {"username": username, "password": password}
                )
                if created.status_code != 201:
                    raise BenchError(f"sign-up of {username}: {created.status_code} {created.text}")
                login = await _post(
                    client, "/v1/auth/login", {"username": username, "password": password}
                )
                if login.status_code != 200:
                    raise BenchError(f"login of {username}: {login.status_code} {login.text}")
                body = login.json()
                made.append(
                    BenchUser(
                        index,
                        body["user"]["id"],
                        username,
                        password,
                        body["access_token"],
                        body["refresh_token"],
                        time.monotonic(),
                    )
                )
                rate = len(made) / max(0.001, time.monotonic() - began)
                self._progress(
                    f"signing up users: {len(made)}/{len(indexes)} ({rate:.0f}/s, "
                    "register + login, argon2 on auth)"
                )

        async with _client(self.auth_url) as client:
            await asyncio.gather(*(one(client, index) for index in indexes))
        self.users.extend(sorted(made, key=lambda u: u.index))

    async def fresh(self, users: Sequence[BenchUser]) -> None:
        """Renew access tokens older than `RENEW_AFTER_S` with their refresh tokens."""
        stale = [u for u in users if time.monotonic() - u.obtained_at > RENEW_AFTER_S]
        if not stale:
            return
        gate = asyncio.Semaphore(16)

        async def one(client: httpx.AsyncClient, user: BenchUser) -> None:
            async with gate:
                answer = await _post(
                    client, "/v1/auth/refresh", {"refresh_token": user.refresh_token}
                )
                if answer.status_code != 200:
                    raise BenchError(f"refresh of {user.username}: {answer.status_code}")
                body = answer.json()
                user.access_token = body["access_token"]
                user.refresh_token = body["refresh_token"]
                user.obtained_at = time.monotonic()

        async with _client(self.auth_url) as client:
            await asyncio.gather(*(one(client, user) for user in stale))

    async def conversations(
        self, groups: Sequence[Sequence[BenchUser]], kind: str, concurrency: int = 8
    ) -> list[str]:
        """One conversation per group of users (created by its first member); their ids."""
        gate = asyncio.Semaphore(concurrency)

        async def one(client: httpx.AsyncClient, members: Sequence[BenchUser]) -> str:
            async with gate:
                creator = members[0]
                body: dict[str, Any] = {"kind": kind, "member_ids": [m.id for m in members[1:]]}
                if kind == "group":
                    body["title"] = f"bench {self.run_id}"
                answer = await _post(client, "/v1/conversations", body, creator.headers)
                if answer.status_code not in (200, 201):
                    raise BenchError(f"creating a conversation: {answer.status_code} {answer.text}")
                return str(answer.json()["id"])

        async with _client(self.producer_url) as client:
            return list(await asyncio.gather(*(one(client, g) for g in groups)))
