"""The per-process connection registry: per-user limit, revocation, shutdown."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from rtm.producer.entrypoints.connections import ConnectionRegistry
from rtm.shared.ws import CloseCode


@dataclass(eq=False)
class FakeConnection:
    user_id: uuid.UUID
    session_id: uuid.UUID = field(default_factory=uuid.uuid4)
    closed_with: list[CloseCode] = field(default_factory=list)

    def request_close(self, code: CloseCode, reason: str) -> None:
        self.closed_with.append(code)


def test_user_may_hold_up_to_the_limit() -> None:
    registry = ConnectionRegistry(max_per_user=2)
    user = uuid.uuid4()
    first, second, third = (FakeConnection(user) for _ in range(3))
    assert registry.add(first)
    assert registry.add(second)
    assert not registry.add(third)
    assert registry.add(FakeConnection(uuid.uuid4()))  # others are not affected
    registry.remove(first)
    assert registry.add(third)
    assert registry.count(user) == 2


def test_revocation_closes_only_that_sessions_connections() -> None:
    registry = ConnectionRegistry(max_per_user=10)
    user, session = uuid.uuid4(), uuid.uuid4()
    revoked = [FakeConnection(user, session) for _ in range(2)]
    other = FakeConnection(user)
    for connection in (*revoked, other):
        registry.add(connection)
    assert registry.revoke_session(session) == 2
    assert [c.closed_with for c in revoked] == [[CloseCode.SESSION_REVOKED]] * 2
    assert other.closed_with == []


def test_a_refreshed_token_of_another_session_moves_the_connection() -> None:
    registry = ConnectionRegistry(max_per_user=10)
    connection = FakeConnection(uuid.uuid4())
    registry.add(connection)
    old = connection.session_id
    connection.session_id = uuid.uuid4()
    registry.move_session(connection, old)
    assert registry.revoke_session(old) == 0
    assert registry.revoke_session(connection.session_id) == 1


async def test_close_all_asks_everyone_and_waits_until_they_are_gone() -> None:
    registry = ConnectionRegistry(max_per_user=10)
    connections = [FakeConnection(uuid.uuid4()) for _ in range(3)]
    for connection in connections:
        registry.add(connection)

    async def leave_later() -> None:
        await asyncio.sleep(0.01)
        for connection in connections:
            registry.remove(connection)

    task = asyncio.create_task(leave_later())
    assert await registry.close_all(CloseCode.RESTARTING, "bye", timeout=2)
    await task
    assert all(c.closed_with == [CloseCode.RESTARTING] for c in connections)
    assert not registry.add(FakeConnection(uuid.uuid4()))  # refused while shutting down


async def test_close_all_reports_a_timeout() -> None:
    registry = ConnectionRegistry(max_per_user=10)
    registry.add(FakeConnection(uuid.uuid4()))
    assert not await registry.close_all(CloseCode.RESTARTING, "bye", timeout=0.01)
