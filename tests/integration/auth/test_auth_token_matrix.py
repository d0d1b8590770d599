"""Token matrix: every authenticated gRPC method and HTTP route refuses every bad token.

Bad tokens: none, malformed, expired, not yet valid, `alg: none`, HS256 keyed with the public
key, wrong `aud`, wrong `iss`, a refresh token used as an access token, the token of a revoked
session, the token of a deleted user. All must get UNAUTHENTICATED / 401, zero accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from rtm.auth.bootstrap import Auth
from rtm.auth.proto import auth_pb2 as pb
from tests.integration.auth.conftest import Stub, sql

KINDS = [
    "none", "malformed", "expired", "not_yet_valid", "alg_none", "hs256_public_key",
    "wrong_aud", "wrong_iss", "refresh_as_access", "revoked_session", "deleted_user",
]  # fmt: skip


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())


async def bad_token(kind: str, runtime: Auth, stub: Stub, db_url: str) -> str:
    """A token of `kind`, for a real user and session wherever a claim needs one."""
    password = "password-1"
    await stub.Register(pb.RegisterRequest(username="victim", password=password))
    grant = await stub.Login(pb.LoginRequest(username="victim", password=password))
    key = runtime.keys.signing_key()
    now = int(time.time())
    claims = {"iss": "rtm-auth", "aud": "rtm", "sub": grant.user.id, "sid": grant.session_id,
              "iat": now, "exp": now + 900}  # fmt: skip
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid}

    def signed(**changes: Any) -> str:
        return jwt.encode({**claims, **changes}, key.private_key, algorithm="EdDSA",
                          headers={"kid": key.kid, "typ": "at+jwt"})  # fmt: skip

    if kind == "none":
        return ""
    if kind == "malformed":
        return "not.a.jwt"
    if kind == "expired":
        return signed(iat=now - 2000, exp=now - 1000)
    if kind == "not_yet_valid":
        return signed(iat=now + 600, exp=now + 1500)
    if kind == "alg_none":
        return unsigned({**header, "alg": "none"}, claims) + "."
    if kind == "hs256_public_key":
        pem = key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        body = unsigned({**header, "alg": "HS256"}, claims)
        return body + "." + b64(hmac.new(pem, body.encode(), hashlib.sha256).digest())
    if kind == "wrong_aud":
        return signed(aud="someone-else")
    if kind == "wrong_iss":
        return signed(iss="https://evil.example")
    if kind == "refresh_as_access":
        return grant.refresh_token
    if kind == "revoked_session":
        await stub.Logout(pb.LogoutRequest(refresh_token=grant.refresh_token))
        return grant.access_token
    if kind == "deleted_user":
        await sql(db_url, "UPDATE auth.users SET deleted_at = now() WHERE id = $1",
                  uuid.UUID(grant.user.id))  # fmt: skip
        return grant.access_token
    raise AssertionError(kind)


GrpcCall = Callable[[Stub, str], Awaitable[Any]]


def _meta(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


GRPC_CALLS: dict[str, GrpcCall] = {
    "Logout": lambda s, t: s.Logout(pb.LogoutRequest(), metadata=_meta(t)),
    "ValidateToken": lambda s, t: s.ValidateToken(pb.ValidateTokenRequest(access_token=t)),
    "GetUser": lambda s, t: s.GetUser(pb.GetUserRequest(), metadata=_meta(t)),
    "SearchUsers": lambda s, t: s.SearchUsers(pb.SearchUsersRequest(query="v"), metadata=_meta(t)),
    "ListSessions": lambda s, t: s.ListSessions(pb.ListSessionsRequest(), metadata=_meta(t)),
    "RevokeSession": lambda s, t: s.RevokeSession(
        pb.RevokeSessionRequest(session_id=str(uuid.uuid4())), metadata=_meta(t)
    ),
}
HTTP_ROUTES = [
    ("POST", "/v1/auth/logout"),
    ("GET", "/v1/auth/me"),
    ("GET", "/v1/auth/sessions"),
    ("DELETE", f"/v1/auth/sessions/{uuid.uuid4()}"),
    ("GET", "/v1/users?q=v"),
    ("GET", f"/v1/users/{uuid.uuid4()}"),
    ("DELETE", "/v1/auth/me"),  # an accepted bad token would delete the victim's account
]


@pytest.mark.parametrize("kind", KINDS)
async def test_every_bad_token_is_refused_everywhere(
    kind: str,
    runtime: Auth,
    stub: Stub,
    http: httpx.AsyncClient,
    db_url: str,
) -> None:
    token = await bad_token(kind, runtime, stub, db_url)
    accepted: list[tuple[str, object]] = []
    for name, call in GRPC_CALLS.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(stub, token)
        if caught.value.code() is not grpc.StatusCode.UNAUTHENTICATED:
            accepted.append((name, caught.value.code()))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for method, path in HTTP_ROUTES:
        response = await http.request(method, path, headers=headers)
        if response.status_code != 401 or response.json()["error"]["code"] != "unauthorized":
            accepted.append((f"{method} {path}", response.status_code))
    assert accepted == []


async def test_the_matrix_would_notice_an_accepted_token(
    runtime: Auth, stub: Stub, http: httpx.AsyncClient
) -> None:
    """Control: a good token passes every one of those checks (so the matrix can fail)."""
    await stub.Register(pb.RegisterRequest(username="victim", password="password-1"))
    grant = await stub.Login(pb.LoginRequest(username="victim", password="password-1"))
    for name, call in GRPC_CALLS.items():
        if name not in ("Logout", "RevokeSession"):
            await call(stub, grant.access_token)
    for method, path in HTTP_ROUTES:
        if method == "GET" and "/v1/users/" not in path:
            response = await http.request(
                method, path, headers={"Authorization": f"Bearer {grant.access_token}"}
            )
            assert response.status_code == 200
