"""Settings of the local runner (`rtm up`, `rtm dev`, `rtm migrate`, and tests' `LocalSystem`).

Read from the environment with the `RTM_` prefix and from `.env`, like the services' settings, so
one `.env` configures both. The embedded servers get their own, non-standard default ports
(NATS 4322 and 8322, PostgreSQL 5532) so they never collide with a NATS on 4222 or a PostgreSQL on
5432 already running on the machine. A busy port is an error naming the setting to change; `0`
means "any free port".

Nothing is read at import time: the CLI builds `RunnerSettings()`, tests build
`RunnerSettings.for_tests(folder)`, which ignores the environment and `.env`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rtm.local.backoff import RestartPolicy
from rtm.shared.settings import REPO_ROOT

Port = int


class RunnerSettings(BaseSettings):
    """Everything `rtm up` needs to know; each field maps to `RTM_<FIELD>`."""

    model_config = SettingsConfigDict(
        env_prefix="RTM_", env_file=".env", extra="ignore", validate_default=True
    )

    env: Literal["dev", "test", "prod"] = Field("dev", description="passed to every service")
    host: str = Field("127.0.0.1", description="address the services and embedded servers bind to")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="services' log format; auto: text on a terminal, JSON otherwise"
    )
    data_dir: Path = Field(
        Path(".rtm"), description="embedded NATS (nats/) and PostgreSQL (pg/) data, logs (logs/)"
    )
    nats_url: str | None = Field(
        None, description="use this NATS instead of starting the embedded nats-server"
    )
    database_url: str | None = Field(
        None, description="use this PostgreSQL instead of starting the embedded one"
    )
    embedded_nats_port: Port = Field(4322, ge=0, le=65535, description="embedded NATS client port")
    embedded_nats_monitor_port: Port = Field(
        8322, ge=0, le=65535, description="embedded NATS monitoring port (/healthz)"
    )
    embedded_pg_port: Port = Field(5532, ge=0, le=65535, description="embedded PostgreSQL port")
    nats_sync_interval: str = Field(
        "always",
        description="embedded JetStream fsync: 'always' (an acked message survives power loss, "
        "slower publishes) or a duration such as '2m' (nats-server's default, faster)",
    )
    pg_os_user: str = Field("nobody", description="OS user PostgreSQL runs as when we are root")
    auth_grpc_port: Port = Field(50051, ge=0, le=65535, description="auth gRPC port")
    auth_http_port: Port = Field(8080, ge=0, le=65535, description="auth HTTP front port")
    producer_port: Port = Field(8081, ge=0, le=65535, description="producer HTTP/WebSocket port")
    consumer_port: Port = Field(
        8082, ge=0, le=65535, description="first consumer's port; instance i uses port + i - 1"
    )
    consumers: int = Field(1, ge=1, le=32, description="number of consumer instances")
    producers: int = Field(
        1,
        ge=1,
        le=32,
        description="number of producer instances (stateless); the first listens on "
        "producer_port, the others on any free port",
    )
    migrations_dir: Path = Field(REPO_ROOT / "migrations", description="versioned SQL migrations")
    web_dir: Path = Field(
        REPO_ROOT / "clients" / "web" / "dist",
        description="the built web chat page auth serves at /chat/ (`make web` builds it)",
    )
    ready_timeout: float = Field(
        60.0, gt=0, description="seconds the whole system may take to become ready"
    )
    stop_timeout: float = Field(
        10.0, ge=0, description="seconds a process gets after SIGTERM before SIGKILL"
    )
    restart_initial_delay: float = Field(0.5, ge=0, description="first restart backoff, seconds")
    restart_max_delay: float = Field(30.0, ge=0, description="restart backoff cap, seconds")
    restart_max: int = Field(
        5, ge=0, description="crashes tolerated within restart_window before giving up"
    )
    restart_window: float = Field(60.0, gt=0, description="seconds a crash counts against budget")
    isolated: bool = Field(
        False,
        description="services see only the RTM_ variables the runner sets (no inherited RTM_*, "
        "no .env: they run in data_dir); tests use it",
    )
    service_env: dict[str, str] = Field(
        default_factory=dict, description="extra environment for every service (JSON object)"
    )
    service_commands: dict[Literal["auth", "producer", "consumer"], list[str]] = Field(
        default_factory=dict,
        description='replace a service\'s command, e.g. {"producer": ["py-spy", "record", "--", '
        '"python", "-m", "rtm.producer"]} (JSON; tests use stand-ins)',
    )

    def restart_policy(self) -> RestartPolicy:
        """The supervisor's restart pacing from these settings."""
        return RestartPolicy(
            initial=self.restart_initial_delay,
            cap=max(self.restart_max_delay, self.restart_initial_delay),
            max_restarts=self.restart_max,
            window=self.restart_window,
        )

    @classmethod
    def isolated_from_environment(cls, **values: Any) -> RunnerSettings:
        """Settings from `values` and defaults only: neither the environment nor `.env`."""
        return _InitOnlySettings(**values)

    @classmethod
    def for_tests(cls, data_dir: Path, **overrides: Any) -> RunnerSettings:
        """A runner for tests: everything in `data_dir`, every port free, nothing inherited.

        Services run with `RTM_ENV=test`, where auth refuses its development signing-key secret:
        they get one derived from `data_dir` (stable across restarts on the same folder, so
        stored keys stay readable), unless `service_env` in `overrides` sets its own.
        """
        secret = hashlib.sha256(f"rtm-test-key:{data_dir.absolute()}".encode()).hexdigest()
        service_env = {
            "RTM_AUTH_KEY_SECRET": secret,
            # Suites, `rtm bench` and `rtm chaos` sign up thousands of users from 127.0.0.1.
            "RTM_AUTH_REGISTER_BURST": "1000000",
            **overrides.pop("service_env", {}),
        }
        values: dict[str, Any] = {
            "service_env": service_env,
            "env": "test",
            "log_format": "json",
            "data_dir": data_dir,
            "embedded_nats_port": 0,
            "embedded_nats_monitor_port": 0,
            "embedded_pg_port": 0,
            "auth_grpc_port": 0,
            "auth_http_port": 0,
            "producer_port": 0,
            "consumer_port": 0,
            "nats_sync_interval": "always",
            "ready_timeout": 30.0,
            "stop_timeout": 5.0,
            "restart_initial_delay": 0.2,
            "restart_max_delay": 2.0,
            "isolated": True,
        }
        values.update(overrides)
        return cls.isolated_from_environment(**values)


class _InitOnlySettings(RunnerSettings):
    """`RunnerSettings` that reads only its constructor arguments (tests must not see `.env`)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)
