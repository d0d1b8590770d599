"""The membership cache and the outage cooldown: pure, on a hand-moved clock."""

from __future__ import annotations

import uuid

import pytest

from rtm.producer.domain.membership import CachedMembers, Cooldown, MembershipCache
from tests.support.clock import FakeClock


def members(count: int = 2) -> frozenset[uuid.UUID]:
    return frozenset(uuid.uuid4() for _ in range(count))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def cache_on(
    clock: FakeClock, *, ttl: float = 30, stale_for: float = 60, size: int = 1000
) -> MembershipCache:
    return MembershipCache(ttl=ttl, stale_for=stale_for, max_members=size, now=clock.monotonic)


def test_an_entry_is_fresh_then_stale_then_forgotten(clock: FakeClock) -> None:
    cache = cache_on(clock, ttl=30, stale_for=60)
    conversation, who = uuid.uuid4(), members()
    assert cache.lookup(conversation) is None
    assert cache.fill(conversation, who, cache.token())
    assert cache.lookup(conversation) == CachedMembers(who, fresh=True)
    clock.advance(29.9)
    assert cache.lookup(conversation) == CachedMembers(who, fresh=True)
    clock.advance(0.1)
    assert cache.lookup(conversation) == CachedMembers(who, fresh=False)
    clock.advance(59.9)
    assert cache.lookup(conversation) == CachedMembers(who, fresh=False)
    clock.advance(0.1)
    assert cache.lookup(conversation) is None
    assert len(cache) == 0


def test_a_read_begun_before_an_invalidation_is_not_stored(clock: FakeClock) -> None:
    """The race a cache must not lose: read (old members) ... invalidate ... store the read."""
    cache = cache_on(clock)
    conversation, other = uuid.uuid4(), uuid.uuid4()
    token = cache.token()
    cache.invalidate(conversation)
    assert not cache.fill(conversation, members(), token)
    assert cache.lookup(conversation) is None
    # Another conversation's invalidation does not spoil the read, and a read begun after the
    # invalidation is stored.
    assert cache.fill(other, members(), token)
    assert cache.fill(conversation, members(), cache.token())


def test_invalidate_drops_the_entry(clock: FakeClock) -> None:
    cache = cache_on(clock)
    conversation = uuid.uuid4()
    cache.fill(conversation, members(), cache.token())
    cache.invalidate(conversation)
    assert cache.lookup(conversation) is None
    assert cache.weight == 0


def test_expire_all_makes_entries_stale_and_refuses_reads_in_flight(clock: FakeClock) -> None:
    cache = cache_on(clock)
    known, pending = uuid.uuid4(), uuid.uuid4()
    who = members()
    cache.fill(known, who, cache.token())
    token = cache.token()
    cache.expire_all()
    assert cache.lookup(known) == CachedMembers(who, fresh=False)
    assert not cache.fill(pending, members(), token)
    assert cache.fill(known, who, cache.token())
    assert cache.lookup(known) == CachedMembers(who, fresh=True)


def test_size_is_bounded_by_member_ids_least_recently_used_out(clock: FakeClock) -> None:
    cache = cache_on(clock, size=10)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.fill(first, members(4), cache.token())
    cache.fill(second, members(4), cache.token())
    assert cache.lookup(first) is not None  # now the most recently used
    cache.fill(third, members(4), cache.token())
    assert cache.lookup(second) is None
    assert cache.lookup(first) is not None
    assert cache.lookup(third) is not None
    assert cache.weight == 8


def test_an_empty_membership_weighs_one_and_one_huge_entry_still_fits(clock: FakeClock) -> None:
    cache = cache_on(clock, size=3)
    empty, huge = uuid.uuid4(), uuid.uuid4()
    cache.fill(empty, frozenset(), cache.token())
    assert cache.weight == 1
    cache.fill(huge, members(50), cache.token())
    assert len(cache) == 1
    assert cache.lookup(huge) is not None


def test_forgotten_invalidations_make_older_reads_refused(clock: FakeClock) -> None:
    """Invalidation records are bounded too; dropping one refuses every read begun before it
    (conservative: an extra miss, never a stale store)."""
    cache = cache_on(clock, size=1)
    conversation = uuid.uuid4()
    token = cache.token()
    for _ in range(1100):
        cache.invalidate(uuid.uuid4())
    assert not cache.fill(conversation, members(), token)
    assert cache.fill(conversation, members(), cache.token())


def test_refill_replaces_the_entry_and_its_weight(clock: FakeClock) -> None:
    cache = cache_on(clock)
    conversation = uuid.uuid4()
    cache.fill(conversation, members(5), cache.token())
    clock.advance(40)
    cache.fill(conversation, members(2), cache.token())
    assert cache.weight == 2
    found = cache.lookup(conversation)
    assert found is not None
    assert found.fresh


@pytest.mark.parametrize(("ttl", "stale_for", "size"), [(0, 1, 1), (1, -1, 1), (1, 1, 0)], ids=str)
def test_nonsense_limits_are_refused(
    clock: FakeClock, ttl: float, stale_for: float, size: int
) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        MembershipCache(ttl=ttl, stale_for=stale_for, max_members=size, now=clock.monotonic)


def test_cooldown_blocks_after_a_failure_until_it_passes_or_a_success(clock: FakeClock) -> None:
    cooldown = Cooldown(1.0, clock.monotonic)
    assert not cooldown.blocked
    cooldown.failed()
    assert cooldown.blocked
    clock.advance(0.99)
    assert cooldown.blocked
    clock.advance(0.01)
    assert not cooldown.blocked
    cooldown.failed()
    cooldown.succeeded()
    assert not cooldown.blocked
