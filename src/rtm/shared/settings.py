"""Settings every service shares; each service subclasses `CommonSettings` in its `settings.py`.

Values come from the environment (`RTM_` prefix) and an optional `.env` file. Nothing here is read
at import time: composition roots build their settings object and pass it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
