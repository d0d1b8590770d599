"""The ordering rules of one connection (`DeliveryOrder`), fed events, without I/O."""

from __future__ import annotations

import uuid

from rtm.consumer.domain.ordering import (
    Action,
    DeliveryOrder,
    RetryFill,
    Send,
    StartFill,
    TooFarBehind,
)

CONV, OTHER = uuid.uuid4(), uuid.uuid4()


def frame(seq: int, conversation: uuid.UUID = CONV) -> bytes:
    return f"{conversation}:{seq}".encode()


def stored(*seqs: int) -> list[tuple[int, bytes]]:
    return [(seq, frame(seq)) for seq in seqs]


def sent(actions: list[Action]) -> list[int]:
    """The seqs of the frames the actions send (every other action must be absent)."""
    assert all(isinstance(a, Send) for a in actions), actions
    return [int(a.frame.rsplit(b":", 1)[1]) for a in actions if isinstance(a, Send)]


def live(at: int = 0, *, max_waiting: int = 1000) -> DeliveryOrder:
    """A connection past its hold that has been sent CONV up to `at`."""
    order = DeliveryOrder(max_waiting=max_waiting, holding=False)
    if at:
        order.keep_from(CONV, at)
    return order


def offer(order: DeliveryOrder, *seqs: int, conversation: uuid.UUID = CONV) -> list[Action]:
    actions: list[Action] = []
    for seq in seqs:
        actions.extend(order.offer(conversation, seq, frame(seq, conversation)))
    return actions


# Strictly increasing, no gap


def test_the_next_message_goes_out_at_once() -> None:
    order = live()
    assert sent(offer(order, 1, 2, 3)) == [1, 2, 3]
    assert order.last_sent(CONV) == 3


def test_follows_on_answers_only_the_message_that_goes_out_now() -> None:
    """The hub's per-socket fast path: True means sent (and recorded); False leaves every
    other case, unchanged, to `offer`."""
    order = live(at=3)
    assert order.follows_on(CONV, 4)
    assert order.last_sent(CONV) == 4
    assert not order.follows_on(CONV, 4)  # a duplicate
    assert not order.follows_on(CONV, 6)  # a gap: no fill started by the fast path
    assert order.last_sent(CONV) == 4
    assert offer(order, 6) == [StartFill(CONV, 4)]
    assert not order.follows_on(CONV, 5)  # the next one, but a fill is running
    assert order.follows_on(OTHER, 9)  # a conversation's first message, no hold
    held = DeliveryOrder(max_waiting=10, holding=True)
    assert not held.follows_on(CONV, 1)  # held until the first resume
    assert held.last_sent(CONV) == 0


def test_a_duplicate_is_dropped() -> None:
    order = live(at=3)
    assert offer(order, 3, 2) == []
    assert sent(offer(order, 4)) == [4]


def test_a_gap_starts_a_fill_after_the_last_sent_and_later_messages_wait() -> None:
    order = live(at=1)
    assert offer(order, 4) == [StartFill(CONV, 1)]
    assert offer(order, 5) == []  # waits behind the fill
    actions = order.caught_up(CONV, 1, stored(2, 3, 4), last_seq=4, recovered=True)
    assert sent(actions) == [2, 3, 4, 5]
    assert order.last_sent(CONV) == 5


def test_a_duplicate_during_a_fill_is_dropped_when_the_fill_is_done() -> None:
    order = live(at=1)
    offer(order, 4)
    assert offer(order, 4, 1) == []
    actions = order.caught_up(CONV, 1, stored(2, 3, 4), last_seq=4, recovered=True)
    assert sent(actions) == [2, 3, 4]


def test_a_message_past_a_new_gap_after_a_fill_starts_another_fill() -> None:
    order = live(at=1)
    offer(order, 3)
    offer(order, 6)  # 4 and 5 lost too
    actions = order.caught_up(CONV, 1, stored(2, 3), last_seq=3, recovered=True)
    assert actions == [Send(frame(2)), Send(frame(3)), StartFill(CONV, 3)]


def test_conversations_are_ordered_independently() -> None:
    order = live(at=1)
    offer(order, 5)  # CONV waits for a fill
    assert sent(offer(order, 1, 2, conversation=OTHER)) == [1, 2]


def test_too_many_missing_moves_the_connection_to_the_head() -> None:
    order = live(at=1)
    offer(order, 900)
    actions = order.caught_up(CONV, 1, [], last_seq=899, recovered=False)
    assert sent(actions) == [900]


# The hold until the first resume


def test_a_new_connection_holds_live_messages() -> None:
    order = DeliveryOrder(max_waiting=1000)
    assert offer(order, 5, 6) == []
    assert order.last_sent(CONV) == 0


def test_held_messages_join_the_resume_catch_up_without_a_gap() -> None:
    order = DeliveryOrder(max_waiting=1000)
    offer(order, 6, 5)
    order.begin_resume()
    assert order.begin_catch_up(CONV) is False
    actions = order.caught_up(CONV, 2, stored(3, 4, 5, 6), last_seq=6, recovered=True)
    assert sent(actions) == [3, 4, 5, 6]
    assert order.end_hold() == []


def test_ending_the_hold_sends_the_held_messages_in_seq_order() -> None:
    order = DeliveryOrder(max_waiting=1000)
    offer(order, 9, 8)
    assert sent(order.end_hold()) == [8, 9]
    assert sent(offer(order, 10)) == [10]
    assert order.end_hold() == []  # idempotent


def test_the_grace_period_ends_the_hold_of_a_connection_that_never_resumes() -> None:
    order = DeliveryOrder(max_waiting=1000)
    offer(order, 1)
    assert sent(order.grace_over()) == [1]


def test_the_grace_period_does_not_end_the_hold_during_a_resume() -> None:
    """A held message of a conversation not caught up yet must not go out first."""
    order = DeliveryOrder(max_waiting=1000)
    offer(order, 11)
    order.begin_resume()
    order.begin_catch_up(OTHER)
    assert order.grace_over() == []
    order.caught_up(OTHER, 0, [], last_seq=0, recovered=True)
    order.begin_catch_up(CONV)
    actions = order.caught_up(CONV, 3, stored(*range(4, 11)), last_seq=10, recovered=True)
    assert sent(actions) == [4, 5, 6, 7, 8, 9, 10, 11]


def test_a_live_message_during_a_resume_waits_for_its_catch_up() -> None:
    order = DeliveryOrder(max_waiting=1000)
    order.begin_resume()
    order.begin_catch_up(CONV)
    assert offer(order, 5) == []  # stored and fanned out after the resume read the head
    actions = order.caught_up(CONV, 2, stored(3, 4), last_seq=4, recovered=True)
    assert sent(actions) == [3, 4, 5]
    assert order.last_sent(CONV) == 5


def test_a_live_message_of_another_conversation_during_a_resume_stays_held() -> None:
    order = DeliveryOrder(max_waiting=1000)
    order.begin_resume()
    order.begin_catch_up(CONV)
    assert offer(order, 1, conversation=OTHER) == []
    order.caught_up(CONV, 0, [], last_seq=0, recovered=True)
    assert [a.frame for a in order.end_hold() if isinstance(a, Send)] == [frame(1, OTHER)]


# PostgreSQL unavailable


def test_a_failed_fill_is_retried_and_its_messages_keep_waiting() -> None:
    order = live(at=1)
    offer(order, 4)
    assert order.fill_unavailable(CONV) == [RetryFill(CONV)]
    assert offer(order, 5) == []
    actions = order.caught_up(CONV, 1, stored(2, 3, 4), last_seq=4, recovered=True)
    assert sent(actions) == [2, 3, 4, 5]


def test_a_failing_fill_holding_more_than_the_cap_is_too_far_behind() -> None:
    order = live(at=1, max_waiting=2)
    offer(order, 4, 5)
    assert order.fill_unavailable(CONV) == [RetryFill(CONV)]  # 2 wait: at the cap
    offer(order, 6)
    assert order.fill_unavailable(CONV) == [TooFarBehind(CONV)]
    assert offer(order, 7) == [StartFill(CONV, 1)]  # nothing waits any more


def test_a_failed_resume_keeps_the_connection_at_the_cursor() -> None:
    order = DeliveryOrder(max_waiting=1000)
    offer(order, 5, 6)  # 3 and 4 are only in PostgreSQL
    order.begin_resume()
    shared = order.begin_catch_up(CONV)
    actions = order.resume_unavailable(CONV, 2, shared=shared)
    assert actions == [StartFill(CONV, 2)]
    assert order.end_hold() == []
    assert order.caught_up(CONV, 2, stored(3, 4, 5, 6), last_seq=6, recovered=True) == [
        Send(frame(seq)) for seq in (3, 4, 5, 6)
    ]


def test_after_a_failed_resume_the_message_after_the_cursor_goes_out_at_once() -> None:
    order = DeliveryOrder(max_waiting=1000)
    offer(order, 3)
    shared = order.begin_catch_up(CONV)
    assert sent(order.resume_unavailable(CONV, 2, shared=shared)) == [3]


def test_a_failed_resume_leaves_a_running_fill_its_waiting_messages() -> None:
    order = live(at=1)
    offer(order, 4)
    assert order.begin_catch_up(CONV) is True
    assert order.resume_unavailable(CONV, 1, shared=True) == []
    actions = order.caught_up(CONV, 1, stored(2, 3, 4), last_seq=4, recovered=True)
    assert sent(actions) == [2, 3, 4]


def test_the_cursor_of_a_conversation_a_failed_resume_did_not_reach_holds_its_messages() -> None:
    order = DeliveryOrder(max_waiting=1000)
    offer(order, 4)
    order.keep_from(CONV, 1)
    assert order.end_hold() == [StartFill(CONV, 1)]


def test_a_fill_failing_then_succeeding_sends_everything_in_order() -> None:
    order = live(at=1)
    offer(order, 4)
    for _ in range(3):
        assert order.fill_unavailable(CONV) == [RetryFill(CONV)]
        offer(order, 4)  # a redelivered duplicate meanwhile
    offer(order, 6, 5)
    actions = order.caught_up(CONV, 1, stored(2, 3, 4), last_seq=4, recovered=True)
    assert sent(actions) == [2, 3, 4, 5, 6]


def test_an_abandoned_catch_up_drops_what_waited() -> None:
    order = live(at=1)
    offer(order, 4)
    order.catch_up_abandoned(CONV)
    assert offer(order, 5) == [StartFill(CONV, 1)]


# A resume after live messages went out (issue 14: no hold unless the client asks for one)


def test_a_resume_behind_what_went_out_live_never_sends_out_of_order_and_says_so() -> None:
    # No hold: 5 goes out live at once. The client then resumes from 2: 3 and 4 can no longer
    # be sent (they would follow 5), so the conversation is reported not recovered.
    order = DeliveryOrder(max_waiting=1000, holding=False)
    assert sent(offer(order, 5)) == [5]
    order.begin_resume()
    order.begin_catch_up(CONV)
    assert offer(order, 6) == []  # waits behind the catch-up
    actions = order.caught_up(CONV, 2, stored(3, 4, 5, 6), last_seq=6, recovered=True)
    assert sent(actions) == [6]  # 3 and 4 never after 5
    assert order.missed_before(CONV, 2) is True
    assert sent(offer(order, 7)) == [7]


def test_a_resume_from_just_before_what_went_out_live_is_complete() -> None:
    order = DeliveryOrder(max_waiting=1000, holding=False)
    assert sent(offer(order, 5, 6)) == [5, 6]
    order.begin_catch_up(CONV)
    actions = order.caught_up(CONV, 4, stored(5, 6, 7), last_seq=7, recovered=True)
    assert sent(actions) == [7]
    assert order.missed_before(CONV, 4) is False
    assert order.missed_before(CONV, 6) is False


def test_a_resume_of_a_conversation_not_sent_yet_is_complete() -> None:
    order = DeliveryOrder(max_waiting=1000, holding=False)
    order.begin_catch_up(CONV)
    assert sent(order.caught_up(CONV, 2, stored(3), last_seq=3, recovered=True)) == [3]
    assert order.missed_before(CONV, 2) is False
    assert order.missed_before(OTHER, 0) is False


def test_a_resume_after_the_grace_period_let_held_messages_out_says_what_it_missed() -> None:
    order = DeliveryOrder(max_waiting=1000)
    offer(order, 8)
    assert sent(order.grace_over()) == [8]
    assert order.missed_before(CONV, 3) is True
    assert order.missed_before(CONV, 7) is False


def test_a_connection_kept_at_a_cursor_it_could_not_resume_from_missed_nothing() -> None:
    order = DeliveryOrder(max_waiting=1000, holding=False)
    order.keep_from(CONV, 4)
    assert offer(order, 6) == [StartFill(CONV, 4)]
    assert order.missed_before(CONV, 4) is False
