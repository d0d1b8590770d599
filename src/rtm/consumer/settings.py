"""Consumer settings (environment variables with the `RTM_` prefix, or `.env`)."""

from __future__ import annotations

import os
import socket

from pydantic import Field

from rtm.shared.settings import WebSocketClientSettings


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ConsumerSettings(WebSocketClientSettings):
    """Everything the consumer reads at start; every limit of docs/protocol.md, "6. Consumer" is
    here."""

    consumer_port: int = Field(8082, ge=0, le=65535, description="HTTP + WebSocket port")
    instance_id: str = Field(
        default_factory=_default_instance_id, description="names this instance in partition leases"
    )
    batch_size: int = Field(256, ge=1, le=5000, description="messages stored per transaction")
    fetch_timeout_s: float = Field(0.5, gt=0, description="how long a pull waits when idle")
    lease_ttl_s: float = Field(
        1.5,
        ge=0.5,
        description="a killed instance's partitions free up after this (+ about 0.25 s for "
        "the server to expire the lease); leases are renewed every fifth of it. Safety does "
        "not depend on it (fencing tokens do): shorter fails over faster, at the cost of more "
        "lease traffic and of a lease lost when the event loop stalls for most of it",
    )
    ack_wait_s: float = Field(30.0, ge=1, description="JetStream redelivery delay for unacked")
    max_recovery: int = Field(
        1000, ge=1, description="most messages `resume` sends per conversation"
    )
    resume_grace_s: float = Field(
        1.0,
        ge=0,
        description="a socket opened with `?resume=1` holds live messages until its first "
        "`resume`, at most this long (so none is pushed past the client's cursor); 0: no hold",
    )
    max_resume_conversations: int = Field(
        1000,
        ge=1,
        le=10_000,
        description="most conversations one `resume` frame may name (more: validation_failed)",
    )
    presence_interval_s: float = Field(
        5.0,
        gt=0,
        description="presence heartbeat (the same on every instance); a user goes offline "
        "when missing from 2 full heartbeats, or their instance is silent for 3",
    )
    presence_flush_s: float = Field(
        0.25,
        ge=0,
        description="presence changes are announced at most this often, coalesced (a user "
        "who leaves and comes back in between is not announced)",
    )
    continuity_audit_interval_s: float = Field(
        10.0,
        ge=0,
        description="how often the continuity auditor checks what this instance committed "
        "against JetStream (lost messages: rtm_continuity_lost_total); 0: never",
    )
    continuity_audit_max: int = Field(
        20_000,
        ge=1,
        description="most messages the continuity auditor checks per partition and round; a "
        "backlog (the whole stream, on the first start) is worked off over several rounds",
    )
    shutdown_timeout_s: float = Field(
        8.0, gt=0, description="bound on the graceful stop after SIGTERM"
    )
    history_default_limit: int = Field(
        50, ge=1, le=200, description="history page size when the request names no `limit`"
    )
    history_max_limit: int = Field(
        200, ge=1, le=1000, description="largest `limit` of a history page (more: 422)"
    )
