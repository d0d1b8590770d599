"""Recovery times and ack pauses are measured as RELIABILITY.md defines them."""

from __future__ import annotations

import pytest

from rtm.chaos.recovery import Created, DeliveryIndex, longest_pause, spread


def test_recovery_waits_for_every_conversation_with_traffic_after_the_fault() -> None:
    index = DeliveryIndex(
        [
            Created("a", 9.0, 9.1),  # before the fault: does not count
            Created("a", 10.2, 10.3),
            Created("b", 10.1, 14.0),  # b's first post-fault message took 4 s
            Created("b", 10.5, 14.0),
        ]
    )
    assert index.recovery(since=10.0, until=60.0) == pytest.approx(4.0)


def test_a_later_message_delivered_first_ends_the_outage() -> None:
    index = DeliveryIndex([Created("a", 10.1, 15.0), Created("a", 10.2, 12.0)])
    assert index.recovery(since=10.0, until=60.0) == pytest.approx(2.0)


def test_a_message_delivered_before_the_fault_ended_does_not_end_the_outage() -> None:
    index = DeliveryIndex([Created("a", 9.9, 10.05), Created("a", 10.3, 13.0)])
    assert index.recovery(since=10.0, until=60.0) == pytest.approx(3.0)


def test_a_conversation_that_never_delivers_again_never_recovered() -> None:
    index = DeliveryIndex([Created("a", 10.1, 10.2), Created("b", 10.1, None)])
    assert index.recovery(since=10.0, until=60.0) is None


def test_conversations_without_traffic_after_the_fault_are_not_waited_for() -> None:
    index = DeliveryIndex([Created("a", 10.1, 10.2), Created("b", 61.0, None)])
    assert index.recovery(since=10.0, until=60.0) == pytest.approx(0.2)
    assert DeliveryIndex([]).recovery(since=10.0, until=60.0) == 0.0


def test_longest_pause_counts_from_the_fault_to_the_next() -> None:
    acks = [1.0, 2.0, 2.5, 6.0, 6.1]
    assert longest_pause(acks, since=2.0, until=7.0) == pytest.approx(3.5)
    assert longest_pause(acks, since=6.05, until=6.5) == pytest.approx(0.4)
    assert longest_pause([], since=1.0, until=4.0) == pytest.approx(3.0)
    assert longest_pause(acks, since=5.0, until=5.0) == 0.0


def test_spread_gives_min_median_max() -> None:
    found = spread([3.0, 1.0, 2.0, 10.0])
    assert found is not None
    assert (found.count, found.min, found.median, found.max) == (4, 1.0, 2.5, 10.0)
    assert spread([]) is None


def test_the_rejoin_stall_is_the_slowest_message_created_in_the_window() -> None:
    index = DeliveryIndex(
        [
            Created("a", 19.0, 25.0),  # before the window: not counted, however slow
            Created("a", 20.1, 20.15),
            Created("b", 21.0, 21.6),  # held while its partition moved: 0.6 s
            Created("b", 26.0, 40.0),  # after the window
        ]
    )
    assert index.worst_latency(20.0, 25.0) == pytest.approx(0.6)
    assert index.worst_latency(30.0, 35.0) == 0.0
    assert DeliveryIndex([Created("a", 21.0, None)]).worst_latency(20.0, 25.0) is None
