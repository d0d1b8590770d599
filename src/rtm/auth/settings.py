"""Settings of the auth service (`AuthSettings`), read from the environment by the composition root.

Env names: the common `RTM_*` ones of `CommonSettings`, `RTM_TOKEN_ISSUER` (producer and consumer
read the same variable), and `RTM_AUTH_*` for everything only auth uses. Secrets are `SecretStr`;
the built-in development secret is refused outside `RTM_ENV=dev`, and with `RTM_ENV=prod` a key
secret of less than 256 bits of estimated entropy. argon2 parameters below OWASP's
minimum are refused outside `RTM_ENV=test` (tests hash with cheap parameters to stay fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from rtm.shared.secret_strength import GENERATE_HINT, entropy_bits
from rtm.shared.settings import CommonSettings

DEV_KEY_SECRET = "rtm-dev-only-signing-key-secret-do-not-use-in-prod"  # noqa: S105 - a placeholder

# What `secrets.token_urlsafe(32)` gives; the estimate is `rtm.shared.secret_strength`'s.
KEY_SECRET_BITS = 256

# OWASP Password Storage Cheat Sheet, argon2id minimum: m = 19 MiB, t = 2, p = 1.
OWASP_MEMORY_KIB = 19 * 1024
OWASP_TIME_COST = 2


def _auth(name: str, default: Any, description: str, **constraints: Any) -> Any:
    """A field read from `RTM_AUTH_<NAME>` (and settable by its field name in code)."""
    return Field(
        default,
        validation_alias=AliasChoices(f"RTM_AUTH_{name.upper()}"),
        description=description,
        **constraints,
    )


class AuthSettings(CommonSettings):
    """Every knob of the auth service; each field's description says what it does."""

    model_config = SettingsConfigDict(validate_by_name=True, validate_by_alias=True)

    grpc_port: int = _auth("grpc_port", 50051, "gRPC port (AuthService, health, reflection)")
    http_port: int = _auth("http_port", 8080, "HTTP JSON front port (browsers, JWKS)")
    token_issuer: str = Field("rtm-auth", description="`iss` of access tokens (RTM_TOKEN_ISSUER)")

    access_token_ttl_seconds: int = _auth(
        "access_token_ttl_seconds", 15 * 60, "access-token lifetime", ge=30, le=24 * 3600
    )
    refresh_token_ttl_seconds: int = _auth(
        "refresh_token_ttl_seconds", 30 * 24 * 3600, "refresh-token (session) lifetime", ge=60
    )
    token_leeway_seconds: int = _auth(
        "token_leeway_seconds", 5, "clock skew tolerated on exp/iat", ge=0, le=300
    )

    argon2_memory_kib: int = _auth("argon2_memory_kib", OWASP_MEMORY_KIB, "argon2id m", ge=8)
    argon2_time_cost: int = _auth("argon2_time_cost", OWASP_TIME_COST, "argon2id t", ge=1)
    argon2_parallelism: int = _auth("argon2_parallelism", 1, "argon2id p", ge=1, le=16)
    hash_workers: int = _auth(
        "hash_workers", 2, "threads hashing passwords (bounds CPU and memory use)", ge=1, le=64
    )

    throttle_window_seconds: int = _auth(
        "throttle_window_seconds", 15 * 60, "failures older than this are forgotten", ge=1
    )
    throttle_account_free_failures: int = _auth(
        "throttle_account_free_failures", 5, "failed logins per account before delays", ge=1
    )
    throttle_address_free_failures: int = _auth(
        "throttle_address_free_failures", 20, "failed logins per client address before delays", ge=1
    )
    throttle_base_delay_ms: int = _auth(
        "throttle_base_delay_ms", 1000, "first delay; doubles with each further failure", ge=1
    )
    throttle_max_delay_seconds: int = _auth(
        "throttle_max_delay_seconds", 15 * 60, "longest delay imposed", ge=1
    )
    throttle_pair_free_failures: int = _auth(
        "throttle_pair_free_failures",
        5,
        "failed logins per account from one client address before that address is refused for it",
        ge=1,
    )
    throttle_account_max_slowdown_ms: int = _auth(
        "throttle_account_max_slowdown_ms",
        3000,
        "longest a login to an account under attack is held (accounts are slowed, never locked)",
        ge=0,
        le=60_000,
    )
    register_burst: int = _auth(
        "register_burst", 30, "registrations per client address at once (per process)", ge=1
    )
    register_per_minute: float = _auth(
        "register_per_minute", 10.0, "registrations per client address per minute after it", gt=0
    )

    key_secret: SecretStr = _auth(
        "key_secret", SecretStr(DEV_KEY_SECRET), "encrypts signing keys at rest (>= 32 chars)"
    )
    key_rotation_days: float = _auth(
        "key_rotation_days", 30.0, "sign with a new key this often (0 = only on demand)", ge=0
    )
    key_publish_lead_seconds: int = _auth(
        "key_publish_lead_seconds", 60, "a new key is in JWKS this long before it signs", ge=0
    )
    key_reload_seconds: float = _auth(
        "key_reload_seconds", 30.0, "how often each process re-reads keys from PostgreSQL", gt=0
    )

    grpc_max_message_bytes: int = _auth(
        "grpc_max_message_bytes", 64 * 1024, "larger requests get RESOURCE_EXHAUSTED", ge=1024
    )
    search_default_limit: int = _auth("search_default_limit", 20, "users per search", ge=1)
    search_max_limit: int = _auth("search_max_limit", 50, "most users per search", ge=1)
    revoked_sessions_bucket: str = _auth(
        "revoked_sessions_bucket", "rtm_revoked_sessions", "JetStream KV of revoked session ids"
    )
    relay_interval_seconds: float = _auth(
        "relay_interval_seconds", 2.0, "retry period for unpublished revocation events", gt=0
    )
    health_interval_seconds: float = _auth(
        "health_interval_seconds", 2.0, "how often gRPC health re-checks PostgreSQL", gt=0
    )
    reconnect_max_backoff_seconds: float = _auth(
        "reconnect_max_backoff_seconds", 5.0, "longest pause between (re)connect attempts", gt=0
    )
    trusted_proxies: Annotated[list[str], NoDecode] = _auth(
        "trusted_proxies", [], "proxy addresses whose X-Forwarded-For is believed (comma list)"
    )

    web_dir: Path | None = _auth(
        "web_dir",
        None,
        "the built web chat page (clients/web/dist, `make web`) served at /chat/; unset: no page "
        "(`rtm up` sets it)",
    )
    web_producer_urls: Annotated[list[str], NoDecode] = _auth(
        "web_producer_urls", [], "producer HTTP bases the chat page uses (comma list)"
    )
    web_consumer_urls: Annotated[list[str], NoDecode] = _auth(
        "web_consumer_urls", [], "consumer HTTP bases the chat page uses (comma list)"
    )

    @field_validator("trusted_proxies", "web_producer_urls", "web_consumer_urls", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_values(self) -> Self:
        secret = self.key_secret.get_secret_value()
        if self.env != "dev" and (secret == DEV_KEY_SECRET or len(secret) < 32):
            raise ValueError("RTM_AUTH_KEY_SECRET must be set (>= 32 chars) outside RTM_ENV=dev")
        bits = entropy_bits(secret)
        if self.env == "prod" and bits < KEY_SECRET_BITS:
            raise ValueError(
                f"RTM_AUTH_KEY_SECRET has about {bits:.0f} bits of entropy, RTM_ENV=prod needs "
                f"{KEY_SECRET_BITS}: {GENERATE_HINT}"
            )
        weak = self.argon2_memory_kib < OWASP_MEMORY_KIB or self.argon2_time_cost < OWASP_TIME_COST
        if weak and self.env != "test":
            raise ValueError("argon2 parameters below the OWASP minimum (m=19 MiB, t=2)")
        if self.search_default_limit > self.search_max_limit:
            raise ValueError("search_default_limit exceeds search_max_limit")
        return self
