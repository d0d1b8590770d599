"""`TokenExpiry`: one timer closes every watched connection when its current token expires, never
before, and a refreshed token (moved later or earlier) is honoured whatever stale entries remain."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import pytest

from rtm.shared.expiry import TokenExpiry


class Conn:
    """A connection whose token expires at `expires_at`; records when it was told."""

    def __init__(self, expires_at: float, clock: Clock | None = None) -> None:
        self.expires_at = expires_at
        self.expired_at: list[float] = []
        self._clock = clock

    def token_expires_at(self) -> float:
        return self.expires_at

    def token_expired(self) -> None:
        self.expired_at.append(self._clock() if self._clock is not None else time.time())


class Clock:
    """A wall clock the test moves by hand (the loop's own timer is then far in the future)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_connection_is_closed_once_its_expiry_has_passed_not_before(clock: Clock) -> None:
    watch = TokenExpiry(clock)
    conn = Conn(clock.now + 10, clock)
    watch.watch(conn)
    watch.expire_due(clock.now + 9.999)
    assert conn.expired_at == []
    clock.now += 10
    watch.expire_due(clock.now)
    assert conn.expired_at == [clock.now]
    assert len(watch) == 0
    watch.expire_due(clock.now + 100)
    assert len(conn.expired_at) == 1  # told once


async def test_a_token_refreshed_later_keeps_the_connection_past_the_old_expiry(
    clock: Clock,
) -> None:
    watch = TokenExpiry(clock)
    conn = Conn(clock.now + 10, clock)
    watch.watch(conn)
    conn.expires_at = clock.now + 600  # an `auth` frame
    watch.watch(conn)
    clock.now += 10  # the stale entry comes due: checked against the current expiry
    watch.expire_due(clock.now)
    assert conn.expired_at == []
    assert len(watch) == 1
    clock.now += 589.9
    watch.expire_due(clock.now)
    assert conn.expired_at == []
    clock.now += 0.1
    watch.expire_due(clock.now)
    assert conn.expired_at == [clock.now]


async def test_a_token_refreshed_without_a_new_watch_is_still_checked(clock: Clock) -> None:
    watch = TokenExpiry(clock)
    conn = Conn(clock.now + 10, clock)
    watch.watch(conn)
    conn.expires_at = clock.now + 20
    clock.now += 10
    watch.expire_due(clock.now)
    assert conn.expired_at == []
    clock.now += 10
    watch.expire_due(clock.now)
    assert conn.expired_at == [clock.now]


async def test_a_token_refreshed_earlier_closes_at_the_earlier_time_and_only_once(
    clock: Clock,
) -> None:
    watch = TokenExpiry(clock)
    conn = Conn(clock.now + 600, clock)
    watch.watch(conn)
    conn.expires_at = clock.now + 5  # a new token living shorter than the first
    watch.watch(conn)
    clock.now += 5
    watch.expire_due(clock.now)
    assert conn.expired_at == [clock.now]
    watch.expire_due(clock.now + 600)  # the dead entry of the first token
    assert len(conn.expired_at) == 1


async def test_refreshes_back_and_forth_among_other_connections(clock: Clock) -> None:
    watch = TokenExpiry(clock)
    start = clock.now
    a = Conn(start + 10, clock)
    b = Conn(start + 20, clock)
    c = Conn(start + 30, clock)
    for conn in (a, b, c):
        watch.watch(conn)
    a.expires_at = start + 40  # later
    watch.watch(a)
    b.expires_at = start + 5  # earlier
    watch.watch(b)
    a.expires_at = start + 25  # earlier again, still after its first entry
    watch.watch(a)
    clock.now = start + 5
    watch.expire_due(clock.now)
    assert (a.expired_at, b.expired_at, c.expired_at) == ([], [start + 5], [])
    clock.now = start + 24.9
    watch.expire_due(clock.now)
    assert a.expired_at == []
    clock.now = start + 25
    watch.expire_due(clock.now)
    assert (a.expired_at, c.expired_at) == ([start + 25], [])
    clock.now = start + 100
    watch.expire_due(clock.now)
    assert (len(a.expired_at), len(b.expired_at), c.expired_at) == (1, 1, [start + 100])
    assert len(watch) == 0


async def test_a_forgotten_connection_is_not_closed_nor_kept_alive(clock: Clock) -> None:
    watch = TokenExpiry(clock)
    keeper = Conn(clock.now + 1000, clock)  # keeps the heap non-empty
    watch.watch(keeper)
    conn = Conn(clock.now + 10, clock)
    told = conn.expired_at
    watch.watch(conn)
    watch.forget(conn)
    gone = weakref.ref(conn)
    del conn
    gc.collect()
    assert gone() is None
    watch.expire_due(clock.now + 10)
    assert told == []
    assert len(watch) == 1
    watch.forget(keeper)
    assert len(watch) == 0


async def test_connections_coming_and_going_do_not_pile_up_in_the_heap(clock: Clock) -> None:
    watch = TokenExpiry(clock)
    keepers = [Conn(clock.now + 900, clock) for _ in range(10)]
    for conn in keepers:
        watch.watch(conn)
    for _ in range(10_000):
        conn = Conn(clock.now + 900, clock)
        watch.watch(conn)
        watch.forget(conn)
    assert len(watch) == 10
    assert len(watch._heap) <= 2 * 10 + 64 + 1
    clock.now += 900
    watch.expire_due(clock.now)
    assert all(len(conn.expired_at) == 1 for conn in keepers)


async def test_many_connections_expiring_together_are_all_closed(clock: Clock) -> None:
    watch = TokenExpiry(clock)
    conns = [Conn(clock.now + 10, clock) for _ in range(100)]
    for conn in conns:
        watch.watch(conn)
    clock.now += 10
    watch.expire_due(clock.now)
    assert all(conn.expired_at == [clock.now] for conn in conns)


async def test_the_timer_closes_on_time_and_honours_a_refresh_in_between() -> None:
    """The real loop and wall clock: closed when due (not before, at most a little after)."""
    watch = TokenExpiry()
    now = time.time()
    early = Conn(now + 0.2)
    refreshed = Conn(now + 0.2)
    late = Conn(now + 0.5)
    for conn in (early, refreshed, late):
        watch.watch(conn)
    refreshed.expires_at = now + 0.35
    watch.watch(refreshed)
    await asyncio.sleep(0.7)
    for conn in (early, refreshed, late):
        assert len(conn.expired_at) == 1
        assert conn.expires_at <= conn.expired_at[0] < conn.expires_at + 0.15
    assert len(watch) == 0


async def test_a_token_already_expired_is_closed_on_the_next_loop_turn_not_in_watch() -> None:
    watch = TokenExpiry()
    conn = Conn(time.time() - 1)
    watch.watch(conn)
    assert conn.expired_at == []  # the caller finishes setting the connection up first
    await asyncio.sleep(0.01)
    assert len(conn.expired_at) == 1


async def test_a_close_that_raises_does_not_stop_the_others() -> None:
    class Broken(Conn):
        def token_expired(self) -> None:
            super().token_expired()
            raise RuntimeError("boom")

    loop = asyncio.get_running_loop()
    errors: list[object] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context.get("exception")))
    try:
        watch = TokenExpiry()
        now = time.time()
        broken = Broken(now + 0.05)
        fine = Conn(now + 0.05)
        later = Conn(now + 0.1)
        for conn in (broken, fine, later):
            watch.watch(conn)
        await asyncio.sleep(0.3)
    finally:
        loop.set_exception_handler(None)
    assert [len(c.expired_at) for c in (broken, fine, later)] == [1, 1, 1]
    assert len(errors) == 1


async def test_the_timer_stops_when_the_last_connection_goes() -> None:
    watch = TokenExpiry()
    conn = Conn(time.time() + 60)
    watch.watch(conn)
    assert watch._timer is not None
    watch.forget(conn)
    assert watch._timer is None
