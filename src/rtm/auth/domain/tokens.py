"""Minting tokens: EdDSA access JWTs and opaque refresh tokens.

Access tokens are what `rtm.shared.tokens` verifies (docs/protocol.md, "3. Authentication"): header
`alg: EdDSA`, `typ: at+jwt`, `kid`; claims `iss`, `aud: rtm`, `sub` (user id), `sid` (session id),
`iat`, `exp`, and a `jti` for log correlation.

Refresh tokens are 256 random bits, base64url, with a recognisable prefix (secret scanners and
people can tell what leaked). Only their SHA-256 is stored: that is enough for a high-entropy
secret, and a stolen database then holds no usable refresh token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rtm.shared.ids import new_id
from rtm.shared.tokens import ACCESS_TOKEN_TYPE, ALGORITHM, AUDIENCE

REFRESH_TOKEN_PREFIX = "rtmr_"  # noqa: S105 - a prefix, not a secret
REFRESH_TOKEN_BYTES = 32
REFRESH_TOKEN_MAX_CHARS = 256


@dataclass(frozen=True, slots=True)
class SignedToken:
    token: str
    expires_at: datetime


class AccessTokenSigner:
    """Signs access tokens for one issuer with a fixed lifetime."""

    def __init__(self, issuer: str, ttl: timedelta) -> None:
        self._issuer = issuer
        self._ttl = ttl

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    def sign(
        self,
        *,
        kid: str,
        key: Ed25519PrivateKey,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        now: datetime,
    ) -> SignedToken:
        issued = int(now.timestamp())
        expires = issued + int(self._ttl.total_seconds())
        claims = {
            "iss": self._issuer,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": issued,
            "exp": expires,
            "jti": str(new_id()),
        }
        token = jwt.encode(
            claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": ACCESS_TOKEN_TYPE}
        )
        return SignedToken(token=token, expires_at=datetime.fromtimestamp(expires, now.tzinfo))


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def plausible_refresh_token(token: str) -> bool:
    """Cheap shape check before any database work (a wrong shape cannot be one of ours)."""
    return token.startswith(REFRESH_TOKEN_PREFIX) and len(token) <= REFRESH_TOKEN_MAX_CHARS


def canonical_signature(token: str) -> bool:
    """The signature segment is canonical unpadded base64url. Decoders ignore the spare low bits
    of the last character, so without this check one token has several accepted spellings."""
    signature = token.rpartition(".")[2]
    try:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except (ValueError, binascii.Error):
        return False
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == signature
