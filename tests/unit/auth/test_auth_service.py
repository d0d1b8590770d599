"""Auth's use cases on in-memory fakes: the rules, independent of gRPC, HTTP and SQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from rtm.auth.adapters.argon2 import Argon2PasswordHasher
from rtm.auth.domain.exceptions import (
    InvalidCredentials,
    InvalidInput,
    InvalidRefreshToken,
    NotFound,
    RefreshTokenReused,
    Throttled,
    UsernameTaken,
)
from rtm.auth.domain.model import ClientInfo, RevokeReason
from rtm.auth.domain.throttle import LoginKeys, ThrottlePolicy
from rtm.shared.tokens import TokenError, TokenExpired
from tests.unit.auth.fakes import FAST_ARGON2, ServiceKit, service_kit

CLIENT = ClientInfo(address="192.0.2.7", user_agent="pytest")


async def signed_up(kit: ServiceKit, name: str = "alice", password: str = "password-1") -> None:
    await kit.accounts.register(name, password, None)


async def test_register_normalises_and_refuses_a_taken_name(kit: ServiceKit) -> None:
    user = await kit.accounts.register("Alice", "password-1", "Alice A.")
    assert (user.username, user.display_name) == ("alice", "Alice A.")
    with pytest.raises(UsernameTaken):
        await kit.accounts.register("\uff21LICE", "password-2", None)


async def test_register_validates_every_field(kit: ServiceKit) -> None:
    for args, field in [(("ab", "password-1", None), "username"),
                        (("alice", "short", None), "password"),
                        (("alice", "password-1", " "), "display_name")]:  # fmt: skip
        with pytest.raises(InvalidInput) as caught:
            await kit.accounts.register(*args)
        assert caught.value.field == field


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


async def test_registration_is_rate_limited_per_address() -> None:
    kit = await service_kit(register_burst=3, register_per_minute=2.0)
    try:
        for n in range(3):
            await kit.accounts.register(f"user{n}", "password-1", None, CLIENT)
        with pytest.raises(Throttled) as caught:
            await kit.accounts.register("user3", "password-1", None, CLIENT)
        assert caught.value.retry_after_ms == 30_000
        await kit.accounts.register("user3", "password-1", None, ClientInfo("198.51.100.1"))
        kit.clock.advance(seconds=30)
        await kit.accounts.register("user4", "password-1", None, CLIENT)
        await kit.accounts.register("user5", "password-1", None)  # operators' tools: no limit
    finally:
        kit.hasher.close()


async def test_register_refuses_common_passwords_and_the_username() -> None:
    kit = await service_kit(common_passwords=frozenset({"password1", "iloveyou"}))
    try:
        for name, password, reason in [
            ("alice", "Password1", "too common"),
            ("alice", "ILOVEYOU", "too common"),
            ("mallory", "MALLORY1", None),
            ("trudy123", "TRUDY123", "username"),
        ]:
            if reason is None:
                await kit.accounts.register(name, password, None)
                continue
            with pytest.raises(InvalidInput) as caught:
                await kit.accounts.register(name, password, None)
            assert caught.value.field == "password"
            assert reason in caught.value.message
    finally:
        kit.hasher.close()


async def test_one_address_guessing_many_accounts_is_throttled(kit: ServiceKit) -> None:
    for n in range(20):
        with pytest.raises(InvalidCredentials):
            await kit.logins.login(f"user{n}", "wrong-password", CLIENT)
    with pytest.raises(Throttled):
        await kit.logins.login("user99", "wrong-password", CLIENT)
    other_address = ClientInfo(address="198.51.100.1")
    with pytest.raises(InvalidCredentials):
        await kit.logins.login("user99", "wrong-password", other_address)


async def test_refresh_rotates_and_the_old_token_is_spent(kit: ServiceKit) -> None:
    await signed_up(kit)
    first = await kit.logins.login("alice", "password-1", CLIENT)
    second = await kit.sessions.refresh(first.refresh_token, CLIENT)
    assert second.refresh_token != first.refresh_token
    assert second.session_id == first.session_id
    third = await kit.sessions.refresh(second.refresh_token, CLIENT)
    assert third.session_id == first.session_id


async def test_reusing_a_spent_refresh_token_revokes_the_session(kit: ServiceKit) -> None:
    await signed_up(kit)
    first = await kit.logins.login("alice", "password-1", CLIENT)
    second = await kit.sessions.refresh(first.refresh_token, CLIENT)
    with pytest.raises(RefreshTokenReused) as caught:  # the edge counts reuse apart
        await kit.sessions.refresh(first.refresh_token, CLIENT)
    assert (caught.value.code, caught.value.message) == (
        InvalidRefreshToken().code,
        InvalidRefreshToken().message,
    )  # the client cannot tell reuse from any other invalid token
    assert kit.store.revoked_reason(first.session_id) is RevokeReason.REFRESH_REUSE
    assert [e.session_id for e in kit.notifier.events] == [first.session_id]
    with pytest.raises(InvalidRefreshToken):
        await kit.sessions.refresh(second.refresh_token, CLIENT)  # the whole family is dead
    with pytest.raises(TokenError):
        await kit.authenticator.authenticate(second.access_token)


async def test_refresh_refuses_garbage_and_expired_tokens(kit: ServiceKit) -> None:
    await signed_up(kit)
    grant = await kit.logins.login("alice", "password-1", CLIENT)
    for bad in ["", "nonsense", "rtmr_" + "A" * 43, grant.access_token]:
        with pytest.raises(InvalidRefreshToken):
            await kit.sessions.refresh(bad, CLIENT)
    kit.clock.advance(days=31)
    with pytest.raises(InvalidRefreshToken):
        await kit.sessions.refresh(grant.refresh_token, CLIENT)


async def test_logout_by_refresh_token_or_bearer_ends_the_session(kit: ServiceKit) -> None:
    await signed_up(kit)
    one = await kit.logins.login("alice", "password-1", CLIENT)
    two = await kit.logins.login("alice", "password-1", CLIENT)
    assert await kit.sessions.logout(refresh_token=one.refresh_token, access_token=None)
    assert await kit.sessions.logout(refresh_token=None, access_token=two.access_token)
    for grant in (one, two):
        with pytest.raises(TokenError):
            await kit.authenticator.authenticate(grant.access_token)
    assert {e.session_id for e in kit.notifier.events} == {one.session_id, two.session_id}
    # idempotent, and says it ended nothing (the edge counts one revocation per session)
    assert not await kit.sessions.logout(refresh_token=one.refresh_token, access_token=None)
    assert len(kit.notifier.events) == 2
    with pytest.raises(TokenError):
        await kit.sessions.logout(refresh_token=None, access_token=None)


async def test_sessions_are_listed_and_revocable_by_their_user_only(kit: ServiceKit) -> None:
    await signed_up(kit)
    await signed_up(kit, "bob")
    alice1 = await kit.logins.login("alice", "password-1", CLIENT)
    kit.clock.advance(seconds=1)
    alice2 = await kit.logins.login("alice", "password-1", CLIENT)
    bob = await kit.logins.login("bob", "password-1", CLIENT)
    caller = await kit.authenticator.authenticate(alice2.access_token)
    views = await kit.sessions.list_sessions(caller)
    assert [(v.session.id, v.current) for v in views] == [
        (alice2.session_id, True),
        (alice1.session_id, False),
    ]
    with pytest.raises(NotFound):
        await kit.sessions.revoke_session(caller, bob.session_id)  # not hers: "not found"
    with pytest.raises(NotFound):
        await kit.sessions.revoke_session(caller, uuid.uuid4())
    assert await kit.sessions.revoke_session(caller, alice1.session_id)
    assert not await kit.sessions.revoke_session(caller, alice1.session_id)
    assert [v.session.id for v in await kit.sessions.list_sessions(caller)] == [alice2.session_id]
    assert kit.notifier.events[-1].session_id == alice1.session_id


async def test_users_are_found_by_id_and_prefix_but_not_when_deleted(kit: ServiceKit) -> None:
    for name in ("alice", "alicia", "bob"):
        await signed_up(kit, name)
    grant = await kit.logins.login("bob", "password-1", CLIENT)
    caller = await kit.authenticator.authenticate(grant.access_token)
    assert [u.username for u in await kit.accounts.search_users(caller, "ALI", None)] == [
        "alice",
        "alicia",
    ]
    assert [u.username for u in await kit.accounts.search_users(caller, "ali", 1)] == ["alice"]
    assert await kit.accounts.search_users(caller, "a b", None) == []
    with pytest.raises(InvalidInput):
        await kit.accounts.search_users(caller, "ali", 51)
    alice = (await kit.accounts.search_users(caller, "alice", None))[0]
    assert await kit.accounts.get_user(caller, alice.id) == alice
    assert (await kit.accounts.get_user(caller, None)).username == "bob"
    kit.store.deleted.add(alice.id)
    with pytest.raises(NotFound):
        await kit.accounts.get_user(caller, alice.id)


async def test_tokens_of_deleted_users_and_expired_tokens_are_refused(kit: ServiceKit) -> None:
    await signed_up(kit)
    grant = await kit.logins.login("alice", "password-1", CLIENT)
    kit.clock.advance(minutes=16)
    with pytest.raises(TokenExpired):
        await kit.authenticator.authenticate(grant.access_token)
    fresh = await kit.sessions.refresh(grant.refresh_token, CLIENT)
    kit.store.deleted.add(fresh.user.id)
    with pytest.raises(TokenError):
        await kit.authenticator.authenticate(fresh.access_token)
    with pytest.raises(InvalidCredentials):
        await kit.logins.login("alice", "password-1", CLIENT)


async def test_concurrent_refreshes_of_one_token_have_one_winner(kit: ServiceKit) -> None:
    await signed_up(kit)
    grant = await kit.logins.login("alice", "password-1", CLIENT)
    outcomes = await asyncio.gather(
        *(kit.sessions.refresh(grant.refresh_token, CLIENT) for _ in range(20)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, InvalidRefreshToken) for o in outcomes if isinstance(o, BaseException))


async def test_a_token_respelled_in_its_signatures_spare_bits_is_refused(kit: ServiceKit) -> None:
    """The shared verifier decodes both spellings to one signature; auth accepts only one."""
    await signed_up(kit)
    token = (await kit.logins.login("alice", "password-1", CLIENT)).access_token
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    respelled = token[:-1] + alphabet[last ^ 1]  # an Ed25519 signature leaves 2 spare bits
    with pytest.raises(TokenError):
        await kit.authenticator.authenticate(respelled)
    assert (await kit.authenticator.authenticate(token)).user_id is not None


# -- deleting an account ----------------------------------------------------------------------


async def test_deleting_a_user_ends_every_live_session_and_refuses_them_everything(
    kit: ServiceKit,
) -> None:
    await signed_up(kit)
    await signed_up(kit, "bob")
    one = await kit.logins.login("alice", "password-1", CLIENT)
    two = await kit.logins.login("alice", "password-1", CLIENT)
    ended = await kit.logins.login("alice", "password-1", CLIENT)
    await kit.sessions.logout(refresh_token=ended.refresh_token, access_token=None)
    bob = await kit.logins.login("bob", "password-1", CLIENT)
    before = len(kit.notifier.events)

    deletion = await kit.accounts.delete_user(one.user.id)

    assert deletion.newly_deleted
    assert {s.id for s in deletion.revoked} == {one.session_id, two.session_id}
    # one SessionRevoked per session it ended, like logout and RevokeSession send
    announced = [(e.session_id, e.user_id) for e in kit.notifier.events[before:]]
    assert sorted(announced) == sorted(
        [(one.session_id, one.user.id), (two.session_id, one.user.id)]
    )
    unpublished = {e.session_id for e in await kit.store.unpublished_revocations()}
    assert {one.session_id, two.session_id} <= unpublished  # the relay's work list, too
    for session in (one.session_id, two.session_id):
        assert kit.store.revoked_reason(session) is RevokeReason.REVOKED
    for grant in (one, two):
        with pytest.raises(TokenError):
            await kit.authenticator.authenticate(grant.access_token)
        with pytest.raises(InvalidRefreshToken):
            await kit.sessions.refresh(grant.refresh_token, CLIENT)
    await kit.authenticator.authenticate(bob.access_token)  # others are untouched


async def test_a_deleted_user_logs_in_like_an_unknown_one_and_keeps_the_name_taken(
    kit: ServiceKit,
) -> None:
    await signed_up(kit)
    grant = await kit.logins.login("alice", "password-1", CLIENT)
    await kit.accounts.delete_user(grant.user.id)
    answers = []
    for name, password in (("alice", "password-1"), ("nobody", "password-1")):
        with pytest.raises(InvalidCredentials) as caught:
            await kit.logins.login(name, password, CLIENT)
        answers.append((caught.value.code, caught.value.message))
    assert answers[0] == answers[1]
    with pytest.raises(UsernameTaken):
        await kit.accounts.register("ALICE", "password-2", None)
    await signed_up(kit, "carol")
    carol = await kit.logins.login("carol", "password-1", CLIENT)
    caller = await kit.authenticator.authenticate(carol.access_token)
    with pytest.raises(NotFound):
        await kit.accounts.get_user(caller, grant.user.id)
    assert await kit.accounts.search_users(caller, "alice", None) == []


async def test_deleting_is_idempotent_and_an_unknown_user_is_not_found(kit: ServiceKit) -> None:
    await signed_up(kit)
    grant = await kit.logins.login("alice", "password-1", CLIENT)
    await kit.accounts.delete_user(grant.user.id)
    events = list(kit.notifier.events)
    again = await kit.accounts.delete_user(grant.user.id)
    assert (again.newly_deleted, again.revoked, again.user.id) == (False, (), grant.user.id)
    assert kit.notifier.events == events  # nothing announced twice
    with pytest.raises(NotFound):
        await kit.accounts.delete_user(uuid.uuid4())


async def test_a_login_racing_the_deletion_opens_no_session(kit: ServiceKit) -> None:
    """The deletion lands between the password check and the new session: no session."""
    await signed_up(kit)
    user_id = await kit.accounts.user_id_of("alice")

    class DeletingHasher(Argon2PasswordHasher):
        async def verify(self, password_hash: str | None, password: str) -> bool:
            ok = await super().verify(password_hash, password)
            await racing.accounts.delete_user(user_id)
            return ok

    racing = await service_kit(hasher=DeletingHasher(FAST_ARGON2))
    racing.store.users.update(kit.store.users)
    try:
        with pytest.raises(InvalidCredentials):
            await racing.logins.login("alice", "password-1", CLIENT)
        assert racing.store.sessions == {}
    finally:
        racing.hasher.close()


async def test_users_are_named_by_username_or_id_deleted_ones_included(kit: ServiceKit) -> None:
    user = await kit.accounts.register("Alice", "password-1", None)
    assert await kit.accounts.user_id_of("ALICE") == user.id
    assert await kit.accounts.user_id_of(str(user.id)) == user.id
    await kit.accounts.delete_user(user.id)
    assert await kit.accounts.user_id_of("alice") == user.id
    for unknown in ("nobody", "not a name", user.id.hex):  # 32 hex digits: a username, not an id
        with pytest.raises(NotFound):
            await kit.accounts.user_id_of(unknown)
