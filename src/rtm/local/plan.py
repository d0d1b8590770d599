"""What `rtm up` runs, where, and with which environment (pure: no process, no socket).

Services are configured only through environment variables (the contract every service reads
with pydantic-settings), so the runner's whole job towards them is computing those variables.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from rtm.local.ports import PortClaim
from rtm.local.settings import RunnerSettings

ServiceKind = Literal["auth", "producer", "consumer"]


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """One service process: `name` is unique (`consumer-2`), `kind` picks the module."""

    name: str
    kind: ServiceKind
    http_port: int
    grpc_port: int | None = None

    @property
    def module(self) -> str:
        return f"rtm.{self.kind}"

    def argv(self) -> list[str]:
        """Each service runs as `python -m rtm.<kind>` with our interpreter (same venv)."""
        return [sys.executable, "-m", self.module]


def producer_names(count: int) -> list[str]:
    """`producer` alone; `producer-1` .. `producer-N` when there are several."""
    return ["producer"] if count == 1 else [f"producer-{i}" for i in range(1, count + 1)]


def consumer_names(count: int) -> list[str]:
    """`consumer` alone; `consumer-1` .. `consumer-N` when there are several."""
    return ["consumer"] if count == 1 else [f"consumer-{i}" for i in range(1, count + 1)]


def probe_host(host: str) -> str:
    """Where to reach a server bound to `host` (a wildcard bind is reachable on loopback)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def port_claims(
    settings: RunnerSettings, *, embedded_nats: bool, embedded_pg: bool
) -> list[PortClaim]:
    """Every port `rtm up` will listen on, with the setting that moves it."""
    s, host = settings, settings.host
    claims: list[PortClaim] = []
    if embedded_nats:
        claims += [
            PortClaim("nats", "embedded NATS", s.embedded_nats_port, "RTM_EMBEDDED_NATS_PORT"),
            PortClaim(
                "nats_monitor",
                "embedded NATS monitoring",
                s.embedded_nats_monitor_port,
                "RTM_EMBEDDED_NATS_MONITOR_PORT",
            ),
        ]
    if embedded_pg:
        claims.append(
            PortClaim("pg", "embedded PostgreSQL", s.embedded_pg_port, "RTM_EMBEDDED_PG_PORT")
        )
    claims += [
        PortClaim("auth_grpc", "auth gRPC", s.auth_grpc_port, "RTM_AUTH_GRPC_PORT", host),
        PortClaim("auth_http", "auth HTTP", s.auth_http_port, "RTM_AUTH_HTTP_PORT", host),
    ]
    for index, name in enumerate(producer_names(s.producers)):
        # The next ports are the consumers': a second producer takes any free port (the
        # banner and `SystemUrls.producers` say which).
        port = s.producer_port if index == 0 else 0
        setting = "RTM_PRODUCER_PORT" if index == 0 else f"none (any free port for {name})"
        claims.append(PortClaim(name, name, port, setting, host))
    for index, name in enumerate(consumer_names(s.consumers)):
        port = s.consumer_port + index if s.consumer_port else 0
        setting = "RTM_CONSUMER_PORT" + (f" (+{index} for {name})" if index else "")
        claims.append(PortClaim(name, name, port, setting, host))
    return claims


def plan_services(settings: RunnerSettings, ports: Mapping[str, int]) -> list[ServicePlan]:
    """auth, the producers, then the consumers, on the resolved `ports`."""
    plans = [ServicePlan("auth", "auth", ports["auth_http"], ports["auth_grpc"])]
    plans += [ServicePlan(n, "producer", ports[n]) for n in producer_names(settings.producers)]
    plans += [ServicePlan(n, "consumer", ports[n]) for n in consumer_names(settings.consumers)]
    return plans


def service_env(
    plan: ServicePlan,
    settings: RunnerSettings,
    *,
    ports: Mapping[str, int],
    nats_url: str,
    database_url: str,
    log_format: Literal["json", "text"],
    inherited: Mapping[str, str],
) -> dict[str, str]:
    """The whole environment of one service process.

    Inherited variables come first (minus `RTM_*` when `isolated`), then `service_env`, then
    what the runner decided, which always wins: the runner's ports and URLs are the truth.
    """
    env = {
        key: value
        for key, value in inherited.items()
        if not (settings.isolated and key.startswith("RTM_"))
    }
    if "RTM_MIGRATE_ON_START" not in env:
        # The runner has just applied them: services racing for the migration lock would only
        # slow their start and fill PostgreSQL's log. Set it (or service_env) to override.
        env["RTM_MIGRATE_ON_START"] = "false"
    env.update(settings.service_env)
    host = probe_host(settings.host)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",  # lines reach the terminal as they are written
            "RTM_ENV": settings.env,
            "RTM_HOST": settings.host,
            "RTM_LOG_FORMAT": log_format,
            "RTM_NATS_URL": nats_url,
            "RTM_DATABASE_URL": database_url,
            "RTM_MIGRATIONS_DIR": str(settings.migrations_dir.absolute()),
            "RTM_AUTH_GRPC_PORT": str(ports["auth_grpc"]),
            "RTM_AUTH_HTTP_PORT": str(ports["auth_http"]),
            "RTM_PRODUCER_PORT": str(ports[producer_names(settings.producers)[0]]),
            "RTM_AUTH_URL": f"http://{host}:{ports['auth_http']}",
        }
    )
    if plan.kind == "auth":
        # The chat page auth serves at /chat/ (rtm.auth.entrypoints.web_page) and where it finds
        # the producers and consumers.
        env["RTM_AUTH_WEB_DIR"] = str(settings.web_dir.absolute())
        for kind, names in (
            ("PRODUCER", producer_names(settings.producers)),
            ("CONSUMER", consumer_names(settings.consumers)),
        ):
            env[f"RTM_AUTH_WEB_{kind}_URLS"] = ",".join(f"http://{host}:{ports[n]}" for n in names)
    if plan.kind == "producer":
        env["RTM_PRODUCER_PORT"] = str(plan.http_port)
    if plan.kind == "consumer":
        env["RTM_CONSUMER_PORT"] = str(plan.http_port)
        env["RTM_INSTANCE_ID"] = plan.name
    else:
        first_consumer = consumer_names(settings.consumers)[0]
        env["RTM_CONSUMER_PORT"] = str(ports[first_consumer])
    return env


@dataclass(frozen=True, slots=True)
class SystemUrls:
    """Where everything listens once `rtm up` (or `LocalSystem.start`) is ready."""

    auth: str
    auth_grpc: str
    producer: str
    consumers: tuple[str, ...]
    nats: str
    database: str
    nats_monitor: str | None = None
    producers: tuple[str, ...] = ()  # every producer instance; `producer` is the first

    @property
    def consumer(self) -> str:
        """The first consumer instance."""
        return self.consumers[0]

    @property
    def web_page(self) -> str:
        """The chat page auth serves (rtm.auth.entrypoints.web_page)."""
        return f"{self.auth}/chat/"

    @staticmethod
    def swagger(base: str) -> str:
        return f"{base}/v1/swagger"

    @staticmethod
    def websocket(base: str) -> str:
        """`http://h:p` as `ws://h:p`; the path is the service's (see docs/protocol.md)."""
        return "ws" + base.removeprefix("http")

    @staticmethod
    def websocket_endpoint(base: str) -> str:
        """The WebSocket producer and consumer serve (`ws://h:p/v1/ws`)."""
        return SystemUrls.websocket(base) + "/v1/ws"

    @staticmethod
    def asyncapi(base: str) -> str:
        """The page documenting a service's WebSocket (producer and consumer)."""
        return f"{base}/v1/asyncapi"


def urls_for(
    plans: list[ServicePlan],
    settings: RunnerSettings,
    *,
    nats_url: str,
    database_url: str,
    nats_monitor: str | None,
) -> SystemUrls:
    host = probe_host(settings.host)
    by_name = {plan.name: f"http://{host}:{plan.http_port}" for plan in plans}
    auth = next(plan for plan in plans if plan.kind == "auth")
    return SystemUrls(
        auth=by_name["auth"],
        auth_grpc=f"{host}:{auth.grpc_port}",
        producer=next(by_name[p.name] for p in plans if p.kind == "producer"),
        consumers=tuple(by_name[p.name] for p in plans if p.kind == "consumer"),
        nats=nats_url,
        database=database_url,
        nats_monitor=nats_monitor,
        producers=tuple(by_name[p.name] for p in plans if p.kind == "producer"),
    )


def redact(url: str) -> str:
    """`postgresql://u:secret@h/db` as `postgresql://u:***@h/db`, for printing."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
