"""`rtm chaos` plans replayable runs: the population, the messages and the fault schedules."""

from __future__ import annotations

import itertools
import random

import pytest

from rtm.chaos.errors import ChaosError
from rtm.chaos.faults import (
    ALL_KINDS,
    FREEZES,
    LASTING,
    FaultKind,
    fault_rng,
    parse_kinds,
    random_schedule,
    rotation_schedule,
)
from rtm.chaos.workload import plan_conversations, plan_messages

CONSUMERS = ["consumer-1", "consumer-2"]


def test_conversations_are_half_groups_of_4_to_6_and_half_distinct_direct_pairs() -> None:
    planned = plan_conversations(random.Random(1), users=20, conversations=10)
    groups = [c for c in planned if c.kind == "group"]
    directs = [c for c in planned if c.kind == "direct"]
    assert len(groups) == 5
    assert all(4 <= len(c.members) <= 6 for c in groups)
    assert all(len(c.members) == 2 for c in directs)
    assert len({frozenset(c.members) for c in directs}) == 5
    assert all(len(set(c.members)) == len(c.members) for c in planned)


@pytest.mark.parametrize(("users", "conversations"), [(20, 10), (12, 6), (10, 5)])
def test_every_user_is_seated_when_there_are_seats_enough(users: int, conversations: int) -> None:
    for seed in range(20):
        planned = plan_conversations(random.Random(seed), users, conversations)
        assert {u for c in planned for u in c.members} == set(range(users)), seed


def test_the_same_seed_plans_the_same_run() -> None:
    def plan(seed: int) -> tuple[object, object]:
        rng = random.Random(seed)
        conversations = plan_conversations(rng, 12, 6)
        return conversations, plan_messages(rng, conversations, 80.0, 10.0)

    assert plan(7) == plan(7)
    assert plan(7) != plan(8)


def test_messages_are_evenly_spaced_and_sent_by_members() -> None:
    rng = random.Random(3)
    conversations = plan_conversations(rng, 12, 6)
    messages = plan_messages(rng, conversations, rate=80.0, duration=10.0)
    assert len(messages) == 800
    assert [m.at for m in messages[:3]] == [0.0, 1 / 80, 2 / 80]
    assert all(m.sender in conversations[m.conversation].members for m in messages)
    assert len({m.client_msg_id for m in messages}) == 800
    assert {m.conversation for m in messages} == set(range(6))


def test_too_few_users_for_the_conversations_is_refused() -> None:
    with pytest.raises(ChaosError):
        plan_conversations(random.Random(1), users=1, conversations=2)
    with pytest.raises(ChaosError):
        plan_conversations(random.Random(1), users=3, conversations=10)  # 5 directs, 3 pairs


def test_random_schedule_keeps_its_gaps_and_leaves_the_end_of_the_load_quiet() -> None:
    schedule = random_schedule(
        random.Random(5), duration=300.0, kinds=ALL_KINDS, consumers=CONSUMERS,
        gap=(15.0, 30.0), pause=10.0, settle=10.0,
    )  # fmt: skip
    assert schedule
    for before, after in itertools.pairwise(schedule):
        assert 15.0 <= after.at - (before.at + before.pause) <= 30.0
    last = schedule[-1]
    assert last.at + last.pause + 10.0 <= 300.0
    assert all(f.pause == (10.0 if f.kind in LASTING else 0.0) for f in schedule)


def test_random_schedule_deals_every_kind_before_repeating_one() -> None:
    schedule = random_schedule(
        random.Random(9), duration=600.0, kinds=ALL_KINDS, consumers=CONSUMERS
    )
    assert len(schedule) >= 2 * len(ALL_KINDS)
    for n in range(2):
        rounds = schedule[n * len(ALL_KINDS) : (n + 1) * len(ALL_KINDS)]
        assert {f.kind for f in rounds} == set(ALL_KINDS)


def test_consumer_faults_hit_the_instances_in_turn() -> None:
    schedule = random_schedule(
        random.Random(2), duration=300.0, kinds=[FaultKind.CONSUMER_KILL],
        consumers=CONSUMERS, gap=(5.0, 6.0),
    )  # fmt: skip
    targets = [f.target for f in schedule]
    assert targets[:4] == ["consumer-1", "consumer-2", "consumer-1", "consumer-2"]
    assert {f.label for f in schedule[:2]} == {"kill -9 consumer-1", "kill -9 consumer-2"}


def test_the_fault_schedule_replays_from_the_seed() -> None:
    def schedule(seed: int) -> object:
        return random_schedule(
            fault_rng(seed), duration=200.0, kinds=ALL_KINDS, consumers=CONSUMERS
        )

    assert schedule(11) == schedule(11)
    assert schedule(11) != schedule(12)


def test_rotation_kills_consumers_every_interval_and_each_extra_once() -> None:
    schedule = rotation_schedule(random.Random(1), duration=85.0, consumers=CONSUMERS, every=10.0)
    kills = [f for f in schedule if f.kind is FaultKind.CONSUMER_KILL]
    assert [f.at for f in kills] == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    assert [f.target for f in kills[:3]] == ["consumer-1", "consumer-2", "consumer-1"]
    extras = [f for f in schedule if f.kind is not FaultKind.CONSUMER_KILL]
    assert sorted(f.kind for f in extras) == sorted(
        [
            FaultKind.PRODUCER_KILL,
            FaultKind.NATS_KILL,
            FaultKind.POSTGRES_KILL,
            FaultKind.POSTGRES_STOP,
            FaultKind.POSTMASTER_STOP,
        ]
    )
    freezes = [f for f in extras if f.kind in FREEZES]
    assert [(f.at, f.pause) for f in freezes] == [(45.0, 10.0), (65.0, 10.0)]
    assert {f.target for f in freezes} == {"postgres"}
    assert [f.label for f in freezes] == ["SIGSTOP postgres 10s", "SIGSTOP postmaster 10s"]


def test_rotation_can_keep_every_other_killed_consumer_down_past_the_lease_ttl() -> None:
    schedule = rotation_schedule(
        random.Random(1), duration=85.0, consumers=CONSUMERS, every=10.0, down_every=2, down=8.0
    )
    consumers = [f for f in schedule if f.target.startswith("consumer")]
    assert [(f.at, f.kind, f.pause) for f in consumers[:3]] == [
        (10.0, FaultKind.CONSUMER_KILL, 0.0),
        (20.0, FaultKind.CONSUMER_DOWN, 8.0),
        (30.0, FaultKind.CONSUMER_KILL, 0.0),
    ]
    assert consumers[1].label == "kill -9 consumer-2, down 8s"


def test_rotation_refuses_a_load_too_short_for_its_extras() -> None:
    with pytest.raises(ChaosError):
        rotation_schedule(random.Random(1), duration=60.0, consumers=CONSUMERS, every=10.0)


def test_fault_kinds_are_parsed_in_order_without_repeats() -> None:
    assert parse_kinds("nats-kill,consumer-kill,nats-kill") == [
        FaultKind.NATS_KILL,
        FaultKind.CONSUMER_KILL,
    ]
    assert parse_kinds("all") == list(ALL_KINDS)
    with pytest.raises(ChaosError, match="unknown fault kind 'nats'"):
        parse_kinds("nats")
