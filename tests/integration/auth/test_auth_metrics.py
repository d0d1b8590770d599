"""Auth's counters on its `/metrics` route: logins, registrations, refreshes, revocations.

Metrics are process-global (other tests count too): every assertion is on a delta between two
reads of `/metrics` around the action, never on an absolute value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from rtm.auth.proto import auth_pb2 as pb
from tests.integration.auth.conftest import Stub
from tests.support.metrics import sample

GOOD = {"username": "alice", "password": "password-1"}
BAD = {"username": "alice", "password": "password-2"}

Series = tuple[str, dict[str, str]]


def logins(outcome: str) -> Series:
    return "rtm_auth_logins_total", {"outcome": outcome}


def registrations(outcome: str) -> Series:
    return "rtm_auth_registrations_total", {"outcome": outcome}


def refreshes(outcome: str) -> Series:
    return "rtm_auth_refreshes_total", {"outcome": outcome}


def revocations(reason: str) -> Series:
    return "rtm_auth_revocations_total", {"reason": reason}


async def deltas(
    http: httpx.AsyncClient, series: list[Series], action: Callable[[], Awaitable[Any]]
) -> list[float]:
    """How much each series moved while `action` ran."""
    before = (await http.get("/metrics")).text
    await action()
    after = (await http.get("/metrics")).text
    return [sample(after, name, labels) - sample(before, name, labels) for name, labels in series]


async def test_registrations_count_by_outcome(http: httpx.AsyncClient) -> None:
    async def register() -> None:
        assert (await http.post("/v1/auth/register", json=GOOD)).status_code == 201
        assert (await http.post("/v1/auth/register", json=GOOD)).status_code == 409
        short = {"username": "bob", "password": "x"}
        assert (await http.post("/v1/auth/register", json=short)).status_code == 422

    series = [registrations(o) for o in ("success", "username_taken", "invalid")]
    assert await deltas(http, series, register) == [1, 1, 1]


async def test_logins_count_success_failure_and_throttled(http: httpx.AsyncClient) -> None:
    await http.post("/v1/auth/register", json=GOOD)

    async def log_in() -> None:
        assert (await http.post("/v1/auth/login", json=GOOD)).status_code == 200
        for _ in range(5):
            assert (await http.post("/v1/auth/login", json=BAD)).status_code == 401
        assert (await http.post("/v1/auth/login", json=GOOD)).status_code == 429

    series = [logins(o) for o in ("success", "failure", "throttled")]
    assert await deltas(http, series, log_in) == [1, 5, 1]


async def test_grpc_logins_are_counted_too(http: httpx.AsyncClient, stub: Stub) -> None:
    await stub.Register(pb.RegisterRequest(**GOOD))

    async def log_in() -> None:
        await stub.Login(pb.LoginRequest(**GOOD))

    assert await deltas(http, [logins("success")], log_in) == [1]


async def test_refreshes_count_rotations_invalid_tokens_and_reuse(
    http: httpx.AsyncClient,
) -> None:
    await http.post("/v1/auth/register", json=GOOD)
    grant = (await http.post("/v1/auth/login", json=GOOD)).json()

    async def refresh() -> None:
        spent = grant["refresh_token"]
        assert (await http.post("/v1/auth/refresh", json={"refresh_token": spent})).is_success
        invalid = {"refresh_token": "x" * 43}
        assert (await http.post("/v1/auth/refresh", json=invalid)).status_code == 401
        again = await http.post("/v1/auth/refresh", json={"refresh_token": spent})
        assert again.status_code == 401  # reuse: the whole session ends

    series = [
        *(refreshes(o) for o in ("rotated", "invalid", "reuse_detected")),
        revocations("refresh_reuse"),
    ]
    assert await deltas(http, series, refresh) == [1, 1, 1, 1]


async def test_revocations_count_logouts_and_revoked_sessions(http: httpx.AsyncClient) -> None:
    await http.post("/v1/auth/register", json=GOOD)
    first, second, third = [(await http.post("/v1/auth/login", json=GOOD)).json() for _ in "abc"]

    async def end_sessions() -> None:
        body = {"refresh_token": first["refresh_token"]}
        assert (await http.post("/v1/auth/logout", json=body)).status_code == 204
        assert (await http.post("/v1/auth/logout", json=body)).status_code == 204  # no-op
        bearer = {"Authorization": f"Bearer {second['access_token']}"}
        assert (await http.post("/v1/auth/logout", headers=bearer)).status_code == 204
        caller = {"Authorization": f"Bearer {third['access_token']}"}
        path = f"/v1/auth/sessions/{first['session_id']}"
        assert (await http.delete(path, headers=caller)).status_code == 204  # already ended
        path = f"/v1/auth/sessions/{third['session_id']}"
        assert (await http.delete(path, headers=caller)).status_code == 204

    series = [revocations("logout"), revocations("revoked")]
    assert await deltas(http, series, end_sessions) == [2, 1]
