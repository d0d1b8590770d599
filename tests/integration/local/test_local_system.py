"""`LocalSystem`: the whole runner with real embedded servers and stand-in services.

The stand-ins honour the service contract (ports from the environment, `/health/ready`, gRPC
health for auth), so these tests exercise exactly what `rtm up` does, independently of the real
services, which the e2e tier runs.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import psycopg
import pytest

from rtm.local.errors import AlreadyRunningError, PortBusyError, ServiceFailedError
from rtm.local.migrate import migrate
from rtm.local.runner import LocalSystem
from rtm.local.settings import RunnerSettings
from rtm.local.supervisor import State
from rtm.local.system import System
from tests.integration.local.helpers import alive, standin_commands, wait_for


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    """Embedded NATS and PostgreSQL, auth, producer and two consumers (stand-ins)."""
    settings = RunnerSettings.for_tests(
        tmp_path_factory.mktemp("rtm"), consumers=2, service_commands=standin_commands()
    )
    with LocalSystem(settings, cleanup=True) as running:
        yield running


def test_every_service_is_ready_at_the_printed_urls(system: LocalSystem) -> None:
    urls = system.urls
    assert len(set(urls.consumers)) == 2
    for base in (urls.auth, urls.producer, *urls.consumers):
        assert httpx.get(f"{base}/health/ready", trust_env=False).status_code == 200
    assert {s.state for s in system.status().values()} == {State.READY}
    assert list(system.status()) == [
        "nats", "postgres", "auth", "producer", "consumer-1", "consumer-2"
    ]  # fmt: skip


def test_each_consumer_instance_runs_with_its_own_instance_id(system: LocalSystem) -> None:
    wait_for(lambda: "consumer-2 serving" in system.log_path("consumer-2").read_text())
    assert "consumer-1 serving" in system.log_path("consumer-1").read_text()


def test_a_killed_service_comes_back_by_itself(system: LocalSystem) -> None:
    first = system.pid("consumer-2")
    system.kill("consumer-2")
    assert system.status()["consumer-2"].state is State.BACKOFF
    system.wait_ready(["consumer-2"])
    assert system.pid("consumer-2") not in (None, first)
    assert system.status()["consumer-2"].restarts == 1
    assert first is not None
    assert not alive(first)


def test_a_held_nats_stays_down_until_released(system: LocalSystem) -> None:
    """An outage on demand, for tests of recovery after NATS comes back on the same port."""
    system.hold("nats")
    assert system.status()["nats"].state is State.STOPPED
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(system.nats_url.rsplit(":", 1)[1])), 0.5)
    system.release("nats")
    assert system.status()["nats"].state is State.READY


def test_restart_replaces_the_process_without_counting_a_crash(system: LocalSystem) -> None:
    first = system.pid("producer")
    system.restart("producer")
    assert system.pid("producer") not in (None, first)
    assert system.status()["producer"].restarts == 0


def _create_stream_and_row(nats_url: str, database_url: str) -> None:
    async def stream() -> None:
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().add_stream(name="KEEP", subjects=["keep.>"])
        finally:
            await client.close()

    asyncio.run(stream())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (v int)")
        conn.execute("INSERT INTO keep VALUES (42)")


def _stream_and_row_exist(nats_url: str, database_url: str) -> bool:
    async def stream() -> bool:
        client = await nats.connect(nats_url)
        try:
            info = await client.jetstream().stream_info("KEEP")
            return bool(info.config.name == "KEEP")
        finally:
            await client.close()

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT v FROM keep").fetchone()
    return asyncio.run(stream()) and row == (42,)


def test_embedded_servers_start_migrate_and_reuse_their_data(tmp_path: Path) -> None:
    """A second start on the same folder keeps PostgreSQL's rows and JetStream's streams."""
    settings = RunnerSettings.for_tests(tmp_path / "rtm")
    first = LocalSystem(settings, services=False).start()
    try:
        with psycopg.connect(first.database_url) as conn:
            schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
        assert "messaging" in schemas
        _create_stream_and_row(first.nats_url, first.database_url)
        with pytest.raises(AlreadyRunningError, match="another rtm runner"):
            LocalSystem(settings, services=False, cleanup=True).start()
        assert (tmp_path / "rtm" / "pg" / "PG_VERSION").exists()  # the intruder deleted nothing
    finally:
        first.stop()
    pg_version = (tmp_path / "rtm" / "pg" / "PG_VERSION").stat().st_mtime
    with LocalSystem(settings, services=False, cleanup=True) as second:
        assert _stream_and_row_exist(second.nats_url, second.database_url)
        assert (tmp_path / "rtm" / "pg" / "PG_VERSION").stat().st_mtime == pg_version
        _, applied = migrate(settings.model_copy(update={"database_url": second.database_url}))
        assert applied == []
    assert not (tmp_path / "rtm").exists()


def test_rtm_migrate_starts_and_stops_the_embedded_postgresql(tmp_path: Path) -> None:
    settings = RunnerSettings.for_tests(tmp_path / "rtm")
    try:
        url, applied = migrate(settings)
        assert "0001_messaging" in applied
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        assert not (tmp_path / "rtm" / "pg" / "postmaster.pid").exists()
        assert migrate(settings)[1] == []
    finally:
        System(settings).remove_data()


def test_a_busy_service_port_fails_fast_naming_the_port_and_its_setting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = RunnerSettings.for_tests(tmp_path, producer_port=port)
        began = time.monotonic()
        with pytest.raises(PortBusyError) as caught:
            LocalSystem(settings).start()
    assert time.monotonic() - began < 2
    assert f"port {port}" in str(caught.value)
    assert "RTM_PRODUCER_PORT" in str(caught.value)
    assert not (tmp_path / "status.json").exists()


def test_a_service_that_never_starts_fails_start_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    """Start gives up with the crashing service named; servers stop; the data is removed."""
    crash = [sys.executable, "-c", "import sys; print('boom'); sys.exit(4)"]
    settings = RunnerSettings.for_tests(
        tmp_path / "rtm",
        restart_max=1,
        service_commands={**standin_commands(), "producer": crash},
    )
    system = LocalSystem(settings, cleanup=True)
    with pytest.raises(ServiceFailedError, match=r"producer is failed.*last exit code 4"):
        system.start()
    assert not (tmp_path / "rtm").exists()
    with pytest.raises(RuntimeError, match="not started"):
        system.pid("producer")
