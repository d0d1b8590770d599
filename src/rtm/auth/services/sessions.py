"""A user's sessions after login: refreshing, listing and ending them.

Ending a session is committed in PostgreSQL, then announced through the `RevocationNotifier`
(producer and consumer close its sockets). Methods that end sessions say whether *this* call
ended one, so that the entrypoints count each revocation once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from rtm.auth.domain.exceptions import InvalidRefreshToken, NotFound, RefreshTokenReused
from rtm.auth.domain.model import ClientInfo, Grant, RevokeReason, RotateOutcome, SessionView
from rtm.auth.domain.policy import AuthPolicy
from rtm.auth.domain.ports import AuthStore, RevocationNotifier
from rtm.auth.domain.tokens import hash_refresh_token, new_refresh_token, plausible_refresh_token
from rtm.auth.services.authentication import Authenticator
from rtm.auth.services.grants import GrantIssuer
from rtm.shared.contract import SessionRevoked
from rtm.shared.tokens import AccessClaims

logger = logging.getLogger(__name__)


class SessionService:
    """Refresh, logout, the sessions list and revoking one session.

    Args:
        store: sessions and refresh tokens.
        authenticator: checks the bearer token of a logout without a refresh token.
        grants: signs the access token of a refreshed session.
        notifier: tells the other services a session ended.
        policy: lifetimes.
        clock: the current time (tests move it).
    """

    def __init__(
        self,
        *,
        store: AuthStore,
        authenticator: Authenticator,
        grants: GrantIssuer,
        notifier: RevocationNotifier,
        policy: AuthPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._authenticator = authenticator
        self._grants = grants
        self._notifier = notifier
        self._policy = policy
        self._clock = clock

    async def refresh(self, refresh_token: str, client: ClientInfo) -> Grant:
        """Spend a refresh token for new tokens; a spent one coming back ends its session
        (`RefreshTokenReused`)."""
        if not plausible_refresh_token(refresh_token):
            raise InvalidRefreshToken()
        signing_key = self._grants.signing_key()
        now = self._clock()
        fresh = new_refresh_token()
        rotation = await self._store.rotate_refresh_token(
            hash_refresh_token(refresh_token),
            hash_refresh_token(fresh),
            now=now,
            expires_at=now + self._policy.refresh_ttl,
            client=client,
        )
        if rotation.outcome is RotateOutcome.REUSED:
            if rotation.session is not None:
                logger.warning("refresh token reuse: session %s revoked", rotation.session.id)
                self._notify(rotation.session.id, rotation.session.user_id)
            raise RefreshTokenReused()
        if rotation.outcome is not RotateOutcome.ROTATED:
            raise InvalidRefreshToken()
        assert rotation.session is not None
        assert rotation.user is not None
        return self._grants.grant(
            signing_key,
            user=rotation.user,
            session_id=rotation.session.id,
            refresh_token=fresh,
            now=now,
        )

    async def logout(self, *, refresh_token: str | None, access_token: str | None) -> bool:
        """End the refresh token's session, else the bearer's. Ending an ended one is fine;
        returns whether this call ended it."""
        now = self._clock()
        if refresh_token:
            if not plausible_refresh_token(refresh_token):
                raise InvalidRefreshToken()
            found = await self._store.revoke_by_refresh_token(
                hash_refresh_token(refresh_token), now=now, reason=RevokeReason.LOGOUT
            )
            if found is None:
                raise InvalidRefreshToken()
            session, revoked_now = found
            if revoked_now:
                self._notify(session.id, session.user_id)
            return revoked_now
        claims = await self._authenticator.authenticate(access_token)
        revoked = await self._store.revoke_session(
            claims.session_id, claims.user_id, now=now, reason=RevokeReason.LOGOUT
        )
        if revoked:
            self._notify(claims.session_id, claims.user_id)
        return bool(revoked)

    async def list_sessions(self, caller: AccessClaims) -> list[SessionView]:
        """The caller's live sessions, newest first, the caller's own marked."""
        sessions = await self._store.live_sessions(caller.user_id, now=self._clock())
        return [SessionView(s, current=s.id == caller.session_id) for s in sessions]

    async def revoke_session(self, caller: AccessClaims, session_id: uuid.UUID) -> bool:
        """End one of the caller's sessions; returns whether this call ended it. Another user's
        session is NOT_FOUND, like a missing one (no oracle)."""
        revoked = await self._store.revoke_session(
            session_id, caller.user_id, now=self._clock(), reason=RevokeReason.REVOKED
        )
        if revoked is None:
            raise NotFound("session")
        if revoked:
            self._notify(session_id, caller.user_id)
        return revoked

    def _notify(self, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
        self._notifier.notify(SessionRevoked(session_id=session_id, user_id=user_id))
