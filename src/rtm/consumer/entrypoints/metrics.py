"""Prometheus metrics of the consumer (exposed by the shared `/metrics` route)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WS_CONNECTIONS = Gauge("rtm_consumer_ws_connections", "Open, authenticated WebSocket connections")
WS_CLOSES = Counter(
    "rtm_consumer_ws_closes_total", "WebSocket connections closed by the server", ["code"]
)
FRAMES_IN = Counter("rtm_consumer_frames_in_total", "Frames received from clients", ["type"])
FRAMES_OUT = Counter("rtm_consumer_frames_out_total", "Frames queued to clients", ["type"])
_FRAMES_OUT_BY_TYPE: dict[str, Counter] = {}


def frames_out(kind: str) -> Counter:
    """`FRAMES_OUT` for one frame type. `labels()` hashes and locks on every call; a fan-out to
    a thousand sockets counts a thousand frames, so the child is looked up once per type."""
    child = _FRAMES_OUT_BY_TYPE.get(kind)
    if child is None:
        child = _FRAMES_OUT_BY_TYPE[kind] = FRAMES_OUT.labels(kind)
    return child


ERRORS = Counter("rtm_consumer_errors_total", "Error frames sent, by code", ["code"])
MESSAGES_STORED = Counter("rtm_consumer_messages_stored_total", "Messages stored in PostgreSQL")
MESSAGES_SKIPPED = Counter(
    "rtm_consumer_messages_skipped_total",
    "Deliveries not stored (duplicates, unknown conversation)",
)
MESSAGES_DELIVERED = Counter(
    "rtm_consumer_messages_delivered_total", "Message frames queued to local sockets"
)
BATCH_SIZE = Histogram(
    "rtm_consumer_db_batch_size",
    "JetStream deliveries per stored batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
BATCH_SECONDS = Histogram(
    "rtm_consumer_db_batch_seconds",
    "Time to store one batch (transaction) and ack it",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
DELIVERY_LATENCY = Histogram(
    "rtm_consumer_delivery_latency_seconds",
    "From the producer accepting a message to this instance queueing it to sockets",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
)
PARTITIONS_OWNED = Gauge("rtm_consumer_partitions_owned", "Partitions this instance processes")
WORKER_RESTARTS = Counter(
    "rtm_consumer_partition_restarts_total",
    "Partition workers restarted from the offset",
    ["reason"],
)
WORKERS_FENCED = Counter(
    "rtm_consumer_partition_workers_fenced_total",
    "Partition workers stopped because a newer owner claimed their partition (they could not "
    "commit; a few around rebalancing are normal)",
)
STREAM_REWINDS = Counter(
    "rtm_consumer_stream_rewinds_total",
    "Partitions started over from the stream's first message because the stream did not hold "
    "the message at their committed offset (created again, or its tail lost): investigate",
)
JETSTREAM_PENDING = Gauge(
    "rtm_consumer_jetstream_pending",
    "Messages not yet delivered, per owned partition",
    ["partition"],
)
JETSTREAM_REDELIVERED = Gauge(
    "rtm_consumer_jetstream_redelivered", "Messages redelivered, per owned partition", ["partition"]
)
SLOW_CONSUMER_CLOSES = Counter(
    "rtm_consumer_slow_consumer_closes_total", "Sockets closed 4008 for a full send queue"
)
PRESENCE_CHANGES = Counter(
    "rtm_consumer_presence_changes_total",
    "Presence changes announced to local contacts, after coalescing (frames: frames_out)",
    ["status"],
)
PRESENCE_EXPIRED = Counter(
    "rtm_consumer_presence_expired_total",
    "Users dropped from presence without an offline event: missing from two full heartbeats "
    "of their instance (unlisted), or their instance silent for 3 heartbeats (silent)",
    ["reason"],
)
CONTINUITY_LOST = Counter(
    "rtm_continuity_lost_total",
    "Acked messages found lost by the continuity auditor: in JetStream at or below their "
    "partition's committed offset, neither their message_id nor (sender, client_msg_id) stored",
)
CONTINUITY_PROBLEMS = Counter(
    "rtm_continuity_problems_total",
    "Stored rows found wrong by the continuity auditor: stored_twice, out_of_order",
    ["kind"],
)
CONTINUITY_CHECKED = Counter(
    "rtm_continuity_checked_total",
    "JetStream messages the continuity auditor checked, by outcome (stored, resent, "
    "conversation_gone, undecodable, missing)",
    ["outcome"],
)
CONTINUITY_AUDITED_OFFSET = Gauge(
    "rtm_continuity_audited_offset",
    "Stream sequence up to which an owned partition's committed messages have been audited "
    "(compare with the committed offset: the auditor trails it by about one interval)",
    ["partition"],
)
CONTINUITY_AUDIT_SECONDS = Counter(
    "rtm_continuity_audit_seconds_total",
    "Wall-clock time spent in continuity audits (reads of JetStream and PostgreSQL included)",
)
