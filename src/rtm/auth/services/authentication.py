"""Checking access tokens: the verification both entrypoints run before an authenticated call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import jwt

from rtm.auth.domain.exceptions import Unavailable
from rtm.auth.domain.policy import AuthPolicy
from rtm.auth.domain.ports import AuthStore
from rtm.auth.domain.tokens import canonical_signature
from rtm.auth.services.keyring import KeyRing
from rtm.shared.tokens import AccessClaims, TokenError, TokenExpired, decode_access_token

MAX_TOKEN_CHARS = 8192


class Authenticator:
    """Verifies access tokens against this process's keys and the session's state, and publishes
    the keys that let others verify them.

    Args:
        store: whether a session is still live.
        keys: the public keys, by `kid` (in memory: no query per token).
        policy: issuer, lifetime and leeway.
        clock: the current time (tests move it).
    """

    def __init__(
        self,
        store: AuthStore,
        keys: KeyRing,
        policy: AuthPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._keys = keys
        self._policy = policy
        self._clock = clock

    async def authenticate(self, access_token: str | None) -> AccessClaims:
        """A valid access token of a live session of a live user, or `TokenError`."""
        if not access_token or len(access_token) > MAX_TOKEN_CHARS:
            raise TokenError("missing or oversized token")
        if not canonical_signature(access_token):
            raise TokenError()
        try:
            kid = jwt.get_unverified_header(access_token).get("kid")
        except jwt.PyJWTError as exc:
            raise TokenError() from exc
        public_key = self._keys.public_key(kid) if isinstance(kid, str) else None
        if public_key is None:
            raise TokenError("unknown signing key")
        claims = decode_access_token(
            access_token,
            public_key,
            issuer=self._policy.issuer,
            leeway=self._policy.leeway.total_seconds(),
            max_lifetime=self._policy.access_ttl.total_seconds(),
        )
        if claims.expires_at + self._policy.leeway <= self._clock():
            raise TokenExpired()  # by our clock too (the one that signed it)
        live = await self._store.session_is_live(
            claims.session_id, claims.user_id, now=self._clock()
        )
        if not live:
            raise TokenError("session ended")
        return claims

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Unavailable (not an empty set) before the keys are loaded: a verifier caching an
        empty JWKS would refuse every token until its next refresh."""
        if not self._keys.loaded:
            raise Unavailable("signing keys not loaded yet")
        return self._keys.jwks()
