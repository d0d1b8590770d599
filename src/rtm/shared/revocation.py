"""Sessions auth has revoked, as producer and consumer learn them from NATS.

A revoked session's access tokens stay cryptographically valid until they expire, so services
remember revoked session ids for a little longer than one access-token lifetime and refuse them
meanwhile. `RevokedSessions` is that memory (pure, with an injected monotonic clock);
`load_revoked` fills it at start from auth's KV bucket, and the `session.revoked` events keep it
current afterwards.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Protocol

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NoKeysError

from rtm.shared.limits import Now
from rtm.shared.tokens import AccessClaims, TokenError, TokenVerifier

# Auth's access tokens live 15 minutes: a revoked session is remembered a little longer.
REVOCATION_MEMORY_S = 20 * 60
REVOKED_SESSIONS_BUCKET = "rtm_revoked_sessions"


class RevokedSessions:
    """Sessions whose tokens must be refused, each remembered for `ttl` seconds of `now` (a
    monotonic clock); after that its tokens fail on `exp` anyway, so it is forgotten."""

    def __init__(self, ttl: float, now: Now) -> None:
        self._ttl = ttl
        self._now = now
        # Insertion order is expiry order (one ttl, and a re-added session moves to the end),
        # so pruning stops at the first session still remembered.
        self._until: OrderedDict[uuid.UUID, float] = OrderedDict()

    def add(self, session_id: uuid.UUID) -> None:
        self._prune()
        self._until[session_id] = self._now() + self._ttl
        self._until.move_to_end(session_id)

    def is_revoked(self, session_id: uuid.UUID) -> bool:
        until = self._until.get(session_id)
        return until is not None and until > self._now()

    def _prune(self) -> None:
        moment = self._now()
        while self._until:
            session_id, until = next(iter(self._until.items()))
            if until > moment:
                break
            del self._until[session_id]

    def __len__(self) -> int:
        self._prune()
        return len(self._until)


class RevocationSink(Protocol):
    def add(self, session_id: uuid.UUID) -> None: ...


async def load_revoked(
    js: JetStreamContext, revoked: RevocationSink, bucket: str = REVOKED_SESSIONS_BUCKET
) -> int:
    """Learn revocations made before we started (auth keeps them in a KV bucket for one
    access-token lifetime); returns how many. A missing bucket means none yet."""
    try:
        kv = await js.key_value(bucket)
        keys = await kv.keys()
    except (BucketNotFoundError, NoKeysError):
        return 0
    count = 0
    for key in keys:
        try:
            revoked.add(uuid.UUID(key))
        except ValueError:
            continue
        count += 1
    return count


async def verify_unrevoked(
    verifier: TokenVerifier, revoked: RevokedSessions, token: str
) -> AccessClaims:
    """Verify an access token and refuse those of revoked sessions: a revoked session's tokens
    stay cryptographically valid until they expire, so the signature alone is not enough."""
    claims = await verifier.verify(token)
    if revoked.is_revoked(claims.session_id):
        raise TokenError("session revoked")
    return claims
