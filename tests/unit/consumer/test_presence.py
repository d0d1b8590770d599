"""Presence across instances: online while any instance reports, offline when all stop, expiry
counted in our own heartbeats (never in wall-clock time), and coalesced announcements."""

from __future__ import annotations

import uuid

from rtm.consumer.domain.presence import Change, PresenceTracker

ME = "me/1"


class World:
    """Our tracker plus helpers to play instances' events in the order NATS delivers them."""

    def __init__(self) -> None:
        self.tracker = PresenceTracker(ME, missed=3)
        self.own_beat = 0

    def own_heartbeat(self, *users: uuid.UUID) -> None:
        """Our own heartbeat came back from NATS (the tracker's clock)."""
        self.own_beat += 1
        self.tracker.heartbeat(ME, self.own_beat, users)

    def changes(self) -> set[tuple[uuid.UUID, str]]:
        return {(c.user_id, c.status) for c in self.tracker.take_changes()}


def test_first_report_brings_a_user_online_once() -> None:
    world, user = World(), uuid.uuid4()
    world.tracker.online("a", user, 0)
    world.tracker.online("b", user, 3)
    assert world.tracker.is_online(user)
    assert world.changes() == {(user, "online")}
    world.tracker.heartbeat("a", 1, [user])
    assert world.changes() == set()


def test_offline_only_when_the_last_instance_lets_go() -> None:
    world, user = World(), uuid.uuid4()
    world.tracker.online("a", user, 0)
    world.tracker.online("b", user, 0)
    world.changes()
    world.tracker.offline("a", user, 0)
    assert world.tracker.is_online(user)
    assert world.changes() == set()
    world.tracker.offline("b", user, 0)
    assert not world.tracker.is_online(user)
    assert world.changes() == {(user, "offline")}


def test_a_late_loop_expires_nobody() -> None:
    """Our loop (or our NATS link) stalls for a long time: when it resumes, the heartbeats of the
    other instance are processed in order with ours, so nobody has missed a beat."""
    world, user = World(), uuid.uuid4()
    world.tracker.heartbeat("b", 1, [user])
    world.changes()
    # No event at all for what would be minutes of wall-clock time: nothing happens, since the
    # tracker has no clock but our own heartbeats. Then the backlog arrives, interleaved.
    for beat in range(2, 12):
        world.tracker.heartbeat("b", beat, [user])
        world.own_heartbeat()
    assert world.tracker.is_online(user)
    assert world.changes() == set()


def test_a_dead_instance_expires_after_missed_beats_while_ours_keep_coming() -> None:
    world, user, mine = World(), uuid.uuid4(), uuid.uuid4()
    world.own_heartbeat(mine)
    world.tracker.heartbeat("dead", 7, [user])
    world.changes()
    # "dead" says nothing while three of our heartbeats come back: with any phase between its
    # beats and ours, that may be only two of its beats missed (plus jitter): not yet.
    for _ in range(3):
        world.own_heartbeat(mine)
        assert world.tracker.is_online(user)
    world.own_heartbeat(mine)  # certainly 3 of its beats missed
    assert not world.tracker.is_online(user)
    assert world.tracker.is_online(mine)
    assert world.changes() == {(user, "offline")}


def test_an_instance_that_beats_keeps_its_users_online_with_any_phase() -> None:
    """Heartbeats of another instance falling just after ours, every time."""
    world, user = World(), uuid.uuid4()
    for beat in range(1, 20):
        world.own_heartbeat()
        world.tracker.heartbeat("b", beat, [user])
    assert world.tracker.is_online(user)


def test_a_user_missing_from_two_full_heartbeats_is_dropped() -> None:
    """The offline event was lost: the instance, alive, stops listing the user."""
    world, gone, stays = World(), uuid.uuid4(), uuid.uuid4()
    world.tracker.heartbeat("b", 1, [gone, stays])
    world.changes()
    world.tracker.heartbeat("b", 2, [stays])
    assert world.tracker.is_online(gone)  # one heartbeat without them may still be in flight
    world.tracker.heartbeat("b", 3, [stays])
    assert not world.tracker.is_online(gone)
    assert world.tracker.is_online(stays)
    assert world.changes() == {(gone, "offline")}


def test_a_partly_received_heartbeat_drops_nobody() -> None:
    """A chunk was lost (slow consumer): only heartbeats received whole count as omissions."""
    world, first, second = World(), uuid.uuid4(), uuid.uuid4()
    world.tracker.heartbeat("b", 1, [first], chunk=0, chunks=2)
    world.tracker.heartbeat("b", 1, [second], chunk=1, chunks=2)
    for beat in (2, 3, 4):  # the chunk with `second` is lost every time
        world.tracker.heartbeat("b", beat, [first], chunk=0, chunks=2)
    assert world.tracker.is_online(second)
    world.tracker.heartbeat("b", 5, [first], chunk=0, chunks=1)
    world.tracker.heartbeat("b", 6, [first], chunk=0, chunks=1)
    assert not world.tracker.is_online(second)


def test_a_user_who_connected_after_the_heartbeat_was_taken_is_kept() -> None:
    """online(beat 4) arrives before the last chunk of heartbeat 4 that does not list them."""
    world, user, other = World(), uuid.uuid4(), uuid.uuid4()
    world.tracker.heartbeat("b", 3, [other])
    world.tracker.heartbeat("b", 4, [other], chunk=0, chunks=2)
    world.tracker.online("b", user, 4)
    world.tracker.heartbeat("b", 4, [], chunk=1, chunks=2)
    world.tracker.heartbeat("b", 5, [other, user])
    assert world.tracker.is_online(user)


def test_a_stale_heartbeat_after_the_offline_event_does_not_bring_the_user_back() -> None:
    """The heartbeat listed the user before they left; its last chunk arrives after `offline`."""
    world, user, other = World(), uuid.uuid4(), uuid.uuid4()
    world.tracker.heartbeat("b", 4, [other, user])
    world.changes()
    world.tracker.heartbeat("b", 5, [other], chunk=0, chunks=2)
    world.tracker.offline("b", user, 5)
    world.tracker.heartbeat("b", 5, [user], chunk=1, chunks=2)
    assert not world.tracker.is_online(user)
    assert world.changes() == {(user, "offline")}
    # Reconnecting on the same instance later is an online event as usual.
    world.tracker.online("b", user, 5)
    world.tracker.heartbeat("b", 6, [other, user])
    assert world.changes() == {(user, "online")}


def test_a_change_event_overtaken_by_a_heartbeat_is_not_a_restart() -> None:
    """`online` numbered 4 was published just before heartbeat 5 and arrives between its chunks:
    the instance did not restart, so heartbeat 5 still counts as received whole."""
    world, gone, stays, late = World(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    world.tracker.heartbeat("b", 4, [gone, stays])
    world.tracker.heartbeat("b", 5, [stays], chunk=0, chunks=2)
    world.tracker.online("b", late, 4)
    world.tracker.heartbeat("b", 5, [], chunk=1, chunks=2)
    world.tracker.heartbeat("b", 6, [stays, late])
    assert not world.tracker.is_online(gone)  # missing from full heartbeats 5 and 6
    assert world.tracker.is_online(late)
    assert world.tracker.is_online(stays)


def test_leaving_and_coming_back_within_a_flush_window_announces_nothing() -> None:
    world, user = World(), uuid.uuid4()
    world.tracker.online("b", user, 1)
    assert world.changes() == {(user, "online")}
    world.tracker.offline("b", user, 1)
    world.tracker.online("c", user, 1)
    world.tracker.offline("c", user, 1)
    world.tracker.online("b", user, 1)
    assert world.changes() == set()
    world.tracker.offline("b", user, 1)
    world.tracker.online("b", user, 1)
    world.tracker.offline("b", user, 1)
    assert world.changes() == {(user, "offline")}


def test_a_failed_announcement_is_retried_with_the_state_at_that_time() -> None:
    world, user = World(), uuid.uuid4()
    world.tracker.online("b", user, 1)
    changes = world.tracker.take_changes()
    assert changes == [Change(user, True)]
    world.tracker.restore(changes)
    assert not world.tracker.announced_online(user)
    assert world.changes() == {(user, "online")}
    assert world.tracker.announced_online(user)
    # Failed again, and meanwhile the user left: the retry announces nothing.
    world.tracker.offline("b", user, 1)
    changes = world.tracker.take_changes()
    world.tracker.restore(changes)
    world.tracker.online("b", user, 1)
    assert world.changes() == set()
    assert world.tracker.announced_online(user)


def test_an_instance_restarted_under_the_same_name_starts_its_beats_over() -> None:
    world, stays, gone = World(), uuid.uuid4(), uuid.uuid4()
    for beat in range(40, 43):
        world.tracker.heartbeat("c1", beat, [stays, gone])
        world.own_heartbeat()
    world.changes()
    # The process restarts: beats from 1 again, and only `stays` reconnected.
    world.tracker.online("c1", stays, 0)
    world.tracker.heartbeat("c1", 1, [stays])
    assert world.tracker.is_online(gone)
    world.tracker.heartbeat("c1", 2, [stays])
    world.tracker.heartbeat("c1", 3, [stays])
    assert world.tracker.is_online(stays)
    assert not world.tracker.is_online(gone)
    assert world.changes() == {(gone, "offline")}


def test_a_restart_under_a_new_process_name_replaces_the_old_one() -> None:
    """What the consumer does: each process reports under its own name. The old name's users
    who reconnect stay online throughout; the others expire with the old name's silence."""
    world, stays, gone = World(), uuid.uuid4(), uuid.uuid4()
    world.tracker.heartbeat("c1/old", 40, [stays, gone])
    world.own_heartbeat()
    world.changes()
    world.tracker.online("c1/new", stays, 0)
    for beat in range(1, 5):
        world.own_heartbeat()
        world.tracker.heartbeat("c1/new", beat, [stays])
    assert world.tracker.is_online(stays)
    assert not world.tracker.is_online(gone)
    assert world.changes() == {(gone, "offline")}


def test_events_without_beats_expire_by_silence_only() -> None:
    """An instance of an older version: no beat numbers, so no full-heartbeat rule."""
    world, user, gone = World(), uuid.uuid4(), uuid.uuid4()
    world.tracker.online("old", gone, None)
    for _ in range(6):
        world.tracker.heartbeat("old", None, [user])
        world.own_heartbeat()
    assert world.tracker.is_online(user)
    assert not world.tracker.is_online(gone)
    world.tracker.offline("old", user, None)
    assert not world.tracker.is_online(user)
