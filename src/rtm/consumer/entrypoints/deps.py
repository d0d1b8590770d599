"""FastAPI dependencies of the consumer's HTTP API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rtm.consumer.services import ReadService
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.tokens import AccessClaims, TokenError, TokenVerifier


def _verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier


def _reads(request: Request) -> ReadService:
    reads: ReadService | None = request.app.state.reads
    if reads is None:
        raise RtmError(
            ErrorCode.UNAVAILABLE,
            "starting: the database is not reachable yet",
            retry_after_ms=1000,
        )
    return reads


# Documents the bearer scheme in the OpenAPI document; a missing or malformed header is our
# own 401 `unauthorized` (below), not FastAPI's 403.
_bearer = HTTPBearer(
    auto_error=False, description="an access token from auth (`POST /v1/auth/login`)"
)


async def _claims(
    request: Request,
    verifier: Annotated[TokenVerifier, Depends(_verifier)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> AccessClaims:
    if credentials is None:
        raise TokenError("missing bearer token")
    claims = await verifier.verify(credentials.credentials)
    if request.app.state.revoked.is_revoked(claims.session_id):
        raise TokenError("session revoked")
    return claims


Claims = Annotated[AccessClaims, Depends(_claims)]
Reads = Annotated[ReadService, Depends(_reads)]
