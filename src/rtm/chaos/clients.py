"""What the chaos run's senders and receivers share: the run's clock, logins, reconnect pacing.

Users log in again (with their password) once their access token is old, rather than refresh:
a refresh whose answer is lost to a fault would leave a rotated refresh token behind, and
presenting that one again revokes the whole session, closing every socket of the user
(docs/protocol.md, "3. Authentication"). An open WebSocket whose token expires is closed 4505; the
client reconnects with a fresh token like after any other close.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import orjson
import websockets

from rtm.bench.population import BenchUser
from rtm.chaos.errors import LoginFailed, MalformedFrame
from rtm.shared.backoff import ExponentialBackoff

RENEW_AFTER_S = 10 * 60  # access tokens live 15 min
OPEN_TIMEOUT_S = 5.0

# What a lost, refused or broken connection raises; the client waits a little and reconnects.
CONNECT_ERRORS = (OSError, TimeoutError, websockets.WebSocketException, LoginFailed)


class RunClock:
    """Seconds since the load started (negative before): every time a run records is on it."""

    def __init__(self) -> None:
        self._zero = time.monotonic()

    def start(self) -> None:
        self._zero = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._zero


class Credentials:
    """One user's login, renewed by logging in again when the token gets old.

    The lock makes a sender and the receivers of one user share one renewal.
    """

    def __init__(self, user: BenchUser, auth_url: str) -> None:
        self.user = user
        self._auth_url = auth_url
        self._lock = asyncio.Lock()

    @property
    def user_id(self) -> str:
        return self.user.id

    async def headers(self) -> dict[str, str]:
        """`Authorization` for a new connection.

        Raises:
            LoginFailed: the token was old and auth did not log the user in again.
        """
        async with self._lock:
            if time.monotonic() - self.user.obtained_at > RENEW_AFTER_S:
                await self._login()
        return self.user.headers

    async def _login(self) -> None:
        body = {"username": self.user.username, "password": self.user.password}
        try:
            async with httpx.AsyncClient(base_url=self._auth_url, trust_env=False) as client:
                answer = await client.post("/v1/auth/login", json=body, timeout=10.0)
        except httpx.HTTPError as exc:
            raise LoginFailed(f"login of {self.user.username}: {exc!r}") from exc
        if answer.status_code != 200:
            raise LoginFailed(f"login of {self.user.username}: HTTP {answer.status_code}")
        tokens = answer.json()
        self.user.access_token = tokens["access_token"]
        self.user.refresh_token = tokens["refresh_token"]
        self.user.obtained_at = time.monotonic()


class Backoff:
    """Reconnect pacing: 0.1 s doubling to 2 s, with jitter; reset once a connection works.

    Short on purpose: the run measures how soon service comes back, and a client that waits
    long after the server is back would be measured instead.
    """

    _PACE = ExponentialBackoff(0.1, 2.0, jitter=(0.5, 1.5))

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._attempt = 1

    def reset(self) -> None:
        self._attempt = 1

    async def wait(self) -> None:
        await asyncio.sleep(self._PACE.delay(self._attempt, self._rng.random))
        self._attempt += 1


def parse_frame(raw: bytes | str) -> dict[str, Any]:
    """The frame as a dict with a `type`.

    Raises:
        MalformedFrame: not JSON, or not an object with a `type` (a corrupted frame).
    """
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedFrame(f"not JSON: {raw[:80]!r}") from exc
    if not isinstance(frame, dict) or "type" not in frame:
        raise MalformedFrame(f"not a frame: {str(frame)[:80]}")
    return frame


def require(frame: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """`frame`, if it has every one of `fields` (raises `MalformedFrame` if not)."""
    missing = [f for f in fields if f not in frame]
    if missing:
        raise MalformedFrame(f"{frame['type']} frame without {', '.join(missing)}")
    return frame


def close_code(exc: BaseException) -> int | None:
    """The close code the server sent, when `exc` reports a closed WebSocket."""
    if isinstance(exc, websockets.ConnectionClosed):
        return exc.rcvd.code if exc.rcvd is not None else 1006
    return None
