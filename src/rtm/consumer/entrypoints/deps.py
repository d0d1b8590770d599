"""What the entrypoints need, and the FastAPI dependencies that hand it out.

`ConsumerContext` is built once by `rtm.consumer.bootstrap` and stored on `app.state.consumer`;
routes and sockets receive it (and the caller's verified token claims) through the `Annotated`
aliases here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import HTTPConnection

from rtm.consumer.entrypoints.ephemeral_events import EphemeralEvents
from rtm.consumer.entrypoints.hub import Hub
from rtm.consumer.services import ReadService
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.backoff import ExponentialBackoff
from rtm.shared.expiry import TokenExpiry
from rtm.shared.http import bearer_scheme
from rtm.shared.revocation import RevokedSessions, verify_unrevoked
from rtm.shared.tokens import AccessClaims, TokenError, TokenVerifier


@dataclass
class ConsumerContext:
    """The services and per-process state the HTTP, WebSocket and NATS entrypoints drive.

    `reads` exists from composition: sockets are served before PostgreSQL answers, and until it
    does every read is `Unavailable`, as in any outage. `events` exists once NATS is connected
    (until then a new socket is sent no list of online contacts).
    """

    settings: ConsumerSettings
    hub: Hub
    reads: ReadService
    verifier: TokenVerifier
    revoked: RevokedSessions
    monotonic: Callable[[], float]  # the clock of the inbound rate limits
    backoff: ExponentialBackoff  # how a read PostgreSQL could not answer is tried again
    events: EphemeralEvents | None = None
    # Closes every socket 4505 when its token expires, from one timer.
    expiry: TokenExpiry = field(default_factory=TokenExpiry)

    async def verify(self, token: str) -> AccessClaims:
        """Verify an access token and refuse those of revoked sessions."""
        return await verify_unrevoked(self.verifier, self.revoked, token)


def get_context(connection: HTTPConnection) -> ConsumerContext:
    context: ConsumerContext = connection.app.state.consumer
    return context


Context = Annotated[ConsumerContext, Depends(get_context)]

_bearer = bearer_scheme("an access token from auth (`POST /v1/auth/login`)")


async def _claims(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> AccessClaims:
    if credentials is None:
        raise TokenError("missing bearer token")
    return await context.verify(credentials.credentials)


def _reads(context: Context) -> ReadService:
    return context.reads


Claims = Annotated[AccessClaims, Depends(_claims)]
Reads = Annotated[ReadService, Depends(_reads)]
