"""AccountService on in-memory fakes: registration, lookups and deleting an account."""

from __future__ import annotations

import uuid

import pytest

from rtm.auth.adapters.argon2 import Argon2PasswordHasher
from rtm.auth.domain.exceptions import (
    InvalidCredentials,
    InvalidInput,
    InvalidRefreshToken,
    NotFound,
    Throttled,
    UsernameTaken,
)
from rtm.auth.domain.model import ClientInfo, RevokeReason
from rtm.shared.tokens import TokenError
from tests.unit.auth.fakes import CLIENT, FAST_ARGON2, ServiceKit, service_kit, signed_up


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
