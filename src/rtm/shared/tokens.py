"""Access-token verification for producer and consumer (docs/protocol.md, "3. Authentication").

Tokens are EdDSA (Ed25519) JWTs signed by auth. We verify them locally with public keys from
auth's JWKS, cached in memory; an unknown `kid` triggers one JWKS refresh (rate-limited, so a
flood of forged kids cannot make us hammer auth). The algorithm is pinned, and `typ`, `iss`,
`aud`, `exp`, `iat`, `sub` and `sid` are all required.

A token whose lifetime (`exp - iat`) exceeds the access-token TTL (plus leeway) is refused even
when its signature is good: auth never signs one, so it can only come from a leaked signing key
or a bug, and without this bound such a token would outlive every key rotation's intent.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from rtm.shared.errors import ErrorCode, RtmError

logger = logging.getLogger(__name__)

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a JWT type, not a secret
AUDIENCE = "rtm"
ALGORITHM = "EdDSA"
# The longest access-token TTL auth can be configured with (RTM_AUTH_ACCESS_TOKEN_TTL_SECONDS):
# the bound a verifier applies when it is not told the configured TTL.
MAX_ACCESS_TOKEN_LIFETIME_S = 24 * 3600


class TokenError(RtmError):
    """The token is missing, malformed, forged, of the wrong kind or for the wrong audience."""

    def __init__(self, message: str = "invalid token") -> None:
        super().__init__(ErrorCode.UNAUTHORIZED, message)


class TokenExpired(TokenError):
    """The token was valid but its `exp` has passed: refresh and retry (close code 4505)."""

    def __init__(self) -> None:
        super().__init__("token expired")


class JwksUnavailable(RtmError):
    """Auth's JWKS could not be fetched: we cannot tell good tokens from bad ones now."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, message, retry_after_ms=1000)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token tells us."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime


class TokenVerifier:
    """Verifies access tokens against a cached JWKS.

    Args:
        jwks_url: auth's `/.well-known/jwks.json`.
        issuer: the `iss` auth writes.
        refresh_interval: the least time between two JWKS fetches caused by unknown kids.
        leeway: clock skew tolerated on `exp`/`iat`, in seconds.
        max_lifetime: the longest `exp - iat` accepted (auth's access-token TTL), in seconds.
    """

    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        *,
        refresh_interval: float = 5.0,
        leeway: float = 5.0,
        max_lifetime: float = MAX_ACCESS_TOKEN_LIFETIME_S,
    ) -> None:
        self._jwks_url = jwks_url
        self._issuer = issuer
        self._refresh_interval = refresh_interval
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        self._keys: dict[str, PyJWK] = {}
        self._last_fetch = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def has_keys(self) -> bool:
        """Readiness: we have fetched auth's keys at least once."""
        return bool(self._keys)

    async def refresh(self) -> None:
        """Fetch the JWKS now (at start, and when an unknown `kid` shows up)."""
        try:
            async with httpx.AsyncClient(timeout=3.0) as client:
                response = await client.get(self._jwks_url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise JwksUnavailable(f"cannot fetch JWKS from {self._jwks_url}: {exc}") from exc
        finally:
            self._last_fetch = time.monotonic()
        keys: dict[str, PyJWK] = {}
        for entry in document.get("keys", []):
            try:
                key = PyJWK.from_dict(entry, algorithm=ALGORITHM)
            except jwt.PyJWTError:
                logger.warning("ignoring unusable JWKS entry kid=%s", entry.get("kid"))
                continue
            if key.key_id:
                keys[key.key_id] = key
        self._keys = keys

    async def _key_for(self, kid: str) -> PyJWK:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            if kid not in self._keys and (
                time.monotonic() - self._last_fetch >= self._refresh_interval or not self._keys
            ):
                await self.refresh()
        key = self._keys.get(kid)
        if key is None:
            raise TokenError("unknown signing key")
        return key

    async def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; raises `TokenError` / `TokenExpired` otherwise."""
        if not token or len(token) > 8192:
            raise TokenError()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError() from exc
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or header.get("typ") != ACCESS_TOKEN_TYPE:
            raise TokenError()
        if not isinstance(kid, str) or not kid or len(kid) > 128:
            raise TokenError()
        key = await self._key_for(kid)
        return decode_access_token(
            token,
            key.key,
            issuer=self._issuer,
            leeway=self._leeway,
            max_lifetime=self._max_lifetime,
        )


def decode_access_token(
    token: str,
    key: Any,
    *,
    issuer: str,
    leeway: float = 5.0,
    max_lifetime: float = MAX_ACCESS_TOKEN_LIFETIME_S,
) -> AccessClaims:
    """Pure verification with a known public key (auth's ValidateToken uses it too)."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise TokenError()
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "sid"]},
        )
        if claims["iat"] > time.time() + leeway:
            raise TokenError("token not yet valid")
        if claims["exp"] - claims["iat"] > max_lifetime + leeway:
            raise TokenError("token lifetime exceeds the access-token TTL")
        return AccessClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            session_id=uuid.UUID(str(claims["sid"])),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired() from exc
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, OverflowError) as exc:
        raise TokenError() from exc
