"""Prometheus metrics of the producer (exposed by the shared `/metrics` route).

Labels take only values we choose (transports, frame types we know, error codes), never what a
client wrote, so the number of series stays bounded.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from rtm.producer.domain.membership import CheckEvent

SENDS = Counter(
    "rtm_producer_sends_total",
    "Sends answered, by outcome: accepted, duplicate, or the error code",
    ["transport", "outcome"],
)
FRAMES_OUT = Counter("rtm_producer_frames_out_total", "Frames queued to clients", ["type"])
FRAMES_REFUSED = Counter(
    "rtm_producer_frames_refused_total", "WebSocket frames answered with an error", ["code"]
)
WS_CONNECTIONS = Gauge("rtm_producer_ws_connections", "Open, authenticated WebSocket connections")
WS_CLOSES = Counter(
    "rtm_producer_ws_closes_total", "WebSocket connections closed by the server", ["code"]
)
ACK_LATENCY = Histogram(
    "rtm_producer_ack_latency_seconds",
    "From a send received (frame read, or HTTP request handled) to its ack sent",
    ["transport"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
MESSAGES_PUBLISHED = Counter(
    "rtm_producer_messages_published_total",
    "Messages JetStream stored for the first time (acks that are not duplicates)",
    ["transport"],
)
RATE_LIMITED = Counter(
    "rtm_producer_rate_limited_total",
    "Frames (WebSocket) or sends (HTTP) refused by a rate limit",
    ["transport"],
)
IN_FLIGHT_REFUSED = Counter(
    "rtm_producer_in_flight_refusals_total",
    "Sends refused because their connection had too many waiting for an ack",
)
FRAMES_IN = Counter(
    "rtm_producer_frames_in_total",
    "WebSocket frames received, by type (`invalid`: unparseable or unknown, `binary`)",
    ["type"],
)
ERRORS = Counter(
    "rtm_producer_errors_total",
    "Errors answered to clients, by transport and error code",
    ["transport", "code"],
)
MEMBERSHIP_CHECKS = Counter(
    "rtm_producer_membership_checks_total",
    "Membership lookups: hit (fresh cache), miss (read from PostgreSQL, or tried), stale "
    "(PostgreSQL unreachable: an expired cache entry used)",
    ["result"],
)
STORED_CHECKS_SKIPPED = Counter(
    "rtm_producer_stored_checks_skipped_total",
    "Sends accepted without PostgreSQL's 'already stored?' lookup (PostgreSQL unreachable): "
    "duplicates rest on JetStream's Nats-Msg-Id window",
)

_MEMBERSHIP_RESULTS = {
    CheckEvent.CACHE_HIT: MEMBERSHIP_CHECKS.labels("hit"),
    CheckEvent.CACHE_MISS: MEMBERSHIP_CHECKS.labels("miss"),
    CheckEvent.CACHE_STALE: MEMBERSHIP_CHECKS.labels("stale"),
}


def observe_check(event: CheckEvent) -> None:
    """What the membership service observed, as counters."""
    counter = _MEMBERSHIP_RESULTS.get(event)
    if counter is not None:
        counter.inc()
    elif event is CheckEvent.STORED_CHECK_SKIPPED:
        STORED_CHECKS_SKIPPED.inc()


class PerTurn:
    """Increments and observations of the per-message series, added up during one event-loop
    turn and handed to prometheus_client once, at the end of that turn.

    Why: every send counted a frame in, an outcome, a publish, a frame out and a latency, each
    through `labels()` (a lock and a dict lookup) and a locked increment: 6.7% of the producer's
    CPU at 1,000 msgs/s. The answers written in one turn (a connection's drained acks, and every
    other connection's of that turn) now cost one increment per series. Nothing is lost: the
    flush is scheduled with the first count of a turn and runs whatever becomes of the
    connection, and a scrape (a request of a later turn) sees every count made before it.
    """

    __slots__ = ("_counts", "_latencies")

    def __init__(self) -> None:
        self._counts: dict[Any, int] = {}
        self._latencies: list[tuple[Any, float]] = []

    def _schedule(self) -> None:
        if not self._counts and not self._latencies:
            asyncio.get_running_loop().call_soon(self.flush)

    def inc(self, child: Any) -> None:
        """`child.inc()` (a labelled counter), at the end of this turn."""
        self._schedule()
        self._counts[child] = self._counts.get(child, 0) + 1

    def observe(self, child: Any, value: float) -> None:
        """`child.observe(value)` (a labelled histogram), at the end of this turn."""
        self._schedule()
        self._latencies.append((child, value))

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        latencies, self._latencies = self._latencies, []
        for child, count in counts.items():
            child.inc(count)
        for child, value in latencies:
            child.observe(value)


PER_TURN = PerTurn()
# The labelled children of the per-message series, made once (`labels()` takes a lock).
FRAMES_IN_BY_TYPE = {
    kind: FRAMES_IN.labels(kind)
    for kind in ("send", "typing", "read", "auth", "ping", "invalid", "binary")
}
FRAMES_OUT_BY_TYPE = {kind: FRAMES_OUT.labels(kind) for kind in ("ack", "error", "pong", "auth_ok")}
WS_ACCEPTED = SENDS.labels("ws", "accepted")
WS_DUPLICATE = SENDS.labels("ws", "duplicate")
WS_PUBLISHED = MESSAGES_PUBLISHED.labels("ws")
WS_ACK_LATENCY = ACK_LATENCY.labels("ws")
