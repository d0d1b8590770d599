"""A chaos run's result: the verdict (checker), the figures (recovery per fault), the totals.

`judge` turns what the clients, the injector and PostgreSQL recorded into an `Outcome`; the
report (`rtm.chaos.report`) only formats it, and a test asserts on it.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rtm.chaos.checker import (
    Acked,
    Kind,
    Stored,
    Violation,
    check_history,
    check_receivers,
)
from rtm.chaos.faults import CONSUMER_FAULTS, FaultKind, PlannedFault
from rtm.chaos.inject import FaultRecord
from rtm.chaos.receiver import Deliveries, ResumingReceiver
from rtm.chaos.recovery import (
    REJOIN_WINDOW_S,
    Created,
    DeliveryIndex,
    Spread,
    longest_pause,
    spread,
)
from rtm.chaos.sender import OutboxSender
from rtm.shared.contract import partition_of

# How the report groups violation kinds into the totals an operator asks about first.
TOTAL_OF: dict[Kind, str] = {
    Kind.LOST: "lost",
    Kind.DUPLICATED: "duplicated",
    Kind.STREAM_ORDER: "reordered",
    Kind.SENDER_ORDER: "reordered",
    Kind.RECEIVER_GAP: "receiver gaps",
    Kind.RECEIVER_MISSING: "receiver gaps",
    Kind.RECEIVER_REPEAT: "receiver duplicates",
}


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """What a run does; `duration` is the load's length in seconds."""

    seed: int
    duration: float = 200.0
    rate: float = 150.0
    users: int = 20
    conversations: int = 10
    window: int = 32  # sends in flight per connection (the producer allows 64)
    answer_timeout: float = 6.0  # in-flight sends and no answer this long: reconnect
    drain_timeout: float = 90.0  # after the load: how long unacked sends may take
    progress_every: float = 10.0
    partitions: int = 8  # RTM_PARTITIONS of the system (to name a lost message's partition)


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    id: str
    kind: str
    members: int
    partition: int


@dataclass(frozen=True, slots=True)
class LostMessage:
    """An acked message PostgreSQL does not hold, with what locates it in the logs."""

    client_msg_id: str
    sender: str
    conversation_id: str
    partition: int
    stream_seq: int | None
    acked_at: float | None
    message_id: str | None


@dataclass(frozen=True, slots=True)
class FaultImpact:
    record: FaultRecord
    recovery: float | None  # see rtm.chaos.recovery; None: never (or not injected)
    ack_pause: float
    overlapped: bool  # the next fault started before this one had recovered
    rejoin: float | None = None  # a consumer back: its rejoin stall (rtm.chaos.recovery)
    alone: bool = False  # a consumer fault while no other consumer instance was up


@dataclass
class Totals:
    planned: int = 0
    acked: int = 0
    stored: int = 0
    unacked: int = 0
    retried: int = 0  # acked sends that took more than one attempt
    duplicate_acks: int = 0  # acks with duplicate: true (after a resend)
    deliveries: int = 0  # message events received, all receivers
    sender_connections: int = 0
    receiver_connections: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # error frames (and silences) by code
    close_codes: dict[int, int] = field(default_factory=dict)
    resume_gap: Spread | None = None  # from a receiver's lost connection to its next `resumed`


@dataclass
class Outcome:
    config: ChaosConfig
    schedule: list[PlannedFault]
    conversations: list[ConversationInfo]
    senders: int
    receivers: int
    totals: Totals
    impacts: list[FaultImpact]
    violations: list[Violation]
    anomalies: list[str]
    lost: list[LostMessage]
    continuity: list[str] | None = None  # `rtm verify`'s findings; None: not run
    continuity_checked: int = 0  # JetStream messages `rtm verify` compared with PostgreSQL
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations and not self.continuity

    def counts(self) -> dict[str, int]:
        """lost, duplicated, reordered, receiver gaps, receiver duplicates, other."""
        found = dict.fromkeys([*dict.fromkeys(TOTAL_OF.values()), "other"], 0)
        for violation in self.violations:
            found[TOTAL_OF.get(violation.kind, "other")] += 1
        return found

    def recovery_by_kind(self) -> dict[FaultKind, tuple[Spread | None, int]]:
        """Per fault kind injected: the spread of recovery times (without consumer faults that
        left no consumer up: theirs is a restart, not a failover), how many never recovered."""
        kinds: dict[FaultKind, list[FaultImpact]] = {}
        for impact in self.impacts:
            if not impact.record.injected:
                continue
            kinds.setdefault(impact.record.planned.kind, []).append(impact)
        return {
            kind: (
                spread(i.recovery for i in impacts if i.recovery is not None and not i.alone),
                sum(1 for i in impacts if i.recovery is None),
            )
            for kind, impacts in kinds.items()
        }


def judge(
    config: ChaosConfig,
    *,
    schedule: Sequence[PlannedFault],
    conversations: list[ConversationInfo],
    senders: Sequence[OutboxSender],
    receivers: Sequence[ResumingReceiver],
    deliveries: Deliveries,
    records: Sequence[FaultRecord],
    stored: list[Stored],
) -> Outcome:
    """Check the histories and measure every fault's impact."""
    acked = [
        Acked(
            uuid.UUID(m.conversation_id),
            s.sender_id,
            uuid.UUID(m.client_msg_id),
            retried=m.retried,
            message_id=uuid.UUID(m.message_id) if m.message_id else None,
        )
        for s in senders
        for m in sorted(s.acked, key=lambda m: m.first_send)
    ]
    violations = check_history(acked, stored)
    violations += check_receivers([r.log() for r in receivers], stored, deliveries.sightings())
    clients: list[OutboxSender | ResumingReceiver] = [*senders, *receivers]
    for client in clients:
        for detail in client.malformed:
            violations.append(Violation(Kind.MALFORMED_FRAME, f"{client.name}: {detail}"))
    for s in senders:
        for m in s.duplicate_first_sends:
            violations.append(
                Violation(
                    Kind.DUPLICATE_ACK,
                    f"{m.client_msg_id} from {s.name}: acked duplicate on its only send",
                    uuid.UUID(m.client_msg_id),
                )
            )
        for m in s.outbox.values():
            violations.append(
                Violation(
                    Kind.UNACKED,
                    f"{m.client_msg_id} from {s.name} (due at {m.due:.1f}s, {m.attempts} attempts)",
                    uuid.UUID(m.client_msg_id),
                )
            )
    return Outcome(
        config=config,
        schedule=list(schedule),
        conversations=conversations,
        senders=len(senders),
        receivers=len(receivers),
        totals=_totals(senders, receivers, stored),
        impacts=impacts(config.duration, senders, deliveries, records),
        violations=violations,
        anomalies=_fault_anomalies(records) + [a for s in senders for a in s.anomalies],
        lost=_lost(config, senders, violations),
    )


def _fault_anomalies(records: Sequence[FaultRecord]) -> list[str]:
    """What the faults' targets did that they should not: ignore a SIGTERM, never come back."""
    found = []
    for r in records:
        what = f"{r.planned.label} at {r.started:.1f}s" if r.started is not None else ""
        if r.escalated:
            found.append(
                f"{what}: pid {r.pid} {r.note} (a service should exit within "
                "RTM_SHUTDOWN_TIMEOUT_S of SIGTERM)"
            )
        if r.injected and r.back_after is None:
            found.append(f"{what}: {r.planned.target} was not ready again by the end of the run")
    return found


def _totals(
    senders: Sequence[OutboxSender], receivers: Sequence[ResumingReceiver], stored: list[Stored]
) -> Totals:
    errors: Counter[str] = Counter()
    codes: Counter[int] = Counter()
    for s in senders:
        errors.update(s.errors)
        codes.update(s.close_codes)
    for r in receivers:
        codes.update(r.close_codes)
    gaps = []
    for r in receivers:
        for dropped in r.drops:
            back = [t for t in r.resumed if t > dropped]
            if back:
                gaps.append(min(back) - dropped)
    return Totals(
        planned=sum(len(s.messages) for s in senders),
        acked=sum(len(s.acked) for s in senders),
        stored=len(stored),
        unacked=sum(len(s.outbox) for s in senders),
        retried=sum(1 for s in senders for m in s.acked if m.retried),
        duplicate_acks=sum(1 for s in senders for m in s.acked if m.duplicate),
        deliveries=sum(r.received for r in receivers),
        sender_connections=sum(s.connections for s in senders),
        receiver_connections=sum(len(r.connections) for r in receivers),
        errors=dict(errors.most_common()),
        close_codes=dict(sorted(codes.items())),
        resume_gap=spread(gaps),
    )


def impacts(
    duration: float,
    senders: Sequence[OutboxSender],
    deliveries: Deliveries,
    records: Sequence[FaultRecord],
) -> list[FaultImpact]:
    """Recovery and ack pause of every fault (definitions: rtm.chaos.recovery); a fault that
    was not injected (its target was down) is listed with no figures."""
    index = DeliveryIndex(
        Created(m.conversation_id, m.due, deliveries.first_at.get(m.client_msg_id))
        for s in senders
        for m in s.messages
    )
    ack_times = sorted(m.acked_at for s in senders for m in s.acked if m.acked_at is not None)
    injected = [r for r in records if r.started is not None and r.ended is not None]
    found = [FaultImpact(r, None, 0.0, False) for r in records if r not in injected]
    for n, record in enumerate(injected):
        assert record.started is not None
        assert record.ended is not None
        following = injected[n + 1].started if n + 1 < len(injected) else None
        until = min(following, duration) if following is not None else duration
        recovery = index.recovery(record.ended, duration)
        overlapped = following is not None and (
            recovery is None or record.ended + recovery > following
        )
        pause = longest_pause(ack_times, record.started, max(until, record.ended))
        rejoin = None
        if record.planned.kind in CONSUMER_FAULTS and record.back_after is not None:
            back = record.ended + record.back_after
            window = (back - 1.0, back + REJOIN_WINDOW_S)
            others = [r for r in injected if r is not record]
            if window[1] <= duration and not any(_hurts(r, *window) for r in others):
                rejoin = index.worst_latency(back, back + REJOIN_WINDOW_S)
        alone = record.planned.kind in CONSUMER_FAULTS and any(
            r.planned.kind in CONSUMER_FAULTS
            and r.planned.target != record.planned.target
            and _hurts(r, record.started, record.started)
            for r in injected
            if r is not record
        )
        found.append(FaultImpact(record, recovery, pause, overlapped, rejoin, alone))
    return sorted(found, key=lambda i: i.record.planned.at)


def _hurts(record: FaultRecord, since: float, until: float) -> bool:
    """Whether `record`'s fault is in effect at some time in [`since`, `until`]: from its
    signal until its target is back (or the freeze ends, for a process never restarted)."""
    assert record.started is not None
    assert record.ended is not None
    over = record.ended + (record.back_after if record.back_after is not None else 0.0)
    if record.back_after is None and record.planned.kind in CONSUMER_FAULTS:
        over = math.inf  # never came back
    return record.started <= until and over >= since


def _lost(
    config: ChaosConfig, senders: Sequence[OutboxSender], violations: list[Violation]
) -> list[LostMessage]:
    lost_ids = {str(v.subject) for v in violations if v.kind is Kind.LOST}
    found = []
    for s in senders:
        for m in s.acked:
            if m.client_msg_id in lost_ids:
                found.append(
                    LostMessage(
                        m.client_msg_id,
                        s.name,
                        m.conversation_id,
                        partition_of(uuid.UUID(m.conversation_id), config.partitions),
                        m.stream_seq,
                        m.acked_at,
                        m.message_id,
                    )
                )
    return sorted(found, key=lambda m: (m.partition, m.stream_seq or 0))
