"""Time as the wire protocol writes it: RFC 3339, UTC, milliseconds, `Z` suffix."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """`2026-11-24T01:34:49.123Z`: the one time format every frame and body uses."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Inverse of `format_time` (accepts any ISO 8601 form `datetime` understands)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
