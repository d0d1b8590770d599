"""PostgreSQL outages for tests: a private server to break, and the ways to break it.

A test that freezes or kills PostgreSQL needs a server of its own: the session's `pg_server`
serves every other test. `private_postgres(folder)` starts one; `freezing` and
`killing_postgres` are outages, async context managers that break the server on entry and
restore it on exit (a freeze in one of the three ways of `tests.support.processes.Freeze`; a
SIGKILL of the postmaster, after which connections are reset, then refused until it is started
again on the same port and data).

Only processes the test started are signalled, by PID.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path

from rtm.local.nats import EmbeddedNats
from rtm.local.postgres import EmbeddedPostgres
from rtm.local.process import free_port, spawn, wait_until
from tests.support.processes import Freeze, alive, children_of, frozen

RESTART_TIMEOUT_S = 60.0  # a bound on waits that must end (never asserted as a latency)

Outage = Callable[[], AbstractAsyncContextManager[None]]


@contextmanager
def private_postgres(folder: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server on a free port, its data and log in `folder`; removed afterwards."""
    server = EmbeddedPostgres(
        folder / "pg", free_port(), log_path=folder / "pg.log", ephemeral=True
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.remove_data()


def postmaster_pid(server: EmbeddedPostgres) -> int:
    assert server.proc is not None
    assert server.proc.poll() is None, "PostgreSQL is not running"
    return server.proc.pid


def freezing(pid: Callable[[], int], how: Freeze = Freeze.SERVER) -> Outage:
    """SIGSTOP what `how` names in the process tree of `pid()` for the outage, SIGCONT after."""

    @asynccontextmanager
    async def outage() -> AsyncIterator[None]:
        with frozen(pid(), how) as stopped:
            assert stopped, "nothing to freeze"
            yield

    return outage


def freezing_postgres(server: EmbeddedPostgres, how: Freeze) -> Outage:
    """`freezing` of `server`'s postmaster tree."""
    return freezing(lambda: postmaster_pid(server), how)


async def restart(server: EmbeddedPostgres | EmbeddedNats, ready: Callable[[], bool]) -> None:
    """Start a killed server again on its ports and data, and wait until `ready()`.

    Spawned from this thread: a server dies with the thread that started it (PDEATHSIG), so
    only the wait runs in a worker thread."""
    if isinstance(server, EmbeddedPostgres):
        proc = spawn(
            server.argv(), log_path=server.log_path, cwd=server.workdir, run_as=server.run_as
        )
    else:
        proc = spawn(server.argv(), log_path=server.log_path)
    server.proc = proc

    def started() -> bool:
        assert proc.poll() is None, f"the server exited at restart; see {server.log_path}"
        return ready()

    await asyncio.to_thread(wait_until, started, timeout=RESTART_TIMEOUT_S, what="restarted server")


def killing_postgres(server: EmbeddedPostgres) -> Outage:
    """SIGKILL the postmaster (its backends exit, connections reset); start it again after."""

    @asynccontextmanager
    async def outage() -> AsyncIterator[None]:
        backends = children_of(postmaster_pid(server))
        server.kill()
        yield
        # A new postmaster refuses to start while the old backends hold the shared memory.
        deadline = asyncio.get_running_loop().time() + RESTART_TIMEOUT_S
        while alive(backends):
            assert asyncio.get_running_loop().time() < deadline, alive(backends)
            await asyncio.sleep(0.1)
        await restart(server, server.accepts)

    return outage


def postgres_outage(server: EmbeddedPostgres, kind: str) -> Outage:
    """The outage named `kind`: `killed`, or `frozen-<Freeze value>` (`frozen-everything`)."""
    if kind == "killed":
        return killing_postgres(server)
    return freezing_postgres(server, Freeze(kind.removeprefix("frozen-")))


POSTGRES_OUTAGES = ["killed", *(f"frozen-{how.value}" for how in Freeze)]


def assert_nothing_logged_as_a_bug(records: list[logging.LogRecord]) -> None:
    """An outage is a WARNING, one line: no ERROR, no traceback, no asyncpg protocol error."""
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info is not None and record.exc_info[1] is not None:
            text += repr(record.exc_info[1])
        assert "InternalClientError" not in text, text
        assert record.levelno < logging.ERROR, (record.name, text)
        assert record.exc_info is None or record.levelno < logging.WARNING, (record.name, text)
