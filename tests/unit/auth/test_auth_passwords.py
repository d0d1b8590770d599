"""argon2id hashing: verifies, upgrades old parameters, and meets OWASP in production."""

from __future__ import annotations

import asyncio

from rtm.auth.adapters.argon2 import Argon2Parameters, Argon2PasswordHasher
from rtm.auth.settings import OWASP_MEMORY_KIB, OWASP_TIME_COST, AuthSettings
from tests.unit.auth.fakes import FAST_ARGON2


async def test_a_hash_verifies_its_password_only() -> None:
    hasher = Argon2PasswordHasher(FAST_ARGON2)
    try:
        stored = await hasher.hash("correct horse")
        assert stored.startswith("$argon2id$")
        assert await hasher.verify(stored, "correct horse")
        assert not await hasher.verify(stored, "wrong horse")
        assert not await hasher.verify("not a hash", "correct horse")
    finally:
        hasher.close()


async def test_unknown_users_verify_against_a_dummy_and_fail() -> None:
    hasher = Argon2PasswordHasher(FAST_ARGON2)
    try:
        await hasher.warm_up()
        assert not await hasher.verify(None, "anything at all")
    finally:
        hasher.close()


async def test_hashes_made_with_other_parameters_need_a_rehash() -> None:
    old, new = Argon2PasswordHasher(FAST_ARGON2), Argon2PasswordHasher(Argon2Parameters(128, 1, 1))
    try:
        stored = await old.hash("password1")
        assert not old.needs_rehash(stored)
        assert new.needs_rehash(stored)
        assert await new.verify(stored, "password1")  # old hashes still log in
    finally:
        old.close()
        new.close()


async def test_production_defaults_are_owasp_argon2id_and_hash_off_the_loop() -> None:
    """The defaults are m=19 MiB, t=2, p=1; hashing them leaves the event loop responsive."""
    settings = AuthSettings(env="dev")
    params = Argon2Parameters(
        settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
    )
    assert params.memory_kib >= OWASP_MEMORY_KIB
    assert params.time_cost >= OWASP_TIME_COST
    hasher = Argon2PasswordHasher(params, workers=2)
    try:
        hashing = asyncio.gather(*(hasher.hash("pw12345678") for _ in range(4)))
        ticks = 0
        while not hashing.done():
            await asyncio.sleep(0)
            ticks += 1
        stored = (await hashing)[0]
        assert "$m=19456,t=2,p=1$" in stored
        assert ticks > 10  # the loop kept turning while four hashes ran in threads
        assert await hasher.verify(stored, "pw12345678")
    finally:
        hasher.close()
