"""The history checker catches every kind of bad history: in the store and at the receivers."""

from __future__ import annotations

import uuid

from rtm.chaos.checker import (
    Acked,
    ConnectionLog,
    Kind,
    ReceiverLog,
    Sighting,
    Stored,
    Violation,
    check_history,
    check_receivers,
)

CONV, OTHER, ALICE = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
IDS = [uuid.uuid4() for _ in range(4)]
MESSAGE_IDS = [uuid.uuid4() for _ in range(4)]


def good() -> tuple[list[Acked], list[Stored]]:
    acked = [Acked(CONV, ALICE, i, message_id=m) for i, m in zip(IDS, MESSAGE_IDS, strict=True)]
    stored = [Stored(CONV, n + 1, ALICE, i, 10 + n, MESSAGE_IDS[n]) for n, i in enumerate(IDS)]
    return acked, stored


def kinds(violations: list[Violation]) -> set[Kind]:
    return {v.kind for v in violations}


def test_a_correct_history_passes() -> None:
    assert check_history(*good()) == []


def test_a_lost_message_is_reported() -> None:
    acked, stored = good()
    stored = [s for s in stored if s.client_msg_id != IDS[3]]
    assert kinds(check_history(acked, stored)) == {Kind.LOST}


def test_a_duplicated_message_is_reported() -> None:
    acked, stored = good()
    stored.append(Stored(CONV, 5, ALICE, IDS[1], 20, uuid.uuid4()))
    problems = check_history(acked, stored)
    assert Kind.DUPLICATED in kinds(problems)
    assert any("stored 2 times" in str(p) for p in problems)


def test_a_reordered_message_is_reported() -> None:
    acked, stored = good()
    stored[1], stored[2] = (
        Stored(CONV, 3, ALICE, IDS[1], 11, MESSAGE_IDS[1]),
        Stored(CONV, 2, ALICE, IDS[2], 12, MESSAGE_IDS[2]),
    )
    assert kinds(check_history(acked, stored)) == {Kind.STREAM_ORDER, Kind.SENDER_ORDER}


def test_a_gap_in_seq_is_reported() -> None:
    acked, stored = good()
    stored[3] = Stored(CONV, 6, ALICE, IDS[3], 13, MESSAGE_IDS[3])
    assert kinds(check_history(acked, stored)) == {Kind.SEQ_NOT_DENSE}


def test_a_retried_message_may_be_stored_out_of_sender_order_but_not_twice() -> None:
    acked = [
        Acked(CONV, ALICE, IDS[1]),
        Acked(CONV, ALICE, IDS[0], retried=True),
        Acked(CONV, ALICE, IDS[2]),
    ]
    stored = [Stored(CONV, n + 1, ALICE, i, 10 + n) for n, i in enumerate(IDS[:3])]
    assert check_history(acked, stored) == []
    again = Stored(CONV, 4, ALICE, IDS[0], 13)
    assert kinds(check_history(acked, [*stored, again])) == {Kind.DUPLICATED}


def test_an_unretried_message_out_of_sender_order_is_still_reported() -> None:
    acked = [Acked(CONV, ALICE, IDS[1]), Acked(CONV, ALICE, IDS[0]), Acked(CONV, ALICE, IDS[2])]
    stored = [Stored(CONV, n + 1, ALICE, i, 10 + n) for n, i in enumerate(IDS[:3])]
    assert kinds(check_history(acked, stored)) == {Kind.SENDER_ORDER}


def test_an_ack_naming_another_message_id_than_stored_is_reported() -> None:
    acked, stored = good()
    acked[2] = Acked(CONV, ALICE, IDS[2], message_id=uuid.uuid4())
    assert kinds(check_history(acked, stored)) == {Kind.WRONG_MESSAGE_ID}


def test_a_message_stored_in_another_conversation_is_reported() -> None:
    acked, stored = good()
    stored.append(Stored(OTHER, 1, ALICE, acked[3].client_msg_id, 14))
    stored = [s for s in stored if not (s.conversation_id == CONV and s.seq == 4)]
    assert kinds(check_history(acked, stored)) == {Kind.WRONG_CONVERSATION}


# -- receivers ---------------------------------------------------------------------------------


def receiver(*connections: ConnectionLog) -> ReceiverLog:
    return ReceiverLog("bob on consumer-1", [CONV], connections)


def sightings(stored: list[Stored]) -> list[Sighting]:
    return [Sighting(s.conversation_id, s.seq, s.message_id) for s in stored if s.message_id]


def test_a_receiver_that_resumed_across_connections_without_a_gap_passes() -> None:
    _, stored = good()
    bob = receiver(
        ConnectionLog(1, {CONV: 0}, {CONV: [1, 2]}),
        ConnectionLog(2, {CONV: 2}, {CONV: [3, 4]}),
    )
    assert check_receivers([bob], stored, sightings(stored)) == []


def test_a_gap_on_one_connection_is_reported_even_when_another_filled_it() -> None:
    _, stored = good()
    bob = receiver(
        ConnectionLog(1, {CONV: 0}, {CONV: [1, 3, 4]}),
        ConnectionLog(2, {CONV: 1}, {CONV: [2, 3, 4]}),
    )
    problems = check_receivers([bob], stored)
    assert kinds(problems) == {Kind.RECEIVER_GAP}
    assert "connection 1" in str(problems[0])


def test_a_resume_that_skips_past_the_cursor_is_a_gap() -> None:
    _, stored = good()
    bob = receiver(
        ConnectionLog(1, {CONV: 0}, {CONV: [1, 2]}),
        ConnectionLog(2, {CONV: 2}, {CONV: [4]}),
    )
    assert kinds(check_receivers([bob], stored)) == {Kind.RECEIVER_GAP, Kind.RECEIVER_MISSING}


def test_a_repeated_seq_at_the_resume_seam_is_reported() -> None:
    _, stored = good()
    bob = receiver(
        ConnectionLog(1, {CONV: 0}, {CONV: [1, 2]}),
        ConnectionLog(2, {CONV: 2}, {CONV: [2, 3, 4]}),
    )
    assert kinds(check_receivers([bob], stored)) == {Kind.RECEIVER_REPEAT}


def test_an_older_seq_after_a_newer_one_is_reported() -> None:
    _, stored = good()
    bob = receiver(ConnectionLog(1, {}, {CONV: [1, 2, 4, 3]}))
    assert Kind.RECEIVER_REPEAT in kinds(check_receivers([bob], stored))


def test_a_receiver_that_ends_without_the_last_messages_is_reported() -> None:
    _, stored = good()
    bob = receiver(ConnectionLog(1, {CONV: 0}, {CONV: [1, 2, 3]}))
    problems = check_receivers([bob], stored)
    assert kinds(problems) == {Kind.RECEIVER_MISSING}
    assert "[4]" in str(problems[0])


def test_a_receiver_that_was_sent_nothing_at_all_is_reported() -> None:
    _, stored = good()
    assert kinds(check_receivers([receiver()], stored)) == {Kind.RECEIVER_MISSING}


def test_a_delivered_message_that_is_not_the_stored_one_is_reported() -> None:
    _, stored = good()
    wrong = [*sightings(stored), Sighting(CONV, 2, uuid.uuid4()), Sighting(CONV, 9, uuid.uuid4())]
    bob = receiver(ConnectionLog(1, {}, {CONV: [1, 2, 3, 4]}))
    problems = check_receivers([bob], stored, wrong)
    assert [p.kind for p in problems] == [Kind.RECEIVER_WRONG_MESSAGE] * 2


def test_a_conversation_the_receiver_is_not_a_member_of_is_reported() -> None:
    _, stored = good()
    bob = receiver(ConnectionLog(1, {}, {CONV: [1, 2, 3, 4], OTHER: [1]}))
    assert kinds(check_receivers([bob], stored)) == {Kind.RECEIVER_FOREIGN}


def test_a_resume_that_was_not_recovered_is_reported() -> None:
    _, stored = good()
    bob = receiver(ConnectionLog(1, {}, {CONV: [1, 2, 3, 4]}, not_recovered=[CONV]))
    assert kinds(check_receivers([bob], stored)) == {Kind.NOT_RECOVERED}
