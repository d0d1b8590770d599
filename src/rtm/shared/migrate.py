"""Apply the versioned SQL migrations in `migrations/` with yoyo-migrations.

Several services may start at once and each applies pending migrations: a PostgreSQL advisory
lock held on a separate connection serialises them (yoyo's own lock table is created by the
first runner and could race; the advisory lock also dies with a crashed process).
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from yoyo import get_backend, read_migrations
from yoyo.exceptions import BadMigration, LockTimeout, MigrationConflict

logger = logging.getLogger(__name__)

_LOCK_KEY = 0x72746D  # "rtm"


def yoyo_url(database_url: str) -> str:
    """yoyo picks its driver from the URL scheme; we use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


# What `apply_migrations` raises when the migrations cannot be applied: the folder or the
# database missing, a migration that fails (SQL) or cannot be read, a lock held too long.
MIGRATION_FAILURES: tuple[type[Exception], ...] = (
    OSError,
    psycopg.Error,
    BadMigration,
    LockTimeout,
    MigrationConflict,
)


def apply_migrations(database_url: str, migrations_dir: Path) -> list[str]:
    """Apply every pending migration; returns the ids applied (empty when up to date)."""
    if not migrations_dir.is_dir():
        raise FileNotFoundError(
            f"migrations folder {migrations_dir} not found (RTM_MIGRATIONS_DIR)"
        )
    with psycopg.connect(database_url, autocommit=True) as lock_conn:
        lock_conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            backend = get_backend(yoyo_url(database_url))
            migrations = read_migrations(str(migrations_dir))
            with backend.lock():
                pending = backend.to_apply(migrations)
                applied = [m.id for m in pending]
                if applied:
                    logger.info("applying migrations: %s", ", ".join(applied))
                    backend.apply_migrations(pending)
            backend.connection.close()
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
