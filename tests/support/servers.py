"""A migrated database and a nats-server, as context managers: the bodies of fixtures that tests
in different folders need at different scopes.

pytest shows a conftest's fixtures only to the tests below its folder, so a test module outside
`tests/integration/producer` (the token matrix) cannot use the producer's module-scoped database
and nats-server; it declares fixtures of its own around these same bodies instead of copying
them. `tests/conftest.py` builds its per-test ones from them too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from rtm.local.nats import EmbeddedNats
from rtm.local.postgres import EmbeddedPostgres
from rtm.local.process import free_port
from rtm.shared.migrate import apply_migrations
from rtm.shared.settings import REPO_ROOT

MIGRATIONS = REPO_ROOT / "migrations"


@contextmanager
def migrated_database(pg_server: EmbeddedPostgres, prefix: str) -> Iterator[str]:
    """A fresh database on `pg_server` (named `prefix` and random hex), migrated; yields its URL
    and drops it afterwards, even with connections still open."""
    name = prefix + uuid.uuid4().hex[:16]
    url = pg_server.create_database(name)
    apply_migrations(url, MIGRATIONS)
    yield url
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_nats(folder: Path) -> Iterator[EmbeddedNats]:
    """A nats-server with JetStream on free ports, its data and log in `folder`; stopped
    afterwards."""
    server = EmbeddedNats(folder, free_port(), free_port(), log_path=folder / "nats.log")
    server.start()
    yield server
    server.stop()
