"""Runner settings and the plan computed from them: ports, names, each service's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtm.local.plan import (
    consumer_names,
    plan_services,
    port_claims,
    probe_host,
    producer_names,
    redact,
    service_env,
    urls_for,
)
from rtm.local.settings import RunnerSettings

PORTS = {
    "auth_grpc": 50051,
    "auth_http": 8080,
    "producer": 8081,
    "consumer": 8082,
    "consumer-1": 8082,
    "consumer-2": 8083,
    "producer-1": 8081,
    "producer-2": 8085,
}


def defaults(**values: object) -> RunnerSettings:
    return RunnerSettings.isolated_from_environment(**values)


def env_for(settings: RunnerSettings, name: str, inherited: dict[str, str]) -> dict[str, str]:
    plan = next(p for p in plan_services(settings, PORTS) if p.name == name)
    return service_env(
        plan,
        settings,
        ports=PORTS,
        nats_url="nats://127.0.0.1:4322",
        database_url="postgresql://postgres@127.0.0.1:5532/rtm",
        log_format="json",
        inherited=inherited,
    )


def test_embedded_servers_default_to_ports_no_standard_server_uses() -> None:
    """A NATS on 4222 or a PostgreSQL on 5432 already running never collides with ours."""
    settings = defaults()
    assert settings.nats_url is None
    assert settings.database_url is None
    assert (settings.embedded_nats_port, settings.embedded_nats_monitor_port) == (4322, 8322)
    assert settings.embedded_pg_port == 5532
    services = (settings.auth_grpc_port, settings.auth_http_port, settings.producer_port)
    assert (*services, settings.consumer_port) == (50051, 8080, 8081, 8082)
    assert settings.data_dir == Path(".rtm")


def test_settings_come_from_rtm_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTM_CONSUMERS", "3")
    monkeypatch.setenv("RTM_EMBEDDED_PG_PORT", "6000")
    monkeypatch.setenv("RTM_SERVICE_ENV", '{"RTM_PARTITIONS": "4"}')
    settings = RunnerSettings(_env_file=None)
    assert settings.consumers == 3
    assert settings.embedded_pg_port == 6000
    assert settings.service_env == {"RTM_PARTITIONS": "4"}


def test_test_settings_ignore_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A developer's exported RTM_* variables must not leak into tests."""
    monkeypatch.setenv("RTM_CONSUMERS", "5")
    monkeypatch.setenv("RTM_NATS_URL", "nats://127.0.0.1:4222")
    settings = RunnerSettings.for_tests(tmp_path, consumers=2)
    assert settings.consumers == 2
    assert settings.nats_url is None
    assert settings.isolated
    assert settings.producer_port == 0


def test_configured_urls_drop_the_embedded_port_claims() -> None:
    settings = defaults()
    every = {c.key for c in port_claims(settings, embedded_nats=True, embedded_pg=True)}
    none = {c.key for c in port_claims(settings, embedded_nats=False, embedded_pg=False)}
    assert {"nats", "nats_monitor", "pg"} <= every
    assert not {"nats", "nats_monitor", "pg"} & none


def test_several_consumers_get_numbered_names_and_consecutive_ports() -> None:
    settings = defaults(consumers=3)
    claims = {c.key: c for c in port_claims(settings, embedded_nats=False, embedded_pg=False)}
    assert consumer_names(3) == ["consumer-1", "consumer-2", "consumer-3"]
    assert [claims[n].port for n in consumer_names(3)] == [8082, 8083, 8084]
    assert claims["consumer-3"].setting == "RTM_CONSUMER_PORT (+2 for consumer-3)"
    assert consumer_names(1) == ["consumer"]


def test_port_zero_for_consumers_asks_for_any_free_port_for_each() -> None:
    settings = defaults(consumers=2, consumer_port=0)
    claims = {c.key: c for c in port_claims(settings, embedded_nats=False, embedded_pg=False)}
    assert claims["consumer-1"].port == claims["consumer-2"].port == 0


def test_each_service_is_told_every_url_and_port_it_needs() -> None:
    env = env_for(defaults(), "producer", {})
    assert env["RTM_NATS_URL"] == "nats://127.0.0.1:4322"
    assert env["RTM_DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5532/rtm"
    assert env["RTM_AUTH_URL"] == "http://127.0.0.1:8080"
    assert env["RTM_PRODUCER_PORT"] == "8081"
    assert env["RTM_AUTH_GRPC_PORT"] == "50051"
    assert env["RTM_LOG_FORMAT"] == "json"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert Path(env["RTM_MIGRATIONS_DIR"]).is_absolute()


def test_each_consumer_instance_gets_its_own_port_and_instance_id() -> None:
    settings = defaults(consumers=2)
    second = env_for(settings, "consumer-2", {})
    assert second["RTM_CONSUMER_PORT"] == "8083"
    assert second["RTM_INSTANCE_ID"] == "consumer-2"
    assert "RTM_INSTANCE_ID" not in env_for(settings, "auth", {})


def test_the_runners_values_win_over_inherited_and_extra_variables() -> None:
    settings = defaults(service_env={"RTM_NATS_URL": "nats://elsewhere", "RTM_PARTITIONS": "4"})
    env = env_for(settings, "auth", {"RTM_AUTH_HTTP_PORT": "1", "PATH": "/bin"})
    assert env["RTM_NATS_URL"] == "nats://127.0.0.1:4322"
    assert env["RTM_AUTH_HTTP_PORT"] == "8080"
    assert env["RTM_PARTITIONS"] == "4"
    assert env["PATH"] == "/bin"


def test_isolated_services_inherit_no_rtm_variables() -> None:
    env = env_for(defaults(isolated=True), "auth", {"RTM_JWT_SECRET": "x", "HOME": "/root"})
    assert "RTM_JWT_SECRET" not in env
    assert env["HOME"] == "/root"


def test_services_skip_migrations_the_runner_applied_unless_told_otherwise() -> None:
    assert env_for(defaults(), "auth", {})["RTM_MIGRATE_ON_START"] == "false"
    told = env_for(defaults(), "auth", {"RTM_MIGRATE_ON_START": "true"})
    assert told["RTM_MIGRATE_ON_START"] == "true"


def test_a_wildcard_bind_is_reached_on_loopback() -> None:
    assert probe_host("0.0.0.0") == "127.0.0.1"
    assert probe_host("10.0.0.5") == "10.0.0.5"
    env = env_for(defaults(host="0.0.0.0"), "producer", {})
    assert env["RTM_HOST"] == "0.0.0.0"
    assert env["RTM_AUTH_URL"] == "http://127.0.0.1:8080"


def test_urls_name_every_service_and_swagger() -> None:
    settings = defaults(consumers=2)
    urls = urls_for(
        plan_services(settings, PORTS),
        settings,
        nats_url="nats://n",
        database_url="postgresql://d",
        nats_monitor=None,
    )
    assert urls.auth == "http://127.0.0.1:8080"
    assert urls.auth_grpc == "127.0.0.1:50051"
    assert urls.consumers == ("http://127.0.0.1:8082", "http://127.0.0.1:8083")
    assert urls.consumer == urls.consumers[0]
    assert urls.swagger(urls.producer) == "http://127.0.0.1:8081/v1/swagger"
    assert urls.websocket(urls.producer) == "ws://127.0.0.1:8081"


def test_printed_urls_hide_passwords() -> None:
    assert redact("postgresql://rtm:s3cret@db:5432/rtm") == "postgresql://rtm:***@db:5432/rtm"
    assert redact("nats://127.0.0.1:4322") == "nats://127.0.0.1:4322"


def test_several_producers_get_numbered_names_ports_and_urls() -> None:
    settings = defaults(producers=2)
    claims = {c.key: c for c in port_claims(settings, embedded_nats=False, embedded_pg=False)}
    assert producer_names(2) == ["producer-1", "producer-2"]
    assert producer_names(1) == ["producer"]
    assert [claims[n].port for n in producer_names(2)] == [8081, 0]  # 8082 is the consumer's
    assert env_for(settings, "producer-2", {})["RTM_PRODUCER_PORT"] == "8085"
    assert env_for(settings, "consumer", {})["RTM_PRODUCER_PORT"] == "8081"  # the first
    urls = urls_for(
        plan_services(settings, PORTS),
        settings,
        nats_url="nats://n",
        database_url="postgresql://d",
        nats_monitor=None,
    )
    assert urls.producers == ("http://127.0.0.1:8081", "http://127.0.0.1:8085")
    assert urls.producer == urls.producers[0]


def test_auth_serves_the_chat_page_with_every_producer_and_consumer(tmp_path: Path) -> None:
    """The page (rtm.auth.entrypoints.web_page) talks to every instance `rtm up` starts."""
    settings = defaults(producers=2, consumers=2, web_dir=tmp_path / "dist")
    env = env_for(settings, "auth", {})
    assert env["RTM_AUTH_WEB_DIR"] == str(tmp_path / "dist")
    assert env["RTM_AUTH_WEB_PRODUCER_URLS"] == "http://127.0.0.1:8081,http://127.0.0.1:8085"
    assert env["RTM_AUTH_WEB_CONSUMER_URLS"] == "http://127.0.0.1:8082,http://127.0.0.1:8083"
    assert "RTM_AUTH_WEB_DIR" not in env_for(settings, "producer-1", {})
