"""What the entrypoints need, and the FastAPI dependencies that hand it out.

`ProducerContext` is built once by `rtm.producer.bootstrap` and stored on `app.state.producer`;
routes receive it (and the caller's verified token claims) through the `Annotated` aliases here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import HTTPConnection

from rtm.producer.entrypoints.connections import ConnectionRegistry
from rtm.producer.services import ConversationService, MessageService, TypingAndReadService
from rtm.producer.settings import ProducerSettings
from rtm.shared.expiry import TokenExpiry
from rtm.shared.http import bearer_scheme
from rtm.shared.limits import KeyedBuckets
from rtm.shared.revocation import RevokedSessions, verify_unrevoked
from rtm.shared.tokens import AccessClaims, TokenError, TokenVerifier


@dataclass
class ProducerContext:
    """The services and per-process state the HTTP and WebSocket entrypoints drive."""

    settings: ProducerSettings
    messages: MessageService
    conversations: ConversationService
    typing_and_reads: TypingAndReadService
    verifier: TokenVerifier
    connections: ConnectionRegistry
    revoked: RevokedSessions
    http_sends: KeyedBuckets[uuid.UUID]
    conversation_commands: KeyedBuckets[uuid.UUID]  # creating conversations, adding members
    monotonic: Callable[[], float]
    # Closes every socket 4505 when its token expires, from one timer.
    expiry: TokenExpiry = field(default_factory=TokenExpiry)

    async def verify(self, token: str) -> AccessClaims:
        """Verify an access token and refuse those of revoked sessions."""
        return await verify_unrevoked(self.verifier, self.revoked, token)


def get_context(connection: HTTPConnection) -> ProducerContext:
    context: ProducerContext = connection.app.state.producer
    return context


Context = Annotated[ProducerContext, Depends(get_context)]

_bearer = bearer_scheme("an access token from auth (`POST /v1/auth/login`)")


async def current_user(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims:
    """The caller, from `Authorization: Bearer <access token>` (401 `unauthorized` otherwise)."""
    if credentials is None or not credentials.credentials:
        raise TokenError("missing bearer token")
    return await context.verify(credentials.credentials)


CurrentUser = Annotated[AccessClaims, Depends(current_user)]
