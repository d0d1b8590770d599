"""What PostgreSQL holds for the run's conversations: counts while it runs, rows at the end.

Each call opens its own short connection: PostgreSQL is killed and frozen during a run, and a
pool would hand out connections that died with it. A call that cannot get an answer in time
returns None while the run goes on; only the final read insists (`stored_rows`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import asyncpg

from rtm.chaos.checker import Stored
from rtm.chaos.errors import ChaosError
from rtm.shared.postgres import POSTGRES_FAILURES, tls_options

QUERY_TIMEOUT_S = 3.0
FINAL_READ_TIMEOUT_S = 60.0


async def _fetch(
    database_url: str, query: str, conversations: Sequence[str], timeout: float = QUERY_TIMEOUT_S
) -> list[asyncpg.Record]:
    """One query on a connection of its own, abandoned (not cancelled) after `timeout`.

    A query that times out is not cancelled the asyncpg way: that opens another connection to
    send a cancel request, which a frozen PostgreSQL leaves hanging past the run. The socket is
    closed instead (`terminate`), and the server drops the query when it wakes up.
    """
    connection = await asyncpg.connect(database_url, timeout=timeout, **tls_options(database_url))
    try:
        fetching = asyncio.ensure_future(connection.fetch(query, list(conversations)))
        fetching.add_done_callback(_consume)
        done, _ = await asyncio.wait({fetching}, timeout=timeout)
        if not done:
            raise TimeoutError(f"no answer from PostgreSQL within {timeout:g}s")
        rows: list[asyncpg.Record] = fetching.result()
        return rows
    finally:
        connection.terminate()


def _consume(future: asyncio.Future[list[asyncpg.Record]]) -> None:
    """Retrieve an abandoned query's failure (its connection was closed under it)."""
    if not future.cancelled():
        future.exception()


async def heads(database_url: str, conversations: Sequence[str]) -> dict[str, int] | None:
    """Each conversation's number of stored messages (0 when none); None: no answer in time."""
    try:
        rows = await _fetch(
            database_url,
            "SELECT conversation_id, count(*) AS n FROM messaging.messages"
            " WHERE conversation_id = ANY($1::uuid[]) GROUP BY conversation_id",
            conversations,
        )
    except POSTGRES_FAILURES:
        return None
    counts = dict.fromkeys(conversations, 0)
    counts.update({str(row["conversation_id"]): int(row["n"]) for row in rows})
    return counts


async def stored_rows(
    database_url: str, conversations: Sequence[str], attempts: int = 20
) -> list[Stored]:
    """Every stored message of `conversations`, retried for a while (PostgreSQL may be coming
    back from the last fault).

    Raises:
        ChaosError: PostgreSQL did not answer.
    """
    last: BaseException | None = None
    for _ in range(attempts):
        try:
            rows = await _fetch(
                database_url,
                "SELECT message_id, conversation_id, seq, sender_id, client_msg_id, stream_seq"
                " FROM messaging.messages WHERE conversation_id = ANY($1::uuid[])",
                conversations,
                timeout=FINAL_READ_TIMEOUT_S,
            )
        except POSTGRES_FAILURES as exc:
            last = exc
            await asyncio.sleep(1.0)
            continue
        return [
            Stored(
                uuid.UUID(str(row["conversation_id"])),
                int(row["seq"]),
                uuid.UUID(str(row["sender_id"])),
                uuid.UUID(str(row["client_msg_id"])),
                int(row["stream_seq"]),
                uuid.UUID(str(row["message_id"])),
            )
            for row in rows
        ]
    raise ChaosError(f"could not read the stored messages: {last!r}")
