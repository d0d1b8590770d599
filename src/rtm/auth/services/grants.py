"""Handing out tokens: what a login and a refresh both end with."""

from __future__ import annotations

import uuid
from datetime import datetime

from rtm.auth.domain.keys import SigningKey
from rtm.auth.domain.model import Grant, User
from rtm.auth.domain.policy import AuthPolicy
from rtm.auth.domain.tokens import AccessTokenSigner
from rtm.auth.services.keyring import KeyRing


class GrantIssuer:
    """Signs access tokens with the key ring's current key and wraps them in a `Grant`.

    Callers take the key (`signing_key`) *before* they write anything, so that a missing key
    (`Unavailable`) never leaves a session or a spent refresh token without its grant.

    Args:
        keys: the signing keys.
        policy: issuer and access-token lifetime.
    """

    def __init__(self, keys: KeyRing, policy: AuthPolicy) -> None:
        self._keys = keys
        self._signer = AccessTokenSigner(policy.issuer, policy.access_ttl)
        self._expires_in = int(policy.access_ttl.total_seconds())

    def signing_key(self) -> SigningKey:
        """The key to sign with now; `Unavailable` before the keys are loaded."""
        return self._keys.signing_key()

    def grant(
        self,
        key: SigningKey,
        *,
        user: User,
        session_id: uuid.UUID,
        refresh_token: str,
        now: datetime,
    ) -> Grant:
        """A fresh access token for the session, with the refresh token the caller minted."""
        access = self._signer.sign(
            kid=key.kid, key=key.private_key, user_id=user.id, session_id=session_id, now=now
        )
        return Grant(
            access_token=access.token,
            refresh_token=refresh_token,
            expires_in=self._expires_in,
            session_id=session_id,
            user=user,
        )
