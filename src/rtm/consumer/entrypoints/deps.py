"""FastAPI dependencies of the consumer's HTTP API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rtm.consumer.services import ReadService
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.tokens import AccessClaims, TokenError, TokenVerifier
from rtm.shared.ws import bearer_token


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


async def _claims(
    request: Request, verifier: Annotated[TokenVerifier, Depends(_verifier)]
) -> AccessClaims:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise TokenError("missing bearer token")
    claims = await verifier.verify(token)
    if request.app.state.revoked.is_revoked(claims.session_id):
        raise TokenError("session revoked")
    return claims


Claims = Annotated[AccessClaims, Depends(_claims)]
Reads = Annotated[ReadService, Depends(_reads)]
