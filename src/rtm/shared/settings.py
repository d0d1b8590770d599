"""Settings every service shares; each service subclasses `CommonSettings` in its `settings.py`.

Values come from the environment (`RTM_` prefix) and an optional `.env` file. Nothing here is read
at import time: composition roots build their settings object and pass it down.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rtm.shared.limits import InboundLimits, Now

REPO_ROOT = Path(__file__).resolve().parents[3]


class CommonSettings(BaseSettings):
    """Connection, logging and protocol settings shared by auth, producer and consumer."""

    model_config = SettingsConfigDict(
        env_prefix="RTM_", env_file=".env", extra="ignore", validate_default=True
    )

    env: Literal["dev", "test", "prod"] = Field(
        "dev", description="dev allows built-in development secrets; prod refuses them"
    )
    host: str = Field("127.0.0.1", description="address the service's HTTP/gRPC servers bind to")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    gc_young_threshold: int = Field(
        10_000,
        ge=100,
        le=1_000_000,
        description="allocations between young garbage collections (CPython: 700); higher "
        "costs less CPU, lower pauses the event loop for less (rtm_gc_pause_seconds)",
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: JSON lines unless stderr is a terminal"
    )
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server(s), comma-separated")
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/rtm", description="PostgreSQL DSN (libpq form)"
    )
    db_pool_size: int = Field(10, ge=1, le=200, description="max connections per service process")
    db_timeout_s: float = Field(
        2.0,
        gt=0,
        description="bound on one use of a PostgreSQL connection (connect or acquire, and its "
        "statements): past it the request is answered `unavailable`",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default=["*"],
        description="comma-separated browser origins allowed for CORS and WebSocket (* = any)",
    )
    partitions: int = Field(
        8, ge=1, le=1024, description="message partitions; producer and consumer must agree"
    )
    migrations_dir: Path = Field(
        REPO_ROOT / "migrations", description="folder of versioned SQL migrations"
    )
    migrate_on_start: bool = Field(
        True, description="apply pending migrations when the service starts (serialised by a lock)"
    )

    # Edge limits of every HTTP and WebSocket port (rtm.shared.serving, protocol.md "Edges").
    http_header_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="a connection waiting for a request must send its complete headers within "
        "this (counted from the connection or the previous response); else it is closed",
    )
    http_keep_alive_s: float = Field(
        5.0, gt=0, le=300, description="an idle keep-alive connection is closed after this"
    )
    ws_ping_interval_s: float = Field(
        20.0, gt=0, le=3600, description="a WebSocket idle this long is pinged"
    )
    ws_ping_timeout_s: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="a WebSocket whose peer does not answer a ping within this is closed "
        "(1011); at most RTM_WS_PING_INTERVAL_S",
    )
    max_connections_per_address: int = Field(
        1000,
        ge=0,
        description="open connections (HTTP and WebSocket) per client IP address on one port; "
        "more are answered 429 rate_limited. 0 = no cap",
    )
    connection_cap_exempt: Annotated[list[str], NoDecode] = Field(
        default=["127.0.0.0/8", "::1/128"],
        description="comma-separated networks the per-address cap does not apply to (loopback: "
        "rtm bench, health checks, a local reverse proxy)",
    )

    @field_validator("allowed_origins", "connection_cap_exempt", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("connection_cap_exempt")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value

    @model_validator(mode="after")
    def _ping_timeout_within_interval(self) -> Self:
        # picows (the consumer's WebSockets) refuses a reply timeout above the ping interval.
        if self.ws_ping_timeout_s > self.ws_ping_interval_s:
            raise ValueError(
                f"RTM_WS_PING_TIMEOUT_S ({self.ws_ping_timeout_s}) must not exceed "
                f"RTM_WS_PING_INTERVAL_S ({self.ws_ping_interval_s}): lower one or raise the other"
            )
        return self

    @model_validator(mode="after")
    def _refuse_any_origin_in_prod(self) -> Self:
        if self.env == "prod" and "*" in self.allowed_origins:
            raise ValueError(
                "RTM_ALLOWED_ORIGINS=* (the default) is refused with RTM_ENV=prod: set "
                "RTM_ALLOWED_ORIGINS to your web app's origins, comma-separated, e.g. "
                "RTM_ALLOWED_ORIGINS=https://chat.example.com"
            )
        return self


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthClientSettings(CommonSettings):
    """Settings of a service that verifies access tokens with keys fetched from auth (producer,
    consumer). Those keys decide who is who: with `RTM_ENV=prod` they must come over https,
    from this machine (loopback: `rtm up`), or over a link `allow_http_auth_url` says is
    private (a container network)."""

    auth_url: str = Field(
        "http://127.0.0.1:8080", description="auth's HTTP front; JWKS at /.well-known/jwks.json"
    )
    token_issuer: str = Field("rtm-auth", description="the `iss` auth writes into access tokens")
    access_token_ttl_seconds: int = Field(
        15 * 60,
        ge=30,
        le=24 * 3600,
        validation_alias=AliasChoices(
            "RTM_AUTH_ACCESS_TOKEN_TTL_SECONDS", "access_token_ttl_seconds"
        ),
        description="auth's access-token lifetime (the same variable auth reads): a token living "
        "longer (exp - iat, plus 5 s of leeway) is refused, whoever signed it",
    )
    allow_http_auth_url: bool = Field(
        False,
        description="with RTM_ENV=prod, accept an http:// RTM_AUTH_URL (auth reached over a "
        "private network only, e.g. docker compose's)",
    )

    @property
    def jwks_url(self) -> str:
        return self.auth_url.rstrip("/") + "/.well-known/jwks.json"

    @model_validator(mode="after")
    def _refuse_http_auth_url_in_prod(self) -> Self:
        url = urlsplit(self.auth_url)
        insecure = url.scheme.lower() != "https" and not _loopback(url.hostname)
        if self.env == "prod" and insecure and not self.allow_http_auth_url:
            raise ValueError(
                f"RTM_AUTH_URL={self.auth_url} is not https, refused with RTM_ENV=prod: signing "
                "keys fetched from it could be forged on the way. Use an https:// URL (or auth on "
                "this machine's loopback), or set RTM_ALLOW_HTTP_AUTH_URL=true if auth is reached "
                "over a private network only"
            )
        return self


class WebSocketClientSettings(AuthClientSettings):
    """The limits of a service that serves clients over WebSocket (producer, consumer): the same
    names, defaults and meaning on both (docs/protocol.md §5, §6), so one `.env` sets both."""

    max_frame_bytes: int = Field(
        64 * 1024, ge=1024, description="largest inbound WebSocket frame (larger: close 1009)"
    )
    auth_timeout_s: float = Field(10.0, gt=0, description="time allowed for the first auth frame")
    max_connections_per_user: int = Field(
        10, ge=1, description="WebSockets per user on this instance (more: close 4504)"
    )
    send_queue_bytes: int = Field(
        1 << 20, ge=1024, description="per-socket outbound queue, in bytes; overflow closes 4008"
    )
    rate_per_second: float = Field(20.0, gt=0, description="frames per second per connection")
    rate_burst: int = Field(40, ge=1, description="burst of frames a connection may send at once")
    protocol_error_limit: int = Field(
        10, ge=1, description="protocol errors within the window that close a socket (4501)"
    )
    protocol_error_window_s: float = Field(60.0, gt=0, description="window of the limit above")
    flood_limit: int = Field(
        200, ge=1, description="rate-limited frames within the flood window that close 4013"
    )
    flood_window_s: float = Field(10.0, gt=0, description="window of the limit above")

    def inbound_limits(self, now: Now) -> InboundLimits:
        """A new connection's limits on what its client sends."""
        return InboundLimits(
            rate=self.rate_per_second,
            burst=self.rate_burst,
            flood_limit=self.flood_limit,
            flood_window=self.flood_window_s,
            error_limit=self.protocol_error_limit,
            error_window=self.protocol_error_window_s,
            now=now,
        )
