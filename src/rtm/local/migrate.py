"""`rtm migrate`: apply migrations where the system's data lives.

To `RTM_DATABASE_URL` when it is set. Otherwise to the embedded PostgreSQL under
`RTM_DATA_DIR/pg`: used as it is when a running `rtm up` already serves it (its port is in
`postmaster.pid`), else started for the occasion (initdb on first use) and stopped again.
"""

from __future__ import annotations

import logging

from rtm.local.plan import port_claims
from rtm.local.ports import resolve_ports
from rtm.local.postgres import EmbeddedPostgres
from rtm.local.settings import RunnerSettings
from rtm.shared.migrate import apply_migrations

logger = logging.getLogger(__name__)


def migrate(settings: RunnerSettings) -> tuple[str, list[str]]:
    """Apply pending migrations; returns the database URL and the migration ids applied."""
    if settings.database_url is not None:
        url = settings.database_url
        return url, apply_migrations(url, settings.migrations_dir)
    data_dir = settings.data_dir.absolute()
    pg = EmbeddedPostgres(data_dir / "pg", settings.embedded_pg_port, os_user=settings.pg_os_user)
    running = pg.running_port()
    if running is not None:
        pg.port = running
        logger.info("using the embedded PostgreSQL already running on port %d", running)
        pg.ensure_database()
        return pg.url, apply_migrations(pg.url, settings.migrations_dir)
    claims = [c for c in port_claims(settings, embedded_nats=False, embedded_pg=True)]
    ports = resolve_ports(claim for claim in claims if claim.key == "pg")
    pg.port = ports["pg"]
    pg.log_path = data_dir / "logs" / "postgres.log"
    pg.log_path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("starting the embedded PostgreSQL in %s on port %d", pg.data_dir, pg.port)
    pg.start()
    try:
        return pg.url, apply_migrations(pg.url, settings.migrations_dir)
    finally:
        pg.stop()
        logger.info("stopped the embedded PostgreSQL")
