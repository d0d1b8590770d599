"""The shared verifier refuses well-signed tokens that live longer than auth ever signs them for."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rtm.shared.tokens import (
    MAX_ACCESS_TOKEN_LIFETIME_S,
    TokenError,
    TokenVerifier,
    decode_access_token,
)

KEY = Ed25519PrivateKey.generate()
TTL = 15 * 60


def token(lifetime: float, **extra: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "rtm-auth",
        "aud": "rtm",
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "iat": now,
        "exp": now + lifetime,
        **extra,
    }
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"})


def test_a_token_of_exactly_the_ttl_plus_leeway_is_accepted() -> None:
    claims = decode_access_token(
        token(TTL + 5), KEY.public_key(), issuer="rtm-auth", leeway=5, max_lifetime=TTL
    )
    assert claims.expires_at.timestamp() > time.time()


@pytest.mark.parametrize("lifetime", [TTL + 6, 24 * 3600, 10 * 365 * 24 * 3600, 10**15])
def test_a_longer_lived_token_is_refused(lifetime: int) -> None:
    with pytest.raises(TokenError, match="lifetime"):
        decode_access_token(
            token(lifetime), KEY.public_key(), issuer="rtm-auth", leeway=5, max_lifetime=TTL
        )


def test_without_a_configured_ttl_the_longest_possible_one_bounds_it() -> None:
    """Producer and consumer build the verifier without auth's TTL: 24 h is auth's maximum."""
    decode_access_token(token(MAX_ACCESS_TOKEN_LIFETIME_S), KEY.public_key(), issuer="rtm-auth")
    with pytest.raises(TokenError, match="lifetime"):
        decode_access_token(token(10 * 365 * 24 * 3600), KEY.public_key(), issuer="rtm-auth")


def test_non_numeric_or_absurd_times_are_refused_not_raised() -> None:
    for bad in ({"exp": "soon"}, {"exp": 10**30}, {"iat": 1.5e300}):
        forged = jwt.encode(
            {"iss": "rtm-auth", "aud": "rtm", "sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()),
             "iat": int(time.time()), "exp": int(time.time()) + 60, **bad},
            KEY, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"},
        )  # fmt: skip
        with pytest.raises(TokenError):
            decode_access_token(forged, KEY.public_key(), issuer="rtm-auth")


async def test_the_verifier_passes_its_bound_on() -> None:
    verifier = TokenVerifier("http://127.0.0.1:9/jwks", "rtm-auth", max_lifetime=TTL)
    verifier._keys = {"k1": jwt.PyJWK.from_dict(_jwk(), algorithm="EdDSA")}
    await verifier.verify(token(TTL))
    with pytest.raises(TokenError, match="lifetime"):
        await verifier.verify(token(TTL * 2))


def _jwk() -> dict[str, str]:
    jwk: dict[str, str] = jwt.algorithms.OKPAlgorithm.to_jwk(KEY.public_key(), as_dict=True)
    return {**jwk, "kid": "k1", "alg": "EdDSA", "use": "sig"}
