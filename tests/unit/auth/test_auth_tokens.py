"""Tokens auth mints are what the shared verifier accepts, and nothing near them is."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtm.auth.domain.tokens import (
    REFRESH_TOKEN_PREFIX,
    AccessTokenSigner,
    hash_refresh_token,
    new_refresh_token,
    plausible_refresh_token,
)
from rtm.shared.tokens import TokenError, decode_access_token

KEY = Ed25519PrivateKey.generate()
USER, SESSION = uuid.uuid4(), uuid.uuid4()


def fresh_token(ttl: timedelta = timedelta(minutes=15), **claims_at: datetime) -> str:
    now = claims_at.get("now", datetime.now(UTC))
    signer = AccessTokenSigner("rtm-auth", ttl)
    return signer.sign(kid="kid-1", key=KEY, user_id=USER, session_id=SESSION, now=now).token


def test_access_tokens_carry_the_protocol_header_and_claims() -> None:
    token = fresh_token()
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "EdDSA", "typ": "at+jwt", "kid": "kid-1"}
    assert claims["iss"] == "rtm-auth"
    assert claims["aud"] == "rtm"
    assert claims["sub"] == str(USER)
    assert claims["sid"] == str(SESSION)
    assert claims["exp"] - claims["iat"] == 15 * 60


def test_the_shared_verifier_accepts_a_fresh_token() -> None:
    claims = decode_access_token(fresh_token(), KEY.public_key(), issuer="rtm-auth")
    assert (claims.user_id, claims.session_id) == (USER, SESSION)


def test_the_shared_verifier_refuses_an_old_token_and_another_issuer() -> None:
    old = fresh_token(now=datetime.now(UTC) - timedelta(minutes=20))
    with pytest.raises(TokenError):
        decode_access_token(old, KEY.public_key(), issuer="rtm-auth")
    with pytest.raises(TokenError):
        decode_access_token(fresh_token(), KEY.public_key(), issuer="someone-else")


def test_refresh_tokens_are_256_random_bits_stored_as_sha256() -> None:
    tokens = {new_refresh_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    raw = base64.urlsafe_b64decode(token.removeprefix(REFRESH_TOKEN_PREFIX) + "=")
    assert len(raw) * 8 >= 256
    assert len(hash_refresh_token(token)) == 32
    assert hash_refresh_token(token) != hash_refresh_token(new_refresh_token())
    assert plausible_refresh_token(token)
    assert not plausible_refresh_token(fresh_token())  # an access token is not a refresh token


# --- 10,000+ generated mutations of a valid token: none accepted, none crash the verifier ----

# Made when the module is imported, which for the whole suite is ~15 minutes before this module's
# tests run (they come last): valid for a day.
VALID = fresh_token(ttl=timedelta(days=1))
CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00é\U0001f600{}"


def mutate(token: str, program: bytes) -> str:
    """Apply the edits a byte string encodes, 4 bytes per edit: (kind, position hi/lo, value).

    One `binary` draw per example keeps hypothesis fast enough for 10,000 examples in seconds.
    """
    for i in range(0, len(program) - 3, 4):
        kind, high, low, value = program[i : i + 4]
        at = ((high << 8) | low) % (len(token) + 1)
        if kind % 6 == 0:  # replace one character
            token = token[:at] + CHARS[value % len(CHARS)] + token[at + 1 :]
        elif kind % 6 == 1:  # delete a run
            token = token[:at] + token[at + 1 + value % 16 :]
        elif kind % 6 == 2:  # insert a character
            token = token[:at] + CHARS[value % len(CHARS)] + token[at:]
        elif kind % 6 == 3:  # flip bits of one character (may leave the base64 alphabet)
            if at < len(token):
                token = (
                    token[:at]
                    + chr((ord(token[at]) ^ (1 + value % 127)) % 0x110000)
                    + token[at + 1 :]
                )
        elif kind % 6 == 4:  # truncate
            token = token[:at]
        else:  # replace a whole segment with base64url of arbitrary bytes
            parts = token.split(".")
            parts[value % len(parts)] = base64.urlsafe_b64encode(program[i:]).rstrip(b"=").decode()
            token = ".".join(parts)
    return token


def same_signed_token(candidate: str) -> bool:
    """A mutation that only flips the unused low bits of the signature's last base64 character
    decodes to the very same signature over the very same bytes: it is the original token."""
    head, _, signature = VALID.rpartition(".")
    other_head, _, other_signature = candidate.rpartition(".")
    if other_head != head:
        return False
    try:
        decoded = base64.urlsafe_b64decode(other_signature + "=" * (-len(other_signature) % 4))
    except ValueError:
        return False
    return decoded == base64.urlsafe_b64decode(signature + "==")


def test_ten_thousand_mutated_tokens_are_all_refused() -> None:
    """Every mutation raises TokenError (nothing else); none is accepted."""
    tried: set[str] = set()

    @settings(
        max_examples=3_200,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.binary(min_size=16, max_size=64))
    def check(programs: bytes) -> None:
        # Four mutations per example: hypothesis's own cost per example dominates otherwise.
        size = len(programs) // 4
        for n in range(4):
            token = mutate(VALID, programs[n * size : (n + 1) * size])
            if token == VALID or same_signed_token(token):
                continue
            tried.add(token)
            with pytest.raises(TokenError):
                decode_access_token(token, KEY.public_key(), issuer="rtm-auth")

    check()
    assert decode_access_token(VALID, KEY.public_key(), issuer="rtm-auth").user_id == USER
    assert len(tried) >= 10_000  # distinct mutated tokens, every one refused
