"""Exactly once and in order per conversation: the SDK's cursor rules, without I/O."""

from __future__ import annotations

from rtm.client import Message
from rtm.client.ordering import Sequencer

CHAT = "0193a0b0-0000-7000-8000-000000000001"
OTHER = "0193a0b0-0000-7000-8000-000000000002"


def message(seq: int, conversation: str = CHAT) -> Message:
    return Message(
        message_id=f"m-{conversation[-1]}-{seq}",
        conversation_id=conversation,
        seq=seq,
        sender_id="alice",
        body=f"body {seq}",
        client_msg_id=None,
        sent_at="2026-12-04T09:00:00.000Z",
    )


def seqs(messages: list[Message]) -> list[int]:
    return [m.seq for m in messages]


def test_messages_that_continue_the_cursor_are_delivered_and_move_it() -> None:
    sequencer = Sequencer({CHAT: 3})
    assert seqs(sequencer.on_message(message(4))) == [4]
    assert seqs(sequencer.on_message(message(5))) == [5]
    assert sequencer.cursors() == {CHAT: 5}


def test_a_message_at_or_below_the_cursor_is_a_duplicate_and_dropped() -> None:
    """A resend at a reconnect seam is not delivered twice."""
    sequencer = Sequencer({CHAT: 5})
    assert sequencer.on_message(message(5)) == []
    assert sequencer.on_message(message(2)) == []
    assert sequencer.duplicates == 2
    assert sequencer.cursors() == {CHAT: 5}


def test_a_gap_holds_later_messages_until_history_fills_it() -> None:
    """Nothing after a gap is delivered before the missing messages, which history supplies."""
    sequencer = Sequencer({CHAT: 1})
    assert sequencer.on_message(message(4)) == []
    assert sequencer.on_message(message(5)) == []
    assert sequencer.is_filling(CHAT)
    assert sequencer.fill_from(CHAT) == 1
    delivered, done = sequencer.on_history(CHAT, [message(2), message(3)], has_more=False)
    assert seqs(delivered) == [2, 3, 4, 5]
    assert done
    assert not sequencer.is_filling(CHAT)
    assert seqs(sequencer.on_message(message(6))) == [6]


def test_while_filling_a_message_that_continues_the_cursor_waits_its_turn() -> None:
    """Live messages during a fill are held, not delivered around it."""
    sequencer = Sequencer({CHAT: 0})
    sequencer.start_fill(CHAT)
    assert sequencer.on_message(message(1)) == []
    delivered, done = sequencer.on_history(CHAT, [message(1)], has_more=False)
    assert seqs(delivered) == [1]
    assert done
    assert sequencer.duplicates == 1


def test_a_fill_pages_until_history_has_no_more_and_nothing_is_held() -> None:
    sequencer = Sequencer({CHAT: 0})
    sequencer.on_message(message(6))
    delivered, done = sequencer.on_history(CHAT, [message(1), message(2)], has_more=True)
    assert (seqs(delivered), done) == ([1, 2], False)
    assert sequencer.fill_from(CHAT) == 2
    delivered, done = sequencer.on_history(CHAT, [message(3), message(4)], has_more=False)
    assert (seqs(delivered), done) == ([3, 4], False), "6 is held: 5 is not in history yet"
    delivered, done = sequencer.on_history(CHAT, [message(5), message(6)], has_more=False)
    assert (seqs(delivered), done) == ([5, 6], True)


def test_resumed_with_recovered_false_starts_a_fill_and_forbidden_forgets() -> None:
    sequencer = Sequencer({CHAT: 10, OTHER: 4})
    started = sequencer.on_resumed(
        {
            CHAT: {"last_seq": 2000, "recovered": False},
            OTHER: {"last_seq": 4, "recovered": False, "error": "forbidden"},
        }
    )
    assert started == [CHAT]
    assert sequencer.fill_from(CHAT) == 10
    assert sequencer.cursors() == {CHAT: 10}


def test_resumed_with_recovered_true_changes_nothing() -> None:
    sequencer = Sequencer({CHAT: 10})
    assert sequencer.on_resumed({CHAT: {"last_seq": 12, "recovered": True}}) == []
    assert not sequencer.is_filling(CHAT)


def test_a_conversation_never_seen_is_followed_from_its_first_message() -> None:
    sequencer = Sequencer()
    assert seqs(sequencer.on_message(message(7, OTHER))) == [7]
    assert seqs(sequencer.on_message(message(8, OTHER))) == [8]


def test_conversations_are_ordered_independently() -> None:
    """A gap in one conversation holds nothing of another."""
    sequencer = Sequencer({CHAT: 0, OTHER: 0})
    assert sequencer.on_message(message(2, CHAT)) == []
    assert seqs(sequencer.on_message(message(1, OTHER))) == [1]


def test_created_follows_from_zero_and_fills_what_came_before_the_event() -> None:
    sequencer = Sequencer()
    assert sequencer.on_conversation("created", CHAT, last_seq=0) is False
    assert sequencer.cursors() == {CHAT: 0}
    assert sequencer.on_conversation("created", OTHER, last_seq=3) is True
    assert sequencer.fill_from(OTHER) == 0


def test_member_added_follows_from_the_current_head() -> None:
    """Joining an existing conversation: live from here, older messages are history."""
    sequencer = Sequencer()
    sequencer.on_conversation("member_added", CHAT, last_seq=40)
    assert sequencer.on_message(message(40)) == []
    assert seqs(sequencer.on_message(message(41))) == [41]


def test_restored_cursors_keep_the_higher_one_and_moved_ones_are_reported_once() -> None:
    sequencer = Sequencer({CHAT: 5})
    sequencer.restore({CHAT: 3, OTHER: 9})
    assert sequencer.cursors() == {CHAT: 5, OTHER: 9}
    sequencer.on_message(message(6))
    assert sequencer.take_dirty() == {CHAT: 6}
    assert sequencer.take_dirty() == {}


def test_once_connected_before_an_unknown_conversation_is_filled_from_its_first_message() -> None:
    """A conversation created (or joined) while the client was down: its `conversation` event
    went to nobody, so its first live message (seq 3) must not start the cursor at 3."""
    sequencer = Sequencer({OTHER: 4})
    sequencer.from_start = True
    assert sequencer.on_message(message(3)) == []
    assert sequencer.is_filling(CHAT)
    assert sequencer.fill_from(CHAT) == 0
    delivered, done = sequencer.on_history(CHAT, [message(1), message(2)], has_more=False)
    assert (seqs(delivered), done) == ([1, 2, 3], True)


def test_listed_conversations_without_a_cursor_start_at_zero_after_a_first_connection() -> None:
    sequencer = Sequencer({OTHER: 4})
    sequencer.from_start = True
    assert sequencer.on_listed(CHAT, last_seq=2) is True
    assert sequencer.fill_from(CHAT) == 0
    assert sequencer.on_listed(OTHER, last_seq=9) is False, "a cursor is kept as it is"
    assert sequencer.cursors() == {CHAT: 0, OTHER: 4}


def test_on_a_first_ever_connection_listed_conversations_start_at_their_head() -> None:
    """Nothing was ever stored: what came before is history, not events."""
    sequencer = Sequencer()
    assert sequencer.on_listed(CHAT, last_seq=40) is False
    assert sequencer.on_listed(OTHER, last_seq=0) is False
    assert sequencer.cursors() == {CHAT: 40, OTHER: 0}
    assert seqs(sequencer.on_message(message(41))) == [41]
