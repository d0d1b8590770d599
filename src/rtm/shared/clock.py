"""Time as the wire protocol writes it: RFC 3339, UTC, milliseconds, `Z` suffix."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """`2026-11-24T01:34:49.123Z`: the one time format every frame and body uses.

    `isoformat` in C, not `strftime` plus an f-string: the producer formats a time twice per
    message (its JetStream payload and its ack), and a profile at 1,000 msgs/s put 6.5% of the
    producer's CPU here."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_time(text: str) -> datetime:
    """Inverse of `format_time` (accepts any ISO 8601 form `datetime` understands)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
