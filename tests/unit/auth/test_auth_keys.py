"""Signing keys: encrypted at rest, created once, rotated with a publish lead and a retirement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jwt import PyJWK

from rtm.auth.domain.keys import KeyCipher, KeyDecryptionError, new_stored_key, open_key
from rtm.auth.services.keyring import KeyRing
from tests.support.clock import FakeClock
from tests.unit.auth.fakes import TEST_SECRET, InMemoryKeyStore

ACCESS_TTL = timedelta(minutes=15)
LEEWAY = timedelta(seconds=5)
LEAD = timedelta(seconds=60)


def ring(store: InMemoryKeyStore, clock: FakeClock, secret: str = TEST_SECRET) -> KeyRing:
    return KeyRing(
        store,
        KeyCipher(secret),
        clock,
        access_ttl=ACCESS_TTL,
        leeway=LEEWAY,
        publish_lead=LEAD,
        rotation_interval=timedelta(days=30),
    )


def test_private_keys_decrypt_only_with_the_secret_and_under_their_kid() -> None:
    clock = FakeClock()
    cipher = KeyCipher(TEST_SECRET)
    stored = new_stored_key(cipher, now=clock(), activates_at=clock())
    assert open_key(cipher, stored).kid == stored.kid
    with pytest.raises(KeyDecryptionError):
        open_key(KeyCipher("another secret that is long enough......"), stored)
    other = new_stored_key(cipher, now=clock(), activates_at=clock())
    swapped = type(stored)(
        other.kid, stored.encrypted_private_key, stored.public_jwk, stored.created_at,
        stored.activates_at, None,
    )  # fmt: skip
    with pytest.raises(KeyDecryptionError):
        open_key(cipher, swapped)
    assert "private" not in repr(open_key(cipher, stored)).lower()


def test_jwks_entries_are_what_the_shared_verifier_loads() -> None:
    clock = FakeClock()
    stored = new_stored_key(KeyCipher(TEST_SECRET), now=clock(), activates_at=clock())
    jwk = stored.public_jwk
    assert jwk.keys() == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert PyJWK.from_dict(dict(jwk), algorithm="EdDSA").key_id == stored.kid


async def test_the_first_key_is_created_once() -> None:
    store, clock = InMemoryKeyStore(), FakeClock()
    first, second = ring(store, clock), ring(store, clock)
    await first.ensure()
    await second.ensure()
    assert len(store.keys) == 1
    assert first.signing_key().kid == second.signing_key().kid


async def test_a_rotated_key_is_published_first_signs_later_and_the_old_one_retires() -> None:
    store, clock = InMemoryKeyStore(), FakeClock()
    keys = ring(store, clock)
    await keys.ensure()
    old = keys.signing_key().kid
    new = await keys.rotate()
    assert new is not None
    assert [k["kid"] for k in keys.jwks()["keys"]] == [old, new]  # published, not signing yet
    assert keys.signing_key().kid == old

    clock.advance(seconds=LEAD.total_seconds())
    await keys.reload()
    assert keys.signing_key().kid == new
    assert keys.public_key(old) is not None  # tokens it signed are still valid

    clock.advance(seconds=(ACCESS_TTL + LEEWAY).total_seconds())
    await keys.reload()
    assert keys.public_key(old) is None
    assert [k["kid"] for k in keys.jwks()["keys"]] == [new]


async def test_maintenance_rotates_only_when_due() -> None:
    store, clock = InMemoryKeyStore(), FakeClock()
    keys = ring(store, clock)
    await keys.ensure()
    await keys.maintain()
    assert len(store.keys) == 1
    clock.advance(days=30)
    await keys.maintain()
    assert len(store.keys) == 2


async def test_without_a_loaded_key_signing_is_unavailable() -> None:
    from rtm.auth.domain.exceptions import Unavailable

    keys = ring(InMemoryKeyStore(), FakeClock())
    assert not keys.loaded
    with pytest.raises(Unavailable):
        keys.signing_key()
