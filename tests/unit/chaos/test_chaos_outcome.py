"""A run's records become a verdict, figures per fault, and a report that names what failed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from rtm.bench.population import BenchUser
from rtm.chaos.checker import Kind, Stored
from rtm.chaos.clients import Credentials, RunClock, parse_frame, require
from rtm.chaos.errors import MalformedFrame
from rtm.chaos.faults import FaultKind, PlannedFault
from rtm.chaos.inject import FaultRecord
from rtm.chaos.logs import partition_lines, trouble_lines
from rtm.chaos.outcome import ChaosConfig, ConversationInfo, Outcome, impacts, judge
from rtm.chaos.receiver import Deliveries
from rtm.chaos.report import Facts, markdown, summary
from rtm.chaos.sender import OutboxSender, Outgoing
from rtm.shared.contract import partition_of

CONV = str(uuid.uuid4())
ALICE = uuid.uuid4()
CONFIG = ChaosConfig(seed=1, duration=9.0, rate=1.0, users=2, conversations=1)


def sender(messages: list[Outgoing]) -> OutboxSender:
    user = BenchUser(0, str(ALICE), "alice", "pw", "token", "refresh", 0.0)
    credentials = Credentials(user, "http://127.0.0.1:9")
    return OutboxSender("alice", credentials, "ws://127.0.0.1:9/v1/ws", messages, RunClock())


def acked(s: OutboxSender, message: Outgoing, at: float, *, attempts: int = 1) -> None:
    message.attempts, message.first_send = attempts, message.index
    message.acked_at, message.message_id = at, str(uuid.uuid4())
    message.stream_seq, message.duplicate = 100 + message.index, attempts > 1
    s.acked.append(message)


def stored(message: Outgoing, seq: int) -> Stored:
    assert message.message_id is not None
    return Stored(
        uuid.UUID(CONV), seq, ALICE, uuid.UUID(message.client_msg_id), 100 + message.index,
        uuid.UUID(message.message_id),
    )  # fmt: skip


def run(*, lose_one: bool) -> Outcome:
    """Ten messages a second apart; kill -9 of consumer-1 at 3 s, delivered again at 5.5 s."""
    messages = [Outgoing(i, float(i), CONV, str(uuid.uuid4()), f"m{i}") for i in range(10)]
    s = sender(messages)
    deliveries = Deliveries()
    for m in messages[:9]:
        acked(s, m, m.due + 0.1, attempts=2 if m.index == 4 else 1)
        delivered = 5.5 if 3.0 <= m.due <= 5.0 else m.due + 0.2
        deliveries.saw(CONV, m.index + 1, str(m.message_id), m.client_msg_id, delivered)
    s.outbox[messages[9].client_msg_id] = messages[9]  # never acked
    rows = [stored(m, n + 1) for n, m in enumerate(messages[:9])]
    if lose_one:
        rows = [r for r in rows if r.seq != 9]
    record = FaultRecord(PlannedFault(3.0, FaultKind.CONSUMER_KILL, "consumer-1"), 3.0, 3.0, 42)
    record.back_after = 2.0
    skipped = FaultRecord(PlannedFault(20.0, FaultKind.NATS_KILL, "nats"), note="skipped")
    return judge(
        CONFIG,
        schedule=[record.planned, skipped.planned],
        conversations=[ConversationInfo(CONV, "direct", 2, partition_of(uuid.UUID(CONV), 8))],
        senders=[s],
        receivers=[],
        deliveries=deliveries,
        records=[record, skipped],
        stored=rows,
    )


def test_a_lost_message_is_located_by_partition_and_stream_sequence() -> None:
    outcome = run(lose_one=True)
    [lost] = outcome.lost
    assert lost.partition == partition_of(uuid.UUID(CONV), 8)
    assert lost.stream_seq == 108
    assert outcome.counts()["lost"] == 1
    # It had been delivered, too: a receiver was sent a (conversation, seq) that is not stored.
    assert {v.kind for v in outcome.violations} == {
        Kind.LOST,
        Kind.UNACKED,
        Kind.RECEIVER_WRONG_MESSAGE,
    }
    assert not outcome.ok


def test_a_send_never_acked_is_a_violation() -> None:
    outcome = run(lose_one=False)
    assert [v.kind for v in outcome.violations] == [Kind.UNACKED]
    assert outcome.totals.unacked == 1
    assert outcome.totals.retried == 1


def test_each_fault_gets_its_recovery_and_ack_pause_and_a_skipped_one_none() -> None:
    outcome = run(lose_one=False)
    hit, skipped = outcome.impacts
    assert hit.recovery is not None
    assert abs(hit.recovery - 2.5) < 1e-9  # messages created from 3 s on: delivered at 5.5 s
    assert abs(hit.ack_pause - 1.0) < 1e-9  # an ack every second until the load ends
    assert skipped.recovery is None
    assert not skipped.record.injected
    by_kind = outcome.recovery_by_kind()
    assert list(by_kind) == [FaultKind.CONSUMER_KILL]


def test_the_summary_and_report_give_the_verdict_and_what_failed() -> None:
    failed = run(lose_one=True)
    text = summary(failed)
    assert "FAIL: 1 lost" in text
    assert f"partition {failed.lost[0].partition}, stream_seq 108" in text
    assert "kill -9 consumer-1" in text
    report = markdown(failed, Facts(command="rtm chaos --seed 1", date="today", consumers=2))
    assert "**Verdict: FAIL: 1 lost, 2 other.**" in report
    assert "### Lost messages" in report
    assert "## Faults" in report
    assert "**recovery**" in report


def test_a_clean_run_passes() -> None:
    outcome = run(lose_one=False)
    outcome.violations.clear()
    assert outcome.ok
    assert summary(outcome).endswith("PASS: no violation")


def test_log_lines_about_the_lost_partitions_are_collected_in_time_order(tmp_path: Path) -> None:
    (tmp_path / "consumer-1.log").write_text(
        "--- 2026-01-01T00:00:01.000000Z rtm: started pid 10 ---\n"
        '{"ts": "2026-01-01T00:00:02.000", "level": "info", "msg": "took partition 3"}\n'
        '{"ts": "2026-01-01T00:00:03.000", "level": "info", "msg": "took partition 4"}\n'
        "not json\n"
    )
    (tmp_path / "consumer-2.log").write_text(
        '{"ts": "2026-01-01T00:00:02.500", "level": "warning", "msg": "partition 3: expected'
        ' offset 5, found 9; restarting from the committed offset"}\n'
    )
    lines = partition_lines(tmp_path, [3])
    assert [line.split()[0] for line in lines] == ["consumer-1", "consumer-1", "consumer-2"]
    assert "took partition 3" in lines[1]
    assert "expected offset 5" in lines[2]


def test_trouble_lines_are_the_warnings_and_the_process_marks(tmp_path: Path) -> None:
    (tmp_path / "consumer-1.log").write_text(
        "--- 2026-01-01T00:00:01.000000Z rtm: started pid 10 ---\n"
        '{"ts": "2026-01-01T00:00:02.000", "level": "info", "msg": "took partition 3"}\n'
        '{"ts": "2026-01-01T00:00:03.000", "level": "error", "msg": "gap fill failed"}\n'
    )
    (tmp_path / "consumer-2.log").write_text(
        '{"ts": "2026-01-01T00:00:02.500", "level": "warning", "msg": "NATS disconnected"}\n'
    )
    lines = trouble_lines(tmp_path)
    assert [line.split()[0] for line in lines] == ["consumer-1", "consumer-2", "consumer-1"]
    assert "started pid 10" in lines[0]
    assert "warning NATS disconnected" in lines[1]
    assert "error gap fill failed" in lines[2]


def test_a_corrupted_frame_is_a_finding_not_a_crash() -> None:
    with pytest.raises(MalformedFrame):
        parse_frame(b'{"type": "mess')
    with pytest.raises(MalformedFrame):
        parse_frame(b"[1, 2]")
    with pytest.raises(MalformedFrame, match="message frame without seq"):
        require(parse_frame(b'{"type": "message", "conversation_id": "c"}'), ("seq",))
    outcome = run(lose_one=False)
    s = sender([])
    s.malformed.append("not JSON: b'{\"ty'")
    again = judge(
        CONFIG, schedule=[], conversations=outcome.conversations, senders=[s], receivers=[],
        deliveries=Deliveries(), records=[], stored=[],
    )  # fmt: skip
    assert [v.kind for v in again.violations] == [Kind.MALFORMED_FRAME]


def test_a_consumer_fault_with_no_other_consumer_up_is_alone_and_overlaps_hide_rejoins() -> None:
    def fault(at: float, kind: FaultKind, target: str, back: float) -> FaultRecord:
        record = FaultRecord(PlannedFault(at, kind, target), at, at, 1)
        record.back_after = back
        return record

    down = fault(10.0, FaultKind.CONSUMER_DOWN, "consumer-2", 8.0)  # up again at 18
    while_down = fault(12.0, FaultKind.CONSUMER_KILL, "consumer-1", 2.0)  # back at 14
    later = fault(40.0, FaultKind.CONSUMER_KILL, "consumer-1", 2.0)  # back at 42, alone in time
    producer = fault(45.0, FaultKind.PRODUCER_KILL, "producer", 2.0)  # in 42's rejoin window
    found = impacts(60.0, [], Deliveries(), [down, while_down, later, producer])
    by_fault = {i.record.planned.at: i for i in found}
    assert [by_fault[t].alone for t in (10.0, 12.0, 40.0, 45.0)] == [False, True, False, False]
    assert by_fault[10.0].rejoin is not None  # back at 18: nothing else in effect until 23
    assert by_fault[12.0].rejoin is None  # back at 14 while consumer-2 is still down
    assert by_fault[40.0].rejoin is None  # the producer kill at 45 falls in its window
