"""Producer settings: environment variables with the `RTM_` prefix, or `.env`.

Every limit of docs/protocol.md, "5. Producer" is a setting with the protocol's default. The
WebSocket limits it shares with the consumer (frame size, rates, floods, send queue) are
`WebSocketClientSettings`: one definition, so one `.env` configures both alike.
"""

from __future__ import annotations

from pydantic import Field

from rtm.shared.settings import WebSocketClientSettings


class ProducerSettings(WebSocketClientSettings):
    """Everything the producer reads at start."""

    producer_port: int = Field(8081, ge=0, le=65535, description="HTTP + WebSocket port")

    # Message rules (docs/protocol.md, "5. Producer").
    max_body_chars: int = Field(
        4096, ge=1, le=1_000_000, description="longest message body, in characters after trimming"
    )

    # Per-connection limits.
    max_in_flight: int = Field(
        64, ge=1, description="unacked sends per connection (more: too_many_in_flight)"
    )
    typing_interval_s: float = Field(
        1.0, ge=0, description="least time between two typing events of a user in a conversation"
    )

    # Conversations.
    max_group_members: int = Field(
        1000, ge=2, le=1000, description="most members of a group (at most 1000: the HTTP schema's)"
    )
    max_title_chars: int = Field(200, ge=1, description="longest conversation title")
    conversation_rate_per_second: float = Field(
        1.0,
        gt=0,
        description="conversations created and members added per second per user, after the "
        "burst (more: 429 rate_limited)",
    )
    conversation_burst: int = Field(
        20, ge=1, description="conversation commands a user may make at once"
    )

    # Dependencies.
    publish_timeout_s: float = Field(
        2.0, gt=0, description="how long a send waits for JetStream's PubAck before `unavailable`"
    )
    stored_wait_s: float = Field(
        5.0,
        gt=0,
        description='how long a `"wait":"stored"` send waits, after the PubAck, for PostgreSQL '
        "to hold it before `not_stored_yet`",
    )
    db_lookup_timeout_s: float = Field(
        0.5,
        gt=0,
        description="how long a send waits for PostgreSQL when it has a fallback (cached "
        "membership; JetStream's dedup for the 'already stored?' lookup)",
    )
    db_outage_cooldown_s: float = Field(
        1.0,
        ge=0,
        description="after a failed PostgreSQL read, how long reads that have a fallback skip it",
    )

    # Membership cache (sends keep working for known conversations while PostgreSQL is down).
    membership_cache_ttl_s: float = Field(
        30.0, gt=0, description="how long a cached membership is trusted without PostgreSQL"
    )
    membership_stale_s: float = Field(
        900.0,
        ge=0,
        description="how long past its TTL a cached membership still serves while PostgreSQL "
        "is unreachable (0: never)",
    )
    membership_cache_members: int = Field(
        500_000, ge=1, description="member ids the membership cache holds at most, all together"
    )
    max_pending_publishes: int = Field(
        20_000, ge=1, description="JetStream publishes awaiting their PubAck, process-wide"
    )
    shutdown_timeout_s: float = Field(
        10.0, gt=0, description="graceful shutdown: time to finish in-flight sends"
    )
