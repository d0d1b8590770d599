"""Presence across instances: online while any instance reports, offline when all stop."""

from __future__ import annotations

import uuid

from rtm.consumer.domain.presence import PresenceTracker


def test_first_report_brings_a_user_online_once() -> None:
    tracker, user = PresenceTracker(ttl=15), uuid.uuid4()
    assert tracker.online("a", [user], now=0) == [user]
    assert tracker.online("b", [user], now=1) == []
    assert tracker.is_online(user, now=2)


def test_offline_only_when_the_last_instance_lets_go() -> None:
    tracker, user = PresenceTracker(ttl=15), uuid.uuid4()
    tracker.online("a", [user], now=0)
    tracker.online("b", [user], now=0)
    assert tracker.offline("a", user, now=1) is False
    assert tracker.offline("b", user, now=1) is True
    assert not tracker.is_online(user, now=1)


def test_users_of_a_silent_instance_expire_after_the_ttl() -> None:
    tracker, user, other = PresenceTracker(ttl=15), uuid.uuid4(), uuid.uuid4()
    tracker.online("dead", [user], now=0)
    tracker.online("alive", [other], now=0)
    tracker.online("alive", [other], now=10)
    assert tracker.expire(now=14) == []
    assert tracker.expire(now=16) == [user]
    assert tracker.is_online(other, now=16)
