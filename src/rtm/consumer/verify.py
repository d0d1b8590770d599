"""The continuity check, composed on real NATS and PostgreSQL (a composition root, like
`bootstrap`: the one other place that names the concrete continuity adapters).

- `continuity_service(nc, database)`: what the consumer's auditor runs on its own connections.
- `verify_continuity(nats_url, database_url)`: the whole check, on connections of its own, for
  `rtm verify` and for the chaos harness at the end of a run.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import nats
import nats.errors
from nats.aio.client import Client as NatsClient

from rtm.consumer.adapters.jetstream_history import JetStreamHistory
from rtm.consumer.adapters.postgres_continuity import PostgresAuditPositions, PostgresStoredHistory
from rtm.consumer.domain.continuity_report import ContinuityReport
from rtm.consumer.domain.exceptions import ContinuityUnavailable, Unavailable
from rtm.consumer.services import ContinuityService, VerifyProgress
from rtm.shared.connect import NATS_FAILURES
from rtm.shared.postgres import PostgresDatabase

CONNECT_TIMEOUT_S = 5.0  # also the bound of one lookup (the row scan has its own)
# The auditor's stream messages per step: each step holds the consumer's event loop for a few
# milliseconds (250 cost the same CPU per message as 1,000 but held it for ~10 ms), and the
# auditor takes at most a fifth of the loop's time (rtm bench rooms at 800 msgs/s: delivery
# p99 110-180 ms with 250 and no rest, 60-80 ms with it off; see BENCHMARKS.md).
AUDIT_CHUNK = 100
AUDIT_DUTY = 0.2


def continuity_service(nc: NatsClient, database: PostgresDatabase) -> ContinuityService:
    """The service the consumer's auditor uses, on the consumer's connections."""
    return ContinuityService(
        JetStreamHistory(nc),
        PostgresStoredHistory(database),
        PostgresAuditPositions(database),
        chunk=AUDIT_CHUNK,
        duty=AUDIT_DUTY,
    )


async def verify_continuity(
    nats_url: str,
    database_url: str,
    *,
    limit: int = 20,
    progress: Callable[[VerifyProgress], None] | None = None,
) -> ContinuityReport:
    """Check that every acked message JetStream holds is stored once, in order.

    Reads every message of RTM_MESSAGES in stream order and looks each up in PostgreSQL by
    `message_id` and `(sender_id, client_msg_id)`, then checks every stored row and conversation
    head (see `rtm.consumer.domain.continuity` for the rules). Read-only; safe on a live system.

    Args:
        nats_url: NATS with the RTM_MESSAGES stream (comma-separated servers allowed).
        database_url: rtm's PostgreSQL.
        limit: ids kept per kind of finding (the counts are always complete).
        progress: called after each chunk of the stream and of the rows (long runs).

    Returns:
        The report; `report.clean` is False when a message is missing, stored twice or out
        of order.

    Raises:
        ContinuityUnavailable: NATS or PostgreSQL could not be reached or read; the message
            says which and why.
    """
    nc = await _connect_nats(nats_url)
    try:
        database = await _connect_postgres(database_url)
        try:
            service = ContinuityService(JetStreamHistory(nc), PostgresStoredHistory(database))
            return await service.verify(limit=limit, progress=progress)
        finally:
            await database.close()
    finally:
        await nc.close()


async def _connect_nats(url: str) -> NatsClient:
    failures: list[Exception] = []

    async def remember(exc: Exception) -> None:
        """Reported once, by the exception below; not logged per attempt."""
        failures.append(exc)

    try:
        return await nats.connect(
            servers=[part.strip() for part in url.split(",")],
            name="rtm-verify",
            allow_reconnect=False,
            max_reconnect_attempts=1,  # 0 means "for ever" to nats-py's first connect
            reconnect_time_wait=0.2,
            connect_timeout=CONNECT_TIMEOUT_S,
            error_cb=remember,
        )
    except NATS_FAILURES as exc:
        cause = failures[-1] if failures else exc
        raise ContinuityUnavailable(f"cannot connect to NATS: {cause!r}") from exc


async def _connect_postgres(url: str) -> PostgresDatabase:
    database = PostgresDatabase(
        url, pool_size=2, timeout=CONNECT_TIMEOUT_S, unavailable=Unavailable
    )
    try:
        await database.open()
    except (Unavailable, asyncpg.PostgresError, ValueError) as exc:
        # ValueError: a malformed URL. The URL itself is not repeated: it may hold a password.
        cause = exc.__cause__ if isinstance(exc, Unavailable) else exc
        raise ContinuityUnavailable(f"cannot connect to PostgreSQL: {cause!r}") from exc
    return database
