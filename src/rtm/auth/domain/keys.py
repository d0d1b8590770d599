"""Signing keys: Ed25519 key pairs stored in PostgreSQL, encrypted at rest, served as JWKS.

Lifecycle, shared by every auth process through the `KeyStore`:

1. First start: if no live key exists, one process creates one (the store serialises this).
2. Rotation (every `key_rotation_days`, or on demand): a new key is stored with `activates_at`
   `publish_lead` in the future. It is in the JWKS at once but signs only from `activates_at`, so
   every process and every verifier's cache has seen it before a token carries its `kid`.
3. The older keys get `retire_after = activates_at + access TTL + leeway`: they stay in the JWKS
   until the last token they signed has expired, then disappear.

Each process keeps the keys in memory (`KeyRing`) and re-reads them every `reload_interval`.
The private key is AES-256-GCM encrypted with a key derived from `RTM_AUTH_KEY_SECRET`; the
`kid` (the RFC 7638 thumbprint) is the associated data, so a ciphertext cannot be swapped onto
another key's row.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rtm.auth.domain.ports import StoredKey
from rtm.shared.tokens import ALGORITHM

_NONCE_BYTES = 12


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(public_key: Ed25519PublicKey, kid: str) -> dict[str, str]:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(raw),
        "kid": kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


def thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint: a `kid` that names the key itself (stable, collision-free)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}, separators=(",", ":"), sort_keys=True
    )
    return _b64url(hashlib.sha256(canonical.encode()).digest())


class KeyDecryptionError(Exception):
    """A stored private key does not decrypt: wrong RTM_AUTH_KEY_SECRET or a tampered row."""


class KeyCipher:
    """Encrypts private keys at rest with a key derived from the configured secret."""

    def __init__(self, secret: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"rtm-auth signing keys v1"
        ).derive(secret.encode())
        self._aead = AESGCM(derived)

    def encrypt(self, kid: str, private_key: Ed25519PrivateKey) -> bytes:
        raw = private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, raw, kid.encode())

    def decrypt(self, kid: str, blob: bytes) -> Ed25519PrivateKey:
        try:
            raw = self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], kid.encode())
        except InvalidTag as exc:
            raise KeyDecryptionError(f"signing key {kid} does not decrypt") from exc
        return Ed25519PrivateKey.from_private_bytes(raw)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A usable key pair with its schedule. `repr` never shows the private half."""

    kid: str
    private_key: Ed25519PrivateKey
    public_key: Ed25519PublicKey
    jwk: dict[str, str]
    created_at: datetime
    activates_at: datetime
    retire_after: datetime | None

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, activates_at={self.activates_at.isoformat()})"

    def signs_at(self, now: datetime) -> bool:
        return self.activates_at <= now and not self.retired_at(now)

    def retired_at(self, now: datetime) -> bool:
        return self.retire_after is not None and self.retire_after <= now


def new_stored_key(cipher: KeyCipher, *, now: datetime, activates_at: datetime) -> StoredKey:
    """A fresh Ed25519 key, ready to insert."""
    private = Ed25519PrivateKey.generate()
    kid = thumbprint(private.public_key())
    return StoredKey(
        kid=kid,
        encrypted_private_key=cipher.encrypt(kid, private),
        public_jwk=public_jwk(private.public_key(), kid),
        created_at=now,
        activates_at=activates_at,
        retire_after=None,
    )


def open_key(cipher: KeyCipher, stored: StoredKey) -> SigningKey:
    """Decrypt a stored key; checks that its public half is the one published under its kid."""
    private = cipher.decrypt(stored.kid, stored.encrypted_private_key)
    public = private.public_key()
    if thumbprint(public) != stored.kid:
        raise KeyDecryptionError(f"signing key {stored.kid} does not match its kid")
    return SigningKey(
        kid=stored.kid,
        private_key=private,
        public_key=public,
        jwk=public_jwk(public, stored.kid),
        created_at=stored.created_at,
        activates_at=stored.activates_at,
        retire_after=stored.retire_after,
    )
