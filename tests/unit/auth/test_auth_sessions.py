"""SessionService and Authenticator on fakes: refresh rotation and reuse, logout, revocation."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from rtm.auth.domain.exceptions import (
    InvalidCredentials,
    InvalidRefreshToken,
    NotFound,
    RefreshTokenReused,
)
from rtm.auth.domain.model import RevokeReason
from rtm.shared.tokens import TokenError, TokenExpired
from tests.unit.auth.fakes import CLIENT, ServiceKit, signed_up


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
