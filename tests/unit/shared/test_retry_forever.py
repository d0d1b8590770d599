"""retry_forever: an outage is one warning line; anything else is retried with its traceback."""

from __future__ import annotations

import logging

import pytest

from rtm.shared.connect import retry_forever
from rtm.shared.errors import ErrorCode, RtmError


async def _fails_once_with(error: Exception) -> int:
    calls = 0

    async def attempt() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise error
        return calls

    return await retry_forever("the thing", attempt, cap=0.01)


async def test_an_outage_is_logged_in_one_line_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dependency that is down (here: a translated outage) is a warning, no traceback."""
    outage = RtmError(ErrorCode.UNAVAILABLE, "down")
    assert await _fails_once_with(outage) == 2
    [line] = [
        r for r in caplog.records if r.name == "rtm.shared.connect" and r.levelno >= logging.WARNING
    ]
    assert "the thing unavailable" in line.getMessage()
    assert line.exc_info is None


async def test_an_unexpected_failure_is_retried_and_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Anything else (a failed migration, a bug) is retried too, with its traceback."""
    assert await _fails_once_with(KeyError("bug")) == 2
    [line] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert line.exc_info is not None
    assert isinstance(line.exc_info[1], KeyError)


async def test_a_multi_line_error_is_logged_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """httpx's status errors add a line pointing at MDN: the log line keeps the first only."""
    outage = RtmError(ErrorCode.UNAVAILABLE, "Server error '503'\nFor more information check: x")
    assert await _fails_once_with(outage) == 2
    [line] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "\n" not in line.getMessage()
    assert "Server error '503'" in line.getMessage()
