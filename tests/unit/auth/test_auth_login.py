"""LoginService on in-memory fakes: one answer for bad credentials, throttling, rehashing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rtm.auth.adapters.argon2 import Argon2PasswordHasher
from rtm.auth.domain.exceptions import (
    InvalidCredentials,
    Throttled,
)
from rtm.auth.domain.model import ClientInfo
from rtm.auth.domain.throttle import LoginKeys, ThrottlePolicy
from tests.unit.auth.fakes import CLIENT, FAST_ARGON2, ServiceKit, service_kit, signed_up


async def test_login_returns_tokens_the_service_then_accepts(kit: ServiceKit) -> None:
    await signed_up(kit)
    grant = await kit.logins.login("ALICE", "password-1", CLIENT)
    claims = await kit.authenticator.authenticate(grant.access_token)
    assert claims.user_id == grant.user.id
    assert claims.session_id == grant.session_id
    assert grant.expires_in == 15 * 60


async def test_unknown_user_and_wrong_password_get_one_answer_for_one_hash(kit: ServiceKit) -> None:
    """Same exception, same message, and each path runs exactly one argon2 verification."""

    class CountingHasher(Argon2PasswordHasher):
        verifications = 0

        async def verify(self, password_hash: str | None, password: str) -> bool:
            CountingHasher.verifications += 1
            return await super().verify(password_hash, password)

    counting = await service_kit(hasher=CountingHasher(FAST_ARGON2))
    try:
        await signed_up(counting)
        answers = []
        for name in ("alice", "nobody", "not a valid name"):
            before = CountingHasher.verifications
            with pytest.raises(InvalidCredentials) as caught:
                await counting.logins.login(name, "wrong-password", CLIENT)
            answers.append((caught.value.code, caught.value.message))
            assert CountingHasher.verifications == before + 1
        assert len(set(answers)) == 1
    finally:
        counting.hasher.close()


async def test_login_rehashes_when_parameters_changed(kit: ServiceKit) -> None:
    old = Argon2PasswordHasher(FAST_ARGON2.__class__(32, 1, 1))
    try:
        user = await kit.accounts.register("alice", "password-1", None)
        await kit.store.set_password_hash(user.id, await old.hash("password-1"))
        await kit.logins.login("alice", "password-1", CLIENT)
        assert not kit.hasher.needs_rehash(kit.store.users[user.id][1])
    finally:
        old.close()


async def test_failures_are_throttled_then_allowed_after_the_delay(kit: ServiceKit) -> None:
    await signed_up(kit)
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            await kit.logins.login("alice", "wrong-password", CLIENT)
    with pytest.raises(Throttled) as caught:
        await kit.logins.login("alice", "password-1", CLIENT)  # even the right password waits
    assert caught.value.retry_after_ms == 1000
    kit.clock.advance(seconds=1)
    await kit.logins.login("alice", "password-1", CLIENT)
    assert kit.clock.slept == [1.0]  # the account is slowed down, not refused
    pair = LoginKeys.of("alice", CLIENT.address).pair
    assert pair not in kit.throttle.rows  # success clears this address's record for the account
    assert "user:alice" in kit.throttle.rows  # not the account's: guesses from elsewhere count


async def test_an_attacker_elsewhere_cannot_lock_the_owner_out(kit: ServiceKit) -> None:
    """OWASP: per-account limits slow down, they do not lock. 50 failures from one address
    refuse that address; the owner from another address still logs in, held at most the cap."""
    await signed_up(kit)
    attacker, owner = ClientInfo(address="192.0.2.66"), ClientInfo(address="198.51.100.5")
    refused = 0
    for _ in range(50):
        try:
            await kit.logins.login("alice", "wrong-password", attacker)
        except Throttled:
            refused += 1
        except InvalidCredentials:
            pass
    assert refused > 0
    kit.clock.slept.clear()
    grant = await kit.logins.login("alice", "password-1", owner)
    assert grant.user.username == "alice"
    assert kit.clock.slept  # held by the account's slowdown,
    assert max(kit.clock.slept) <= 15 * 60  # at most the account's cap (make_policy)


async def test_the_account_slowdown_grows_then_stops_at_its_cap() -> None:
    kit = await service_kit(
        account_throttle=ThrottlePolicy(2, timedelta(seconds=1), timedelta(seconds=3),
                                        timedelta(minutes=15)),
    )  # fmt: skip
    try:
        for n in range(6):  # each from its own address: only the account key grows
            with pytest.raises(InvalidCredentials):
                await kit.logins.login("ghost", "wrong-password", ClientInfo(f"192.0.2.{n}"))
        assert kit.clock.slept == [1.0, 2.0, 3.0, 3.0]
    finally:
        kit.hasher.close()


async def test_a_nul_or_surrogate_username_fails_like_an_unknown_user(kit: ServiceKit) -> None:
    """No input can reach the throttle store as text PostgreSQL refuses."""
    for name in ("ab\x00cd", "ab\ud800cd", "x" * 256):
        with pytest.raises(InvalidCredentials):
            await kit.logins.login(name, "password-1", CLIENT)
    assert all(key.isascii() and key.isprintable() for key in kit.throttle.rows)


async def test_one_address_guessing_many_accounts_is_throttled(kit: ServiceKit) -> None:
    for n in range(20):
        with pytest.raises(InvalidCredentials):
            await kit.logins.login(f"user{n}", "wrong-password", CLIENT)
    with pytest.raises(Throttled):
        await kit.logins.login("user99", "wrong-password", CLIENT)
    other_address = ClientInfo(address="198.51.100.1")
    with pytest.raises(InvalidCredentials):
        await kit.logins.login("user99", "wrong-password", other_address)
