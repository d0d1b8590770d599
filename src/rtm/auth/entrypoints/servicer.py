"""gRPC entrypoint: `rtm.auth.v1.AuthService` over auth's services (`AuthContext`).

Each RPC converts its request to a service call and the result to its response, counting
outcomes (`rtm.auth.entrypoints.metrics`) as the HTTP routes do; errors are translated once, in
`_translated`: an `RtmError` becomes its status code (docs/protocol.md, "3. Authentication"),
anything else is logged with the call's correlation id and answered INTERNAL, never UNKNOWN.
Authenticated RPCs read `authorization: Bearer <token>` from the call metadata.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from rtm.auth.domain.exceptions import InvalidInput
from rtm.auth.domain.model import ClientInfo, Grant, RevokeReason, User
from rtm.auth.entrypoints.deps import AuthContext
from rtm.auth.entrypoints.metrics import (
    count_revocation,
    observe_login,
    observe_refresh,
    observe_registration,
)
from rtm.auth.proto import auth_pb2 as pb
from rtm.auth.proto import auth_pb2_grpc as pb_grpc
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.ids import new_id
from rtm.shared.logging import context_field

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Method = Callable[[Any, Req, Context], Awaitable[Resp]]

STATUS: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_JSON: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.INVALID_MESSAGE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.UNKNOWN_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.VALIDATION_FAILED: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.TOO_MANY_IN_FLIGHT: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}


def _translated(method: Method[Req, Resp]) -> Method[Req, Resp]:
    """The one place where errors become gRPC status codes."""

    @functools.wraps(method)
    async def handler(self: Any, request: Req, context: Context) -> Resp:
        try:
            return await method(self, request, context)
        except RtmError as exc:
            metadata: tuple[tuple[str, str], ...] = ()
            if exc.retry_after_ms is not None:
                metadata = (("retry-after-ms", str(exc.retry_after_ms)),)
            await context.abort(STATUS[exc.code], exc.message, metadata)
        except Exception:  # last resort: log it, answer INTERNAL rather than UNKNOWN
            correlation = context_field("cid") or str(new_id())
            logger.exception("unhandled error in %s", method.__name__, extra={"cid": correlation})
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal error; correlation id {correlation}"
            )
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    return handler


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _user(user: User) -> pb.User:
    return pb.User(
        id=str(user.id),
        username=user.username,
        display_name=user.display_name,
        created_at=_timestamp(user.created_at),
    )


def _grant(grant: Grant) -> pb.TokenGrant:
    return pb.TokenGrant(
        access_token=grant.access_token,
        refresh_token=grant.refresh_token,
        token_type="Bearer",  # noqa: S106 - a scheme name, not a secret
        expires_in=grant.expires_in,
        session_id=str(grant.session_id),
        user=_user(grant.user),
    )


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidInput(field, "must be a UUID") from exc


def bearer_token(context: Context) -> str | None:
    """The token of an `authorization: Bearer <token>` metadata entry, if any."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def client_info(context: Context) -> ClientInfo:
    """Peer address (`ipv4:1.2.3.4:5678`, `ipv6:[::1]:5678`) and user agent."""
    peer = context.peer() or ""
    address: str | None = None
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        address = rest.rpartition(":")[0]
    elif kind == "ipv6":
        address = rest.rpartition(":")[0].strip("[]")
    agent = next(
        (str(v) for k, v in context.invocation_metadata() or () if k == "user-agent"), None
    )
    return ClientInfo(address=address, user_agent=agent)


class AuthServicer(pb_grpc.AuthServiceServicer):
    """`rtm.auth.v1.AuthService` on auth's services."""

    def __init__(self, context: AuthContext) -> None:
        self._accounts = context.accounts
        self._logins = context.logins
        self._sessions = context.sessions
        self._authenticator = context.authenticator

    @_translated
    async def Register(self, request: pb.RegisterRequest, context: Context) -> pb.RegisterResponse:  # noqa: N802
        display_name = request.display_name if request.HasField("display_name") else None
        with observe_registration():
            user = await self._accounts.register(
                request.username, request.password, display_name, client_info(context)
            )
        return pb.RegisterResponse(user=_user(user))

    @_translated
    async def Login(self, request: pb.LoginRequest, context: Context) -> pb.TokenGrant:  # noqa: N802
        with observe_login():
            grant = await self._logins.login(
                request.username, request.password, client_info(context)
            )
        return _grant(grant)

    @_translated
    async def Refresh(self, request: pb.RefreshRequest, context: Context) -> pb.TokenGrant:  # noqa: N802
        with observe_refresh():
            grant = await self._sessions.refresh(request.refresh_token, client_info(context))
        return _grant(grant)

    @_translated
    async def Logout(self, request: pb.LogoutRequest, context: Context) -> pb.LogoutResponse:  # noqa: N802
        ended = await self._sessions.logout(
            refresh_token=request.refresh_token or None, access_token=bearer_token(context)
        )
        count_revocation(RevokeReason.LOGOUT, ended)
        return pb.LogoutResponse()

    @_translated
    async def ValidateToken(  # noqa: N802 - gRPC names
        self, request: pb.ValidateTokenRequest, context: Context
    ) -> pb.ValidateTokenResponse:
        claims = await self._authenticator.authenticate(request.access_token)
        return pb.ValidateTokenResponse(
            user_id=str(claims.user_id),
            session_id=str(claims.session_id),
            expires_at=_timestamp(claims.expires_at),
        )

    @_translated
    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.GetUserResponse:  # noqa: N802
        caller = await self._authenticator.authenticate(bearer_token(context))
        user_id = _uuid(request.user_id, "user_id") if request.user_id else None
        return pb.GetUserResponse(user=_user(await self._accounts.get_user(caller, user_id)))

    @_translated
    async def SearchUsers(  # noqa: N802 - gRPC names
        self, request: pb.SearchUsersRequest, context: Context
    ) -> pb.SearchUsersResponse:
        caller = await self._authenticator.authenticate(bearer_token(context))
        users = await self._accounts.search_users(caller, request.query, request.limit or None)
        return pb.SearchUsersResponse(users=[_user(user) for user in users])

    @_translated
    async def ListSessions(  # noqa: N802 - gRPC names
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        caller = await self._authenticator.authenticate(bearer_token(context))
        views = await self._sessions.list_sessions(caller)
        return pb.ListSessionsResponse(
            sessions=[
                pb.Session(
                    id=str(view.session.id),
                    created_at=_timestamp(view.session.created_at),
                    last_used_at=_timestamp(view.session.last_used_at),
                    expires_at=_timestamp(view.session.expires_at),
                    user_agent=view.session.user_agent or "",
                    ip=view.session.ip or "",
                    current=view.current,
                )
                for view in views
            ]
        )

    @_translated
    async def RevokeSession(  # noqa: N802 - gRPC names
        self, request: pb.RevokeSessionRequest, context: Context
    ) -> pb.RevokeSessionResponse:
        caller = await self._authenticator.authenticate(bearer_token(context))
        ended = await self._sessions.revoke_session(caller, _uuid(request.session_id, "session_id"))
        count_revocation(RevokeReason.REVOKED, ended)
        return pb.RevokeSessionResponse()

    @_translated
    async def GetJwks(self, request: pb.GetJwksRequest, context: Context) -> pb.GetJwksResponse:  # noqa: N802
        keys = self._authenticator.jwks()["keys"]
        return pb.GetJwksResponse(keys=[pb.Jwk(**key) for key in keys])
