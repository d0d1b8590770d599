"""What the entrypoints need, and the FastAPI dependencies that hand it out.

`AuthContext` is built once by `rtm.auth.bootstrap`; the HTTP app keeps it on
`app.state.auth` and the gRPC servicer is constructed with it. Routes receive it (and the
caller's verified claims) through the `Annotated` aliases here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from rtm.auth.domain.model import ClientInfo
from rtm.auth.services import AccountService, Authenticator, LoginService, SessionService
from rtm.shared.http import bearer_scheme
from rtm.shared.tokens import AccessClaims


@dataclass(frozen=True, slots=True)
class AuthContext:
    """The services the gRPC servicer and the HTTP routes drive."""

    accounts: AccountService
    logins: LoginService
    sessions: SessionService
    authenticator: Authenticator


def get_context(request: Request) -> AuthContext:
    context: AuthContext = request.app.state.auth
    return context


def client_of(request: Request) -> ClientInfo:
    """The peer address (after trusted proxies) and user agent of an HTTP request."""
    return ClientInfo(
        address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


_bearer_scheme = bearer_scheme("an access token from /v1/auth/login")

Context = Annotated[AuthContext, Depends(get_context)]
Client = Annotated[ClientInfo, Depends(client_of)]
BearerHeader = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]


async def current_caller(context: Context, credentials: BearerHeader) -> AccessClaims:
    """The caller, from `Authorization: Bearer <access token>` (401 `unauthorized` otherwise)."""
    return await context.authenticator.authenticate(
        credentials.credentials if credentials else None
    )


Caller = Annotated[AccessClaims, Depends(current_caller)]
