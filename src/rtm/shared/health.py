"""Readiness: named dependency checks that `/health/ready` runs and reports.

A service registers one check per dependency (NATS, the JetStream stream, PostgreSQL, JWKS). A
check returns `None` when healthy or a short reason when not; it must be cheap and bounded, since
orchestrators call it every few seconds.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Check = Callable[[], Awaitable[str | None]] | Callable[[], str | None]


class Readiness:
    """The set of checks a service is ready only when all pass."""

    def __init__(self, timeout: float = 2.0) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout = timeout

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def failures(self) -> dict[str, str]:
        """Failing check names mapped to their reasons (empty when ready)."""
        failing: dict[str, str] = {}
        for name, check in self._checks.items():
            try:
                outcome = check()
                reason = (
                    await asyncio.wait_for(outcome, self._timeout)
                    if inspect.isawaitable(outcome)
                    else outcome
                )
            except TimeoutError:
                reason = f"check timed out after {self._timeout:.0f}s"
            except Exception as exc:  # last line of defence: a check that raises is a bug
                logger.exception("readiness check %s failed", name)
                reason = f"{type(exc).__name__}: {exc}"
            if reason is not None:
                failing[name] = reason
        return failing
