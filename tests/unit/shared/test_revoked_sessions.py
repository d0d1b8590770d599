"""The memory of revoked sessions, on an injected clock."""

from __future__ import annotations

import uuid

from rtm.shared.revocation import RevokedSessions
from tests.support.clock import FakeClock


def test_revoked_sessions_are_forgotten_after_their_ttl() -> None:
    """A revoked session is refused for `ttl` seconds, then forgotten."""
    clock = FakeClock()
    revoked = RevokedSessions(60, clock.monotonic)
    one, other = uuid.uuid4(), uuid.uuid4()
    revoked.add(one)
    assert revoked.is_revoked(one)
    assert not revoked.is_revoked(other)
    clock.advance(61)
    assert not revoked.is_revoked(one)
    assert len(revoked) == 0


def test_a_session_revoked_again_is_remembered_from_the_second_time() -> None:
    """Adding a session again restarts its ttl, and pruning keeps it past older ones."""
    clock = FakeClock()
    revoked = RevokedSessions(60, clock.monotonic)
    one, other = uuid.uuid4(), uuid.uuid4()
    revoked.add(one)
    clock.advance(10)
    revoked.add(other)
    clock.advance(20)
    revoked.add(one)
    clock.advance(45)
    assert revoked.is_revoked(one)
    assert not revoked.is_revoked(other)
    assert len(revoked) == 1
