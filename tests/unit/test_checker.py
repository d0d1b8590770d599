"""The history checker catches a lost, a duplicated and a reordered message."""

from __future__ import annotations

import uuid

from tests.support.checker import Acked, Stored, check_history

CONV, ALICE = uuid.uuid4(), uuid.uuid4()
IDS = [uuid.uuid4() for _ in range(4)]


def good() -> tuple[list[Acked], list[Stored]]:
    acked = [Acked(CONV, ALICE, i) for i in IDS]
    stored = [Stored(CONV, n + 1, ALICE, i, 10 + n) for n, i in enumerate(IDS)]
    return acked, stored


def test_a_correct_history_passes() -> None:
    assert check_history(*good()) == []


def test_a_lost_message_is_reported() -> None:
    acked, stored = good()
    stored = [s for s in stored if s.client_msg_id != IDS[3]]
    assert any(p.startswith("lost") for p in check_history(acked, stored))


def test_a_duplicated_message_is_reported() -> None:
    acked, stored = good()
    stored.append(Stored(CONV, 5, ALICE, IDS[1], 20))
    assert any("stored 2 times" in p for p in check_history(acked, stored))


def test_a_reordered_message_is_reported() -> None:
    acked, stored = good()
    stored[1], stored[2] = (
        Stored(CONV, 3, ALICE, IDS[1], 11),
        Stored(CONV, 2, ALICE, IDS[2], 12),
    )
    problems = check_history(acked, stored)
    assert any("stream order" in p for p in problems)
    assert any("sender order" in p for p in problems)


def test_a_gap_in_seq_is_reported() -> None:
    acked, stored = good()
    stored[3] = Stored(CONV, 6, ALICE, IDS[3], 13)
    assert any("not dense" in p for p in check_history(acked, stored))


def test_a_retried_message_may_be_stored_out_of_sender_order_but_not_twice() -> None:
    acked = [
        Acked(CONV, ALICE, IDS[1]),
        Acked(CONV, ALICE, IDS[0], retried=True),
        Acked(CONV, ALICE, IDS[2]),
    ]
    stored = [Stored(CONV, n + 1, ALICE, i, 10 + n) for n, i in enumerate(IDS[:3])]
    assert check_history(acked, stored) == []
    assert any("stored 2 times" in p for p in check_history(acked, [*stored, stored[0]]))


def test_an_unretried_message_out_of_sender_order_is_still_reported() -> None:
    acked = [Acked(CONV, ALICE, IDS[1]), Acked(CONV, ALICE, IDS[0]), Acked(CONV, ALICE, IDS[2])]
    stored = [Stored(CONV, n + 1, ALICE, i, 10 + n) for n, i in enumerate(IDS[:3])]
    assert any("sender order" in p for p in check_history(acked, stored))
