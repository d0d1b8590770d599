"""Hostile input at auth's edges (HTTP and gRPC, real PostgreSQL): each gets its documented code,
never INTERNAL / 500, and the service keeps answering.

Issue 11: a NUL in a login username reached PostgreSQL as text (the throttling key) and came
back as `internal`; it must answer exactly like an unknown user.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
import httpx
import jwt
import pytest

from rtm.auth.bootstrap import Auth, build
from rtm.auth.proto import auth_pb2 as pb
from rtm.auth.proto import auth_pb2_grpc
from tests.integration.auth.conftest import CLIENT_ADDRESS, Stub, make_settings
from tests.support.clock import FakeClock

PASSWORD = "hostile-input-password"
NUL_NAME = "ab\x00cd"


async def error_of(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def as_json(body: dict[str, Any]) -> dict[str, Any]:
    """httpx's `json=` cannot send lone surrogates; JSON can (`\\ud800`): send those escaped."""
    return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def signed_up(http: httpx.AsyncClient, name: str = "alice") -> dict[str, Any]:
    body = {"username": name, "password": PASSWORD}
    assert (await http.post("/v1/auth/register", json=body)).status_code == 201
    grant = await http.post("/v1/auth/login", json=body)
    assert grant.status_code == 200, grant.text
    result: dict[str, Any] = grant.json()
    return result


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class CountingVerifies:
    """Counts argon2 verifications: an impossible name must still pay one (timing)."""

    def __init__(self, runtime: Auth) -> None:
        self.count = 0
        original = runtime.hasher.verify

        async def verify(password_hash: str | None, password: str) -> bool:
            self.count += 1
            return await original(password_hash, password)

        runtime.hasher.verify = verify  # type: ignore[method-assign]


async def test_a_nul_username_logs_in_like_an_unknown_user_over_http(
    http: httpx.AsyncClient, runtime: Auth
) -> None:
    await signed_up(http)
    verifies = CountingVerifies(runtime)
    answers = []
    for name in (NUL_NAME, "nobody", "alice\x00", "\x00" * 256):
        response = await http.post(
            "/v1/auth/login", **as_json({"username": name, "password": "xxxxxxxxxx"})
        )
        answers.append((response.status_code, response.json()))
    assert answers == [(401, answers[1][1])] * 4
    assert verifies.count == 4  # each paid the dummy hash, like an unknown user
    # A lone surrogate is not text: refused at the edge, whatever the account (no oracle).
    surrogate = await http.post(
        "/v1/auth/login", **as_json({"username": "alice\ud800", "password": "xxxxxxxxxx"})
    )
    assert (surrogate.status_code, error(surrogate)["field"]) == (422, "username")


async def test_a_nul_username_logs_in_like_an_unknown_user_over_grpc(stub: Stub) -> None:
    nul = await error_of(stub.Login(pb.LoginRequest(username=NUL_NAME, password="xxxxxxxxxx")))
    unknown = await error_of(stub.Login(pb.LoginRequest(username="nobody", password="xxxxxxxxxx")))
    assert nul.code() is unknown.code() is grpc.StatusCode.UNAUTHENTICATED
    assert nul.details() == unknown.details()


async def test_nul_at_registration_is_validation_failed(
    http: httpx.AsyncClient, stub: Stub
) -> None:
    for body, field in (
        ({"username": NUL_NAME, "password": PASSWORD}, "username"),
        ({"username": "bob", "password": PASSWORD, "display_name": "B\x00b"}, "display_name"),
        ({"username": "bob\ud800", "password": PASSWORD}, "username"),
        ({"username": "bob", "password": "ab\ud800cdefgh"}, "password"),
    ):
        response = await http.post("/v1/auth/register", **as_json(body))
        assert (response.status_code, error(response)["code"], error(response)["field"]) == (
            422,
            "validation_failed",
            field,
        ), body
    for request in (
        pb.RegisterRequest(username=NUL_NAME, password=PASSWORD),
        pb.RegisterRequest(username="bob", password=PASSWORD, display_name="B\x00b"),
    ):
        assert (await error_of(stub.Register(request))).code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_refused_passwords_say_why(http: httpx.AsyncClient, stub: Stub) -> None:
    for password, reason in (
        ("password1", "too common"),
        ("Iloveyou123", "too common"),
        ("Carol-The-Great", "username"),
        ("1234567", "8-1024 bytes"),
        ("x" * 1025, "at most 1024"),
    ):
        response = await http.post(
            "/v1/auth/register", json={"username": "carol-the-great", "password": password}
        )
        assert response.status_code == 422, password
        assert error(response)["field"] == "password"
        assert reason in error(response)["message"], error(response)
    common = await error_of(stub.Register(pb.RegisterRequest(username="dan", password="qwerty123")))
    assert common.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "too common" in (common.details() or "")


async def test_every_input_that_reaches_postgresql_is_answered_not_crashed(
    http: httpx.AsyncClient, stub: Stub
) -> None:
    grant = await signed_up(http)
    auth = bearer(grant["access_token"])
    for q in ("a%00", "%ED%A0%80", "%FF", "%25", "_", "%5C", "a" * 256):  # \ud800 as UTF-8
        response = await http.get(f"/v1/users?q={q}", headers=auth)
        assert (response.status_code, response.json()) == (200, {"users": []}), q
    for path, status in (
        ("/v1/users?q=a&limit=51", 422),
        ("/v1/users?q=a&limit=0", 422),
        ("/v1/users?q=a&limit=99999999999999999999999", 422),
        ("/v1/users?q=%20", 422),
        ("/v1/users?q=" + "a" * 257, 422),
        ("/v1/users/ab%00cd", 422),
        ("/v1/users/" + "1" * 5000, 422),
    ):
        response = await http.get(path, headers=auth)
        assert response.status_code == status, (path, response.text)
    revoke = await http.delete("/v1/auth/sessions/ab%00cd", headers=auth)
    assert (revoke.status_code, error(revoke)["field"]) == (422, "session_id")
    for token, status in (("rtmr_\x00", 401), ("rtmr_\ud800", 422), ("rtmr_" + "a" * 2000, 422)):
        refreshed = await http.post("/v1/auth/refresh", **as_json({"refresh_token": token}))
        assert refreshed.status_code == status
        logged_out = await http.post("/v1/auth/logout", **as_json({"refresh_token": token}))
        assert logged_out.status_code == status
    meta = (("authorization", f"Bearer {grant['access_token']}"),)
    for call, code in (
        (stub.GetUser(pb.GetUserRequest(user_id="ab\x00cd"), metadata=meta), "INVALID_ARGUMENT"),
        (stub.SearchUsers(pb.SearchUsersRequest(query="a", limit=51), metadata=meta),
         "INVALID_ARGUMENT"),
        (stub.SearchUsers(pb.SearchUsersRequest(query="a", limit=-1), metadata=meta),
         "INVALID_ARGUMENT"),
        (stub.RevokeSession(pb.RevokeSessionRequest(session_id="\x00"), metadata=meta),
         "INVALID_ARGUMENT"),
        (stub.Refresh(pb.RefreshRequest(refresh_token="rtmr_\x00")), "UNAUTHENTICATED"),
        (stub.Logout(pb.LogoutRequest(refresh_token="rtmr_\x00")), "UNAUTHENTICATED"),
        (stub.ValidateToken(pb.ValidateTokenRequest(access_token="\x00" * 9000)),
         "UNAUTHENTICATED"),
    ):  # fmt: skip
        assert (await error_of(call)).code().name == code
    found = await stub.SearchUsers(pb.SearchUsersRequest(query="a\x00"), metadata=meta)
    assert list(found.users) == []
    me = await http.get("/v1/auth/me", headers=auth)  # still healthy after all that
    assert me.status_code == 200


async def test_bodies_of_the_wrong_shape_get_their_documented_codes(
    http: httpx.AsyncClient,
) -> None:
    deep = b'{"username":' + b"[" * 100_000 + b"]" * 100_000 + b',"password":"x"}'
    huge = b'{"username":"' + b"a" * 2_000_000 + b'","password":"x"}'
    for content, status, code in (
        (deep, 400, "invalid_message"),
        (huge, 422, "validation_failed"),
        (b"", 422, "validation_failed"),
        (b"[]", 400, "invalid_message"),
        (b'"text"', 400, "invalid_message"),
        (b"{nope", 400, "invalid_json"),
        (b'{"username":5,"password":"x"}', 422, "validation_failed"),
        (b'{"username":"a","password":null}', 422, "validation_failed"),
        (b'{"username":"a","password":"b","admin":true}', 422, "validation_failed"),
    ):
        response = await http.post(
            "/v1/auth/login", content=content, headers={"Content-Type": "application/json"}
        )
        assert (response.status_code, error(response)["code"]) == (status, code), content[:40]
    unknown = await http.post("/v1/auth/register", json={"username": "a", "password": "b", "x": 1})
    assert error(unknown)["field"] == "x"


async def test_an_oversized_grpc_request_is_resource_exhausted(stub: Stub) -> None:
    request = pb.LoginRequest(username="alice", password="x" * 100_000)
    assert (await error_of(stub.Login(request))).code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_token_living_longer_than_the_access_ttl_is_refused(
    http: httpx.AsyncClient, stub: Stub, runtime: Auth
) -> None:
    """Signed with auth's real key, for a live session: only its lifetime is wrong."""
    grant = await signed_up(http)
    claims = jwt.decode(grant["access_token"], options={"verify_signature": False})
    key = runtime.keys.signing_key()
    now = int(time.time())
    forged = jwt.encode(
        {**claims, "iat": now, "exp": now + 10 * 365 * 24 * 3600},
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    assert (await http.get("/v1/auth/me", headers=bearer(grant["access_token"]))).status_code == 200
    refused = await http.get("/v1/auth/me", headers=bearer(forged))
    assert (refused.status_code, error(refused)["code"]) == (401, "unauthorized")
    validated = await error_of(stub.ValidateToken(pb.ValidateTokenRequest(access_token=forged)))
    assert validated.code() is grpc.StatusCode.UNAUTHENTICATED


def client_from(runtime: Auth, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=runtime.http_app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://auth.test")


async def test_an_attacker_cannot_lock_the_owner_out(runtime: Auth, clock: FakeClock) -> None:
    """50 failures from one address: that address is refused (429), while the owner, from
    another address, still logs in, held by at most the account's slowdown cap (3 s)."""
    async with (
        client_from(runtime, "192.0.2.66") as attacker,
        client_from(runtime, "198.51.100.5") as owner,
    ):
        await signed_up(owner, "victim")
        statuses = []
        for _ in range(50):
            response = await attacker.post(
                "/v1/auth/login", json={"username": "victim", "password": "guess-guess"}
            )
            statuses.append(response.status_code)
        assert statuses[:5] == [401] * 5
        assert 429 in statuses
        refused = await attacker.post(
            "/v1/auth/login", json={"username": "victim", "password": PASSWORD}
        )
        assert refused.status_code == 429  # even the right password, from that address
        assert int(refused.headers["Retry-After"]) >= 1
        clock.slept.clear()
        login = await owner.post(
            "/v1/auth/login", json={"username": "victim", "password": PASSWORD}
        )
        assert login.status_code == 200
        assert clock.slept
        assert max(clock.slept) <= 3.0


@pytest.fixture
async def strict_runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Auth]:
    """The runtime with the default registration limit scaled down: 3 at once, then 6/min."""
    settings = make_settings(db_url, register_burst=3, register_per_minute=6)
    started = build(settings, clock=clock, sleep=clock.sleep)
    await started.start(serve_http=False)
    await started.wait_ready()
    yield started
    await started.stop()


async def test_registration_is_limited_per_address(strict_runtime: Auth, clock: FakeClock) -> None:
    async with (
        client_from(strict_runtime, CLIENT_ADDRESS) as http,
        client_from(strict_runtime, "198.51.100.7") as elsewhere,
    ):
        for n in range(3):
            body = {"username": f"user{n}", "password": PASSWORD}
            assert (await http.post("/v1/auth/register", json=body)).status_code == 201
        refused = await http.post(
            "/v1/auth/register", json={"username": "user3", "password": PASSWORD}
        )
        assert (refused.status_code, error(refused)["code"]) == (429, "rate_limited")
        assert (error(refused)["retry_after_ms"], refused.headers["Retry-After"]) == (10_000, "10")
        other = await elsewhere.post(
            "/v1/auth/register", json={"username": "user4", "password": PASSWORD}
        )
        assert other.status_code == 201
        clock.advance(seconds=10)
        again = await http.post(
            "/v1/auth/register", json={"username": "user3", "password": PASSWORD}
        )
        assert again.status_code == 201
    async with grpc.aio.insecure_channel(f"127.0.0.1:{strict_runtime.grpc_port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        for n in range(3):
            await stub.Register(pb.RegisterRequest(username=f"grpc{n}", password=PASSWORD))
        throttled = await error_of(
            stub.Register(pb.RegisterRequest(username="grpc3", password=PASSWORD))
        )
        assert throttled.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_malformed_grpc_bytes_are_invalid_argument(
    http: httpx.AsyncClient, runtime: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are not a LoginRequest (invalid UTF-8 in a `string` field; not protobuf at all)
    are refused before our code runs: INVALID_ARGUMENT naming the message, no ERROR traceback."""
    await signed_up(http)
    bad_utf8 = b"\x0a\x02\xff\xfe"  # field 1 (username), wire type 2, length 2, not UTF-8
    caplog.set_level(logging.DEBUG)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}") as channel:
        raw = channel.unary_unary(
            "/rtm.auth.v1.AuthService/Login", request_serializer=None, response_deserializer=None
        )
        for payload in (bad_utf8, b"\xff\xff\xff"):
            refused = await error_of(raw(payload))
            assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT, refused
            assert "not a valid rtm.auth.v1.LoginRequest" in (refused.details() or "")
        login = auth_pb2_grpc.AuthServiceStub(channel).Login(
            pb.LoginRequest(username="alice", password=PASSWORD)
        )
        assert (await login).access_token
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
