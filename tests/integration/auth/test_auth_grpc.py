"""Every AuthService RPC over a real gRPC server and PostgreSQL: success and error paths."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from rtm.auth.bootstrap import Auth
from rtm.auth.proto import auth_pb2 as pb
from tests.integration.auth.conftest import Stub, sql


async def error_of(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def login(stub: Stub, name: str = "alice", password: str = "password-1") -> pb.TokenGrant:
    await stub.Register(pb.RegisterRequest(username=name, password=password))
    return await stub.Login(pb.LoginRequest(username=name, password=password))


async def test_register_creates_a_normalised_user(stub: Stub) -> None:
    reply = await stub.Register(
        pb.RegisterRequest(username="Alice", password="password-1", display_name="Alice A.")
    )
    assert (reply.user.username, reply.user.display_name) == ("alice", "Alice A.")
    assert uuid.UUID(reply.user.id).version == 7
    assert reply.user.created_at.seconds > 0


async def test_register_refuses_taken_and_invalid_names(stub: Stub) -> None:
    await stub.Register(pb.RegisterRequest(username="alice", password="password-1"))
    taken = await error_of(
        stub.Register(pb.RegisterRequest(username="ALICE", password="pw-123456"))
    )
    assert taken.code() is grpc.StatusCode.ALREADY_EXISTS
    for request in (pb.RegisterRequest(username="a", password="password-1"),
                    pb.RegisterRequest(username="bob", password="short"),
                    pb.RegisterRequest(username="bob", password="x" * 1025)):  # fmt: skip
        assert (await error_of(stub.Register(request))).code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_login_grants_tokens_and_refuses_bad_credentials(stub: Stub) -> None:
    grant = await login(stub)
    assert grant.token_type == "Bearer"
    assert grant.expires_in == 900
    assert grant.refresh_token.startswith("rtmr_")
    assert grant.user.username == "alice"
    wrong = await error_of(stub.Login(pb.LoginRequest(username="alice", password="password-2")))
    unknown = await error_of(stub.Login(pb.LoginRequest(username="nobody", password="password-2")))
    assert wrong.code() is unknown.code() is grpc.StatusCode.UNAUTHENTICATED
    assert wrong.details() == unknown.details()
    huge = await error_of(stub.Login(pb.LoginRequest(username="alice", password="x" * 2000)))
    assert huge.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_refresh_rotates_and_refuses_unknown_tokens(stub: Stub) -> None:
    grant = await login(stub)
    fresh = await stub.Refresh(pb.RefreshRequest(refresh_token=grant.refresh_token))
    assert fresh.session_id == grant.session_id
    assert fresh.refresh_token != grant.refresh_token
    bad = await error_of(stub.Refresh(pb.RefreshRequest(refresh_token="rtmr_unknown")))
    assert bad.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_logout_with_a_refresh_token_or_bearer(stub: Stub) -> None:
    one = await login(stub)
    two = await stub.Login(pb.LoginRequest(username="alice", password="password-1"))
    await stub.Logout(pb.LogoutRequest(refresh_token=one.refresh_token))
    await stub.Logout(pb.LogoutRequest(), metadata=bearer(two.access_token))
    for grant in (one, two):
        denied = await error_of(
            stub.ValidateToken(pb.ValidateTokenRequest(access_token=grant.access_token))
        )
        assert denied.code() is grpc.StatusCode.UNAUTHENTICATED
    nothing = await error_of(stub.Logout(pb.LogoutRequest()))
    assert nothing.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_validate_token_returns_its_user_and_session(stub: Stub) -> None:
    grant = await login(stub)
    reply = await stub.ValidateToken(pb.ValidateTokenRequest(access_token=grant.access_token))
    assert (reply.user_id, reply.session_id) == (grant.user.id, grant.session_id)
    assert reply.expires_at.seconds > 0


async def test_get_user_by_id_or_self_and_not_found(stub: Stub) -> None:
    grant = await login(stub)
    bob = (await stub.Register(pb.RegisterRequest(username="bob", password="password-1"))).user
    auth = bearer(grant.access_token)
    assert (await stub.GetUser(pb.GetUserRequest(user_id=bob.id), metadata=auth)).user == bob
    assert (await stub.GetUser(pb.GetUserRequest(), metadata=auth)).user.username == "alice"
    missing = await error_of(
        stub.GetUser(pb.GetUserRequest(user_id=str(uuid.uuid4())), metadata=auth)
    )
    assert missing.code() is grpc.StatusCode.NOT_FOUND
    garbled = await error_of(stub.GetUser(pb.GetUserRequest(user_id="nope"), metadata=auth))
    assert garbled.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_search_users_by_prefix(stub: Stub) -> None:
    grant = await login(stub)
    for name in ("alicia", "al_x", "alxx", "bob"):
        await stub.Register(pb.RegisterRequest(username=name, password="password-1"))
    auth = bearer(grant.access_token)
    found = await stub.SearchUsers(pb.SearchUsersRequest(query="ALI"), metadata=auth)
    assert [u.username for u in found.users] == ["alice", "alicia"]
    underscore = await stub.SearchUsers(pb.SearchUsersRequest(query="al_"), metadata=auth)
    assert [u.username for u in underscore.users] == ["al_x"]  # `_` is literal, not a wildcard
    limited = await stub.SearchUsers(pb.SearchUsersRequest(query="a", limit=2), metadata=auth)
    assert len(limited.users) == 2
    empty = await error_of(stub.SearchUsers(pb.SearchUsersRequest(query=""), metadata=auth))
    assert empty.code() is grpc.StatusCode.INVALID_ARGUMENT
    too_many = await error_of(
        stub.SearchUsers(pb.SearchUsersRequest(query="a", limit=500), metadata=auth)
    )
    assert too_many.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_sessions_are_listed_and_revoked(stub: Stub) -> None:
    first = await login(stub)
    second = await stub.Login(pb.LoginRequest(username="alice", password="password-1"))
    bob = await login(stub, "bob")
    auth = bearer(second.access_token)
    listed = await stub.ListSessions(pb.ListSessionsRequest(), metadata=auth)
    assert {(s.id, s.current) for s in listed.sessions} == {
        (first.session_id, False),
        (second.session_id, True),
    }
    assert all(s.ip == "127.0.0.1" for s in listed.sessions)
    await stub.RevokeSession(pb.RevokeSessionRequest(session_id=first.session_id), metadata=auth)
    listed = await stub.ListSessions(pb.ListSessionsRequest(), metadata=auth)
    assert [s.id for s in listed.sessions] == [second.session_id]
    others = await error_of(
        stub.RevokeSession(pb.RevokeSessionRequest(session_id=bob.session_id), metadata=auth)
    )
    assert others.code() is grpc.StatusCode.NOT_FOUND
    garbled = await error_of(
        stub.RevokeSession(pb.RevokeSessionRequest(session_id="x"), metadata=auth)
    )
    assert garbled.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_jwks_lists_the_signing_key(stub: Stub, runtime: Auth) -> None:
    reply = await stub.GetJwks(pb.GetJwksRequest())
    assert [k.kid for k in reply.keys] == [runtime.keys.signing_key().kid]
    assert (reply.keys[0].kty, reply.keys[0].crv, reply.keys[0].alg) == ("OKP", "Ed25519", "EdDSA")


async def test_health_serves_and_reflection_lists_the_services(runtime: Auth) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "rtm.auth.v1.AuthService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = [r async for r in reflection.ServerReflectionInfo(iter([request]))]
        names = {s.name for s in replies[0].list_services_response.service}
        assert {"rtm.auth.v1.AuthService", "grpc.health.v1.Health"} <= names


async def test_oversized_requests_are_resource_exhausted(stub: Stub) -> None:
    huge = pb.RegisterRequest(username="alice", password="x" * 100_000)
    assert (await error_of(stub.Register(huge))).code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_an_unexpected_failure_is_internal_with_a_correlation_id(
    stub: Stub, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await sql(db_url, "ALTER TABLE auth.users RENAME TO users_gone")
    try:
        failure = await error_of(
            stub.Register(pb.RegisterRequest(username="alice", password="password-1"))
        )
    finally:
        await sql(db_url, "ALTER TABLE auth.users_gone RENAME TO users")
    assert failure.code() is grpc.StatusCode.INTERNAL
    details = failure.details() or ""
    assert "correlation id" in details
    correlation = details.rsplit(" ", 1)[-1]
    assert any(getattr(r, "cid", None) == correlation for r in caplog.records)
