"""What the orchestrator and the load-generator processes tell each other (all picklable).

Orchestrator → worker: a `WorkerPlan` at start, then `Bind`, `Step` (answered by `Sent`, then
`Expect` from the orchestrator), `Hold` or `Stop`.
Worker → orchestrator: `Progress` while connecting and sending, `Connected` once every socket is
open, `Bound` after a `Bind`, `Sent` then a `StepResult` for each step, `HoldResult` after a
hold, and `Failed` on an error.

Message bodies carry `<step> <scheduled send time, CLOCK_MONOTONIC ns> <sender> <n>` and padding,
so any receiver can compute send→delivery latency (the clock is the same in every process of the
machine) and tell a duplicate (`n` not above the last seen from that sender) from a new message.
The send time is the *scheduled* one: a load generator that falls behind its schedule does not
hide the delay (no coordinated omission).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Flavor = Literal["rtm", "bare", "socketio"]


@dataclass(frozen=True, slots=True)
class SocketSpec:
    """One client socket: `index` is the sender's or receiver's number across all workers."""

    index: int
    url: str
    token: str | None
    conversation: str


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """Everything a worker opens. `flavor` "rtm": consumer sockets wait for `ready` and
    producer sockets are checked with a ping; "bare": the baseline server says nothing (the bare
    broadcast and the pipeline); "socketio": Engine.IO / Socket.IO framing (`engineio`)."""

    worker: int
    flavor: Flavor
    receivers: tuple[SocketSpec, ...]
    senders: tuple[SocketSpec, ...]
    body_chars: int = 100
    connect_concurrency: int = 64
    connect_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class Step:
    """Send at `rate` msgs/s (this worker's share) from `start_at` for `duration` s; wait until
    every send is answered and say `Sent`; on `Expect`, wait until every receiver has what its
    conversation's senders had acked (all workers together), then `quiet` s for duplicates.
    Waits are bounded by `drain_max` s each."""

    step: int
    rate: float
    start_at: float
    duration: float
    count: int  # messages this worker sends: its share of round(total rate * duration)
    quiet: float = 0.3
    drain_max: float = 15.0


@dataclass(frozen=True, slots=True)
class Bind:
    """Conversations made after the sockets opened (so that opening a thousand sockets of one
    group does not cost a presence storm): socket index → conversation id."""

    receivers: dict[int, str]
    senders: dict[int, str]


@dataclass(frozen=True, slots=True)
class Expect:
    """Acked messages per conversation in this step, across every worker."""

    step: int
    acked: dict[str, int]


@dataclass(frozen=True, slots=True)
class Hold:
    """Keep every socket open, idle, for `duration` s; report the ones that closed."""

    duration: float


@dataclass(frozen=True, slots=True)
class Stop:
    """Close every socket and exit."""


@dataclass(frozen=True, slots=True)
class Progress:
    worker: int
    phase: str
    done: int
    total: int
    received: int = 0
    acked: int = 0
    other: int = 0  # frames other than messages (presence...) since the sockets opened


@dataclass(frozen=True, slots=True)
class Connected:
    worker: int
    receivers: int
    senders: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Bound:
    worker: int


@dataclass(frozen=True, slots=True)
class Sent:
    """A worker sent its share of a step and every send was answered (or `drain_max` passed)."""

    worker: int
    step: int
    acked: dict[str, int]


@dataclass(frozen=True, slots=True)
class ReceiverTally:
    """One receiver's step: new messages, duplicates, seq order violations (rtm only)."""

    index: int
    conversation: str
    received: int
    duplicates: int
    disorder: int


@dataclass(slots=True)
class StepResult:
    """One worker's step. Latencies are float32 milliseconds as bytes (`array('f')`)."""

    worker: int
    step: int
    sent: int = 0
    acked: int = 0
    acked_by_conversation: dict[str, int] = field(default_factory=dict)
    unacked: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    closed: dict[str, int] = field(default_factory=dict)
    receivers: list[ReceiverTally] = field(default_factory=list)
    late: int = 0
    ack_ms: bytes = b""
    delivery_ms: bytes = b""
    send_seconds: float = 0.0
    behind_ms: float = 0.0  # how far the send loop fell behind its schedule, at worst
    start_ns: int = 0  # the step's scheduled start (CLOCK_MONOTONIC)
    last_ack_ns: int = 0
    last_receive_ns: int = 0
    other_frames: dict[str, int] = field(default_factory=dict)  # presence, typing, ... by type


@dataclass(frozen=True, slots=True)
class HoldResult:
    worker: int
    open_sockets: int
    closed: dict[str, int]


@dataclass(frozen=True, slots=True)
class Failed:
    worker: int
    error: str
