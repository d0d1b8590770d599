"""`format_time`: the wire's one time format, milliseconds truncated (never rounded up)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rtm.shared.clock import format_time, parse_time


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 24, 1, 34, 49, 123456, tzinfo=UTC), "2026-11-24T01:34:49.123Z"),
        (datetime(2026, 11, 24, 1, 34, 49, 999999, tzinfo=UTC), "2026-11-24T01:34:49.999Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (
            datetime(2026, 1, 1, 2, 30, 0, 7000, tzinfo=timezone(timedelta(hours=3))),
            "2025-12-31T23:30:00.007Z",
        ),
    ],
)
def test_format_time_is_utc_milliseconds_with_z(moment: datetime, text: str) -> None:
    assert format_time(moment) == text
    assert format_time(parse_time(text)) == text
