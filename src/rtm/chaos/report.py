"""A chaos run's outcome for people: the summary printed at the end, and RELIABILITY.md.

The Markdown report follows what Jepsen's analyses give a reader: what was tested and how
(system, workload, clients, faults, the properties checked), the verdict first, the schedule
with each fault's effect, every violation with what locates it (a lost message's partition and
JetStream sequence), the definitions of the figures, and the machine and code that produced it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rtm.bench.report import table
from rtm.chaos.faults import FaultKind
from rtm.chaos.inject import FaultRecord
from rtm.chaos.outcome import FaultImpact, Outcome
from rtm.chaos.recovery import REJOIN_WINDOW_S, Spread, spread
from rtm.shared.settings import REPO_ROOT

SHOWN = 30  # violations and anomalies listed word for word

PROPERTIES = (
    "every acked message is stored exactly once, in the conversation it was sent to, under the "
    "`message_id` its ack named",
    "each conversation's `seq` is dense from 1 and follows JetStream's order (`stream_seq`)",
    "each sender's messages are stored in the order it first sent them, except sends it retried "
    "(docs/protocol.md, '4. Conversations')",
    "no first send is acked as a duplicate, and every send is acked by the end of the drain",
    "on every receiving connection, each conversation continues exactly from the cursor it "
    "resumed from: no gap, no repeat, live and resumed alike (docs/protocol.md, '6. Consumer'); "
    "every delivered (conversation, seq) is the stored message; nobody gets a conversation they "
    "are not in",
    "every receiver ends with every stored message of its conversations",
)

DEFINITIONS = (
    "**recovery**: from the end of a fault (the SIGKILL or SIGTERM sent; a freeze's SIGCONT "
    "sent) until every conversation that has messages created after that moment has had one of "
    "them delivered to one of its receivers: the whole path (producer, JetStream, the "
    "partition's owner storing in PostgreSQL, fan-out, a consumer's WebSocket) works again for "
    "everyone. Messages created before the fault do not count; it includes up to one interval "
    "between two messages of a conversation (about conversations / rate). `never`: some such "
    "conversation never had one delivered.",
    "**ack pause**: the longest time no sender got any ack, from the start of the fault to the "
    "start of the next one (or the end of the load).",
    "**back after**: the process hit was ready again (a new process, by the supervisor's "
    "readiness probe), counted from the end of the fault.",
    "**overlap**: the next fault came before this one had recovered; its figures include both.",
    "**rejoin stall**: for a consumer instance back after a fault, the longest time from "
    f"creation to first delivery of a message created in the {REJOIN_WINDOW_S:.0f} s after it "
    "was ready again, while partitions move back to it; `-` when another fault was in effect "
    "then (its figure would be that fault's).",
    "**no other consumer up**: a consumer fault while every other instance was down too: its "
    "recovery is a restart, not a failover, and the per-kind figures leave it out.",
)


@dataclass
class Facts:
    """What the run does not know by itself: the command, machine, versions, commit."""

    command: str = ""
    date: str = ""
    consumers: int = 0
    sections: dict[str, dict[str, str]] = field(default_factory=dict)  # Machine, Versions…


def commit() -> str:
    """`<sha>` of the code that ran, `+ uncommitted changes` when the tree was dirty."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + (" + uncommitted changes" if dirty else "")


def _s(value: float | None, suffix: str = "s") -> str:
    return "never" if value is None else f"{value:.1f}{suffix}"


def _spread(value: Spread | None) -> str:
    if value is None:
        return "-"
    return f"{value.min:.1f} / {value.median:.1f} / {value.max:.1f} s"


def _back(record: FaultRecord) -> str:
    if not record.injected:
        return "-"
    return "not back" if record.back_after is None else _s(record.back_after)


def _impact_rows(impacts: Iterable[FaultImpact]) -> list[list[str]]:
    rows = []
    for n, impact in enumerate(impacts, 1):
        r = impact.record
        rows.append(
            [
                str(n),
                f"{r.started:.1f}" if r.started is not None else "-",
                r.planned.label,
                str(r.pid or "-"),
                _back(r),
                _s(impact.recovery) + (" (overlap)" if impact.overlapped else "")
                if r.injected
                else "-",
                _s(impact.ack_pause) if r.injected else "-",
                _s(impact.rejoin) if impact.rejoin is not None else "-",
                "; ".join(n for n in (r.note, "no other consumer up" if impact.alone else "") if n),
            ]
        )
    return rows


IMPACT_HEADERS = [
    "#",
    "at (s)",
    "fault",
    "pid",
    "back after",
    "recovery",
    "ack pause",
    "rejoin stall",
    "note",
]


def _kind_rows(outcome: Outcome) -> list[list[str]]:
    rows = []
    for kind, (values, never) in outcome.recovery_by_kind().items():
        count = (values.count if values else 0) + never
        rejoins = spread(
            i.rejoin
            for i in outcome.impacts
            if i.record.planned.kind is kind and i.rejoin is not None
        )
        rows.append([kind.value, str(count), _spread(values), str(never), _spread(rejoins)])
    return rows


KIND_HEADERS = [
    "fault",
    "injected",
    "recovery min / median / max",
    "never recovered",
    "rejoin stall min / median / max",
]


def _joined(counts: Mapping[str, int] | Mapping[int, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"


def _totals_lines(outcome: Outcome) -> list[tuple[str, str]]:
    t, c = outcome.totals, outcome.counts()
    verdict = ", ".join(f"{k} {v:,}" for k, v in c.items())
    resume = _spread(t.resume_gap)
    return [
        ("messages", f"{t.planned:,} planned, {t.acked:,} acked, {t.stored:,} stored, "
                     f"{t.unacked:,} never acked"),
        ("violations", verdict),
        ("senders", f"{outcome.senders} ({t.sender_connections:,} connections, "
                    f"{t.retried:,} acked sends were retried, {t.duplicate_acks:,} acked as "
                    "duplicates)"),
        ("receivers", f"{outcome.receivers} ({t.receiver_connections:,} connections, "
                      f"{t.deliveries:,} messages delivered; drop → resumed min / median / "
                      f"max {resume})"),
        ("error frames", _joined(t.errors)),
        ("close codes", _joined(t.close_codes)),
    ]  # fmt: skip


def _lost_lines(outcome: Outcome) -> list[str]:
    by_partition: dict[int, int] = {}
    for m in outcome.lost:
        by_partition[m.partition] = by_partition.get(m.partition, 0) + 1
    lines = [
        f"{len(outcome.lost)} acked messages are not stored; by partition: "
        + ", ".join(f"p{p}: {n}" for p, n in sorted(by_partition.items()))
    ]
    for m in outcome.lost[:SHOWN]:
        acked = f"{m.acked_at:.1f}s" if m.acked_at is not None else "?"
        lines.append(
            f"partition {m.partition}, stream_seq {m.stream_seq}, acked at {acked}: "
            f"{m.client_msg_id} from {m.sender} to {m.conversation_id}"
        )
    return lines


def _continuity(outcome: Outcome) -> str:
    if outcome.continuity is None:
        return "not run"
    if not outcome.continuity:
        return (
            f"{outcome.continuity_checked:,} JetStream messages compared with PostgreSQL: "
            "none missing, none stored twice, none out of order"
        )
    return f"{len(outcome.continuity)} findings: " + "; ".join(outcome.continuity[:SHOWN])


def verdict(outcome: Outcome) -> str:
    if outcome.ok:
        return "PASS: no violation"
    found = ", ".join(f"{v:,} {k}" for k, v in outcome.counts().items() if v)
    if outcome.continuity:
        found += (", " if found else "") + f"{len(outcome.continuity)} continuity findings"
    return f"FAIL: {found}"


def summary(outcome: Outcome) -> str:
    """The plain-text summary `rtm chaos` prints at the end (and the e2e test shows)."""
    cfg = outcome.config
    groups = sum(1 for c in outcome.conversations if c.kind == "group")
    lines = [
        f"rtm chaos: seed {cfg.seed}, {cfg.duration:g}s at {cfg.rate:g} msgs/s, {cfg.users} users,"
        f" {len(outcome.conversations)} conversations ({groups} groups, the rest direct), "
        f"{sum(i.record.injected for i in outcome.impacts)} of {len(outcome.schedule)} faults "
        "injected",
        "",
        table(IMPACT_HEADERS, _impact_rows(outcome.impacts), markdown=False),
        "",
        table(KIND_HEADERS, _kind_rows(outcome), markdown=False),
        "",
    ]
    lines += [f"{name}: {value}" for name, value in _totals_lines(outcome)]
    lines.append(f"continuity (rtm verify): {_continuity(outcome)}")
    if outcome.lost:
        lines += ["", *_lost_lines(outcome)]
    if outcome.violations:
        lines += ["", f"violations ({min(SHOWN, len(outcome.violations))} of "
                      f"{len(outcome.violations)}):"]  # fmt: skip
        lines += [f"  {v}" for v in outcome.violations[:SHOWN]]
    if outcome.anomalies:
        lines += ["", f"anomalies ({len(outcome.anomalies)}):"]
        lines += [f"  {a}" for a in outcome.anomalies[:SHOWN]]
    lines += ["", verdict(outcome)]
    return "\n".join(lines)


def markdown(outcome: Outcome, facts: Facts) -> str:
    """RELIABILITY.md: the whole run for a reader who was not there."""
    cfg = outcome.config
    groups = sum(1 for c in outcome.conversations if c.kind == "group")
    kinds = sorted({f.kind for f in outcome.schedule}, key=list(FaultKind).index)
    out = [
        "# rtm reliability under faults",
        "",
        f"Written by `{facts.command}` on {facts.date}.",
        "",
        f"**Verdict: {verdict(outcome)}.**",
        "",
        "## What was tested",
        "",
        "- **System**: the whole of rtm as real processes on one machine (`rtm.local`): "
        "embedded nats-server (JetStream, `sync_interval: always`) and PostgreSQL, auth, "
        f"producer and {facts.consumers} consumer instances, {cfg.partitions} partitions; the "
        "local supervisor restarts whatever exits (as systemd or Kubernetes would).",
        f"- **Workload**: seed {cfg.seed}; {cfg.users} users; {len(outcome.conversations)} "
        f"conversations ({groups} groups of 4-6, {len(outcome.conversations) - groups} direct); "
        f"{cfg.rate:g} msgs/s for {cfg.duration:g} s, evenly spaced, each to a random "
        "conversation from a random member.",
        f"- **Senders**: one per user over the producer's WebSocket with an outbox: up to "
        f"{cfg.window} sends in flight; every unacked send resent with the same "
        "`client_msg_id`, in order, after a reconnect, an error frame (honouring "
        f"`retry_after_ms`) or {cfg.answer_timeout:g} s of silence.",
        "- **Receivers**: every member of a conversation on every consumer instance, resuming "
        "from its cursors after every reconnect; every `message` event recorded per connection.",
        f"- **Faults**: {', '.join(k.value for k in kinds) or 'none'}; schedule below. "
        "Drain after the load: "
        f"{cfg.drain_timeout:g} s for the last acks, then until PostgreSQL and the receivers "
        "caught up.",
        "- **Properties checked** (`rtm.chaos.checker`):",
        *[f"  - {p}" for p in PROPERTIES],
        "",
    ]
    out += [
        "## Results",
        "",
        *[f"- {name}: {value}" for name, value in _totals_lines(outcome)],
        f"- continuity (`rtm verify`): {_continuity(outcome)}",
        "",
    ]
    if outcome.lost:
        out += ["### Lost messages", "", *[f"- {line}" for line in _lost_lines(outcome)], ""]
    if outcome.violations:
        out += [
            f"### Violations ({min(SHOWN, len(outcome.violations))} of {len(outcome.violations)})",
            "",
            *[f"- {v}" for v in outcome.violations[:SHOWN]],
            "",
        ]
    if outcome.anomalies:
        out += ["### Anomalies", "", *[f"- {a}" for a in outcome.anomalies[:SHOWN]], ""]
    out += [
        "## Faults",
        "",
        table(IMPACT_HEADERS, _impact_rows(outcome.impacts), markdown=True),
        "",
        "### Recovery by kind",
        "",
        table(KIND_HEADERS, _kind_rows(outcome), markdown=True),
        "",
        "### Definitions",
        "",
        *[f"- {d}" for d in DEFINITIONS],
        "",
        "## Where it ran",
        "",
    ]
    for section, values in facts.sections.items():
        out += [f"### {section}", "", *[f"- {k}: {v}" for k, v in values.items()], ""]
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in outcome.timings.items())
    out += [f"Phases: {timings}.", ""]
    return "\n".join(out)
