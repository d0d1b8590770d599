"""Fixtures of auth's unit tests: the service on in-memory fakes (no I/O)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.auth.fakes import ServiceKit, service_kit


@pytest.fixture
async def kit() -> AsyncIterator[ServiceKit]:
    """Auth's services on fakes with a fake clock; its hashing threads are stopped after."""
    made = await service_kit()
    yield made
    made.hasher.close()
